//! Downstream TLS: certificates chosen by SNI during the handshake, and the SNI kept for
//! telemetry. Certificates load at start; changing them takes a restart or hot upgrade.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::ext;
use pingora::tls::pkey::{PKey, Private};
use pingora::tls::ssl::NameType;
use pingora::tls::x509::X509;

use crate::config::certs::{self, CertError, CertPair};
use crate::config::file::CertificateSection;
use crate::host::HostPattern;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Certificate(#[from] CertError),
    #[error("no certificates")]
    NoCertificates,
}

struct Certificate {
    names: Vec<HostPattern>,
    chain: Vec<X509>,
    key: PKey<Private>,
}

/// The server name a client asked for, stored in the TLS digest after the handshake.
#[derive(Debug, Clone)]
pub struct ServerName(pub String);

pub struct SniResolver {
    certs: Vec<Certificate>,
}

impl SniResolver {
    /// Load every certificate; paths are relative to `base` (the config file's directory).
    pub fn load(sections: &[CertificateSection], base: &Path) -> Result<Self, TlsError> {
        let certs = sections
            .iter()
            .map(|s| load_one(s, base))
            .collect::<Result<Vec<_>, _>>()?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        Ok(SniResolver { certs })
    }

    /// The best certificate for `name`: exact, then the longest wildcard, then the first.
    fn choose(&self, name: Option<&str>) -> &Certificate {
        let name = name.map(|n| n.to_ascii_lowercase());
        name.and_then(|n| {
            self.certs
                .iter()
                .filter_map(|c| {
                    c.names
                        .iter()
                        .filter(|p| p.matches(&n))
                        .map(HostPattern::specificity)
                        .max()
                        .map(|s| (s, c))
                })
                .max_by_key(|(s, _)| *s)
                .map(|(_, c)| c)
        })
        .unwrap_or(&self.certs[0])
    }
}

fn load_one(s: &CertificateSection, base: &Path) -> Result<Certificate, CertError> {
    let CertPair { chain, key } = certs::read(s, base)?;
    Ok(Certificate {
        names: s.server_names.iter().map(|n| HostPattern::new(n)).collect(),
        chain,
        key,
    })
}

#[async_trait]
impl TlsAccept for SniResolver {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        let cert = self.choose(ssl.servername(NameType::HOST_NAME));
        let mut ok =
            ext::ssl_use_certificate(ssl, &cert.chain[0]).is_ok() && ext::ssl_use_private_key(ssl, &cert.key).is_ok();
        for c in &cert.chain[1..] {
            ok &= ext::ssl_add_chain_cert(ssl, c).is_ok();
        }
        if !ok {
            log::error!("failed to install the TLS certificate for this handshake");
        }
    }

    async fn handshake_complete_callback(&self, ssl: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        let name = ssl.servername(NameType::HOST_NAME)?;
        Some(Arc::new(ServerName(name.to_string())))
    }
}
