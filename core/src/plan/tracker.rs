//! The three SQLMesh stage trackers and their parts, serialised to the JSON shapes SQLMesh's web
//! client reads (`web/server/models.py`: `TrackableMeta`, `PlanStage*`, `Plan*StageTracker`;
//! emitted with `exclude_none`, so an absent field is omitted, never `null`).

use alloc::string::String;

use serde::de::Error as _;
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::request::{PlanDate, PlanOptions};
use super::stage::Stage;

/// A stage's or tracker's status: SQLMesh's `Status` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Started and not yet stopped (`"init"`).
    Init,
    /// Stopped successfully (`"success"`).
    Success,
    /// Stopped unsuccessfully (`"fail"`).
    Fail,
}

/// SQLMesh's `TrackableMeta`: `{status, start, end?, done, duration?}`, times in Unix epoch ms.
///
/// The fields are private so that its invariants hold by construction: `done` iff `end` is set iff
/// the status is not `init`, and `end >= start` (a clock that steps back is clamped, so `duration`
/// is never negative).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageMeta {
    status: Status,
    start_ms: u64,
    end_ms: Option<u64>,
}

impl StageMeta {
    /// A meta started at `now_ms`, status `init`.
    pub(super) fn started(now_ms: u64) -> StageMeta {
        StageMeta {
            status: Status::Init,
            start_ms: now_ms,
            end_ms: None,
        }
    }

    /// Ends the meta. The session only stops what is running; stopping twice keeps the first end.
    pub(super) fn stop(&mut self, success: bool, now_ms: u64) {
        debug_assert!(self.end_ms.is_none(), "stopped twice");
        if self.end_ms.is_some() {
            return;
        }
        self.status = if success {
            Status::Success
        } else {
            Status::Fail
        };
        self.end_ms = Some(now_ms.max(self.start_ms));
    }

    /// The status.
    pub fn status(&self) -> Status {
        self.status
    }

    /// When it started (epoch ms; JSON `start`).
    pub fn start_ms(&self) -> u64 {
        self.start_ms
    }

    /// When it ended, if it has (epoch ms; JSON `end`).
    pub fn end_ms(&self) -> Option<u64> {
        self.end_ms
    }

    /// Whether it has ended (JSON `done`).
    pub fn is_done(&self) -> bool {
        self.end_ms.is_some()
    }

    /// `end - start` once ended (JSON `duration`).
    pub fn duration_ms(&self) -> Option<u64> {
        self.end_ms.map(|end| end - self.start_ms)
    }
}

impl Serialize for StageMeta {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut out = serializer.serialize_struct("TrackableMeta", 5)?;
        out.serialize_field("status", &self.status)?;
        out.serialize_field("start", &self.start_ms)?;
        match self.end_ms {
            Some(end) => out.serialize_field("end", &end)?,
            None => out.skip_field("end")?,
        }
        out.serialize_field("done", &self.is_done())?;
        match self.duration_ms() {
            Some(duration) => out.serialize_field("duration", &duration)?,
            None => out.skip_field("duration")?,
        }
        out.end()
    }
}

/// The wire form read back when a session is restored; `duration` is derived, so it is ignored.
#[derive(Deserialize)]
struct MetaWire {
    status: Status,
    start: u64,
    #[serde(default)]
    end: Option<u64>,
    done: bool,
}

impl<'de> Deserialize<'de> for StageMeta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = MetaWire::deserialize(deserializer)?;
        let consistent = wire.done == wire.end.is_some()
            && (wire.status == Status::Init) != wire.done
            && wire.end.is_none_or(|end| end >= wire.start);
        if !consistent {
            return Err(D::Error::custom("inconsistent trackable meta"));
        }
        Ok(StageMeta {
            status: wire.status,
            start_ms: wire.start,
            end_ms: wire.end,
        })
    }
}

/// One stage of a tracker: its meta plus the payload SQLMesh carries for that stage (`added`,
/// `removed`, `modified`, `models`, `total_tasks`, `num_tasks`, `queue`, `tasks`,
/// `target_environment`), kept as opaque JSON set by the runner and flattened beside `meta`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    /// Timing and status.
    pub meta: StageMeta,
    /// The stage payload; never contains the key `meta`.
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl StageState {
    /// A stage started at `now_ms` with SQLMesh's required fields defaulted, then `details` merged
    /// over them.
    pub(super) fn start(
        stage: Stage,
        environment: Option<&str>,
        details: Option<&Map<String, Value>>,
        now_ms: u64,
    ) -> StageState {
        let mut state = StageState {
            meta: StageMeta::started(now_ms),
            details: stage_defaults(stage, environment),
        };
        if let Some(details) = details {
            state.merge(details);
        }
        state
    }

    /// Applies `patch` with JSON Merge Patch semantics (RFC 7386): objects merge recursively,
    /// `null` deletes a key, anything else replaces. So a runner can report one backfill task's
    /// progress without resending the others.
    pub(super) fn merge(&mut self, patch: &Map<String, Value>) {
        merge_object(&mut self.details, patch);
    }
}

/// SQLMesh's pydantic models require these fields, so the client may read them before the runner
/// sets them.
fn stage_defaults(stage: Stage, environment: Option<&str>) -> Map<String, Value> {
    let mut details = Map::new();
    match stage {
        Stage::Creation => {
            details.insert("total_tasks".into(), Value::from(0));
            details.insert("num_tasks".into(), Value::from(0));
        }
        Stage::Backfill => {
            details.insert("queue".into(), Value::Array(alloc::vec::Vec::new()));
            details.insert("tasks".into(), Value::Object(Map::new()));
        }
        Stage::Promote => {
            details.insert("total_tasks".into(), Value::from(0));
            details.insert("num_tasks".into(), Value::from(0));
            // SQLMesh's default environment is `prod` when the request names none.
            details.insert(
                "target_environment".into(),
                Value::from(environment.unwrap_or("prod")),
            );
        }
        Stage::Validation | Stage::Changes | Stage::Backfills | Stage::Restate | Stage::Cancel => {}
    }
    details
}

fn merge_object(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(inner) => {
                let slot = target
                    .entry(key.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(slot) = slot {
                    merge_object(slot, inner);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The fields every tracker shares (SQLMesh's `PlanStageTracker`): its own meta, the environment,
/// the plan options, and the plan's start and end dates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackerBase {
    /// The tracker's own timing and status.
    pub meta: StageMeta,
    /// The target environment, as requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The plan options, as requested (SQLMesh's defaults when the request had none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_options: Option<PlanOptions>,
    /// The plan's start date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<PlanDate>,
    /// The plan's end date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<PlanDate>,
}

/// `PlanOverviewStageTracker`: stages `validation`, `changes`, `backfills`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OverviewTracker {
    /// Shared tracker fields.
    #[serde(flatten)]
    pub base: TrackerBase,
    /// Building and validating the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<StageState>,
    /// The changes (`added`, `removed`, `modified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<StageState>,
    /// The backfills (`models`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfills: Option<StageState>,
}

/// `PlanApplyStageTracker`: stages `creation`, `restate`, `backfill`, `promote`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApplyTracker {
    /// Shared tracker fields.
    #[serde(flatten)]
    pub base: TrackerBase,
    /// Table creation (`total_tasks`, `num_tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation: Option<StageState>,
    /// Restatement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restate: Option<StageState>,
    /// Backfill (`queue`, `tasks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backfill: Option<StageState>,
    /// Promotion (`total_tasks`, `num_tasks`, `target_environment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote: Option<StageState>,
}

/// `PlanCancelStageTracker`: stage `cancel`. Like SQLMesh's, it carries no environment or options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CancelTracker {
    /// Shared tracker fields.
    #[serde(flatten)]
    pub base: TrackerBase,
    /// The cancellation itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel: Option<StageState>,
}

impl TrackerBase {
    pub(super) fn started(
        environment: Option<String>,
        plan_options: Option<PlanOptions>,
        start: Option<PlanDate>,
        end: Option<PlanDate>,
        now_ms: u64,
    ) -> TrackerBase {
        TrackerBase {
            meta: StageMeta::started(now_ms),
            environment,
            plan_options,
            start,
            end,
        }
    }
}

impl OverviewTracker {
    pub(super) fn new(base: TrackerBase) -> OverviewTracker {
        OverviewTracker {
            base,
            validation: None,
            changes: None,
            backfills: None,
        }
    }
}

impl ApplyTracker {
    pub(super) fn new(base: TrackerBase) -> ApplyTracker {
        ApplyTracker {
            base,
            creation: None,
            restate: None,
            backfill: None,
            promote: None,
        }
    }
}

impl CancelTracker {
    pub(super) fn new(now_ms: u64) -> CancelTracker {
        CancelTracker {
            base: TrackerBase::started(None, None, None, None, now_ms),
            cancel: Some(StageState::start(Stage::Cancel, None, None, now_ms)),
        }
    }
}
