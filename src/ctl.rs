//! `signpost ctl`: a client for the admin endpoint of a running server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};

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
    let o = signpost::app::Overrides {
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

/// One HTTP/1.1 request; returns the status and body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut resp = Vec::new();
    s.take(16 << 20).read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}
