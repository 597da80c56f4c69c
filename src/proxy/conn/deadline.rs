//! The head deadline of one connection (accept and header read, up to request_filter): a clock
//! that says by when the request head being read must be complete, moved through each request
//! by request_filter (`started`) and logging (`finished`). Pure; `GuardedStream` acts on it.
//!
//! Pingora times header reads out per `read()` only, so a client that sends one byte every few
//! seconds (slowloris) would hold a connection forever.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

/// Label of connections closed because their request head did not arrive in time.
pub const HEADER_TIMEOUT: &str = "header_timeout";

const READING: u8 = 0;
const BUSY: u8 = 1;
const IDLE: u8 = 2;
const OFF: u8 = 3;

/// Where a connection stands between requests, and the deadline of the head being read.
///
/// `Reading` (from accept, or from the first byte after a response): the head must be complete
/// by the deadline. `Busy` (request_filter ran): body and response have their own timeouts.
/// `Idle` (after logging): waiting for a next request, under the keep-alive timeout; the first
/// byte starts a new deadline. Atomics, because the proxy phases reach it by shared reference.
#[derive(Debug)]
pub struct HeaderClock {
    phase: AtomicU8,
    /// Milliseconds since `epoch` by which the head must be complete, while `Reading`.
    deadline_ms: AtomicU64,
    timeout_ms: u64,
}

impl HeaderClock {
    /// A clock for a connection accepted at `now_ms`, or one that never expires (`None`).
    pub fn new(timeout: Option<Duration>, now_ms: u64) -> HeaderClock {
        let timeout_ms = timeout.map_or(0, |t| t.as_millis() as u64);
        HeaderClock {
            phase: AtomicU8::new(if timeout.is_some() { READING } else { OFF }),
            deadline_ms: AtomicU64::new(now_ms.saturating_add(timeout_ms)),
            timeout_ms,
        }
    }

    /// Bytes arrived at `now_ms`: the first ones after a response start a new deadline.
    pub fn on_bytes(&self, now_ms: u64) {
        if self
            .phase
            .compare_exchange(IDLE, READING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.deadline_ms
                .store(now_ms.saturating_add(self.timeout_ms), Ordering::Release);
        }
    }

    /// The head is complete (request_filter).
    pub fn started(&self) {
        let _ = self
            .phase
            .compare_exchange(READING, BUSY, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The response is done (logging); the connection may wait for another request.
    pub fn finished(&self) {
        let _ = self
            .phase
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The deadline of the head being read, if one is being read.
    pub fn deadline_ms(&self) -> Option<u64> {
        (self.phase.load(Ordering::Acquire) == READING).then(|| self.deadline_ms.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn a_new_connection_must_send_its_head_in_time() {
        let c = HeaderClock::new(Some(T), 1_000);
        assert_eq!(c.deadline_ms(), Some(11_000));
        // Trickling bytes does not move the deadline.
        c.on_bytes(5_000);
        c.on_bytes(10_999);
        assert_eq!(c.deadline_ms(), Some(11_000));
    }

    #[test]
    fn the_deadline_is_off_while_a_request_runs_and_restarts_with_the_next_head() {
        let c = HeaderClock::new(Some(T), 0);
        c.started();
        assert_eq!(c.deadline_ms(), None, "body and response have their own timeouts");
        c.on_bytes(50_000);
        assert_eq!(c.deadline_ms(), None, "body bytes do not start a header deadline");
        c.finished();
        assert_eq!(
            c.deadline_ms(),
            None,
            "an idle keep-alive connection has the keep-alive timeout"
        );
        c.on_bytes(90_000);
        assert_eq!(c.deadline_ms(), Some(100_000));
        c.on_bytes(95_000);
        assert_eq!(c.deadline_ms(), Some(100_000));
    }

    #[test]
    fn a_clock_without_timeout_never_expires() {
        let c = HeaderClock::new(None, 0);
        c.on_bytes(1);
        c.finished();
        c.on_bytes(2);
        assert_eq!(c.deadline_ms(), None);
    }
}
