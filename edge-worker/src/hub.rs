//! The Hub: one Durable Object per (tenant, connection id). It numbers events, keeps the bounded
//! replay log in SQLite, runs the SQLMesh plan session, and sends each subscriber's relay (in the
//! Worker) one WebSocket message per batch. Every rule it applies is herald-core's ([`StreamHub`]).
//!
//! The Hub holds no open request, no streamed body and no timer: subscribers are hibernatable
//! WebSockets whose filter and cursor ride in their attachments, so the runtime can evict the Hub
//! between publishes. On wake it reads only its meta rows; the log is read when a replay needs it.

use std::cell::RefCell;

use herald_core::durable::ProducerState;
use herald_core::{
    parse_publish, Batch, EventName, Filter, Hub as StreamHub, NewEvent, PlanCommand, PlanError,
    PlanRequest, PlanSession, PlanUpdate, Refused, SubscriberRecord, Subscription,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use worker::js_sys::Uint8Array;
use worker::{
    console_error, durable_object, DurableObject, Env, Request, Response, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use crate::body::read_capped;
use crate::call::HubCall;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::producer_gate::{producer_of, Gate, ProducerTable};
use crate::routes::{publish_error, Family};
use crate::storage::{Store, PLAN};
use crate::stream::now_ms;

/// What the Hub keeps in memory once it has read its meta rows.
#[derive(Debug)]
struct Loaded {
    store: Store,
    hub: StreamHub,
    plan: Option<PlanSession>,
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
        }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        match self.serve(&mut request).await {
            Ok(response) => Ok(response),
            Err(error) => error.into_response(),
        }
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

fn not_loaded() -> ApiError {
    ApiError::Internal("the hub's state is not loaded".into())
}

impl Hub {
    async fn serve(&self, request: &mut Request) -> ApiResult<Response> {
        let config = Config::get(&self.env)?;
        let call = HubCall::decode(&request.method(), &request.url()?)?;
        // Read a body before touching state: a request awaits nothing once it holds the Hub's state.
        // The Worker forwards only bodies within the limit; the Hub checks again, so that nothing
        // else that reaches it can make it hold more.
        let body = if call.has_body() {
            read_capped(request, config.publish.batch_bytes_max).await?
        } else {
            Vec::new()
        };
        self.ensure_loaded(config)?;
        match call {
            HubCall::Subscribe {
                filter,
                last_event_id,
                credential,
            } => self.subscribe(
                request,
                config,
                filter,
                last_event_id.as_deref(),
                &credential,
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
                let producer = gate.as_ref().map(|(t, id, next)| (t, id.as_str(), *next));
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
                let plan_request = PlanRequest::from_json(&body)
                    .map_err(|e| ApiError::bad_request("invalid_plan", e))?;
                // SQLMesh: `/api/plan` previews (overview only); `/api/commands/apply` also applies.
                let apply = call == HubCall::PlanApply;
                self.plan_step(config, |session, now| {
                    let opened = if apply {
                        session.open_apply(plan_request, now)
                    } else {
                        session.open(plan_request, now)
                    };
                    Ok(opened.into_update())
                })?;
                Ok(Response::empty()?.with_status(204))
            }
            HubCall::PlanCommand => {
                config.publish.check_body(&body).map_err(publish_error)?;
                let command = PlanCommand::from_json(&body)
                    .map_err(|e| ApiError::bad_request("invalid_plan_command", e))?;
                let ids = self.plan_step(config, |session, now| {
                    session.apply(command, now).map_err(illegal)
                })?;
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
                Ok(Response::empty()?.with_status(204))
            }
        }
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
        *self.loaded.borrow_mut() = Some(Loaded {
            store,
            hub: StreamHub::from_summary(meta.summary, config.log, meta.complete),
            plan,
        });
        Ok(())
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

    /// Numbers, encodes, stores and fans out a batch. Everything that can fail is checked before the
    /// first write, so a batch is all or nothing; subscribers hear of it only once storage has it.
    fn publish(
        &self,
        config: &Config,
        events: Vec<NewEvent>,
        producer: Option<(&ProducerTable, &str, ProducerState)>,
    ) -> ApiResult<Vec<String>> {
        let vocabulary = Family::Generic.vocabulary(config);
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
        let stored = loaded.store.append(
            &batch.entries,
            &loaded.hub.summary(),
            evicted,
            batch.completes,
            fail_after_rows,
        );
        // Should storage fail, memory is ahead of the truth: forget it and read storage again on
        // the next request, which also deletes any rows written before the failure (see storage.rs).
        // The producer's state goes with the rows, in this same synchronous step.
        let stored = stored.and_then(|()| match producer {
            Some((table, id, next)) => table.set(id, next),
            None => Ok(()),
        });
        if let Err(error) = stored {
            console_error!("publish not stored: {error}");
            *guard = None;
            return Err(error.into());
        }
        let epoch = loaded.hub.epoch();
        drop(guard);
        self.fan_out(epoch, &batch);
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
            // Trackers carry every stage's details, so they grow; one over the event bound is refused
            // like an oversized publish.
            config
                .publish
                .check_composed(update.events().iter().map(|(_, data)| data.as_str()))
                .map_err(publish_error)?;
            let mut json =
                serde_json::to_string(&session).map_err(|e| ApiError::Internal(e.to_string()))?;
            if config.test_unreadable_plan {
                // Test hook: nested past serde_json's recursion limit (128), as a plan whose details
                // were nested 125 deep once was.
                json = format!("{}{json}{}", "[".repeat(130), "]".repeat(130));
            }
            Ok((session, update, json))
        })?;
        let events = update
            .into_iter()
            .map(|(name, data)| NewEvent {
                name: EventName::from_static(name),
                data,
                category: None,
            })
            .collect();
        let ids = self.publish(config, events, None)?;
        self.with_loaded(|loaded| {
            loaded.plan = Some(session);
            Ok(loaded.store.set_meta(PLAN, &json)?)
        })?;
        Ok(ids)
    }

    /// Accepts a subscriber's relay as a hibernatable WebSocket. The first message (reset, replay or
    /// snapshot) is sent in the same synchronous step as the accept, so no publish can fall between
    /// the replay and the live stream.
    fn subscribe(
        &self,
        request: &Request,
        config: &Config,
        filter: Filter,
        last_event_id: Option<&str>,
        credential: &str,
    ) -> ApiResult<Response> {
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
            let snapshot = loaded.plan.as_ref().map(PlanSession::snapshot);
            let mut decision =
                loaded
                    .hub
                    .subscribe(filter.clone(), last_event_id, snapshot.as_ref());
            if decision == Subscription::NeedsLog {
                let evicted = loaded
                    .hub
                    .load_log(loaded.store.entries()?)
                    .map_err(|e| ApiError::Internal(format!("stored log unreadable: {e}")))?;
                if let Some(through) = evicted.through_seq {
                    loaded.store.delete_through(through)?;
                }
                decision = loaded
                    .hub
                    .subscribe(filter, last_event_id, snapshot.as_ref());
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
