//! sluice's ingest dialect: `POST /api/ingest` batches, as sluice documents them and its SDKs
//! (`sluice-celery`) send them, checked and translated into the events of sluice's stream.
//!
//! A body is `{"events": [...]}`. Each event is
//! `{"type", "timestamp", "framework", "connectionId", "job" | "worker" | "queue"}`:
//!
//! | `type` (either spelling) | payload | stream event | stream data |
//! |---|---|---|---|
//! | `job.state_change`, `job_state_change` | `job` | `job:state_change` | `{"id","name","state","previousState","timestamp"}` |
//! | `worker.state_change`, `worker_state_change` with `worker.state` `heartbeat` | `worker` | `worker:heartbeat` | `{"id","hostname","state":"online","activeJobs"}` |
//! | the same with `online`, `busy`, `idle` or `offline` | `worker` | `worker:state_change` | `{"id","hostname","state","activeJobs","timestamp"}` |
//! | `queue.snapshot`, `queue_snapshot` | `queue` | `queue:snapshot` | `{"name","depth","consumers"}` |
//!
//! sluice's docs spell types with `_`, its Celery SDK with `.`; both are accepted. The stream's
//! `id` is the job's or worker's `externalId` (the framework's own id, e.g. the Celery task UUID).
//! `previousState` is the one the publisher sent; sluice's SDKs send none, so the stream fills it
//! in ([`fill_previous_states`]) from the job's latest earlier state it still remembers, else
//! `null`. Payload fields the stream does not carry (`queue`, `attempt`, `error`, `extensions`,
//! `metadata`, ...) are checked for type where sluice documents one and otherwise ignored.
//!
//! **Retries.** sluice's SDK sends no batch or event id, and retries a failed send with the very
//! same bytes. So an event is known by its [`IngestEvent::fingerprint`]: the SHA-256 of the event
//! object with the whitespace between its tokens removed. The hub stores the fingerprints of the
//! events it keeps, with them and in the same write, and skips an event whose fingerprint it still
//! holds: a retried batch is stored once.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::auth::ConnectionId;
use crate::encode::EventName;
use crate::publish::{compact_json, NewEvent, PublishLimits};

/// sluice's unified job states.
pub const JOB_STATES: &[&str] = &[
    "unknown",
    "queued",
    "scheduled",
    "active",
    "completed",
    "failed",
    "retrying",
    "cancelled",
];

/// sluice's worker states, plus `heartbeat` (what its Celery SDK sends for a worker heartbeat).
pub const WORKER_STATES: &[&str] = &["online", "busy", "idle", "offline", "heartbeat"];

/// The frameworks sluice knows.
pub const FRAMEWORKS: &[&str] = &["celery", "bullmq", "sidekiq"];

/// The most distinct streams (`connectionId`s) one ingest batch may name: each is a call to its own
/// hub. sluice ties an API key to one connection, so its SDKs' batches name one.
pub const INGEST_CONNECTIONS_MAX: usize = 10;

/// One ingested event: the stream it goes to, the stream event it became, and how a retry of it is
/// recognised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestEvent {
    /// The stream (`connectionId`).
    pub connection: ConnectionId,
    /// The event for sluice's stream.
    pub event: NewEvent,
    /// The SHA-256 of [`IngestEvent::raw_json`], in lowercase hex (64 characters).
    pub fingerprint: String,
    /// The ingest event object as sent, minus the whitespace between tokens: what a hub is sent.
    pub raw_json: String,
    /// A job event's facts, from which its data is rebuilt when [`fill_previous_states`] fills in
    /// `previousState`.
    job: Option<JobFacts>,
}

/// What a `job:state_change`'s data is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct JobFacts {
    external_id: String,
    name: String,
    state: String,
    previous_state: Option<String>,
    timestamp: String,
}

impl JobFacts {
    fn data(&self) -> Result<String, String> {
        to_json(&JobData {
            id: &self.external_id,
            name: &self.name,
            state: &self.state,
            previous_state: self.previous_state.as_deref(),
            timestamp: &self.timestamp,
        })
    }
}

impl IngestEvent {
    /// A job event's `(externalId, state)`: what a stream remembers so that the job's next event
    /// can name its previous state.
    #[must_use]
    pub fn job_state(&self) -> Option<(&str, &str)> {
        self.job
            .as_ref()
            .map(|job| (job.external_id.as_str(), job.state.as_str()))
    }
}

/// The longest `previousState` there is, quoted, minus `null`: what filling one in can add to a
/// job event's data.
const PREVIOUS_STATE_GROWTH_BYTES: usize = "\"scheduled\"".len() - "null".len();

/// Fills in the `previousState` of job events that came without one, as sluice's stream shows it:
/// the state of the same job's latest earlier event, from this batch (`events`, in order) or else
/// from `stored` (the state the stream remembers for that `externalId`, if any). An event that
/// names its `previousState` keeps it; a job seen for the first time keeps `null`.
///
/// ```
/// use herald_core::sluice::{fill_previous_states, parse_ingest};
/// use herald_core::PublishLimits;
/// let job = |state: &str| format!(r#"{{"type":"job.state_change","timestamp":"2026-02-27T10:30:00Z",
///   "framework":"celery","connectionId":"c1","job":{{"externalId":"t1","name":"n","state":"{state}"}}}}"#);
/// let body = format!(r#"{{"events":[{},{}]}}"#, job("active"), job("completed"));
/// let mut events = parse_ingest(body.as_bytes(), &PublishLimits::default()).unwrap();
/// fill_previous_states(&mut events, |id| (id == "t1").then(|| "queued".to_string()));
/// assert!(events[0].event.data.contains(r#""previousState":"queued""#));
/// assert!(events[1].event.data.contains(r#""previousState":"active""#));
/// ```
pub fn fill_previous_states(
    events: &mut [IngestEvent],
    mut stored: impl FnMut(&str) -> Option<String>,
) {
    let mut latest: Vec<(String, String)> = Vec::new();
    for event in events.iter_mut() {
        let Some(job) = event.job.as_mut() else {
            continue;
        };
        if job.previous_state.is_none() {
            let earlier = latest
                .iter()
                .rev()
                .find(|(id, _)| *id == job.external_id)
                .map(|(_, state)| state.clone())
                .or_else(|| stored(&job.external_id))
                .filter(|state| JOB_STATES.contains(&state.as_str()));
            if let Some(previous) = earlier {
                job.previous_state = Some(previous);
                if let Ok(data) = job.data() {
                    event.event.data = data;
                }
            }
        }
        latest.push((job.external_id.clone(), job.state.clone()));
    }
}

/// Why an ingest body was refused. [`IngestError::is_too_large`] tells 413 from 400.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IngestError {
    /// The body is longer than [`PublishLimits::batch_bytes_max`] (413).
    BodyTooLarge {
        /// Length of the body, in bytes.
        body_bytes: usize,
        /// The limit, in bytes.
        bytes_max: usize,
    },
    /// The batch holds more than [`PublishLimits::batch_events_max`] events (413).
    TooManyEvents {
        /// How many it holds.
        events: usize,
        /// The limit, in events.
        events_max: usize,
    },
    /// An event's stream data is longer than [`PublishLimits::event_bytes_max`] (413).
    EventTooLarge {
        /// Position of the event in the batch.
        index: usize,
        /// Length of its stream data, in bytes.
        data_bytes: usize,
        /// The limit, in bytes.
        bytes_max: usize,
    },
    /// The batch names more than [`INGEST_CONNECTIONS_MAX`] streams (413).
    TooManyConnections {
        /// How many distinct `connectionId`s it names.
        connections: usize,
        /// The limit.
        connections_max: usize,
    },
    /// The body is not `{"events": [<object>, ...]}` (400); the text says where.
    NotABatch(String),
    /// The batch holds no events (400).
    EmptyBatch,
    /// One event is wrong (400).
    Invalid {
        /// Position of the event in the batch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

impl IngestError {
    /// Whether a limit was exceeded (HTTP 413) rather than the body being wrong (HTTP 400).
    #[must_use]
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::BodyTooLarge { .. }
                | Self::TooManyEvents { .. }
                | Self::EventTooLarge { .. }
                | Self::TooManyConnections { .. }
        )
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BodyTooLarge {
                body_bytes,
                bytes_max,
            } => write!(
                f,
                "body is {body_bytes} bytes, over the limit of {bytes_max}"
            ),
            Self::TooManyEvents { events, events_max } => write!(
                f,
                "batch holds {events} events, over the limit of {events_max}"
            ),
            Self::EventTooLarge {
                index,
                data_bytes,
                bytes_max,
            } => write!(
                f,
                "event {index}: its stream data is {data_bytes} bytes, over the limit of {bytes_max}"
            ),
            Self::TooManyConnections {
                connections,
                connections_max,
            } => write!(
                f,
                "batch names {connections} connectionIds, over the limit of {connections_max}"
            ),
            Self::NotABatch(why) => write!(f, "body must be {{\"events\": [...]}}: {why}"),
            Self::EmptyBatch => f.write_str("batch holds no events"),
            Self::Invalid { index, reason } => write!(f, "event {index}: {reason}"),
        }
    }
}

impl core::error::Error for IngestError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBatch<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    timestamp: String,
    framework: String,
    connection_id: String,
    #[serde(default)]
    job: Option<WireJob>,
    #[serde(default)]
    worker: Option<WireWorker>,
    #[serde(default)]
    queue: Option<WireQueue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireJob {
    external_id: String,
    name: String,
    state: String,
    #[serde(default)]
    previous_state: Option<String>,
    #[serde(default)]
    queue: Option<String>,
    #[serde(default)]
    worker_id: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    stacktrace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireWorker {
    external_id: String,
    #[serde(default)]
    hostname: Option<String>,
    state: String,
    #[serde(default)]
    active_jobs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireQueue {
    name: String,
    depth: u64,
    #[serde(default)]
    consumers: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobData<'a> {
    id: &'a str,
    name: &'a str,
    state: &'a str,
    previous_state: Option<&'a str>,
    timestamp: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerHeartbeatData<'a> {
    id: &'a str,
    hostname: &'a str,
    state: &'a str,
    active_jobs: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WorkerStateData<'a> {
    id: &'a str,
    hostname: &'a str,
    state: &'a str,
    active_jobs: u64,
    timestamp: &'a str,
}

#[derive(Serialize)]
struct QueueData<'a> {
    name: &'a str,
    depth: u64,
    consumers: u64,
}

/// Which payload an event type carries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Job,
    Worker,
    Queue,
}

fn kind_of(kind: &str) -> Option<Kind> {
    match kind {
        "job.state_change" | "job_state_change" => Some(Kind::Job),
        "worker.state_change" | "worker_state_change" => Some(Kind::Worker),
        "queue.snapshot" | "queue_snapshot" => Some(Kind::Queue),
        _ => None,
    }
}

/// Checks and translates an ingest body: every event, in order, or the first error. Limits are a
/// publish's ([`PublishLimits`]): the body's bytes (checked before parsing), the number of events,
/// and each translated event's data.
///
/// ```
/// use herald_core::sluice::parse_ingest;
/// use herald_core::PublishLimits;
/// let body = br#"{"events":[{"type":"job.state_change","timestamp":"2026-02-27T10:30:00.000Z",
///   "framework":"celery","connectionId":"c1",
///   "job":{"externalId":"a1b2","name":"app.tasks.send_email","state":"completed"}}]}"#;
/// let events = parse_ingest(body, &PublishLimits::default()).unwrap();
/// assert_eq!(events[0].connection.as_str(), "c1");
/// assert_eq!(events[0].event.name.as_str(), "job:state_change");
/// assert_eq!(
///     events[0].event.data,
///     r#"{"id":"a1b2","name":"app.tasks.send_email","state":"completed","previousState":null,"timestamp":"2026-02-27T10:30:00.000Z"}"#
/// );
/// ```
pub fn parse_ingest(body: &[u8], limits: &PublishLimits) -> Result<Vec<IngestEvent>, IngestError> {
    if body.len() > limits.batch_bytes_max {
        return Err(IngestError::BodyTooLarge {
            body_bytes: body.len(),
            bytes_max: limits.batch_bytes_max,
        });
    }
    let batch: WireBatch<'_> =
        serde_json::from_slice(body).map_err(|e| IngestError::NotABatch(e.to_string()))?;
    if batch.events.is_empty() {
        return Err(IngestError::EmptyBatch);
    }
    if batch.events.len() > limits.batch_events_max {
        return Err(IngestError::TooManyEvents {
            events: batch.events.len(),
            events_max: limits.batch_events_max,
        });
    }
    let events = batch
        .events
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let invalid = |reason: String| IngestError::Invalid { index, reason };
            if !raw.get().starts_with('{') {
                return Err(invalid("not a json object".into()));
            }
            let wire: WireEvent = serde_json::from_str(raw.get()).map_err(|e| {
                // serde's text names the field; the position is the event's own, not the body's.
                let text = e.to_string();
                invalid(match text.split_once(" at line ") {
                    Some((what, _)) => what.into(),
                    None => text,
                })
            })?;
            let (connection, event, job) = translate(&wire).map_err(invalid)?;
            // Measured as the largest the data can become once its previous state is filled in.
            let growth = match &job {
                Some(job) if job.previous_state.is_none() => PREVIOUS_STATE_GROWTH_BYTES,
                _ => 0,
            };
            if event.data.len() + growth > limits.event_bytes_max {
                return Err(IngestError::EventTooLarge {
                    index,
                    data_bytes: event.data.len() + growth,
                    bytes_max: limits.event_bytes_max,
                });
            }
            let raw_json = compact_json(raw.get());
            Ok(IngestEvent {
                connection,
                event,
                fingerprint: fingerprint(&raw_json),
                raw_json,
                job,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let connections = ingest_connections(&events).len();
    if connections > INGEST_CONNECTIONS_MAX {
        return Err(IngestError::TooManyConnections {
            connections,
            connections_max: INGEST_CONNECTIONS_MAX,
        });
    }
    Ok(events)
}

/// The ingest events of one stream, as the hub of `connection` is sent them: `{"events":[...]}`
/// holding the events of `events` whose connection is `connection`, in order.
#[must_use]
pub fn ingest_body_for(connection: &ConnectionId, events: &[IngestEvent]) -> String {
    let mut body = String::from("{\"events\":[");
    let mut first = true;
    for event in events.iter().filter(|e| e.connection == *connection) {
        if !first {
            body.push(',');
        }
        first = false;
        body.push_str(&event.raw_json);
    }
    body.push_str("]}");
    body
}

/// The distinct connections of a batch, in order of first appearance.
#[must_use]
pub fn ingest_connections(events: &[IngestEvent]) -> Vec<ConnectionId> {
    let mut connections: Vec<ConnectionId> = Vec::new();
    for event in events {
        if !connections.contains(&event.connection) {
            connections.push(event.connection.clone());
        }
    }
    connections
}

/// Which of a batch's events to store: the first of each fingerprint that `seen` does not already
/// hold (a retried event, or the same event twice in one batch, is stored once). Returns the
/// indexes of the events to keep.
///
/// ```
/// use herald_core::sluice::{fresh_ingest_events, parse_ingest};
/// use herald_core::PublishLimits;
/// let event = r#"{"type":"queue_snapshot","timestamp":"2026-02-27T10:30:00Z","framework":"celery",
///   "connectionId":"c1","queue":{"name":"default","depth":3,"consumers":1}}"#;
/// let body = format!(r#"{{"events":[{event},{event}]}}"#);
/// let events = parse_ingest(body.as_bytes(), &PublishLimits::default()).unwrap();
/// assert_eq!(fresh_ingest_events(&events, |_| false), [0]);
/// assert!(fresh_ingest_events(&events, |_| true).is_empty());
/// ```
pub fn fresh_ingest_events(
    events: &[IngestEvent],
    mut seen: impl FnMut(&str) -> bool,
) -> Vec<usize> {
    let mut kept: Vec<usize> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let again = kept
            .iter()
            .any(|&k| events[k].fingerprint == event.fingerprint);
        if !again && !seen(&event.fingerprint) {
            kept.push(index);
        }
    }
    kept
}

fn fingerprint(raw_json: &str) -> String {
    let digest = Sha256::digest(raw_json.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

fn one_of(field: &str, value: &str, known: &[&str]) -> Result<(), String> {
    if known.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "`{field}` is {value:?}, not one of {}",
            known.join(", ")
        ))
    }
}

fn text(field: &str, value: &str, chars_max: usize) -> Result<(), String> {
    if value.is_empty() {
        return Err(format!("`{field}` is empty"));
    }
    let chars = value.chars().count();
    if chars > chars_max {
        return Err(format!(
            "`{field}` is {chars} characters, over the limit of {chars_max}"
        ));
    }
    Ok(())
}

type Translated = (ConnectionId, NewEvent, Option<JobFacts>);

fn translate(wire: &WireEvent) -> Result<Translated, String> {
    let kind = kind_of(&wire.kind).ok_or_else(|| {
        format!(
            "`type` is {:?}, not job.state_change, worker.state_change or queue.snapshot \
             (or the same with `_`)",
            wire.kind
        )
    })?;
    let connection = ConnectionId::new(&wire.connection_id)
        .map_err(|e| format!("`connectionId` is not valid: {e}"))?;
    one_of("framework", &wire.framework, FRAMEWORKS)?;
    if !is_iso_8601(&wire.timestamp) {
        return Err(format!(
            "`timestamp` {:?} is not an ISO 8601 date and time",
            wire.timestamp
        ));
    }
    let payloads = [
        (Kind::Job, "job", wire.job.is_some()),
        (Kind::Worker, "worker", wire.worker.is_some()),
        (Kind::Queue, "queue", wire.queue.is_some()),
    ];
    for (payload_kind, field, present) in payloads {
        if present != (payload_kind == kind) {
            return Err(if present {
                format!("a {} event carries no `{field}`", wire.kind)
            } else {
                format!("a {} event needs `{field}`", wire.kind)
            });
        }
    }
    let timestamp = wire.timestamp.as_str();
    let mut facts = None;
    let (name, data) = match (&wire.job, &wire.worker, &wire.queue) {
        (Some(job), _, _) => {
            let job = job_facts(job, timestamp)?;
            let data = job.data()?;
            facts = Some(job);
            ("job:state_change", data)
        }
        (_, Some(worker), _) => worker_event(worker, timestamp)?,
        (_, _, Some(queue)) => {
            text("queue.name", &queue.name, 255)?;
            let data = QueueData {
                name: &queue.name,
                depth: queue.depth,
                consumers: queue.consumers.unwrap_or(0),
            };
            ("queue:snapshot", to_json(&data)?)
        }
        _ => return Err("the event carries no payload".into()),
    };
    let event = NewEvent {
        name: EventName::from_static(name),
        data,
        category: None,
    };
    Ok((connection, event, facts))
}

fn job_facts(job: &WireJob, timestamp: &str) -> Result<JobFacts, String> {
    text("job.externalId", &job.external_id, 512)?;
    text("job.name", &job.name, 1024)?;
    one_of("job.state", &job.state, JOB_STATES)?;
    if let Some(previous) = &job.previous_state {
        one_of("job.previousState", previous, JOB_STATES)?;
    }
    if let Some(queue) = &job.queue {
        text("job.queue", queue, 255)?;
    }
    if let Some(worker) = &job.worker_id {
        text("job.workerId", worker, 512)?;
    }
    if job.attempt == Some(0) {
        return Err("`job.attempt` counts from 1".into());
    }
    if job
        .error
        .as_ref()
        .is_some_and(|e| e.chars().count() > 10_000)
    {
        return Err("`job.error` is over 10,000 characters".into());
    }
    if job
        .stacktrace
        .as_ref()
        .is_some_and(|s| s.chars().count() > 50_000)
    {
        return Err("`job.stacktrace` is over 50,000 characters".into());
    }
    Ok(JobFacts {
        external_id: job.external_id.clone(),
        name: job.name.clone(),
        state: job.state.clone(),
        previous_state: job.previous_state.clone(),
        timestamp: timestamp.into(),
    })
}

fn worker_event(worker: &WireWorker, timestamp: &str) -> Result<(&'static str, String), String> {
    text("worker.externalId", &worker.external_id, 512)?;
    let hostname = worker.hostname.as_deref().unwrap_or(&worker.external_id);
    text("worker.hostname", hostname, 512)?;
    one_of("worker.state", &worker.state, WORKER_STATES)?;
    let active_jobs = worker.active_jobs.unwrap_or(0);
    if worker.state == "heartbeat" {
        // A worker that sends heartbeats is online; sluice's stream shows it so.
        let data = WorkerHeartbeatData {
            id: &worker.external_id,
            hostname,
            state: "online",
            active_jobs,
        };
        return Ok(("worker:heartbeat", to_json(&data)?));
    }
    let data = WorkerStateData {
        id: &worker.external_id,
        hostname,
        state: &worker.state,
        active_jobs,
        timestamp,
    };
    Ok(("worker:state_change", to_json(&data)?))
}

fn to_json(value: &impl Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| e.to_string())
}

/// `YYYY-MM-DDTHH:MM:SS`, an optional fraction, then `Z` or `±HH:MM` (RFC 3339's `date-time`, which
/// is what sluice's schema, zod's `datetime`, accepts, plus offsets).
fn is_iso_8601(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: core::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    let at = |index: usize, byte: u8| bytes.get(index) == Some(&byte);
    let head = digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && (at(10, b'T') || at(10, b't'))
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19);
    if !head || text.len() > 64 {
        return false;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let end = fraction
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(fraction.len());
        if end == 0 {
            return false;
        }
        rest = &fraction[end..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
