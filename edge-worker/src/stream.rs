//! The Worker's side of one subscription: the SSE response body, fed by the Hub over a hibernatable
//! WebSocket. herald-core's [`Relay`] decides what to write and when (first bytes, outbox, seam rule,
//! heartbeats, maximum age); this file only connects it to the socket, a timer and the response.
//!
//! The socket is closed the moment the stream ends, the body is dropped, or the client's request is
//! aborted (the client went away), so the Hub's subscriber count drops at once.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_util::{FutureExt, Stream};
use herald_core::{Relay, RelayPoll, RelaySettings};
use worker::js_sys::{Reflect, Uint8Array};
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::web_sys::{AbortSignal, BinaryType, EventTarget};
use worker::{console_error, Date, Delay, Headers, WebSocket};

pub(crate) fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// The headers of every SSE response.
pub(crate) fn sse_headers() -> worker::Result<Headers> {
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache, no-transform")?;
    headers.set("x-accel-buffering", "no")?;
    Ok(headers)
}

/// What the socket's listeners and the body stream share.
#[derive(Debug)]
struct Shared {
    relay: Relay,
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

/// An event listener, removed from its target when dropped.
struct Listening {
    target: EventTarget,
    kind: &'static str,
    listener: Listener,
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self
            .target
            .remove_event_listener_with_callback(self.kind, self.listener.as_ref().unchecked_ref());
    }
}

fn listen(
    target: &EventTarget,
    kind: &'static str,
    f: impl FnMut(JsValue) + 'static,
) -> worker::Result<Listening> {
    let listener: Listener = Closure::new(f);
    target
        .add_event_listener_with_callback(kind, listener.as_ref().unchecked_ref())
        .map_err(worker::Error::from)?;
    Ok(Listening {
        target: target.clone(),
        kind,
        listener,
    })
}

/// The body of one SSE response.
pub(crate) struct RelayStream {
    shared: Rc<RefCell<Shared>>,
    socket: WebSocket,
    timer: Option<(u64, Delay)>,
    _listeners: Vec<Listening>,
    closed: bool,
}

impl core::fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelayStream")
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

/// The payload of a socket's `message` event. The runtime's event and buffer classes need not be
/// the global ones (`instanceof` can fail), so the data is read by property and viewed as bytes.
fn message_bytes(event: &JsValue) -> Option<Vec<u8>> {
    let data = Reflect::get(event, &JsValue::from_str("data")).ok()?;
    if let Some(text) = data.as_string() {
        return Some(text.into_bytes());
    }
    data.is_object().then(|| Uint8Array::new(&data).to_vec())
}

impl RelayStream {
    /// Starts relaying from `socket` (the Hub's answer to a subscribe), ending when the client's
    /// request is aborted (`client_gone`).
    pub(crate) fn start(
        socket: WebSocket,
        settings: RelaySettings,
        client_gone: Option<AbortSignal>,
    ) -> worker::Result<RelayStream> {
        let shared = Rc::new(RefCell::new(Shared {
            relay: Relay::new(settings, now_ms()),
            waker: None,
        }));
        // Binary messages as ArrayBuffers (a Blob would need an async read).
        socket.as_ref().set_binary_type(BinaryType::Arraybuffer);
        let target: &EventTarget = socket.as_ref().as_ref();
        let mut listeners = Vec::with_capacity(4);
        listeners.push(listen(target, "message", {
            let shared = shared.clone();
            move |event| {
                let mut shared = shared.borrow_mut();
                match message_bytes(&event) {
                    Some(bytes) => {
                        if let Err(error) = shared.relay.receive(&bytes) {
                            console_error!("hub message refused: {error}");
                        }
                    }
                    None => shared.relay.hub_gone(),
                }
                shared.wake();
            }
        })?);
        for kind in ["close", "error"] {
            listeners.push(listen(target, kind, {
                let shared = shared.clone();
                move |_| {
                    let mut shared = shared.borrow_mut();
                    shared.relay.hub_gone();
                    shared.wake();
                }
            })?);
        }
        if let Some(signal) = client_gone {
            listeners.push(listen(signal.as_ref(), "abort", {
                let shared = shared.clone();
                let socket = socket.clone();
                move |_| {
                    // The runtime may never poll the body again: close the Hub's socket now.
                    let _ = socket.close(Some(1000), Some("client gone"));
                    let mut shared = shared.borrow_mut();
                    shared.relay.hub_gone();
                    shared.wake();
                }
            })?);
        }
        socket.accept()?;
        Ok(RelayStream {
            shared,
            socket,
            timer: None,
            _listeners: listeners,
            closed: false,
        })
    }

    fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            let _ = self.socket.close(Some(1000), Some("stream ended"));
        }
    }
}

impl Stream for RelayStream {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let now = now_ms();
            let next = {
                let mut shared = this.shared.borrow_mut();
                let next = shared.relay.poll(now);
                if let RelayPoll::Wait { .. } = next {
                    shared.waker = Some(cx.waker().clone());
                }
                next
            };
            match next {
                RelayPoll::Write(bytes) => return Poll::Ready(Some(Ok(bytes))),
                RelayPoll::End => {
                    this.close();
                    return Poll::Ready(None);
                }
                RelayPoll::Wait { until_ms } => {
                    if this.timer.as_ref().is_none_or(|(at, _)| *at != until_ms) {
                        let wait = Duration::from_millis(until_ms.saturating_sub(now).max(1));
                        this.timer = Some((until_ms, Delay::from(wait)));
                    }
                    let Some((_, timer)) = this.timer.as_mut() else {
                        return Poll::Pending;
                    };
                    match timer.poll_unpin(cx) {
                        Poll::Ready(()) => this.timer = None,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        self.close();
    }
}
