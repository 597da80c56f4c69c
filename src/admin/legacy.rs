//! The admin endpoints from before `/api` (`/status`, `/bans`, `/reload`), kept working for
//! scripts that call them; the OpenAPI document marks them deprecated and names their `/api`
//! successors. Bans made here go through `enforce::manual::apply` like the API's.

use std::net::IpAddr;
use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::json;

use super::{reply, AdminApp};
use crate::enforce::identity::Pseudonym;
use crate::enforce::manual::{self, shown, BanChange};
use crate::enforce::offenders::{now_ms, Actor};
use crate::policy::rules::query_value;

pub(super) fn status(app: &AdminApp) -> Response<Vec<u8>> {
    let s = app.store.load();
    reply(
        StatusCode::OK,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "generation": s.generation,
            "shadow_policy": s.shadow.as_ref().map(|p| json!({"hash": p.hash, "sources": p.sources})),
            "policy": {"hash": s.policy.hash, "rules": s.policy.rules.len(), "limits": s.policy.limits.len(), "sources": s.policy.sources},
            "pools": s.pools.values().map(|p| json!({
                "name": &*p.name,
                "backends": p.backends.iter().map(|b| json!({"address": b.to_string(), "healthy": p.healthy(*b)})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "penalties": s.offenders.list().len(),
        }),
    )
}

pub(super) fn bans(app: &AdminApp) -> Response<Vec<u8>> {
    let now = now_ms();
    let list: Vec<_> = super::api::active_penalties(app, now)
        .into_iter()
        .map(|(actor, p)| {
            json!({"actor": shown(&actor), "kind": p.kind, "rules": p.rules, "reason": p.reason,
                   "bans": p.bans, "strikes": p.strikes, "first_seen_ms": p.first_seen, "last_seen_ms": p.last_seen,
                   "seconds_left": p.until.map(|u| u.saturating_sub(now) / 1000)})
        })
        .collect();
    reply(StatusCode::OK, json!({ "bans": list }))
}

fn bad(message: &str) -> Response<Vec<u8>> {
    reply(StatusCode::BAD_REQUEST, json!({ "error": message }))
}

/// `POST /bans?ip=ADDR&for=DURATION|forever` (or `net=CIDR`, `id=IDENTITY`, `pseudonym=hmac:HEX`), and
/// `DELETE /bans?…` with the same actor parameters.
pub(super) fn change_ban(app: &AdminApp, query: Option<&str>, add: bool) -> Response<Vec<u8>> {
    let offenders = app.store.load().offenders.clone();
    let given = (
        query_value(query, "ip"),
        query_value(query, "net"),
        query_value(query, "id"),
        query_value(query, "pseudonym"),
    );
    let actor = match given {
        (Some(ip), None, None, None) => match ip.parse::<IpAddr>() {
            Ok(ip) => Actor::Ip(ip),
            Err(_) => return bad("ip is not an address"),
        },
        (None, Some(net), None, None) => match net.parse::<crate::config::types::Cidr>() {
            Ok(c) => Actor::Net(c.0),
            Err(_) => return bad("net is not a CIDR (203.0.113.0/24)"),
        },
        // The value is read once, here, and only its pseudonym is kept.
        (None, None, Some(id), None) if !id.is_empty() => Actor::Id(offenders.pseudonym(id.as_bytes())),
        (None, None, None, Some(p)) => match Pseudonym::parse(p.strip_prefix("id:").unwrap_or(p)) {
            Some(p) => Actor::Id(p),
            None => return bad("pseudonym is not hmac: and 32 hex digits, as GET /bans shows it"),
        },
        _ => return bad("give one of ip=ADDRESS, net=CIDR, id=IDENTITY or pseudonym=hmac:HEX"),
    };
    let change = if add {
        let length = match query_value(query, "for") {
            Some("forever") => None,
            Some(d) => match humantime::parse_duration(d) {
                Ok(d) if !d.is_zero() => Some(d),
                _ => return bad("give for=DURATION (e.g. 30m) or for=forever"),
            },
            None => return bad("give for=DURATION (e.g. 30m) or for=forever"),
        };
        BanChange::Add {
            actor,
            length,
            reason: Arc::from("banned by an operator"),
        }
    } else {
        BanChange::Lift { actor }
    };
    let text = shown(change.actor());
    manual::apply(&offenders, &change, now_ms());
    reply(StatusCode::OK, json!({"actor": text, "banned": add}))
}

pub(super) fn reload(app: &AdminApp) -> Response<Vec<u8>> {
    match app.reloader.reload() {
        Ok(generation) => reply(StatusCode::OK, json!({"reloaded": true, "generation": generation})),
        Err(errors) => reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"reloaded": false, "errors": errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>()}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_shown_whole_so_they_can_be_given_back() {
        let p = crate::enforce::identity::IdentityKey::new(b"0123456789abcdef").pseudonym(b"s");
        let text = shown(&Actor::Id(p));
        assert_eq!(text, format!("id:{}", p.full()));
        assert_eq!(Pseudonym::parse(text.strip_prefix("id:").expect("prefix")), Some(p));
        assert_eq!(shown(&Actor::Ip("2001:db8::1".parse().expect("ip"))), "2001:db8::1");
    }
}
