//! The printed result: one row per phase and side, the storm, and the targets with met / not met.

use crate::load::{Kind, Report, Spec};

fn ms(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.1}"))
}

fn rate(spec: &Spec) -> String {
    if spec.rate_per_hub > 0.0 {
        format!("{}/s", spec.rate_per_hub)
    } else {
        "max".into()
    }
}

fn loss(report: &Report) -> u64 {
    report.gaps + report.duplicates + report.missing_at_end
}

pub(crate) fn print(via: &str, specs: &[Spec], sides: &[(Kind, &[Report])]) {
    let side = |kind: Kind| {
        sides
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, reports)| *reports)
    };
    let herald = side(Kind::Herald);
    let baseline = side(Kind::Baseline);
    println!();
    println!("Load benchmark under wrangler dev, loopback, load sent to the {via}");
    println!("latency = publish request sent to event parsed by the subscriber; cli%/srv% = CPU of load generator / wrangler+workerd (100% = one core)");
    println!(
        "{:<7} {:<11} {:>7} {:>5} {:>8} {:>6} {:>8} {:>8} {:>11} {:>7} {:>7} {:>7} {:>5} {:>5} {:>7} {:>5} {:>6} {:>6} {:>6} {:>6}",
        "phase", "worker", "streams", "hubs", "rate/hub", "held", "open s", "pub/s", "delivered/s",
        "p50 ms", "p99 ms", "max ms", "gaps", "dups", "missing", "anom", "closed", "tail s", "cli%", "srv%"
    );
    for (index, spec) in specs.iter().enumerate() {
        for (kind, reports) in sides {
            let name = kind.name();
            let Some(report) = reports.get(index) else {
                continue;
            };
            println!(
                "{:<7} {:<11} {:>7} {:>5} {:>8} {:>6} {:>8.1} {:>8.0} {:>11.0} {:>7} {:>7} {:>7} {:>5} {:>5} {:>7} {:>5} {:>6} {:>6.1} {:>6.0} {:>6.0}",
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
            );
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
        for other in [Kind::Baseline, Kind::BaselineRust] {
            if let (Some(h), Some(b)) = (
                herald.and_then(|r| r.get(index)),
                side(other).and_then(|r| r.get(index)),
            ) {
                if b.delivered_per_s > 0.0 {
                    println!(
                        "{:<7} herald/{} delivered: {:.0}%",
                        spec.label,
                        other.name(),
                        h.delivered_per_s / b.delivered_per_s * 100.0
                    );
                }
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

    let find = |label_prefix: &str| {
        specs
            .iter()
            .position(|s| s.label.starts_with(label_prefix))
            .and_then(|i| herald.and_then(|r| r.get(i)).map(|r| (i, r)))
    };
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!();
    println!("{:<58} {:<36} verdict", "target", "measured");
    if let Some((_, r)) = find("s1000") {
        let p99 = r.p99_ms.unwrap_or(f64::INFINITY);
        println!(
            "{:<58} {:<36} {}",
            "1,000 streams at 10 events/s each: p99 < 50 ms",
            format!("p99 {p99:.1} ms ({:.0} events/s)", r.delivered_per_s),
            verdict(p99 < 50.0 && r.delivered_per_s > 0.0)
        );
        println!(
            "{:<58} {:<36} {}",
            "1,000 streams at 10 events/s each: zero loss",
            format!("gaps+dups+missing {}, anomalies {}", loss(r), r.anomalies),
            verdict(loss(r) == 0 && r.anomalies == 0)
        );
    }
    if let Some((i, r)) = find(&format!("s{}", specs.get(2).map_or(0, |s| s.connections))) {
        let wanted = specs[i].connections;
        println!(
            "{:<58} {:<36} {}",
            format!("at least 5,000 streams held (this run: {wanted})"),
            format!(
                "{} held, missing {}, failures {}",
                r.held, r.missing_at_end, r.connect_failures
            ),
            verdict(wanted >= 5_000 && r.held >= wanted && loss(r) == 0)
        );
    }
    if let (Some((i, h)), Some(b)) = (find("max"), baseline) {
        if let Some(b) = b.get(i) {
            let ratio = h.delivered_per_s / b.delivered_per_s.max(1.0);
            println!(
                "{:<58} {:<36} {}",
                "delivered throughput (flat out) >= 70% of the baseline's",
                format!(
                    "{:.0} vs {:.0} events/s = {:.0}%",
                    h.delivered_per_s,
                    b.delivered_per_s,
                    ratio * 100.0
                ),
                verdict(ratio >= 0.70)
            );
        }
    }
    if let Some((_, storm)) = storm {
        println!(
            "{:<58} {:<36} {}",
            "reconnect storm: every stream resumes, no gap, no duplicate",
            format!(
                "{:.2} s to catch up, gaps {}, dups {}",
                storm.recovered_s, storm.gaps, storm.duplicates
            ),
            verdict(storm.unrecovered == 0 && storm.gaps == 0 && storm.duplicates == 0)
        );
    }
    if let Some(reports) = herald {
        let total: u64 = reports.iter().map(loss).sum();
        println!(
            "{:<58} {:<36} {}",
            "every Herald phase: zero gaps, duplicates, missing",
            format!("{total} in all"),
            verdict(total == 0)
        );
    }
}
