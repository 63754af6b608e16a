//! `signpost ctl`: a client for the admin endpoint of a running server.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::header::{AUTHORIZATION, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Args)]
pub struct CtlArgs {
    /// The server's admin endpoint.
    #[arg(long, default_value = "127.0.0.1:5380", value_name = "ADDR:PORT")]
    admin: SocketAddr,
    /// Bearer token, if the endpoint requires one (or SIGNPOST_ADMIN_TOKEN).
    #[arg(long, env = "SIGNPOST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Subcommand)]
enum CtlCommand {
    /// Zones, endpoints with health, overrides, weights, reloads (JSON).
    Status,
    /// Take a region or endpoint out of every answer: REGION, or NAME/REGION.
    Drain { target: String },
    /// Undo drain, force-up or force-down.
    Undrain { target: String },
    /// Answer with it whatever probes say.
    ForceUp { target: String },
    /// Never answer with it.
    ForceDown { target: String },
    /// Set a weight for the weighted strategy (0 drains), or `clear`.
    Weight { target: String, weight: String },
    /// Set a traffic dial, 0-100 (percent of the client networks that keep it), or `clear`.
    Dial { target: String, percent: String },
    /// Ramp a region's dial step by step, each step after its gates held for
    /// --hold; or --action pause|resume|abort the running ramp.
    Ramp {
        target: String,
        /// Default: the last of the steps, else 100.
        #[arg(long)]
        to: Option<String>,
        /// Default: `[ramps.REGION]`'s, else 1,5,25,50,100 (up to --to).
        #[arg(long)]
        steps: Option<String>,
        /// Default: `[ramps.REGION]`'s, else 10m.
        #[arg(long)]
        hold: Option<String>,
        /// Where a failing gate leaves the dial: last_safe (the last step that
        /// held; also `hold`) or zero. Default: `[ramps.REGION]`'s, else last_safe.
        #[arg(long)]
        on_fail: Option<String>,
        /// A metric gate (`[gates.NAME]`) the ramp waits on; repeat for more.
        /// Default: `[ramps.REGION]`'s.
        #[arg(long = "gate")]
        gates: Vec<String>,
        #[arg(long)]
        action: Option<String>,
    },
    /// Explain a decision as the running server would make it.
    Explain {
        name: String,
        #[arg(long)]
        client: String,
    },
    /// The Prometheus metrics.
    Metrics,
    /// The DS records to give the parent of a signed zone, read from the key folder
    /// (offline: no admin endpoint needed).
    Ds {
        zone: String,
        /// The server config, for `dnssec.key_dir` (else the default places).
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

/// `signpost ctl ds ZONE`: one `zone. IN DS tag alg 2 HEX` line per KSK/CSK.
fn ds(zone: &str, config: Option<std::path::PathBuf>) -> ExitCode {
    let o = signpost::app::CommandLine {
        config,
        ..Default::default()
    };
    let cfg = match signpost::app::server_config(&o) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(1);
        }
    };
    let name = match signpost::zone::Name::parse(zone, Some(&signpost::zone::Name::root())) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {zone:?}: {e}");
            return ExitCode::from(1);
        }
    };
    let dir = cfg.key_dir();
    match signpost::dnssec::ds_lines(&dir, &name) {
        Ok(lines) if lines.is_empty() => {
            eprintln!(
                "error: no KSK or CSK for {name} in {}; `signpost check` or `serve` generates one for a signed zone",
                dir.display()
            );
            ExitCode::from(1)
        }
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// `eu-west` -> `region:eu-west`; `www.geo.example.com/eu-west` ->
/// `endpoint:www.geo.example.com./eu-west`; prefixed forms pass through.
pub fn target_name(t: &str) -> String {
    if t.starts_with("region:") || t.starts_with("endpoint:") {
        return t.to_string();
    }
    match t.rsplit_once('/') {
        Some((name, region)) => {
            let name = if name.ends_with('.') {
                name.to_string()
            } else {
                format!("{name}.")
            };
            format!("endpoint:{name}/{region}")
        }
        None => format!("region:{t}"),
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn run(args: CtlArgs) -> ExitCode {
    let (method, path) = match &args.command {
        CtlCommand::Status => ("GET", "/status".to_string()),
        CtlCommand::Metrics => ("GET", "/metrics".to_string()),
        CtlCommand::Drain { target } => ("POST", ovr(target, "drain")),
        CtlCommand::Undrain { target } => ("POST", ovr(target, "undrain")),
        CtlCommand::ForceUp { target } => ("POST", ovr(target, "force-up")),
        CtlCommand::ForceDown { target } => ("POST", ovr(target, "force-down")),
        CtlCommand::Weight { target, weight } => (
            "POST",
            format!(
                "/v1/weight?target={}&weight={}",
                encode(&target_name(target)),
                encode(weight)
            ),
        ),
        CtlCommand::Dial { target, percent } => (
            "POST",
            format!(
                "/v1/dial?target={}&percent={}",
                encode(&target_name(target)),
                encode(percent)
            ),
        ),
        CtlCommand::Ramp {
            target,
            to,
            steps,
            hold,
            on_fail,
            gates,
            action,
        } => (
            "POST",
            match action {
                Some(a) => format!(
                    "/v1/ramp?target={}&action={}",
                    encode(&target_name(target)),
                    encode(a)
                ),
                None => {
                    let mut q = format!("/v1/ramp?target={}", encode(&target_name(target)));
                    for (k, v) in [
                        ("to", to),
                        ("steps", steps),
                        ("hold", hold),
                        ("on_fail", on_fail),
                    ] {
                        if let Some(v) = v {
                            q.push_str(&format!("&{k}={}", encode(v)));
                        }
                    }
                    if !gates.is_empty() {
                        q.push_str(&format!("&gates={}", encode(&gates.join(","))));
                    }
                    q
                }
            },
        ),
        CtlCommand::Explain { name, client } => (
            "GET",
            format!("/explain?name={}&client={}", encode(name), encode(client)),
        ),
        CtlCommand::Ds { zone, config } => return ds(zone, config.clone()),
    };
    match request(args.admin, method, &path, args.token.as_deref()) {
        Ok((status, body)) => {
            print!("{body}");
            if (200..300).contains(&status) {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: the server answered HTTP {status}");
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!(
                "error: cannot reach the admin endpoint at {}: {e} (start the server with --admin {})",
                args.admin, args.admin
            );
            ExitCode::from(1)
        }
    }
}

fn ovr(target: &str, action: &str) -> String {
    format!(
        "/v1/override?target={}&action={action}",
        encode(&target_name(target))
    )
}

/// Connecting, then the whole exchange, each bounded.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read (`/metrics` of a big configuration stays far below).
const MAX_REPLY: usize = 16 << 20;

/// One HTTP/1.1 request over hyper's client; returns the status and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            exchange(stream, addr, method, path, token),
        )
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply within 10 s"))?
    })
}

async fn exchange(
    stream: TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> io::Result<(u16, String)> {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    // Drives the connection; ends when the reply is read and `sender` dropped.
    let driver = tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr.to_string())
        // Marks the request as not from a web page; a change needs it unless
        // a token is configured.
        .header(signpost::admin::INTENT, "1");
    if let Some(t) = token {
        req = req.header(AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let resp = sender.send_request(req).await.map_err(io::Error::other)?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(io::Error::other)?
        .to_bytes();
    drop(sender);
    let _ = driver.await;
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
