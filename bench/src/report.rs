//! The printed table and the target verdicts.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Group {
    Encode,
    Parse,
}

/// What a row is compared as: Herald's headline case, another way of using Herald (shown, not
/// judged), a peer crate, or a floor no real implementation can beat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Herald,
    HeraldVariant,
    Peer,
    Floor,
    /// A floor shown for context, not used by the targets.
    FloorInfo,
}

pub(crate) struct Case<'a> {
    pub(crate) name: &'a str,
    pub(crate) group: Group,
    pub(crate) role: Role,
    pub(crate) best: Duration,
    /// Wire bytes the case produced (encoders) or consumed (parsers).
    pub(crate) bytes: u64,
}

pub(crate) struct Setup {
    pub(crate) events: u64,
    pub(crate) stream_bytes: u64,
    pub(crate) chunk_bytes: usize,
    pub(crate) rounds: usize,
    pub(crate) notes: Vec<String>,
}

impl Case<'_> {
    fn events_per_s(&self, events: u64) -> f64 {
        events as f64 / self.best.as_secs_f64()
    }
}

/// Milliseconds, or microseconds for the short runs of a cache-hot corpus.
fn duration(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.1}us", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.1}ms", d.as_secs_f64() * 1e3)
    }
}

fn millions(x: f64) -> String {
    format!("{:.2} M", x / 1e6)
}

pub(crate) fn print(setup: &Setup, cases: &[Case<'_>]) {
    let opt_level = env!("HERALD_BENCH_OPT_LEVEL");
    println!();
    println!(
        "Herald engine benchmark: {} events, {:.1} MB reference stream ({:.0} B/frame); parsers fed {} KiB chunks; best of {} runs",
        setup.events,
        setup.stream_bytes as f64 / 1e6,
        setup.stream_bytes as f64 / setup.events as f64,
        setup.chunk_bytes / 1024,
        setup.rounds,
    );
    println!("build: opt-level {opt_level}");
    if opt_level != "3" {
        println!(
            "WARNING: opt-level {opt_level}: this workspace's release profile is tuned for Wasm size; for speed numbers run \
             `cargo run --profile bench -p herald-bench` (scripts/bench-core.sh)"
        );
    }
    for group in [Group::Encode, Group::Parse] {
        let rows: Vec<&Case<'_>> = cases.iter().filter(|c| c.group == group).collect();
        if rows.is_empty() {
            continue;
        }
        let herald_rate = rows
            .iter()
            .find(|c| c.role == Role::Herald)
            .map(|c| c.events_per_s(setup.events));
        println!();
        println!(
            "{:<48} {:>11} {:>9} {:>10}  herald vs this",
            if group == Group::Encode {
                "ENCODE"
            } else {
                "PARSE"
            },
            "events/s",
            "MB/s",
            "best",
        );
        for case in &rows {
            let rate = case.events_per_s(setup.events);
            let ratio = herald_rate.map_or(f64::NAN, |h| h / rate);
            let versus = match case.role {
                _ if herald_rate.is_none() => "-".to_string(),
                Role::Herald => "-".to_string(),
                Role::Floor | Role::FloorInfo => format!("{:.0}% of floor", 100.0 * ratio),
                Role::Peer => format!("{ratio:.2}x"),
                Role::HeraldVariant => format!("{ratio:.2}x (same crate, other API)"),
            };
            println!(
                "{:<48} {:>11} {:>9.0} {:>10}  {versus}",
                case.name,
                millions(rate),
                case.bytes as f64 / 1e6 / case.best.as_secs_f64(),
                duration(case.best),
            );
        }
    }

    println!();
    println!("TARGETS");
    let best_of = |group, role| {
        cases
            .iter()
            .filter(|c| c.group == group && c.role == role)
            .min_by_key(|c| c.best)
    };
    let verdict = |met: bool| if met { "MET" } else { "NOT MET" };
    let peer_name = |c: &Case<'_>| c.name.split_whitespace().next().unwrap_or("").to_string();
    let herald_enc = best_of(Group::Encode, Role::Herald);
    if let (Some(enc), Some(peer)) = (herald_enc, best_of(Group::Encode, Role::Peer)) {
        let speedup = peer.best.as_secs_f64() / enc.best.as_secs_f64();
        println!(
            "  encoder >= 3x the fastest peer encoder ({}): {speedup:.2}x  {}",
            peer_name(peer),
            verdict(speedup >= 3.0)
        );
    }
    if let (Some(enc), Some(floor)) = (herald_enc, best_of(Group::Encode, Role::Floor)) {
        let share = floor.best.as_secs_f64() / enc.best.as_secs_f64();
        println!(
            "  encoder >= 50% of memcpy: {:.0}%  {}",
            100.0 * share,
            verdict(share >= 0.5)
        );
    }
    let herald_par = best_of(Group::Parse, Role::Herald);
    if let (Some(par), Some(peer)) = (herald_par, best_of(Group::Parse, Role::Peer)) {
        let speedup = peer.best.as_secs_f64() / par.best.as_secs_f64();
        println!(
            "  parser >= 2x the fastest peer parser ({}): {speedup:.2}x  {}",
            peer_name(peer),
            verdict(speedup >= 2.0)
        );
    }
    if let (Some(par), Some(floor)) = (herald_par, best_of(Group::Parse, Role::Floor)) {
        let share = floor.best.as_secs_f64() / par.best.as_secs_f64();
        println!(
            "  parser >= 30% of the memchr line scan: {:.0}%  {}",
            100.0 * share,
            verdict(share >= 0.3)
        );
    }

    println!();
    println!(
        "VERIFIED (untimed, output parsed back by eventsource-stream and compared with the corpus)"
    );
    for note in &setup.notes {
        println!("  {note}");
    }
    println!("  every timed run: frame and byte counts (encoders), event count and data+id+event bytes (parsers) checked");
}
