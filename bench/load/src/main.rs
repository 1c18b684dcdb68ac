//! `herald-load`: the load benchmark behind `scripts/bench-load.sh`.
//!
//! Runs each phase on Herald's worker and then on the baseline worker (bench/baseline-worker: a
//! Durable Object that only fans pre-encoded frames out), each on a fresh `wrangler dev` (so both see
//! the same background load and no phase inherits another's leftovers), and prints tables with the
//! targets. `HERALD_LOAD_KEEP=1` keeps each run's wrangler logs under .e2e/. Options (all optional):
//!
//! - `--quick`: short windows and 2,000 instead of 5,000 streams, for a smoke run.
//! - `--measure-s S`: the measured window of each phase (default 10).
//! - `--streams-per-hub K`: how the streams are spread over hubs (default 100 per hub).
//! - `--sides herald,baseline,baseline-rs` (default herald,baseline): what to load. `baseline` is the
//!   baseline worker writing JS streams directly (the ceiling), `baseline-rs` the same worker
//!   streaming through a Rust `Stream` as workers-rs and Herald do.
//! - `--phases s100,s1000,s5000,max`: run only these phases.
//! - `--via direct|proxy|both` (default direct): load the workerd socket directly, wrangler dev's port
//!   (its dev proxy relays everything through Node), or each in turn.

mod http;
mod load;
mod server;
mod stats;
mod table;

use std::path::PathBuf;
use std::sync::Arc;

use herald_core::{mint, Claims, Scopes, TenantId, TokenKind};
use load::{Kind, Report, Spec, Target};
use server::Server;

/// The HMAC key the Herald instance is started with (a local, throwaway key).
const KEY: &str = "herald-load-key-0123456789abcdef0123456789abcdef";

#[derive(Debug)]
struct Options {
    quick: bool,
    measure_s: f64,
    streams_per_hub: usize,
    sides: Vec<Kind>,
    phases: Option<Vec<String>>,
    via: Vec<Via>,
}

/// How the load reaches the worker.
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
        sides: vec![Kind::Herald, Kind::Baseline],
        phases: None,
        via: vec![Via::Direct],
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
            "--via" => {
                options.via = match value().as_str() {
                    "direct" => vec![Via::Direct],
                    "proxy" => vec![Via::Proxy],
                    "both" => vec![Via::Direct, Via::Proxy],
                    other => panic!("--via direct|proxy|both, not {other}"),
                }
            }
            "--sides" => {
                options.sides = value()
                    .split(',')
                    .map(|side| match side {
                        "herald" => Kind::Herald,
                        "baseline" => Kind::Baseline,
                        "baseline-rs" => Kind::BaselineRust,
                        other => panic!("--sides takes herald,baseline,baseline-rs, not {other}"),
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

fn phases(options: &Options) -> Vec<Spec> {
    let spec = |label: &str, connections: usize, rate_per_hub: f64, storm: bool| Spec {
        label: label.into(),
        connections,
        hubs: connections.div_ceil(options.streams_per_hub.max(1)),
        rate_per_hub,
        warm_s: if options.quick { 1.0 } else { 2.0 },
        measure_s: options.measure_s,
        storm,
        runs: 1,
    };
    let big = if options.quick { 2_000 } else { 5_000 };
    let all = vec![
        // Every stream gets 10 events/s: each hub publishes 10/s to its share of the streams.
        spec("s100", 100, 10.0, false),
        spec("s1000", 1_000, 10.0, true),
        // Many streams held, 1 event/s each.
        spec(&format!("s{big}"), big, 1.0, false),
        // Flat out: one publish in flight per hub, as fast as the worker answers; best of 3.
        Spec {
            runs: if options.quick { 1 } else { 3 },
            ..spec("max", 1_000, 0.0, false)
        },
    ];
    match &options.phases {
        Some(wanted) => all
            .into_iter()
            .filter(|spec| wanted.contains(&spec.label))
            .collect(),
        None => all,
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

fn main() {
    let options = options();
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
    let specs = phases(&options);
    let token = token();
    let mut results: Vec<(Via, Kind, Vec<Report>)> = Vec::new();
    for &via in &options.via {
        for kind in &options.sides {
            results.push((via, *kind, Vec::new()));
        }
        for spec in &specs {
            for (run, &kind) in
                (0..spec.runs).flat_map(|run| options.sides.iter().map(move |kind| (run, kind)))
            {
                // A fresh server for every phase: wrangler dev's proxy workerd keeps sockets of
                // finished streams open (they pile up to the descriptor limit over a few phases),
                // and a clean start keeps one phase from taxing the next.
                let (name, config, probe, expect) = match kind {
                    Kind::Herald => ("herald", "wrangler.toml", "/healthz", "\"ok\""),
                    Kind::Baseline | Kind::BaselineRust => (
                        "baseline",
                        "bench/baseline-worker/wrangler.toml",
                        "/",
                        "not found",
                    ),
                };
                let mut server =
                    Server::start(&root, name, config, &[("HERALD_TOKEN_KEY", KEY)], probe);
                let port = match via {
                    Via::Proxy => server.port,
                    Via::Direct => server
                        .direct_port(probe, expect)
                        .expect("the worker's own workerd socket"),
                };
                let target = Arc::new(Target {
                    kind,
                    host: format!("127.0.0.1:{port}"),
                    token: token.clone(),
                });
                // The baseline has no ids to resume from: the storm is Herald's alone.
                let spec = Spec {
                    storm: spec.storm && kind == Kind::Herald,
                    ..spec.clone()
                };
                eprintln!(
                    "{} via {}: {} streams over {} hubs, {} ...",
                    kind.name(),
                    via.as_str(),
                    spec.connections,
                    spec.hubs,
                    if spec.rate_per_hub > 0.0 {
                        format!("{} events/s per hub", spec.rate_per_hub)
                    } else {
                        "flat out".into()
                    }
                );
                let prefix = format!("load{}-{}-{:?}", std::process::id(), kind.name(), via);
                let cpu = || server.cpu_s();
                let report = runtime.block_on(load::run(target, &spec, &prefix, &cpu));
                eprintln!("  {report:?}");
                server.kill();
                if std::env::var_os("HERALD_LOAD_KEEP").is_none() {
                    let _ = std::fs::remove_dir_all(&server.dir);
                } else {
                    eprintln!("  wrangler logs in {}", server.dir.display());
                }
                if let Some((_, _, reports)) =
                    results.iter_mut().find(|(v, k, _)| *v == via && *k == kind)
                {
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
        }
    }
    for &via in &options.via {
        let sides: Vec<(Kind, &[Report])> = results
            .iter()
            .filter(|(v, _, _)| *v == via)
            .map(|(_, kind, reports)| (*kind, reports.as_slice()))
            .collect();
        table::print(via.as_str(), &specs, &sides);
    }
}
