//! What the fleet looks like (operator view): each instance's heartbeat in the instances
//! bucket, this instance's own sync state for `GET /api/fleet`, and `palisade fleet status`.

use std::sync::Mutex;

use once_cell::sync::Lazy;
use serde::{Deserialize, Serialize};

use crate::enforce::offenders::{now_ms, Millis};

/// One instance as it last wrote itself to the instances bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub instance: String,
    pub version: String,
    /// When this heartbeat was written.
    pub at: Millis,
    /// Connected to the bus and reading the ban bucket.
    pub connected: bool,
    /// Last time the instance was in step with the bucket (its watch caught up, or an update
    /// arrived); 0: never.
    pub last_sync: Millis,
    /// Propagation lag of the latest update it received from another instance, in ms.
    pub lag_ms: Option<u64>,
    /// Bans in force in its view of the fleet's ban set.
    pub fleet_bans: usize,
    /// Bans in force in its offender state (fleet bans and its own).
    pub local_bans: usize,
    pub received: u64,
    pub applied: u64,
    pub published: u64,
    pub dropped: u64,
    pub reconciliations: u64,
}

/// This process's view: its own state and the heartbeats it last read.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub enabled: bool,
    pub me: Heartbeat,
    pub peers: Vec<Heartbeat>,
}

pub static VIEW: Lazy<Mutex<View>> = Lazy::new(|| Mutex::new(View::default()));

pub fn view() -> View {
    VIEW.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

pub fn update(f: impl FnOnce(&mut View)) {
    f(&mut VIEW.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The body of `GET /api/fleet` on the admin listener.
pub fn admin_view() -> serde_json::Value {
    let v = view();
    if !v.enabled {
        return serde_json::json!({"fleet": false});
    }
    serde_json::json!({
        "fleet": true,
        "instance": v.me.instance,
        "self": v.me,
        "instances": v.peers,
        "now": now_ms(),
    })
}

/// `palisade fleet status` as text: one line per instance.
pub fn render(heartbeats: &[Heartbeat], bucket_bans: usize, now: Millis) -> String {
    let mut out = format!(
        "{:<20} {:>9} {:>10} {:>8} {:>10} {:>10} {:>9} {:>9} {:>8}\n",
        "INSTANCE", "BUS", "HEARTBEAT", "SYNCED", "LAG", "FLEET_BANS", "RECEIVED", "APPLIED", "DROPPED"
    );
    let ago = |t: Millis| {
        if t == 0 {
            "never".to_string()
        } else {
            format!("{:.1}s ago", now.saturating_sub(t) as f64 / 1000.0)
        }
    };
    for h in heartbeats {
        out.push_str(&format!(
            "{:<20} {:>9} {:>10} {:>8} {:>10} {:>10} {:>9} {:>9} {:>8}\n",
            h.instance,
            if h.connected { "connected" } else { "away" },
            ago(h.at),
            ago(h.last_sync),
            h.lag_ms.map_or("-".into(), |l| format!("{l} ms")),
            h.fleet_bans,
            h.received,
            h.applied,
            h.dropped,
        ));
    }
    out.push_str(&format!(
        "{} instance(s); {bucket_bans} ban(s) in force in the fleet's bucket\n",
        heartbeats.len()
    ));
    out
}

/// Read the instances and the ban bucket named by the configuration's `fleet:` section.
pub fn run(cfg: &crate::config::fleet::FleetSection, json: bool) -> Result<String, String> {
    use futures::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let t = cfg.timeout.0;
        let client = tokio::time::timeout(t, async_nats::connect(cfg.url.as_str()))
            .await
            .map_err(|_| format!("{}: no answer within {t:?}", cfg.url))?
            .map_err(|e| format!("{}: {e}", cfg.url))?;
        let js = async_nats::jetstream::ContextBuilder::new().timeout(t).build(client);
        let mut heartbeats = Vec::new();
        if let Ok(kv) = js.get_key_value(&cfg.instances_bucket).await {
            let mut keys = kv.keys().await.map_err(|e| e.to_string())?;
            while let Some(Ok(k)) = keys.next().await {
                if let Ok(Some(v)) = kv.get(&k).await {
                    if let Ok(h) = serde_json::from_slice::<Heartbeat>(&v) {
                        heartbeats.push(h);
                    }
                }
            }
        }
        heartbeats.sort_by(|a, b| a.instance.cmp(&b.instance));
        let now = now_ms();
        let mut bans = 0;
        if let Ok(kv) = js.get_key_value(&cfg.bans_bucket).await {
            let mut keys = kv.keys().await.map_err(|e| e.to_string())?;
            while let Some(Ok(k)) = keys.next().await {
                if k.starts_with("probe.") {
                    continue;
                }
                if let Ok(Some(v)) = kv.get(&k).await {
                    let r = serde_json::from_slice::<super::record::BanRecord>(&v);
                    bans += usize::from(r.is_ok_and(|r| r.active_ban(now).is_some()));
                }
            }
        }
        if json {
            let v = serde_json::json!({"instances": heartbeats, "bucket_bans": bans, "now": now});
            return Ok(format!("{v}\n"));
        }
        Ok(render(&heartbeats, bans, now))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_show_each_instance() {
        let h = Heartbeat {
            instance: "edge-1".into(),
            at: 9_000,
            connected: true,
            last_sync: 8_500,
            lag_ms: Some(3),
            fleet_bans: 2,
            ..Default::default()
        };
        let text = render(&[h], 2, 10_000);
        let line = text.lines().nth(1).expect("a line");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words,
            [
                "edge-1",
                "connected",
                "1.0s",
                "ago",
                "1.5s",
                "ago",
                "3",
                "ms",
                "2",
                "0",
                "0",
                "0"
            ]
        );
        assert!(text.ends_with("1 instance(s); 2 ban(s) in force in the fleet's bucket\n"));
    }
}
