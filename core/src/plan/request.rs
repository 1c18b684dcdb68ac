//! The two bodies the plan session reads: SQLMesh's `POST /api/plan` request and the runner's
//! progress command.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};

use super::stage::{Stage, Tracker};
use crate::json::{self, Escape, JsonFlaw, JSON_DEPTH_MAX};

/// A plan date as SQLMesh's `TimeLike` arrives in JSON: a date or datetime string, or an epoch
/// number. Kept verbatim; the runner interprets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanDate {
    /// A date or datetime string such as `"2024-01-01"`.
    Text(String),
    /// An epoch number.
    Number(Number),
}

/// SQLMesh's `PlanDates`: `{start?, end?}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanDates {
    /// Start of the plan's date range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<PlanDate>,
    /// End of the plan's date range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<PlanDate>,
}

/// SQLMesh's `PlanOptions`. Booleans default to `false` and are always serialised (as pydantic
/// does); the two optional strings are omitted when absent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanOptions {
    /// Skip unit tests.
    #[serde(default)]
    pub skip_tests: bool,
    /// Skip backfills.
    #[serde(default)]
    pub skip_backfill: bool,
    /// Ensure no gaps in the target tables.
    #[serde(default)]
    pub no_gaps: bool,
    /// Create a forward-only plan.
    #[serde(default)]
    pub forward_only: bool,
    /// Do not categorise changes automatically.
    #[serde(default)]
    pub no_auto_categorization: bool,
    /// Include unmodified models in the target environment.
    #[serde(default)]
    pub include_unmodified: bool,
    /// The environment to create the target from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_from: Option<String>,
    /// Models to restate. SQLMesh takes a comma-separated string and stores the split list, so
    /// this accepts either form and always serialises the list.
    #[serde(
        default,
        deserialize_with = "restate_models",
        skip_serializing_if = "Option::is_none"
    )]
    pub restate_models: Option<Vec<String>>,
    /// Apply the plan without asking (read by the client).
    #[serde(default)]
    pub auto_apply: bool,
}

fn restate_models<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(deserializer)? {
        None => None,
        // SQLMesh's validator is `v.split(",")`: no trimming, so neither here.
        Some(OneOrMany::One(text)) => Some(text.split(',').map(String::from).collect()),
        Some(OneOrMany::Many(list)) => Some(list),
    })
}

/// SQLMesh's `SnapshotChangeCategory`, an IntEnum sent as its integer value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeCategory {
    /// 1.
    Breaking,
    /// 2.
    NonBreaking,
    /// 3.
    ForwardOnly,
    /// 4.
    IndirectBreaking,
    /// 5.
    IndirectNonBreaking,
    /// 6.
    Metadata,
}

impl ChangeCategory {
    /// The category with SQLMesh's integer `value`, if there is one.
    pub fn from_value(value: i64) -> Option<ChangeCategory> {
        Some(match value {
            1 => ChangeCategory::Breaking,
            2 => ChangeCategory::NonBreaking,
            3 => ChangeCategory::ForwardOnly,
            4 => ChangeCategory::IndirectBreaking,
            5 => ChangeCategory::IndirectNonBreaking,
            6 => ChangeCategory::Metadata,
            _ => return None,
        })
    }

    /// SQLMesh's integer value.
    pub fn value(self) -> u8 {
        match self {
            ChangeCategory::Breaking => 1,
            ChangeCategory::NonBreaking => 2,
            ChangeCategory::ForwardOnly => 3,
            ChangeCategory::IndirectBreaking => 4,
            ChangeCategory::IndirectNonBreaking => 5,
            ChangeCategory::Metadata => 6,
        }
    }
}

impl Serialize for ChangeCategory {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u8(self.value())
    }
}

impl<'de> Deserialize<'de> for ChangeCategory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(deserializer)?;
        ChangeCategory::from_value(value)
            .ok_or_else(|| serde::de::Error::custom(BodyError::UnknownCategory { value }))
    }
}

/// The body of SQLMesh's `POST /api/plan` (and `POST /api/commands/apply`). Every field is
/// optional, as in SQLMesh; unknown fields are ignored, as FastAPI does. Parse with
/// [`PlanRequest::from_json`] for typed errors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// Target environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Date range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_dates: Option<PlanDates>,
    /// Options; SQLMesh's defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_options: Option<PlanOptions>,
    /// Change category chosen per model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub categories: Option<BTreeMap<String, ChangeCategory>>,
}

impl PlanRequest {
    /// Parses a request body. An empty body (or only whitespace) is the default request, as SQLMesh
    /// accepts it (every field of its body is optional).
    pub fn from_json(body: &[u8]) -> Result<PlanRequest, BodyError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(PlanRequest::default());
        }
        expect_object(body)?;
        // Unknown fields are skipped without a depth count, so the limit applies to them too.
        check_json(body)?;
        serde_json::from_slice(body).map_err(|error| {
            // The derived parser only says "unknown category" in prose; re-read the body to name
            // the value.
            let unknown = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|value| {
                    value
                        .get("categories")?
                        .as_object()?
                        .values()
                        .find_map(|category| {
                            let value = category.as_i64()?;
                            ChangeCategory::from_value(value).is_none().then_some(value)
                        })
                });
            match unknown {
                Some(value) => BodyError::UnknownCategory { value },
                None => BodyError::malformed(&error),
            }
        })
    }
}

/// A progress report from the plan runner, or a cancellation. JSON, tagged by `op`:
///
/// ```json
/// {"op":"start","stage":"backfill","details":{"tasks":{"sushi.orders":{"name":"sushi.orders","view_name":"sushi.orders","completed":0,"total":3,"start":1712000000000}}}}
/// {"op":"update","stage":"backfill","details":{"queue":["sushi.orders"],"tasks":{"sushi.orders":{"completed":1}}}}
/// {"op":"stop","stage":"backfill","success":true}
/// {"op":"finish","tracker":"apply","success":true}
/// {"op":"dates","start":"2024-01-01","end":"2024-01-31"}
/// {"op":"alive"}
/// {"op":"cancel"}
/// ```
///
/// `details` is a JSON object merged into the stage with JSON Merge Patch (RFC 7386): nested
/// objects merge, `null` deletes a key, anything else (arrays included) replaces. It may not set
/// `meta`. The stage names its tracker: `validation`, `changes`, `backfills` are the overview's;
/// `creation`, `restate`, `backfill`, `promote` the apply's; `cancel` is the session's own and is
/// refused from the runner.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum PlanCommand {
    /// Start a stage, with its initial payload.
    Start {
        /// The stage.
        stage: Stage,
        /// Initial payload, merged over SQLMesh's required defaults.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Map<String, Value>>,
    },
    /// Merge progress into a running stage (e.g. backfill task counts).
    Update {
        /// The stage.
        stage: Stage,
        /// The patch.
        details: Map<String, Value>,
    },
    /// Stop a running stage. `success: false` ends the plan: its trackers fail (SQLMesh's console
    /// does the same), or, while cancelling, completes the cancellation.
    Stop {
        /// The stage.
        stage: Stage,
        /// Whether it succeeded.
        success: bool,
        /// A last patch applied before stopping.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Map<String, Value>>,
    },
    /// Finish a tracker (`overview` or `apply`). Success needs no stage of it running; failure
    /// stops a running one with `fail` and ends the plan.
    Finish {
        /// The tracker.
        tracker: Tracker,
        /// Whether it succeeded.
        success: bool,
    },
    /// Set the plan's resolved start and end dates on the open trackers (SQLMesh sets them once
    /// the plan is built).
    Dates {
        /// Start; unchanged when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<PlanDate>,
        /// End; unchanged when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<PlanDate>,
    },
    /// The runner's keep-alive: renews its lease on the running plan (see `HERALD_PLAN_LEASE_S`)
    /// and emits nothing. Refused, like every runner move, once the plan has ended: that tells
    /// the runner to stop.
    Alive,
    /// Cancel the running plan (SQLMesh's `POST /api/plan/cancel`).
    Cancel,
}

impl PlanCommand {
    /// Parses a command body.
    pub fn from_json(body: &[u8]) -> Result<PlanCommand, BodyError> {
        expect_object(body)?;
        // Before serde_json, whose recursion limit would only say "malformed": details are stored
        // in the session (about 3 levels deeper) and must be read back.
        check_json(body)?;
        let command: PlanCommand =
            serde_json::from_slice(body).map_err(|error| BodyError::malformed(&error))?;
        if command
            .details()
            .is_some_and(|details| details.contains_key("meta"))
        {
            return Err(BodyError::ReservedKey);
        }
        Ok(command)
    }

    /// The payload the command carries, if any.
    pub fn details(&self) -> Option<&Map<String, Value>> {
        match self {
            PlanCommand::Start { details, .. } | PlanCommand::Stop { details, .. } => {
                details.as_ref()
            }
            PlanCommand::Update { details, .. } => Some(details),
            PlanCommand::Finish { .. }
            | PlanCommand::Dates { .. }
            | PlanCommand::Alive
            | PlanCommand::Cancel => None,
        }
    }
}

/// Refuses a body nested deeper than [`JSON_DEPTH_MAX`] or with a lone surrogate escape, with an
/// error that says so.
fn check_json(body: &[u8]) -> Result<(), BodyError> {
    json::check(body, JSON_DEPTH_MAX).map_err(|flaw| match flaw {
        JsonFlaw::TooDeep => BodyError::TooDeep {
            depth_max: JSON_DEPTH_MAX,
        },
        JsonFlaw::LoneSurrogate { unit } => BodyError::LoneSurrogate { unit },
    })
}

/// serde reads a struct from a JSON array too (fields by position); FastAPI wants an object, and so
/// do we.
fn expect_object(body: &[u8]) -> Result<(), BodyError> {
    let (mut line, mut column) = (1, 1);
    for &byte in body {
        match byte {
            b'{' => return Ok(()),
            b'\n' => (line, column) = (line + 1, 1),
            b' ' | b'\t' | b'\r' => column += 1,
            _ => return Err(BodyError::Malformed { line, column }),
        }
    }
    Err(BodyError::Malformed { line, column })
}

/// A body the session cannot read. Every variant is the client's fault (HTTP 400, or 422 for
/// SQLMesh's plan request as its FastAPI answers); compare [`super::PlanError`],
/// which is a refused move (HTTP 409).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON, or not the expected shape; where serde_json noticed (1-based, 0 if unknown).
    Malformed {
        /// Line of the error.
        line: usize,
        /// Column of the error.
        column: usize,
    },
    /// A change category integer outside SQLMesh's 1..=6.
    UnknownCategory {
        /// The integer sent.
        value: i64,
    },
    /// Command details tried to set `meta`, which only the session writes.
    ReservedKey,
    /// The body nests arrays and objects deeper than [`JSON_DEPTH_MAX`] (so `details` deeper than
    /// one level less): the stored session holding them could not be read back.
    TooDeep {
        /// The limit, in levels.
        depth_max: usize,
    },
    /// The body holds a `\u` escape of one half of a UTF-16 surrogate pair without the other.
    LoneSurrogate {
        /// The escaped code unit.
        unit: u16,
    },
}

impl BodyError {
    fn malformed(error: &serde_json::Error) -> BodyError {
        BodyError::Malformed {
            line: error.line(),
            column: error.column(),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::Malformed { line, column } => {
                write!(f, "malformed body at line {line} column {column}")
            }
            BodyError::UnknownCategory { value } => write!(f, "unknown change category {value}"),
            BodyError::ReservedKey => f.write_str("details may not set meta"),
            BodyError::TooDeep { depth_max } => write!(
                f,
                "body nests arrays and objects deeper than {depth_max} levels (details may nest {})",
                depth_max.saturating_sub(1)
            ),
            BodyError::LoneSurrogate { unit } => write!(
                f,
                "body holds the lone surrogate escape `{}` (half of a UTF-16 pair), which encodes no character",
                Escape(*unit)
            ),
        }
    }
}

impl core::error::Error for BodyError {}
