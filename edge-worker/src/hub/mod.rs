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
use herald_core::hub::{Refused, Subscription};
use herald_core::plan::{PlanCommand, PlanError, PlanRequest, PlanSession, PlanUpdate};
use herald_core::resume::JoinPolicy;
use herald_core::sluice::{fill_previous_states, fresh_ingest_events, parse_ingest, IngestEvent};
use herald_core::{parse_publish, Filter, Hub as StreamHub, NewEvent, PublishLimits};
use serde::Serialize;
use worker::{
    console_error, durable_object, web_sys, DurableObject, Env, Request, Response, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::body::read_capped;
use crate::call::HubCall;
use crate::config::Config;
use crate::directory::HubReport;
use crate::error::{ApiError, ApiResult};
use crate::producer_gate::{producer_of, Gate, ProducerTable};
use crate::routes::{ingest_error, publish_error, Family};
use crate::storage::{Ingested, Store, PLAN};
use crate::stream::now_ms;

mod fanout;
mod timers;

use fanout::{filter_tag, Filters};

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
        match self.serve(&mut request).await {
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
        self.with_report(config, HubReport::alarm_rang);
        if let Err(error) = self.check_lease(config).await {
            // An error makes the runtime run the alarm again, with backoff.
            console_error!("plan lease check failed: {error:?}");
            return Err(worker::Error::RustError(
                "the plan lease check failed".into(),
            ));
        }
        self.report_to_directory_now(config).await;
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
        // leaves the socket closing, which `subscriber_count` does not count, even while
        // `get_websockets` still lists it.
        let _ = ws.close(Some(1000), Some("relay closed"));
        // The directory's subscriber count, sent before the handler returns: no request follows
        // that would send it, and the hub may be evicted after this.
        if let Ok(config) = Config::get(&self.env) {
            if self.ensure_loaded(config).is_ok() {
                self.report_to_directory_now(config).await;
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
        // A call that only reads (stats, the plan's request) changes no directory entry.
        let reads_only = call.reads_only();
        let response = match call {
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
            HubCall::Publish => self.publish_call(request, config, &body),
            HubCall::Ingest => self.ingest(config, &body),
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
        }?;
        if !reads_only {
            self.report_to_directory(config);
        }
        Ok(response)
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

    /// Runs `f` on the loaded state; an error if a failed write made the Hub forget it meanwhile.
    fn with_loaded<T>(&self, f: impl FnOnce(&mut Loaded) -> ApiResult<T>) -> ApiResult<T> {
        let mut loaded = self.loaded.borrow_mut();
        f(loaded.as_mut().ok_or_else(not_loaded)?)
    }

    /// The relays whose sockets are open: a socket whose close has begun is still listed by
    /// `get_websockets` for a while, but its subscriber has gone.
    fn subscriber_count(&self) -> usize {
        self.state
            .get_websockets()
            .iter()
            .filter(|socket| {
                let socket: &web_sys::WebSocket = (*socket).as_ref();
                socket.ready_state() == web_sys::WebSocket::OPEN
            })
            .count()
    }

    fn stats(&self) -> ApiResult<Response> {
        let stats = self.with_loaded(|loaded| {
            let summary = loaded.hub.summary();
            Ok(Stats {
                subscribers: self.subscriber_count(),
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

    /// `POST .../events`: a publish, gated by an idempotent producer's headers if it sent them
    /// (producer_gate.rs): a retried batch is answered, not stored.
    fn publish_call(&self, request: &Request, config: &Config, body: &[u8]) -> ApiResult<Response> {
        let events = parse_publish(body, &config.publish).map_err(publish_error)?;
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

    /// sluice's ingest for this stream: the events it does not hold yet (by fingerprint), with
    /// `previousState` filled in, stored with their fingerprints in one write.
    fn ingest(&self, config: &Config, body: &[u8]) -> ApiResult<Response> {
        let events = parse_ingest(body, &config.publish).map_err(ingest_error)?;
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
        let open = self.subscriber_count();
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
