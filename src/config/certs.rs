//! Reading the certificates a listener names: PEM chain, PEM key, and a key that belongs to the
//! certificate. `palisade check` reports these errors; the TLS listener (`proxy::tls`) builds
//! its SNI resolver from what is read here.

use std::path::{Path, PathBuf};

use pingora::tls::pkey::{PKey, Private};
use pingora::tls::x509::X509;

use super::file::CertificateSection;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: not a PEM certificate: {detail}", path.display())]
    NotACertificate { path: PathBuf, detail: String },
    #[error("{}: no certificate in file", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a PEM private key: {detail}", path.display())]
    NotAKey { path: PathBuf, detail: String },
    #[error("{} does not belong to the certificate {}", key.display(), cert.display())]
    Mismatch { key: PathBuf, cert: PathBuf },
}

/// A certificate chain (leaf first) and its private key.
pub struct CertPair {
    pub chain: Vec<X509>,
    pub key: PKey<Private>,
}

/// Read and check one certificate section; paths are relative to `base`.
pub fn read(s: &CertificateSection, base: &Path) -> Result<CertPair, CertError> {
    let cert_path = base.join(&s.cert);
    let key_path = base.join(&s.key);
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| CertError::Read {
            path: path.clone(),
            source,
        })
    };
    let chain = X509::stack_from_pem(&read(&cert_path)?).map_err(|e| CertError::NotACertificate {
        path: cert_path.clone(),
        detail: e.to_string(),
    })?;
    let Some(leaf) = chain.first() else {
        return Err(CertError::Empty { path: cert_path });
    };
    let key = PKey::private_key_from_pem(&read(&key_path)?).map_err(|e| CertError::NotAKey {
        path: key_path.clone(),
        detail: e.to_string(),
    })?;
    if !leaf.public_key().map(|pk| pk.public_eq(&key)).unwrap_or(false) {
        return Err(CertError::Mismatch {
            key: key_path,
            cert: cert_path,
        });
    }
    Ok(CertPair { chain, key })
}
