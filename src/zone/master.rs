//! STUB until the parser lands.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use super::name::Name;
pub struct SourceRecord { pub owner: Name, pub rtype: u16, pub ttl: u32, pub rdata: Vec<u8>, pub file: Arc<Path>, pub line: usize }
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}:{line}: {message}", file.display())]
pub struct MasterError { pub file: PathBuf, pub line: usize, pub message: String }
pub struct MasterOptions { pub origin: Name, pub default_ttl: Option<u32> }
pub fn parse_file(_path: &Path, _opts: &MasterOptions) -> (Vec<SourceRecord>, Vec<MasterError>) { (vec![], vec![]) }
pub fn parse_text(_text: &str, _file: &Path, _first_line: usize, _base_dir: &Path, _opts: &MasterOptions) -> (Vec<SourceRecord>, Vec<MasterError>) { (vec![], vec![]) }
pub fn parse_ttl(s: &str) -> Result<u32, String> { s.parse().map_err(|_| s.to_string()) }
