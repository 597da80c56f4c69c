//! The live decision feed (logging phase → admin listener): every non-allow decision is offered
//! to the console's consumers, the `/api/decisions/stream` clients and the offender board.
//!
//! The request side only ever does a non-blocking `try_send` into each consumer's bounded
//! queue, and builds the event only when someone is listening. A stream client whose queue is
//! full is dropped (its stream ends) and counted in `palisade_decision_stream_dropped_total`;
//! the board is never dropped, a full board queue loses the event and counts it in
//! `palisade_offender_board_lost_total`. Traffic never waits for the console.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::metrics::METRICS;

/// Events a stream client may fall behind by before it is dropped.
pub const STREAM_QUEUE: usize = 256;
/// Events the offender board may fall behind by before events are lost.
pub const BOARD_QUEUE: usize = 8192;

/// One non-allow decision, as the console sees it. Identities are pseudonyms; the query
/// string is left out (it may carry credentials).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FeedEvent {
    /// Wall-clock milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub request_id: String,
    pub client_ip: Option<IpAddr>,
    /// `id:hmac:…` when the ban policy names an identity and the request carried one.
    pub identity: Option<String>,
    pub method: String,
    pub host: String,
    pub path: String,
    pub route: Option<String>,
    pub status: u16,
    /// `block`, `throttle`, `tarpit`, or `would_…` in monitor mode.
    pub decision: &'static str,
    /// The rule, limit or penalty that decided (`ban`, `probation` for standing penalties).
    pub rule: Option<String>,
}

struct Consumer {
    tx: mpsc::Sender<Arc<FeedEvent>>,
    dropped: Arc<AtomicBool>,
    /// The board: never dropped, loses events instead.
    keep: bool,
}

/// The consumers of the decision feed. One per process, shared by the proxy services and the
/// admin listener.
pub struct DecisionFeed {
    consumers: ArcSwap<Vec<Arc<Consumer>>>,
    writer: Mutex<()>,
}

impl Default for DecisionFeed {
    fn default() -> Self {
        DecisionFeed {
            consumers: ArcSwap::from_pointee(Vec::new()),
            writer: Mutex::new(()),
        }
    }
}

/// A consumer's end of the feed; leaving it removes the consumer.
pub struct Subscription {
    pub rx: mpsc::Receiver<Arc<FeedEvent>>,
    dropped: Arc<AtomicBool>,
    feed: Arc<DecisionFeed>,
    board: bool,
}

impl Subscription {
    /// True once the feed gave up on this consumer for falling behind.
    pub fn dropped(&self) -> bool {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let me = self.dropped.clone();
        self.feed.change(|c| c.retain(|x| !Arc::ptr_eq(&x.dropped, &me)));
        if !self.board {
            METRICS.decision_stream_clients.dec();
        }
    }
}

impl DecisionFeed {
    /// A stream client: dropped when `STREAM_QUEUE` events behind.
    pub fn subscribe(self: &Arc<Self>) -> Subscription {
        METRICS.decision_stream_clients.inc();
        self.add(STREAM_QUEUE, false)
    }

    /// The offender board: never dropped.
    pub fn subscribe_board(self: &Arc<Self>) -> Subscription {
        self.add(BOARD_QUEUE, true)
    }

    fn add(self: &Arc<Self>, capacity: usize, keep: bool) -> Subscription {
        let (tx, rx) = mpsc::channel(capacity);
        let dropped = Arc::new(AtomicBool::new(false));
        let consumer = Arc::new(Consumer {
            tx,
            dropped: dropped.clone(),
            keep,
        });
        self.change(|c| c.push(consumer));
        Subscription {
            rx,
            dropped,
            feed: self.clone(),
            board: keep,
        }
    }

    fn change(&self, f: impl FnOnce(&mut Vec<Arc<Consumer>>)) {
        let _guard = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = Vec::clone(&self.consumers.load());
        f(&mut next);
        self.consumers.store(Arc::new(next));
    }

    /// True when someone listens; the request side builds an event only then.
    pub fn wanted(&self) -> bool {
        !self.consumers.load().is_empty()
    }

    /// Offer an event to every consumer without waiting.
    pub fn publish(&self, event: FeedEvent) {
        let consumers = self.consumers.load();
        let event = Arc::new(event);
        for c in consumers.iter() {
            if c.dropped.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(TrySendError::Full(_)) = c.tx.try_send(event.clone()) {
                if c.keep {
                    METRICS.offender_board_lost.inc();
                } else if !c.dropped.swap(true, Ordering::Relaxed) {
                    METRICS.decision_stream_dropped.inc();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> FeedEvent {
        FeedEvent {
            time_ms: n,
            request_id: format!("r{n}"),
            client_ip: "192.0.2.1".parse().ok(),
            identity: None,
            method: "GET".into(),
            host: "example.test".into(),
            path: "/".into(),
            route: None,
            status: 403,
            decision: "block",
            rule: Some("r".into()),
        }
    }

    #[test]
    fn a_slow_stream_client_is_dropped_and_counted_the_board_is_kept() {
        let feed = Arc::new(DecisionFeed::default());
        let dropped_before = METRICS.decision_stream_dropped.get();
        let lost_before = METRICS.offender_board_lost.get();
        let mut fast = feed.subscribe();
        let slow = feed.subscribe();
        let mut board = feed.subscribe_board();
        assert!(feed.wanted());
        for n in 0..STREAM_QUEUE as u64 + 5 {
            feed.publish(event(n));
            // The fast client keeps up.
            assert_eq!(fast.rx.try_recv().expect("event").time_ms, n);
        }
        assert!(slow.dropped(), "the slow client is dropped");
        assert!(!fast.dropped());
        assert_eq!(METRICS.decision_stream_dropped.get() - dropped_before, 1);
        // The board lost nothing: its queue is larger.
        let mut got = 0;
        while board.rx.try_recv().is_ok() {
            got += 1;
        }
        assert_eq!(got, STREAM_QUEUE + 5);
        assert_eq!(METRICS.offender_board_lost.get(), lost_before);
        drop(slow);
        drop(fast);
        drop(board);
        assert!(!feed.wanted(), "leaving removes the consumer");
    }
}
