//! The `DurableStream` Durable Object: one Durable Streams stream (PROTOCOL.md 1.0) in SQLite.
//!
//! The Worker (`ds_routes.rs`) authenticates and forwards each request here; every protocol rule
//! comes from `herald_core::durable`. Live readers (long-poll and SSE) are held by the Worker,
//! which connects here over a hibernatable WebSocket: this object sends each socket a one-byte
//! wake-up after every change and holds no request and no timer, so it can be evicted between
//! writes.

use herald_core::durable::{
    check_content_type, check_producer, is_closed_flag, is_json, media_type, split_messages,
    stream_seq_advances, Expiry, JsonBodyKind, ProducerHeaders, ProducerVerdict,
};
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, Response, State, WebSocket,
    WebSocketIncomingMessage, WebSocketPair,
};

use crate::ds_read::{decode_rows, fork_export, head, read, ForkSource};
use crate::ds_store::{ClosedBy, DsStore, Meta};
use crate::stream::now_ms;

/// Internal headers between the Worker and this object (never sent to clients).
pub(crate) const H_PATH: &str = "x-herald-ds-path";
pub(crate) const H_URL: &str = "x-herald-ds-url";
pub(crate) const H_FORKED_FROM: &str = "x-herald-ds-forked-from";
pub(crate) const H_FORK: &str = "x-herald-ds-fork";
pub(crate) const H_EMPTY: &str = "x-herald-ds-empty";

/// The stream's limits, read from the environment (README "Durable Streams").
#[derive(Debug, Clone, Copy)]
pub(crate) struct DsLimits {
    pub(crate) append_bytes_max: usize,
    pub(crate) stream_bytes_max: u64,
    pub(crate) read_bytes_max: usize,
    pub(crate) long_poll_ms: u64,
}

/// A limit from the environment: empty or unset is its default; anything but a whole number in
/// `range` is refused (as every Herald limit is: never clamped).
fn env_number(
    env: &Env,
    name: &str,
    default: u64,
    range: core::ops::RangeInclusive<u64>,
) -> Result<u64, String> {
    let Some(text) = env.var(name).ok().map(|v| v.to_string()) else {
        return Ok(default);
    };
    if text.trim().is_empty() {
        return Ok(default);
    }
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| {
            format!(
                "{name} must be a whole number from {} to {}",
                range.start(),
                range.end()
            )
        })
}

impl DsLimits {
    pub(crate) fn get(env: &Env) -> Result<DsLimits, String> {
        Ok(DsLimits {
            append_bytes_max: env_number(env, "HERALD_DS_APPEND_BYTES_MAX", 4 << 20, 1..=32 << 20)?
                as usize,
            stream_bytes_max: env_number(
                env,
                "HERALD_DS_STREAM_BYTES_MAX",
                256 << 20,
                1..=10 << 30,
            )?,
            read_bytes_max: env_number(env, "HERALD_DS_READ_BYTES_MAX", 1 << 20, 1..=16 << 20)?
                as usize,
            long_poll_ms: env_number(env, "HERALD_DS_LONG_POLL_MS", 10_000, 100..=300_000)?,
        })
    }
}

/// A protocol answer: status, headers, body. Errors carry Herald's JSON error body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: Headers,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn error(status: u16, code: &str, message: impl core::fmt::Display) -> Answer {
        let body = serde_json::json!({ "error": code, "message": message.to_string() });
        let mut answer = Answer::new(status);
        answer.body = body.to_string().into_bytes();
        answer.set("content-type", "application/json");
        answer
    }

    pub(crate) fn set(&mut self, name: &str, value: &str) {
        let _ = self.headers.set(name, value);
    }

    pub(crate) fn with(mut self, name: &str, value: &str) -> Answer {
        self.set(name, value);
        self
    }

    fn into_response(self) -> worker::Result<Response> {
        let response = if self.body.is_empty() {
            Response::empty()?
        } else {
            Response::from_bytes(self.body)?
        };
        Ok(response.with_status(self.status).with_headers(self.headers))
    }
}

pub(crate) fn bad(code: &str, message: impl core::fmt::Display) -> Answer {
    Answer::error(400, code, message)
}

pub(crate) fn not_found() -> Answer {
    Answer::error(404, "stream_not_found", "no stream at this URL")
}

pub(crate) fn gone() -> Answer {
    Answer::error(
        410,
        "stream_gone",
        "the stream was deleted; its data is kept for its forks",
    )
}

pub(crate) fn header(request: &Request, name: &str) -> Option<String> {
    request.headers().get(name).ok().flatten()
}

#[durable_object]
pub struct DurableStream {
    state: State,
    env: Env,
    /// When this in-memory instance started: `HEAD` reports it (`Herald-Object-Started-Ms`), so a
    /// test can tell that the object was evicted while readers waited.
    started_ms: u64,
}

impl core::fmt::Debug for DurableStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DurableStream").finish_non_exhaustive()
    }
}

impl DurableObject for DurableStream {
    fn new(state: State, env: Env) -> Self {
        DurableStream {
            state,
            env,
            started_ms: now_ms(),
        }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        let body = match request.method() {
            Method::Put | Method::Post => request.bytes().await?,
            _ => Vec::new(),
        };
        match self.serve(&request, body) {
            Ok(Served::Answer(answer)) => answer.into_response(),
            Ok(Served::Socket(response)) => Ok(response),
            Err(error) => Answer::error(500, "internal", error).into_response(),
        }
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> worker::Result<()> {
        let _ = ws.close(Some(1000), Some("reader closed"));
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        let _ = ws.close(Some(1011), Some("socket error"));
        Ok(())
    }
}

enum Served {
    Answer(Answer),
    Socket(Response),
}

impl From<Answer> for Served {
    fn from(answer: Answer) -> Served {
        Served::Answer(answer)
    }
}

fn now_signed_ms() -> i64 {
    i64::try_from(now_ms()).unwrap_or(i64::MAX)
}

/// Headers every answer about an existing stream carries.
pub(crate) fn describe(answer: &mut Answer, meta: &Meta) {
    answer.set("stream-next-offset", &meta.tail().encode());
    if meta.closed {
        answer.set("stream-closed", "true");
    }
}

impl DurableStream {
    fn serve(&self, request: &Request, body: Vec<u8>) -> worker::Result<Served> {
        let store = DsStore::open(&self.state)?;
        let limits = match DsLimits::get(&self.env) {
            Ok(limits) => limits,
            Err(message) => return Ok(Answer::error(500, "internal", message).into()),
        };
        let now = now_signed_ms();
        let mut meta = store.meta()?;
        // An expired stream is gone (a stream its forks still reference stays, soft-deleted).
        if let Some(m) = meta.as_mut() {
            if !m.soft_deleted && m.expiry().is_expired(m.last_access_ms, now) {
                if m.refs > 0 {
                    m.soft_deleted = true;
                    store.purge()?;
                    store.set_meta(m)?;
                } else {
                    store.purge()?;
                    meta = None;
                }
            }
        }
        let url = request.url()?;
        let op = url.path().trim_start_matches('/');
        let served: Served = match (op, request.method()) {
            ("fork-export", Method::Get) => fork_export(&store, meta, &url)?.into(),
            ("fork-ref", Method::Post) => match meta {
                Some(mut m) => {
                    m.refs += 1;
                    store.set_meta(&m)?;
                    Answer::new(204).into()
                }
                None => not_found().into(),
            },
            ("fork-unref", Method::Post) => self.fork_unref(&store, meta)?.into(),
            ("stream", Method::Put) => self.create(&store, meta, request, body, now)?.into(),
            ("stream", Method::Post) => {
                let answer = self.append(&store, meta, request, body, now, &limits)?;
                answer.into()
            }
            ("stream", Method::Delete) => self.delete(&store, meta)?.into(),
            ("stream", Method::Head) => match meta {
                None => not_found().into(),
                Some(m) if m.soft_deleted => gone().into(),
                Some(m) => head(&m)
                    .with("herald-object-started-ms", &self.started_ms.to_string())
                    .into(),
            },
            ("stream", Method::Get) => match meta {
                None => not_found().into(),
                Some(m) if m.soft_deleted => gone().into(),
                Some(mut m) => {
                    // §5.1: "Each read or write operation resets the expiry countdown".
                    m.last_access_ms = now;
                    store.set_meta(&m)?;
                    let upgrade = header(request, "upgrade")
                        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
                    if upgrade {
                        let pair = WebSocketPair::new()?;
                        self.state
                            .accept_websocket_with_tags(&pair.server, &["live"]);
                        Served::Socket(Response::from_websocket(pair.client)?)
                    } else {
                        read(&store, &m, request, &url, &limits)?.into()
                    }
                }
            },
            _ => Answer::error(405, "method_not_allowed", "method not allowed on a stream")
                .with("allow", "GET, HEAD, PUT, POST, DELETE")
                .into(),
        };
        Ok(served)
    }

    /// Wakes every waiting reader: they read again and learn what changed.
    fn wake_readers(&self) {
        for socket in self.state.get_websockets() {
            let _ = socket.send_with_str("w");
        }
    }

    fn create(
        &self,
        store: &DsStore,
        existing: Option<Meta>,
        request: &Request,
        body: Vec<u8>,
        now: i64,
    ) -> worker::Result<Answer> {
        let fork: Option<ForkSource> = match header(request, H_FORK) {
            Some(json) => match serde_json::from_str(&json) {
                Ok(fork) => Some(fork),
                Err(e) => return Ok(Answer::error(500, "internal", e)),
            },
            None => None,
        };
        let requested_type = header(request, "content-type");
        if let Some(content_type) = &requested_type {
            if let Err(e) = check_content_type(content_type) {
                return Ok(bad("invalid_content_type", e));
            }
        }
        let expiry = match Expiry::from_headers(
            header(request, "stream-ttl").as_deref(),
            header(request, "stream-expires-at").as_deref(),
        ) {
            Ok(expiry) => expiry,
            Err(e) => return Ok(bad("invalid_expiry", e)),
        };
        let closed = is_closed_flag(header(request, "stream-closed").as_deref());
        let content_type = match (&fork, requested_type) {
            (Some(fork), Some(requested)) => {
                if media_type(&requested) != media_type(&fork.content_type) {
                    return Ok(Answer::error(
                        409,
                        "content_type_mismatch",
                        "a fork's content type must be its source's",
                    ));
                }
                requested
            }
            (Some(fork), None) => fork.content_type.clone(),
            (None, Some(requested)) => requested,
            (None, None) => "application/octet-stream".into(),
        };
        let expiry = match &fork {
            Some(fork) => Expiry::for_fork(expiry, fork.expiry()),
            None => expiry,
        };
        let (ttl_s, expires_at_ms) = match expiry {
            Expiry::Ttl { ttl_s } => (Some(ttl_s), None),
            Expiry::At { at_ms } => (None, Some(at_ms)),
            Expiry::Never => (None, None),
        };
        if let Some(m) = existing {
            if m.soft_deleted {
                return Ok(Answer::error(
                    409,
                    "stream_soft_deleted",
                    "a deleted stream with forks cannot be re-created",
                ));
            }
            let same = media_type(&m.content_type) == media_type(&content_type)
                && m.ttl_s == ttl_s
                && m.expires_at_ms == expires_at_ms
                && m.closed == closed
                && m.forked_from == fork.as_ref().map(|f| f.source_path.clone())
                && m.fork_offset == fork.as_ref().map(|f| f.point);
            if !same {
                return Ok(Answer::error(
                    409,
                    "stream_exists",
                    "a stream with another configuration exists at this URL",
                ));
            }
            let mut answer = Answer::new(200).with("content-type", &m.content_type);
            describe(&mut answer, &m);
            return Ok(answer);
        }
        // A fork's body is its source's rows, then the client's own initial body.
        let (inherited, body) = match &fork {
            Some(fork) => {
                let split = usize::try_from(fork.rows_bytes)
                    .unwrap_or(usize::MAX)
                    .min(body.len());
                let (rows, own) = body.split_at(split);
                (decode_rows(rows), own.to_vec())
            }
            None => (Vec::new(), body),
        };
        let json = is_json(&content_type);
        let messages: Vec<Vec<u8>> = if body.is_empty() {
            Vec::new()
        } else if json {
            match split_messages(&body, JsonBodyKind::Create) {
                Ok(messages) => messages.into_iter().map(String::into_bytes).collect(),
                Err(e) => return Ok(bad("invalid_json", e)),
            }
        } else {
            vec![body]
        };
        let generation = format!("{:x}{:08x}", now, (js_sys::Math::random() * 4e9) as u64);
        let mut meta = Meta {
            generation,
            content_type,
            ttl_s,
            expires_at_ms,
            closed: false,
            closed_by: None,
            tail: 0,
            earliest: 0,
            retained_bytes: 0,
            stream_seq: None,
            last_access_ms: now,
            forked_from: fork.as_ref().map(|f| f.source_path.clone()),
            fork_offset: fork.as_ref().map(|f| f.point),
            fork_sub_offset: fork.as_ref().map_or(0, |f| f.sub_offset),
            refs: 0,
            soft_deleted: false,
        };
        // A re-created stream must not see the old one's rows or producers.
        store.purge()?;
        if let Some(fork) = &fork {
            if let Some((first, _)) = inherited.first() {
                meta.earliest = *first;
            }
            for (start, bytes) in &inherited {
                meta.tail = *start;
                store.append_rows(&mut meta, &[bytes.as_slice()])?;
            }
            meta.tail = fork.point;
            if inherited.is_empty() {
                meta.earliest = fork.point;
            }
        }
        let rows: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        store.append_rows(&mut meta, &rows)?;
        meta.closed = closed;
        store.set_meta(&meta)?;
        let mut answer = Answer::new(201).with("content-type", &meta.content_type);
        if let Some(url) = header(request, H_URL) {
            answer.set("location", &url);
        }
        describe(&mut answer, &meta);
        Ok(answer)
    }

    fn append(
        &self,
        store: &DsStore,
        meta: Option<Meta>,
        request: &Request,
        body: Vec<u8>,
        now: i64,
        limits: &DsLimits,
    ) -> worker::Result<Answer> {
        let Some(mut meta) = meta else {
            return Ok(not_found());
        };
        if meta.soft_deleted {
            return Ok(gone());
        }
        let closing = is_closed_flag(header(request, "stream-closed").as_deref());
        let producer = match ProducerHeaders::from_headers(
            header(request, "producer-id").as_deref(),
            header(request, "producer-epoch").as_deref(),
            header(request, "producer-seq").as_deref(),
        ) {
            Ok(producer) => producer,
            Err(e) => return Ok(bad("invalid_producer", e)),
        };
        if body.is_empty() && !closing {
            return Ok(bad(
                "empty_body",
                "an append needs a body (or Stream-Closed: true)",
            ));
        }
        if body.len() > limits.append_bytes_max {
            return Ok(Answer::error(
                413,
                "too_large",
                "the append is over HERALD_DS_APPEND_BYTES_MAX",
            ));
        }
        // §5.2 error precedence: closed first, then content type, then sequence.
        if meta.closed {
            let by_closer = match (&producer, &meta.closed_by) {
                (Some(p), Some(by)) => {
                    p.id == by.producer && p.epoch == by.epoch && p.seq == by.seq
                }
                _ => false,
            };
            let status = if by_closer || (body.is_empty() && closing) {
                204
            } else {
                409
            };
            let mut answer = if status == 409 {
                Answer::error(409, "stream_closed", "the stream is closed")
            } else {
                Answer::new(204)
            };
            if let (true, Some(p)) = (by_closer, &producer) {
                answer.set("producer-epoch", &p.epoch.to_string());
                answer.set("producer-seq", &p.seq.to_string());
            }
            describe(&mut answer, &meta);
            return Ok(answer);
        }
        let mut rows: Vec<Vec<u8>> = Vec::new();
        if !body.is_empty() {
            let Some(content_type) = header(request, "content-type") else {
                return Ok(bad(
                    "missing_content_type",
                    "an append with a body needs Content-Type",
                ));
            };
            if media_type(&content_type) != media_type(&meta.content_type) {
                return Ok(Answer::error(
                    409,
                    "content_type_mismatch",
                    "the content type is not the stream's",
                ));
            }
            if is_json(&meta.content_type) {
                match split_messages(&body, JsonBodyKind::Append) {
                    Ok(messages) => rows = messages.into_iter().map(String::into_bytes).collect(),
                    Err(e) => return Ok(bad("invalid_json", e)),
                }
            } else {
                rows.push(body);
            }
        }
        let mut next_producer = None;
        if let Some(p) = &producer {
            match check_producer(store.producer(&p.id)?, p.epoch, p.seq) {
                ProducerVerdict::Accept { next } => next_producer = Some(next),
                ProducerVerdict::Duplicate { current } => {
                    let mut answer = Answer::new(204)
                        .with("producer-epoch", &current.epoch.to_string())
                        .with("producer-seq", &current.last_seq.to_string());
                    describe(&mut answer, &meta);
                    return Ok(answer);
                }
                ProducerVerdict::StaleEpoch { current_epoch } => {
                    return Ok(Answer::error(
                        403,
                        "stale_producer_epoch",
                        "a newer epoch of this producer exists",
                    )
                    .with("producer-epoch", &current_epoch.to_string()));
                }
                ProducerVerdict::NewEpochNotAtZero => {
                    return Ok(bad(
                        "invalid_producer",
                        "a new producer epoch starts at Producer-Seq 0",
                    ));
                }
                ProducerVerdict::Gap { expected, received } => {
                    return Ok(Answer::error(
                        409,
                        "producer_sequence_gap",
                        "Producer-Seq skips ahead",
                    )
                    .with("producer-expected-seq", &expected.to_string())
                    .with("producer-received-seq", &received.to_string()));
                }
            }
        }
        if let Some(seq) = header(request, "stream-seq") {
            match stream_seq_advances(meta.stream_seq.as_deref(), &seq) {
                Ok(true) => meta.stream_seq = Some(seq),
                Ok(false) => {
                    return Ok(Answer::error(
                        409,
                        "stream_seq_regression",
                        "Stream-Seq must increase",
                    ))
                }
                Err(e) => return Ok(bad("invalid_stream_seq", e)),
            }
        }
        // The commit: data, producer state and meta in this one synchronous step.
        let row_refs: Vec<&[u8]> = rows.iter().map(Vec::as_slice).collect();
        store.append_rows(&mut meta, &row_refs)?;
        store.enforce_retention(&mut meta, limits.stream_bytes_max)?;
        if let (Some(p), Some(next)) = (&producer, next_producer) {
            store.set_producer(&p.id, next)?;
        }
        if closing {
            meta.closed = true;
            meta.closed_by = producer.as_ref().map(|p| ClosedBy {
                producer: p.id.clone(),
                epoch: p.epoch,
                seq: p.seq,
            });
        }
        meta.last_access_ms = now;
        store.set_meta(&meta)?;
        self.wake_readers();
        // A close-only request answers 204 even for a producer (nothing new was stored).
        let status = if row_refs.is_empty() { 204 } else { 200 };
        let mut answer = match (&producer, next_producer) {
            (Some(_), Some(next)) => Answer::new(status)
                .with("producer-epoch", &next.epoch.to_string())
                .with("producer-seq", &next.last_seq.to_string()),
            _ => Answer::new(204),
        };
        describe(&mut answer, &meta);
        Ok(answer)
    }

    fn delete(&self, store: &DsStore, meta: Option<Meta>) -> worker::Result<Answer> {
        let Some(mut meta) = meta else {
            return Ok(not_found());
        };
        if meta.soft_deleted {
            return Ok(gone());
        }
        let mut answer = Answer::new(204);
        if meta.refs > 0 {
            // Forks copied their data at creation: only the stream's own state is kept (for 410).
            meta.soft_deleted = true;
            store.purge()?;
            store.set_meta(&meta)?;
        } else {
            store.purge()?;
            if let Some(source) = &meta.forked_from {
                answer.set(H_FORKED_FROM, source);
            }
        }
        self.wake_readers();
        Ok(answer)
    }

    fn fork_unref(&self, store: &DsStore, meta: Option<Meta>) -> worker::Result<Answer> {
        let Some(mut meta) = meta else {
            return Ok(Answer::new(204));
        };
        meta.refs = meta.refs.saturating_sub(1);
        let mut answer = Answer::new(204);
        if meta.soft_deleted && meta.refs == 0 {
            store.purge()?;
            if let Some(source) = &meta.forked_from {
                answer.set(H_FORKED_FROM, source);
            }
        } else {
            store.set_meta(&meta)?;
        }
        Ok(answer)
    }
}
