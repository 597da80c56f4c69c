//! `GET /api/decisions/stream`: server-sent events, one `decision` event per non-allow
//! decision, written as a chunked response for as long as the client stays. A client that
//! falls `STREAM_QUEUE` events behind gets a last `dropped` event and the stream ends; the
//! proxy never waits for it (telemetry/feed.rs).

use std::time::Duration;

use bytes::Bytes;
use http::header;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora_http::ResponseHeader;

use crate::telemetry::feed::{FeedEvent, Subscription};

/// A comment line sent this often keeps idle proxies from closing the stream, and tells the
/// server when the client has gone.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// One event in the `text/event-stream` format: the request id as the event id.
pub fn encode(ev: &FeedEvent) -> String {
    let data = serde_json::to_string(ev).unwrap_or_else(|_| "{}".into());
    // Request ids are plain (request_id.rs); the JSON has no raw newline.
    format!("id: {}\nevent: decision\ndata: {data}\n\n", ev.request_id)
}

async fn send(session: &mut ServerSession, text: String) -> bool {
    session.write_response_body(Bytes::from(text), false).await.is_ok()
}

pub(super) async fn serve(session: &mut ServerSession, mut sub: Subscription, mut shutdown: ShutdownWatch) {
    let head = ResponseHeader::build(200, None).and_then(|mut h| {
        h.insert_header(header::CONTENT_TYPE, "text/event-stream")?;
        h.insert_header(header::CACHE_CONTROL, "no-store")?;
        h.insert_header(header::TRANSFER_ENCODING, "chunked")?;
        h.insert_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")?;
        Ok(h)
    });
    let Ok(head) = head else { return };
    if session.write_response_header(Box::new(head)).await.is_err() {
        return;
    }
    // The first chunk flushes the header: the client knows at once that it is subscribed.
    if !send(session, ": subscribed\nretry: 2000\n\n".into()).await {
        return;
    }
    loop {
        let text = tokio::select! {
            _ = shutdown.changed() => break,
            ev = sub.rx.recv() => match ev {
                Some(ev) if !sub.dropped() => encode(&ev),
                _ => break,
            },
            _ = tokio::time::sleep(HEARTBEAT) => ": keepalive\n\n".to_string(),
        };
        if sub.dropped() || !send(session, text).await {
            break;
        }
    }
    if sub.dropped() {
        log::warn!("admin: a decision stream client fell behind and was dropped");
        let _ = send(
            session,
            "event: dropped\ndata: {\"reason\":\"the client fell behind the feed\"}\n\n".into(),
        )
        .await;
    }
    let _ = session.write_response_body(Bytes::new(), true).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_one_sse_record_each() {
        let ev = FeedEvent {
            time_ms: 1,
            request_id: "abc123".into(),
            client_ip: "192.0.2.1".parse().ok(),
            identity: None,
            method: "GET".into(),
            host: "h".into(),
            path: "/a\nb".into(),
            route: Some("app".into()),
            status: 403,
            decision: "block",
            rule: Some("r1".into()),
        };
        let text = encode(&ev);
        assert!(text.starts_with("id: abc123\nevent: decision\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"));
        assert_eq!(
            text.matches('\n').count(),
            4,
            "the path's newline is escaped in the JSON"
        );
    }
}
