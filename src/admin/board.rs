//! The offender board behind `GET /api/offenders`: per actor (address and identity
//! pseudonym), how many requests were refused in each 10-second bucket of the last hour and the
//! rules that refused them. Fed from the decision feed by a background service, off the request
//! path; the request side only offers events to its queue (telemetry/feed.rs).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::telemetry::feed::{DecisionFeed, FeedEvent};

/// Width of one bucket, in milliseconds.
pub const BUCKET_MS: u64 = 10_000;
/// The longest window the board answers for, in milliseconds (one hour).
pub const MAX_WINDOW_MS: u64 = 3_600_000;
/// Rules remembered per actor, most recent last.
const RULES_KEPT: usize = 5;
/// Actors tracked; past this the least recently seen is forgotten.
pub const MAX_ACTORS: usize = 10_000;

#[derive(Debug, Default, Clone)]
pub struct Activity {
    /// (bucket number, refusals in it), oldest first; only buckets with refusals.
    buckets: VecDeque<(u64, u32)>,
    pub last_rules: Vec<Arc<str>>,
    pub last_seen_ms: u64,
    pub last_request_id: String,
}

impl Activity {
    fn add(&mut self, ev: &FeedEvent) {
        let bucket = ev.time_ms / BUCKET_MS;
        match self.buckets.back_mut() {
            Some((b, n)) if *b == bucket => *n += 1,
            _ => self.buckets.push_back((bucket, 1)),
        }
        let oldest = bucket.saturating_sub(MAX_WINDOW_MS / BUCKET_MS);
        while self.buckets.front().is_some_and(|(b, _)| *b < oldest) {
            self.buckets.pop_front();
        }
        if let Some(rule) = &ev.rule {
            if self.last_rules.last().map(|r| &**r) != Some(rule.as_str()) {
                self.last_rules.retain(|r| **r != **rule);
                self.last_rules.push(Arc::from(rule.as_str()));
                if self.last_rules.len() > RULES_KEPT {
                    self.last_rules.remove(0);
                }
            }
        }
        self.last_seen_ms = self.last_seen_ms.max(ev.time_ms);
        self.last_request_id.clone_from(&ev.request_id);
    }

    /// Refusals in the `window_ms` before `now_ms`, counted by whole buckets.
    pub fn refusals(&self, now_ms: u64, window_ms: u64) -> u64 {
        let first = now_ms.saturating_sub(window_ms) / BUCKET_MS;
        self.buckets
            .iter()
            .filter(|(b, _)| *b >= first)
            .map(|(_, n)| u64::from(*n))
            .sum()
    }
}

/// Actors as the admin API shows them (`Actor` text), with their recent refusals.
#[derive(Default)]
pub struct OffenderBoard {
    actors: Mutex<HashMap<String, Activity>>,
}

impl OffenderBoard {
    pub fn record(&self, ev: &FeedEvent) {
        let mut actors = self.actors.lock().unwrap_or_else(|e| e.into_inner());
        let keys = ev
            .client_ip
            .map(|ip| ip.to_string())
            .into_iter()
            .chain(ev.identity.clone());
        for key in keys {
            actors.entry(key).or_default().add(ev);
        }
        if actors.len() > MAX_ACTORS {
            if let Some(oldest) = actors
                .iter()
                .min_by_key(|(_, a)| a.last_seen_ms)
                .map(|(k, _)| k.clone())
            {
                actors.remove(&oldest);
            }
        }
    }

    /// Actors with refusals in the window, and their activity.
    pub fn active(&self, now_ms: u64, window_ms: u64) -> Vec<(String, Activity)> {
        let since = now_ms.saturating_sub(window_ms);
        self.actors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, a)| a.last_seen_ms >= since)
            .map(|(k, a)| (k.clone(), a.clone()))
            .collect()
    }

    pub fn get(&self, actor: &str) -> Option<Activity> {
        self.actors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(actor)
            .cloned()
    }
}

/// Drains the board's queue of the decision feed.
pub struct BoardFeeder {
    pub feed: Arc<DecisionFeed>,
    pub board: Arc<OffenderBoard>,
}

#[async_trait]
impl BackgroundService for BoardFeeder {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut sub = self.feed.subscribe_board();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                ev = sub.rx.recv() => match ev {
                    Some(ev) => self.board.record(&ev),
                    None => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, ip: &str, id: Option<&str>, rule: &str) -> FeedEvent {
        FeedEvent {
            time_ms: t,
            request_id: format!("req-{t}"),
            client_ip: ip.parse().ok(),
            identity: id.map(str::to_string),
            method: "GET".into(),
            host: "h".into(),
            path: "/".into(),
            route: None,
            status: 403,
            decision: "block",
            rule: Some(rule.into()),
        }
    }

    #[test]
    fn refusals_are_counted_per_actor_and_window() {
        let b = OffenderBoard::default();
        let t0 = 1_000_000_000;
        b.record(&ev(t0, "192.0.2.1", Some("id:hmac:aa"), "scanner"));
        b.record(&ev(t0 + 1, "192.0.2.1", None, "login-flood"));
        b.record(&ev(t0 + 20 * 60_000, "192.0.2.1", None, "scanner"));
        let now = t0 + 20 * 60_000 + 5;
        let a = b.get("192.0.2.1").expect("tracked");
        assert_eq!(a.refusals(now, 60_000), 1, "the last minute");
        assert_eq!(a.refusals(now, MAX_WINDOW_MS), 3, "the last hour");
        let rules: Vec<&str> = a.last_rules.iter().map(|r| &**r).collect();
        assert_eq!(rules, ["login-flood", "scanner"], "most recent last, once each");
        assert_eq!(a.last_request_id, format!("req-{}", t0 + 20 * 60_000));
        assert_eq!(b.get("id:hmac:aa").expect("identity").refusals(now, MAX_WINDOW_MS), 1);
        assert_eq!(
            b.active(now, 60_000).len(),
            1,
            "the identity was not seen in the last minute"
        );
    }
}
