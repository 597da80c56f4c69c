//! Actor keys: what a rate limit or concurrency cap counts by — the client IP, the route, a
//! header or cookie value, or a combination written `client_ip+route`, `header:x-account-id`.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use http::header::{HeaderName, COOKIE};

use crate::stage::RequestFacts;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyPart {
    ClientIp,
    Route,
    Header(HeaderName),
    Cookie(String),
}

/// A composite key. A header or cookie part whose value is missing counts by client IP
/// instead, so leaving the header out does not escape the limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ActorKey(pub Vec<KeyPart>);

impl Default for ActorKey {
    fn default() -> Self {
        ActorKey(vec![KeyPart::ClientIp])
    }
}

/// A key written in a policy that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} is not a valid header name")]
    HeaderName(String),
    #[error("unknown key part {0:?}; use client_ip, route, header:NAME or cookie:NAME joined with +")]
    UnknownPart(String),
}

/// A header name as configuration writes it (any case); `None` when it is not a valid name.
/// Validation reports those (config/validate.rs), so compiled models may skip them.
pub fn header_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()
}

impl FromStr for ActorKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        // The older spelling of `client_ip+route`.
        let s = if s == "client_ip_route" { "client_ip+route" } else { s };
        let mut parts = Vec::new();
        for p in s.split('+').map(str::trim) {
            let part = match p.split_once(':') {
                None if p == "client_ip" => KeyPart::ClientIp,
                None if p == "route" => KeyPart::Route,
                Some(("header", name)) => KeyPart::Header(
                    HeaderName::from_bytes(name.trim().to_ascii_lowercase().as_bytes())
                        .map_err(|_| KeyError::HeaderName(name.to_string()))?,
                ),
                Some(("cookie", name)) if !name.trim().is_empty() => KeyPart::Cookie(name.trim().to_string()),
                _ => return Err(KeyError::UnknownPart(p.to_string())),
            };
            parts.push(part);
        }
        Ok(ActorKey(parts))
    }
}

impl fmt::Display for ActorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            match p {
                KeyPart::ClientIp => f.write_str("client_ip")?,
                KeyPart::Route => f.write_str("route")?,
                KeyPart::Header(h) => write!(f, "header:{h}")?,
                KeyPart::Cookie(c) => write!(f, "cookie:{c}")?,
            }
        }
        Ok(())
    }
}

/// The value of cookie `name` in the request's Cookie headers.
fn cookie<'a>(f: &RequestFacts<'a>, name: &str) -> Option<&'a [u8]> {
    f.headers.get_all(COOKIE).iter().find_map(|h| {
        h.as_bytes().split(|b| *b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            (&pair[..eq] == name.as_bytes()).then(|| &pair[eq + 1..])
        })
    })
}

impl ActorKey {
    /// The value of a one-part header or cookie key in this request (identity keys).
    pub fn value<'a>(&self, f: &RequestFacts<'a>) -> Option<&'a [u8]> {
        match self.0.as_slice() {
            [KeyPart::Header(name)] => f.headers.get(name).map(|v| v.as_bytes()),
            [KeyPart::Cookie(name)] => cookie(f, name),
            _ => None,
        }
    }
}

/// A request seen through a key; hashing it hashes the key's values.
pub struct Keyed<'k, 'f, 'a> {
    pub key: &'k ActorKey,
    pub facts: &'f RequestFacts<'a>,
}

impl Hash for Keyed<'_, '_, '_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let f = self.facts;
        for p in &self.key.0 {
            let value = match p {
                KeyPart::ClientIp => None,
                KeyPart::Route => Some(f.route.as_bytes()),
                KeyPart::Header(name) => f.headers.get(name).map(|v| v.as_bytes()),
                KeyPart::Cookie(name) => cookie(f, name),
            };
            match value {
                Some(v) => {
                    h.write_u8(1);
                    v.hash(h);
                }
                None => {
                    h.write_u8(0);
                    f.client_ip.hash(h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::DefaultHasher;

    fn digest(key: &str, f: &RequestFacts<'_>) -> u64 {
        let key: ActorKey = key.parse().expect("key");
        let mut h = DefaultHasher::new();
        Keyed { key: &key, facts: f }.hash(&mut h);
        h.finish()
    }

    #[test]
    fn parses_and_prints() {
        for k in [
            "client_ip",
            "route",
            "client_ip+route",
            "header:x-account-id",
            "cookie:sid+route",
        ] {
            assert_eq!(k.parse::<ActorKey>().map(|k| k.to_string()), Ok(k.to_string()));
        }
        assert_eq!(
            "client_ip_route".parse::<ActorKey>().map(|k| k.to_string()),
            Ok("client_ip+route".into())
        );
        assert!("ip".parse::<ActorKey>().is_err());
        assert!("header:bad name".parse::<ActorKey>().is_err());
    }

    #[test]
    fn keys_separate_and_group_the_right_requests() {
        let mut h1 = http::HeaderMap::new();
        h1.insert("cookie", "a=1; sid=alice; b=2".parse().expect("hv"));
        h1.insert("x-account-id", "alice".parse().expect("hv"));
        let mut h2 = http::HeaderMap::new();
        h2.insert("cookie", "sid=bob".parse().expect("hv"));
        let base = RequestFacts {
            client_ip: "198.51.100.1".parse().expect("ip"),
            method: "GET",
            host: "h",
            path: "/",
            route: "chat",
            query: None,
            headers: &h1,
            content_length: None,
        };
        let other_ip = RequestFacts {
            client_ip: "198.51.100.2".parse().expect("ip"),
            ..base
        };
        let bob = RequestFacts { headers: &h2, ..base };
        // The same account from two addresses is one actor.
        assert_eq!(
            digest("header:x-account-id", &base),
            digest("header:x-account-id", &other_ip)
        );
        assert_eq!(digest("cookie:sid", &base), digest("cookie:sid", &other_ip));
        assert_ne!(digest("cookie:sid", &base), digest("cookie:sid", &bob));
        // Without the header, the address stands in for it.
        assert_ne!(
            digest("header:x-account-id", &bob),
            digest("header:x-account-id", &base)
        );
        assert_eq!(digest("route", &base), digest("route", &other_ip));
        assert_ne!(digest("client_ip+route", &base), digest("client_ip+route", &other_ip));
    }
}
