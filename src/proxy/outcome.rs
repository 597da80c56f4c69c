//! Why Palisade answered a request itself or could not complete it, for telemetry
//! (`event.reason`) and metric labels. Set once per request, by `respond` or `failure`.

use super::framing::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The head or body broke a framing rule or a size/rate limit.
    Refused(Refusal),
    NoRoute,
    NoHealthyBackend,
    UpstreamTimeout,
    UpstreamError,
    /// The client went away before the answer was written.
    ClientGone,
    BadRequest,
    InternalError,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Refused(r) => r.reason,
            Outcome::NoRoute => "no_route",
            Outcome::NoHealthyBackend => "no_healthy_backend",
            Outcome::UpstreamTimeout => "upstream_timeout",
            Outcome::UpstreamError => "upstream_error",
            Outcome::ClientGone => "client_gone",
            Outcome::BadRequest => "bad_request",
            Outcome::InternalError => "internal_error",
        }
    }
}
