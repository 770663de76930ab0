//! A ladder of sizes (RDS instance classes, ElastiCache node types) climbed one rung at a time:
//! the step shared by every trigger that resizes a managed service.

use k8s_openapi::jiff::Timestamp;

use super::{cooldown, decision::Decision};
use crate::crd::{Approval, Duration};

/// One resource's ladder and who may climb it.
#[derive(Clone, Copy, Debug)]
pub struct Ladder<'a> {
    /// The resource resized, as people know it: the RDS instance or ElastiCache replication
    /// group identifier.
    pub resource: &'a str,
    /// What a rung is, in messages: `class` or `node type`.
    pub rung: &'static str,
    /// The sizes, smallest first.
    pub rungs: &'a [String],
    /// `Automatic` applies a step through `ack`; `Manual` recommends it.
    pub approval: Approval,
    /// The ACK object an applied step patches: its kind and name, or `None` when none is set.
    pub ack: Option<(&'static str, &'a str)>,
    /// The spec field that names the ACK object, for the message when it is missing.
    pub ack_field: &'static str,
}

/// A resize by one rung of its ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassChange {
    /// [`Ladder::resource`].
    pub resource: String,
    /// The size now.
    pub from: String,
    /// The next size on the ladder.
    pub to: String,
}

/// What to do with a resize.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResizeAction {
    /// Patch the ACK object (approval `Automatic` and the object is named), and signal it
    /// (Event, status, notification).
    Apply(ClassChange),
    /// Signal it only, for a person to act on (or approve): approval `Manual`, or no ACK object.
    Recommend(ClassChange),
}

impl ResizeAction {
    /// The resize, whether applied or recommended.
    pub fn change(&self) -> &ClassChange {
        match self {
            Self::Apply(change) | Self::Recommend(change) => change,
        }
    }
}

/// Where a size sits on a ladder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rung<'a> {
    /// The size right after it: the only one ever recommended.
    Next(&'a str),
    /// It is the last size of the ladder.
    Largest,
    /// It is not on the ladder (sizes are compared exactly).
    NotOnLadder,
}

impl<'a> Rung<'a> {
    /// The next size, when there is one.
    pub fn next(self) -> Option<&'a str> {
        match self {
            Rung::Next(next) => Some(next),
            Rung::Largest | Rung::NotOnLadder => None,
        }
    }
}

/// The rung after `current` on `ladder` (smallest to largest). Never skips one.
pub fn next_rung<'a>(ladder: &'a [String], current: &str) -> Rung<'a> {
    match ladder.iter().position(|class| class == current) {
        None => Rung::NotOnLadder,
        Some(i) => ladder
            .get(i + 1)
            .map_or(Rung::Largest, |next| Rung::Next(next.as_str())),
    }
}

/// The step up `ladder` once its metric is beyond the threshold (`above` says so, with the
/// numbers): no action when the current size is unknown, not on the ladder or the largest, or
/// within the cooldown (`cooldown`, else `default_cooldown`) after the last action; otherwise
/// [`ResizeAction::Apply`] of the next rung with approval `Automatic` and an ACK object, else
/// [`ResizeAction::Recommend`].
pub fn step(
    above: &str,
    ladder: &Ladder<'_>,
    current: Option<&str>,
    (cooldown, default_cooldown): (Option<Duration>, std::time::Duration),
    last_action_at: Option<Timestamp>,
    now: Timestamp,
) -> Decision<ResizeAction> {
    let (resource, rung) = (ladder.resource, ladder.rung);
    let Some(current) = current else {
        return Decision::hold(format!(
            "no action: {above}, but the current {rung} of {resource} is unknown, so the next \
             rung of the {rung} ladder cannot be chosen"
        ));
    };
    let next = match next_rung(ladder.rungs, current) {
        Rung::Next(next) => next,
        Rung::Largest => {
            return Decision::hold(format!(
                "no action: {above}, but {resource} is already at the largest {rung} on the \
                 ladder, {current}"
            ));
        }
        Rung::NotOnLadder => {
            return Decision::hold(format!(
                "no action: {above}, but its current {rung} {current} is not on the {rung} \
                 ladder [{}]",
                ladder.rungs.join(", ")
            ));
        }
    };
    let cooldown = cooldown::or_default(cooldown, default_cooldown);
    if let Err(why) = cooldown::check(last_action_at, cooldown, now) {
        return Decision::hold(format!("no action: {above}, but {why}"));
    }
    let change = ClassChange {
        resource: resource.to_owned(),
        from: current.to_owned(),
        to: next.to_owned(),
    };
    let resize = format!("{resource} from {current} to {next}");
    match (ladder.approval, ladder.ack) {
        (Approval::Automatic, Some((kind, name))) => Decision::act(
            ResizeAction::Apply(change),
            format!("{above}; resizing {resize} (approval Automatic: patching {kind} {name})"),
        ),
        (Approval::Automatic, None) => Decision::act(
            ResizeAction::Recommend(change),
            format!(
                "{above}; recommending to resize {resize} (approval is Automatic, but there is \
                 no {} to patch)",
                ladder.ack_field
            ),
        ),
        (Approval::Manual, _) => Decision::act(
            ResizeAction::Recommend(change),
            format!("{above}; recommending to resize {resize} (approval Manual)"),
        ),
    }
}
