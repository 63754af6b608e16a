//! `etcd-proto PROTO_DIR OUT_DIR`: compiles etcd's rpc.proto (and what it
//! imports) into prost messages and tonic client stubs, no server side.
//! Needs `protoc` and its well-known types (google/protobuf/*.proto).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [proto, out] = args.as_slice() else {
        eprintln!("usage: etcd-proto PROTO_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    let rpc = proto.join("etcd/api/etcdserverpb/rpc.proto");
    match tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .emit_rerun_if_changed(false)
        .out_dir(out)
        .compile_protos(&[rpc], std::slice::from_ref(proto))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("etcd-proto: {e}");
            ExitCode::FAILURE
        }
    }
}
