//! The Worker's side of one subscription: the SSE response body, fed by the Hub over a hibernatable
//! WebSocket. herald-core's [`Relay`] decides what to write and when (first bytes, outbox, seam
//! rule, heartbeats, maximum age); this file only connects it to the socket, a timer and the
//! response.
//!
//! The socket is closed the moment the relay starts closing (the stream completes, the client fell
//! behind, or took nothing within the drain bound), the stream ends, the body is dropped, or the
//! client's request is aborted (the client went away), so the Hub's subscriber count drops at once.
//!
//! Memory: every relay of the isolate shares one byte budget (`HERALD_ISOLATE_QUEUE_BYTES_MAX`):
//! each message is granted the room the others leave, and a relay that would pass it is cut with
//! `lagging` (the client resumes). Frames that wait longer than the drain bound for a client that
//! takes nothing are dropped: the relay checks on each message, and a timer covers a silent stream,
//! since a runtime whose client stopped reading never polls the body again.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use herald_core::relay::{RelayPoll, RelaySettings};
use herald_core::Relay;
use worker::js_sys::{self, Uint8Array};
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::spawn_local;
use worker::web_sys::{AbortSignal, BinaryType, EventTarget, MessageEvent, WorkerGlobalScope};
use worker::{console_error, Delay, Headers, WebSocket};

/// The time (Unix ms). `Date.now()` rather than workers-rs's `Date::now()`, which constructs a JS
/// `Date` and then reads it: the relay reads the clock for every message it takes and every poll,
/// and that allocation showed in the load benchmark's profile.
pub(crate) fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The headers of every SSE response.
pub(crate) fn sse_headers() -> worker::Result<Headers> {
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache, no-transform")?;
    headers.set("x-accel-buffering", "no")?;
    Ok(headers)
}

/// The bounds a relay keeps besides its own queue's (`RelaySettings::outbox`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RelayBounds {
    /// How long queued frames may wait for a client that takes nothing (`HERALD_DRAIN_MS_MAX`).
    pub(crate) drain_ms_max: u64,
    /// The most bytes all relays of this isolate hold queued (`HERALD_ISOLATE_QUEUE_BYTES_MAX`).
    pub(crate) isolate_queue_bytes_max: usize,
}

thread_local! {
    /// Bytes queued by every relay of this isolate. An isolate runs one thread, and its memory (128 MB
    /// on Cloudflare) is shared by every request it serves, whatever the tenant.
    static ISOLATE_QUEUED_BYTES: Cell<usize> = const { Cell::new(0) };
}

/// What the socket's listeners, the drain timer and the body stream share.
#[derive(Debug)]
struct Shared {
    relay: Relay,
    /// Set while the body stream waits for the relay (the runtime asked for bytes): frames that
    /// arrive meanwhile are taken at once.
    waker: Option<Waker>,
    /// The clock as read by the socket listener that woke the body stream, for the poll that
    /// follows in the same turn (the runtime's clock stands still until the next I/O), so that a
    /// relayed message costs one clock read, not two.
    woken_at_ms: Option<u64>,
    /// The socket to the Hub.
    socket: WebSocket,
    socket_closed: bool,
    /// This relay's share of `ISOLATE_QUEUED_BYTES`.
    accounted: usize,
    isolate_queue_bytes_max: usize,
    drain_timer: bool,
    /// The body is gone: nothing of this relay counts any more.
    dropped: bool,
}

impl Shared {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Wakes the body stream, leaving it the clock read at `now_ms` (see `woken_at_ms`).
    fn wake_at(&mut self, now_ms: u64) {
        if self.waker.is_some() {
            self.woken_at_ms = Some(now_ms);
            self.wake();
        }
    }

    /// Brings the isolate's count up to date with this relay's queue.
    fn account(&mut self) {
        let queued = if self.dropped {
            0
        } else {
            self.relay.queued_bytes()
        };
        ISOLATE_QUEUED_BYTES.with(|total| {
            total.set(
                total
                    .get()
                    .saturating_sub(self.accounted)
                    .saturating_add(queued),
            );
        });
        self.accounted = queued;
    }

    /// The most bytes this relay's queue may hold now: the budget less what the others hold.
    fn room(&self) -> usize {
        let others = ISOLATE_QUEUED_BYTES
            .with(Cell::get)
            .saturating_sub(self.accounted);
        self.isolate_queue_bytes_max.saturating_sub(others)
    }

    /// A closing relay needs nothing more from the Hub: its socket is closed at once, so the Hub's
    /// subscriber (and credential) counts drop even if the client never reads again.
    fn release_hub_if_closing(&mut self) {
        if self.relay.is_closing() {
            self.close_socket("relay closing");
        }
    }

    fn close_socket(&mut self, reason: &str) {
        if !self.socket_closed {
            self.socket_closed = true;
            let _ = self.socket.close(Some(1000), Some(reason));
        }
    }

    /// After the relay took something in: count it, let the Hub go if the relay is closing, and
    /// say whether a drain timer must start (frames wait, and the runtime is not waiting for bytes:
    /// it may never ask again if the client stopped reading).
    fn settle(&mut self) -> Option<u64> {
        self.account();
        self.release_hub_if_closing();
        let deadline = self.relay.drain_deadline_ms()?;
        if self.drain_timer || self.waker.is_some() {
            return None;
        }
        self.drain_timer = true;
        Some(deadline)
    }
}

/// Applies the drain bound at each deadline while frames wait and nobody takes them; ends when
/// nothing waits or the body is gone.
fn spawn_drain_timer(shared: Weak<RefCell<Shared>>, first_deadline_ms: u64) {
    spawn_local(async move {
        let mut deadline_ms = first_deadline_ms;
        loop {
            let wait = deadline_ms.saturating_sub(now_ms()).max(1);
            Delay::from(Duration::from_millis(wait)).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut shared = shared.borrow_mut();
            shared.relay.check_drain(now_ms());
            shared.account();
            shared.release_hub_if_closing();
            shared.wake();
            match shared.relay.drain_deadline_ms() {
                Some(next) if !shared.dropped => deadline_ms = next,
                _ => {
                    shared.drain_timer = false;
                    return;
                }
            }
        }
    });
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
    timer: Option<WakeTimer>,
    _listeners: Vec<Listening>,
}

impl core::fmt::Debug for RelayStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RelayStream").finish_non_exhaustive()
    }
}

/// The payload of a socket's `message` event, copied once into Wasm memory. The runtime's event
/// class need not be the global `MessageEvent` (`instanceof` can fail), so `data` is read through
/// the structural getter, and viewed as bytes.
fn message_bytes(event: &JsValue) -> Option<Bytes> {
    let data = event.unchecked_ref::<MessageEvent>().data();
    if let Some(text) = data.as_string() {
        return Some(Bytes::from(text.into_bytes()));
    }
    data.is_object()
        .then(|| Bytes::from(Uint8Array::new(&data).to_vec()))
}

impl RelayStream {
    /// Starts relaying from `socket` (the Hub's answer to a subscribe), ending when the client's
    /// request is aborted (`client_gone`).
    pub(crate) fn start(
        socket: WebSocket,
        settings: RelaySettings,
        bounds: RelayBounds,
        client_gone: Option<AbortSignal>,
    ) -> worker::Result<RelayStream> {
        let shared = Rc::new(RefCell::new(Shared {
            relay: Relay::new(settings, now_ms()).with_drain_ms_max(bounds.drain_ms_max),
            waker: None,
            woken_at_ms: None,
            socket: socket.clone(),
            socket_closed: false,
            accounted: 0,
            isolate_queue_bytes_max: bounds.isolate_queue_bytes_max,
            drain_timer: false,
            dropped: false,
        }));
        shared.borrow_mut().account();
        // Binary messages as ArrayBuffers (a Blob would need an async read).
        socket.as_ref().set_binary_type(BinaryType::Arraybuffer);
        let target: &EventTarget = socket.as_ref().as_ref();
        let mut listeners = Vec::with_capacity(4);
        listeners.push(listen(target, "message", {
            let shared = shared.clone();
            move |event| {
                let mut state = shared.borrow_mut();
                let now = now_ms();
                match message_bytes(&event) {
                    Some(bytes) => {
                        let room = state.room();
                        if let Err(error) = state.relay.receive_shared_within(bytes, now, room) {
                            console_error!("hub message refused: {error}");
                        }
                    }
                    None => state.relay.hub_gone(),
                }
                let timer = state.settle();
                state.wake_at(now);
                drop(state);
                if let Some(deadline_ms) = timer {
                    spawn_drain_timer(Rc::downgrade(&shared), deadline_ms);
                }
            }
        })?);
        for kind in ["close", "error"] {
            listeners.push(listen(target, kind, {
                let shared = shared.clone();
                move |_| {
                    let mut shared = shared.borrow_mut();
                    shared.relay.hub_gone();
                    // The socket is closed (or broken) already; nothing to send on it.
                    shared.socket_closed = true;
                    shared.wake();
                }
            })?);
        }
        if let Some(signal) = client_gone {
            listeners.push(listen(signal.as_ref(), "abort", {
                let shared = shared.clone();
                move |_| {
                    // The runtime may never poll the body again: close the Hub's socket now.
                    let mut shared = shared.borrow_mut();
                    shared.close_socket("client gone");
                    shared.relay.hub_gone();
                    shared.wake();
                }
            })?);
        }
        socket.accept()?;
        Ok(RelayStream {
            shared,
            timer: None,
            _listeners: listeners,
        })
    }
}

impl Stream for RelayStream {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let (now, next) = {
            let mut shared = this.shared.borrow_mut();
            let now = shared.woken_at_ms.take().unwrap_or_else(now_ms);
            let next = shared.relay.poll(now);
            shared.account();
            match next {
                RelayPoll::Wait { .. } => shared.waker = Some(cx.waker().clone()),
                RelayPoll::Write(_) => shared.waker = None,
                RelayPoll::End => shared.close_socket("stream ended"),
            }
            // The maximum age closes the relay in `poll`: the Hub's socket goes at once.
            shared.release_hub_if_closing();
            (now, next)
        };
        match next {
            RelayPoll::Write(bytes) => Poll::Ready(Some(Ok(bytes))),
            RelayPoll::End => Poll::Ready(None),
            RelayPoll::Wait { until_ms } => {
                // One timer at a time: a deadline that moved later (a write pushed the next
                // heartbeat back) keeps the armed timer, which wakes the stream early and is
                // re-armed then; re-arming on every write would cost a timer per event.
                if this
                    .timer
                    .as_ref()
                    .is_none_or(|timer| timer.fired.get() || timer.at_ms > until_ms)
                {
                    this.timer = WakeTimer::arm(Rc::downgrade(&this.shared), until_ms, now);
                }
                Poll::Pending
            }
        }
    }
}

/// A timeout that wakes the body stream through [`Shared`]'s waker, which every poll refreshes, so
/// one armed timer serves any number of polls until it fires. Cleared when dropped.
struct WakeTimer {
    at_ms: u64,
    fired: Rc<Cell<bool>>,
    id: i32,
    _callback: Closure<dyn FnMut()>,
}

impl WakeTimer {
    fn arm(shared: Weak<RefCell<Shared>>, at_ms: u64, now_ms: u64) -> Option<WakeTimer> {
        let fired = Rc::new(Cell::new(false));
        let callback: Closure<dyn FnMut()> = Closure::new({
            let fired = fired.clone();
            move || {
                fired.set(true);
                if let Some(shared) = shared.upgrade() {
                    if let Ok(mut shared) = shared.try_borrow_mut() {
                        shared.wake();
                    }
                }
            }
        });
        let wait_ms = i32::try_from(at_ms.saturating_sub(now_ms).max(1)).unwrap_or(i32::MAX);
        let global: WorkerGlobalScope = js_sys::global().unchecked_into();
        match global.set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.as_ref().unchecked_ref(),
            wait_ms,
        ) {
            Ok(id) => Some(WakeTimer {
                at_ms,
                fired,
                id,
                _callback: callback,
            }),
            Err(error) => {
                console_error!("heartbeat timer refused: {error:?}");
                None
            }
        }
    }
}

impl Drop for WakeTimer {
    fn drop(&mut self) {
        if self.fired.get() {
            return;
        }
        let global: WorkerGlobalScope = js_sys::global().unchecked_into();
        global.clear_timeout_with_handle(self.id);
    }
}

impl Drop for RelayStream {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.try_borrow_mut() {
            shared.close_socket("stream ended");
            shared.dropped = true;
            shared.account();
        }
    }
}
