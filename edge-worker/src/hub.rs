//! The Hub: one Durable Object per (tenant, connection id). It numbers events, keeps the bounded
//! replay log in SQLite, runs the SQLMesh plan session, and sends each subscriber's relay (in the
//! Worker) one WebSocket message per batch. Every rule it applies is herald-core's ([`StreamHub`]).
//!
//! The Hub holds no open request, no streamed body and no timer: subscribers are hibernatable
//! WebSockets whose filter and cursor ride in their attachments, so the runtime can evict the Hub
//! between publishes. On wake it reads only its meta rows; the log is read when a replay needs it.
//! While a SQLMesh plan runs, a Durable Object alarm marks the end of its runner's lease; an alarm
//! does not keep the Hub awake (the runtime wakes it to run `alarm`).

use std::cell::RefCell;

use herald_core::durable::ProducerState;
use herald_core::hub::{Batch, Refused, SubscriberRecord, Subscription};
use herald_core::plan::{PlanCommand, PlanError, PlanRequest, PlanSession, PlanUpdate};
use herald_core::resume::JoinPolicy;
use herald_core::sluice::{fill_previous_states, fresh_ingest_events, parse_ingest, IngestEvent};
use herald_core::{parse_publish, Filter, Hub as StreamHub, NewEvent, PublishLimits};
use serde::Serialize;
use sha2::{Digest, Sha256};
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen_futures::spawn_local;
use worker::{
    console_error, durable_object, DurableObject, Env, Request, Response, ScheduledTime, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::body::read_capped;
use crate::call::HubCall;
use crate::config::Config;
use crate::directory::{self, HubAction, HubReport};
use crate::error::{ApiError, ApiResult};
use crate::producer_gate::{producer_of, Gate, ProducerTable};
use crate::routes::{ingest_error, publish_error, Family};
use crate::storage::{Ingested, Store, NAME, PLAN};
use crate::stream::now_ms;

/// What the Hub keeps in memory once it has read its meta rows.
#[derive(Debug)]
struct Loaded {
    store: Store,
    hub: StreamHub,
    plan: Option<PlanSession>,
    /// Whether storage holds the hub's name (see [`NAME`]).
    name_stored: bool,
}

#[durable_object]
pub struct Hub {
    state: State,
    env: Env,
    /// When this in-memory instance started (its constructor ran): a wake from hibernation, an
    /// eviction or a restart shows as a new value in `/stats`.
    started_ms: u64,
    loaded: RefCell<Option<Loaded>>,
    /// The distinct filters of the open sockets, by tag (see [`Filters`]).
    filters: RefCell<Filters>,
    /// This hub's entry in its tenant's stream directory: made at the first call (it needs the
    /// settings) and kept in memory.
    directory: RefCell<Option<HubReport>>,
}

/// The distinct filters of a hub's open sockets, each keyed by the tag its sockets carry
/// (`f:` and a hash of the filter). A publish encodes one message per filter and sends it to the
/// sockets with that tag, so it reads no socket's attachment.
///
/// An instance that starts (a wake, a restart) does not know the filters of the sockets it
/// inherited: its first publish reads every attachment once (`complete` then holds); sockets it
/// accepts itself are added as they come.
#[derive(Debug, Default)]
struct Filters {
    by_tag: Vec<(String, Filter)>,
    complete: bool,
}

impl Filters {
    fn learn(&mut self, tag: String, filter: Filter) {
        if !self.by_tag.iter().any(|(known, _)| *known == tag) {
            self.by_tag.push((tag, filter));
        }
    }
}

/// The tag of the sockets whose subscribers share `filter`: `f:` and 128 bits of SHA-256 of the
/// filter's JSON (a filter may be kilobytes; a tag is at most 256 characters).
fn filter_tag(filter: &Filter) -> ApiResult<String> {
    let json = serde_json::to_vec(filter).map_err(|e| ApiError::Internal(e.to_string()))?;
    let digest = Sha256::digest(&json);
    let mut tag = String::with_capacity(34);
    tag.push_str("f:");
    for byte in &digest[..16] {
        tag.push_str(&format!("{byte:02x}"));
    }
    Ok(tag)
}

impl core::fmt::Debug for Hub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hub")
            .field("started_ms", &self.started_ms)
            .finish_non_exhaustive()
    }
}

impl DurableObject for Hub {
    fn new(state: State, env: Env) -> Self {
        Hub {
            state,
            env,
            started_ms: now_ms(),
            loaded: RefCell::new(None),
            filters: RefCell::default(),
            directory: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        let served = self.serve(&mut request).await;
        if let Ok(config) = Config::get(&self.env) {
            self.report_to_directory(config);
        }
        match served {
            Ok(response) => Ok(response),
            Err(error) => error.into_response(),
        }
    }

    /// The runner's lease on a running plan has ended, or was renewed meanwhile: the plan fails (or
    /// its cancel completes) if no report came in time, else the alarm is set again for the new
    /// end. An alarm does not keep the Hub awake while it waits.
    async fn alarm(&self) -> worker::Result<Response> {
        let config = match Config::get(&self.env) {
            Ok(config) => config,
            Err(error) => {
                console_error!("alarm: configuration refused: {error:?}");
                return Response::empty();
            }
        };
        self.with_report(config, HubReport::alarm_fired);
        if let Err(error) = self.check_lease(config).await {
            // An error makes the runtime run the alarm again, with backoff.
            console_error!("plan lease check failed: {error:?}");
            return Err(worker::Error::RustError(
                "the plan lease check failed".into(),
            ));
        }
        self.report_to_directory(config);
        Response::empty()
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        // Relays never speak; a message is ignored rather than answered.
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> worker::Result<()> {
        // The relay went away (its client left or its stream ended). Completing the close handshake
        // takes the socket out of `get_websockets` at once; the runtime may already have done so.
        let _ = ws.close(Some(1000), Some("relay closed"));
        // The directory's subscriber count (a woken hub does not know its name yet: nothing).
        if let Ok(config) = Config::get(&self.env) {
            if self.ensure_loaded(config).is_ok() {
                self.report_to_directory(config);
            }
        }
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        let _ = ws.close(Some(1011), Some("socket error"));
        Ok(())
    }
}

#[derive(Serialize)]
struct Stats {
    subscribers: usize,
    last_id: Option<String>,
    oldest_id: Option<String>,
    log_events: usize,
    log_bytes: usize,
    complete: bool,
    hub_started_ms: u64,
    log_loaded: bool,
}

#[derive(Serialize)]
struct Published {
    ids: Vec<String>,
}

fn illegal(error: PlanError) -> ApiError {
    ApiError::conflict("illegal_transition", error)
}

fn refused(error: Refused, config: &Config) -> ApiError {
    match error {
        Refused::UnknownCategory { category } => ApiError::bad_request(
            "invalid_event",
            format!(
                "unknown category {category:?} (known: {})",
                config.categories.join(", ")
            ),
        ),
        Refused::Complete => ApiError::conflict("stream_complete", Refused::Complete),
        error @ Refused::EventsAfterComplete { .. } => {
            ApiError::bad_request("invalid_event", error)
        }
    }
}

/// A plan update as events to publish.
fn plan_events(update: PlanUpdate) -> Vec<NewEvent> {
    update
        .into_iter()
        .map(|(name, data)| NewEvent {
            name,
            data,
            category: None,
        })
        .collect()
}

/// A producer's publish (`Producer-Id` and friends): its id, and the state to store with the batch.
type Producing<'a> = (&'a str, ProducerState);

/// What a subscribe call asks for beside its filter (see [`HubCall::Subscribe`]).
#[derive(Debug, Clone, Copy)]
struct SubscribeAsk<'a> {
    last_event_id: Option<&'a str>,
    /// The credential's id, the tag that bounds its sockets.
    credential: &'a str,
    join: JoinPolicy,
    /// SQLMesh's finished trackers as they ended (`trackers=last`) rather than `{}`.
    last_trackers: bool,
}

fn not_loaded() -> ApiError {
    ApiError::Internal("the hub's state is not loaded".into())
}

impl Hub {
    async fn serve(&self, request: &mut Request) -> ApiResult<Response> {
        let config = Config::get(&self.env)?;
        let url = request.url()?;
        let call = HubCall::decode(&request.method(), &url)?;
        let name = url
            .query_pairs()
            .find(|(key, _)| key == "hub")
            .map(|(_, name)| name.into_owned());
        if let HubCall::Subscribe { family, .. } = &call {
            self.with_report(config, |report| report.saw_subscribe(*family));
        }
        // Read a body before touching state: a request awaits nothing once it holds the Hub's
        // state. The Worker forwards only bodies within the limit; the Hub checks again, so
        // that nothing else that reaches it can make it hold more.
        let body = if call.has_body() {
            read_capped(request, config.publish.batch_bytes_max).await?
        } else {
            Vec::new()
        };
        self.ensure_loaded(config)?;
        if let Some(name) = name {
            self.learn_name(config, &name)?;
        }
        match call {
            HubCall::Subscribe {
                filter,
                last_event_id,
                credential,
                family: _,
                join,
                last_trackers,
            } => self.subscribe(
                request,
                config,
                filter,
                SubscribeAsk {
                    last_event_id: last_event_id.as_deref(),
                    credential: &credential,
                    join,
                    last_trackers,
                },
            ),
            HubCall::Publish => {
                let events = parse_publish(&body, &config.publish).map_err(publish_error)?;
                // Idempotent producers (producer_gate.rs): a retried batch is answered, not stored.
                let gate = match producer_of(request)? {
                    Some(producer) => {
                        let table = ProducerTable::open(&self.state)?;
                        match table.check(&producer)? {
                            Gate::Answer(response) => return Ok(response),
                            Gate::Store(next) => Some((table, producer.id, next)),
                        }
                    }
                    None => None,
                };
                let producer = gate.as_ref().map(|(_, id, next)| (id.as_str(), *next));
                let ids = self.publish(config, events, producer)?;
                let response = Response::from_json(&Published { ids })?;
                match gate {
                    Some((_, _, next)) => {
                        let headers = response.headers().clone();
                        headers.set("producer-epoch", &next.epoch.to_string())?;
                        headers.set("producer-seq", &next.last_seq.to_string())?;
                        Ok(response.with_headers(headers))
                    }
                    None => Ok(response),
                }
            }
            HubCall::Ingest => {
                let events = parse_ingest(&body, &config.publish).map_err(ingest_error)?;
                let fresh = self.with_loaded(|loaded| {
                    let store = &loaded.store;
                    let mut failure = None;
                    let kept = fresh_ingest_events(&events, |fingerprint| {
                        store.seen(fingerprint).unwrap_or_else(|error| {
                            failure.get_or_insert(error);
                            true
                        })
                    });
                    let mut fresh: Vec<IngestEvent> = kept
                        .into_iter()
                        .filter_map(|index| events.get(index).cloned())
                        .collect();
                    fill_previous_states(&mut fresh, |external_id| {
                        store.job_state(external_id).unwrap_or_else(|error| {
                            failure.get_or_insert(error);
                            None
                        })
                    });
                    match failure {
                        Some(error) => Err(ApiError::from(error)),
                        None => Ok(fresh),
                    }
                })?;
                let duplicates = events.len() - fresh.len();
                let ingested: Vec<Ingested<'_>> = fresh
                    .iter()
                    .map(|e| Ingested {
                        fingerprint: &e.fingerprint,
                        job: e.job_state(),
                    })
                    .collect();
                let ids = if fresh.is_empty() {
                    Vec::new()
                } else {
                    let new_events = fresh.iter().map(|e| e.event.clone()).collect();
                    self.publish_remembering(config, new_events, &ingested, None)?
                };
                Ok(Response::from_json(&serde_json::json!({
                    "ids": ids,
                    "accepted": ids.len(),
                    "duplicates": duplicates,
                }))?)
            }
            HubCall::Stats => self.stats(),
            HubCall::Disconnect => {
                let sockets = self.state.get_websockets();
                for socket in &sockets {
                    let _ = socket.close(Some(1000), Some("disconnected"));
                }
                Ok(Response::from_json(
                    &serde_json::json!({ "disconnected": sockets.len() }),
                )?)
            }
            HubCall::PlanOpen | HubCall::PlanApply => {
                config.publish.check_body(&body).map_err(publish_error)?;
                // SQLMesh (FastAPI) answers 422 to a body that does not validate.
                let plan_request =
                    PlanRequest::from_json(&body).map_err(|e| ApiError::Unprocessable {
                        code: "invalid_plan",
                        message: e.to_string(),
                    })?;
                // SQLMesh: `/api/plan` previews (overview only); `/api/commands/apply` also
                // applies.
                let apply = call == HubCall::PlanApply;
                self.plan_step(config, |session, now| {
                    let opened = if apply {
                        session.open_apply(plan_request, now)
                    } else {
                        session.open(plan_request, now)
                    };
                    Ok(opened.into_update())
                })?;
                self.arm_lease(config).await?;
                Ok(Response::empty()?.with_status(204))
            }
            HubCall::PlanCommand => {
                config.publish.check_body(&body).map_err(publish_error)?;
                let command = PlanCommand::from_json(&body)
                    .map_err(|e| ApiError::bad_request("invalid_plan_command", e))?;
                let ids = self.plan_step(config, |session, now| {
                    session.apply(command, now).map_err(illegal)
                })?;
                self.arm_lease(config).await?;
                let cancelling = self.with_loaded(|loaded| {
                    Ok(loaded.plan.as_ref().is_some_and(PlanSession::is_cancelling))
                })?;
                Ok(Response::from_json(
                    &serde_json::json!({ "ids": ids, "cancelling": cancelling }),
                )?)
            }
            HubCall::PlanCancel => {
                self.plan_step(config, |session, now| {
                    session.apply(PlanCommand::Cancel, now).map_err(illegal)
                })?;
                // The lease's alarm is already set; setting it again costs little and makes sure
                // a cancel always completes.
                self.arm_lease(config).await?;
                Ok(Response::empty()?.with_status(204))
            }
            HubCall::PlanMeta => {
                // As SQLMesh's `/api/meta`: a plan whose runner is gone ends here too, and every
                // listener gets the current trackers again.
                self.expire_lease(config)?;
                let snapshot =
                    self.with_loaded(|loaded| Ok(loaded.plan.as_ref().map(PlanSession::snapshot)))?;
                if let Some(snapshot) = snapshot {
                    self.publish(config, plan_events(snapshot), None)?;
                }
                let running = self.with_loaded(|loaded| {
                    Ok(loaded
                        .plan
                        .as_ref()
                        .is_some_and(|plan| plan.state().is_running()))
                })?;
                Ok(Response::from_json(&serde_json::json!({
                    "version": env!("CARGO_PKG_VERSION"),
                    "has_running_task": running,
                }))?)
            }
            HubCall::PlanRequest => {
                let lease_ms = config.plan_lease_s.saturating_mul(1000);
                let answer = self.with_loaded(|loaded| {
                    Ok(match loaded.plan.as_ref() {
                        None => serde_json::json!({ "state": "idle" }),
                        Some(plan) => serde_json::json!({
                            "state": plan.state(),
                            "opened_ms": plan.opened_ms(),
                            "lease_expires_ms": plan.lease_deadline_ms(lease_ms),
                            "request": plan.request(),
                        }),
                    })
                })?;
                Ok(Response::from_json(&answer)?)
            }
        }
    }

    /// Sets the alarm for the end of the runner's lease on the running plan (each accepted move
    /// renews it). The alarm only checks; a plan that ended meanwhile makes it do nothing.
    async fn arm_lease(&self, config: &Config) -> ApiResult<()> {
        if let Some(at_ms) = self.alarm_at_ms(config, None) {
            self.state
                .storage()
                .set_alarm(ScheduledTime::new(js_sys::Date::new(
                    &(at_ms as f64).into(),
                )))
                .await?;
        }
        Ok(())
    }

    /// When the Hub's one alarm must ring: the earliest of the runner's lease end, a directory
    /// report that waits, and `also_ms`.
    fn alarm_at_ms(&self, config: &Config, also_ms: Option<u64>) -> Option<u64> {
        let lease_ms = config.plan_lease_s.saturating_mul(1000);
        let lease = self
            .with_loaded(|loaded| {
                Ok(loaded
                    .plan
                    .as_ref()
                    .and_then(|plan| plan.lease_deadline_ms(lease_ms)))
            })
            .ok()
            .flatten();
        let report = self
            .directory
            .borrow()
            .as_ref()
            .and_then(HubReport::pending_at_ms);
        [lease, report, also_ms].into_iter().flatten().min()
    }

    /// Tells the tenant's directory about this hub if its entry changed (at most once per
    /// `HERALD_DIRECTORY_REPORT_MS`; a change within the interval sets the alarm for its end). The
    /// report is sent without holding up the call that changed the hub; one that fails is logged,
    /// and the hub's next change reports again.
    fn report_to_directory(&self, config: &Config) {
        let Ok((last_event_id, complete)) = self.with_loaded(|loaded| {
            Ok((
                loaded.hub.summary().last_position().map(|p| p.to_string()),
                loaded.hub.is_complete(),
            ))
        }) else {
            return;
        };
        let subscribers = self.state.get_websockets().len();
        let action = self.with_report(config, |report| {
            report.next(subscribers, last_event_id, complete, now_ms())
        });
        match action {
            HubAction::Send { tenant, entry } => {
                let env = self.env.clone();
                spawn_local(async move {
                    if let Err(error) = directory::report(&env, &tenant, &entry).await {
                        console_error!("directory report not sent: {error}");
                    }
                });
            }
            HubAction::Alarm(at_ms) => {
                let at_ms = self.alarm_at_ms(config, Some(at_ms)).unwrap_or(at_ms);
                let storage = self.state.storage();
                spawn_local(async move {
                    let at = ScheduledTime::new(js_sys::Date::new(&(at_ms as f64).into()));
                    if let Err(error) = storage.set_alarm(at).await {
                        console_error!("directory alarm not set: {error}");
                    }
                });
            }
            HubAction::Nothing => {}
        }
    }

    /// Ends a plan whose lease has run out; if the runner reported meanwhile, sets the alarm anew.
    async fn check_lease(&self, config: &Config) -> ApiResult<()> {
        self.ensure_loaded(config)?;
        self.expire_lease(config)?;
        self.arm_lease(config).await
    }

    /// Fails the running plan (or completes its cancel) if its runner's lease has ended.
    fn expire_lease(&self, config: &Config) -> ApiResult<()> {
        let lease_ms = config.plan_lease_s.saturating_mul(1000);
        let now = now_ms();
        let due = self.with_loaded(|loaded| {
            Ok(loaded
                .plan
                .as_ref()
                .and_then(|plan| plan.lease_deadline_ms(lease_ms))
                .is_some_and(|deadline| now >= deadline))
        })?;
        if due {
            self.plan_step(config, |session, now| {
                session
                    .expire_lease(now, lease_ms)
                    .ok_or_else(|| ApiError::Internal("the plan's lease had not ended".into()))
            })?;
        }
        Ok(())
    }

    fn ensure_loaded(&self, config: &Config) -> ApiResult<()> {
        if self.loaded.borrow().is_some() {
            return Ok(());
        }
        let store = Store::open(&self.state)?;
        let meta = store.load_meta(now_ms())?;
        // A plan that cannot be read back must not take the stream down with it (every publish and
        // subscribe would fail, with no way to recover through the API): it counts as no plan, and
        // the next plan stored replaces it. The row stays for an operator to look at.
        let plan = meta
            .plan_json
            .and_then(|json| match serde_json::from_str(&json) {
                Ok(plan) => Some(plan),
                Err(error) => {
                    console_error!(
                        "stored plan unreadable, treated as no plan: {error} ({} bytes)",
                        json.len()
                    );
                    None
                }
            });
        if let Some(name) = &meta.name {
            self.with_report(config, |report| report.learn_name(name));
        }
        *self.loaded.borrow_mut() = Some(Loaded {
            store,
            hub: StreamHub::from_summary(meta.summary, config.log, meta.complete),
            plan,
            name_stored: meta.name.is_some(),
        });
        Ok(())
    }

    /// Runs `f` on this hub's directory reporter, made at first use.
    fn with_report<T>(&self, config: &Config, f: impl FnOnce(&mut HubReport) -> T) -> T {
        let mut directory = self.directory.borrow_mut();
        f(directory.get_or_insert_with(|| HubReport::new(config.directory_report_ms)))
    }

    /// Learns the hub's name from a call, and stores it once, for a woken hub's directory reports.
    fn learn_name(&self, config: &Config, name: &str) -> ApiResult<()> {
        self.with_report(config, |report| report.learn_name(name));
        self.with_loaded(|loaded| {
            if !loaded.name_stored {
                loaded.store.set_meta(NAME, name)?;
                loaded.name_stored = true;
            }
            Ok(())
        })
    }

    /// Runs `f` on the loaded state; an error if a failed write made the Hub forget it meanwhile.
    fn with_loaded<T>(&self, f: impl FnOnce(&mut Loaded) -> ApiResult<T>) -> ApiResult<T> {
        let mut loaded = self.loaded.borrow_mut();
        f(loaded.as_mut().ok_or_else(not_loaded)?)
    }

    fn stats(&self) -> ApiResult<Response> {
        let stats = self.with_loaded(|loaded| {
            let summary = loaded.hub.summary();
            Ok(Stats {
                subscribers: self.state.get_websockets().len(),
                last_id: summary.last_position().map(|p| p.to_string()),
                oldest_id: summary.oldest_position().map(|p| p.to_string()),
                log_events: summary.events,
                log_bytes: summary.bytes,
                complete: loaded.hub.is_complete(),
                hub_started_ms: self.started_ms,
                log_loaded: loaded.hub.is_log_loaded(),
            })
        })?;
        Ok(Response::from_json(&stats)?)
    }

    /// Numbers, encodes, stores and fans out a batch. Everything that can fail is checked before
    /// the first write, so a batch is all or nothing; subscribers hear of it only once storage
    /// has it.
    fn publish(
        &self,
        config: &Config,
        events: Vec<NewEvent>,
        producer: Option<Producing<'_>>,
    ) -> ApiResult<Vec<String>> {
        self.publish_remembering(config, events, &[], producer)
    }

    /// [`Hub::publish`], storing with the events what ingested ones leave beside them (one per
    /// event, in order, or none), in the same write.
    fn publish_remembering(
        &self,
        config: &Config,
        events: Vec<NewEvent>,
        ingested: &[Ingested<'_>],
        producer: Option<Producing<'_>>,
    ) -> ApiResult<Vec<String>> {
        let categories = config.category_names();
        let vocabulary = Family::Generic.vocabulary(&categories);
        let mut guard = self.loaded.borrow_mut();
        let loaded = guard.as_mut().ok_or_else(not_loaded)?;
        let batch = loaded
            .hub
            .prepare(events, &vocabulary)
            .map_err(|e| refused(e, config))?;
        let evicted = if loaded.hub.commit_reads_storage(&batch) {
            let sizes = loaded.store.oldest_sizes_lossy();
            loaded.hub.commit(&batch, sizes)
        } else {
            loaded.hub.commit(&batch, core::iter::empty())
        };
        let fail_after_rows = config.test_fail_storage.as_deref().is_some_and(|name| {
            batch
                .entries
                .iter()
                .any(|entry| entry.name.as_str() == name)
        });
        let ingested: Vec<(u64, Ingested<'_>)> = batch
            .entries
            .iter()
            .zip(ingested)
            .map(|(entry, ingested)| (entry.seq, *ingested))
            .collect();
        // A producer's state rides in the summary's statement: stored exactly when the batch is.
        let stored = loaded.store.append(
            &batch.entries,
            &ingested,
            &loaded.hub.summary(),
            (evicted, batch.completes),
            fail_after_rows,
            producer.map(|(id, next)| ProducerTable::row(id, next)),
        );
        // Should storage fail, memory is ahead of the truth: forget it and read storage again on
        // the next request, which also deletes any rows written before the failure (see
        // storage.rs).
        if let Err(error) = stored {
            console_error!("publish not stored: {error}");
            *guard = None;
            return Err(error.into());
        }
        let epoch = loaded.hub.epoch();
        drop(guard);
        self.fan_out(epoch, &batch);
        if let Some(report) = self.directory.borrow_mut().as_mut() {
            report.saw_publish(now_ms());
        }
        Ok(batch.ids(epoch))
    }

    /// Sends each subscriber what the batch holds for it: one message per distinct filter, encoded
    /// once and handed to the runtime as one buffer for all the sockets of that filter.
    ///
    /// A subscriber's cursor needs no check here: accepting a socket and publishing are each one
    /// synchronous step of the Hub, so every open socket's cursor is below the batch's first
    /// sequence number (the cursor matters to the relay, across the replay/live seam).
    fn fan_out(&self, epoch: u64, batch: &Batch) {
        let mut filters = self.filters.borrow_mut();
        if !filters.complete {
            for socket in self.state.get_websockets() {
                let record = socket.deserialize_attachment::<SubscriberRecord>();
                match record
                    .ok()
                    .flatten()
                    .map(|r| (filter_tag(&r.filter), r.filter))
                {
                    Some((Ok(tag), filter)) => filters.learn(tag, filter),
                    _ => {
                        let _ = socket.close(Some(1011), Some("subscriber record unreadable"));
                    }
                }
            }
            filters.complete = true;
        }
        filters.by_tag.retain(|(tag, filter)| {
            let sockets = self.state.get_websockets_with_tag(tag);
            if sockets.is_empty() {
                return false;
            }
            let record = SubscriberRecord {
                filter: filter.clone(),
                cursor_seq: 0,
            };
            if let Some(message) = record.message_for(epoch, batch) {
                let bytes = Uint8Array::from(message.encode().as_slice());
                for socket in sockets {
                    // A socket that is closing refuses the send; its relay is gone anyway.
                    let _ = socket.as_ref().send_with_array_buffer_view(&bytes);
                }
            }
            true
        });
    }

    /// Runs one plan transition and publishes the trackers it changed, persisting the session in
    /// the same storage event as the tracker events. The session in memory changes only once the
    /// trackers are stored: a refused move (illegal, too large, a complete stream) changes nothing.
    fn plan_step(
        &self,
        config: &Config,
        step: impl FnOnce(&mut PlanSession, u64) -> ApiResult<PlanUpdate>,
    ) -> ApiResult<Vec<String>> {
        let (session, update, json) = self.with_loaded(|loaded| {
            let mut session = loaded.plan.clone().unwrap_or_default();
            let update = step(&mut session, now_ms())?;
            // Trackers carry every stage's details, so they grow; one over its own bound
            // (HERALD_TRACKER_BYTES_MAX, apart from published events') is refused like an oversized
            // publish.
            let limits = PublishLimits {
                event_bytes_max: config.tracker_bytes_max,
                ..config.publish
            };
            limits
                .check_composed(update.events().iter().map(|(_, data)| data.as_str()))
                .map_err(publish_error)?;
            let mut json =
                serde_json::to_string(&session).map_err(|e| ApiError::Internal(e.to_string()))?;
            if config.test_unreadable_plan {
                // Test hook: nested past serde_json's recursion limit (128), as a plan whose
                // details were nested 125 deep once was.
                json = format!("{}{json}{}", "[".repeat(130), "]".repeat(130));
            }
            Ok((session, update, json))
        })?;
        let ids = self.publish(config, plan_events(update), None)?;
        self.with_loaded(|loaded| {
            loaded.plan = Some(session);
            Ok(loaded.store.set_meta(PLAN, &json)?)
        })?;
        Ok(ids)
    }

    /// Accepts a subscriber's relay as a hibernatable WebSocket. The first message (reset, replay
    /// or snapshot) is sent in the same synchronous step as the accept, so no publish can fall
    /// between the replay and the live stream.
    fn subscribe(
        &self,
        request: &Request,
        config: &Config,
        filter: Filter,
        ask: SubscribeAsk<'_>,
    ) -> ApiResult<Response> {
        let SubscribeAsk {
            last_event_id,
            credential,
            join,
            ..
        } = ask;
        if !request
            .headers()
            .get("upgrade")?
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        {
            return Err(ApiError::bad_request(
                "invalid_hub_call",
                "subscribe is a WebSocket upgrade",
            ));
        }
        let open = self.state.get_websockets().len();
        if open >= config.subscribers_max {
            return Err(ApiError::TooManySubscribers(format!(
                "this stream has {open} subscribers, the most it takes (HERALD_SUBSCRIBERS_MAX)"
            )));
        }
        // One credential may not take every slot: its sockets carry its id as their tag.
        let held = self.state.get_websockets_with_tag(credential).len();
        if held >= config.subscribers_per_credential_max {
            return Err(ApiError::TooManySubscribers(format!(
                "this credential holds {held} subscribers on this stream, the most one may \
                 (HERALD_SUBSCRIBERS_PER_CREDENTIAL_MAX)"
            )));
        }
        self.with_loaded(|loaded| {
            // SQLMesh's UI gets finished apply and cancel trackers as `{}`; `trackers=last` asks
            // for them as they ended.
            let snapshot = loaded.plan.as_ref().map(|plan| {
                if ask.last_trackers {
                    plan.last_trackers()
                } else {
                    plan.snapshot()
                }
            });
            let mut decision = loaded.hub.subscribe_joining(
                filter.clone(),
                last_event_id,
                snapshot.as_ref(),
                join,
            );
            if decision == Subscription::NeedsLog {
                let evicted = loaded
                    .hub
                    .load_log(loaded.store.entries()?)
                    .map_err(|e| ApiError::Internal(format!("stored log unreadable: {e}")))?;
                if let Some(through) = evicted.through_seq {
                    loaded.store.delete_through(through)?;
                }
                decision =
                    loaded
                        .hub
                        .subscribe_joining(filter, last_event_id, snapshot.as_ref(), join);
            }
            match decision {
                Subscription::Finished => Ok(Response::empty()?.with_status(204)),
                Subscription::NeedsLog => Err(ApiError::Internal(
                    "the hub needs its log after loading it".into(),
                )),
                Subscription::Accept { message, record } => {
                    let pair = WebSocketPair::new()?;
                    // The attachment is checked before the accept (whose helper cannot fail
                    // gracefully): a filter too large to ride with the socket is refused.
                    pair.server.serialize_attachment(&record).map_err(|e| {
                        ApiError::bad_request(
                            "invalid_filter",
                            format!("the filter is too large to keep with a subscriber: {e}"),
                        )
                    })?;
                    // The credential's tag was checked when the call was decoded (1 to 256
                    // characters); the filter's is 34.
                    let tag = filter_tag(&record.filter)?;
                    self.state
                        .accept_websocket_with_tags(&pair.server, &[credential, &tag]);
                    self.filters.borrow_mut().learn(tag, record.filter);
                    if !message.is_empty() {
                        pair.server.send_with_bytes(message.encode())?;
                    }
                    Ok(Response::from_websocket(pair.client)?)
                }
            }
        })
    }
}
