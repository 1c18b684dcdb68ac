//! `PlanSession`: the trackers of the current plan, driven by [`super::machine::transition`].

use alloc::string::String;
use alloc::vec::Vec;

use crate::EventName;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::machine::{
    transition, Effect, Facts, Input, Move, Phase, PlanError, PlanKind, PlanState,
};
use super::request::{PlanCommand, PlanDate, PlanRequest};
use super::stage::{Stage, Tracker};
use super::tracker::{
    ApplyTracker, CancelTracker, OverviewTracker, StageMeta, StageState, Status, TrackerBase,
};

/// Whole-tracker events to emit, in order: `(event name, tracker JSON)`. SQLMesh re-sends the whole
/// tracker on every change, never a delta; an absent tracker is `{}`, as SQLMesh sends it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanUpdate {
    events: Vec<(EventName, String)>,
}

impl PlanUpdate {
    /// The events, in emission order.
    pub fn events(&self) -> &[(EventName, String)] {
        &self.events
    }

    /// The event names, in emission order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.events.iter().map(|(name, _)| name.as_str())
    }

    /// The number of events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there is nothing to emit.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The trackers as one JSON object keyed by event name, e.g.
    /// `{"plan-overview":{…},"plan-apply":{…}}`: the `snapshot` a `reset` event carries.
    pub fn to_json_object(&self) -> String {
        let mut object = String::from("{");
        for (index, (name, json)) in self.events.iter().enumerate() {
            if index > 0 {
                object.push(',');
            }
            // Event names are fixed ASCII constants, so they need no JSON escaping.
            object.push('"');
            object.push_str(name.as_str());
            object.push_str("\":");
            object.push_str(json);
        }
        object.push('}');
        object
    }
}

impl IntoIterator for PlanUpdate {
    type Item = (EventName, String);
    type IntoIter = alloc::vec::IntoIter<(EventName, String)>;

    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

/// What opening a plan did. Never an error: like SQLMesh, opening while a plan runs starts nothing
/// and re-emits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A new plan started; emit its fresh trackers.
    Started(PlanUpdate),
    /// A plan was already running and keeps running (the request is ignored); re-emit its overview
    /// and apply trackers.
    Resumed(PlanUpdate),
}

impl Opened {
    /// The events to emit.
    pub fn update(&self) -> &PlanUpdate {
        match self {
            Opened::Started(update) | Opened::Resumed(update) => update,
        }
    }

    /// The events to emit, by value.
    pub fn into_update(self) -> PlanUpdate {
        match self {
            Opened::Started(update) | Opened::Resumed(update) => update,
        }
    }

    /// Whether a new plan started.
    pub fn is_started(&self) -> bool {
        matches!(self, Opened::Started(_))
    }
}

/// The current plan of one hub: a state and SQLMesh's three trackers.
///
/// Serialises to JSON for storage and validates on the way back in: a restored session satisfies
/// the same invariants as a live one. The trackers inside keep SQLMesh's shapes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanSession {
    state: PlanState,
    #[serde(skip_serializing_if = "Option::is_none")]
    overview: Option<OverviewTracker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apply: Option<ApplyTracker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancel: Option<CancelTracker>,
    /// The request that opened the plan (categories included), for the runner.
    #[serde(skip_serializing_if = "Option::is_none")]
    request: Option<PlanRequest>,
    /// When the plan opened, epoch ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    opened_ms: Option<u64>,
    /// When the plan opened or its runner last reported, epoch ms: the start of the runner's
    /// lease.
    #[serde(skip_serializing_if = "Option::is_none")]
    reported_ms: Option<u64>,
}

impl Default for PlanSession {
    fn default() -> Self {
        PlanSession::new()
    }
}

impl PlanSession {
    /// An idle session: no plan yet.
    pub fn new() -> PlanSession {
        PlanSession {
            state: PlanState::Idle,
            overview: None,
            apply: None,
            cancel: None,
            request: None,
            opened_ms: None,
            reported_ms: None,
        }
    }

    /// Opens a preview plan (SQLMesh's `POST /api/plan`): an overview tracker only. Emits
    /// `plan-overview`.
    pub fn open(&mut self, request: PlanRequest, now_ms: u64) -> Opened {
        self.open_kind(PlanKind::Preview, request, now_ms)
    }

    /// Opens an apply plan (SQLMesh's `POST /api/commands/apply`): an apply tracker, open from the
    /// start so a cancel is never lost between phases, then the overview. Emits `plan-apply`,
    /// `plan-overview`, in SQLMesh's order.
    pub fn open_apply(&mut self, request: PlanRequest, now_ms: u64) -> Opened {
        self.open_kind(PlanKind::Apply, request, now_ms)
    }

    fn open_kind(&mut self, kind: PlanKind, request: PlanRequest, now_ms: u64) -> Opened {
        match self.step(Input::Open(kind), Some(request), None, now_ms) {
            Ok((Effect::Open(_), update)) => Opened::Started(update),
            Ok((_, update)) => Opened::Resumed(update),
            // `transition` accepts every open; should that ever change, re-emitting is the safe
            // answer.
            Err(_) => Opened::Resumed(self.resume_events()),
        }
    }

    /// Applies a runner command or a cancel. On error nothing changes.
    pub fn apply(&mut self, command: PlanCommand, now_ms: u64) -> Result<PlanUpdate, PlanError> {
        let input = match &command {
            PlanCommand::Start { stage, .. } => Input::Runner(Move::Start(*stage)),
            PlanCommand::Update { stage, .. } => Input::Runner(Move::Update(*stage)),
            PlanCommand::Stop { stage, success, .. } => Input::Runner(Move::Stop(*stage, *success)),
            PlanCommand::Finish { tracker, success } => {
                Input::Runner(Move::Finish(*tracker, *success))
            }
            PlanCommand::Dates { .. } => Input::Runner(Move::Dates),
            PlanCommand::Alive => Input::Runner(Move::Alive),
            PlanCommand::Cancel => Input::Cancel,
        };
        self.step(input, None, Some(&command), now_ms)
            .map(|(_, update)| update)
    }

    /// All three trackers, for a client that connects mid-plan: SQLMesh's `GET /api/meta` re-emits
    /// exactly these. As in SQLMesh, which forgets its apply and cancel trackers once they have
    /// ended, a finished apply or cancel tracker is `{}` here (its last state went out live):
    /// SQLMesh's UI answers a finished `plan-apply` by starting a new plan, so re-sending one
    /// to every new connection would start a plan on every reconnect. An absent tracker is `{}`
    /// too; the overview is sent as it is, finished or not.
    pub fn snapshot(&self) -> PlanUpdate {
        let mut update = PlanUpdate::default();
        for tracker in Tracker::ALL {
            let ended = tracker != Tracker::Overview
                && self.base(tracker).is_some_and(|base| base.meta.is_done());
            if ended {
                update
                    .events
                    .push((tracker.event_name(), String::from("{}")));
            } else {
                self.emit(&mut update, tracker);
            }
        }
        update
    }

    /// All three trackers as they stand, finished ones included (`{}` only where absent): what a
    /// client that wants to show how the last plan ended asks for (Herald's live page), unlike
    /// SQLMesh's UI, which [`PlanSession::snapshot`] serves.
    pub fn last_trackers(&self) -> PlanUpdate {
        let mut update = PlanUpdate::default();
        for tracker in Tracker::ALL {
            self.emit(&mut update, tracker);
        }
        update
    }

    /// The request that opened the current (or last) plan: environment, dates, options and the
    /// per-model change categories the user chose, for the runner to build the plan with.
    pub fn request(&self) -> Option<&PlanRequest> {
        self.request.as_ref()
    }

    /// When the current (or last) plan opened, epoch ms: it tells one plan from the next.
    pub fn opened_ms(&self) -> Option<u64> {
        self.opened_ms
    }

    /// When the runner's lease on the running plan ends if it reports nothing more, epoch ms:
    /// `lease_ms` after the plan opened or the runner's last accepted report. `None` when no
    /// plan runs.
    pub fn lease_deadline_ms(&self, lease_ms: u64) -> Option<u64> {
        self.state
            .is_running()
            .then(|| self.reported_ms.unwrap_or(0).saturating_add(lease_ms))
    }

    /// Ends a plan whose runner has not reported for `lease_ms` at `now_ms`, as if the runner had
    /// failed its open tracker: the running stage and every open tracker fail and the plan
    /// finishes; a plan being cancelled completes its cancel (the cancel succeeds, the plan
    /// ends cancelled). `None` (and nothing changes) when no plan runs or its lease has not
    /// ended.
    pub fn expire_lease(&mut self, now_ms: u64, lease_ms: u64) -> Option<PlanUpdate> {
        if now_ms < self.lease_deadline_ms(lease_ms)? {
            return None;
        }
        let tracker = if self.is_open(Tracker::Overview) {
            Tracker::Overview
        } else {
            Tracker::Apply
        };
        self.step(
            Input::Runner(Move::Finish(tracker, false)),
            None,
            None,
            now_ms,
        )
        .ok()
        .map(|(_, update)| update)
    }

    /// Where the session is.
    pub fn state(&self) -> PlanState {
        self.state
    }

    /// Whether a cancel is waiting for the runner: tell it to stop its running stage with `success:
    /// false`.
    pub fn is_cancelling(&self) -> bool {
        self.state.is_cancelling()
    }

    /// The overview tracker, if a plan has been opened.
    pub fn overview(&self) -> Option<&OverviewTracker> {
        self.overview.as_ref()
    }

    /// The apply tracker, if this is an apply plan.
    pub fn apply_tracker(&self) -> Option<&ApplyTracker> {
        self.apply.as_ref()
    }

    /// The cancel tracker, if a cancel was asked for since the plan opened.
    pub fn cancel_tracker(&self) -> Option<&CancelTracker> {
        self.cancel.as_ref()
    }

    fn step(
        &mut self,
        input: Input,
        request: Option<PlanRequest>,
        command: Option<&PlanCommand>,
        now_ms: u64,
    ) -> Result<(Effect, PlanUpdate), PlanError> {
        let (next, effect) = transition(self.state, input, &self.facts())?;
        let details = command.and_then(PlanCommand::details);
        let mut update = PlanUpdate::default();
        if matches!(input, Input::Runner(_)) {
            self.reported_ms = Some(now_ms);
        }
        match effect {
            Effect::Open(kind) => {
                self.open_trackers(kind, request.unwrap_or_default(), now_ms, &mut update)
            }
            Effect::Resume => update = self.resume_events(),
            Effect::StageStart(stage) => {
                let environment = self.environment().map(String::from);
                if let Some(slot) = self.slot_mut(stage) {
                    *slot = Some(StageState::start(
                        stage,
                        environment.as_deref(),
                        details,
                        now_ms,
                    ));
                }
                self.emit(&mut update, stage.tracker());
            }
            Effect::StageUpdate(stage) => {
                if let (Some(state), Some(details)) = (self.running_mut(stage), details) {
                    state.merge(details);
                }
                self.emit(&mut update, stage.tracker());
            }
            Effect::StageStop(stage) => {
                if let Some(state) = self.running_mut(stage) {
                    if let Some(details) = details {
                        state.merge(details);
                    }
                    state.meta.stop(true, now_ms);
                }
                self.emit(&mut update, stage.tracker());
            }
            Effect::TrackerFinish(tracker) => {
                if let Some(meta) = self.tracker_meta_mut(tracker) {
                    meta.stop(true, now_ms);
                }
                self.emit(&mut update, tracker);
            }
            Effect::FailPlan => self.fail_and_emit(details, now_ms, &mut update),
            Effect::Dates => {
                if let Some(PlanCommand::Dates { start, end }) = command {
                    self.set_dates(start.as_ref(), end.as_ref(), &mut update);
                }
            }
            Effect::CancelBegin => {
                self.cancel = Some(CancelTracker::new(now_ms));
                self.emit(&mut update, Tracker::Cancel);
            }
            Effect::CancelRepeat => self.emit(&mut update, Tracker::Cancel),
            Effect::Alive => {}
            Effect::CancelRefuse => self.refuse_cancel(now_ms, &mut update),
            Effect::CancelComplete => {
                self.fail_and_emit(details, now_ms, &mut update);
                self.end_cancel(true, now_ms);
                self.emit(&mut update, Tracker::Cancel);
            }
        }
        self.state = next;
        Ok((effect, update))
    }

    /// A new plan: its request kept for the runner, fresh trackers (the apply tracker only for a
    /// plan that applies), no cancel.
    fn open_trackers(
        &mut self,
        kind: PlanKind,
        request: PlanRequest,
        now_ms: u64,
        update: &mut PlanUpdate,
    ) {
        self.opened_ms = Some(now_ms);
        self.reported_ms = Some(now_ms);
        self.request = Some(request.clone());
        let dates = request.plan_dates.unwrap_or_default();
        let options = Some(request.plan_options.unwrap_or_default());
        let base =
            TrackerBase::started(request.environment, options, dates.start, dates.end, now_ms);
        self.apply = (kind == PlanKind::Apply).then(|| ApplyTracker::new(base.clone()));
        self.overview = Some(OverviewTracker::new(base));
        self.cancel = None;
        if kind == PlanKind::Apply {
            self.emit(update, Tracker::Apply);
        }
        self.emit(update, Tracker::Overview);
    }

    /// Fails whatever runs (with the runner's details) and emits each tracker that changed.
    fn fail_and_emit(
        &mut self,
        details: Option<&Map<String, Value>>,
        now_ms: u64,
        update: &mut PlanUpdate,
    ) {
        for tracker in self.fail_open(details, now_ms) {
            self.emit(update, tracker);
        }
    }

    /// The runner's plan dates, on every tracker still running.
    fn set_dates(
        &mut self,
        start: Option<&PlanDate>,
        end: Option<&PlanDate>,
        update: &mut PlanUpdate,
    ) {
        for tracker in [Tracker::Overview, Tracker::Apply] {
            if let Some(base) = self.base_mut(tracker).filter(|base| !base.meta.is_done()) {
                if start.is_some() {
                    base.start = start.cloned();
                }
                if end.is_some() {
                    base.end = end.cloned();
                }
                self.emit(update, tracker);
            }
        }
    }

    /// A cancel with nothing to cancel. SQLMesh (plan.py, console.py): the tracker is emitted as it
    /// starts, before its stage exists; with nothing to cancel the stage stops with `fail` and the
    /// tracker is stopped after it, which leaves the tracker `success`: what SQLMesh's UI shows as
    /// cancelled.
    fn refuse_cancel(&mut self, now_ms: u64, update: &mut PlanUpdate) {
        let mut cancel = CancelTracker::new(now_ms);
        cancel.cancel = None;
        self.cancel = Some(cancel);
        self.emit(update, Tracker::Cancel);
        let mut cancel = CancelTracker::new(now_ms);
        if let Some(stage) = &mut cancel.cancel {
            stage.meta.stop(false, now_ms);
        }
        cancel.base.meta.stop(true, now_ms);
        self.cancel = Some(cancel);
        self.emit(update, Tracker::Cancel);
    }

    /// Stops the running stage (after a last patch) and every open runner tracker with `fail`;
    /// returns the trackers that changed, in emission order.
    fn fail_open(&mut self, details: Option<&Map<String, Value>>, now_ms: u64) -> Vec<Tracker> {
        let mut changed = Vec::new();
        for tracker in [Tracker::Overview, Tracker::Apply] {
            if !self.is_open(tracker) {
                continue;
            }
            for stage in Stage::ALL
                .into_iter()
                .filter(|stage| stage.tracker() == tracker)
            {
                if let Some(state) = self.running_mut(stage) {
                    if let Some(details) = details {
                        state.merge(details);
                    }
                    state.meta.stop(false, now_ms);
                }
            }
            if let Some(meta) = self.tracker_meta_mut(tracker) {
                meta.stop(false, now_ms);
            }
            changed.push(tracker);
        }
        changed
    }

    fn end_cancel(&mut self, success: bool, now_ms: u64) {
        if let Some(cancel) = &mut self.cancel {
            if let Some(stage) = cancel.cancel.as_mut().filter(|stage| !stage.meta.is_done()) {
                stage.meta.stop(success, now_ms);
            }
            if !cancel.base.meta.is_done() {
                cancel.base.meta.stop(success, now_ms);
            }
        }
    }

    fn resume_events(&self) -> PlanUpdate {
        let mut update = PlanUpdate::default();
        self.emit(&mut update, Tracker::Overview);
        self.emit(&mut update, Tracker::Apply);
        update
    }

    fn emit(&self, update: &mut PlanUpdate, tracker: Tracker) {
        // These types hold only strings, integers, booleans and serde_json values under string
        // keys, so serialising them cannot fail; an empty object (SQLMesh's "no tracker")
        // is the fallback rather than a panic.
        let json = match tracker {
            Tracker::Overview => self
                .overview
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok()),
            Tracker::Apply => self
                .apply
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok()),
            Tracker::Cancel => self
                .cancel
                .as_ref()
                .and_then(|t| serde_json::to_string(t).ok()),
        };
        update.events.push((
            tracker.event_name(),
            json.unwrap_or_else(|| String::from("{}")),
        ));
    }

    fn environment(&self) -> Option<&str> {
        self.apply
            .as_ref()
            .map(|t| &t.base)
            .or(self.overview.as_ref().map(|t| &t.base))
            .and_then(|base| base.environment.as_deref())
    }

    fn base(&self, tracker: Tracker) -> Option<&TrackerBase> {
        match tracker {
            Tracker::Overview => self.overview.as_ref().map(|t| &t.base),
            Tracker::Apply => self.apply.as_ref().map(|t| &t.base),
            Tracker::Cancel => self.cancel.as_ref().map(|t| &t.base),
        }
    }

    fn base_mut(&mut self, tracker: Tracker) -> Option<&mut TrackerBase> {
        match tracker {
            Tracker::Overview => self.overview.as_mut().map(|t| &mut t.base),
            Tracker::Apply => self.apply.as_mut().map(|t| &mut t.base),
            Tracker::Cancel => self.cancel.as_mut().map(|t| &mut t.base),
        }
    }

    fn tracker_meta_mut(&mut self, tracker: Tracker) -> Option<&mut StageMeta> {
        self.base_mut(tracker).map(|base| &mut base.meta)
    }

    /// The stage's slot, if its tracker exists.
    fn slot(&self, stage: Stage) -> Option<&Option<StageState>> {
        match stage {
            Stage::Validation => self.overview.as_ref().map(|t| &t.validation),
            Stage::Changes => self.overview.as_ref().map(|t| &t.changes),
            Stage::Backfills => self.overview.as_ref().map(|t| &t.backfills),
            Stage::Creation => self.apply.as_ref().map(|t| &t.creation),
            Stage::Restate => self.apply.as_ref().map(|t| &t.restate),
            Stage::Backfill => self.apply.as_ref().map(|t| &t.backfill),
            Stage::Promote => self.apply.as_ref().map(|t| &t.promote),
            Stage::Cancel => self.cancel.as_ref().map(|t| &t.cancel),
        }
    }

    fn slot_mut(&mut self, stage: Stage) -> Option<&mut Option<StageState>> {
        match stage {
            Stage::Validation => self.overview.as_mut().map(|t| &mut t.validation),
            Stage::Changes => self.overview.as_mut().map(|t| &mut t.changes),
            Stage::Backfills => self.overview.as_mut().map(|t| &mut t.backfills),
            Stage::Creation => self.apply.as_mut().map(|t| &mut t.creation),
            Stage::Restate => self.apply.as_mut().map(|t| &mut t.restate),
            Stage::Backfill => self.apply.as_mut().map(|t| &mut t.backfill),
            Stage::Promote => self.apply.as_mut().map(|t| &mut t.promote),
            Stage::Cancel => self.cancel.as_mut().map(|t| &mut t.cancel),
        }
    }

    fn running_mut(&mut self, stage: Stage) -> Option<&mut StageState> {
        self.slot_mut(stage)?
            .as_mut()
            .filter(|state| !state.meta.is_done())
    }

    fn phase(&self, stage: Stage) -> Phase {
        match self.slot(stage).and_then(Option::as_ref) {
            None => Phase::Absent,
            Some(state) if state.meta.is_done() => Phase::Done,
            Some(_) => Phase::Running,
        }
    }

    fn is_open(&self, tracker: Tracker) -> bool {
        self.base(tracker).is_some_and(|base| !base.meta.is_done())
    }

    fn facts(&self) -> Facts {
        Facts {
            phases: Stage::ALL.map(|stage| self.phase(stage)),
            open: Tracker::ALL.map(|tracker| self.is_open(tracker)),
        }
    }

    /// The invariants of `machine.rs`, checked against a restored session.
    fn check(&self) -> Result<(), &'static str> {
        use PlanState as S;
        let exists = |tracker: Tracker| self.base(tracker).is_some();
        let open = |tracker: Tracker| self.is_open(tracker);
        let closed_or_absent = |tracker: Tracker| !open(tracker);
        let running: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|&stage| stage != Stage::Cancel && self.phase(stage) == Phase::Running)
            .collect();
        if running.len() > 1 {
            return Err("more than one stage running");
        }
        // A finished tracker has no running stage.
        if Stage::ALL
            .into_iter()
            .any(|stage| self.phase(stage) == Phase::Running && !open(stage.tracker()))
        {
            return Err("running stage in a finished tracker");
        }
        let overview_succeeded = self
            .overview
            .as_ref()
            .is_some_and(|t| t.base.meta.status() == Status::Success);
        let apply_untouched = self.apply.as_ref().is_some_and(|t| {
            t.creation.is_none()
                && t.restate.is_none()
                && t.backfill.is_none()
                && t.promote.is_none()
        });
        let cancel_running = self.phase(Stage::Cancel) == Phase::Running && open(Tracker::Cancel);
        let consistent = match self.state {
            S::Idle => {
                !exists(Tracker::Overview)
                    && !exists(Tracker::Apply)
                    && closed_or_absent(Tracker::Cancel)
            }
            S::Overview => {
                open(Tracker::Overview) && !exists(Tracker::Apply) && !exists(Tracker::Cancel)
            }
            S::ApplyOverview => {
                open(Tracker::Overview)
                    && open(Tracker::Apply)
                    && apply_untouched
                    && !exists(Tracker::Cancel)
            }
            S::Applying => overview_succeeded && open(Tracker::Apply) && !exists(Tracker::Cancel),
            S::Cancelling => cancel_running && (open(Tracker::Overview) || open(Tracker::Apply)),
            S::Finished => {
                exists(Tracker::Overview)
                    && closed_or_absent(Tracker::Overview)
                    && closed_or_absent(Tracker::Apply)
                    && closed_or_absent(Tracker::Cancel)
            }
            S::Cancelled => {
                exists(Tracker::Overview)
                    && closed_or_absent(Tracker::Overview)
                    && closed_or_absent(Tracker::Apply)
                    // A later cancel with nothing to cancel replaces the successful one with its refusal.
                    && exists(Tracker::Cancel)
                    && closed_or_absent(Tracker::Cancel)
            }
        };
        if consistent {
            Ok(())
        } else {
            Err("plan state does not match its trackers")
        }
    }
}

/// The stored form: the same fields, read without validation, then checked.
#[derive(Deserialize)]
struct SessionRepr {
    state: PlanState,
    #[serde(default)]
    overview: Option<OverviewTracker>,
    #[serde(default)]
    apply: Option<ApplyTracker>,
    #[serde(default)]
    cancel: Option<CancelTracker>,
    #[serde(default)]
    request: Option<PlanRequest>,
    #[serde(default)]
    opened_ms: Option<u64>,
    #[serde(default)]
    reported_ms: Option<u64>,
}

impl<'de> Deserialize<'de> for PlanSession {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = SessionRepr::deserialize(deserializer)?;
        let session = PlanSession {
            state: repr.state,
            overview: repr.overview,
            apply: repr.apply,
            cancel: repr.cancel,
            request: repr.request,
            opened_ms: repr.opened_ms,
            reported_ms: repr.reported_ms,
        };
        session.check().map_err(D::Error::custom)?;
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applying() -> PlanSession {
        let mut session = PlanSession::new();
        session.open_apply(PlanRequest::default(), 10);
        for command in [
            PlanCommand::Start {
                stage: Stage::Validation,
                details: None,
            },
            PlanCommand::Stop {
                stage: Stage::Validation,
                success: true,
                details: None,
            },
            PlanCommand::Finish {
                tracker: Tracker::Overview,
                success: true,
            },
            PlanCommand::Start {
                stage: Stage::Creation,
                details: None,
            },
        ] {
            session.apply(command, 20).expect("legal move");
        }
        session
    }

    #[test]
    fn live_sessions_pass_their_own_check() {
        let mut session = applying();
        assert_eq!(session.check(), Ok(()));
        session.apply(PlanCommand::Cancel, 30).expect("cancel");
        assert_eq!(session.check(), Ok(()));
    }

    #[test]
    fn check_rejects_a_state_that_contradicts_the_trackers() {
        let mut session = applying();
        session.state = PlanState::Overview;
        assert!(session.check().is_err());
        session.state = PlanState::Idle;
        assert!(session.check().is_err());
        session.state = PlanState::Finished;
        assert!(session.check().is_err(), "apply tracker still open");
    }

    #[test]
    fn check_rejects_two_running_stages() {
        let mut session = applying();
        if let Some(apply) = &mut session.apply {
            apply.restate = Some(StageState::start(Stage::Restate, None, None, 25));
        }
        assert_eq!(session.check(), Err("more than one stage running"));
    }

    #[test]
    fn a_clock_stepping_back_never_makes_a_negative_duration() {
        let mut session = applying();
        session
            .apply(
                PlanCommand::Stop {
                    stage: Stage::Creation,
                    success: true,
                    details: None,
                },
                5,
            )
            .expect("stop");
        let creation = session
            .apply
            .as_ref()
            .and_then(|t| t.creation.as_ref())
            .expect("creation");
        assert_eq!(creation.meta.duration_ms(), Some(0));
        assert_eq!(creation.meta.end_ms(), Some(20));
    }
}
