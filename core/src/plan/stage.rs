//! The names of a plan's parts: its stages ([`Stage`]) and the trackers they belong to
//! ([`Tracker`]), with the event each tracker is emitted under. Requests, commands and the
//! trackers' JSON all refer to them, so they stand apart from each.

use core::fmt;

use serde::{Deserialize, Serialize};

use crate::EventName;

/// A plan stage: SQLMesh's `PlanStage` enum. Each belongs to exactly one [`Tracker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Overview: building and validating the plan.
    Validation,
    /// Overview: the added, removed and modified models.
    Changes,
    /// Overview: the models that need backfilling.
    Backfills,
    /// Apply: creating physical tables.
    Creation,
    /// Apply: restating models.
    Restate,
    /// Apply: running the backfill tasks.
    Backfill,
    /// Apply: promoting to the target environment.
    Promote,
    /// Cancel: driven by the session itself, never by the runner.
    Cancel,
}

impl Stage {
    /// Every stage, in SQLMesh's order.
    pub const ALL: [Stage; 8] = [
        Stage::Validation,
        Stage::Changes,
        Stage::Backfills,
        Stage::Creation,
        Stage::Restate,
        Stage::Backfill,
        Stage::Promote,
        Stage::Cancel,
    ];

    /// The stage's name, as SQLMesh spells it in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Validation => "validation",
            Stage::Changes => "changes",
            Stage::Backfills => "backfills",
            Stage::Creation => "creation",
            Stage::Restate => "restate",
            Stage::Backfill => "backfill",
            Stage::Promote => "promote",
            Stage::Cancel => "cancel",
        }
    }

    /// The tracker this stage belongs to.
    pub fn tracker(self) -> Tracker {
        match self {
            Stage::Validation | Stage::Changes | Stage::Backfills => Tracker::Overview,
            Stage::Creation | Stage::Restate | Stage::Backfill | Stage::Promote => Tracker::Apply,
            Stage::Cancel => Tracker::Cancel,
        }
    }

    /// Position in [`Stage::ALL`], for per-stage tables.
    pub(super) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of SQLMesh's three plan trackers; each is emitted whole as its own event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tracker {
    /// `PlanOverviewStageTracker`, event `plan-overview`.
    Overview,
    /// `PlanApplyStageTracker`, event `plan-apply`.
    Apply,
    /// `PlanCancelStageTracker`, event `plan-cancel`.
    Cancel,
}

impl Tracker {
    /// Every tracker, in the order a snapshot emits them (SQLMesh's `GET /api/meta` order).
    pub const ALL: [Tracker; 3] = [Tracker::Overview, Tracker::Apply, Tracker::Cancel];

    /// The tracker's name as a command spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Tracker::Overview => "overview",
            Tracker::Apply => "apply",
            Tracker::Cancel => "cancel",
        }
    }

    /// The SSE event name the whole tracker is emitted under (SQLMesh's `EventName`).
    pub fn event_name(self) -> EventName {
        match self {
            Tracker::Overview => PLAN_OVERVIEW,
            Tracker::Apply => PLAN_APPLY,
            Tracker::Cancel => PLAN_CANCEL,
        }
    }
}

impl fmt::Display for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Event name of the overview tracker.
pub const PLAN_OVERVIEW: EventName = EventName::from_static("plan-overview");
/// Event name of the apply tracker.
pub const PLAN_APPLY: EventName = EventName::from_static("plan-apply");
/// Event name of the cancel tracker.
pub const PLAN_CANCEL: EventName = EventName::from_static("plan-cancel");
