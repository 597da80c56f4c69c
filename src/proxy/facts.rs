//! Who is asking: the client address behind trusted proxies, and the request id
//! (request_filter). Pure functions over header bytes, so they are tested without sockets.

use std::net::IpAddr;

use crate::policy::ip::{IpSet, Ipv4Text};

/// The client address. The socket peer, unless the peer is a trusted proxy: then the
/// right-most address of `X-Forwarded-For` (or, without it, `Forwarded: for=`) that is not
/// itself a trusted proxy. An unparsable hop stops the walk at the last good address, since
/// nothing left of it can be believed.
pub fn client_ip<'a>(
    peer: IpAddr,
    trusted: &IpSet,
    xff: impl DoubleEndedIterator<Item = &'a [u8]>,
    forwarded: impl DoubleEndedIterator<Item = &'a [u8]>,
) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut hops: Vec<&str> = Vec::new();
    for h in xff {
        hops.extend(std::str::from_utf8(h).unwrap_or("?").split(','));
    }
    let from_forwarded;
    if hops.is_empty() {
        from_forwarded = forwarded
            .flat_map(|h| std::str::from_utf8(h).unwrap_or("for=?").split(','))
            .filter_map(forwarded_for)
            .collect::<Vec<_>>();
        hops.extend(from_forwarded.iter().copied());
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    client
}

/// The `for=` value of one `Forwarded` element.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
    })
}

/// An address from a forwarding header: `1.2.3.4`, `1.2.3.4:80`, `[v6]:80`, `"[v6]"`, `v6`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let h = hop.trim().trim_matches('"');
    if let Ok(ip) = h.parse() {
        return Some(ip);
    }
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (addr, port) = h.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    addr.parse().ok()
}

/// The path as an origin would act on it, for routing and policy: percent-escapes decoded
/// once, backslashes read as slashes, repeated slashes collapsed and `.`/`..` segments
/// resolved. Without any of those the path is borrowed as is (the common case costs a scan).
pub fn normalize_path(raw: &str) -> std::borrow::Cow<'_, str> {
    let b = raw.as_bytes();
    let plain = !b.contains(&b'%') && !b.contains(&b'\\') && !b.windows(2).any(|w| w == b"//" || w == b"/.");
    if plain {
        return std::borrow::Cow::Borrowed(raw);
    }
    let decoded = percent_decode(b);
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut out: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = text.ends_with('/') || text.ends_with("/.") || text.ends_with("/..");
    let mut path = String::with_capacity(text.len());
    for seg in &out {
        path.push('/');
        path.push_str(seg);
    }
    if trailing || path.is_empty() {
        path.push('/');
    }
    std::borrow::Cow::Owned(path)
}

/// A decoded path written back as a request target: every byte outside RFC 3986's `pchar`
/// and `/` (space, `%`, `?`, `#`, controls, non-ASCII) is percent-encoded.
pub fn encode_path(path: &str) -> String {
    encode_except(path, b"-._~!$&'()*+,;=:@/")
}

/// A query written by a rewrite, as a request target's query: like `encode_path`, with `?`
/// also kept.
pub fn encode_query(query: &str) -> String {
    encode_except(query, b"-._~!$&'()*+,;=:@/?")
}

fn encode_except(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        let plain = b.is_ascii_alphanumeric() || keep.contains(&b);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decode `%XX` escapes once; malformed escapes stay as written.
pub fn percent_decode(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

pub use crate::request_id::{acceptable_request_id, new_request_id, RequestId, MAX_REQUEST_ID_LEN};

/// An address as a header value (`X-Forwarded-For`); IPv4, nearly every client, without
/// `core::fmt`.
pub fn ip_header_value(ip: IpAddr) -> http::HeaderValue {
    match ip {
        IpAddr::V4(v4) => http::HeaderValue::from_bytes(Ipv4Text::new(v4).as_bytes()),
        IpAddr::V6(_) => http::HeaderValue::try_from(ip.to_string()),
    }
    .expect("an address is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn trusted() -> IpSet {
        IpSet::new(["10.0.0.0/8".parse::<IpNet>().expect("cidr")])
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }
    fn resolve(peer: &str, xff: &[&str], fwd: &[&str]) -> IpAddr {
        client_ip(
            ip(peer),
            &trusted(),
            xff.iter().map(|s| s.as_bytes()),
            fwd.iter().map(|s| s.as_bytes()),
        )
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_claims() {
        assert_eq!(resolve("198.51.100.1", &["1.1.1.1"], &[]), ip("198.51.100.1"));
    }

    #[test]
    fn rightmost_untrusted_hop_behind_trusted_proxies() {
        // The client may forge the left part; only hops appended by our proxies count.
        assert_eq!(
            resolve("10.0.0.1", &["6.6.6.6, 203.0.113.5, 10.1.1.1"], &[]),
            ip("203.0.113.5")
        );
        assert_eq!(
            resolve("10.0.0.1", &["6.6.6.6", "203.0.113.5:4711"], &[]),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn forwarded_header_when_no_xff() {
        let fwd = ["for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\""];
        assert_eq!(resolve("10.0.0.1", &[], &fwd), ip("2001:db8:cafe::17"));
    }

    #[test]
    fn garbage_hop_stops_the_walk() {
        assert_eq!(
            resolve("10.0.0.1", &["203.0.113.5, not-an-ip, 10.2.2.2"], &[]),
            ip("10.2.2.2")
        );
        assert_eq!(resolve("10.0.0.1", &[], &[]), ip("10.0.0.1"));
    }

    #[test]
    fn paths_normalize_the_way_origins_read_them() {
        for (raw, want) in [
            ("/plain/path", "/plain/path"),
            ("/%2egit/config", "/.git/config"),
            ("/a/../.git/config", "/.git/config"),
            ("//admin//panel", "/admin/panel"),
            ("/x/./y/", "/x/y/"),
            ("/..", "/"),
            ("/a\\..\\.env", "/.env"),
            ("/%41%zz%4", "/A%zz%4"),
            ("/%252e", "/%2e"),
        ] {
            assert_eq!(normalize_path(raw), want, "{raw}");
        }
    }

    #[test]
    fn request_ids() {
        assert!(acceptable_request_id(b"abc-123_x.y:z"));
        assert!(!acceptable_request_id(b"a b"));
        assert!(!acceptable_request_id(&[b'a'; 129]));
        for addr in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "192.0.2.1",
            "2001:db8::1",
            "::ffff:10.0.0.1",
        ] {
            let ip: IpAddr = addr.parse().expect("ip");
            assert_eq!(ip_header_value(ip).to_str().expect("ascii"), ip.to_string());
        }
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, new_request_id());
        let value = id.header_value().expect("hex is a header value");
        assert_eq!(value.as_bytes(), id.as_bytes());
        assert_eq!(id.to_string(), &*id);
        assert_eq!(RequestId::from("abc").as_str(), "abc");
        assert!(RequestId::from("a\nb").header_value().is_err());
    }

    #[test]
    fn an_encoded_path_reads_back_as_the_same_path() {
        for p in [
            "/plain/path",
            "/with space",
            "/100%",
            "/q?x#y",
            "/caf\u{e9}",
            "/a:b@c;d=e",
        ] {
            let enc = encode_path(p);
            assert!(enc.parse::<http::Uri>().is_ok(), "{enc}");
            assert_eq!(
                String::from_utf8(percent_decode(enc.as_bytes())).expect("test value"),
                p
            );
        }
        assert_eq!(encode_path("/a b/%"), "/a%20b/%25");
    }
}
