//! The admin API's JSON handlers under `/api` (openapi.json describes each). Bans go through
//! `enforce::manual::apply`; actors are shown as addresses, networks or `id:hmac:…`
//! pseudonyms, never as the identity values themselves.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{reply, AdminApp};
use crate::enforce::identity::Pseudonym;
use crate::enforce::manual::{self, ban_id, shown, BanChange, MAX_REASON_CHARS};
use crate::enforce::offenders::{now_ms, Actor, Millis, Penalty};
use crate::enforce::Action;
use crate::metrics::names;
use crate::policy::rules::{query_value, Effect};

/// Offenders listed when `top` is not given.
const DEFAULT_TOP: usize = 20;
/// Most offenders one call lists.
const MAX_TOP: usize = 500;
/// Window of `GET /api/offenders` when none is given.
const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

fn invalid(field: &str, message: &str) -> Response<Vec<u8>> {
    reply(StatusCode::BAD_REQUEST, json!({"error": message, "field": field}))
}

fn action_word(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Block => "block",
        Action::Throttle => "throttle",
        Action::Tarpit => "tarpit",
    }
}

fn penalty_json(actor: &Actor, p: &Penalty, now: u64) -> Value {
    json!({
        "id": ban_id(actor),
        "actor": shown(actor),
        "kind": p.kind,
        "reason": p.reason,
        "rules": p.rules,
        "bans": p.bans,
        "strikes": p.strikes,
        "first_seen_ms": p.first_seen,
        "last_seen_ms": p.last_seen,
        "until_ms": p.until,
        "seconds_left": p.until.map(|u| u.saturating_sub(now) / 1000),
    })
}

/// The penalties in force at `now` (bans and probations), with their actors.
pub(super) fn active_penalties(app: &AdminApp, now: Millis) -> Vec<(Actor, Penalty)> {
    let snap = app.store.load();
    let list = snap.offenders.list();
    list.into_iter().filter(|(_, p)| p.active(now)).collect()
}

/// `GET /api/bans`: active bans and probations.
pub(super) fn bans(app: &AdminApp) -> Response<Vec<u8>> {
    let now = now_ms();
    let mut list = active_penalties(app, now);
    list.sort_by_key(|(_, p)| std::cmp::Reverse(p.last_seen));
    let bans: Vec<Value> = list.iter().map(|(a, p)| penalty_json(a, p, now)).collect();
    reply(StatusCode::OK, json!({ "bans": bans }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBan {
    address: Option<String>,
    cidr: Option<String>,
    account: Option<String>,
    actor: Option<String>,
    duration: Option<String>,
    reason: Option<String>,
}

/// An actor as the API shows it: an address, a network, or `id:hmac:…`.
fn parse_shown(text: &str) -> Option<Actor> {
    if let Some(p) = text.strip_prefix("id:") {
        return Pseudonym::parse(p).map(Actor::Id);
    }
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(Actor::Ip(ip));
    }
    text.parse::<ipnet::IpNet>().ok().map(network)
}

/// A network as banned: host bits cleared; a single address is an address ban.
fn network(net: ipnet::IpNet) -> Actor {
    let net = net.trunc();
    if net.prefix_len() == net.max_prefix_len() {
        Actor::Ip(net.addr())
    } else {
        Actor::Net(net)
    }
}

/// `POST /api/bans`.
pub(super) fn add_ban(app: &AdminApp, body: &[u8]) -> Response<Vec<u8>> {
    let ban: NewBan = match serde_json::from_slice(body) {
        Ok(b) => b,
        Err(e) => return invalid("", &format!("the body is not a ban: {e}")),
    };
    let offenders = app.store.load().offenders.clone();
    let given = [&ban.address, &ban.cidr, &ban.account, &ban.actor]
        .iter()
        .filter(|f| f.is_some())
        .count();
    if given != 1 {
        return invalid("address", "give exactly one of address, cidr, account or actor");
    }
    let actor =
        if let Some(a) = &ban.address {
            match a.trim().parse::<IpAddr>() {
                Ok(ip) => Actor::Ip(ip),
                Err(_) => return invalid("address", "address is not an IP address"),
            }
        } else if let Some(c) = &ban.cidr {
            match c.trim().parse::<ipnet::IpNet>() {
                Ok(net) if net.prefix_len() == 0 => return invalid("cidr", "a /0 network would ban every client"),
                Ok(net) => network(net),
                Err(_) => return invalid("cidr", "cidr is not a network such as 203.0.113.0/24"),
            }
        } else if let Some(account) = &ban.account {
            if account.is_empty() {
                return invalid("account", "account is empty");
            }
            // The value is read once, here, and only its pseudonym is kept.
            Actor::Id(offenders.pseudonym(account.as_bytes()))
        } else {
            match ban.actor.as_deref().and_then(parse_shown) {
                Some(a) => a,
                None => return invalid(
                    "actor",
                    "actor is not an address, a network or id:hmac: and 32 hex digits, as GET /api/offenders shows it",
                ),
            }
        };
    let length = match ban.duration.as_deref().map(str::trim) {
        Some("forever") => None,
        Some(d) => match humantime::parse_duration(d) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => return invalid("duration", "duration is a length such as 30m or 2h, or forever"),
        },
        None => return invalid("duration", "give a duration such as 30m, or forever"),
    };
    let reason = ban.reason.as_deref().map(str::trim).unwrap_or_default();
    if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
        return invalid(
            "reason",
            &format!("reason is at most {MAX_REASON_CHARS} characters on one line"),
        );
    }
    let reason = if reason.is_empty() {
        "banned by an operator"
    } else {
        reason
    };
    let change = BanChange::Add {
        actor: actor.clone(),
        length,
        reason: Arc::from(reason),
    };
    let now = now_ms();
    manual::apply(&offenders, &change, now);
    let until = length.map(|d| now.saturating_add(d.as_millis() as u64));
    reply(
        StatusCode::CREATED,
        json!({"id": ban_id(&actor), "actor": shown(&actor), "until_ms": until, "reason": reason}),
    )
}

/// `DELETE /api/bans/{id}`.
pub(super) fn lift_ban(app: &AdminApp, id: &str) -> Response<Vec<u8>> {
    let offenders = app.store.load().offenders.clone();
    let Some((actor, _)) = offenders.list().into_iter().find(|(a, _)| ban_id(a) == id) else {
        return reply(
            StatusCode::NOT_FOUND,
            json!({"error": "no ban or probation has this id", "field": "id"}),
        );
    };
    let text = shown(&actor);
    manual::apply(&offenders, &BanChange::Lift { actor }, now_ms());
    reply(StatusCode::OK, json!({"id": id, "actor": text, "lifted": true}))
}

/// `GET /api/offenders?top=N&window=DURATION`: actors refused in the window, or holding strikes
/// or a penalty, most refused first.
pub(super) fn offenders(app: &AdminApp, query: Option<&str>) -> Response<Vec<u8>> {
    let top = match query_value(query, "top") {
        None => DEFAULT_TOP,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            _ => return invalid("top", &format!("top is a number from 1 to {MAX_TOP}")),
        },
    };
    let window = match query_value(query, "window") {
        None => DEFAULT_WINDOW,
        Some(w) => match humantime::parse_duration(w) {
            Ok(d) if d >= Duration::from_secs(10) && d.as_millis() as u64 <= super::board::MAX_WINDOW_MS => d,
            _ => return invalid("window", "window is a length from 10s to 1h, such as 5m"),
        },
    };
    let window_ms = window.as_millis() as u64;
    let now = now_ms();
    let snap = app.store.load();
    let offenders = &snap.offenders;
    let decay = snap.policy.bans.as_ref().map(|b| b.window);
    let mut rows: BTreeMap<String, (Option<Actor>, u64)> = BTreeMap::new();
    let activity: BTreeMap<String, super::board::Activity> = app.board.active(now, window_ms).into_iter().collect();
    for (key, a) in &activity {
        rows.insert(key.clone(), (parse_shown(key), a.refusals(now, window_ms)));
    }
    if let Some(w) = decay {
        for (actor, s) in offenders.scores() {
            if s.value > 0.0 && offenders.score(&actor, now, w) >= 0.5 {
                rows.entry(shown(&actor)).or_insert((Some(actor), 0));
            }
        }
    }
    let penalties: BTreeMap<String, (Actor, Penalty)> = offenders
        .list()
        .into_iter()
        .filter(|(_, p)| p.active(now))
        .map(|(a, p)| (shown(&a), (a, p)))
        .collect();
    for (key, (actor, _)) in &penalties {
        rows.entry(key.clone()).or_insert((Some(actor.clone()), 0));
    }
    let mut list: Vec<Value> = rows
        .into_iter()
        .map(|(key, (actor, refusals))| {
            let strikes = match (&actor, decay) {
                (Some(a), Some(w)) => offenders.score(a, now, w),
                _ => 0.0,
            };
            let a = activity.get(&key);
            let kind = match actor {
                Some(Actor::Ip(_)) => "address",
                Some(Actor::Id(_)) => "identity",
                Some(Actor::Net(_)) => "network",
                None => "unknown",
            };
            json!({
                "actor": key,
                "kind": kind,
                "refusals": refusals,
                "refusals_per_minute": refusals as f64 * 60_000.0 / window_ms as f64,
                "strikes": (strikes * 10.0).round() / 10.0,
                "last_rules": a.map(|a| a.last_rules.clone()).or_else(|| penalties.get(&key).map(|(_, p)| p.rules.clone())).unwrap_or_default(),
                "last_seen_ms": a.map(|a| a.last_seen_ms),
                "last_request_id": a.map(|a| a.last_request_id.clone()),
                "penalty": penalties.get(&key).map(|(actor, p)| penalty_json(actor, p, now)),
            })
        })
        .collect();
    let weight = |v: &Value| {
        (
            v["refusals"].as_u64().unwrap_or(0),
            v["strikes"].as_f64().unwrap_or(0.0),
        )
    };
    list.sort_by(|a, b| {
        let (ra, sa) = weight(a);
        let (rb, sb) = weight(b);
        rb.cmp(&ra).then(sb.total_cmp(&sa))
    });
    list.truncate(top);
    reply(
        StatusCode::OK,
        json!({"window_secs": window.as_secs(), "offenders": list}),
    )
}

/// `GET /api/policy`.
pub(super) fn policy(app: &AdminApp) -> Response<Vec<u8>> {
    let snap = app.store.load();
    let p = &snap.policy;
    let rules: Vec<Value> = p
        .rules
        .iter()
        .map(|r| {
            let effect = match r.effect {
                Effect::Decide(a) => action_word(a),
                Effect::Strike => "strike",
                Effect::Log => "log",
            };
            json!({"id": r.id, "action": effect, "mode": r.mode.label()})
        })
        .collect();
    let limits: Vec<Value> = p
        .limits
        .iter()
        .map(|l| {
            json!({"id": l.id, "key": l.key.to_string(), "requests": l.requests, "window_secs": l.window.as_secs_f64(),
                   "action": action_word(l.action), "mode": l.mode.label()})
        })
        .collect();
    let caps: Vec<Value> = p
        .caps
        .iter()
        .map(|c| json!({"id": c.id, "key": c.key.to_string(), "max": c.max, "action": action_word(c.action), "mode": c.mode.label()}))
        .collect();
    let mut lists = Vec::new();
    for file in &snap.loaded.policies {
        let mode = match file.file.mode {
            Some(crate::config::file::ModeSection::Monitor) => "monitor",
            _ => "enforce",
        };
        for (name, l) in &file.file.lists {
            lists.push(json!({"name": name, "policy": file.path.display().to_string(), "mode": mode,
                              "cidrs": l.cidrs.len(), "files": l.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>()}));
        }
    }
    let waf = p
        .waf
        .as_ref()
        .map(|w| json!({"mode": w.mode.label(), "strike": w.strike}));
    let moderation: Vec<Value> = p.moderation.iter().map(|m| json!({"id": m.id})).collect();
    let bans = p.bans.as_ref().map(|b| {
        json!({"strikes": b.strikes, "window_secs": b.window.as_secs(), "ban_for_secs": b.ban_for.as_secs(),
               "throttle_at": b.throttle_at, "identity": b.identity.as_ref().map(|k| k.to_string())})
    });
    reply(
        StatusCode::OK,
        json!({
            "hash": p.hash,
            "generation": snap.generation,
            "sources": p.sources,
            "shadow": snap.shadow.as_ref().map(|s| json!({"hash": s.hash, "sources": s.sources})),
            "rules": rules,
            "limits": limits,
            "caps": caps,
            "lists": lists,
            "waf": waf,
            "moderation": moderation,
            "bans": bans,
        }),
    )
}

fn config_errors(errors: &[crate::config::ConfigError]) -> Vec<Value> {
    errors
        .iter()
        .map(|e| {
            json!({"file": e.file.display().to_string(), "line": e.line, "column": e.column,
                   "field": e.field, "message": e.message})
        })
        .collect()
}

/// `POST /api/reload`: what `palisade check` checks; a refused reload keeps the running policy.
pub(super) fn reload(app: &AdminApp) -> Response<Vec<u8>> {
    match app.reloader.reload() {
        Ok(generation) => reply(
            StatusCode::OK,
            json!({"reloaded": true, "generation": generation, "hash": app.store.load().policy.hash}),
        ),
        Err(errors) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"reloaded": false, "generation": app.store.load().generation, "errors": config_errors(&errors.0)}),
        ),
    }
}

/// Sums of this process's metrics, by one label's value (`None`: the whole sum).
fn sums(families: &[prometheus::proto::MetricFamily], name: &str, by: Option<&str>) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for fam in families.iter().filter(|f| f.name() == name) {
        for m in fam.get_metric() {
            let key = by
                .and_then(|l| m.get_label().iter().find(|p| p.name() == l))
                .map_or_else(String::new, |p| p.value().to_string());
            let value = m.counter.as_ref().map_or(0.0, |c| c.value()) + m.gauge.as_ref().map_or(0.0, |g| g.value());
            *out.entry(key).or_insert(0.0) += value;
        }
    }
    out
}

fn total(families: &[prometheus::proto::MetricFamily], name: &str) -> f64 {
    sums(families, name, None).values().sum()
}

/// `GET /api/stats`: counters the console turns into rates, and the health of its parts.
pub(super) fn stats(app: &AdminApp) -> Response<Vec<u8>> {
    let f = prometheus::gather();
    let snap = app.store.load();
    let last = app.reloader.last.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let requests = sums(&f, names::REQUESTS_TOTAL, Some("decision"));
    let refused: f64 = requests.iter().filter(|(d, _)| *d != "allow").map(|(_, n)| n).sum();
    reply(
        StatusCode::OK,
        json!({
            "time_ms": now_ms(),
            "requests": requests.values().sum::<f64>(),
            "non_allow": refused,
            "by_decision": requests,
            "active_bans": total(&f, names::ACTIVE_BANS),
            "policy": {"hash": snap.policy.hash, "generation": snap.generation},
            "last_reload": last.map(|l| json!({"at_ms": l.at_ms, "ok": l.errors.is_empty(), "generation": l.generation,
                                               "errors": config_errors(&l.errors)})),
            "reloads": sums(&f, names::RELOADS_TOTAL, Some("result")),
            "telemetry": {
                "emitted": total(&f, names::TELEMETRY_EMITTED_TOTAL),
                "sent": total(&f, names::TELEMETRY_SENT_TOTAL),
                "spilled": total(&f, names::TELEMETRY_SPILLED_TOTAL),
                "dropped": total(&f, names::TELEMETRY_DROPPED_TOTAL),
            },
            "fleet": fleet_health(),
            "stream": {
                "clients": total(&f, names::DECISION_STREAM_CLIENTS),
                "dropped": total(&f, names::DECISION_STREAM_DROPPED_TOTAL),
                "board_lost": total(&f, names::OFFENDER_BOARD_LOST_TOTAL),
            },
        }),
    )
}

/// The console's fleet line: off, or whether the bus is there, the last sync, the lag and how
/// many instances (this one included) wrote a heartbeat.
fn fleet_health() -> serde_json::Value {
    let v = crate::fleet::status::view();
    if !v.enabled {
        return json!({"enabled": false});
    }
    json!({"enabled": true, "connected": v.me.connected, "last_sync_ms": v.me.last_sync,
           "lag_ms": v.me.lag_ms, "fleet_bans": v.me.fleet_bans, "instances": v.peers.len(),
           "dropped": v.me.dropped})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_actors_parse_back() {
        let ip = Actor::Ip("2001:db8::7".parse().expect("ip"));
        let net = Actor::Net("198.51.100.0/24".parse().expect("net"));
        let id = Actor::Id(crate::enforce::identity::IdentityKey::new(b"0123456789abcdef").pseudonym(b"alice"));
        for a in [ip, net, id] {
            assert_eq!(parse_shown(&shown(&a)), Some(a));
        }
        assert_eq!(parse_shown("alice"), None, "an account name is not an actor");
        assert_eq!(
            network("198.51.100.9/24".parse().expect("net")),
            Actor::Net("198.51.100.0/24".parse().expect("net"))
        );
        assert_eq!(
            network("198.51.100.9/32".parse().expect("net")),
            Actor::Ip("198.51.100.9".parse().expect("ip"))
        );
    }
}
