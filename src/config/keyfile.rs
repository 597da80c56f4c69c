//! Reading secret key files named by the configuration (the identity key): checked by
//! `palisade check`, read again at start by `enforce::identity`.

use std::path::{Path, PathBuf};

/// Shortest key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("identity key {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("identity key {}: the key must be at least {MIN_KEY_BYTES} bytes", path.display())]
    Short { path: PathBuf },
}

/// A key file's content without surrounding whitespace; at least `MIN_KEY_BYTES`.
pub fn read_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    let k = std::fs::read(path).map_err(|source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let k = k.trim_ascii();
    if k.len() < MIN_KEY_BYTES {
        return Err(KeyFileError::Short {
            path: path.to_path_buf(),
        });
    }
    Ok(k.to_vec())
}
