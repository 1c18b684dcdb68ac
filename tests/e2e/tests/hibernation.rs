//! The hub sleeps: the Worker holds each SSE response and the Hub Durable Object, which holds only
//! hibernatable WebSockets, is evicted while idle. These tests watch `hub_started_ms` (when the
//! Hub's in-memory instance started) across idle periods, with a subscriber still connected.
//!
//! workerd evicts an idle object about 10 s after its last request or event; the tests leave 25 s
//! of silence and touch the hub in nothing meanwhile (a stats request would wake it).
//! Figures are printed to stderr; run with `-- --nocapture` to see them.

use std::thread;
use std::time::{Duration, Instant};

use herald_e2e::faults::{split_id, wait_subscribers, Quiet};
use herald_e2e::{full_token, publish, stats, unique, Msg, Wrangler};

const WAIT: Duration = Duration::from_secs(30);
/// Silence long enough for workerd to evict an idle object.
const IDLE: Duration = Duration::from_secs(25);

fn started_ms(wrangler: &Wrangler, stream: &str, token: &str) -> u64 {
    stats(&wrangler.base, stream, token)["hub_started_ms"]
        .as_u64()
        .expect("hub_started_ms is a number")
}

fn seqs(msgs: &[Msg]) -> Vec<u64> {
    msgs.iter().map(|m| split_id(&m.id).1).collect()
}

fn batch(numbers: std::ops::Range<u64>) -> String {
    let events: Vec<String> = numbers
        .map(|n| format!(r#"{{"event":"tick","data":{{"n":{n}}}}}"#))
        .collect();
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

#[test]
fn a_hub_with_an_open_subscriber_hibernates_and_the_next_publish_reaches_it() {
    // Heartbeats every 2 s keep the SSE response busy (the Worker sends them; the Hub must not
    // wake).
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "2000")]);
    let token = full_token("acme");
    let stream = unique("sleepy");
    let sub = wrangler.subscribe_stream(&stream, &token, &[]);
    let first = publish(&wrangler.base, &stream, &token, &batch(1..3));
    assert_eq!(seqs(&sub.take(2, WAIT)), [1, 2]);
    let before = stats(&wrangler.base, &stream, &token);
    assert_eq!(before["subscribers"], 1);
    let before_ms = before["hub_started_ms"].as_u64().expect("hub_started_ms");

    // Silence: nothing reaches the hub, while the subscriber stays connected and gets heartbeats.
    let idle_from = Instant::now();
    let mut heartbeats = 0;
    while idle_from.elapsed() < IDLE {
        if let Some(msg) = sub.next(Duration::from_secs(1)) {
            panic!("an event during the silence: {msg:?}");
        }
        heartbeats += 1;
    }
    let raw = String::from_utf8_lossy(&sub.raw_bytes()).into_owned();
    assert!(
        raw.matches(": heartbeat").count() >= 5,
        "the Worker kept the stream alive with heartbeats during the silence: {raw:?}"
    );

    let next = publish(&wrangler.base, &stream, &token, &batch(3..5));
    let got = sub.take(2, WAIT);
    assert_eq!(seqs(&got), [3, 4], "no gap, no duplicate after the wake");
    assert_eq!(got[0].id, next[0]);
    assert_eq!(split_id(&got[0].id).0, split_id(&first[0]).0, "same epoch");
    let after = stats(&wrangler.base, &stream, &token);
    let after_ms = after["hub_started_ms"].as_u64().expect("hub_started_ms");
    eprintln!(
        "hub instance started at {before_ms}, then at {after_ms} after {:?} of silence ({heartbeats} s polled)",
        IDLE
    );
    assert!(
        after_ms > before_ms,
        "the hub was evicted while idle with a subscriber attached (started_ms {before_ms} -> {after_ms})"
    );
    assert_eq!(
        after["subscribers"], 1,
        "the socket survived the hibernation"
    );
    assert_eq!(
        after["log_loaded"], false,
        "a woken hub publishes without reading its log"
    );
}

#[test]
fn subscriber_counts_return_to_zero_at_once_after_abrupt_disconnects() {
    // The Worker closes its Hub socket when the client's request is aborted (production) or, where
    // the runtime reports a gone client only on a write (wrangler dev's proxy), at the next write:
    // short heartbeats make that write come soon.
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "250")]);
    let token = full_token("acme");
    let stream = unique("vanish");
    const CLIENTS: u64 = 20;
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = Quiet::open(
            &wrangler.base,
            &format!("/v1/streams/{stream}"),
            Some(&token),
            &[],
        );
        assert_eq!(client.read_status(WAIT), 200);
        clients.push(client);
    }
    wait_subscribers(&wrangler.base, &stream, &token, CLIENTS, WAIT)
        .unwrap_or_else(|seen| panic!("{seen} subscribers counted, {CLIENTS} open"));
    let dropped = Instant::now();
    for client in clients {
        client.reset();
    }
    let took = wait_subscribers(&wrangler.base, &stream, &token, 0, WAIT)
        .unwrap_or_else(|left| panic!("{left} subscribers still counted {WAIT:?} after the drop"));
    eprintln!(
        "{CLIENTS} abrupt disconnects: count 0 after {took:?} ({:?} since the first reset)",
        dropped.elapsed()
    );
    assert!(
        took <= Duration::from_secs(1),
        "the count reached 0 only after {took:?}"
    );
}

#[test]
fn resume_across_hibernation_and_restart_loses_nothing() {
    let mut wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("resume");
    let sub = wrangler.subscribe_stream(&stream, &token, &[]);
    publish(&wrangler.base, &stream, &token, &batch(1..6));
    let seen = sub.take(5, WAIT);
    let last = seen[4].id.clone();
    sub.abort();

    // The hub sleeps; events arrive while nobody listens.
    let asleep_ms = started_ms(&wrangler, &stream, &token);
    thread::sleep(IDLE);
    publish(&wrangler.base, &stream, &token, &batch(6..11));
    let woke = stats(&wrangler.base, &stream, &token);
    assert!(woke["hub_started_ms"].as_u64() > Some(asleep_ms), "{woke}");
    assert_eq!(woke["log_loaded"], false, "{woke}");

    let sub = wrangler.subscribe_stream(&stream, &token, &[("Last-Event-ID", &last)]);
    let resumed = sub.take(5, WAIT);
    assert_eq!(
        seqs(&resumed),
        [6, 7, 8, 9, 10],
        "resume across hibernation"
    );
    assert_eq!(
        stats(&wrangler.base, &stream, &token)["log_loaded"],
        true,
        "the replay read the log"
    );
    let last = resumed[4].id.clone();
    drop(sub);

    // A restart of the runtime: everything in memory is gone, storage is not.
    wrangler.restart();
    publish(&wrangler.base, &stream, &token, &batch(11..13));
    let sub = wrangler.subscribe_stream(&stream, &token, &[("Last-Event-ID", &last)]);
    assert_eq!(
        seqs(&sub.take(2, WAIT)),
        [11, 12],
        "resume across a restart"
    );
    assert!(
        sub.next_event(Duration::from_millis(500)).is_none(),
        "nothing more"
    );
}
