//! The printed result: one row per phase and side, the storm, and the targets with met / not met.

use crate::load::{Kind, Report, Spec};

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.1}"))
}

fn rate(spec: &Spec) -> String {
    if spec.rate_per_hub > 0.0 {
        format!("{:.2}/s", spec.rate_per_hub)
    } else {
        "max".into()
    }
}

/// Server CPU microseconds per delivered event (NaN with nothing delivered).
fn us_per_event(report: &Report) -> f64 {
    report.server_cpu_pct / 100.0 / report.delivered_per_s * 1e6
}

fn loss(report: &Report) -> u64 {
    report.gaps + report.duplicates + report.missing_at_end
}

/// `candidate` over `reference` as a factor, when both are there.
fn factor(candidate: Option<f64>, reference: Option<f64>) -> Option<f64> {
    match (candidate, reference) {
        (Some(c), Some(r)) if r > 0.0 => Some(c / r),
        _ => None,
    }
}

fn times(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}x"))
}

/// The ceiling one fixed-rate phase's rate was set from.
#[derive(Debug, Clone)]
pub(crate) struct PhaseCeiling {
    pub(crate) label: String,
    /// Delivered events/s flat out.
    pub(crate) events_per_s: f64,
    /// Where it came from.
    pub(crate) source: String,
}

/// Prints one setup's results. `reference` is the baseline Herald's ratios are taken against;
/// `ceilings` the flat-out events/s each fixed-rate phase was set from, and `pct` the share used.
pub(crate) fn print(
    setup: &str,
    specs: &[Spec],
    sides: &[(Kind, &[Report])],
    reference: Option<Kind>,
    ceilings: &[PhaseCeiling],
    pct: f64,
) {
    let side = |kind: Kind| {
        sides
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, reports)| *reports)
    };
    let herald = side(Kind::Herald);
    let baseline = reference.and_then(side);
    let reference_name = reference.map_or("baseline", Kind::name);
    println!();
    println!("Load benchmark on {setup}, loopback");
    for ceiling in ceilings {
        println!(
            "{}: {pct:.0}% of a ceiling of {:.0} delivered events/s ({}) = {:.0} events/s",
            ceiling.label,
            ceiling.events_per_s,
            ceiling.source,
            ceiling.events_per_s * pct / 100.0
        );
    }
    println!("latency = publish request sent to event parsed by the subscriber; cli%/srv% = CPU of load generator / server processes (100% = one core); us/ev = server CPU microseconds per delivered event");
    println!(
        "{:<7} {:<13} {:>7} {:>5} {:>8} {:>6} {:>8} {:>8} {:>11} {:>7} {:>7} {:>7} {:>5} {:>5} {:>7} {:>5} {:>6} {:>6} {:>6} {:>6} {:>6}",
        "phase", "worker", "streams", "hubs", "rate/hub", "held", "open s", "pub/s", "delivered/s",
        "p50 ms", "p99 ms", "max ms", "gaps", "dups", "missing", "anom", "closed", "tail s", "cli%", "srv%", "us/ev"
    );
    for (index, spec) in specs.iter().enumerate() {
        for (kind, reports) in sides {
            let name = kind.name();
            let Some(report) = reports.get(index) else {
                continue;
            };
            println!(
                "{:<7} {:<13} {:>7} {:>5} {:>8} {:>6} {:>8.1} {:>8.0} {:>11.0} {:>7} {:>7} {:>7} {:>5} {:>5} {:>7} {:>5} {:>6} {:>6.1} {:>6.0} {:>6.0} {:>6.0}",
                spec.label,
                name,
                spec.connections,
                spec.hubs,
                rate(spec),
                report.held,
                report.connect_s,
                report.published_per_s,
                report.delivered_per_s,
                ms(report.p50_ms),
                ms(report.p99_ms),
                ms(report.max_ms),
                report.gaps,
                report.duplicates,
                report.missing_at_end,
                report.anomalies,
                report.server_closes,
                report.drain_s,
                report.client_cpu_pct,
                report.server_cpu_pct,
                us_per_event(report),
            );
        }
        for (kind, reports) in sides {
            if let Some(report) = reports.get(index) {
                println!(
                    "{:<7} {} publish round trip (sent to answered): p50 {} ms, p99 {} ms; caught up {:.1} s after the warm-up",
                    spec.label,
                    kind.name(),
                    ms(report.publish_p50_ms),
                    ms(report.publish_p99_ms),
                    report.settle_s
                );
            }
        }
        for (kind, reports) in sides {
            if let Some(report) = reports.get(index).filter(|r| r.server_cpu_parts.len() > 1) {
                let parts: Vec<String> = report
                    .server_cpu_parts
                    .iter()
                    .map(|(role, pct)| format!("{role} {pct:.0}%"))
                    .collect();
                println!(
                    "{:<7} {} server CPU: {}",
                    spec.label,
                    kind.name(),
                    parts.join(", ")
                );
            }
        }
        for (kind, reports) in sides {
            if let Some(report) = reports.get(index) {
                if !report.publish_failures.is_empty() {
                    let list: Vec<String> = report
                        .publish_failures
                        .iter()
                        .map(|(status, n)| match status {
                            0 => format!("{n} connection closed before an answer"),
                            2 => format!("{n} timed out after 30 s"),
                            3 => format!("{n} other transport errors"),
                            1 => format!("{n} answered with a later id"),
                            _ => format!("{n} HTTP {status}"),
                        })
                        .collect();
                    println!(
                        "{:<7} {} publish failures: {}",
                        spec.label,
                        kind.name(),
                        list.join(", ")
                    );
                }
            }
        }
        if spec.runs > 1 {
            for (kind, reports) in sides {
                if let Some(report) = reports.get(index) {
                    let runs: Vec<String> =
                        report.all_runs.iter().map(|r| format!("{r:.0}")).collect();
                    println!(
                        "{:<7} {} delivered/s per run: {} (best shown)",
                        spec.label,
                        kind.name(),
                        runs.join(", ")
                    );
                }
            }
        }
        // Herald over each baseline measured: throughput flat out, latency at a fixed rate.
        for (other, reports) in sides.iter().filter(|(k, _)| k.is_baseline()) {
            let (Some(h), Some(b)) = (herald.and_then(|r| r.get(index)), reports.get(index)) else {
                continue;
            };
            if spec.rate_per_hub > 0.0 {
                println!(
                    "{:<7} herald/{}: p50 {}, p99 {}",
                    spec.label,
                    other.name(),
                    times(factor(h.p50_ms, b.p50_ms)),
                    times(factor(h.p99_ms, b.p99_ms))
                );
            } else if b.delivered_per_s > 0.0 {
                println!(
                    "{:<7} herald/{} delivered: {:.0}%",
                    spec.label,
                    other.name(),
                    h.delivered_per_s / b.delivered_per_s * 100.0
                );
            }
        }
    }
    let mut storms = specs
        .iter()
        .zip(herald.unwrap_or_default())
        .filter_map(|(spec, report)| report.storm.as_ref().map(|s| (spec, s)));
    let storm = storms.next();
    if let Some((spec, storm)) = storm {
        println!(
            "Reconnect storm ({}, herald): {} streams dropped at once and resumed with Last-Event-ID: all reopened in {:.2} s, all caught up in {:.2} s, {} not caught up, gaps {}, duplicates {}",
            spec.label, storm.connections, storm.reopened_s, storm.recovered_s, storm.unrecovered, storm.gaps, storm.duplicates
        );
    }

    let pair = |index: usize| {
        herald
            .and_then(|r| r.get(index))
            .map(|h| (h, baseline.and_then(|b| b.get(index))))
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    let line = |target: String, measured: String, ok: bool| {
        println!("{target:<64} {measured:<40} {}", verdict(ok));
    };
    println!();
    println!("{:<64} {:<40} verdict", "target", "measured");
    for (index, spec) in specs.iter().enumerate() {
        let Some((h, b)) = pair(index) else {
            continue;
        };
        if spec.rate_per_hub <= 0.0 {
            if let Some(b) = b {
                let ratio = h.delivered_per_s / b.delivered_per_s.max(1.0);
                line(
                    format!("flat out: Herald >= 90% of {reference_name}'s delivered events/s"),
                    format!(
                        "{:.0} vs {:.0} events/s = {:.0}%",
                        h.delivered_per_s,
                        b.delivered_per_s,
                        ratio * 100.0
                    ),
                    ratio >= 0.90,
                );
            }
            continue;
        }
        let per_stream = spec.rate_per_hub;
        if let Some(b) = b {
            for (quantile, hq, bq) in [("p50", h.p50_ms, b.p50_ms), ("p99", h.p99_ms, b.p99_ms)] {
                let ratio = factor(hq, bq);
                line(
                    format!(
                        "{} ({} streams x {per_stream:.2}/s): Herald {quantile} <= 1.5x {reference_name}",
                        spec.label, spec.connections
                    ),
                    format!("{} vs {} ms = {}", ms(hq), ms(bq), times(ratio)),
                    ratio.is_some_and(|r| r <= 1.5),
                );
            }
        }
        if spec.label == "s1000" {
            let p99 = h.p99_ms.unwrap_or(f64::INFINITY);
            line(
                format!("s1000 (1,000 streams x {per_stream:.2}/s): Herald p99 < 50 ms"),
                format!("p99 {p99:.1} ms ({:.0} events/s)", h.delivered_per_s),
                p99 < 50.0 && h.delivered_per_s > 0.0,
            );
        }
        if spec.connections >= 2_000 {
            line(
                format!(
                    "at least 5,000 streams held (this run: {})",
                    spec.connections
                ),
                format!(
                    "{} held, missing {}, failures {}",
                    h.held, h.missing_at_end, h.connect_failures
                ),
                spec.connections >= 5_000 && h.held >= spec.connections && loss(h) == 0,
            );
        }
    }
    if let Some((_, storm)) = storm {
        line(
            "reconnect storm: every stream resumes, no gap, no duplicate".into(),
            format!(
                "{:.2} s to catch up, gaps {}, dups {}",
                storm.recovered_s, storm.gaps, storm.duplicates
            ),
            storm.unrecovered == 0 && storm.gaps == 0 && storm.duplicates == 0,
        );
    }
    for (kind, reports) in sides {
        let total: u64 = reports.iter().map(loss).sum();
        let anomalies: u64 = reports.iter().map(|r| r.anomalies).sum();
        let (gaps, dups, missing) = reports.iter().fold((0, 0, 0), |(g, d, m), r| {
            (g + r.gaps, d + r.duplicates, m + r.missing_at_end)
        });
        line(
            format!(
                "every {} phase: zero gaps, duplicates, missing",
                kind.name()
            ),
            format!("gaps {gaps}, dups {dups}, missing {missing}, anomalies {anomalies}"),
            total == 0 && anomalies == 0,
        );
    }
}
