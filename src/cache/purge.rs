//! `POST /api/api/cache/purge` on the admin listener (behind its bearer token): remove cached responses
//! by exact key or by key prefix. Body: `{"key": "HOST/TARGET"}` or `{"prefix": "HOST/PATH"}`,
//! keys spelled as the cache makes them (normalised host, then the target as the client sent it).

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    key: Option<String>,
    prefix: Option<String>,
}

/// Answer one purge call (the admin router has checked the token and read the body).
pub fn answer(body: &[u8]) -> Response<Vec<u8>> {
    let (text, status) = decide(body);
    crate::admin::reply(status, text)
}

/// The purge itself, on the process-wide store.
fn decide(body: &[u8]) -> (serde_json::Value, StatusCode) {
    let usage = "give {\"key\": \"HOST/TARGET\"} or {\"prefix\": \"HOST/PATH\"}";
    let req: PurgeRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return (json!({"error": format!("{e}; {usage}")}), StatusCode::BAD_REQUEST),
    };
    let store = super::store();
    let (purged, what) = match (&req.key, &req.prefix) {
        (Some(k), None) if !k.is_empty() => (store.purge_key(k), json!({"key": k})),
        (None, Some(p)) if !p.is_empty() => (store.purge_prefix(p), json!({"prefix": p})),
        _ => return (json!({"error": usage}), StatusCode::BAD_REQUEST),
    };
    log::warn!("admin: purged {} cached responses ({what})", purged.entries);
    (
        json!({"purged": purged.entries, "bytes": purged.bytes, "target": what}),
        StatusCode::OK,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bodies_are_told_what_to_send() {
        for body in [
            &b""[..],
            b"{}",
            b"{\"key\":\"\"}",
            b"{\"key\":\"a\",\"prefix\":\"b\"}",
            b"{\"url\":\"a\"}",
        ] {
            let (text, status) = decide(body);
            assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
            assert!(text["error"].as_str().is_some_and(|e| e.contains("prefix")), "{text}");
        }
        let (text, status) = decide(b"{\"prefix\":\"nothing.test/\"}");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text["purged"], 0);
    }
}
