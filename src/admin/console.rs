//! The security console: one page, its script and its style, embedded in the binary. No CDN,
//! no build step. The page is sent with a strict Content-Security-Policy: only its own script
//! and style run, it may only talk to this listener, and no other site may frame it.

use http::{header, Response, StatusCode};

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The console page's Content-Security-Policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                       img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A static asset with the console's security headers.
pub(super) fn asset(body: &str, content_type: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, body.len())
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
        .body(body.as_bytes().to_vec())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

pub(super) fn page() -> Response<Vec<u8>> {
    asset(PAGE, "text/html; charset=utf-8")
}

pub(super) fn script() -> Response<Vec<u8>> {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(super) fn style() -> Response<Vec<u8>> {
    asset(STYLE, "text/css; charset=utf-8")
}
