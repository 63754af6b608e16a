//! Configuration: the server config file and the zones folder.
//!
//! Files are parsed raw with serde (`deny_unknown_fields`, no I/O in the structs), then
//! compiled into the plan the server runs. Every error is collected, each with
//! file:line and what would be valid, so `signpost check` shows them all at once.

pub mod checks;
pub mod dnstap;
pub mod encrypted;
pub mod fleet;
pub mod metric_checks;
pub mod policy;
pub mod probes;
pub mod ramps;
pub mod rum;
pub mod secondary;
pub mod server;
pub mod shed;
pub mod transfer;
pub mod transport;
pub mod values;
pub mod zones;

use std::fmt;
use std::path::{Path, PathBuf};

pub use server::{DescriptorPlan, Identity, LogFormat, ServerConfig};

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
pub(crate) struct ConfigErrors(pub Vec<ConfigError>);

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

/// Line numbers of byte offsets, for a loop that asks for one per item: counting
/// newlines from the start each time made loading a 10,000-name policy file
/// (4 MB) quadratic, over a minute (benches/steer-scale.sh).
pub(crate) struct LineIndex {
    /// Byte offset just after each `\n`, in order.
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let starts = text
            .bytes()
            .enumerate()
            .filter(|&(_, b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        LineIndex { starts }
    }

    /// 1-based line number of byte offset `pos`, as [`line_of`] gives it.
    pub fn line(&self, pos: usize) -> usize {
        self.starts.partition_point(|&s| s <= pos) + 1
    }
}

/// 1-based line number of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    let pos = pos.min(text.len());
    text.as_bytes()[..pos]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::{line_of, LineIndex};

    #[test]
    fn line_index_agrees_with_counting_newlines() {
        for text in ["", "a", "\n", "a\nb", "a\n\nbc\n", "\n\nx\ny\n\n"] {
            let lines = LineIndex::new(text);
            for pos in 0..=text.len() + 2 {
                assert_eq!(lines.line(pos), line_of(text, pos), "{text:?} at {pos}");
            }
        }
    }
}
