//! The `moderation` security stage (request head, request body, WebSocket messages): the
//! policy's term-list rules applied to what actors say. At the head it picks the rules of the
//! request's route, asks the core for the body and/or the stream's messages, and keeps the
//! sender's actors (address, pseudonymised identity) in the ledger, since later phases have no
//! request facts. At the end of the body it scans the selected fields and refuses with 403;
//! on each text message it drops, masks or closes. Hits of `strike` rules count against the
//! sender, so a persistent abuser is throttled, then banned by the penalties stage.

use std::sync::Arc;

use super::{excerpt, mask, Hit};
use crate::enforce::offenders::{now_ms, Actor, Offenders, PenaltyKind};
use crate::extract::{self, BodyKind};
use crate::policy::moderation::{ModAction, ModRule};
use crate::policy::PolicySet;
use crate::stage::{
    Action, BodyWant, Decision, Direction, Finding, Ledger, Message, MessageStep, Millis, Mode, RequestFacts, Source,
    Stage, Step, Verdict,
};

/// The stage's name in findings, metrics and docs.
pub const STAGE: &str = "moderation";
/// Close code for a message over the rule's `max_message` (RFC 6455: message too big).
pub const CLOSE_TOO_BIG: u16 = 1009;
/// Close code for a policy violation (RFC 6455).
pub const CLOSE_POLICY: u16 = 1008;
/// Findings one message or body adds at most: enough to explain, bounded for telemetry.
const MAX_FINDINGS_PER_SCAN: usize = 8;

pub struct Moderation {
    pub policy: Arc<PolicySet>,
    pub offenders: Arc<Offenders>,
}

/// What the head phase leaves for the body and message phases of one request.
struct Held {
    /// Indices into `policy.moderation` of the rules on this request's route.
    rules: Vec<usize>,
    /// Who a strike counts against.
    actors: Vec<Actor>,
    content_type: Option<String>,
}

impl Stage for Moderation {
    fn name(&self) -> &'static str {
        STAGE
    }

    fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, _now: Millis) -> Step {
        // A refused request sends nothing on; an `allow` rule exempts a request from every
        // later check, this one included.
        if self.policy.moderation.is_empty() || ledger.verdict.settled() {
            return Step::Pass;
        }
        let rules: Vec<usize> = (0..self.policy.moderation.len())
            .filter(|&i| self.policy.moderation[i].on_route(facts.route))
            .collect();
        if rules.is_empty() {
            return Step::Pass;
        }
        for r in rules.iter().map(|&i| &self.policy.moderation[i]) {
            if r.body {
                ledger.want_body(BodyWant {
                    limit: r.max_body,
                    oversize: r.oversize,
                });
            }
            if r.client_messages || r.origin_messages {
                ledger.want_messages(r.max_message);
            }
        }
        ledger.hold(Held {
            rules,
            actors: crate::enforce::actors(&self.policy, &self.offenders, facts),
            content_type: facts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        Step::Pass
    }

    fn on_body_chunk(&self, _chunk: &[u8], end: bool, ledger: &mut Ledger) -> Step {
        if !end || ledger.verdict.enforced() {
            return Step::Pass;
        }
        let Some(held) = ledger.held_mut::<Held>() else {
            return Step::Pass;
        };
        let rules: Vec<&ModRule> = held
            .rules
            .iter()
            .filter_map(|&i| self.policy.moderation.get(i))
            .filter(|r| r.body)
            .collect();
        if rules.is_empty() {
            return Step::Pass;
        }
        let actors = held.actors.clone();
        let content_type = held.content_type.take();
        if ledger.body.is_empty() {
            return Step::Pass;
        }
        let texts = body_texts(content_type.as_deref(), &ledger.body);
        let mut verdict = Verdict::allow();
        let now = now_ms();
        for rule in rules {
            let mut weight = 0u32;
            let mut kept = 0usize;
            for (field, text) in &texts {
                // A body read whole (`raw:`) has no fields to tell apart: every rule reads it.
                if let (Some(sel), false) = (&rule.fields, field.starts_with("raw:")) {
                    if !sel.iter().any(|s| s.matches(field_name(field))) {
                        continue;
                    }
                }
                let hits = rule.terms.scan(text);
                if hits.is_empty() {
                    continue;
                }
                weight = weight.saturating_add(hits.iter().map(|h| h.weight).fold(0, u32::saturating_add));
                for h in hits.iter().take(MAX_FINDINGS_PER_SCAN.saturating_sub(kept)) {
                    ledger.found(finding(h, text, Some(field.clone()), None, body_label(rule)));
                    kept += 1;
                }
            }
            if weight == 0 {
                continue;
            }
            if rule.mode == Mode::Monitor {
                verdict.merge(Verdict::from(decision(rule, Mode::Monitor)));
                continue;
            }
            let refuses = rule.action != ModAction::Log;
            // A refusal counts as one strike, as every enforced refusal does (the strikes stage
            // has run before the body arrives); a `strike` rule adds its hits' weight.
            let strikes = u32::from(refuses) + if rule.strike { weight } else { 0 };
            self.strike(&actors, rule, strikes, now);
            if refuses {
                verdict.merge(Verdict::from(decision(rule, Mode::Enforce)));
            }
        }
        if verdict.is_allow() {
            Step::Pass
        } else {
            Step::Verdict(verdict)
        }
    }

    fn on_message(&self, direction: Direction, message: Message<'_>, ledger: &mut Ledger) -> MessageStep {
        // Binary messages carry no chat text this stage could read; they pass unjudged.
        let Message::Text(text) = message else {
            return MessageStep::Forward;
        };
        let Some(held) = ledger.held_mut::<Held>() else {
            return MessageStep::Forward;
        };
        let client = direction == Direction::ClientToOrigin;
        let rules: Vec<&ModRule> = held
            .rules
            .iter()
            .filter_map(|&i| self.policy.moderation.get(i))
            .filter(|r| if client { r.client_messages } else { r.origin_messages })
            .collect();
        if rules.is_empty() {
            return MessageStep::Forward;
        }
        let actors = held.actors.clone();
        let mut step = MessageStep::Forward;
        let mut masked: Vec<Hit<'_>> = Vec::new();
        let mut now = None;
        for rule in rules {
            if text.len() > rule.max_message {
                return MessageStep::Close(CLOSE_TOO_BIG);
            }
            let hits = rule.terms.scan(text);
            if hits.is_empty() {
                continue;
            }
            let label = message_label(rule);
            for h in hits.iter().take(MAX_FINDINGS_PER_SCAN) {
                ledger.found(finding(h, text, Some("message".into()), Some(direction), label));
            }
            if rule.mode == Mode::Monitor {
                continue;
            }
            let mut next = match rule.action {
                ModAction::Drop => MessageStep::Drop,
                ModAction::Mask => {
                    masked.extend(hits.iter().cloned());
                    MessageStep::Replace(String::new())
                }
                ModAction::Close | ModAction::Block => MessageStep::Close(CLOSE_POLICY),
                ModAction::Log => MessageStep::Forward,
            };
            // Only the client is the sender of what it sends; what the origin relays was said
            // by someone else, so origin→client hits never strike this connection's actor.
            if rule.strike && client {
                let weight = hits.iter().map(|h| h.weight).fold(0, u32::saturating_add);
                let t = *now.get_or_insert_with(now_ms);
                if self.strike(&actors, rule, weight, t) == Some(PenaltyKind::Ban) {
                    // A banned actor is cut off now, not at its next connection.
                    next = MessageStep::Close(CLOSE_POLICY);
                }
            }
            if next.weight() > step.weight() {
                step = next;
            }
        }
        match step {
            MessageStep::Replace(_) => MessageStep::Replace(mask(text, &masked)),
            other => other,
        }
    }
}

impl Moderation {
    /// Count `n` strikes against `actors` for `rule`; the penalty earned, if any.
    fn strike(&self, actors: &[Actor], rule: &ModRule, n: u32, now: Millis) -> Option<PenaltyKind> {
        crate::enforce::strike_later(&self.policy, &self.offenders, actors, &rule.id, n, now)
    }
}

fn decision(rule: &ModRule, mode: Mode) -> Decision {
    Decision {
        action: Action::Block,
        mode,
        source: Source::Policy(rule.id.clone()),
        ..Decision::default()
    }
}

fn body_label(rule: &ModRule) -> &'static str {
    match (rule.mode, rule.action) {
        (Mode::Monitor, _) => "monitor",
        (_, ModAction::Log) => "log",
        // Validation allows only block and log on bodies; close would refuse the same way.
        _ => "block",
    }
}

fn message_label(rule: &ModRule) -> &'static str {
    match (rule.mode, rule.action) {
        (Mode::Monitor, _) => "monitor",
        (_, ModAction::Block) => "close",
        (_, a) => a.label(),
    }
}

fn finding(
    hit: &Hit<'_>,
    text: &str,
    field: Option<String>,
    direction: Option<Direction>,
    action: &'static str,
) -> Finding {
    Finding {
        stage: STAGE,
        rule: Arc::from(hit.list_name),
        category: hit.category.map(Arc::from),
        field,
        direction,
        score: Some(hit.weight),
        excerpt: excerpt(text, hit),
        action,
    }
}

/// The name a field selector matches: the part after `kind:`.
fn field_name(labelled: &str) -> &str {
    labelled.split_once(':').map_or(labelled, |(_, n)| n)
}

/// The body's texts to scan, each labelled `kind:name` (`json:user.bio`, `form:message`,
/// `text:body`). A body that cannot be parsed as its content type claims, or has none, is
/// scanned whole as `raw:body` when it is UTF-8: an unparseable body still carries its words,
/// and breaking the JSON must not be a way around a rule.
fn body_texts(content_type: Option<&str>, body: &[u8]) -> Vec<(String, String)> {
    let whole = || {
        std::str::from_utf8(body)
            .map(|t| vec![("raw:body".to_owned(), t.to_owned())])
            .unwrap_or_default()
    };
    match extract::fields(content_type, body, &extract::Limits::default()) {
        Ok(f) if f.kind != BodyKind::Opaque => {
            let kind = match f.kind {
                BodyKind::Json => "json",
                BodyKind::Form => "form",
                BodyKind::Multipart => "multipart",
                BodyKind::Text | BodyKind::Opaque => "text",
            };
            f.fields
                .into_iter()
                // Uploaded files are not chat: only their first bytes are kept anyway.
                .filter(|x| x.filename.is_none())
                .map(|x| (format!("{kind}:{}", x.name), x.value))
                .collect()
        }
        _ => whole(),
    }
}

#[cfg(test)]
mod tests {
    //! The stage without sockets: a policy compiled from text, facts and messages handed in.

    use super::*;
    use crate::config::load::policy_from_str;

    const TERMS: &str = "badword | category=insult weight=2\njerk\n";

    fn stage(rules: &str, extra: &str) -> Moderation {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("abuse.txt"), TERMS).expect("list");
        let path = dir.path().join("p.yaml");
        let yaml = format!("moderation:\n  lists:\n    abuse: {{file: abuse.txt}}\n  rules:\n{rules}{extra}");
        let loaded = policy_from_str(&path.display().to_string(), &yaml, &["chat", "app"]).expect("valid");
        Moderation {
            policy: Arc::new(crate::policy::compile(&[loaded], None)),
            offenders: Arc::new(Offenders::new()),
        }
    }

    fn head(s: &Moderation, route: &str, headers: &http::HeaderMap) -> Ledger {
        let facts = RequestFacts {
            client_ip: "198.51.100.7".parse().expect("ip"),
            method: "POST",
            host: "live.example.test",
            path: "/",
            route,
            query: None,
            headers,
            content_length: None,
        };
        let mut ledger = Ledger::default();
        assert_eq!(s.on_request_head(&facts, &mut ledger, 0), Step::Pass);
        ledger
    }

    #[test]
    fn messages_are_wanted_only_on_the_rules_routes_and_judged_by_direction() {
        let s = stage(
            "    - {id: c, lists: [abuse], routes: [chat], in: [client_messages], action: drop}\n    - {id: o, lists: [abuse], routes: [chat], in: [origin_messages], action: mask, max_message: 1KiB}\n",
            "",
        );
        let h = http::HeaderMap::new();
        assert_eq!(head(&s, "app", &h).wants.messages, None);
        let mut l = head(&s, "chat", &h);
        assert_eq!(l.wants.messages, Some(64 * 1024));
        let up = Direction::ClientToOrigin;
        let down = Direction::OriginToClient;
        assert_eq!(
            s.on_message(up, Message::Text("hi there"), &mut l),
            MessageStep::Forward
        );
        assert_eq!(s.on_message(up, Message::Text("you J3RK"), &mut l), MessageStep::Drop);
        assert_eq!(
            s.on_message(down, Message::Text("you J3RK!"), &mut l),
            MessageStep::Replace("you ****!".into())
        );
        assert_eq!(s.on_message(up, Message::Binary(b"jerk"), &mut l), MessageStep::Forward);
        let big = "x".repeat(2000);
        assert_eq!(
            s.on_message(down, Message::Text(&big), &mut l),
            MessageStep::Close(CLOSE_TOO_BIG)
        );
        let f = &l.findings[0];
        assert_eq!((f.rule.as_ref(), f.action, f.direction), ("abuse", "drop", Some(up)));
        assert_eq!(l.findings[1].action, "mask");
    }

    #[test]
    fn a_body_is_refused_by_field_and_an_unparseable_one_is_read_whole() {
        let s = stage(
            "    - {id: bio, lists: [abuse], in: [body], fields: [user.bio], action: block}\n",
            "",
        );
        let mut h = http::HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, "application/json".parse().expect("hv"));
        let judge = |body: &str| {
            let mut l = head(&s, "app", &h);
            assert!(l.wants.body.is_some());
            l.body = body.as_bytes().to_vec();
            (s.on_body_chunk(body.as_bytes(), true, &mut l), l.findings)
        };
        let (step, findings) = judge(r#"{"user":{"bio":"a b.a.d.w.o.r.d"}}"#);
        let Step::Verdict(v) = step else { panic!("not refused") };
        assert_eq!((v.label(), v.rule()), ("block", Some("bio")));
        assert_eq!(findings[0].field.as_deref(), Some("json:user.bio"));
        assert_eq!(judge(r#"{"user":{"name":"badword"}}"#).0, Step::Pass);
        // Broken JSON carries its words all the same; the field cannot be told, so any counts.
        assert!(matches!(judge(r#"{"user":{"bio":"jerk""#).0, Step::Verdict(_)));
    }
}
