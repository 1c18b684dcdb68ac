//! Faults against the real runtime: a `wrangler dev` crash and restart, a subscriber that stops
//! reading, a thousand clients that vanish, a bad batch mid-stream, two tenants on one connection
//! id. The invariant throughout: nothing lost, nothing duplicated, nothing leaked.
//!
//! Figures (times, byte counts) are printed to stderr; run with `-- --nocapture` to see them.

use std::time::{Duration, Instant};

use herald_core::Scope;
use herald_e2e::faults::{
    number_of, numbered_batch, split_id, subscribers, take_events, try_publish, wait_subscribers,
    Quiet,
};
use herald_e2e::{full_token, publish, request, stats, token, unique, Msg, Subscription, Wrangler};

/// Generous: the machine is small and shared.
const WAIT: Duration = Duration::from_secs(30);

/// Every message until the stream ends (the reader thread sees EOF or a reset).
fn drain_until_end(sub: &Subscription) -> Vec<Msg> {
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while let Some(msg) = sub.next(Duration::from_secs(5)) {
        got.push(msg);
        assert!(
            Instant::now() < deadline,
            "stream did not end after {} messages",
            got.len()
        );
    }
    got
}

/// Asserts that `msgs` are exactly the events with seq `first..=last` of `epoch`, each carrying
/// `n == seq` (the publishers below number events by their expected seq).
fn assert_contiguous(msgs: &[Msg], epoch: u64, first: u64, last: u64, who: &str) {
    let seqs: Vec<u64> = msgs
        .iter()
        .map(|m| {
            let (e, seq) = split_id(&m.id);
            assert_eq!(e, epoch, "{who}: epoch changed at {}", m.id);
            assert_eq!(
                number_of(m),
                seq,
                "{who}: event {} is not the one published as seq {seq}",
                m.id
            );
            seq
        })
        .collect();
    let want: Vec<u64> = (first..=last).collect();
    if seqs != want {
        let at = seqs.iter().zip(&want).position(|(a, b)| a != b);
        panic!(
            "{who}: not exactly seqs {first}..={last}: got {} events, first difference at index {at:?} ({:?})",
            seqs.len(),
            at.map(|i| (seqs[i], want[i]))
        );
    }
}

/// Fault 1: three subscribers on two streams; `wrangler dev` is killed (the whole process group,
/// SIGKILL) while a publisher is still publishing, and started again on the same storage. Every
/// acknowledged event survives with its epoch; each client resumes from the last id it got and ends
/// up with every stored event exactly once, in order, whether it arrived live, by replay after the
/// restart, or live again.
#[test]
fn restart_mid_stream_loses_and_duplicates_nothing() {
    let mut wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let streams = [unique("restart-a"), unique("restart-b")];
    // Two subscribers share stream a, one reads stream b.
    let placement = [0usize, 0, 1];
    let subs: Vec<Subscription> = placement
        .iter()
        .map(|&s| wrangler.subscribe_stream(&streams[s], &token, &[]))
        .collect();

    const CALM: u64 = 20; // published and seen before the publisher starts
    const OFFLINE: u64 = 15; // published after the restart, before the clients are back
    const LIVE: u64 = 15; // published after they are back
    let mut epochs = Vec::new();
    for stream in &streams {
        let ids = publish(
            &wrangler.base,
            stream,
            &token,
            &numbered_batch("tick", 1..CALM + 1, 16),
        );
        let (epoch, first) = split_id(&ids[0]);
        assert_eq!(first, 1);
        epochs.push(epoch);
    }
    for (sub, &s) in subs.iter().zip(&placement) {
        assert_contiguous(
            &take_events(sub, CALM as usize, WAIT),
            epochs[s],
            1,
            CALM,
            "calm phase",
        );
    }

    // The publisher: one event a request, alternating streams, numbered by the seq it should get,
    // until a request fails because the server is gone. It returns the last acknowledged number of
    // each stream.
    let publisher = {
        let (base, token, streams) = (wrangler.base.clone(), token.clone(), streams.clone());
        std::thread::spawn(move || {
            let mut acked = [CALM; 2];
            for n in CALM + 1.. {
                for (s, stream) in streams.iter().enumerate() {
                    match try_publish(&base, stream, &token, &numbered_batch("tick", n..n + 1, 16))
                    {
                        Some(ids) => {
                            assert_eq!(split_id(&ids[0]).1, n, "acked seq");
                            acked[s] = n;
                        }
                        None => return acked,
                    }
                }
            }
            unreachable!("the loop ends when the server dies")
        })
    };
    // Kill while the publisher runs, once it is well under way.
    let deadline = Instant::now() + WAIT;
    let progress = |wrangler: &Wrangler| {
        let st = stats(&wrangler.base, &streams[1], &token);
        split_id(st["last_id"].as_str().expect("last_id")).1
    };
    while progress(&wrangler) < CALM + 20 {
        assert!(Instant::now() < deadline, "the publisher makes no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Instant::now();
    wrangler.kill();
    let acked = publisher.join().expect("publisher");
    let mut cursors = Vec::new();
    for (i, (sub, &s)) in subs.iter().zip(&placement).enumerate() {
        let got = drain_until_end(sub);
        let last = got.last().map_or(CALM, |m| split_id(&m.id).1);
        assert_contiguous(
            &got,
            epochs[s],
            CALM + 1,
            last,
            &format!("subscriber {i} before the kill"),
        );
        eprintln!("subscriber {i}: had seq {last} (publisher's last ack on its stream: {}) when wrangler died", acked[s]);
        cursors.push(last);
    }
    wrangler.restart();
    eprintln!("kill and restart took {:?}", killed.elapsed());

    // What storage kept: every acknowledged event, and perhaps the one whose answer the kill cut
    // off.
    let mut totals = Vec::new();
    for (s, stream) in streams.iter().enumerate() {
        let st = stats(&wrangler.base, stream, &token);
        assert_eq!(st["subscribers"], 0, "the old connections are gone");
        let (epoch, stored) = split_id(st["last_id"].as_str().expect("last_id"));
        assert_eq!(epoch, epochs[s], "the epoch changed: storage was not kept");
        assert!(
            stored == acked[s] || stored == acked[s] + 1,
            "stream {s}: {stored} stored, {} acknowledged",
            acked[s]
        );
        let first = stored + 1;
        let ids = publish(
            &wrangler.base,
            stream,
            &token,
            &numbered_batch("tick", first..first + OFFLINE, 16),
        );
        assert_eq!(
            split_id(&ids[0]),
            (epochs[s], first),
            "numbering continues after the restart"
        );
        totals.push(stored + OFFLINE + LIVE);
    }
    let resumed: Vec<Subscription> = placement
        .iter()
        .zip(&cursors)
        .map(|(&s, last)| {
            let last_id = format!("{}-{last}", epochs[s]);
            wrangler.subscribe_stream(&streams[s], &token, &[("Last-Event-ID", &last_id)])
        })
        .collect();
    for (s, stream) in streams.iter().enumerate() {
        let first = totals[s] - LIVE + 1;
        let ids = publish(
            &wrangler.base,
            stream,
            &token,
            &numbered_batch("tick", first..first + LIVE, 16),
        );
        assert_eq!(split_id(&ids[0]), (epochs[s], first));
    }
    for (i, ((sub, &s), &last)) in resumed.iter().zip(&placement).zip(&cursors).enumerate() {
        let total = totals[s];
        let rest = take_events(sub, (total - last) as usize, WAIT);
        assert_contiguous(
            &rest,
            epochs[s],
            last + 1,
            total,
            &format!("subscriber {i} after resume"),
        );
        // Nothing more: a duplicate would arrive right behind the last event.
        assert_eq!(
            sub.next_event(Duration::from_secs(1)),
            None,
            "subscriber {i}: an extra event"
        );
    }
}

/// Fault 2: One subscriber stops reading while three read normally. The three get everything; the
/// hub stays responsive with a bounded subscriber list; the slow one, once it reads, finds a
/// gap-free prefix and a final `lagging` naming where to resume, and resuming from there gets the
/// rest.
#[test]
fn slow_consumer_is_cut_with_lagging_and_resumes_without_gap() {
    // A small queue and large events make the slow subscriber overflow after a few MiB (most of
    // which the TCP buffers absorb); the log is large enough to hold everything for the resume.
    let wrangler = Wrangler::start(&[
        ("HERALD_QUEUE_FRAMES_MAX", "64"),
        ("HERALD_QUEUE_BYTES_MAX", "262144"),
        ("HERALD_LOG_EVENTS_MAX", "10000"),
        ("HERALD_LOG_BYTES_MAX", "67108864"),
    ]);
    let token = full_token("acme");
    let stream = unique("slow");
    let slow = Quiet::open(
        &wrangler.base,
        &format!("/v1/streams/{stream}"),
        Some(&token),
        &[],
    );
    let readers: Vec<Subscription> = (0..3)
        .map(|_| wrangler.subscribe_stream(&stream, &token, &[]))
        .collect();
    wait_subscribers(&wrangler.base, &stream, &token, 4, WAIT).expect("four subscribers");

    const PAD: usize = 8000;
    const BATCH: u64 = 8; // 64 KiB a request: well inside the 256 KiB queue of a reader that keeps up
    const TOTAL: u64 = 4096; // about 32 MiB
    let mut epoch = 0;
    let mut slowest_stats = Duration::ZERO;
    let started = Instant::now();
    for first in (1..=TOTAL).step_by(BATCH as usize) {
        let ids = publish(
            &wrangler.base,
            &stream,
            &token,
            &numbered_batch("chunk", first..first + BATCH, PAD),
        );
        epoch = split_id(&ids[0]).0;
        assert_eq!(split_id(&ids[0]).1, first);
        // The hub keeps answering, and its list holds the readers and at most the slow one.
        let asked = Instant::now();
        let count = subscribers(&wrangler.base, &stream, &token);
        slowest_stats = slowest_stats.max(asked.elapsed());
        assert!((3..=4).contains(&count), "subscriber count {count}");
    }
    eprintln!(
        "published {TOTAL} events of {PAD} B in {:?}; slowest stats answer {slowest_stats:?}",
        started.elapsed()
    );
    for (i, reader) in readers.iter().enumerate() {
        let got = take_events(reader, TOTAL as usize, WAIT);
        assert_contiguous(&got, epoch, 1, TOTAL, &format!("reader {i}"));
    }

    let drained = slow.read_to_end(Duration::from_secs(10));
    assert_eq!(drained.status, 200);
    eprintln!(
        "slow subscriber read {} body bytes, {} messages, last {:?}, ended {}",
        drained.body_bytes,
        drained.messages.len(),
        drained.messages.last().map(|m| (&m.event, &m.id)),
        drained.ended
    );
    assert!(drained.ended, "the slow subscriber's stream was not closed");
    let (last, events) = drained
        .messages
        .split_last()
        .expect("the slow subscriber got nothing");
    assert_eq!(
        last.event, "lagging",
        "the stream must end with lagging, got {} {}",
        last.event, last.id
    );
    let resume: serde_json::Value = serde_json::from_str(&last.data).expect("lagging data is JSON");
    let resume = resume["resume"]
        .as_str()
        .expect("lagging names resume")
        .to_string();
    let got = events.len() as u64;
    assert_contiguous(events, epoch, 1, got, "slow subscriber's prefix");
    assert_eq!(
        resume,
        format!("{epoch}-{got}"),
        "resume names the last event delivered"
    );
    assert!(got < TOTAL, "the slow subscriber was never behind");
    eprintln!(
        "slow subscriber: {got} events ({} body bytes) delivered before lagging; resume {resume}",
        drained.body_bytes
    );
    wait_subscribers(&wrangler.base, &stream, &token, 3, WAIT)
        .expect("the slow subscriber is removed");

    // Resume like EventSource: reconnect with the last id. The queue is smaller than the remaining
    // log, so a replay may itself end in `lagging`; each hop must continue exactly where it
    // stopped.
    let mut cursor = resume;
    let mut rest = Vec::new();
    let mut hops = 0;
    while rest.len() < (TOTAL - got) as usize {
        hops += 1;
        assert!(hops <= TOTAL, "resume makes no progress");
        let sub = wrangler.subscribe_stream(&stream, &token, &[("Last-Event-ID", &cursor)]);
        loop {
            let msg = sub
                .next_event(WAIT)
                .unwrap_or_else(|| panic!("resume from {cursor} stalled"));
            assert_ne!(
                msg.event, "reset",
                "resume from {cursor} found a gap: {}",
                msg.data
            );
            if msg.event == "lagging" {
                let data: serde_json::Value = serde_json::from_str(&msg.data).expect("JSON");
                let named = data["resume"].as_str().expect("resume").to_string();
                assert_eq!(
                    named,
                    rest.last().map_or(cursor.clone(), |m: &Msg| m.id.clone())
                );
                cursor = named;
                break;
            }
            rest.push(msg);
            if rest.len() == (TOTAL - got) as usize {
                break;
            }
        }
    }
    assert_contiguous(&rest, epoch, got + 1, TOTAL, "resumed rest");
    eprintln!(
        "resume delivered the remaining {} events in {hops} connection(s)",
        rest.len()
    );
}

/// Fault 3: A thousand subscribers vanish without a goodbye; the hubs notice at their next write (a
/// heartbeat) and the subscriber count returns to zero.
///
/// The heartbeat is 2 s rather than 500 ms: a thousand streams at 500 ms are 2,000 writes a second
/// through workerd, which on a loaded two-core machine starved new subscribes for over 30 s.
#[test]
fn thousand_abrupt_disconnects_are_all_removed() {
    // One token stands for a thousand clients here: 250 per stream, past the default cap of 100
    // subscribers per credential.
    let wrangler = Wrangler::start(&[
        ("HERALD_HEARTBEAT_MS", "2000"),
        ("HERALD_SUBSCRIBERS_PER_CREDENTIAL_MAX", "1000"),
    ]);
    let token = full_token("acme");
    let streams: Vec<String> = (0..4).map(|i| unique(&format!("crowd{i}"))).collect();
    const CLIENTS: usize = 1000;
    let opened = Instant::now();
    let mut clients: Vec<Quiet> = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let stream = &streams[i % streams.len()];
        let mut client = Quiet::open(
            &wrangler.base,
            &format!("/v1/streams/{stream}"),
            Some(&token),
            &[],
        );
        let asked = Instant::now();
        let status = client.read_status(Duration::from_secs(120));
        assert_eq!(
            status,
            200,
            "client {i} after {:?} (opening took {:?} so far)",
            asked.elapsed(),
            opened.elapsed()
        );
        clients.push(client);
    }
    eprintln!("opened {CLIENTS} subscriptions in {:?}", opened.elapsed());
    let counts: Vec<u64> = streams
        .iter()
        .map(|s| subscribers(&wrangler.base, s, &token))
        .collect();
    if counts.iter().sum::<u64>() != CLIENTS as u64 {
        let closed: Vec<usize> = clients
            .iter_mut()
            .enumerate()
            .filter_map(|(i, c)| c.closed_by_server().then_some(i))
            .collect();
        panic!(
            "stats count {counts:?} subscribers for {CLIENTS} open subscriptions; \
             the server closed {} of them: {closed:?}",
            closed.len()
        );
    }

    let dropped = Instant::now();
    for client in clients {
        client.reset();
    }
    let mut slowest = Duration::ZERO;
    for stream in &streams {
        match wait_subscribers(&wrangler.base, stream, &token, 0, Duration::from_secs(120)) {
            Ok(_) => slowest = dropped.elapsed().max(slowest),
            Err(left) => panic!("{stream} still counts {left} subscribers 120 s after the drop"),
        }
    }
    eprintln!("{CLIENTS} abrupt disconnects: subscriber count 0 after {slowest:?}");

    // The hubs still serve.
    let sub = wrangler.subscribe_stream(&streams[0], &token, &[]);
    let ids = publish(
        &wrangler.base,
        &streams[0],
        &token,
        r#"{"event":"after","data":1}"#,
    );
    assert_eq!(take_events(&sub, 1, WAIT)[0].id, ids[0]);
}

/// Fault 4: A batch with one bad event among good ones is refused whole: nothing stored, nothing
/// sent.
#[test]
fn bad_batch_mid_stream_stores_and_sends_nothing() {
    let wrangler = Wrangler::start(&[("HERALD_EVENT_BYTES_MAX", "1024")]);
    let token = full_token("acme");
    let stream = unique("batch");
    let sub = wrangler.subscribe_stream(&stream, &token, &[]);
    let ids = publish(
        &wrangler.base,
        &stream,
        &token,
        &numbered_batch("good", 1..4, 0),
    );
    let epoch = split_id(&ids[0]).0;
    assert_contiguous(
        &take_events(&sub, 3, WAIT),
        epoch,
        1,
        3,
        "before the bad batches",
    );

    let good = |n: u64| format!(r#"{{"event":"good","data":{{"n":{n}}}}}"#);
    let big = "y".repeat(2000);
    let bad_batches = [
        (
            "name with a line break",
            format!(
                r#"[{},{{"event":"bad\nname","data":1}},{}]"#,
                good(90),
                good(91)
            ),
            400,
        ),
        (
            "unknown category",
            format!(
                r#"{{"events":[{},{},{{"event":"x","category":"nope","data":1}}]}}"#,
                good(90),
                good(91)
            ),
            400,
        ),
        (
            "oversized data",
            format!(
                r#"{{"events":[{},{{"event":"big","data":"{big}"}},{}]}}"#,
                good(90),
                good(91)
            ),
            413,
        ),
    ];
    for (next, (what, body, status)) in (4..).zip(&bad_batches) {
        let before = stats(&wrangler.base, &stream, &token);
        let answer = request(
            "POST",
            &wrangler.url(&format!("/v1/streams/{stream}/events")),
            Some(&token),
            Some(body),
        );
        assert_eq!(answer.status, *status, "{what}: {}", answer.body);
        let code = answer.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            code,
            if *status == 413 {
                "too_large"
            } else {
                "invalid_event"
            },
            "{what}"
        );
        let after = stats(&wrangler.base, &stream, &token);
        for key in ["last_id", "log_events", "log_bytes"] {
            assert_eq!(before[key], after[key], "{what}: {key} changed");
        }
        // The next good event must be the very next thing the subscriber sees, with the next seq.
        let ids = publish(
            &wrangler.base,
            &stream,
            &token,
            &numbered_batch("good", next..next + 1, 0),
        );
        assert_eq!(
            split_id(&ids[0]),
            (epoch, next),
            "{what}: a seq was used up"
        );
        let msg = sub.next_event(WAIT).expect("the good event");
        assert_eq!(
            msg.id, ids[0],
            "{what}: the subscriber saw something else first: {} {}",
            msg.event, msg.id
        );
        assert_eq!(number_of(&msg), next);
    }
}

/// Fault 5: Two tenants on the same connection id get two separate hubs; a token limited to some
/// streams is refused the others.
#[test]
fn tenants_sharing_a_connection_id_are_isolated() {
    let wrangler = Wrangler::start(&[]);
    let (token_a, token_b) = (full_token("tenant-a"), full_token("tenant-b"));
    let shared = unique("shared");
    let sub_a = wrangler.subscribe_stream(&shared, &token_a, &[]);
    let sub_b = wrangler.subscribe_stream(&shared, &token_b, &[]);
    let event =
        |tenant: &str, n: u64| format!(r#"{{"event":"t","data":{{"tenant":"{tenant}","n":{n}}}}}"#);
    for n in 1..=3 {
        publish(&wrangler.base, &shared, &token_a, &event("a", n));
        if n <= 2 {
            publish(&wrangler.base, &shared, &token_b, &event("b", n));
        }
    }
    // A marker from each tenant last: whatever arrives before it is all that tenant's subscriber
    // got.
    let marker_a = publish(&wrangler.base, &shared, &token_a, &event("a", 99));
    let marker_b = publish(&wrangler.base, &shared, &token_b, &event("b", 99));
    for (sub, tenant, marker, count) in [(&sub_a, "a", &marker_a, 4), (&sub_b, "b", &marker_b, 3)] {
        let got = take_events(sub, count, WAIT);
        for msg in &got {
            let data: serde_json::Value = serde_json::from_str(&msg.data).expect("JSON");
            assert_eq!(
                data["tenant"], tenant,
                "tenant {tenant}'s subscriber got {msg:?}"
            );
        }
        assert_eq!(got.last().map(|m| &m.id), Some(&marker[0]));
        assert_eq!(
            sub.next_event(Duration::from_secs(1)),
            None,
            "tenant {tenant}: an extra event"
        );
    }
    let (stats_a, stats_b) = (
        stats(&wrangler.base, &shared, &token_a),
        stats(&wrangler.base, &shared, &token_b),
    );
    assert_eq!(
        (
            stats_a["log_events"].as_u64(),
            stats_b["log_events"].as_u64()
        ),
        (Some(4), Some(3))
    );
    assert_eq!(stats_a["last_id"], marker_a[0].as_str());
    assert_eq!(stats_b["last_id"], marker_b[0].as_str());
    assert_eq!(split_id(&marker_a[0]).1, 4);
    assert_eq!(split_id(&marker_b[0]).1, 3);

    // A token for tenant A limited to the shared id: its own hub only, and nothing outside the
    // list.
    let b_only = unique("b-only");
    publish(&wrangler.base, &b_only, &token_b, &event("b", 1));
    let limited = token(
        "tenant-a",
        &[Scope::Publish, Scope::Subscribe],
        Some(&[shared.as_str()]),
        3600,
    );
    assert_eq!(
        stats(&wrangler.base, &shared, &limited)["last_id"],
        marker_a[0].as_str(),
        "the limited token reads tenant A's hub"
    );
    let refused = [
        ("GET", format!("/v1/streams/{b_only}"), None),
        ("GET", format!("/v1/streams/{b_only}/stats"), None),
        (
            "POST",
            format!("/v1/streams/{b_only}/events"),
            Some(event("a", 1)),
        ),
    ];
    for (method, path, body) in &refused {
        let answer = request(method, &wrangler.url(path), Some(&limited), body.as_deref());
        assert_eq!(answer.status, 403, "{method} {path}: {}", answer.body);
        assert_eq!(answer.json()["error"], "forbidden");
    }
    // Tenant B's stream is untouched by the refused publish.
    assert_eq!(stats(&wrangler.base, &b_only, &token_b)["log_events"], 1);
}
