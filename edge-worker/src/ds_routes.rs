//! The Durable Streams routes: every URL under `/ds/` is a stream (PROTOCOL.md 1.0).
//!
//! The Worker authenticates (Bearer for writes; Bearer or ticket for reads), names the stream's
//! Durable Object from (tenant, path), and forwards. Live reads are held here: the Worker opens a
//! hibernatable WebSocket to the stream's object, reads with catch-up requests, and waits on the
//! socket for a wake-up between them, so an idle object with waiting readers can be evicted.

use core::future::poll_fn;
use core::task::{Poll, Waker};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use herald_core::durable::{
    check_stream_path, durable_stream_name, is_sse_text, next_cursor, parse_offset,
    sse_control_event, sse_data_event, Control, Offset, CACHE_CONTROL_NO_STORE, CACHE_CONTROL_SSE,
};
use herald_core::{Claims, ConnectionId, Scope, TenantId, TokenKind};
use worker::wasm_bindgen_futures::spawn_local;
use worker::{
    Delay, Env, Headers, Method, Request, RequestInit, Response, Stub, Url, WebSocket,
    WebsocketEvent,
};

use crate::body::read_capped;
use crate::config::Config;
use crate::ds_read::ForkSource;
use crate::durable_stream::{DsLimits, H_EMPTY, H_FORK, H_FORKED_FROM, H_PATH, H_URL};
use crate::error::{ApiError, ApiResult};
use crate::session::{authenticate, Accepts, Check};
use crate::stream::now_ms;

/// How long an SSE response lasts before the client reconnects (§10.2 "approximately every 60
/// seconds").
const SSE_MAX_AGE_MS: u64 = 60_000;
/// How deep a chain of soft-deleted sources is cleaned up after a fork's deletion.
const FORK_CHAIN_MAX: usize = 64;

/// Headers a client never sees: the Worker's conversation with the stream's object.
const INTERNAL: [&str; 5] = [H_PATH, H_URL, H_FORKED_FROM, H_FORK, H_EMPTY];

fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// Answers one request to `/ds/{path}`.
pub(crate) async fn handle(
    mut request: Request,
    env: &Env,
    config: &Config,
    path: &str,
) -> ApiResult<Response> {
    check_stream_path(path).map_err(|e| ApiError::bad_request("invalid_stream_path", e))?;
    let url = request.url()?;
    let method = request.method();
    let scope = match method {
        Method::Get | Method::Head => Scope::Subscribe,
        Method::Put | Method::Post | Method::Delete => Scope::Publish,
        _ => {
            return Err(ApiError::MethodNotAllowed {
                allow: "GET, HEAD, PUT, POST, DELETE, OPTIONS",
            })
        }
    };
    let key = Config::token_key(env)?;
    let now_s = now_ms() / 1000;
    // Reads take a Bearer token, a ticket (`?ticket=`) or the session cookie; writes a Bearer
    // token.
    let reading = scope == Scope::Subscribe;
    let accepts = Accepts {
        ticket: reading,
        cookie: reading,
    };
    let check = Check { key, now_s, config };
    let claims = authenticate(&request, &url, check, accepts)?.claims;
    permit(&claims, scope, path)?;
    // A fork reads its source: the token must be allowed to read that stream too.
    if let (Method::Put, Some(source)) = (&method, request.headers().get("stream-forked-from")?) {
        permit(&claims, Scope::Subscribe, &source_path(&source)?)?;
    }
    let tenant = claims.tenant.clone();
    let limits = DsLimits::get(env).map_err(ApiError::Internal)?;
    let body = match method {
        Method::Put | Method::Post => read_capped(&mut request, limits.append_bytes_max).await?,
        _ => Vec::new(),
    };
    let target = Target {
        env,
        tenant: &tenant,
    };
    let live = query_value(&url, "live");
    let response = match (method, live.as_deref()) {
        (Method::Get, Some("long-poll")) => {
            long_poll(&target, path, &request, &url, &limits).await?
        }
        (Method::Get, Some("sse")) => sse(&target, path, &request, &url).await?,
        (Method::Get, Some(other)) if !other.is_empty() => {
            return Err(ApiError::bad_request(
                "invalid_live",
                "live must be long-poll or sse",
            ))
        }
        (Method::Put, _) if request.headers().has("stream-forked-from")? => {
            fork(&target, path, &request, &url, body).await?
        }
        (Method::Put, _)
            if request.headers().has("stream-fork-offset")?
                || request.headers().has("stream-fork-sub-offset")? =>
        {
            return Err(ApiError::bad_request(
                "invalid_fork",
                "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From",
            ))
        }
        (Method::Delete, _) => {
            let answer = target
                .call(path, "stream", Method::Delete, &request, &url, None)
                .await?;
            if let Some(source) = answer.headers().get(H_FORKED_FROM)? {
                target.release_chain(source).await?;
            }
            answer
        }
        (method, _) => {
            let body = matches!(method, Method::Put | Method::Post).then_some(body);
            target
                .call(path, "stream", method, &request, &url, body)
                .await?
        }
    };
    public(response)
}

/// Whether `claims` allow `scope` on the stream at `path`: a token limited to some streams reaches
/// a /ds/ stream only when its path is one of them (so a path with `/` needs an unlimited token).
fn permit(claims: &Claims, scope: Scope, path: &str) -> ApiResult<()> {
    match ConnectionId::new(path) {
        Ok(connection) => claims
            .permits(scope, &connection)
            .map_err(|e| ApiError::Forbidden(e.to_string())),
        Err(_) => {
            let broad = claims.streams.is_none() && claims.kind == TokenKind::Access;
            if broad && claims.scopes.contains(scope) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(
                    "this token does not reach this stream".into(),
                ))
            }
        }
    }
}

/// The CORS preflight of a stream URL: its methods and every protocol request header.
pub(crate) fn preflight(allowed: Option<crate::cors::Allowed>) -> worker::Result<Response> {
    crate::cors::preflight_for(
        allowed,
        "GET, HEAD, PUT, POST, DELETE, OPTIONS",
        "authorization, content-type, if-none-match, stream-ttl, stream-expires-at, stream-seq, \
         stream-closed, stream-forked-from, stream-fork-offset, stream-fork-sub-offset, \
         producer-id, producer-epoch, producer-seq",
    )
}

/// The response headers a browser may read.
const EXPOSED: &str = "stream-next-offset, stream-cursor, stream-up-to-date, stream-closed, \
    stream-ttl, stream-expires-at, stream-sse-data-encoding, producer-epoch, producer-seq, \
    producer-expected-seq, producer-received-seq, etag, location";

/// Strips internal headers and adds the browser security headers (§12.7).
fn public(response: Response) -> ApiResult<Response> {
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        if !INTERNAL.contains(&name.as_str()) {
            headers.append(&name, &value)?;
        }
    }
    headers.set("x-content-type-options", "nosniff")?;
    headers.set("access-control-expose-headers", EXPOSED)?;
    headers.set("cross-origin-resource-policy", "cross-origin")?;
    Ok(response.with_headers(headers))
}

struct Target<'a> {
    env: &'a Env,
    tenant: &'a TenantId,
}

impl Target<'_> {
    fn stub(&self, path: &str) -> ApiResult<Stub> {
        let name = durable_stream_name(self.tenant, path);
        Ok(self
            .env
            .durable_object("DURABLE_STREAM")?
            .id_from_name(&name)?
            .get_stub()?)
    }

    /// Sends `op` to the stream's object with the client's headers and query.
    async fn call(
        &self,
        path: &str,
        op: &str,
        method: Method,
        request: &Request,
        url: &Url,
        body: Option<Vec<u8>>,
    ) -> ApiResult<Response> {
        let headers = Headers::new();
        for (name, value) in request.headers().entries() {
            if name != "authorization" && !INTERNAL.contains(&name.as_str()) {
                headers.append(&name, &value)?;
            }
        }
        headers.set(H_PATH, path)?;
        let public_url = format!(
            "{}://{}{}",
            url.scheme(),
            url.host_str().unwrap_or("localhost"),
            port_suffix(url)
        );
        headers.set(H_URL, &format!("{public_url}{}", url.path()))?;
        self.send(path, op, method, headers, url.query(), body)
            .await
    }

    async fn send(
        &self,
        path: &str,
        op: &str,
        method: Method,
        headers: Headers,
        query: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> ApiResult<Response> {
        let mut init = RequestInit::new();
        init.with_method(method).with_headers(headers);
        if let Some(body) = body {
            init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
        }
        let query = query.map(|q| format!("?{q}")).unwrap_or_default();
        let inner = Request::new_with_init(&format!("https://ds.internal/{op}{query}"), &init)?;
        Ok(self.stub(path)?.fetch_with_request(inner).await?)
    }

    /// After a fork is deleted: drop its reference on its source, and on theirs in turn while a
    /// soft-deleted source has no forks left.
    async fn release_chain(&self, mut source: String) -> ApiResult<()> {
        for _ in 0..FORK_CHAIN_MAX {
            let answer = self
                .send(
                    &source,
                    "fork-unref",
                    Method::Post,
                    Headers::new(),
                    None,
                    None,
                )
                .await?;
            match answer.headers().get(H_FORKED_FROM)? {
                Some(next) => source = next,
                None => break,
            }
        }
        Ok(())
    }
}

fn port_suffix(url: &Url) -> String {
    url.port().map(|p| format!(":{p}")).unwrap_or_default()
}

/// `Stream-Forked-From` names the source by its URL path: `/ds/{path}`, or `{path}` relative to
/// `/ds/` (as the conformance suite sends it).
fn source_path(value: &str) -> ApiResult<String> {
    let trimmed = value.trim();
    let path = trimmed
        .strip_prefix("/ds/")
        .or_else(|| trimmed.strip_prefix('/'))
        .unwrap_or(trimmed);
    check_stream_path(path).map_err(|e| ApiError::bad_request("invalid_fork_source", e))?;
    Ok(path.into())
}

/// Creates a fork by copying its source's data up to the fork point (§4.2 allows copy-on-fork),
/// then counting the fork on the source so that deleting the source soft-deletes it.
async fn fork(
    target: &Target<'_>,
    path: &str,
    request: &Request,
    url: &Url,
    body: Vec<u8>,
) -> ApiResult<Response> {
    let headers = request.headers();
    let source = source_path(&headers.get("stream-forked-from")?.unwrap_or_default())?;
    let mut query = Vec::new();
    if let Some(offset) = headers.get("stream-fork-offset")? {
        if parse_offset(offset.trim()).is_err() {
            return Err(ApiError::bad_request(
                "invalid_fork_offset",
                "Stream-Fork-Offset is not an offset this server returned",
            ));
        }
        query.push(format!("offset={}", offset.trim()));
    }
    if let Some(sub) = headers.get("stream-fork-sub-offset")? {
        let sub = sub.trim();
        let valid = !sub.is_empty()
            && sub.bytes().all(|b| b.is_ascii_digit())
            && sub.parse::<u64>().is_ok();
        if !valid {
            return Err(ApiError::bad_request(
                "invalid_fork_sub_offset",
                "Stream-Fork-Sub-Offset must be a non-negative integer",
            ));
        }
        query.push(format!("sub={sub}"));
    }
    let query = query.join("&");
    let mut export = target
        .send(
            &source,
            "fork-export",
            Method::Get,
            Headers::new(),
            Some(&query),
            None,
        )
        .await?;
    if export.status_code() != 200 {
        return Ok(export);
    }
    let mut fork_source: ForkSource =
        serde_json::from_str(&export.headers().get(H_FORK)?.unwrap_or_default())
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    fork_source.source_path = source.clone();
    let mut rows = export.bytes().await?;
    fork_source.rows_bytes = rows.len() as u64;
    rows.extend_from_slice(&body);
    let fork_headers = Headers::new();
    for (name, value) in headers.entries() {
        if name != "authorization" && !INTERNAL.contains(&name.as_str()) {
            fork_headers.append(&name, &value)?;
        }
    }
    fork_headers.set(
        H_FORK,
        &serde_json::to_string(&fork_source).map_err(|e| ApiError::Internal(e.to_string()))?,
    )?;
    fork_headers.set(
        H_URL,
        &format!(
            "{}://{}{}{}",
            url.scheme(),
            url.host_str().unwrap_or("localhost"),
            port_suffix(url),
            url.path()
        ),
    )?;
    let created = target
        .send(path, "stream", Method::Put, fork_headers, None, Some(rows))
        .await?;
    if created.status_code() == 201 {
        target
            .send(
                &source,
                "fork-ref",
                Method::Post,
                Headers::new(),
                None,
                None,
            )
            .await?;
    }
    Ok(created)
}

/// Wake-ups from a stream's object, counted as they arrive on the socket.
#[derive(Default)]
struct Wakes {
    count: u64,
    gone: bool,
    waker: Option<Waker>,
}

/// A live reader's connection to its stream's object.
struct LiveSocket {
    socket: WebSocket,
    wakes: Rc<RefCell<Wakes>>,
    seen: u64,
}

impl Drop for LiveSocket {
    fn drop(&mut self) {
        let _ = self.socket.close(Some(1000), Some("reader done"));
    }
}

impl LiveSocket {
    /// Opens the socket (the object answers 404/410/400 instead when it must) before the first
    /// read, so that no append between a read and the wait can be missed.
    async fn open(
        target: &Target<'_>,
        path: &str,
        url: &Url,
    ) -> ApiResult<Result<LiveSocket, Response>> {
        let headers = Headers::new();
        headers.set("upgrade", "websocket")?;
        let answer = target
            .send(path, "stream", Method::Get, headers, url.query(), None)
            .await?;
        if answer.status_code() != 101 {
            return Ok(Err(answer));
        }
        let Some(socket) = answer.websocket() else {
            return Err(ApiError::Internal(
                "the stream answered 101 without a socket".into(),
            ));
        };
        socket.accept()?;
        let wakes = Rc::new(RefCell::new(Wakes::default()));
        let listener = socket.clone();
        let shared = wakes.clone();
        spawn_local(async move {
            if let Ok(mut events) = listener.events() {
                while let Some(event) = events.next().await {
                    let mut state = shared.borrow_mut();
                    match event {
                        Ok(WebsocketEvent::Message(_)) => state.count += 1,
                        _ => state.gone = true,
                    }
                    if let Some(waker) = state.waker.take() {
                        waker.wake();
                    }
                    if state.gone {
                        break;
                    }
                }
            }
            let mut state = shared.borrow_mut();
            state.gone = true;
            if let Some(waker) = state.waker.take() {
                waker.wake();
            }
        });
        Ok(Ok(LiveSocket {
            socket,
            wakes,
            seen: 0,
        }))
    }

    /// Waits until the object sends a wake-up (or one came since the last wait), the socket
    /// closes, or `deadline_ms` passes. Returns whether something may have changed.
    async fn wait(&mut self, deadline_ms: u64) -> bool {
        let now = now_ms();
        if now >= deadline_ms {
            return false;
        }
        let wakes = self.wakes.clone();
        let seen = self.seen;
        let woken = poll_fn(move |cx| {
            let mut state = wakes.borrow_mut();
            if state.count != seen || state.gone {
                Poll::Ready(state.count)
            } else {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        });
        let timeout = Delay::from(Duration::from_millis(deadline_ms - now));
        match select(Box::pin(woken), timeout).await {
            Either::Left((count, _)) => {
                self.seen = count;
                true
            }
            Either::Right(_) => false,
        }
    }
}

/// A catch-up read at `offset` through the object.
async fn read_at(
    target: &Target<'_>,
    path: &str,
    offset: &str,
    request: &Request,
) -> ApiResult<Response> {
    let headers = Headers::new();
    if let Some(value) = request.headers().get("if-none-match")? {
        headers.set("if-none-match", &value)?;
    }
    let query = format!("offset={offset}");
    target
        .send(path, "stream", Method::Get, headers, Some(&query), None)
        .await
}

fn cursor_for(url: &Url) -> String {
    let jitter_s = (js_sys::Math::random() * 3600.0) as u32 + 1;
    next_cursor(
        i64::try_from(now_ms()).unwrap_or(i64::MAX),
        query_value(url, "cursor").as_deref(),
        jitter_s,
    )
}

fn flag(response: &Response, name: &str) -> bool {
    response
        .headers()
        .get(name)
        .ok()
        .flatten()
        .is_some_and(|v| v == "true")
}

fn next_offset(response: &Response) -> String {
    response
        .headers()
        .get("stream-next-offset")
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// §5.7: answers at once with data (or EOF), else waits for an append up to the long-poll timeout.
async fn long_poll(
    target: &Target<'_>,
    path: &str,
    request: &Request,
    url: &Url,
    limits: &DsLimits,
) -> ApiResult<Response> {
    let Some(mut offset) = query_value(url, "offset") else {
        return Err(ApiError::bad_request(
            "missing_offset",
            "long-poll needs an offset",
        ));
    };
    let mut live = match LiveSocket::open(target, path, url).await? {
        Ok(live) => live,
        Err(answer) => return Ok(answer),
    };
    let deadline_ms = now_ms() + limits.long_poll_ms;
    let cursor = cursor_for(url);
    loop {
        let answer = read_at(target, path, &offset, request).await?;
        if answer.status_code() != 200 {
            return Ok(answer);
        }
        let closed = flag(&answer, "stream-closed");
        let empty = flag(&answer, H_EMPTY);
        let tail = next_offset(&answer);
        if !empty {
            // The object's headers are immutable: copy them to add the cursor.
            let headers = Headers::new();
            for (name, value) in answer.headers().entries() {
                headers.append(&name, &value)?;
            }
            if !closed {
                headers.set("stream-cursor", &cursor)?;
            }
            return Ok(answer.with_headers(headers));
        }
        if closed || !live.wait(deadline_ms).await && now_ms() >= deadline_ms {
            let headers = Headers::new();
            headers.set("stream-next-offset", &tail)?;
            headers.set("stream-up-to-date", "true")?;
            headers.set("cache-control", CACHE_CONTROL_NO_STORE)?;
            if closed {
                headers.set("stream-closed", "true")?;
            } else {
                headers.set("stream-cursor", &cursor)?;
            }
            return Ok(Response::empty()?.with_status(204).with_headers(headers));
        }
        offset = tail;
    }
}

/// The state of one SSE response between chunks.
struct SseState {
    env: Env,
    tenant: TenantId,
    path: String,
    offset: String,
    text: bool,
    live: LiveSocket,
    url: Url,
    started_ms: u64,
    done: bool,
    first: bool,
}

impl SseState {
    /// The next bytes of the response, or `None` when it ends.
    async fn next_chunk(&mut self) -> Option<Vec<u8>> {
        loop {
            if self.done {
                return None;
            }
            let target = Target {
                env: &self.env,
                tenant: &self.tenant,
            };
            let query = format!("offset={}", self.offset);
            let answer = target
                .send(
                    &self.path,
                    "stream",
                    Method::Get,
                    Headers::new(),
                    Some(&query),
                    None,
                )
                .await;
            let Ok(mut answer) = answer else {
                return None;
            };
            if answer.status_code() != 200 {
                return None;
            }
            let closed = flag(&answer, "stream-closed");
            let up_to_date = flag(&answer, "stream-up-to-date");
            let empty = flag(&answer, H_EMPTY);
            let next = next_offset(&answer);
            let body = answer.bytes().await.unwrap_or_default();
            let mut out = Vec::new();
            if !empty {
                out.extend_from_slice(&sse_data_event(&body, self.text));
            }
            if !empty || self.first || closed {
                let cursor = cursor_for(&self.url);
                let next_offset = parse_offset(&next).unwrap_or(Offset(0));
                out.extend_from_slice(&sse_control_event(&Control {
                    next_offset,
                    cursor: Some(&cursor),
                    up_to_date,
                    closed,
                }));
            }
            self.first = false;
            self.offset = next;
            if closed {
                self.done = true;
            } else if up_to_date && out.is_empty() {
                let deadline = self.started_ms + SSE_MAX_AGE_MS;
                if !self.live.wait(deadline).await && now_ms() >= deadline {
                    self.done = true;
                }
                continue;
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
    }
}

/// §5.8: data and control events from the offset on, kept open for new data (about a minute).
async fn sse(target: &Target<'_>, path: &str, request: &Request, url: &Url) -> ApiResult<Response> {
    let Some(offset) = query_value(url, "offset") else {
        return Err(ApiError::bad_request(
            "missing_offset",
            "SSE needs an offset",
        ));
    };
    let live = match LiveSocket::open(target, path, url).await? {
        Ok(live) => live,
        Err(answer) => return Ok(answer),
    };
    // The first read learns the content type (and refuses a bad offset as a plain 400).
    let first = read_at(target, path, &offset, request).await?;
    if first.status_code() != 200 {
        return Ok(first);
    }
    let content_type = first.headers().get("content-type")?.unwrap_or_default();
    let text = is_sse_text(&content_type);
    let offset = if offset == "now" {
        next_offset(&first)
    } else {
        offset
    };
    let state = SseState {
        env: target.env.clone(),
        tenant: target.tenant.clone(),
        path: path.into(),
        offset,
        text,
        live,
        url: url.clone(),
        started_ms: now_ms(),
        done: false,
        first: true,
    };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok::<Vec<u8>, worker::Error>(chunk), state))
    });
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream")?;
    headers.set("cache-control", CACHE_CONTROL_SSE)?;
    if !text {
        headers.set("stream-sse-data-encoding", "base64")?;
    }
    Ok(Response::from_stream(stream)?.with_headers(headers))
}
