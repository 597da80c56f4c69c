//! What an error that ended proxying means for the client (fail_to_proxy): the status of the
//! answer, and the outcome recorded. A pure function of Pingora's error type and source.

use pingora::{ErrorSource, ErrorType};

use super::limits::BODY_TOO_SLOW;
use super::outcome::Outcome;

/// The answer to a failed request: `status` 0 means none can be given (the client is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub status: u16,
    pub outcome: Outcome,
}

/// Map an error to its answer. Timeouts talking to the origin are 504, other origin failures
/// 502; a body read timing out is the minimum body rate (408); a client that went away gets
/// nothing; a status a phase chose (`HTTPStatus`) is kept.
pub fn classify(etype: &ErrorType, source: &ErrorSource) -> Failure {
    let upstream = *source == ErrorSource::Upstream;
    let status = match etype {
        ErrorType::HTTPStatus(c) => *c,
        ErrorType::ConnectTimedout
        | ErrorType::ReadTimedout
        | ErrorType::WriteTimedout
        | ErrorType::TLSHandshakeTimedout
            if upstream =>
        {
            504
        }
        _ => match source {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match etype {
                ErrorType::ReadTimedout => 408,
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    };
    let outcome = match status {
        504 => Outcome::UpstreamTimeout,
        408 => Outcome::Refused(BODY_TOO_SLOW),
        0 => Outcome::ClientGone,
        400 => Outcome::BadRequest,
        500 => Outcome::InternalError,
        _ => Outcome::UpstreamError,
    };
    Failure { status, outcome }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_failures_are_502_and_its_timeouts_504() {
        let up = ErrorSource::Upstream;
        for t in [
            ErrorType::ConnectTimedout,
            ErrorType::ReadTimedout,
            ErrorType::WriteTimedout,
        ] {
            assert_eq!(
                classify(&t, &up),
                Failure {
                    status: 504,
                    outcome: Outcome::UpstreamTimeout
                }
            );
        }
        for t in [
            ErrorType::ConnectRefused,
            ErrorType::ConnectionClosed,
            ErrorType::InvalidHTTPHeader,
        ] {
            assert_eq!(
                classify(&t, &up),
                Failure {
                    status: 502,
                    outcome: Outcome::UpstreamError
                }
            );
        }
    }

    #[test]
    fn client_failures_are_408_400_or_no_answer() {
        let down = ErrorSource::Downstream;
        assert_eq!(classify(&ErrorType::ReadTimedout, &down).status, 408);
        assert_eq!(
            classify(&ErrorType::ReadTimedout, &down).outcome.label(),
            "body_too_slow"
        );
        for t in [ErrorType::ReadError, ErrorType::WriteError, ErrorType::ConnectionClosed] {
            assert_eq!(
                classify(&t, &down),
                Failure {
                    status: 0,
                    outcome: Outcome::ClientGone
                }
            );
        }
        assert_eq!(classify(&ErrorType::InvalidHTTPHeader, &down).status, 400);
    }

    #[test]
    fn a_chosen_status_is_kept_and_internal_errors_are_500() {
        let s = classify(&ErrorType::HTTPStatus(503), &ErrorSource::Internal);
        assert_eq!(
            s,
            Failure {
                status: 503,
                outcome: Outcome::UpstreamError
            }
        );
        let s = classify(&ErrorType::HTTPStatus(413), &ErrorSource::Downstream);
        assert_eq!(s.status, 413);
        assert_eq!(classify(&ErrorType::InternalError, &ErrorSource::Internal).status, 500);
        assert_eq!(classify(&ErrorType::ReadTimedout, &ErrorSource::Unset).status, 500);
    }
}
