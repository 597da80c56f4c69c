//! The metrics listener: Prometheus text exposition of the default registry on `/metrics`
//! (any other path gets 404). Runs as its own Pingora service, off the proxy's listeners.

use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, TextEncoder};

pub struct MetricsApp;

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        let (status, ctype, body) = if path == "/metrics" {
            let mut buf = Vec::new();
            match TextEncoder::new().encode(&prometheus::gather(), &mut buf) {
                Ok(()) => (StatusCode::OK, "text/plain; version=0.0.4", buf),
                Err(e) => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    e.to_string().into_bytes(),
                ),
            }
        } else {
            (
                StatusCode::NOT_FOUND,
                "text/plain",
                b"metrics are served on /metrics\n".to_vec(),
            )
        };
        let len = body.len();
        Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, ctype)
            .header(http::header::CONTENT_LENGTH, len)
            .body(body)
            .unwrap_or_else(|_| Response::new(Vec::new()))
    }
}
