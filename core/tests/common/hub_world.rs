//! The Durable Object and its clients, simulated around the engine for `hub_model.rs` (which
//! includes this file with `#[path]`).
//!
//! The worker side is driven exactly as the Durable Object drives it: a storage `Vec` of log
//! entries plus the stored summary and complete flag, `NeedsLog` answered from storage,
//! `stored_oldest` passed only when the hub asks, fan-out as encoded `HubMessage`s into each
//! subscriber's `Relay`. Clients parse what their relay writes and reconnect with their last id as
//! EventSource does. The model is a plain list of every event ever published; what each connection
//! must receive is computed from it, and every step is checked against it.

use herald_core::heartbeat::{HeartbeatPolicy, HeartbeatProfile};
use herald_core::hub::{LogSummary, Refused, SubscriberRecord, Subscription};
use herald_core::log::{LogEntry, LogLimits};
use herald_core::outbox::OutboxLimits;
use herald_core::relay::{RelayPoll, RelaySettings};
use herald_core::{
    Filter, Hub, NewEvent, Parser, Position, Relay, ReplayLog, Vocabulary, STREAM_COMPLETE,
};

pub(crate) const EPOCH: u64 = 1_700_000_000_000;
pub(crate) const NOW: u64 = 5_000;
const RETRY_MS: u64 = 1_500;
const HEARTBEAT_MS: u64 = 1 << 40;
pub(crate) const OPEN: &str = "retry: 1500\n: open\n\n";
const NAMES: [&str; 4] = ["job:a", "job.b", "worker:c", STREAM_COMPLETE];
const CATEGORIES: &[&str] = &["x", "y"];
/// `all`, `types=job` and `categories=x`; `model_matches` states the same thing directly.
const FILTERS: [&str; 3] = ["", "types=job", "categories=x"];

pub(crate) fn vocabulary() -> Vocabulary<'static> {
    Vocabulary::custom(None, Some(CATEGORIES))
}

fn model_matches(filter: usize, name: &str, category: Option<&str>) -> bool {
    match filter {
        0 => true,
        1 => name.starts_with("job:") || name.starts_with("job."),
        _ => category == Some("x"),
    }
}

pub(crate) fn settings(frames_max: usize) -> RelaySettings {
    RelaySettings {
        outbox: OutboxLimits {
            frames_max,
            bytes_max: 1 << 24,
        },
        heartbeat: HeartbeatPolicy::new(HeartbeatProfile::Comment, HEARTBEAT_MS),
        retry_ms: RETRY_MS,
        max_age_ms: 1 << 50,
    }
}

pub(crate) fn id(seq: u64) -> String {
    format!("{EPOCH}-{seq}")
}

#[derive(Debug, Clone)]
pub(crate) struct Ev {
    /// An index into `NAMES`.
    pub(crate) name: usize,
    pub(crate) category: Option<&'static str>,
    pub(crate) data: String,
}

impl Ev {
    pub(crate) fn new_event(&self) -> NewEvent {
        NewEvent {
            name: herald_core::EventName::new(NAMES[self.name]).unwrap(),
            data: self.data.clone(),
            category: self.category.map(Into::into),
        }
    }
}

/// A `job:a` event without a category.
pub(crate) fn job(data: String) -> NewEvent {
    let (name, category) = (0, None);
    Ev {
        name,
        category,
        data,
    }
    .new_event()
}

/// The `Last-Event-ID` a new client connects with (numbers pick among the ids that make sense).
#[derive(Debug, Clone)]
pub(crate) enum LastId {
    None,
    Issued(usize),
    OtherEpoch(usize),
    Malformed(usize),
    Ahead(u64),
    Zero,
}

/// One step of the world; numbers in `Drain` and `Disconnect` pick among the open connections.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    Publish { events: Vec<Ev>, store_first: bool },
    Subscribe { filter: usize, last: LastId },
    Drain(usize),
    Disconnect(usize),
    Hibernate,
    Restart,
}

/// One dispatched event as a client sees it: (type, data, last event id).
type Got = (String, String, String);

/// One event of the model: everything ever published, in order (index `i` holds seq `i + 1`).
struct Published {
    name: &'static str,
    category: Option<&'static str>,
    data: String,
    frame_bytes: usize,
}

/// How the model says a subscription starts.
enum Expect {
    Finished,
    /// The connection gets `reset` (when set, its data), then every matching event after
    /// `start_seq`.
    Accept {
        reset: Option<String>,
        start_seq: u64,
        needs_log: bool,
    },
}

struct Conn {
    record: SubscriberRecord,
    relay: Relay,
    head: Vec<Got>,
    start_seq: u64,
    got: Vec<Got>,
    bytes: Vec<u8>,
}

struct Client {
    filter: usize,
    parser: Parser,
    conn: Option<Conn>,
    /// Answered 204, or went away: EventSource does not reconnect.
    done: bool,
    /// The newest event it ever received, over all its connections.
    newest_seq: Option<u64>,
}

pub(crate) struct World {
    limits: LogLimits,
    published: Vec<Published>,
    complete: bool,
    hub: Hub,
    storage: Vec<LogEntry>,
    stored: (LogSummary, bool),
    /// Differential: one hub that always has its log, one that never reads it.
    loaded: Hub,
    summary_only: Hub,
    clients: Vec<Client>,
}

impl World {
    pub(crate) fn new(limits: LogLimits) -> World {
        World {
            limits,
            published: Vec::new(),
            complete: false,
            hub: Hub::from_summary(LogSummary::new(EPOCH), limits, false),
            storage: Vec::new(),
            stored: (LogSummary::new(EPOCH), false),
            loaded: Hub::from_log(ReplayLog::new(EPOCH, limits), false),
            summary_only: Hub::from_summary(LogSummary::new(EPOCH), limits, false),
            clients: Vec::new(),
        }
    }

    fn next_seq(&self) -> u64 {
        self.published.len() as u64 + 1
    }

    /// The first retained seq: the longest suffix of everything published that fits both limits.
    fn oldest_seq(&self) -> u64 {
        let (mut count, mut bytes, mut oldest) = (0, 0, self.next_seq());
        for (index, event) in self.published.iter().enumerate().rev() {
            let seq = index as u64 + 1;
            if count + 1 > self.limits.events_max
                || bytes + event.frame_bytes > self.limits.bytes_max
            {
                break;
            }
            (count, bytes, oldest) = (count + 1, bytes + event.frame_bytes, seq);
        }
        oldest
    }

    fn model_summary(&self) -> LogSummary {
        let oldest = self.oldest_seq();
        let retained = &self.published[oldest as usize - 1..];
        LogSummary {
            epoch: EPOCH,
            next_seq: self.next_seq(),
            oldest_seq: oldest,
            events: retained.len(),
            bytes: retained.iter().map(|e| e.frame_bytes).sum(),
        }
    }

    fn expect(&self, last: Option<&str>) -> Expect {
        let (next, oldest) = (self.next_seq(), self.oldest_seq());
        let replay_all = |reason: Option<&str>| {
            let oldest_id = match oldest < next {
                true => format!("\"{}\"", id(oldest)),
                false => "null".into(),
            };
            Expect::Accept {
                reset: reason.map(|r| format!("{{\"reason\":\"{r}\",\"oldest\":{oldest_id}}}")),
                start_seq: oldest - 1,
                needs_log: true,
            }
        };
        let Some(last) = last else {
            return match self.complete {
                true => replay_all(None),
                false => Expect::Accept {
                    reset: None,
                    start_seq: next - 1,
                    needs_log: false,
                },
            };
        };
        match Position::parse(last) {
            Err(_) => replay_all(Some("malformed")),
            Ok(p) if p.epoch != EPOCH => replay_all(Some("other_epoch")),
            Ok(p) if p.seq >= next => replay_all(Some("ahead")),
            Ok(p) if p.seq + 1 < oldest => replay_all(Some("evicted")),
            Ok(p) if p.seq + 1 == next && self.complete => Expect::Finished,
            Ok(p) => Expect::Accept {
                reset: None,
                start_seq: p.seq,
                // An up-to-date client starts from the summary alone.
                needs_log: p.seq + 1 != next || next == 1,
            },
        }
    }

    fn expected(&self, filter: usize, conn: &Conn) -> Vec<Got> {
        let events = (1..)
            .zip(&self.published)
            .filter(|(seq, e)| *seq > conn.start_seq && model_matches(filter, e.name, e.category));
        let events = events.map(|(seq, e)| (e.name.into(), e.data.clone(), id(seq)));
        conn.head.iter().cloned().chain(events).collect()
    }

    fn connect(&mut self, index: usize, last: Option<String>) {
        let filter =
            Filter::from_query(FILTERS[self.clients[index].filter], &vocabulary()).unwrap();
        let expect = self.expect(last.as_deref());
        let was_loaded = self.hub.is_log_loaded();
        let mut answer = self.hub.subscribe(filter.clone(), last.as_deref(), None);
        let needed_log = answer == Subscription::NeedsLog;
        if needed_log {
            assert!(!was_loaded, "a loaded hub asked for its log");
            let summary = self.hub.summary();
            let evicted = self.hub.load_log(self.storage.iter().cloned()).unwrap();
            assert_eq!((evicted.through_seq, self.hub.summary()), (None, summary));
            answer = self.hub.subscribe(filter, last.as_deref(), None);
        }
        let client = &mut self.clients[index];
        match (expect, answer) {
            (Expect::Finished, Subscription::Finished) => {
                assert!(!needed_log, "{last:?}: a finished client needs no log");
                client.done = true;
            }
            (
                Expect::Accept {
                    reset,
                    start_seq,
                    needs_log,
                },
                Subscription::Accept { message, record },
            ) => {
                assert_eq!(needed_log, needs_log && !was_loaded, "{last:?}");
                assert_eq!(record.cursor_seq, self.published.len() as u64);
                assert_eq!((message.epoch, message.close), (EPOCH, self.complete));
                let mut relay = Relay::new(settings(1 << 20), NOW);
                relay.receive(&message.encode()).unwrap();
                // A reset carries no id: the client's last id stays what it was.
                let last_id = client.parser.last_event_id().to_owned();
                let head = reset.map(|data| ("reset".into(), data, last_id));
                client.conn = Some(Conn {
                    record,
                    relay,
                    head: head.into_iter().collect(),
                    start_seq,
                    got: Vec::new(),
                    bytes: Vec::new(),
                });
            }
            (_, answer) => panic!("{last:?} on {} events: {answer:?}", self.published.len()),
        }
    }

    /// Writes what client `index`'s relay has, checks it against the model, and says whether it
    /// ended.
    fn drain(&mut self, index: usize, cut: bool) -> bool {
        let filter = self.clients[index].filter;
        let client = &mut self.clients[index];
        let conn = client.conn.as_mut().unwrap();
        let ended = loop {
            match conn.relay.poll(NOW) {
                RelayPoll::Write(chunk) => {
                    let (got, newest) = (&mut conn.got, &mut client.newest_seq);
                    client.parser.feed(&chunk, |m| {
                        got.push((m.event_type.into(), m.data.into(), m.last_event_id.into()));
                        // Over the client's whole life, across reconnects: each event once, in
                        // order.
                        if m.event_type != "reset" {
                            let seq = Position::parse(m.last_event_id).unwrap().seq;
                            assert!(newest.is_none_or(|newest| seq > newest), "{seq} again");
                            *newest = Some(seq);
                        }
                    });
                    conn.bytes.extend_from_slice(&chunk);
                }
                RelayPoll::Wait { until_ms } => {
                    assert_eq!(until_ms, NOW + HEARTBEAT_MS);
                    break false;
                }
                RelayPoll::End => break true,
            }
        };
        let conn = self.clients[index].conn.as_ref().unwrap();
        assert!(conn.bytes.starts_with(OPEN.as_bytes()), "open frame first");
        assert_eq!(conn.got, self.expected(filter, conn), "client {index}");
        if let Some(at) = conn.got.iter().position(|g| g.0 == STREAM_COMPLETE) {
            assert_eq!(at + 1, conn.got.len(), "nothing after {STREAM_COMPLETE}");
        }
        // Outboxes are big enough that only the stream's end (or the hub going away) ends a relay.
        assert_eq!(ended, cut || self.complete, "client {index}");
        if ended {
            let client = &mut self.clients[index];
            client.parser.finish();
            client.conn = None;
        }
        ended
    }

    fn connected(&self, pick: usize) -> Option<usize> {
        let open: Vec<usize> = (0..self.clients.len())
            .filter(|&i| self.clients[i].conn.is_some())
            .collect();
        (!open.is_empty()).then(|| open[pick % open.len()])
    }

    fn publish(&mut self, events: &[Ev], store_first: bool) {
        let new_events: Vec<NewEvent> = events.iter().map(Ev::new_event).collect();
        let unknown = events
            .iter()
            .find_map(|e| e.category.filter(|c| !CATEGORIES.contains(c)));
        // `stream.complete` must come last: an event after it would reach a complete stream.
        let early_end = events[..events.len() - 1].iter().any(|e| e.name == 3);
        let prepared = self.hub.prepare(new_events.clone(), &vocabulary());
        for other in [&self.loaded, &self.summary_only] {
            assert_eq!(other.prepare(new_events.clone(), &vocabulary()), prepared);
        }
        let batch = match (unknown, self.complete, prepared) {
            (Some(c), _, Err(Refused::UnknownCategory { category })) => {
                return assert_eq!(category, c)
            }
            (None, _, Err(Refused::EventsAfterComplete { .. })) if early_end => return,
            (None, true, Err(Refused::Complete)) if !early_end => return,
            (None, false, Ok(batch)) => batch,
            (unknown, complete, answer) => panic!("{unknown:?} {complete}: {answer:?}"),
        };
        let first = self.next_seq();
        let seqs: Vec<u64> = (first..).take(events.len()).collect();
        assert_eq!(
            batch.ids(EPOCH),
            seqs.iter().map(|&s| id(s)).collect::<Vec<_>>()
        );
        let old_oldest = self.oldest_seq();
        for ((entry, event), seq) in batch.entries.iter().zip(events).zip(first..) {
            let name = NAMES[event.name];
            // An empty value is written without the space after the colon.
            let data = match event.data.as_str() {
                "" => String::new(),
                data => format!(" {data}"),
            };
            let frame = format!("id: {}\nevent: {name}\ndata:{data}\n\n", id(seq));
            assert_eq!((entry.seq, entry.name.as_str()), (seq, name));
            assert_eq!(
                (&entry.frame[..], entry.category.as_deref()),
                (frame.as_bytes(), event.category)
            );
            self.published.push(Published {
                name,
                category: event.category,
                data: event.data.clone(),
                frame_bytes: frame.len(),
            });
        }
        assert_eq!(batch.completes, events.iter().any(|e| e.name == 3));
        self.complete |= batch.completes;

        // The Durable Object: store the batch (before or after the hub takes it in), delete
        // evicted.
        if store_first {
            self.storage.extend(batch.entries.iter().cloned());
        }
        let storage = &self.storage;
        let oldest_for = |hub: &Hub| -> Vec<(u64, usize)> {
            match hub.commit_reads_storage(&batch) {
                true => storage.iter().map(|e| (e.seq, e.frame.len())).collect(),
                false => Vec::new(),
            }
        };
        let (main_oldest, summary_oldest) = (oldest_for(&self.hub), oldest_for(&self.summary_only));
        assert!(!self.loaded.commit_reads_storage(&batch));
        let evicted = self.hub.commit(&batch, main_oldest);
        assert_eq!(self.summary_only.commit(&batch, summary_oldest), evicted);
        assert_eq!(self.loaded.commit(&batch, []), evicted);
        let new_oldest = self.oldest_seq();
        assert_eq!(
            evicted.through_seq,
            (new_oldest > old_oldest).then(|| new_oldest - 1)
        );
        let model = self.model_summary();
        for hub in [&self.hub, &self.summary_only, &self.loaded] {
            assert_eq!((hub.summary(), hub.is_complete()), (model, self.complete));
        }
        assert_eq!(LogSummary::of(self.loaded.log().unwrap()), model);
        if !store_first {
            self.storage.extend(batch.entries.iter().cloned());
        }
        self.storage
            .retain(|e| evicted.through_seq.is_none_or(|through| e.seq > through));
        assert!(self.storage.iter().eq(self.loaded.log().unwrap().all()));
        self.stored = (self.hub.summary(), self.hub.is_complete());

        // Fan-out: the offer rule per subscriber, over the wire into its relay.
        for client in &mut self.clients {
            if let Some(conn) = &mut client.conn {
                if let Some(message) = conn.record.message_for(EPOCH, &batch) {
                    conn.relay.receive(&message.encode()).unwrap();
                }
            }
        }
    }

    fn wake(&mut self) {
        let (summary, complete) = self.stored;
        assert_eq!(self.hub.summary(), summary);
        self.hub = Hub::from_summary(summary, self.limits, complete);
    }

    pub(crate) fn run(&mut self, op: &Op) {
        match op {
            Op::Publish {
                events,
                store_first,
            } => self.publish(events, *store_first),
            Op::Subscribe { filter, last } => {
                let issued = self.published.len().max(1) as u64;
                let last = match last {
                    LastId::None => None,
                    LastId::Issued(i) => Some(id(1 + *i as u64 % issued)),
                    LastId::OtherEpoch(i) => Some(format!(
                        "{}-{}",
                        EPOCH + 1 - 2 * (*i as u64 % 2),
                        *i as u64 % issued
                    )),
                    LastId::Malformed(i) => {
                        Some([format!("{EPOCH}-01"), "x".into(), "".into()][*i].clone())
                    }
                    LastId::Ahead(k) => Some(id(self.next_seq() + k)),
                    LastId::Zero => Some(id(0)),
                };
                self.clients.push(Client {
                    filter: *filter,
                    parser: Parser::new(),
                    conn: None,
                    done: false,
                    newest_seq: None,
                });
                self.connect(self.clients.len() - 1, last);
            }
            Op::Drain(pick) => {
                if let Some(index) = self.connected(*pick) {
                    self.drain(index, false);
                }
            }
            Op::Disconnect(pick) => {
                if let Some(index) = self.connected(*pick) {
                    let client = &mut self.clients[index];
                    (client.conn, client.done) = (None, true);
                }
            }
            Op::Hibernate => self.wake(),
            Op::Restart => {
                self.wake();
                for index in 0..self.clients.len() {
                    if let Some(conn) = &mut self.clients[index].conn {
                        conn.relay.hub_gone();
                        assert!(self.drain(index, true));
                    }
                }
                // Every client still listening reconnects, cut ones at once, ended ones after
                // `retry`.
                for index in 0..self.clients.len() {
                    if !self.clients[index].done {
                        let last = self.clients[index].parser.last_event_id();
                        let last = (!last.is_empty()).then(|| last.to_owned());
                        self.connect(index, last);
                    }
                }
            }
        }
    }

    /// Writes out every relay still open and checks what its client got.
    pub(crate) fn finish(&mut self) {
        while let Some(index) = self.connected(0) {
            if !self.drain(index, false) {
                self.clients[index].conn = None;
            }
        }
    }
}
