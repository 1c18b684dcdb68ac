//! The same-shape baseline: the Worker holds each SSE response and relays from the hub's Durable
//! Object over a hibernatable WebSocket, the shape Herald is moving to. Only the runtime's work is
//! left: an upgrade per subscriber, one WebSocket message per subscriber per publish, and the
//! Worker turning each message into a chunk of its SSE body.
//!
//! - `GET /w/{hub}`: the Worker fetches the hub's object with `Upgrade: websocket`, accepts the
//!   socket it gets back and answers with an SSE body fed from the socket's messages through a Rust
//!   `Stream` (`Response::from_stream`, as workers-rs and Herald stream): a `message` listener
//!   appends to a buffer and wakes the body, which writes everything that arrived since its last
//!   poll as one chunk (the leanest relay this API allows). It sends `: open` first and closes its
//!   socket when the client goes away (the request's signal aborts, under the compatibility flag
//!   `enable_request_signal`, or the body is dropped) or ends the body when the object closes it.
//! - `GET /wj/{hub}`: the same relay with the Worker writing each message straight into a JS
//!   `TransformStream` from the socket's `message` listener (no Rust on the per-message path): the
//!   ceiling of this shape, so that `/w` minus `/wj` is the cost of the Rust bridge.
//! - `POST /pwd/{hub}`: as `/pw`, storing the frame in the object's SQLite first (Herald's durability).
//! - `POST /pw/{hub}`: the object sends the request body (a whole SSE frame, encoded by the load
//!   generator) as one binary message to every socket it holds.
//! - `POST /cw/{hub}`: the object closes every socket it holds; each Worker then ends its stream.
//!
//! The object keeps nothing in memory and sets no timer: it accepts each socket with the
//! hibernation API and finds them again with `get_websockets`, so it may be evicted between
//! publishes as Herald's hub will be. No auth, ids, storage, filters or heartbeats.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};

use futures_util::stream::Stream;
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::web_sys::{
    self, AbortSignal, BinaryType, EventTarget, MessageEvent, TransformStream,
    WritableStreamDefaultWriter,
};
use worker::{
    durable_object, DurableObject, Env, Headers, Method, Request, RequestInit, Response,
    ResponseBody, Result, SqlStorageValue, State, WebSocket, WebSocketIncomingMessage, WebSocketPair,
};

use crate::{sse_headers, Chunk, OPEN_FRAME};

/// The close code both ends use: 1005/1006 are reserved and make `close` throw.
const NORMAL: u16 = 1000;

/// Handles the relay routes; any other request comes back unanswered.
pub(crate) async fn route(
    request: Request,
    path: &str,
    env: &Env,
) -> std::result::Result<Result<Response>, Request> {
    let (hub, rust) = if let Some(hub) = path.strip_prefix("/w/") {
        (hub, Some(true))
    } else if let Some(hub) = path.strip_prefix("/wj/") {
        (hub, Some(false))
    } else if let Some(hub) = path
        .strip_prefix("/pw/")
        .or_else(|| path.strip_prefix("/pwd/"))
        .or_else(|| path.strip_prefix("/cw/"))
    {
        (hub, None)
    } else {
        return Err(request);
    };
    if hub.is_empty() {
        return Ok(Response::error("not found", 404));
    }
    Ok(relay(request, hub, rust, env).await)
}

async fn relay(request: Request, hub: &str, rust: Option<bool>, env: &Env) -> Result<Response> {
    let stub = env.durable_object("RELAY")?.id_from_name(hub)?.get_stub()?;
    let Some(rust) = rust else {
        // Publish and close go to the object as they came.
        return stub.fetch_with_request(request).await;
    };
    if request.method() != Method::Get {
        return Response::error("method not allowed", 405);
    }
    let headers = Headers::new();
    headers.set("upgrade", "websocket")?;
    let mut init = RequestInit::new();
    init.with_headers(headers);
    let upgrade = Request::new_with_init(&format!("https://relay/w/{hub}"), &init)?;
    let answer = stub.fetch_with_request(upgrade).await?;
    if answer.status_code() != 101 {
        return Ok(answer);
    }
    let Some(socket) = answer.websocket() else {
        return Response::error("the object answered 101 without a socket", 502);
    };
    let response = if rust {
        let client_gone = web_sys::Request::try_from(&request)
            .ok()
            .map(|inner| inner.signal());
        rust_relay(socket, client_gone)?
    } else {
        js_relay(socket)?
    };
    Ok(response.with_headers(sse_headers()?))
}

/// What the socket's listeners and the SSE body of `/w` share.
#[derive(Default)]
struct Shared {
    /// Messages not yet written, in order.
    queued: Vec<u8>,
    /// The object closed the socket (or the client went away): end the body once drained.
    ended: bool,
    waker: Option<Waker>,
}

impl Shared {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }
}

type Listener = Closure<dyn FnMut(JsValue)>;

/// The SSE body of `/w`: `: open`, then the socket's messages in order, each poll writing whatever
/// has arrived since the last one as one chunk. Dropping it (the client went away and the runtime
/// cancelled the body) removes the listeners and closes the socket, so the object forgets it.
struct RelayBody {
    shared: Rc<RefCell<Shared>>,
    socket: WebSocket,
    /// (target, event, listener), removed on drop.
    listeners: Vec<(EventTarget, &'static str, Listener)>,
}

impl Stream for RelayBody {
    type Item = Chunk;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Chunk>> {
        let mut shared = self.shared.borrow_mut();
        if !shared.queued.is_empty() {
            return Poll::Ready(Some(Ok(std::mem::take(&mut shared.queued))));
        }
        if shared.ended {
            return Poll::Ready(None);
        }
        shared.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        for (target, kind, listener) in &self.listeners {
            let _ =
                target.remove_event_listener_with_callback(kind, listener.as_ref().unchecked_ref());
        }
        // Throws if the socket is already closed: nothing left to do then.
        let _ = self.socket.close(Some(NORMAL), Some("client gone"));
    }
}

/// A binary message's bytes (an ArrayBuffer, read without `instanceof`, which can fail on the
/// runtime's own classes), or a text message's.
fn message_bytes(event: &MessageEvent) -> Option<Vec<u8>> {
    let data = event.data();
    if let Some(text) = data.as_string() {
        return Some(text.into_bytes());
    }
    data.is_object().then(|| Uint8Array::new(&data).to_vec())
}

fn rust_relay(socket: WebSocket, client_gone: Option<AbortSignal>) -> Result<Response> {
    let shared = Rc::new(RefCell::new(Shared {
        queued: OPEN_FRAME.to_vec(),
        ..Shared::default()
    }));
    let ws: &worker::web_sys::WebSocket = socket.as_ref();
    ws.set_binary_type(BinaryType::Arraybuffer);
    let target: &EventTarget = ws.as_ref();
    let mut listeners: Vec<(EventTarget, &'static str, Listener)> = Vec::with_capacity(3);
    let on_message: Listener = {
        let shared = shared.clone();
        Closure::new(move |event: JsValue| {
            let Some(bytes) = message_bytes(event.unchecked_ref()) else {
                return;
            };
            let mut shared = shared.borrow_mut();
            shared.queued.extend_from_slice(&bytes);
            shared.wake();
        })
    };
    listeners.push((target.clone(), "message", on_message));
    // The object closed the socket: answer the close (not automatic before compatibility date
    // 2026-04-07; a second close only throws) and end the body.
    let on_close: Listener = {
        let shared = shared.clone();
        let socket = socket.clone();
        Closure::new(move |_: JsValue| {
            let _ = socket.close(Some(NORMAL), Some("closed"));
            let mut shared = shared.borrow_mut();
            shared.ended = true;
            shared.wake();
        })
    };
    listeners.push((target.clone(), "close", on_close));
    if let Some(signal) = client_gone {
        // The client went away: the runtime may never poll the body again, so close now.
        let on_abort: Listener = {
            let shared = shared.clone();
            let socket = socket.clone();
            Closure::new(move |_: JsValue| {
                let _ = socket.close(Some(NORMAL), Some("client gone"));
                let mut shared = shared.borrow_mut();
                shared.ended = true;
                shared.wake();
            })
        };
        listeners.push((signal.into(), "abort", on_abort));
    }
    for (target, kind, listener) in &listeners {
        target.add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())?;
    }
    socket.accept()?;
    Response::from_stream(RelayBody {
        shared,
        socket,
        listeners,
    })
}

fn js_relay(socket: WebSocket) -> Result<Response> {
    let pipe = TransformStream::new()?;
    let writer: WritableStreamDefaultWriter = pipe.writable().get_writer()?;
    let ws: &worker::web_sys::WebSocket = socket.as_ref();
    ws.set_binary_type(BinaryType::Arraybuffer);
    // A rejected write means the client left: close the socket so the object forgets it. The
    // listeners live as long as the socket; a benchmark worker runs one phase, so leaking three
    // small closures per stream is simpler than tracking when the runtime lets go of them.
    let on_failed_write: &'static Closure<dyn FnMut(JsValue)> = {
        let socket = socket.clone();
        Box::leak(Box::new(Closure::<dyn FnMut(JsValue)>::new(
            move |_: JsValue| {
                let _ = socket.close(Some(NORMAL), Some("client gone"));
            },
        )))
    };
    let _ = writer
        .write_with_chunk(&Uint8Array::from(OPEN_FRAME))
        .catch(on_failed_write);
    let on_message = {
        let writer = writer.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let data = event.data();
            // Binary messages arrive as ArrayBuffers: a view, not a copy, goes down the body.
            let chunk = match data.as_string() {
                Some(text) => Uint8Array::from(text.as_bytes()),
                None if data.is_object() => Uint8Array::new(&data),
                None => return,
            };
            let _ = writer.write_with_chunk(&chunk).catch(on_failed_write);
        })
    };
    let on_close = {
        let writer = writer.clone();
        let socket = socket.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
            let _ = socket.close(Some(NORMAL), Some("closed"));
            let _ = writer.close();
        })
    };
    ws.add_event_listener_with_callback("message", on_message.as_ref().unchecked_ref())?;
    ws.add_event_listener_with_callback("close", on_close.as_ref().unchecked_ref())?;
    socket.accept()?;
    on_message.forget();
    on_close.forget();
    Response::from_body(ResponseBody::Stream(pipe.readable()))
}

/// The hub: holds only the sockets the runtime keeps for it across hibernation.
#[durable_object]
pub struct Relay {
    state: State,
}

impl DurableObject for Relay {
    fn new(state: State, _env: Env) -> Self {
        Relay { state }
    }

    async fn fetch(&self, mut request: Request) -> Result<Response> {
        let path = request.path();
        match request.method() {
            Method::Get => {
                let pair = WebSocketPair::new()?;
                self.state.accept_web_socket(&pair.server);
                Response::from_websocket(pair.client)
            }
            Method::Post if path.starts_with("/cw/") => {
                let sockets = self.state.get_websockets();
                for socket in &sockets {
                    let _ = socket.close(Some(NORMAL), Some("closed"));
                }
                Response::ok(format!("{}", sockets.len()))
            }
            Method::Post => {
                let frame = request.bytes().await?;
                if path.starts_with("/pwd/") {
                    // Herald's durability: the frame is stored first, and the runtime holds the
                    // sends below until the write is confirmed (the output gate).
                    let sql = self.state.storage().sql();
                    sql.exec(
                        "CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, frame BLOB NOT NULL)",
                        None,
                    )?;
                    sql.exec(
                        "INSERT INTO log (frame) VALUES (?)",
                        vec![SqlStorageValue::Blob(frame.clone())],
                    )?;
                }
                // One JS buffer for every socket: `send` keeps a reference to what it is given and
                // this one is never written again (Rust memory would be, hence workers-rs's copy
                // per call in `send_with_bytes`).
                let buffer = Uint8Array::from(frame.as_slice()).buffer();
                for socket in self.state.get_websockets() {
                    let ws: &worker::web_sys::WebSocket = socket.as_ref();
                    // A socket closing meanwhile throws: it is gone from the next publish's list.
                    let _ = ws.send_with_array_buffer(&buffer);
                }
                Response::ok("ok")
            }
            _ => Response::error("method not allowed", 405),
        }
    }

    async fn websocket_message(
        &self,
        _socket: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> Result<()> {
        Ok(())
    }

    async fn websocket_close(
        &self,
        socket: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> Result<()> {
        // Close replies are not automatic before compatibility date 2026-04-07.
        let _ = socket.close(Some(NORMAL), Some("closed"));
        Ok(())
    }

    async fn websocket_error(&self, socket: WebSocket, _error: worker::Error) -> Result<()> {
        let _ = socket.close(Some(NORMAL), Some("error"));
        Ok(())
    }
}
