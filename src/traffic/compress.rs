//! Response compression per route: which responses may be compressed, which coding a client
//! gets (`Accept-Encoding` with its weights), and the encoder for one response.
//!
//! Pingora's compression module is not installed (`Palisade::init_downstream_modules`): it would
//! be built and consulted for every request of every route, and its brotli encoder ends a
//! stream with a flush rather than a last block, which strict decoders refuse. A route with
//! compression holds a `Compression`; an `Encoder` is made only for a response that is
//! compressed, so connections and routes that never compress pay nothing.

use std::io::Write;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE,
    CONTENT_TYPE, ETAG, TRANSFER_ENCODING, VARY,
};
use http::{Method, StatusCode};
use pingora::http::{RequestHeader, ResponseHeader};

use crate::config::file::{CodingSection, CompressionSection};

/// A content coding Palisade produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Br,
    Zstd,
}

impl Coding {
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

impl From<CodingSection> for Coding {
    fn from(c: CodingSection) -> Self {
        match c {
            CodingSection::Gzip => Coding::Gzip,
            CodingSection::Br => Coding::Br,
            CodingSection::Zstd => Coding::Zstd,
        }
    }
}

/// A route's compression settings, compiled.
#[derive(Debug)]
pub struct Compression {
    /// In the route's order of preference.
    codings: Vec<Coding>,
    level: u32,
    min_size: u64,
    /// Lowercase Content-Type prefixes.
    types: Vec<String>,
}

/// The encoder of one response body, streaming: each chunk gives what the coder has ready, the
/// last one ends the coded stream.
pub struct Encoder {
    sink: Option<Sink>,
}

enum Sink {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Br(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(coding: Coding, level: u32) -> std::io::Result<Encoder> {
        let sink = match coding {
            Coding::Gzip => Sink::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            )),
            // 4 KiB buffer, 2^19-byte window (what browsers and nginx's module use by default).
            Coding::Br => Sink::Br(Box::new(brotli::CompressorWriter::new(Vec::new(), 4096, level, 19))),
            Coding::Zstd => Sink::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level as i32)?),
        };
        Ok(Encoder { sink: Some(sink) })
    }

    /// Code one chunk of the body; `end` finishes the stream. A coder failure (none is expected
    /// writing to memory) ends the body there, logged.
    pub fn encode(&mut self, data: Option<&Bytes>, end: bool) -> Option<Bytes> {
        let input = data.map_or(&[][..], |b| &b[..]);
        match self.step(input, end) {
            Ok(out) => Some(Bytes::from(out)),
            Err(e) => {
                log::warn!("response compression failed, body cut short: {e}");
                self.sink = None;
                None
            }
        }
    }

    fn step(&mut self, input: &[u8], end: bool) -> std::io::Result<Vec<u8>> {
        let Some(sink) = self.sink.as_mut() else {
            return Ok(Vec::new());
        };
        match sink {
            Sink::Gzip(w) => w.write_all(input)?,
            Sink::Br(w) => w.write_all(input)?,
            Sink::Zstd(w) => w.write_all(input)?,
        }
        if !end {
            return Ok(std::mem::take(match sink {
                Sink::Gzip(w) => w.get_mut(),
                Sink::Br(w) => w.get_mut(),
                Sink::Zstd(w) => w.get_mut(),
            }));
        }
        match self.sink.take() {
            Some(Sink::Gzip(w)) => w.finish(),
            Some(Sink::Br(w)) => Ok(w.into_inner()),
            Some(Sink::Zstd(w)) => w.finish(),
            None => Ok(Vec::new()),
        }
    }
}

impl Compression {
    pub fn new(s: &CompressionSection) -> Self {
        Compression {
            codings: s.codings.iter().map(|c| Coding::from(*c)).collect(),
            level: s.level,
            min_size: s.min_size.0,
            types: s.types.iter().map(|t| t.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether this response is one the route compresses, for a client that asks: a body of a
    /// listed type, large enough, not already encoded, not a range, not marked `no-transform`.
    /// Such a response varies with `Accept-Encoding` whether or not this client gets it
    /// compressed.
    pub fn eligible(&self, method: &Method, resp: &ResponseHeader) -> bool {
        let h = &resp.headers;
        let status = resp.status;
        if *method == Method::HEAD
            || status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED | StatusCode::PARTIAL_CONTENT
            )
            || h.contains_key(CONTENT_RANGE)
        {
            return false;
        }
        if h.get(CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
        {
            return false;
        }
        if h.get_all(CACHE_CONTROL)
            .iter()
            .any(|v| contains_token(v.as_bytes(), b"no-transform"))
        {
            return false;
        }
        let typed = h.get(CONTENT_TYPE).is_some_and(|ct| {
            let ct = ct.as_bytes();
            // An event stream is read as it comes: a coder would hold it back.
            let streamed = ct.len() >= 17 && ct[..17].eq_ignore_ascii_case(b"text/event-stream");
            !streamed
                && self
                    .types
                    .iter()
                    .any(|t| ct.len() >= t.len() && ct[..t.len()].eq_ignore_ascii_case(t.as_bytes()))
        });
        let small = h
            .get(CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok()?.trim().parse::<u64>().ok())
            .is_some_and(|n| n < self.min_size);
        typed && !small
    }

    /// The coding this client gets, from its `Accept-Encoding`: the highest weight among the
    /// route's codings, ties going to the route's order; `q=0` refuses a coding, `*` stands for
    /// the codings not named. No header means no compression.
    pub fn negotiate(&self, accept: Option<&HeaderValue>) -> Option<Coding> {
        let accept = accept?.to_str().ok()?;
        let mut star: Option<u32> = None;
        let mut named: Vec<(&str, u32)> = Vec::new();
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim();
            if token.is_empty() {
                continue;
            }
            let q = parts
                .filter_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("q").then(|| qvalue(v.trim()))
                })
                .next()
                .unwrap_or(Some(1000));
            let Some(q) = q else { continue };
            if token == "*" {
                star = Some(q);
            } else {
                named.push((token, q));
            }
        }
        let weight = |c: Coding| {
            named
                .iter()
                .find(|(t, _)| t.eq_ignore_ascii_case(c.token()))
                .map(|(_, q)| *q)
                .or(star)
                .unwrap_or(0)
        };
        self.codings
            .iter()
            .map(|c| (*c, weight(*c)))
            .filter(|(_, q)| *q > 0)
            .fold(None, |best: Option<(Coding, u32)>, (c, q)| match best {
                Some((_, bq)) if bq >= q => best,
                _ => Some((c, q)),
            })
            .map(|(c, _)| c)
    }

    /// Decide for one response: mark it as varying with `Accept-Encoding` when it is eligible,
    /// and when the client accepts one of the route's codings, rewrite its head (coding,
    /// length, ETag weakened) and return the encoder for its body.
    pub fn start(&self, req: &RequestHeader, resp: &mut ResponseHeader) -> Option<Box<Encoder>> {
        if !self.eligible(&req.method, resp) {
            return None;
        }
        if !resp
            .headers
            .get_all(VARY)
            .iter()
            .any(|v| contains_token(v.as_bytes(), b"accept-encoding") || v.as_bytes() == b"*")
        {
            resp.append_header(VARY, HeaderValue::from_static("Accept-Encoding"))
                .ok()?;
        }
        let coding = self.negotiate(req.headers.get(ACCEPT_ENCODING))?;
        let encoder = Encoder::new(coding, self.level).ok()?;
        // A strong validator names exact bytes, and the coded ones differ (RFC 9110 8.8.1): it
        // is weakened; one that is not a quoted string is dropped.
        match resp.headers.get(ETAG).map(|e| e.as_bytes().to_vec()) {
            Some(e) if e.starts_with(b"W/") => {}
            Some(e) if e.starts_with(b"\"") => {
                let weak = HeaderValue::from_bytes(&[b"W/", &e[..]].concat()).ok()?;
                resp.insert_header(ETAG, weak).ok()?;
            }
            Some(_) => {
                resp.remove_header(&ETAG);
            }
            None => {}
        }
        resp.remove_header(&CONTENT_LENGTH);
        resp.remove_header(&ACCEPT_RANGES);
        resp.insert_header(CONTENT_ENCODING, coding.token()).ok()?;
        // The coded length is not known ahead (HTTP/2 drops this header and frames by itself).
        resp.insert_header(TRANSFER_ENCODING, "chunked").ok()?;
        Some(Box::new(encoder))
    }
}

/// A `qvalue` (RFC 9110 12.4.2) in thousandths; `None` when malformed.
fn qvalue(v: &str) -> Option<u32> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac = format!("{frac:0<3}").parse::<u32>().ok()?;
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a comma-separated header value lists `token` (case-insensitive).
fn contains_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|b| *b == b',').any(|t| {
        let t = t.trim_ascii();
        let t = t.split(|b| *b == b'=').next().unwrap_or(t).trim_ascii();
        t.eq_ignore_ascii_case(token)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route() -> Compression {
        Compression::new(&CompressionSection::default())
    }

    fn negotiated(accept: &str) -> Option<&'static str> {
        route()
            .negotiate(Some(&HeaderValue::from_str(accept).expect("test value")))
            .map(Coding::token)
    }

    #[test]
    fn the_client_weights_decide_and_the_route_breaks_ties() {
        assert_eq!(negotiated("gzip"), Some("gzip"));
        assert_eq!(negotiated("gzip, deflate, br"), Some("br"));
        assert_eq!(negotiated("gzip;q=1.0, br;q=0.5"), Some("gzip"));
        assert_eq!(negotiated("br;q=0, gzip"), Some("gzip"));
        assert_eq!(negotiated("gzip;q=0"), None);
        assert_eq!(negotiated("identity"), None);
        assert_eq!(negotiated("*"), Some("br"));
        assert_eq!(negotiated("*;q=0.1, zstd;q=0.5"), Some("zstd"));
        assert_eq!(negotiated("br;q=0, *"), Some("zstd"));
        assert_eq!(negotiated("GZIP ; Q=0.8"), Some("gzip"));
        assert_eq!(
            negotiated("gzip;q=2"),
            None,
            "a malformed weight is ignored with its coding"
        );
        assert_eq!(route().negotiate(None), None);
    }

    fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).expect("test value");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("test value");
        }
        r
    }

    #[test]
    fn only_whole_uncoded_responses_of_listed_types_and_size_are_eligible() {
        let z = route();
        let get = Method::GET;
        assert!(z.eligible(&get, &response(200, &[("content-type", "text/html; charset=utf-8")])));
        assert!(z.eligible(
            &get,
            &response(404, &[("content-type", "application/json"), ("content-length", "5000")])
        ));
        assert!(!z.eligible(&get, &response(200, &[("content-type", "image/png")])));
        assert!(!z.eligible(
            &get,
            &response(200, &[("content-type", "text/html"), ("content-length", "100")])
        ));
        assert!(!z.eligible(
            &get,
            &response(200, &[("content-type", "text/html"), ("content-encoding", "gzip")])
        ));
        assert!(!z.eligible(
            &get,
            &response(206, &[("content-type", "text/html"), ("content-range", "bytes 0-9/99")])
        ));
        assert!(!z.eligible(
            &get,
            &response(
                200,
                &[("content-type", "text/html"), ("cache-control", "public, no-transform")]
            )
        ));
        assert!(!z.eligible(&get, &response(304, &[("content-type", "text/html")])));
        assert!(!z.eligible(&Method::HEAD, &response(200, &[("content-type", "text/html")])));
        assert!(!z.eligible(&get, &response(200, &[])), "no type, no compression");
    }

    #[test]
    fn an_eligible_response_varies_even_for_a_client_that_gets_it_plain() {
        let z = route();
        let req = RequestHeader::build(Method::GET, b"/", None).expect("test value");
        let mut resp = response(200, &[("content-type", "text/css"), ("vary", "Origin")]);
        assert!(z.start(&req, &mut resp).is_none());
        let vary: Vec<_> = resp
            .headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().expect("test value"))
            .collect();
        assert_eq!(vary, ["Origin", "Accept-Encoding"]);
        assert!(resp.headers.get(CONTENT_ENCODING).is_none());
    }

    #[test]
    fn a_compressed_response_says_so_and_drops_its_length() {
        let z = route();
        let mut req = RequestHeader::build(Method::GET, b"/", None).expect("test value");
        req.insert_header(ACCEPT_ENCODING, "gzip").expect("test value");
        let mut resp = response(
            200,
            &[
                ("content-type", "text/plain"),
                ("content-length", "4000"),
                ("etag", "\"v1\""),
            ],
        );
        let mut enc = z.start(&req, &mut resp).expect("compressed");
        assert_eq!(resp.headers.get(CONTENT_ENCODING).expect("test value"), "gzip");
        assert!(resp.headers.get(CONTENT_LENGTH).is_none());
        assert_eq!(resp.headers.get("etag").expect("test value"), "W/\"v1\"");
        let body = bytes::Bytes::from(vec![b'a'; 4000]);
        let mut out = enc.encode(Some(&body), false).unwrap_or_default().to_vec();
        out.extend_from_slice(&enc.encode(None, true).unwrap_or_default());
        assert!(out.len() < 200, "4000 repeated bytes compress well: {}", out.len());
        assert_eq!(&out[..2], &[0x1f, 0x8b], "a gzip member");
    }
}
