//! One load phase: N SSE connections spread over H hubs, one publisher per hub at a set rate (or
//! flat out), latency from a send timestamp in each event's data, and gap/duplicate accounting by
//! each stream's sequence number. Optionally a reconnect storm: every connection dropped at once
//! and resumed with `Last-Event-ID`.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use herald_core::Parser;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use herald_test_support::Dechunker;

use crate::http::{read_body, read_head, send_request};
use crate::stats::{now_us, Histogram};

/// Which worker is under load: they differ only in paths, auth and who encodes the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Herald,
    /// The baseline worker writing to JS streams directly: the runtime's ceiling.
    Baseline,
    /// The baseline worker streaming through a Rust `Stream`, as workers-rs (and Herald) do.
    BaselineRust,
    /// The same-shape baseline: the Worker holds the SSE response (a Rust `Stream`) and relays
    /// from a hibernatable Durable Object over one WebSocket per stream (`/w`, `/pw`, `/cw`).
    BaselineWs,
    /// The same relay with the Worker writing each message into a JS stream (`/wj`): the shape's
    /// ceiling, without the Rust bridge on the per-message path.
    BaselineWsJs,
    /// `baseline-ws` with Herald's durability: the object stores each frame in its SQLite before
    /// it sends it (`/pwd`), so the runtime holds the sends until the write is confirmed, as
    /// Herald's.
    BaselineWsDb,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Herald => "herald",
            Kind::Baseline => "baseline",
            Kind::BaselineRust => "baseline-rs",
            Kind::BaselineWs => "baseline-ws",
            Kind::BaselineWsJs => "baseline-wsjs",
            Kind::BaselineWsDb => "baseline-wsdb",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Kind> {
        [
            Kind::Herald,
            Kind::Baseline,
            Kind::BaselineRust,
            Kind::BaselineWs,
            Kind::BaselineWsJs,
            Kind::BaselineWsDb,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }

    pub(crate) fn is_baseline(self) -> bool {
        self != Kind::Herald
    }
}

#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) kind: Kind,
    pub(crate) host: String,
    pub(crate) token: String,
}

impl Target {
    fn subscribe_path(&self, hub: &str) -> String {
        match self.kind {
            Kind::Herald => format!("/v1/streams/{hub}"),
            Kind::Baseline => format!("/s/{hub}"),
            Kind::BaselineRust => format!("/r/{hub}"),
            Kind::BaselineWs | Kind::BaselineWsDb => format!("/w/{hub}"),
            Kind::BaselineWsJs => format!("/wj/{hub}"),
        }
    }

    /// Ends every stream of a hub once a phase is over, so the next phase starts clean.
    fn close_path(&self, hub: &str) -> String {
        match self.kind {
            Kind::Herald => format!("/v1/streams/{hub}/disconnect"),
            Kind::Baseline | Kind::BaselineRust => format!("/c/{hub}"),
            Kind::BaselineWs | Kind::BaselineWsJs | Kind::BaselineWsDb => format!("/cw/{hub}"),
        }
    }

    fn publish_path(&self, hub: &str) -> String {
        match self.kind {
            Kind::Herald => format!("/v1/streams/{hub}/events"),
            Kind::Baseline | Kind::BaselineRust => format!("/p/{hub}"),
            Kind::BaselineWs | Kind::BaselineWsJs => format!("/pw/{hub}"),
            Kind::BaselineWsDb => format!("/pwd/{hub}"),
        }
    }

    fn headers(&self, extra: Option<String>) -> Vec<String> {
        let mut headers = Vec::with_capacity(3);
        if self.kind == Kind::Herald {
            headers.push(format!("Authorization: Bearer {}", self.token));
        }
        headers.extend(extra);
        headers
    }

    /// Herald gets a publish body and numbers the event itself; the baseline gets the finished
    /// frame, shaped like Herald's (an `<epoch>-<seq>` id, a name, one data line), numbered by
    /// the publisher.
    fn publish_body(&self, seq: u64, sent_us: u64) -> Vec<u8> {
        match self.kind {
            Kind::Herald => format!(r#"{{"event":"tick","data":{{"t":{sent_us}}}}}"#).into_bytes(),
            _ => format!("id: 1-{seq}\nevent: tick\ndata: {{\"t\":{sent_us}}}\n\n").into_bytes(),
        }
    }
}

/// What a phase does.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) label: String,
    pub(crate) connections: usize,
    pub(crate) hubs: usize,
    /// Events per second each hub publishes; 0 publishes flat out (one request in flight per hub).
    pub(crate) rate_per_hub: f64,
    /// Flat out only: how many events a hub may publish beyond what its slowest stream has
    /// received (0: no bound, so the server's queues grow while the phase runs).
    pub(crate) window: u64,
    pub(crate) warm_s: f64,
    pub(crate) measure_s: f64,
    pub(crate) storm: bool,
    /// Runs of this phase per side, alternating sides; the table keeps each side's best run (a
    /// ceiling measured on a shared machine is only as good as its quietest moment).
    pub(crate) runs: usize,
}

/// What a phase measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) connect_s: f64,
    /// After the warm-up, how long until every stream had caught up with its hub (at most 15 s).
    pub(crate) settle_s: f64,
    pub(crate) connect_failures: u64,
    /// Connections open at the end of the measured window.
    pub(crate) held: usize,
    pub(crate) delivered_per_s: f64,
    /// Events received over the whole phase, and the events the publishes accepted over the whole
    /// phase should have delivered (each hub's last seq times its streams): equal when nothing is
    /// lost or duplicated.
    pub(crate) received_total: u64,
    /// Flat out: publishes that went ahead after 5 s waiting for a stream stuck behind the window.
    pub(crate) stalls: u64,
    pub(crate) expected_total: u64,
    pub(crate) published_per_s: f64,
    pub(crate) publish_errors: u64,
    /// Failed publishes by status (0: transport error or timeout), and answers naming another id.
    pub(crate) publish_failures: Vec<(u16, u64)>,
    /// Publish round trips (request sent to answer read) in the measured window.
    pub(crate) publish_p50_ms: Option<f64>,
    pub(crate) publish_p99_ms: Option<f64>,
    pub(crate) p50_ms: Option<f64>,
    pub(crate) p99_ms: Option<f64>,
    pub(crate) max_ms: Option<f64>,
    pub(crate) gaps: u64,
    pub(crate) duplicates: u64,
    /// From the last publish until every stream had every event (at most 30 s).
    pub(crate) drain_s: f64,
    /// Events published but never received by the end (summed over connections).
    pub(crate) missing_at_end: u64,
    /// Events other than the published ones (`reset`, `lagging`).
    pub(crate) anomalies: u64,
    /// Streams the server ended (each then resumed from its last id).
    pub(crate) server_closes: u64,
    pub(crate) client_cpu_pct: f64,
    pub(crate) server_cpu_pct: f64,
    /// `server_cpu_pct` by process role (see `Server::cpu_s`).
    pub(crate) server_cpu_parts: Vec<(String, f64)>,
    pub(crate) storm: Option<Storm>,
    /// Delivered events/s of every run of the phase (more than one when `Spec::runs` > 1).
    pub(crate) all_runs: Vec<f64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Storm {
    pub(crate) connections: usize,
    /// From the kill until every connection had its 200 again.
    pub(crate) reopened_s: f64,
    /// From the kill until every connection had everything published before the kill.
    pub(crate) recovered_s: f64,
    pub(crate) unrecovered: usize,
    pub(crate) gaps: u64,
    pub(crate) duplicates: u64,
}

/// State shared by a phase's tasks.
#[derive(Debug, Default)]
struct Shared {
    /// Per hub: the last seq the publisher saw accepted.
    published: Vec<AtomicU64>,
    /// Per connection: the last seq it received in order, for the final drain.
    progress: Vec<AtomicU64>,
    /// Per hub: the seq a connection must reach to count as recovered from the storm.
    storm_target: Vec<AtomicU64>,
    storm_kill_us: AtomicU64,
    publishing: AtomicBool,
    measuring: AtomicBool,
    delivered: AtomicU64,
    received: AtomicU64,
    /// Publish request sent to answer read, during the measured window.
    publish_latency: Histogram,
    /// Flat out: publishes that went ahead after 5 s waiting for a stream stuck behind the window.
    stalls: AtomicU64,
    latency: Histogram,
    open: AtomicUsize,
    connect_failures: AtomicU64,
    gaps: AtomicU64,
    duplicates: AtomicU64,
    anomalies: AtomicU64,
    server_closes: AtomicU64,
    publishes: AtomicU64,
    publish_errors: AtomicU64,
    /// Failed publishes by HTTP status; 0 the connection closed before an answer, 2 a 30 s
    /// timeout, 3 another transport error.
    publish_failures: std::sync::Mutex<std::collections::BTreeMap<u16, u64>>,
    reopened_max_us: AtomicU64,
    recovered_max_us: AtomicU64,
    recovered: AtomicUsize,
}

/// Commands to the connection tasks: bump `kill` to drop and resume every stream, set `stop` to
/// end.
#[derive(Debug, Clone, Copy, Default)]
struct Control {
    kill: u64,
    stop: bool,
}

/// One connection's view of its stream.
#[derive(Debug, Default)]
struct Cursor {
    index: usize,
    hub: usize,
    last_seq: u64,
    last_id: String,
    /// The storm generation this connection has recovered from.
    recovered_gen: u64,
}

impl Cursor {
    fn on_event(&mut self, shared: &Shared, event: &str, id: &str, data: &str, gen: u64) {
        if event != "tick" {
            if shared.anomalies.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("  unexpected event {event:?}: {data}");
            }
            return;
        }
        let seq = herald_core::Position::parse(id).map_or(0, |position| position.seq);
        if seq == self.last_seq + 1 {
            self.last_seq = seq;
        } else if seq <= self.last_seq {
            shared.duplicates.fetch_add(1, Ordering::Relaxed);
        } else {
            shared
                .gaps
                .fetch_add(seq - self.last_seq - 1, Ordering::Relaxed);
            self.last_seq = seq;
        }
        self.last_id.clear();
        self.last_id.push_str(id);
        shared.progress[self.index].store(self.last_seq, Ordering::Relaxed);
        shared.received.fetch_add(1, Ordering::Relaxed);
        if shared.measuring.load(Ordering::Relaxed) {
            shared.delivered.fetch_add(1, Ordering::Relaxed);
            if let Some(sent) = data
                .strip_prefix("{\"t\":")
                .and_then(|rest| rest.strip_suffix('}'))
                .and_then(|t| t.parse::<u64>().ok())
            {
                shared.latency.record(now_us().saturating_sub(sent));
            }
        }
        self.check_recovered(shared, gen);
    }

    fn check_recovered(&mut self, shared: &Shared, gen: u64) {
        if gen > self.recovered_gen
            && self.last_seq >= shared.storm_target[self.hub].load(Ordering::Relaxed)
        {
            self.recovered_gen = gen;
            let took = now_us().saturating_sub(shared.storm_kill_us.load(Ordering::Relaxed));
            shared.recovered_max_us.fetch_max(took, Ordering::Relaxed);
            shared.recovered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Why a stream stopped reading.
enum Ended {
    Stop,
    Kill,
    Lost,
}

async fn connection(
    target: Arc<Target>,
    shared: Arc<Shared>,
    index: usize,
    hub: usize,
    hub_name: Arc<str>,
    gate: Arc<Semaphore>,
    mut control: watch::Receiver<Control>,
) -> Cursor {
    let mut cursor = Cursor {
        index,
        hub,
        ..Cursor::default()
    };
    let mut buf = Vec::with_capacity(4096);
    let mut read_buf = vec![0u8; 16 * 1024];
    let path = target.subscribe_path(&hub_name);
    let mut first = true;
    loop {
        let gen = control.borrow().kill;
        if control.borrow().stop {
            return cursor;
        }
        // Open (or resume) the stream; the gate bounds connects in flight, not open streams.
        let opened = {
            let _permit = gate.acquire().await.expect("gate");
            open_stream(&target, &path, &cursor.last_id, &mut buf).await
        };
        let Ok((mut stream, rest)) = opened else {
            shared.connect_failures.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        shared.open.fetch_add(1, Ordering::Relaxed);
        if gen > 0 && !first {
            let took = now_us().saturating_sub(shared.storm_kill_us.load(Ordering::Relaxed));
            shared.reopened_max_us.fetch_max(took, Ordering::Relaxed);
            cursor.check_recovered(&shared, gen);
        }
        first = false;
        let mut dechunker = Dechunker::default();
        let mut parser = Parser::new();
        let mut feed = |bytes: &[u8], cursor: &mut Cursor| {
            dechunker.feed(bytes, |body| {
                parser.feed(body, |m| {
                    cursor.on_event(&shared, m.event_type, m.last_event_id, m.data, gen)
                })
            });
        };
        feed(&rest, &mut cursor);
        let ended = loop {
            tokio::select! {
                read = stream.read(&mut read_buf) => match read {
                    Ok(0) | Err(_) => break Ended::Lost,
                    Ok(n) => feed(&read_buf[..n], &mut cursor),
                },
                changed = control.changed() => {
                    let now = *control.borrow();
                    if changed.is_err() || now.stop {
                        break Ended::Stop;
                    }
                    if now.kill != gen {
                        break Ended::Kill;
                    }
                }
            }
        };
        shared.open.fetch_sub(1, Ordering::Relaxed);
        drop(stream);
        match ended {
            Ended::Stop => return cursor,
            Ended::Kill => {}
            Ended::Lost => {
                // The server ended the stream (a `lagging` close, a restart): counted, then
                // resumed.
                shared.server_closes.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn open_stream(
    target: &Target,
    path: &str,
    last_id: &str,
    buf: &mut Vec<u8>,
) -> Result<(TcpStream, Vec<u8>), ()> {
    let mut stream = TcpStream::connect(&target.host).await.map_err(|_| ())?;
    let _ = stream.set_nodelay(true);
    let resume = (!last_id.is_empty()).then(|| format!("Last-Event-ID: {last_id}"));
    let mut headers = target.headers(resume);
    headers.push("Accept: text/event-stream".into());
    send_request(&mut stream, "GET", path, &target.host, &headers, b"")
        .await
        .map_err(|_| ())?;
    let head = read_head(&mut stream, buf).await.map_err(|_| ())?;
    if head.status != 200 {
        return Err(());
    }
    Ok((stream, head.rest))
}

async fn publisher(
    target: Arc<Target>,
    shared: Arc<Shared>,
    hub: usize,
    hub_name: Arc<str>,
    rate_per_s: f64,
    offset: Duration,
    window: u64,
) {
    let path = target.publish_path(&hub_name);
    // This hub's streams (connection i belongs to hub i % hubs).
    let hubs = shared.published.len();
    let mine: Vec<usize> = (hub..shared.progress.len()).step_by(hubs.max(1)).collect();
    let headers = target.headers(Some("Content-Type: application/json".into()));
    let period = (rate_per_s > 0.0).then(|| Duration::from_secs_f64(1.0 / rate_per_s));
    let start = tokio::time::Instant::now() + offset;
    let mut buf = Vec::with_capacity(1024);
    let mut stream: Option<TcpStream> = None;
    let mut tick: u32 = 0;
    while shared.publishing.load(Ordering::Relaxed) {
        if let Some(period) = period {
            tokio::time::sleep_until(start + period * tick).await;
            tick += 1;
        } else if window > 0 {
            // Flat out, closed loop: publish seq n once every stream of the hub has n - window, so
            // what is measured is what the server delivers, not a queue growing inside it.
            let next = shared.published[hub].load(Ordering::Relaxed) + 1;
            let waited = tokio::time::Instant::now();
            while mine
                .iter()
                .any(|&i| shared.progress[i].load(Ordering::Relaxed) + window < next)
                && waited.elapsed() < Duration::from_secs(5)
                && shared.publishing.load(Ordering::Relaxed)
            {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            if waited.elapsed() >= Duration::from_secs(5) {
                shared.stalls.fetch_add(1, Ordering::Relaxed);
            }
        }
        if stream.is_none() {
            match TcpStream::connect(&target.host).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                Err(_) => {
                    shared.publish_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(socket) = stream.as_mut() else {
            continue;
        };
        let seq = shared.published[hub].load(Ordering::Relaxed) + 1;
        let sent_us = now_us();
        let body = target.publish_body(seq, sent_us);
        let exchange = async {
            send_request(socket, "POST", &path, &target.host, &headers, &body).await?;
            let head = read_head(socket, &mut buf).await?;
            let body = read_body(socket, &head).await?;
            Ok::<_, std::io::Error>((head.status, body))
        };
        let answer = match tokio::time::timeout(Duration::from_secs(30), exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        };
        let fail = |status: u16| {
            shared.publish_errors.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut failures) = shared.publish_failures.lock() {
                *failures.entry(status).or_default() += 1;
            }
        };
        match answer {
            Ok((200, body)) => {
                if shared.measuring.load(Ordering::Relaxed) {
                    shared
                        .publish_latency
                        .record(now_us().saturating_sub(sent_us));
                }
                // Herald numbers the event: its answer must name the seq the subscribers will
                // check.
                let assigned = match target.kind {
                    Kind::Herald => String::from_utf8_lossy(&body)
                        .rsplit('-')
                        .next()
                        .and_then(|s| s.trim_end_matches(['"', ']', '}']).parse().ok())
                        .unwrap_or(0),
                    _ => seq,
                };
                if assigned != seq {
                    // An earlier publish was stored although its answer was lost.
                    fail(1);
                }
                shared.published[hub].store(assigned.max(seq), Ordering::Relaxed);
                shared.publishes.fetch_add(1, Ordering::Relaxed);
            }
            Ok((status, _)) => fail(status),
            Err(error) => {
                if shared.publish_errors.load(Ordering::Relaxed) < 3 {
                    eprintln!("  publish to {hub_name}: {error}");
                }
                fail(match error.kind() {
                    // The server closed a kept-alive connection before answering: not processed.
                    std::io::ErrorKind::UnexpectedEof => 0,
                    std::io::ErrorKind::TimedOut => 2,
                    _ => 3,
                });
                stream = None;
            }
        }
    }
}

/// Asks the server to end every stream of the phase's hubs; failures only cost resources.
async fn close_hubs(target: &Target, names: &[Arc<str>]) {
    let mut buf = Vec::new();
    let headers = target.headers(None);
    for name in names {
        let close = async {
            let mut socket = TcpStream::connect(&target.host).await?;
            let path = target.close_path(name);
            send_request(&mut socket, "POST", &path, &target.host, &headers, b"").await?;
            let head = read_head(&mut socket, &mut buf).await?;
            read_body(&mut socket, &head).await
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), close).await;
    }
}

/// Runs one phase against a running server. `server_cpu_s` reads the server's CPU seconds so far,
/// by process role.
pub(crate) async fn run(
    target: Arc<Target>,
    spec: &Spec,
    prefix: &str,
    server_cpu_s: &(dyn Fn() -> Vec<(String, f64)> + Sync),
) -> Report {
    let hubs = spec.hubs.max(1);
    let shared = Arc::new(Shared {
        published: (0..hubs).map(|_| AtomicU64::new(0)).collect(),
        progress: (0..spec.connections).map(|_| AtomicU64::new(0)).collect(),
        storm_target: (0..hubs).map(|_| AtomicU64::new(0)).collect(),
        ..Shared::default()
    });
    let names: Vec<Arc<str>> = (0..hubs)
        .map(|i| Arc::from(format!("{prefix}-{}-{i}", spec.label)))
        .collect();
    let (control_tx, control_rx) = watch::channel(Control::default());
    let gate = Arc::new(Semaphore::new(256));
    let mut report = Report::default();

    // 1. Open every stream before anything is published, so each one must see seq 1 onwards.
    let opened_at = now_us();
    let connections: Vec<_> = (0..spec.connections)
        .map(|i| {
            let hub = i % hubs;
            tokio::spawn(connection(
                target.clone(),
                shared.clone(),
                i,
                hub,
                names[hub].clone(),
                gate.clone(),
                control_rx.clone(),
            ))
        })
        .collect();
    let deadline = now_us() + 180_000_000;
    while shared.open.load(Ordering::Relaxed) < spec.connections && now_us() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.connect_s = (now_us() - opened_at) as f64 / 1e6;
    report.connect_failures = shared.connect_failures.load(Ordering::Relaxed);

    // 2. Publish; measure a window after a warm-up.
    shared.publishing.store(true, Ordering::Relaxed);
    let publishers: Vec<_> = (0..hubs)
        .map(|hub| {
            // Spread the hubs' ticks over one period so publishes do not arrive in bursts.
            let offset = if spec.rate_per_hub > 0.0 {
                Duration::from_secs_f64(hub as f64 / hubs as f64 / spec.rate_per_hub)
            } else {
                Duration::ZERO
            };
            tokio::spawn(publisher(
                target.clone(),
                shared.clone(),
                hub,
                names[hub].clone(),
                spec.rate_per_hub,
                offset,
                spec.window,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(spec.warm_s)).await;
    // Measure from a steady state: a worker that starts slowly (Wasm tier-up, first storage writes)
    // builds a backlog in its first seconds; wait until every stream is within a couple of events
    // (the window, flat out) of its hub, at most 15 s more.
    let slack = spec.window.max(2);
    let steady = |shared: &Shared| {
        shared.progress.iter().enumerate().all(|(i, progress)| {
            progress.load(Ordering::Relaxed) + slack
                >= shared.published[i % hubs].load(Ordering::Relaxed)
        })
    };
    let settle_started = now_us();
    while !steady(&shared) && now_us() - settle_started < 15_000_000 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.settle_s = (now_us() - settle_started) as f64 / 1e6;
    let (client0, server0, publishes0) = (
        crate::server::own_cpu_s(),
        server_cpu_s(),
        shared.publishes.load(Ordering::Relaxed),
    );
    let started = now_us();
    shared.measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(spec.measure_s)).await;
    shared.measuring.store(false, Ordering::Relaxed);
    let window_s = (now_us() - started) as f64 / 1e6;
    report.client_cpu_pct = (crate::server::own_cpu_s() - client0) / window_s * 100.0;
    let server1 = server_cpu_s();
    report.server_cpu_parts = server1
        .iter()
        .map(|(role, used)| {
            let before = server0
                .iter()
                .find(|(r, _)| r == role)
                .map_or(0.0, |(_, s)| *s);
            (role.clone(), (used - before) / window_s * 100.0)
        })
        .collect();
    report.server_cpu_pct = report.server_cpu_parts.iter().map(|(_, pct)| pct).sum();
    report.published_per_s =
        (shared.publishes.load(Ordering::Relaxed) - publishes0) as f64 / window_s;
    report.delivered_per_s = shared.delivered.load(Ordering::Relaxed) as f64 / window_s;
    report.held = shared.open.load(Ordering::Relaxed);
    report.p50_ms = shared.latency.quantile_ms(0.50);
    report.publish_p50_ms = shared.publish_latency.quantile_ms(0.50);
    report.publish_p99_ms = shared.publish_latency.quantile_ms(0.99);
    report.p99_ms = shared.latency.quantile_ms(0.99);
    report.max_ms = shared.latency.max_ms();

    // 3. The storm: drop every stream at once while publishing goes on, resume each from its id.
    if spec.storm {
        let (gaps0, dups0) = (
            shared.gaps.load(Ordering::Relaxed),
            shared.duplicates.load(Ordering::Relaxed),
        );
        for (target_seq, published) in shared.storm_target.iter().zip(&shared.published) {
            target_seq.store(published.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        shared.storm_kill_us.store(now_us(), Ordering::Relaxed);
        control_tx.send_modify(|c| c.kill += 1);
        let deadline = now_us() + 120_000_000;
        while shared.recovered.load(Ordering::Relaxed) < spec.connections && now_us() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let live events flow across the seam for a moment before counting.
        tokio::time::sleep(Duration::from_secs(2)).await;
        report.storm = Some(Storm {
            connections: spec.connections,
            reopened_s: shared.reopened_max_us.load(Ordering::Relaxed) as f64 / 1e6,
            recovered_s: shared.recovered_max_us.load(Ordering::Relaxed) as f64 / 1e6,
            unrecovered: spec.connections - shared.recovered.load(Ordering::Relaxed),
            gaps: shared.gaps.load(Ordering::Relaxed) - gaps0,
            duplicates: shared.duplicates.load(Ordering::Relaxed) - dups0,
        });
    }

    // 4. Stop publishing, let the last events arrive, then check every stream reached its hub's
    //    end.
    shared.publishing.store(false, Ordering::Relaxed);
    for publisher in publishers {
        let _ = publisher.await;
    }
    let drain_started = now_us();
    let caught_up = |shared: &Shared| {
        shared.progress.iter().enumerate().all(|(i, progress)| {
            progress.load(Ordering::Relaxed) >= shared.published[i % hubs].load(Ordering::Relaxed)
        })
    };
    while !caught_up(&shared) && now_us() - drain_started < 30_000_000 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.drain_s = (now_us() - drain_started) as f64 / 1e6;
    control_tx.send_modify(|c| c.stop = true);
    for connection in connections {
        if let Ok(cursor) = connection.await {
            let end = shared.published[cursor.hub].load(Ordering::Relaxed);
            report.missing_at_end += end.saturating_sub(cursor.last_seq);
        }
    }
    close_hubs(&target, &names).await;
    report.received_total = shared.received.load(Ordering::Relaxed);
    report.stalls = shared.stalls.load(Ordering::Relaxed);
    report.expected_total = (0..spec.connections)
        .map(|i| shared.published[i % hubs].load(Ordering::Relaxed))
        .sum();
    report.publish_errors = shared.publish_errors.load(Ordering::Relaxed);
    if let Ok(failures) = shared.publish_failures.lock() {
        report.publish_failures = failures.iter().map(|(k, v)| (*k, *v)).collect();
    }
    report.gaps = shared.gaps.load(Ordering::Relaxed);
    report.duplicates = shared.duplicates.load(Ordering::Relaxed);
    report.anomalies = shared.anomalies.load(Ordering::Relaxed);
    report.server_closes = shared.server_closes.load(Ordering::Relaxed);
    report
}
