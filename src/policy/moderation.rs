//! Compiled moderation rules (built at load and reload, read by the `moderation` stage at the
//! head, body and message phases): each rule's term lists as one `TermSet`, its routes, places,
//! fields and action as runtime types, so a request never reads a config string.

use std::sync::Arc;

use crate::config::file::{self, ModeSection, ModerationAction, ModerationPlace, OversizeSection};
use crate::extract::FieldSelector;
use crate::moderate::{TermList, TermSet};
use crate::stage::{Mode, Oversize};

/// What a moderation rule does with a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModAction {
    /// Message not forwarded; the stream stays up. (Validation keeps it off bodies.)
    Drop,
    /// Message forwarded with the matched words masked. (Validation keeps it off bodies.)
    Mask,
    /// Stream closed with 1008; a body is refused with 403.
    Close,
    /// Body refused with 403; a message closes the stream as `Close` does.
    Block,
    /// Recorded only.
    Log,
}

impl ModAction {
    /// The word findings and metrics use.
    pub fn label(self) -> &'static str {
        match self {
            ModAction::Drop => "drop",
            ModAction::Mask => "mask",
            ModAction::Close => "close",
            ModAction::Block => "block",
            ModAction::Log => "log",
        }
    }
}

/// One compiled `moderation.rules` entry.
#[derive(Debug, Clone)]
pub struct ModRule {
    pub id: Arc<str>,
    /// Every list of the rule in one automaton; shared with the previous snapshot when the
    /// lists did not change.
    pub terms: Arc<TermSet>,
    /// Route names; `None`: every route.
    pub routes: Option<Vec<Arc<str>>>,
    pub client_messages: bool,
    pub origin_messages: bool,
    pub body: bool,
    /// Body fields looked at; `None`: every string field.
    pub fields: Option<Vec<FieldSelector>>,
    pub action: ModAction,
    pub mode: Mode,
    pub strike: bool,
    /// Largest message judged, in bytes; larger ones close the stream with 1009.
    pub max_message: usize,
    /// Body bytes inspected.
    pub max_body: usize,
    pub oversize: Oversize,
}

impl ModRule {
    pub fn on_route(&self, route: &str) -> bool {
        self.routes.as_ref().is_none_or(|r| r.iter().any(|x| &**x == route))
    }
}

/// Compile the `moderation:` section of one validated policy file. `file_monitor`: the file's
/// `mode: monitor`. `previous` lends its term sets to rules whose lists did not change.
pub fn compile(section: &file::ModerationSection, file_monitor: bool, previous: &[ModRule], out: &mut Vec<ModRule>) {
    for r in &section.rules {
        let lists: Vec<TermList> = r
            .lists
            .iter()
            .filter_map(|name| section.lists.get(name).and_then(|l| l.terms.clone()))
            .collect();
        let terms = match previous.iter().find(|p| p.terms.lists() == lists.as_slice()) {
            Some(p) => p.terms.clone(),
            None => match TermSet::build(&lists) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    // Only an automaton past aho-corasick's size limits fails; the rule is left
                    // out (and the error logged) rather than the whole policy refused.
                    log::error!("moderation rule {:?}: {e}; rule left out", r.id);
                    continue;
                }
            },
        };
        let has = |p| r.places.contains(&p);
        out.push(ModRule {
            id: Arc::from(r.id.as_str()),
            terms,
            routes: r
                .routes
                .as_ref()
                .map(|v| v.iter().map(|s| Arc::from(s.as_str())).collect()),
            client_messages: has(ModerationPlace::ClientMessages),
            origin_messages: has(ModerationPlace::OriginMessages),
            body: has(ModerationPlace::Body),
            fields: r
                .fields
                .as_ref()
                .map(|f| f.iter().filter_map(|s| FieldSelector::parse(s).ok()).collect()),
            action: match r.action {
                ModerationAction::Drop => ModAction::Drop,
                ModerationAction::Mask => ModAction::Mask,
                ModerationAction::Close => ModAction::Close,
                ModerationAction::Block => ModAction::Block,
                ModerationAction::Log => ModAction::Log,
            },
            mode: if file_monitor || r.mode == ModeSection::Monitor {
                Mode::Monitor
            } else {
                Mode::Enforce
            },
            strike: r.strike,
            max_message: r.max_message.map_or(file::DEFAULT_MAX_MESSAGE, |b| b.0) as usize,
            max_body: r.max_body.map_or(file::DEFAULT_MAX_BODY, |b| b.0) as usize,
            oversize: match r.oversize {
                OversizeSection::Pass => Oversize::Pass,
                OversizeSection::Refuse => Oversize::Refuse,
            },
        });
    }
}
