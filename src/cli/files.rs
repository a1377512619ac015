//! Reading models and writing results, with errors that name the file.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

use crate::model::Jghm;

/// Reads and validates a model file.
pub fn load_model(path: &Path) -> Result<Jghm> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read model file '{}'", path.display()))?;
    Jghm::from_json(&text).with_context(|| format!("invalid model '{}'", path.display()))
}

/// Writes `contents` to `path` atomically: a temporary file in the same folder, then a rename,
/// so a reader never sees half a file and an interrupted write leaves the old one intact.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().with_context(|| format!("'{}' is not a file path", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp{}", name.to_string_lossy(), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write '{}': {e}", path.display())
    })
}
