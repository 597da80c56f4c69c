//! The list of security stages, in the order the proxy core runs them at every phase. Adding a
//! stage is one module implementing `stage::Stage` and one line here (docs/architecture.md).

use std::sync::Arc;

use crate::enforce::offenders::Offenders;
use crate::enforce::stages as enforce;
use crate::policy::PolicySet;
use crate::stage::{Pipeline, Stage};
use crate::waf::stage::Waf;

/// The stages of one snapshot: its policy, its shadow policy and the shared offender state.
pub fn build(policy: &Arc<PolicySet>, shadow: Option<&Arc<PolicySet>>, offenders: &Arc<Offenders>) -> Pipeline {
    let mut stages: Vec<Arc<dyn Stage>> = vec![
        Arc::new(enforce::Penalties {
            policy: policy.clone(),
            offenders: offenders.clone(),
        }),
        Arc::new(enforce::Rules { policy: policy.clone() }),
        Arc::new(enforce::Limits { policy: policy.clone() }),
        Arc::new(enforce::Caps { policy: policy.clone() }),
        Arc::new(crate::moderate::stage::Moderation {
            policy: policy.clone(),
            offenders: offenders.clone(),
        }),
    ];
    // Before `strikes`, so a WAF block is a strike; after it when the policy says it is not.
    let waf: Arc<dyn Stage> = Arc::new(Waf {
        policy: policy.clone(),
        offenders: offenders.clone(),
    });
    let waf_strikes = policy.waf.as_ref().is_none_or(|w| w.strike);
    if waf_strikes {
        stages.push(waf.clone());
    }
    stages.push(Arc::new(enforce::Strikes {
        policy: policy.clone(),
        offenders: offenders.clone(),
    }));
    if !waf_strikes {
        stages.push(waf);
    }
    if let Some(shadow) = shadow {
        stages.push(Arc::new(enforce::Shadow { policy: shadow.clone() }));
    }
    Pipeline::new(stages)
}

#[cfg(test)]
mod tests {
    //! The worked example of docs/architecture.md: a tiny stage added beside the standard ones.

    use super::*;
    use crate::config::load::policy_from_str;
    use crate::stage::{Action, Decision, Ledger, Millis, RequestFacts, Source, Step, Verdict};

    /// Refuses requests that carry `X-Tiny: refuse`, and only those.
    struct Tiny;

    impl Stage for Tiny {
        fn name(&self) -> &'static str {
            "tiny"
        }

        fn on_request_head(&self, facts: &RequestFacts<'_>, ledger: &mut Ledger, _now: Millis) -> Step {
            if ledger.verdict.settled() || facts.headers.get("x-tiny").is_none_or(|v| v != "refuse") {
                return Step::Pass;
            }
            Step::Verdict(Verdict::from(Decision {
                action: Action::Block,
                source: Source::Policy("tiny".into()),
                ..Decision::default()
            }))
        }
    }

    fn facts<'a>(headers: &'a http::HeaderMap, ip: &str) -> RequestFacts<'a> {
        RequestFacts {
            client_ip: ip.parse().expect("ip"),
            method: "GET",
            host: "live.example.test",
            path: "/",
            route: "app",
            query: None,
            headers,
            content_length: None,
        }
    }

    #[test]
    fn a_stage_added_to_the_list_decides_after_the_standard_ones() {
        let yaml = "rules:\n  - {id: staff, match: {ip_lists: [staff]}, action: allow}\nlists:\n  staff: {cidrs: [10.0.0.0/8]}\noffenders: {strikes: 2, window: 60s, ban_for: 5m}\n";
        let policy = Arc::new(crate::policy::compile(
            &[policy_from_str("t.yaml", yaml, &["app"]).expect("valid")],
            None,
        ));
        let offenders = Arc::new(Offenders::new());
        let pipeline = build(&policy, None, &offenders).with(Arc::new(Tiny));
        assert_eq!(
            pipeline.names().collect::<Vec<_>>(),
            [
                "penalties",
                "rules",
                "limits",
                "caps",
                "moderation",
                "waf",
                "strikes",
                "tiny"
            ]
        );
        let mut refuse = http::HeaderMap::new();
        refuse.insert("x-tiny", "refuse".parse().expect("hv"));
        let plain = http::HeaderMap::new();
        let now = 1_700_000_000_000;
        let run = |h: &http::HeaderMap, ip: &str| {
            let mut ledger = Ledger::default();
            pipeline.request_head(&facts(h, ip), &mut ledger, now);
            ledger.verdict
        };
        assert_eq!(run(&plain, "198.51.100.1").label(), "allow");
        let v = run(&refuse, "198.51.100.1");
        assert_eq!((v.label(), v.rule()), ("block", Some("tiny")));
        // A stage's refusal is not a strike: the strikes stage ran before it.
        assert_eq!(run(&refuse, "198.51.100.1").rule(), Some("tiny"));
        // An `allow` rule settles the request before the tiny stage sees it.
        assert_eq!(run(&refuse, "10.1.2.3").label(), "allow");
    }

    #[test]
    fn a_waf_that_does_not_strike_runs_after_strikes() {
        let offenders = Arc::new(Offenders::new());
        for (yaml, order) in [
            ("waf: {}\n", ["caps", "moderation", "waf", "strikes"]),
            ("waf: {strike: false}\n", ["caps", "moderation", "strikes", "waf"]),
        ] {
            let set = Arc::new(crate::policy::compile(
                &[policy_from_str("w.yaml", yaml, &["app"]).expect("valid")],
                None,
            ));
            let names: Vec<_> = build(&set, None, &offenders).names().collect();
            assert_eq!(&names[3..7], order, "{yaml}");
        }
    }
}
