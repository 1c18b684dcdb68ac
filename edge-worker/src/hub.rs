//! The Hub: one Durable Object per (tenant, connection id). It numbers events, keeps the bounded
//! replay log in SQLite, fans each frame out to its subscribers and runs the SQLMesh plan session.
//! Every rule it applies is herald-core's.

use std::cell::RefCell;
use std::rc::Rc;

use herald_core::{
    open_frame, parse_publish, reset_frame, EventName, Filter, Frame, HeartbeatPolicy,
    HeartbeatProfile, NewEvent, Outbox, PlanCommand, PlanError, PlanRequest, PlanSession,
    PlanUpdate, Position, ReplayLog, Resume,
};
use serde::Serialize;
use worker::{durable_object, DurableObject, Env, Headers, Method, Request, Response, State, Url};

use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::routes::{publish_error, Family};
use crate::storage::{Store, PLAN};
use crate::stream::{now_ms, Subscriber, SubscriberStream, Subscribers};

/// What the Hub keeps in memory once it has read its storage.
#[derive(Debug)]
struct Loaded {
    store: Store,
    log: ReplayLog,
    complete: bool,
    plan: Option<PlanSession>,
}

#[durable_object(fetch)]
pub struct Hub {
    state: State,
    env: Env,
    loaded: RefCell<Option<Loaded>>,
    subscribers: Rc<RefCell<Subscribers>>,
}

impl core::fmt::Debug for Hub {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.subscribers.borrow().len())
            .finish_non_exhaustive()
    }
}

impl DurableObject for Hub {
    fn new(state: State, env: Env) -> Self {
        Hub {
            state,
            env,
            loaded: RefCell::new(None),
            subscribers: Rc::default(),
        }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        let result = self.serve(&mut request).await;
        match result {
            Ok(response) => Ok(response),
            Err(error) => error.into_response(),
        }
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
}

#[derive(Serialize)]
struct Published {
    ids: Vec<String>,
}

fn sse_headers() -> worker::Result<Headers> {
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache, no-transform")?;
    headers.set("x-accel-buffering", "no")?;
    Ok(headers)
}

fn illegal(error: PlanError) -> ApiError {
    ApiError::conflict("illegal_transition", error)
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

impl Hub {
    async fn serve(&self, request: &mut Request) -> ApiResult<Response> {
        let config = Config::get(&self.env)?;
        self.ensure_loaded(config)?;
        let url = request.url()?;
        match (request.method(), url.path()) {
            (Method::Get, "/subscribe") => self.subscribe(request, &url, config),
            (Method::Post, "/publish") => {
                let body = request.bytes().await?;
                let events = parse_publish(&body, &config.publish).map_err(publish_error)?;
                let ids = self.publish(config, events)?;
                Ok(Response::from_json(&Published { ids })?)
            }
            (Method::Get, "/stats") => self.stats(),
            (Method::Post, "/disconnect") => {
                let subscribers = self.subscribers.borrow();
                for subscriber in subscribers.iter() {
                    subscriber.borrow_mut().close();
                }
                Ok(Response::from_json(
                    &serde_json::json!({ "disconnected": subscribers.len() }),
                )?)
            }
            (Method::Post, path @ ("/plan/open" | "/plan/apply")) => {
                let body = request.bytes().await?;
                config.publish.check_body(&body).map_err(publish_error)?;
                let plan_request = PlanRequest::from_json(&body)
                    .map_err(|e| ApiError::bad_request("invalid_plan", e))?;
                // SQLMesh: `/api/plan` previews (overview only); `/api/commands/apply` also applies.
                let apply = path == "/plan/apply";
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
            (Method::Post, "/plan/command") => {
                let body = request.bytes().await?;
                config.publish.check_body(&body).map_err(publish_error)?;
                let command = PlanCommand::from_json(&body)
                    .map_err(|e| ApiError::bad_request("invalid_plan_command", e))?;
                let ids = self.plan_step(config, |session, now| {
                    session.apply(command, now).map_err(illegal)
                })?;
                let cancelling = self.with_loaded(|loaded| {
                    loaded.plan.as_ref().is_some_and(PlanSession::is_cancelling)
                });
                Ok(Response::from_json(
                    &serde_json::json!({ "ids": ids, "cancelling": cancelling }),
                )?)
            }
            (Method::Post, "/plan/cancel") => {
                self.plan_step(config, |session, now| {
                    session.apply(PlanCommand::Cancel, now).map_err(illegal)
                })?;
                Ok(Response::empty()?.with_status(204))
            }
            _ => Err(ApiError::NotFound),
        }
    }

    fn ensure_loaded(&self, config: &Config) -> ApiResult<()> {
        if self.loaded.borrow().is_some() {
            return Ok(());
        }
        let store = Store::open(&self.state)?;
        let stored = store.load(config.log, now_ms())?;
        let plan = match stored.plan_json {
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| ApiError::Internal(format!("stored plan unreadable: {e}")))?,
            ),
            None => None,
        };
        *self.loaded.borrow_mut() = Some(Loaded {
            store,
            log: stored.log,
            complete: stored.complete,
            plan,
        });
        Ok(())
    }

    fn with_loaded<T>(&self, f: impl FnOnce(&mut Loaded) -> T) -> T {
        let mut loaded = self.loaded.borrow_mut();
        f(loaded.as_mut().expect("ensure_loaded runs first"))
    }

    fn stats(&self) -> ApiResult<Response> {
        let stats = self.with_loaded(|loaded| Stats {
            subscribers: self.subscribers.borrow().len(),
            last_id: loaded.log.last_position().map(|p| p.to_string()),
            oldest_id: loaded.log.oldest_position().map(|p| p.to_string()),
            log_events: loaded.log.len(),
            log_bytes: loaded.log.bytes(),
            complete: loaded.complete,
        });
        Ok(Response::from_json(&stats)?)
    }

    /// Numbers, encodes, stores and fans out a batch. Everything that can fail is checked before the
    /// first write, so a batch is all or nothing.
    fn publish(&self, config: &Config, events: Vec<NewEvent>) -> ApiResult<Vec<String>> {
        let vocabulary = Family::Generic.vocabulary(config);
        if let Some(category) = events
            .iter()
            .filter_map(|e| e.category.as_deref())
            .find(|c| !vocabulary.knows_category(c))
        {
            let known = config.categories.join(", ");
            return Err(ApiError::bad_request(
                "invalid_event",
                format!("unknown category {category:?} (known: {known})"),
            ));
        }
        let mut guard = self.loaded.borrow_mut();
        let loaded = guard.as_mut().expect("ensure_loaded runs first");
        if loaded.complete {
            return Err(ApiError::conflict(
                "stream_complete",
                "the stream is complete; it takes no more events",
            ));
        }
        let completes = events.iter().any(NewEvent::completes_stream);
        let entries = loaded.log.number(events);
        let mut evicted_through = None;
        for entry in entries.iter().cloned() {
            evicted_through = loaded.log.push(entry).through_seq.or(evicted_through);
        }
        // Subscribers hear of the batch only once storage has it. Should storage throw, the in-memory
        // log is ahead of the truth, so the Hub forgets it and reads storage again on the next request.
        let stored = loaded
            .store
            .append(&entries, loaded.log.next_seq(), evicted_through)
            .and_then(|()| {
                if completes {
                    loaded.store.set_complete()
                } else {
                    Ok(())
                }
            });
        if let Err(error) = stored {
            *guard = None;
            return Err(error.into());
        }
        loaded.complete |= completes;
        for subscriber in self.subscribers.borrow().iter() {
            let mut subscriber = subscriber.borrow_mut();
            for entry in &entries {
                subscriber.offer(entry);
            }
            if completes {
                subscriber.close();
            }
        }
        let epoch = loaded.log.epoch();
        Ok(entries
            .iter()
            .map(|entry| {
                Position {
                    epoch,
                    seq: entry.seq,
                }
                .to_string()
            })
            .collect())
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
            let json =
                serde_json::to_string(&session).map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok::<_, ApiError>((session, update, json))
        })?;
        let events = update
            .into_iter()
            .map(|(name, data)| NewEvent {
                name: EventName::from_static(name),
                data,
                category: None,
            })
            .collect();
        let ids = self.publish(config, events)?;
        self.with_loaded(|loaded| {
            loaded.plan = Some(session);
            loaded.store.set_meta(PLAN, &json)
        })?;
        Ok(ids)
    }

    fn subscribe(&self, request: &Request, url: &Url, config: &Config) -> ApiResult<Response> {
        let family = query(url, "family")
            .and_then(|f| Family::parse(&f))
            .unwrap_or(Family::Generic);
        let filter = Filter::from_query(
            &query(url, "filter").unwrap_or_default(),
            &family.vocabulary(config),
        )
        .map_err(|e| ApiError::bad_request("invalid_filter", e))?;
        let last_event_id = request
            .headers()
            .get("last-event-id")?
            .filter(|id| !id.is_empty())
            .or_else(|| query(url, "last_event_id"));
        let profile = HeartbeatProfile::requested(
            query(url, "heartbeat").as_deref(),
            family.heartbeat_profile(),
        )
        .map_err(|e| ApiError::bad_request("invalid_heartbeat", e))?;
        let heartbeat = HeartbeatPolicy::new(profile, config.heartbeat_ms);
        let open = self.subscribers.borrow().len();
        if open >= config.subscribers_max {
            return Err(ApiError::TooManySubscribers(format!(
                "this stream has {open} subscribers, the most it takes (HERALD_SUBSCRIBERS_MAX)"
            )));
        }
        self.with_loaded(|loaded| {
            let mut subscriber =
                Subscriber::new(filter, Outbox::new(loaded.log.epoch(), config.outbox));
            subscriber.push_control(open_frame(config.retry_ms));
            let snapshot = loaded.plan.as_ref().map(PlanSession::snapshot);
            match loaded.log.resume(last_event_id.as_deref(), loaded.complete) {
                Resume::Finished => return Ok(Response::empty()?.with_status(204)),
                Resume::Replay { reset, entries } => {
                    if let Some((reason, oldest)) = reset {
                        let snapshot = snapshot.as_ref().map(PlanUpdate::to_json_object);
                        subscriber.push_control(reset_frame(reason, oldest, snapshot.as_deref()));
                    }
                    for entry in entries {
                        subscriber.offer(entry);
                    }
                }
                Resume::Live => {
                    // A fresh SQLMesh client gets the current trackers, as SQLMesh's /api/meta re-sync does.
                    for (name, json) in snapshot.iter().flat_map(PlanUpdate::events) {
                        let event = EventName::from_static(name);
                        let frame = Frame::new().event(&event).data(json).to_bytes();
                        subscriber.offer_unlogged(frame, name);
                    }
                }
            }
            if loaded.complete {
                subscriber.close();
            }
            let subscriber = Rc::new(RefCell::new(subscriber));
            let stream = SubscriberStream::register(&self.subscribers, subscriber, heartbeat);
            Ok(Response::from_stream(stream)?.with_headers(sse_headers()?))
        })
    }
}
