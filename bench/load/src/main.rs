//! `herald-load`: the load benchmark behind `scripts/bench-load.sh`.
//!
//! Runs each phase on Herald's worker and on baseline workers (bench/baseline-worker: Durable
//! Objects that only fan pre-encoded frames out), each on a fresh server (so every side sees the
//! same background load and no phase inherits another's leftovers), and prints tables with Herald's
//! ratios to the same-shape baseline and the targets. `HERALD_LOAD_KEEP=1` keeps each run's logs
//! under .e2e/. Options (all optional):
//!
//! - `--quick`: short windows, one flat-out run instead of three, and 2,000 instead of 5,000
//!   streams.
//! - `--measure-s S`: the measured window of each phase (default 10).
//! - `--streams-per-hub K`: how the streams are spread over hubs (default 100 per hub).
//! - `--sides herald,baseline-ws,...` (default herald,baseline-ws): what to load, from `herald`,
//!   `baseline-ws` (the same-shape baseline: the Worker holds the SSE response and relays from a
//!   hibernatable Durable Object over a WebSocket, through a Rust `Stream`), `baseline-wsjs` (the
//!   same relay writing JS streams: that shape's ceiling), `baseline-wsdb` (`baseline-ws` storing
//!   each frame in SQLite before sending it: Herald's durability), `baseline` (the Durable Object
//!   writes a JS stream it returned itself: the old shape's ceiling) and `baseline-rs` (that,
//!   through a Rust `Stream`). The first baseline named is the one Herald's ratios are taken
//!   against.
//! - `--phases max,s100,s1000,s5000`: run only these phases.
//! - `--window W` (default 8): flat out, each hub publishes its next event once every one of its
//!   streams is at most W events behind, so the phase measures what the server delivers rather than
//!   how fast it accepts publishes into queues that grow (0: no bound, the old behaviour).
//! - `--runtime workerd|workerd-entry|workerd-inspector|workerd-inspected|wrangler|wrangler-proxy`
//!   (default workerd; a comma list runs each in turn): `workerd` runs the worker on the workerd
//!   binary wrangler ships, from a config written from its wrangler.toml, with no inspector;
//!   `workerd-inspector` the same with the inspector port open and nothing attached;
//!   `workerd-inspected` with a session attached that enabled the Runtime domain (what wrangler
//!   dev's inspector proxy keeps open); `workerd-entry` with a pass-through worker in front (as
//!   Miniflare's entry worker is under wrangler dev); `wrangler` under `wrangler dev` loading its
//!   user workerd's own socket (through Miniflare's entry worker, inspector attached);
//!   `wrangler-proxy` wrangler dev's port (its dev proxy relays everything through Node). `--via
//!   direct|proxy|both` is the old spelling of the last two. `external:PORT:PGID` loads a server
//!   started by hand on PORT (one worker for every side: run one side at a time) and counts the CPU
//!   of process group PGID.
//! - `--storage tmpfs|disk` (default tmpfs): where workerd keeps Durable Object storage (SQLite).
//!   `tmpfs` (/dev/shm) measures the runtime's and the workers' work; `disk` adds this machine's
//!   disk flushes to every commit, which land only on the sides that store (Herald, baseline-wsdb)
//!   and swing with whatever else writes to the disk. Cloudflare's storage does not flush a local
//!   disk per commit either (it confirms writes by replication). Not for `wrangler` runtimes, which
//!   always persist under .e2e/.
//! - `--ceiling E|measured`: the runtime's flat-out ceiling in delivered events/s. The fixed-rate
//!   phases (s100, s1000, s5000) each deliver `--load-pct` (default 50) percent of it in total.
//!   Default `measured`: this run's flat-out phase (it runs first), the reference baseline's best
//!   run, so the fixed rates follow what the machine delivers now; when no flat-out phase runs
//!   (`--phases s5000`), `CEILING_EVENTS_PER_S_DEFAULT` (15,000, the idle 2-core machine's). A
//!   phase with another number of streams (s100, s5000) first runs the reference baseline flat out
//!   on its own streams and hubs, and takes the lower of the two ceilings: the runtime's ceiling
//!   falls as streams rise. `--ceiling E` sets every phase's.

mod http;
mod inspector;
mod load;
mod server;
mod stats;
mod table;
mod workerd;

use std::path::PathBuf;
use std::sync::Arc;

use herald_core::{mint, Claims, Scopes, TenantId, TokenKind};
use load::{Kind, Report, Spec, Target};
use server::{Inspector, Runtime, Server};
use table::PhaseCeiling;

/// The HMAC key the Herald instance is started with (a local, throwaway key).
const KEY: &str = "herald-load-key-0123456789abcdef0123456789abcdef";

/// The ceiling the fixed-rate phases assume when no flat-out phase ran to measure it: delivered
/// events/s of the same-shape baseline (baseline-ws) flat out with the default window, on workerd
/// without inspector, on the 2-core machine while nothing else ran (2026-11-30: 14,700 to 15,700 in
/// the last idle runs, 17,100 to 22,700 in 8 earlier ones; see bench/load/NOTES.md). With other
/// builds and tests on the machine the same measured 5,200 to 13,600. With workerd's inspector port
/// open it measured 14,500 to 15,400, with a session attached 14,100 to 15,500, under wrangler dev
/// 10,900 to 12,700.
const CEILING_EVENTS_PER_S_DEFAULT: f64 = 15_000.0;

/// The streams of the flat-out phase, whose reference baseline run measures the ceiling.
const FLAT_OUT_STREAMS: usize = 1_000;

#[derive(Debug)]
struct Options {
    quick: bool,
    measure_s: f64,
    streams_per_hub: usize,
    sides: Vec<Kind>,
    phases: Option<Vec<String>>,
    setups: Vec<Setup>,
    ceiling: Option<f64>,
    load_pct: f64,
    window: u64,
    storage_in_memory: bool,
}

/// What runs the worker and where the load goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Setup {
    runtime: Runtime,
    via: Via,
}

fn workerd(inspector: Inspector, entry: bool) -> Runtime {
    Runtime::Workerd { inspector, entry }
}

impl Setup {
    fn parse(name: &str) -> Setup {
        let (runtime, via) = match name {
            "workerd" => (workerd(Inspector::Off, false), Via::Direct),
            "workerd-entry" => (workerd(Inspector::Off, true), Via::Direct),
            "workerd-inspector" => (workerd(Inspector::Open, false), Via::Direct),
            "workerd-inspected" => (workerd(Inspector::Attached, false), Via::Direct),
            "wrangler" => (Runtime::Wrangler, Via::Direct),
            "wrangler-proxy" => (Runtime::Wrangler, Via::Proxy),
            other if other.starts_with("external:") => {
                let mut parts = other.split(':').skip(1).map(|n| n.parse().ok());
                let (Some(Some(port)), Some(Some(group))) = (parts.next(), parts.next()) else {
                    panic!("--runtime external:PORT:PROCESS_GROUP, not {other}");
                };
                let port = u16::try_from(port).expect("port");
                (Runtime::External { port, group }, Via::Direct)
            }
            other => panic!(
                "--runtime takes workerd, workerd-entry, workerd-inspector, workerd-inspected, \
                 wrangler, wrangler-proxy; not {other}"
            ),
        };
        Setup { runtime, via }
    }

    fn describe(self) -> String {
        match self.runtime {
            Runtime::Wrangler => format!(
                "{}, load sent to the {}",
                self.runtime.as_str(),
                self.via.as_str()
            ),
            Runtime::Workerd { .. } => {
                let storage = match server::STATE_IN_MEMORY.get() {
                    Some(true) => "Durable Object storage on tmpfs",
                    _ => "Durable Object storage on disk",
                };
                format!(
                    "{}, load sent to its socket, {storage}",
                    self.runtime.as_str()
                )
            }
            Runtime::External { .. } => {
                format!("{}, load sent to its socket", self.runtime.as_str())
            }
        }
    }
}

/// How the load reaches a worker under wrangler dev.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// wrangler dev's own port: its dev proxy (a proxy worker and wrangler's Node process) relays
    /// every request and every stream chunk to the workerd that runs the worker.
    Proxy,
    /// That workerd's own socket, as production serves a worker without a dev proxy.
    Direct,
}

impl Via {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Via::Proxy => "wrangler dev port (through its dev proxy)",
            Via::Direct => "workerd socket (dev proxy bypassed)",
        }
    }
}

fn options() -> Options {
    let mut options = Options {
        quick: false,
        measure_s: 10.0,
        streams_per_hub: 100,
        sides: vec![Kind::Herald, Kind::BaselineWs],
        phases: None,
        setups: vec![Setup::parse("workerd")],
        ceiling: None,
        load_pct: 50.0,
        window: 8,
        storage_in_memory: server::tmpfs_available(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--measure-s" => options.measure_s = value().parse().expect("--measure-s seconds"),
            "--streams-per-hub" => {
                options.streams_per_hub = value().parse().expect("--streams-per-hub count")
            }
            "--phases" => options.phases = Some(value().split(',').map(str::to_owned).collect()),
            "--ceiling" => {
                options.ceiling = match value().as_str() {
                    "measured" => None,
                    number => Some(number.parse().expect("--ceiling events/s or measured")),
                }
            }
            "--load-pct" => options.load_pct = value().parse().expect("--load-pct percent"),
            "--window" => options.window = value().parse().expect("--window events"),
            "--storage" => {
                options.storage_in_memory = match value().as_str() {
                    "tmpfs" if server::tmpfs_available() => true,
                    "tmpfs" => panic!("--storage tmpfs needs /dev/shm"),
                    "disk" => false,
                    other => panic!("--storage tmpfs|disk, not {other}"),
                }
            }
            "--runtime" => options.setups = value().split(',').map(Setup::parse).collect(),
            "--via" => {
                options.setups = match value().as_str() {
                    "direct" => vec![Setup::parse("wrangler")],
                    "proxy" => vec![Setup::parse("wrangler-proxy")],
                    "both" => vec![Setup::parse("wrangler"), Setup::parse("wrangler-proxy")],
                    other => panic!("--via direct|proxy|both, not {other}"),
                }
            }
            "--sides" => {
                options.sides = value()
                    .split(',')
                    .map(|side| {
                        Kind::parse(side).unwrap_or_else(|| {
                            panic!(
                                "--sides takes herald, baseline-ws, baseline-wsjs, baseline-wsdb, \
                                 baseline, baseline-rs; not {side}"
                            )
                        })
                    })
                    .collect()
            }
            other => panic!("unknown option {other} (see bench/load/src/main.rs)"),
        }
    }
    if options.quick {
        options.measure_s = options.measure_s.min(5.0);
    }
    options
}

/// The phases, flat out first (it measures the ceiling the fixed rates are set from). The fixed
/// rates are filled in by `with_rate` once the ceiling is known.
fn phases(options: &Options) -> Vec<Spec> {
    let spec = |label: &str, connections: usize, storm: bool| Spec {
        label: label.into(),
        connections,
        hubs: connections.div_ceil(options.streams_per_hub.max(1)),
        rate_per_hub: 0.0,
        window: options.window,
        warm_s: if options.quick { 1.0 } else { 2.0 },
        measure_s: options.measure_s,
        storm,
        runs: 1,
    };
    let big = if options.quick { 2_000 } else { 5_000 };
    let all = vec![
        // Flat out: one publish in flight per hub, as fast as the worker answers; best of 3.
        Spec {
            runs: if options.quick { 1 } else { 3 },
            ..spec("max", 1_000, false)
        },
        // At a fixed share of the ceiling: few streams, many, and many held, each phase delivering
        // the same events/s in total; the reconnect storm follows the 1,000-stream phase.
        spec("s100", 100, false),
        spec("s1000", 1_000, true),
        spec(&format!("s{big}"), big, false),
    ];
    match &options.phases {
        Some(wanted) => all
            .into_iter()
            .filter(|spec| wanted.contains(&spec.label))
            .collect(),
        None => all,
    }
}

/// The ceiling `spec`'s rate is set from: `--ceiling E` if given, else the lower of the flat-out
/// phase's `ceiling` (with whether this run measured it) and, for a phase of another shape, the
/// reference baseline flat out once on that phase's own streams and hubs (`flat_out`, giving
/// delivered events/s). Many streams cost the runtime more per event (the 5,000-stream phase's
/// baseline spends about twice the 1,000-stream one's CPU per event), so half the 1,000-stream
/// ceiling can be most of theirs.
fn phase_ceiling(
    options: &Options,
    (ceiling, measured): (f64, bool),
    spec: &Spec,
    flat_out: impl FnOnce(&Spec) -> Option<(Kind, f64)>,
) -> PhaseCeiling {
    let own = (options.ceiling.is_none() && spec.connections != FLAT_OUT_STREAMS)
        .then(|| {
            flat_out(&Spec {
                label: format!("{}-max", spec.label),
                rate_per_hub: 0.0,
                storm: false,
                runs: 1,
                ..spec.clone()
            })
        })
        .flatten()
        .filter(|(_, own)| *own > 0.0 && *own < ceiling);
    let (events_per_s, source) = match own {
        Some((kind, own)) => (
            own,
            format!(
                "{} flat out on this phase's {} streams over {} hubs, measured in this run",
                kind.name(),
                spec.connections,
                spec.hubs
            ),
        ),
        None if measured => (
            ceiling,
            "the flat-out phase, measured in this run".to_owned(),
        ),
        None => (ceiling, "set".to_owned()),
    };
    PhaseCeiling {
        label: spec.label.clone(),
        events_per_s,
        source,
    }
}

/// A fixed-rate phase's publish rate per hub: its streams together receive `events_per_s`.
fn with_rate(spec: &Spec, events_per_s: f64) -> Spec {
    let streams_per_hub = spec.connections as f64 / spec.hubs.max(1) as f64;
    Spec {
        rate_per_hub: events_per_s / spec.hubs.max(1) as f64 / streams_per_hub,
        ..spec.clone()
    }
}

fn token() -> String {
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = Claims {
        tenant: TenantId::new("load").expect("tenant"),
        scopes: Scopes {
            publish: true,
            subscribe: true,
        },
        streams: None,
        exp_s: now_s + 4 * 3600,
        iat_s: None,
        kind: TokenKind::Access,
    };
    mint(&claims, KEY.as_bytes())
}

/// Where and how each kind of worker is started: (name, config, probe path, what its answer holds).
fn worker_of(kind: Kind) -> (&'static str, &'static str, &'static str, &'static str) {
    match kind {
        Kind::Herald => ("herald", "wrangler.toml", "/healthz", "\"ok\""),
        _ => (
            "baseline",
            "bench/baseline-worker/wrangler.toml",
            "/",
            "not found",
        ),
    }
}

/// Runs one phase once on one side, on a fresh server.
fn run_once(
    runtime: &tokio::runtime::Runtime,
    root: &std::path::Path,
    setup: Setup,
    kind: Kind,
    spec: &Spec,
    token: &str,
) -> Report {
    // A fresh server for every phase: wrangler dev's proxy workerd keeps sockets of finished
    // streams open (they pile up to the descriptor limit over a few phases), and a clean start
    // keeps one phase from taxing the next.
    let (name, config, probe, expect) = worker_of(kind);
    let mut server = Server::start(
        root,
        name,
        config,
        &[("HERALD_TOKEN_KEY", KEY)],
        probe,
        setup.runtime,
    );
    let port = match (setup.runtime, setup.via) {
        (Runtime::Wrangler, Via::Direct) => server
            .direct_port(probe, expect)
            .expect("the worker's own workerd socket"),
        _ => server.port,
    };
    let target = Arc::new(Target {
        kind,
        host: format!("127.0.0.1:{port}"),
        token: token.to_owned(),
    });
    // The baselines have no ids to resume from: the storm is Herald's alone.
    let spec = Spec {
        storm: spec.storm && kind == Kind::Herald,
        ..spec.clone()
    };
    eprintln!(
        "{} on {}: {} streams over {} hubs, {} ...",
        kind.name(),
        setup.describe(),
        spec.connections,
        spec.hubs,
        if spec.rate_per_hub > 0.0 {
            format!("{:.2} events/s per hub", spec.rate_per_hub)
        } else {
            "flat out".into()
        }
    );
    let prefix = format!(
        "load{}-{}-{:?}-{:?}",
        std::process::id(),
        kind.name(),
        setup.runtime,
        setup.via
    )
    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "");
    let cpu = || server.cpu_s();
    let report = runtime.block_on(load::run(target, &spec, &prefix, &cpu));
    eprintln!("  {report:?}");
    server.kill();
    if std::env::var_os("HERALD_LOAD_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(&server.dir);
    } else {
        eprintln!("  logs in {}", server.dir.display());
    }
    report
}

fn main() {
    let options = options();
    let _ = server::STATE_IN_MEMORY.set(options.storage_in_memory);
    let root: PathBuf = std::env::var_os("HERALD_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")));
    let root = root.canonicalize().expect("repo root");
    // Two worker threads: the server needs the machine's other core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let token = token();
    let reference = options
        .sides
        .iter()
        .copied()
        .find(|kind| kind.is_baseline());
    for &setup in &options.setups {
        let mut specs = phases(&options);
        let mut results: Vec<(Kind, Vec<Report>)> = options
            .sides
            .iter()
            .map(|kind| (*kind, Vec::new()))
            .collect();
        let mut ceiling = options.ceiling;
        let mut ceiling_measured = false;
        let mut ceilings = Vec::new();
        for spec in specs.iter_mut() {
            if spec.label != "max" {
                let phase_ceiling = phase_ceiling(
                    &options,
                    (
                        *ceiling.get_or_insert(CEILING_EVENTS_PER_S_DEFAULT),
                        ceiling_measured,
                    ),
                    spec,
                    |flat| {
                        let kind = reference?;
                        let report = run_once(&runtime, &root, setup, kind, flat, &token);
                        Some((kind, report.delivered_per_s))
                    },
                );
                *spec = with_rate(spec, options.load_pct / 100.0 * phase_ceiling.events_per_s);
                ceilings.push(phase_ceiling);
            }
            let spec = spec.clone();
            for run in 0..spec.runs {
                // Every other run takes the sides in reverse order, so that no side always runs
                // first (after a build, or after the phase's own flat-out probe).
                let order: Vec<Kind> = if run % 2 == 0 {
                    options.sides.clone()
                } else {
                    options.sides.iter().rev().copied().collect()
                };
                for &kind in &order {
                    let report = run_once(&runtime, &root, setup, kind, &spec, &token);
                    let Some((_, reports)) = results.iter_mut().find(|(k, _)| *k == kind) else {
                        continue;
                    };
                    if run == 0 {
                        let mut report = report;
                        report.all_runs = vec![report.delivered_per_s];
                        reports.push(report);
                    } else if let Some(best) = reports.last_mut() {
                        let mut all_runs = std::mem::take(&mut best.all_runs);
                        all_runs.push(report.delivered_per_s);
                        if report.delivered_per_s > best.delivered_per_s {
                            *best = report;
                        }
                        best.all_runs = all_runs;
                    }
                }
            }
            // The flat-out phase measured the ceiling: the reference baseline's best run.
            if spec.label == "max" && ceiling.is_none() {
                ceiling = reference
                    .and_then(|kind| results.iter().find(|(k, _)| *k == kind))
                    .and_then(|(_, reports)| reports.last())
                    .map(|report| report.delivered_per_s)
                    .filter(|rate| *rate > 0.0);
                ceiling_measured = ceiling.is_some();
            }
        }
        let sides: Vec<(Kind, &[Report])> = results
            .iter()
            .map(|(kind, reports)| (*kind, reports.as_slice()))
            .collect();
        table::print(
            &setup.describe(),
            &specs,
            &sides,
            reference,
            &ceilings,
            options.load_pct,
        );
    }
}
