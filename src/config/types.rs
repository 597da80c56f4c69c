//! Small value types shared by the config and policy files: durations written the human way
//! (`250ms`, `5s`, `1h`), CIDRs that also accept a bare address, and byte sizes (`64MiB`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// A duration written as `500ms`, `5s`, `2m`, `1h 30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim())
            .map(Dur)
            .map_err(|e| de::Error::custom(format!("invalid duration {s:?} ({e}); write e.g. 500ms, 5s, 2m")))
    }
}

/// An IPv4 or IPv6 network; a bare address means a host route (/32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr(pub IpNet);

/// A value in a configuration file that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("invalid IP address or CIDR {0:?}")]
    Cidr(String),
    #[error("invalid size {0:?}; write e.g. 65536, 512KiB, 64MiB")]
    Size(String),
    #[error("unknown size unit {unit:?} in {text:?}")]
    SizeUnit { unit: String, text: String },
    #[error("size {0:?} is too large")]
    SizeTooLarge(String),
}

impl FromStr for Cidr {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        if let Ok(net) = s.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        s.parse::<IpAddr>()
            .map(|ip| Cidr(IpNet::from(ip)))
            .map_err(|_| ValueError::Cidr(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// A byte count written as a plain integer or with a unit: `512KiB`, `64MiB`, `1GiB`, `10MB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Self, ValueError> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| ValueError::Size(s.to_string()))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1_000,
            "KiB" => 1 << 10,
            "MB" => 1_000_000,
            "MiB" => 1 << 20,
            "GB" => 1_000_000_000,
            "GiB" => 1 << 30,
            other => {
                return Err(ValueError::SizeUnit {
                    unit: other.to_string(),
                    text: s.to_string(),
                })
            }
        };
        n.checked_mul(mult)
            .map(ByteSize)
            .ok_or_else(|| ValueError::SizeTooLarge(s.to_string()))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 65536 or 64MiB")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("size must not be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A counting key such as `client_ip+route` (see `enforce::key`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeySpec(pub crate::key::ActorKey);

impl<'de> Deserialize<'de> for KeySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(KeySpec).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_accepts_bare_addresses_and_truncates_host_bits() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().map(|c| c.0.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert_eq!("::1".parse::<Cidr>().map(|c| c.0.to_string()), Ok("::1/128".into()));
        assert!("10.0.0.300".parse::<Cidr>().is_err());
    }

    #[test]
    fn sizes_with_units() {
        assert_eq!("64MiB".parse::<ByteSize>(), Ok(ByteSize(64 << 20)));
        assert_eq!("10".parse::<ByteSize>(), Ok(ByteSize(10)));
        assert!("10 parsecs".parse::<ByteSize>().is_err());
    }
}
