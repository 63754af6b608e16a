//! Configuration: the server config file and the zones folder.
//!
//! Files are parsed raw with serde (`deny_unknown_fields`, no I/O in the structs), then
//! compiled into the plan the server runs. Every error is collected, each with
//! file:line and what would be valid, so `signpost check` shows them all at once.

pub mod checks;
pub mod encrypted;
pub mod fleet;
pub mod policy;
pub mod server;
pub mod zones;

use std::fmt;
use std::path::{Path, PathBuf};

pub use server::{Identity, LogFormat, ServerConfig};

/// One problem in a config or zone file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &Path, line: usize, message: String) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line,
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A list of errors, displayed one per line.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based line number of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
