//! When a failed upstream attempt is tried again (fail_to_connect, error_while_proxy). A pure
//! decision over what is known about the failure, so the rules are tested without sockets.
//!
//! - A failed connect sent nothing: any method may go to another backend.
//! - After the request went out, only idempotent methods (RFC 9110 section 9.2.2) are sent
//!   again, only while nothing of the response has reached the client, only when the body can
//!   be replayed, and only when the connection broke (a reused keep-alive connection the origin
//!   had closed, a reset). A timeout or a malformed response is answered, not retried: the
//!   origin may still be working on the request, or will answer the same way again.
//! - Never more than `MAX_TRIES` attempts in all.

/// Attempts per request, the first included.
pub const MAX_TRIES: u8 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Connecting (or the TLS handshake) failed: nothing was sent.
    Connect,
    /// The request was (at least partly) sent.
    Proxy,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Proxy => "proxy",
        }
    }
}

/// What is known about one failed attempt.
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    pub phase: Phase,
    /// Attempts made so far, this one included.
    pub tries: u8,
    /// Backends in the pool.
    pub backends: usize,
    pub idempotent: bool,
    /// The request body (if any) is still held for a replay.
    pub replayable: bool,
    /// Part of the response has been written to the client.
    pub response_started: bool,
    /// The connection broke: closed, reset, or a reused connection that had gone stale.
    pub broken_connection: bool,
}

pub fn should_retry(f: &Failure) -> bool {
    if f.tries >= MAX_TRIES {
        return false;
    }
    match f.phase {
        Phase::Connect => f.backends > 1,
        Phase::Proxy => f.idempotent && f.replayable && !f.response_started && f.broken_connection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(phase: Phase) -> Failure {
        Failure {
            phase,
            tries: 1,
            backends: 2,
            idempotent: true,
            replayable: true,
            response_started: false,
            broken_connection: true,
        }
    }

    #[test]
    fn a_failed_connect_goes_to_another_backend_for_any_method() {
        let f = Failure {
            idempotent: false,
            ..failure(Phase::Connect)
        };
        assert!(should_retry(&f));
        assert!(!should_retry(&Failure { backends: 1, ..f }), "no other backend");
        assert!(!should_retry(&Failure { tries: 2, ..f }), "bounded");
    }

    #[test]
    fn after_sending_only_idempotent_requests_on_a_broken_connection() {
        let f = failure(Phase::Proxy);
        assert!(should_retry(&f));
        assert!(
            !should_retry(&Failure { idempotent: false, ..f }),
            "never a POST after bytes were sent"
        );
        assert!(
            !should_retry(&Failure { replayable: false, ..f }),
            "body no longer held"
        );
        assert!(
            !should_retry(&Failure {
                response_started: true,
                ..f
            }),
            "client already has part of an answer"
        );
        assert!(
            !should_retry(&Failure {
                broken_connection: false,
                ..f
            }),
            "timeouts and bad answers are answered"
        );
        assert!(!should_retry(&Failure { tries: MAX_TRIES, ..f }), "bounded");
        assert!(
            should_retry(&Failure { backends: 1, ..f }),
            "the same backend on a fresh connection"
        );
    }
}
