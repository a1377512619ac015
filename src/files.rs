//! Files on the ground floor: reading a model, writing a result atomically.
//!
//! Every layer that writes a result (the command line, the sweeps of `rates`, `reproduce` and
//! `emulate`, the figures of `plot`) uses [`write_atomic`], so an interrupted run never leaves
//! half a file behind; every command that takes `--model` uses [`load_model`]. Errors name the
//! file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::model::{Jghm, ModelError};

/// What went wrong with a file; each variant names it.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read model file '{}'", path.display())]
    ReadModel { path: PathBuf, source: std::io::Error },
    #[error("invalid model '{}'", path.display())]
    InvalidModel { path: PathBuf, source: ModelError },
    #[error("'{}' is not a file path", path.display())]
    NotAFile { path: PathBuf },
    #[error("cannot write '{}': {reason}", path.display())]
    Write { path: PathBuf, reason: std::io::Error },
}

/// Reads and validates a model file (the JSON format of [`Jghm::from_json`]).
pub fn load_model(path: &Path) -> Result<Jghm, FileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| FileError::ReadModel { path: path.to_path_buf(), source })?;
    Jghm::from_json(&text).map_err(|source| FileError::InvalidModel { path: path.to_path_buf(), source })
}

/// Writes `contents` to `path` atomically: a temporary file in the same folder, then a rename,
/// so a reader never sees half a file and an interrupted write leaves the old one intact.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| FileError::NotAFile { path: path.to_path_buf() })?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|reason| {
        let _ = std::fs::remove_file(&tmp);
        FileError::Write { path: path.to_path_buf(), reason }
    })
}
