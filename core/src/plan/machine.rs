//! The plan state machine: a closed set of states and one pure transition function.
//!
//! BE ADVISED: the session trusts this function completely. It mutates trackers only after
//! `transition` says yes, and only in the way the returned [`Effect`] names, so every rule lives
//! here. The invariants:
//!
//! 1. At most one runner stage runs at a time (the cancel stage is the session's own and does not
//!    count).
//! 2. A stage starts at most once per plan; only a running stage takes updates or stops.
//! 3. A stage belongs to one tracker, and a tracker takes stages only while open: overview stages
//!    before the overview finishes, apply stages only in an apply plan and only after the overview
//!    succeeded.
//! 4. Any failure (a stage stopped with `success: false`, or a tracker finished so) ends the plan
//!    and fails every open tracker, as SQLMesh's console does.
//! 5. After a cancel, the only runner move accepted is the failing stop of the running stage (or
//!    failing finish of an open tracker): it completes the cancel. Then, as after a finish, every
//!    runner move is refused until the next open. The runner's keep-alive (`alive`) is accepted
//!    while cancelling and changes nothing.
//! 6. Opening while a plan runs starts nothing (single flight); cancelling with nothing running
//!    fails the cancel stage (and, as in SQLMesh, leaves the cancel tracker `success`).
//! 7. A running plan whose runner has not reported within its lease is ended by the session
//!    (`PlanSession::expire_lease`) through the same move as the runner failing its open tracker.
//!
//! To add a state: add the variant and put it in [`PlanState::ALL`]; give it a row in `transition`
//! (the compiler insists: there are no `_` arms on states); if the runner drives trackers in it,
//! add a `Running` variant and its tracker roles; update the predicates, `PlanSession::check`
//! (restore validation) and the state table in `core/tests/plan_table.rs`, which fails until the
//! new row is written.

use core::fmt;

use super::stage::{Stage, Tracker};

/// Where a plan session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanState {
    /// No plan has been opened.
    Idle,
    /// A preview plan (`POST /api/plan`) is running its overview; it ends with the overview.
    Overview,
    /// An apply plan (`POST /api/commands/apply`) is running its overview; apply stages wait for
    /// it.
    ApplyOverview,
    /// An apply plan's overview succeeded and its apply tracker is open.
    Applying,
    /// A cancel was requested; waiting for the runner to stop the running stage with `success:
    /// false`.
    Cancelling,
    /// The plan ended (successfully or not). Terminal until the next open.
    Finished,
    /// The plan was cancelled. Terminal until the next open.
    Cancelled,
}

impl PlanState {
    /// Every state.
    pub const ALL: [PlanState; 7] = [
        PlanState::Idle,
        PlanState::Overview,
        PlanState::ApplyOverview,
        PlanState::Applying,
        PlanState::Cancelling,
        PlanState::Finished,
        PlanState::Cancelled,
    ];

    /// Whether a plan is in flight (SQLMesh's "task not done"): opening resumes, cancelling
    /// cancels.
    pub fn is_running(self) -> bool {
        matches!(
            self,
            PlanState::Overview
                | PlanState::ApplyOverview
                | PlanState::Applying
                | PlanState::Cancelling
        )
    }

    /// Whether the last plan has ended; runner moves are refused until the next open.
    pub fn is_terminal(self) -> bool {
        matches!(self, PlanState::Finished | PlanState::Cancelled)
    }

    /// Whether a cancel is waiting for the runner to stop.
    pub fn is_cancelling(self) -> bool {
        matches!(self, PlanState::Cancelling)
    }

    /// The state's name, snake case.
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::Idle => "idle",
            PlanState::Overview => "overview",
            PlanState::ApplyOverview => "apply_overview",
            PlanState::Applying => "applying",
            PlanState::Cancelling => "cancelling",
            PlanState::Finished => "finished",
            PlanState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for PlanState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused move: the body was well formed but the plan is not in a state that accepts it (HTTP
/// 409). Compare [`super::BodyError`] (HTTP 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// No plan has been opened.
    NoPlan,
    /// The plan has finished; open a new one.
    PlanFinished,
    /// The plan was cancelled; open a new one.
    PlanCancelled,
    /// The plan is being cancelled: stop the running stage with `success: false`.
    Cancelling,
    /// The stage belongs to a tracker the runner does not drive in this plan (an apply stage in a
    /// preview plan, or the cancel stage).
    WrongTracker(Stage),
    /// The tracker is not part of this plan (`apply` in a preview plan, or `cancel`).
    TrackerNotOpen(Tracker),
    /// The tracker has already finished.
    TrackerFinished(Tracker),
    /// Apply moves wait until the overview has succeeded.
    OverviewPending,
    /// The stage has not started.
    StageNotStarted(Stage),
    /// The stage is already running.
    StageAlreadyStarted(Stage),
    /// The stage has already stopped; a stage runs once per plan.
    StageFinished(Stage),
    /// This stage is still running, so another cannot start and its tracker cannot succeed.
    StageRunning(Stage),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoPlan => f.write_str("no plan has been opened"),
            PlanError::PlanFinished => f.write_str("the plan has finished"),
            PlanError::PlanCancelled => f.write_str("the plan was cancelled"),
            PlanError::Cancelling => f.write_str(
                "the plan is being cancelled: stop the running stage with success false",
            ),
            PlanError::WrongTracker(stage) => write!(
                f,
                "stage {stage} does not belong to a tracker this plan runs"
            ),
            PlanError::TrackerNotOpen(tracker) => {
                write!(f, "tracker {tracker} is not part of this plan")
            }
            PlanError::TrackerFinished(tracker) => write!(f, "tracker {tracker} has finished"),
            PlanError::OverviewPending => {
                f.write_str("apply must wait for the overview to succeed")
            }
            PlanError::StageNotStarted(stage) => write!(f, "stage {stage} has not started"),
            PlanError::StageAlreadyStarted(stage) => write!(f, "stage {stage} has already started"),
            PlanError::StageFinished(stage) => write!(f, "stage {stage} has finished"),
            PlanError::StageRunning(stage) => write!(f, "stage {stage} is still running"),
        }
    }
}

impl core::error::Error for PlanError {}

/// Which endpoint opened the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PlanKind {
    /// `POST /api/plan`: the overview only.
    Preview,
    /// `POST /api/commands/apply`: the overview, then the apply stages.
    Apply,
}

/// What was asked, stripped of its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Input {
    /// From the client: open a plan.
    Open(PlanKind),
    /// From the client: cancel the plan.
    Cancel,
    /// From the runner: report progress.
    Runner(Move),
}

/// A runner's progress report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Move {
    Start(Stage),
    Update(Stage),
    Stop(Stage, bool),
    Finish(Tracker, bool),
    Dates,
    /// A keep-alive: renews the runner's lease and changes nothing.
    Alive,
}

/// Where a stage is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    Absent,
    Running,
    Done,
}

/// What the transition function may know about the trackers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Facts {
    /// Indexed by [`Stage::index`].
    pub(super) phases: [Phase; 8],
    /// Indexed like [`Tracker::ALL`]: the tracker exists and has not finished.
    pub(super) open: [bool; 3],
}

impl Facts {
    fn phase(&self, stage: Stage) -> Phase {
        self.phases[stage.index()]
    }

    fn is_open(&self, tracker: Tracker) -> bool {
        self.open[tracker as usize]
    }

    /// The running runner stage, restricted to `tracker` if given.
    fn running(&self, tracker: Option<Tracker>) -> Option<Stage> {
        Stage::ALL.into_iter().find(|&stage| {
            stage.tracker() != Tracker::Cancel
                && tracker.is_none_or(|t| stage.tracker() == t)
                && self.phase(stage) == Phase::Running
        })
    }
}

/// What the session must do to its trackers once a move is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Effect {
    /// Replace every tracker with fresh ones for a plan of this kind.
    Open(PlanKind),
    /// Re-emit the overview and apply trackers.
    Resume,
    StageStart(Stage),
    StageUpdate(Stage),
    /// Stop the stage successfully.
    StageStop(Stage),
    /// Finish the tracker successfully.
    TrackerFinish(Tracker),
    /// Stop the running stage (if any) and every open tracker with `fail`.
    FailPlan,
    Dates,
    /// Open the cancel tracker with its stage running.
    CancelBegin,
    /// Re-emit the cancel tracker.
    CancelRepeat,
    /// Nothing to do or emit (the runner's keep-alive).
    Alive,
    /// Nothing to cancel: a cancel tracker whose stage failed.
    CancelRefuse,
    /// `FailPlan`, then the cancel stage and tracker succeed.
    CancelComplete,
}

/// The whole machine: the next state and what to do, or why not.
pub(super) fn transition(
    state: PlanState,
    input: Input,
    facts: &Facts,
) -> Result<(PlanState, Effect), PlanError> {
    use PlanState as S;
    match input {
        Input::Open(kind) => Ok(if state.is_running() {
            (state, Effect::Resume)
        } else {
            let next = match kind {
                PlanKind::Preview => S::Overview,
                PlanKind::Apply => S::ApplyOverview,
            };
            (next, Effect::Open(kind))
        }),
        Input::Cancel => Ok(match state {
            S::Cancelling => (state, Effect::CancelRepeat),
            S::Overview | S::ApplyOverview | S::Applying => (S::Cancelling, Effect::CancelBegin),
            S::Idle | S::Finished | S::Cancelled => (state, Effect::CancelRefuse),
        }),
        Input::Runner(step) => match state {
            S::Idle => Err(PlanError::NoPlan),
            S::Finished => Err(PlanError::PlanFinished),
            S::Cancelled => Err(PlanError::PlanCancelled),
            S::Cancelling => cancelling(step, facts),
            S::Overview => running(Running::Overview, step, facts),
            S::ApplyOverview => running(Running::ApplyOverview, step, facts),
            S::Applying => running(Running::Applying, step, facts),
        },
    }
}

/// Invariant 5: only the move that completes the cancel gets through.
fn cancelling(step: Move, facts: &Facts) -> Result<(PlanState, Effect), PlanError> {
    // A runner that is still stopping keeps its lease.
    if step == Move::Alive {
        return Ok((PlanState::Cancelling, Effect::Alive));
    }
    let completes = match step {
        Move::Stop(stage, false) => {
            stage.tracker() != Tracker::Cancel && facts.phase(stage) == Phase::Running
        }
        Move::Finish(tracker, false) => tracker != Tracker::Cancel && facts.is_open(tracker),
        _ => false,
    };
    if completes {
        Ok((PlanState::Cancelled, Effect::CancelComplete))
    } else {
        Err(PlanError::Cancelling)
    }
}

/// The states in which the runner drives its trackers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Running {
    Overview,
    ApplyOverview,
    Applying,
}

/// What a runner tracker accepts in a running state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Takes its stages and its finish.
    Open,
    /// Not part of this plan.
    Absent,
    /// Part of this plan, waiting for the overview to succeed.
    Pending,
    /// Already finished.
    Finished,
}

impl Running {
    fn state(self) -> PlanState {
        match self {
            Running::Overview => PlanState::Overview,
            Running::ApplyOverview => PlanState::ApplyOverview,
            Running::Applying => PlanState::Applying,
        }
    }

    /// Invariant 3: which tracker takes moves in this state. The cancel tracker is never the
    /// runner's.
    fn role(self, tracker: Tracker) -> Role {
        match (self, tracker) {
            (Running::Overview | Running::ApplyOverview | Running::Applying, Tracker::Cancel) => {
                Role::Absent
            }
            (Running::Overview | Running::ApplyOverview, Tracker::Overview) => Role::Open,
            (Running::Applying, Tracker::Overview) => Role::Finished,
            (Running::Overview, Tracker::Apply) => Role::Absent,
            (Running::ApplyOverview, Tracker::Apply) => Role::Pending,
            (Running::Applying, Tracker::Apply) => Role::Open,
        }
    }

    /// Where a successful finish of the open tracker leads.
    fn after_finish(self) -> PlanState {
        match self {
            Running::Overview | Running::Applying => PlanState::Finished,
            Running::ApplyOverview => PlanState::Applying,
        }
    }
}

/// Runner moves in `Overview`, `ApplyOverview` and `Applying`.
fn running(at: Running, step: Move, facts: &Facts) -> Result<(PlanState, Effect), PlanError> {
    let state = at.state();
    match step {
        Move::Start(stage) => {
            stage_allowed(at, stage)?;
            match facts.phase(stage) {
                Phase::Running => Err(PlanError::StageAlreadyStarted(stage)),
                Phase::Done => Err(PlanError::StageFinished(stage)),
                Phase::Absent => match facts.running(None) {
                    Some(other) => Err(PlanError::StageRunning(other)),
                    None => Ok((state, Effect::StageStart(stage))),
                },
            }
        }
        Move::Update(stage) => {
            stage_running(at, stage, facts)?;
            Ok((state, Effect::StageUpdate(stage)))
        }
        Move::Stop(stage, success) => {
            stage_running(at, stage, facts)?;
            Ok(if success {
                (state, Effect::StageStop(stage))
            } else {
                (PlanState::Finished, Effect::FailPlan)
            })
        }
        Move::Finish(tracker, success) => {
            match at.role(tracker) {
                Role::Open => {}
                Role::Absent => return Err(PlanError::TrackerNotOpen(tracker)),
                Role::Pending => return Err(PlanError::OverviewPending),
                Role::Finished => return Err(PlanError::TrackerFinished(tracker)),
            }
            if !success {
                return Ok((PlanState::Finished, Effect::FailPlan));
            }
            if let Some(stage) = facts.running(Some(tracker)) {
                return Err(PlanError::StageRunning(stage));
            }
            Ok((at.after_finish(), Effect::TrackerFinish(tracker)))
        }
        Move::Dates => Ok((state, Effect::Dates)),
        Move::Alive => Ok((state, Effect::Alive)),
    }
}

/// Invariant 3 for stages.
fn stage_allowed(at: Running, stage: Stage) -> Result<(), PlanError> {
    match at.role(stage.tracker()) {
        Role::Open => Ok(()),
        Role::Absent => Err(PlanError::WrongTracker(stage)),
        Role::Pending => Err(PlanError::OverviewPending),
        Role::Finished => Err(PlanError::TrackerFinished(stage.tracker())),
    }
}

/// Invariants 2 and 3 for moves on a started stage.
fn stage_running(at: Running, stage: Stage, facts: &Facts) -> Result<(), PlanError> {
    stage_allowed(at, stage)?;
    match facts.phase(stage) {
        Phase::Absent => Err(PlanError::StageNotStarted(stage)),
        Phase::Done => Err(PlanError::StageFinished(stage)),
        Phase::Running => Ok(()),
    }
}
