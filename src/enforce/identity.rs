//! Account identities as keyed pseudonyms (request_filter). A header or cookie value named by
//! `offenders.identity` is a credential more often than not (a session cookie): whoever reads
//! it can act as the user. So the value is turned into an HMAC-SHA256 pseudonym the moment it
//! is read, and only the pseudonym reaches offender state, the state file, logs and the admin
//! API. The key comes from `state.identity_key_file`, else from a file created beside the
//! state file, else it is made up for this process (docs/operations.md, "Identities").

use std::fmt;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the HMAC kept in a pseudonym: 128 bits, as telemetry keeps for addresses.
pub const PSEUDONYM_BYTES: usize = 16;
/// Hex digits of a pseudonym shown in logs; enough to tell actors apart when reading.
pub const SHORT_HEX: usize = 12;
/// Shortest key accepted from a file, in bytes (the same floor as `telemetry.ip_hash_key_file`).
pub use crate::config::keyfile::{KeyFileError, MIN_KEY_BYTES};
/// Bytes of a key Palisade makes itself.
pub const GENERATED_KEY_BYTES: usize = 32;
/// Prefix of a pseudonym's text form.
pub const PREFIX: &str = "hmac:";
/// Mixed into every MAC so that a key shared with another use (e.g. the telemetry address key)
/// never gives an identity the pseudonym of an address.
const DOMAIN: &[u8] = b"palisade identity\0";

#[derive(Debug, thiserror::Error)]
pub enum IdentityKeyError {
    #[error(transparent)]
    File(#[from] KeyFileError),
    #[error("identity key {}: cannot create it: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error("identity key: no randomness from /dev/urandom: {0}")]
    Random(std::io::Error),
}

/// Where the identity key came from; said once in the log at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `state.identity_key_file`.
    Configured(PathBuf),
    /// Read from, or created beside, the state file.
    BesideState { path: PathBuf, created: bool },
    /// Made up at start: pseudonyms change with every process.
    Ephemeral,
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Configured(p) => write!(f, "identities are pseudonymised with the key in {}", p.display()),
            KeySource::BesideState { path, created: true } => write!(
                f,
                "identities are pseudonymised with a new key, saved to {} (mode 0600)",
                path.display()
            ),
            KeySource::BesideState { path, created: false } => {
                write!(f, "identities are pseudonymised with the key in {}", path.display())
            }
            KeySource::Ephemeral => f.write_str(
                "identities are pseudonymised with a key made for this process; \
                 set state.identity_key_file or state.path to keep it across restarts",
            ),
        }
    }
}

/// The HMAC key for identity pseudonyms.
#[derive(Clone)]
pub struct IdentityKey {
    mac: Hmac<Sha256>,
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityKey(..)")
    }
}

impl IdentityKey {
    pub fn new(key: &[u8]) -> Self {
        // HMAC takes keys of any length; `new_from_slice` never fails for it.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        IdentityKey { mac }
    }

    /// A key from the operating system's randomness.
    pub fn random() -> Result<Self, IdentityKeyError> {
        Ok(Self::new(&random_bytes()?))
    }

    /// A key for this process only, for offline tools and tests that never persist state.
    /// Falls back to the standard library's randomly seeded hasher when /dev/urandom cannot
    /// be read: still unpredictable from outside, and nothing keyed by it outlives the process.
    pub fn ephemeral() -> Self {
        match random_bytes() {
            Ok(k) => Self::new(&k),
            Err(_) => {
                use std::hash::{BuildHasher, Hasher};
                let mut key = Vec::with_capacity(GENERATED_KEY_BYTES);
                for i in 0..(GENERATED_KEY_BYTES / 8) as u64 {
                    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                    h.write_u64(i);
                    key.extend_from_slice(&h.finish().to_le_bytes());
                }
                Self::new(&key)
            }
        }
    }

    /// The pseudonym of a raw identity value.
    pub fn pseudonym(&self, raw: &[u8]) -> Pseudonym {
        let mut m = self.mac.clone();
        m.update(DOMAIN);
        m.update(raw);
        let digest = m.finalize().into_bytes();
        let mut p = [0u8; PSEUDONYM_BYTES];
        p.copy_from_slice(&digest[..PSEUDONYM_BYTES]);
        Pseudonym(p)
    }

    /// The key of this process: `configured` (`state.identity_key_file`, resolved against the
    /// config file by the caller), else `STATE.key` beside the state file (created with mode
    /// 0600 when missing, so bans of identities survive restarts and hot upgrades), else one
    /// made up now.
    pub fn resolve(
        configured: Option<&Path>,
        state: Option<&Path>,
    ) -> Result<(IdentityKey, KeySource), IdentityKeyError> {
        if let Some(path) = configured {
            return Ok((Self::new(&read_key(path)?), KeySource::Configured(path.to_path_buf())));
        }
        let Some(state) = state else {
            return Ok((Self::random()?, KeySource::Ephemeral));
        };
        let path = beside_state(state);
        match read_key(&path) {
            Ok(k) => return Ok((Self::new(&k), KeySource::BesideState { path, created: false })),
            Err(KeyFileError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let key = hex::encode(random_bytes()?);
        let created = write_new_key(&path, key.as_bytes());
        match created {
            Ok(()) => Ok((
                Self::new(key.as_bytes()),
                KeySource::BesideState { path, created: true },
            )),
            // Another process (the other half of a hot upgrade) made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((
                Self::new(&read_key(&path)?),
                KeySource::BesideState { path, created: false },
            )),
            Err(source) => Err(IdentityKeyError::Create { path, source }),
        }
    }
}

/// The key file kept beside a state file `STATE`: `STATE.key`.
pub fn beside_state(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

pub use crate::config::keyfile::read_key;

fn random_bytes() -> Result<[u8; GENERATED_KEY_BYTES], IdentityKeyError> {
    let mut k = [0u8; GENERATED_KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k))
        .map_err(IdentityKeyError::Random)?;
    Ok(k)
}

/// Create `path` readable by its owner only; fails if it exists.
fn write_new_key(path: &Path, key: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(key)?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// The keyed pseudonym of an identity. Its text form is `hmac:` and 32 hex digits; `Display`
/// shortens it for logs, `full` gives the whole of it (state file, admin API).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym([u8; PSEUDONYM_BYTES]);

impl Pseudonym {
    /// `hmac:` and all 32 hex digits: what the state file stores and the admin API shows.
    pub fn full(&self) -> String {
        format!("{PREFIX}{}", hex::encode(self.0))
    }

    /// Parse the full text form; `hmac:` may be left out.
    pub fn parse(s: &str) -> Option<Pseudonym> {
        let hex_part = s.strip_prefix(PREFIX).unwrap_or(s);
        let mut p = [0u8; PSEUDONYM_BYTES];
        hex::decode_to_slice(hex_part, &mut p).ok()?;
        Some(Pseudonym(p))
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = hex::encode(self.0);
        write!(f, "{PREFIX}{}…", &h[..SHORT_HEX])
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Pseudonym {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full())
    }
}

impl<'de> serde::Deserialize<'de> for Pseudonym {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.strip_prefix(PREFIX).and_then(Pseudonym::parse).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "an identity must be a pseudonym ({PREFIX} and {} hex digits)",
                PSEUDONYM_BYTES * 2
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_keyed_stable_and_never_the_value() {
        let a = IdentityKey::new(b"0123456789abcdef0123");
        let b = IdentityKey::new(b"another key, 16+ bytes");
        let raw = b"s3ss10n-c00k1e-value";
        assert_eq!(a.pseudonym(raw), a.pseudonym(raw));
        assert_ne!(a.pseudonym(raw), b.pseudonym(raw), "another key, another pseudonym");
        assert_ne!(a.pseudonym(raw), a.pseudonym(b"other"));
        let p = a.pseudonym(raw);
        let full = p.full();
        assert!(full.starts_with("hmac:") && full.len() == 5 + 32, "{full}");
        assert_eq!(Pseudonym::parse(&full), Some(p));
        assert_eq!(Pseudonym::parse(&full[5..]), Some(p));
        assert_eq!(Pseudonym::parse("hmac:xyz"), None);
        let shown = p.to_string();
        assert!(shown.starts_with("hmac:") && shown.ends_with('…') && full.starts_with(shown.trim_end_matches('…')));
        assert_eq!(format!("{p:?}"), shown);
        for text in [&full, &shown, &format!("{p:?}")] {
            assert!(!text.contains("s3ss10n"));
        }
    }

    #[test]
    fn serde_takes_only_pseudonyms() {
        let p = IdentityKey::new(b"0123456789abcdef").pseudonym(b"alice");
        let json = serde_json::to_string(&p).expect("json");
        assert_eq!(json, format!("\"{}\"", p.full()));
        assert_eq!(serde_json::from_str::<Pseudonym>(&json).expect("back"), p);
        assert!(serde_json::from_str::<Pseudonym>("\"alice\"").is_err());
    }

    #[test]
    fn the_key_is_configured_kept_beside_the_state_or_made_up() {
        let dir = tempfile::tempdir().expect("tempdir");
        let configured = dir.path().join("identity.key");
        std::fs::write(&configured, "short").expect("write");
        assert!(matches!(
            IdentityKey::resolve(Some(&configured), None),
            Err(IdentityKeyError::File(KeyFileError::Short { .. }))
        ));
        std::fs::write(&configured, "a key of at least sixteen bytes\n").expect("write");
        let (k, src) = IdentityKey::resolve(Some(&configured), None).expect("configured");
        assert_eq!(src, KeySource::Configured(configured.clone()));
        assert_eq!(
            k.pseudonym(b"x"),
            IdentityKey::new(b"a key of at least sixteen bytes").pseudonym(b"x")
        );

        let state = dir.path().join("sub/offenders.json");
        let (first, src) = IdentityKey::resolve(None, Some(&state)).expect("created");
        let key_path = dir.path().join("sub/offenders.json.key");
        assert_eq!(
            src,
            KeySource::BesideState {
                path: key_path.clone(),
                created: true
            }
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, src) = IdentityKey::resolve(None, Some(&state)).expect("read back");
        assert!(matches!(src, KeySource::BesideState { created: false, .. }));
        assert_eq!(
            first.pseudonym(b"x"),
            again.pseudonym(b"x"),
            "the same key after a restart"
        );

        let (e1, src) = IdentityKey::resolve(None, None).expect("ephemeral");
        assert_eq!(src, KeySource::Ephemeral);
        let (e2, _) = IdentityKey::resolve(None, None).expect("ephemeral");
        assert_ne!(e1.pseudonym(b"x"), e2.pseudonym(b"x"));
    }
}
