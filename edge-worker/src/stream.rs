//! One subscriber: its filter and bounded outbox (herald-core), a waker for the body stream, and the
//! body stream itself, which drains the outbox, sends heartbeats when the policy says one is due, and
//! removes the subscriber from its Hub the moment the runtime drops the body (client gone).

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, Stream};
use herald_core::{Filter, HeartbeatDue, HeartbeatPolicy, LogEntry, Outbox};
use worker::{Date, Delay};

pub(crate) fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// A subscriber's state, shared by the Hub (which offers frames) and its body stream (which drains).
#[derive(Debug)]
pub(crate) struct Subscriber {
    filter: Filter,
    outbox: Outbox,
    waker: Option<Waker>,
}

impl Subscriber {
    pub(crate) fn new(filter: Filter, outbox: Outbox) -> Subscriber {
        Subscriber {
            filter,
            outbox,
            waker: None,
        }
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Offers one logged event. Frames at or before the last one queued were already sent by the
    /// replay, so they are dropped: no duplicate across the replay/live seam.
    pub(crate) fn offer(&mut self, entry: &LogEntry) {
        if !self
            .filter
            .matches(entry.name.as_str(), entry.category.as_deref())
        {
            return;
        }
        if self.outbox.last_seq().is_some_and(|last| entry.seq <= last) {
            return;
        }
        // An overflow needs nothing from us: the outbox has queued its `lagging` frame and accepts
        // no more, so the stream drains it and ends; the client resumes from the id it names.
        let _ = self.outbox.push(entry.frame.clone(), Some(entry.seq));
        self.wake();
    }

    /// Offers a named frame that is not in the log (a tracker snapshot): filtered like any event, but
    /// with no sequence number, so it never moves a cursor.
    pub(crate) fn offer_unlogged(&mut self, frame: Bytes, name: &str) {
        if self.filter.matches(name, None) {
            self.push_control(frame);
        }
    }

    /// Queues a frame that is not in the log (open frame, reset): it never moves a cursor.
    pub(crate) fn push_control(&mut self, frame: Bytes) {
        let _ = self.outbox.push(frame, None);
        self.wake();
    }

    /// Sends what is queued, then ends the stream.
    pub(crate) fn close(&mut self) {
        self.outbox.close_after_drain();
        self.wake();
    }
}

/// The Hub's open subscribers.
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    next_id: u64,
    list: Vec<(u64, Rc<RefCell<Subscriber>>)>,
}

impl Subscribers {
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Rc<RefCell<Subscriber>>> {
        self.list.iter().map(|(_, subscriber)| subscriber)
    }

    fn insert(&mut self, subscriber: Rc<RefCell<Subscriber>>) -> u64 {
        self.next_id += 1;
        self.list.push((self.next_id, subscriber));
        self.next_id
    }

    fn remove(&mut self, id: u64) {
        self.list.retain(|(other, _)| *other != id);
    }
}

/// The body of one SSE response.
#[derive(Debug)]
pub(crate) struct SubscriberStream {
    id: u64,
    subscriber: Rc<RefCell<Subscriber>>,
    registry: Weak<RefCell<Subscribers>>,
    heartbeat: HeartbeatPolicy,
    last_write_ms: u64,
    timer: Option<Delay>,
    chunk: Vec<u8>,
}

impl SubscriberStream {
    /// Registers `subscriber` with the Hub; it stays registered until the stream is dropped.
    pub(crate) fn register(
        registry: &Rc<RefCell<Subscribers>>,
        subscriber: Rc<RefCell<Subscriber>>,
        heartbeat: HeartbeatPolicy,
    ) -> SubscriberStream {
        let id = registry.borrow_mut().insert(subscriber.clone());
        SubscriberStream {
            id,
            subscriber,
            registry: Rc::downgrade(registry),
            heartbeat,
            last_write_ms: now_ms(),
            timer: None,
            chunk: Vec::new(),
        }
    }
}

impl Stream for SubscriberStream {
    type Item = Result<Vec<u8>, worker::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            {
                let mut subscriber = this.subscriber.borrow_mut();
                // Everything queued goes out as one chunk: one copy into JS per wake, not per frame.
                this.chunk.clear();
                while let Some(frame) = subscriber.outbox.pop() {
                    this.chunk.extend_from_slice(&frame);
                }
                if !this.chunk.is_empty() {
                    this.last_write_ms = now_ms();
                    this.timer = None;
                    return Poll::Ready(Some(Ok(core::mem::take(&mut this.chunk))));
                }
                if subscriber.outbox.is_finished() {
                    return Poll::Ready(None);
                }
                subscriber.waker = Some(cx.waker().clone());
            }
            let now = now_ms();
            match this.heartbeat.poll(now, this.last_write_ms) {
                HeartbeatDue::Now { frame, .. } => {
                    this.last_write_ms = now;
                    this.timer = None;
                    return Poll::Ready(Some(Ok(frame.to_vec())));
                }
                HeartbeatDue::Later { at_ms } => {
                    let timer = this.timer.get_or_insert_with(|| {
                        Delay::from(Duration::from_millis(at_ms.saturating_sub(now).max(1)))
                    });
                    match timer.poll_unpin(cx) {
                        Poll::Ready(()) => this.timer = None,
                        Poll::Pending => return Poll::Pending,
                    }
                }
            }
        }
    }
}

impl Drop for SubscriberStream {
    fn drop(&mut self) {
        if let Some(registry) = self.registry.upgrade() {
            registry.borrow_mut().remove(self.id);
        }
    }
}
