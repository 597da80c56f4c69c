//! The list of security stages, in the order the proxy core runs them at every phase. Adding a
//! stage is one module implementing `stage::Stage` and one line here (docs/architecture.md).

use std::sync::Arc;

use crate::enforce::offenders::Offenders;
use crate::enforce::stages as enforce;
use crate::policy::PolicySet;
use crate::stage::{Pipeline, Stage};

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
        Arc::new(enforce::Strikes {
            policy: policy.clone(),
            offenders: offenders.clone(),
        }),
    ];
    if let Some(shadow) = shadow {
        stages.push(Arc::new(enforce::Shadow { policy: shadow.clone() }));
    }
    Pipeline::new(stages)
}
