//! The `signpost` command.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use signpost::app::{self, CommandLine};
use signpost::malloc;

mod ctl;

#[derive(Parser)]
#[command(
    name = "signpost",
    version,
    about = "Authoritative DNS that steers each client to the right region"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the zones over UDP and TCP.
    Serve {
        /// Server config file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Zones folder (default: zones/).
        #[arg(long)]
        zones: Option<PathBuf>,
        /// Address to listen on, UDP and TCP; repeat for more (default 127.0.0.1:5300).
        #[arg(long = "listen", value_name = "ADDR:PORT")]
        listen: Vec<SocketAddr>,
        /// Serve the admin HTTP endpoint (metrics, status, overrides) here.
        #[arg(long, value_name = "ADDR:PORT")]
        admin: Option<SocketAddr>,
        /// Keep overrides, weights, dials and last known health in this file.
        #[arg(long, value_name = "FILE")]
        state_file: Option<PathBuf>,
    },
    /// Load everything as `serve` would, report every error with file:line, serve nothing.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        zones: Option<PathBuf>,
    },
    /// Explain, offline, what a client gets for a name and why.
    Explain {
        /// The name, like www.geo.example.com.
        name: String,
        /// Query type (default A).
        #[arg(default_value = "A")]
        qtype: String,
        /// The client: an address, or an ECS subnet like 203.0.113.0/24.
        #[arg(long)]
        client: String,
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        zones: Option<PathBuf>,
    },
    /// Talk to a running server's admin endpoint: drain, undrain, force, weights, status.
    Ctl(ctl::CtlArgs),
    /// Write the manual pages (signpost.8, signpost-serve.8, ...) into DIR.
    #[command(hide = true)]
    Man {
        /// Folder to write the pages into; made if missing.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    malloc::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config, zones } => {
            let o = CommandLine {
                config,
                zones,
                ..CommandLine::default()
            };
            match app::check(&o) {
                Ok(report) => {
                    print!("{report}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    eprintln!("{} error(s); nothing would be served", errors.len());
                    ExitCode::from(1)
                }
            }
        }
        Command::Explain {
            name,
            qtype,
            client,
            config,
            zones,
        } => {
            let o = CommandLine {
                config,
                zones,
                ..CommandLine::default()
            };
            let Some(t) = signpost::zone::rtype::from_name(&qtype) else {
                eprintln!("error: {qtype:?} is not a record type (A, AAAA, CNAME, ANY, ...)");
                return ExitCode::from(2);
            };
            match app::explain(&o, &name, t, &client) {
                Ok(lines) => {
                    for l in lines {
                        println!("{l}");
                    }
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    for e in &errors {
                        eprintln!("error: {e}");
                    }
                    ExitCode::from(1)
                }
            }
        }
        Command::Ctl(args) => ctl::run(args),
        Command::Man { dir } => match write_man_pages(&dir) {
            Ok(n) => {
                println!("{n} pages written to {}", dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: writing manual pages to {}: {e}", dir.display());
                ExitCode::from(1)
            }
        },
        Command::Serve {
            config,
            zones,
            listen,
            admin,
            state_file,
        } => {
            let o = CommandLine {
                config,
                zones,
                listen,
                admin,
                state_file,
            };
            match signpost::serve::serve(&o) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Writes one section 8 page for `signpost` and one for each subcommand, nested
/// ones included (`signpost-ctl-drain.8`), from the definitions `--help` prints;
/// returns how many.
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<usize> {
    fn write(cmd: clap::Command, dir: &std::path::Path, n: &mut usize) -> std::io::Result<()> {
        for sub in cmd.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                write(sub.clone(), dir, n)?;
            }
        }
        clap_mangen::Man::new(cmd)
            .section("8")
            .manual("signpost")
            .source(concat!("signpost ", env!("CARGO_PKG_VERSION")))
            .generate_to(dir)?;
        *n += 1;
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut n = 0;
    write(cmd, dir, &mut n)?;
    Ok(n)
}
