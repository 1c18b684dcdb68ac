//! Generic streams (`/v1/streams/{id}`): wire headers and first bytes, publish and fan-out,
//! batches, filters, resume with `Last-Event-ID` (header and query), in-band `reset` on every kind
//! of gap, heartbeats, stats and terminal streams.

use std::time::Duration;

use herald_e2e::{
    full_token, publish, request, seq_of, split_id, stats, unique, Subscription, Wrangler,
};

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn wire_headers_first_bytes_and_heartbeats() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "300"), ("HERALD_RETRY_MS", "1500")]);
    let token = full_token("acme");
    let sub = wrangler.subscribe(
        &format!("/v1/streams/{}", unique("wire")),
        Some(&token),
        &[],
    );
    assert_eq!(sub.status, 200);
    assert_eq!(
        sub.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(sub.header("cache-control"), Some("no-cache, no-transform"));
    assert_eq!(sub.header("x-accel-buffering"), Some("no"));
    assert_eq!(
        sub.header("connection"),
        None,
        "Connection is hop-by-hop and malformed on HTTP/2"
    );
    assert_eq!(
        sub.header("content-encoding"),
        None,
        "streams are never compressed"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let raw = String::from_utf8(sub.raw_bytes()).expect("utf-8");
    assert!(raw.starts_with("retry: 1500\n"), "first bytes: {raw:?}");
    assert!(
        raw.matches(": heartbeat\n\n").count() >= 2,
        "comment heartbeats every 300 ms: {raw:?}"
    );

    // `heartbeat=event` turns them into named events an EventSource page can listen for.
    let job = format!("/runner-jobs/{}/events/stream", unique("job"));
    let sub = wrangler.subscribe(&format!("{job}?heartbeat=event"), Some(&token), &[]);
    assert_eq!(sub.status, 200);
    let heartbeat = sub.next(WAIT).expect("heartbeat event");
    assert_eq!(
        (heartbeat.event.as_str(), heartbeat.id.as_str()),
        ("heartbeat", "")
    );
    let data: serde_json::Value = serde_json::from_str(&heartbeat.data).expect("JSON");
    assert!(
        data["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{data}"
    );
    let raw = String::from_utf8(sub.raw_bytes()).expect("utf-8");
    assert!(
        !raw.contains("\n: heartbeat\n"),
        "no comment heartbeats: {raw:?}"
    );
    let bad = request(
        "GET",
        &wrangler.url(&format!("{job}?heartbeat=loud")),
        Some(&token),
        None,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid_heartbeat");
}

#[test]
fn batches_fan_out_in_order_to_every_subscriber() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("fanout");
    let subs: Vec<_> = (0..3)
        .map(|_| wrangler.subscribe(&format!("/v1/streams/{stream}"), Some(&token), &[]))
        .collect();
    let ids = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"{"events":[{"event":"job.created","data":{"n":1}},{"event":"step.output","data":"line one\r\nline two\rthree"},{"event":"job.completed","data":""}]}"#,
    );
    assert_eq!(ids.len(), 3);
    assert_eq!(
        (seq_of(&ids[0]) + 1, seq_of(&ids[0]) + 2),
        (seq_of(&ids[1]), seq_of(&ids[2])),
        "ids are contiguous"
    );
    for sub in &subs {
        let got = sub.take(3, WAIT);
        let names: Vec<_> = got.iter().map(|m| m.event.as_str()).collect();
        assert_eq!(names, ["job.created", "step.output", "job.completed"]);
        assert_eq!(got[0].data, r#"{"n":1}"#);
        assert_eq!(
            got[1].data, "line one\nline two\nthree",
            "line breaks come back as LF"
        );
        assert_eq!(got[2].data, "", "empty data still dispatches");
        assert_eq!(got.iter().map(|m| m.id.clone()).collect::<Vec<_>>(), ids);
    }
    // A JSON array is a batch too.
    let more = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"[{"event":"a"},{"event":"b"}]"#,
    );
    assert_eq!(seq_of(&more[0]), seq_of(&ids[2]) + 1);
}

#[test]
fn filters_select_by_type_namespace_and_category() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("filters");
    let open = |query: &str| {
        wrangler.subscribe(&format!("/v1/streams/{stream}?{query}"), Some(&token), &[])
    };
    let jobs = open("types=job");
    let exact = open("types=step.output,job:done");
    let ai = open("categories=ai&categories=security");
    let both = open("types=sync&categories=data_sync");
    publish(
        &wrangler.base,
        &stream,
        &token,
        r#"[{"event":"job:state_change"},{"event":"job.created"},{"event":"jobs.other"},{"event":"step.output"},
            {"event":"ai.response.chunk","category":"ai"},{"event":"sync.accounts.started","category":"data_sync"},
            {"event":"sync.other","category":"provider"},{"event":"security.login.failed","category":"security"},
            {"event":"job:done"},{"event":"end"}]"#,
    );
    let names = |sub: &Subscription, n: usize| {
        sub.take(n, WAIT)
            .into_iter()
            .map(|m| m.event)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(&jobs, 3),
        ["job:state_change", "job.created", "job:done"]
    );
    assert_eq!(names(&exact, 2), ["step.output", "job:done"]);
    assert_eq!(
        names(&ai, 2),
        ["ai.response.chunk", "security.login.failed"]
    );
    assert_eq!(names(&both, 1), ["sync.accounts.started"]);
    // Nothing else arrives: the next event each filter matches is the marker published now.
    publish(
        &wrangler.base,
        &stream,
        &token,
        r#"[{"event":"job.marker"},{"event":"step.output"},{"event":"x","category":"ai"},{"event":"sync.x","category":"data_sync"}]"#,
    );
    assert_eq!(names(&jobs, 1), ["job.marker"]);
    assert_eq!(names(&exact, 1), ["step.output"]);
    assert_eq!(names(&ai, 1), ["x"]);
    assert_eq!(names(&both, 1), ["sync.x"]);
}

#[test]
fn resume_replays_after_the_id_then_continues_live_without_gap_or_duplicate() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("resume");
    let first = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"[{"event":"e","data":"1"},{"event":"e","data":"2"},{"event":"e","data":"3"}]"#,
    );
    // Header form.
    let sub = wrangler.subscribe(
        &format!("/v1/streams/{stream}"),
        Some(&token),
        &[("Last-Event-ID", &first[0])],
    );
    let replayed = sub.take(2, WAIT);
    assert_eq!(
        replayed.iter().map(|m| m.data.as_str()).collect::<Vec<_>>(),
        ["2", "3"]
    );
    let live = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"{"event":"e","data":"4"}"#,
    );
    let next = sub.next_event(WAIT).expect("live event");
    assert_eq!(
        (next.data.as_str(), next.id.as_str()),
        ("4", live[0].as_str())
    );
    // Query form, for clients that cannot set headers.
    let by_query = wrangler.subscribe(
        &format!("/v1/streams/{stream}?lastEventId={}", first[2]),
        Some(&token),
        &[],
    );
    assert_eq!(by_query.take(1, WAIT)[0].data, "4");
    // Up to date: nothing is replayed, and no reset either.
    let current = wrangler.subscribe(
        &format!("/v1/streams/{stream}"),
        Some(&token),
        &[("Last-Event-ID", &live[0])],
    );
    // An empty ?lastEventId= (a page that has not seen an event yet) is no id at all, like an empty
    // header: live from here, no reset.
    let empty = wrangler.subscribe(
        &format!("/v1/streams/{stream}?lastEventId="),
        Some(&token),
        &[],
    );
    publish(
        &wrangler.base,
        &stream,
        &token,
        r#"{"event":"e","data":"5"}"#,
    );
    assert_eq!(current.take(1, WAIT)[0].data, "5");
    let first = empty.next(WAIT).expect("an event");
    assert_eq!((first.event.as_str(), first.data.as_str()), ("e", "5"));
}

#[test]
fn gaps_start_with_an_in_band_reset_naming_the_oldest_id() {
    let wrangler = Wrangler::start(&[("HERALD_LOG_EVENTS_MAX", "3")]);
    let token = full_token("acme");
    let stream = unique("gap");
    let ids = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"[{"event":"e","data":"1"},{"event":"e","data":"2"},{"event":"e","data":"3"},{"event":"e","data":"4"},{"event":"e","data":"5"}]"#,
    );
    let (epoch, _) = split_id(&ids[0]);
    for (last_id, reason) in [
        (ids[0].clone(), "evicted"),
        ("42-1".to_string(), "other_epoch"),
        ("not-an-id".to_string(), "malformed"),
        (format!("{epoch}-99"), "ahead"),
    ] {
        let sub = wrangler.subscribe(
            &format!("/v1/streams/{stream}"),
            Some(&token),
            &[("Last-Event-ID", &last_id)],
        );
        let reset = sub.next_event(WAIT).expect("reset");
        assert_eq!(reset.event, "reset", "for {last_id}");
        let data: serde_json::Value =
            serde_json::from_str(&reset.data).expect("reset data is JSON");
        assert_eq!(data["reason"], reason);
        assert_eq!(data["oldest"], ids[2].as_str());
        assert_eq!(reset.id, "", "a control event carries no id");
        // Then everything the log still holds.
        let rest = sub.take(3, WAIT);
        assert_eq!(
            rest.iter().map(|m| m.data.as_str()).collect::<Vec<_>>(),
            ["3", "4", "5"]
        );
    }
    let stats = stats(&wrangler.base, &stream, &token);
    assert_eq!(stats["log_events"], 3);
    assert_eq!(stats["oldest_id"], ids[2].as_str());
}

#[test]
fn a_complete_stream_closes_replays_and_answers_reconnects_with_204() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let job = unique("job");
    let live = wrangler.subscribe(
        &format!("/runner-jobs/{job}/events/stream"),
        Some(&token),
        &[],
    );
    let ids = publish(
        &wrangler.base,
        &job,
        &token,
        r#"[{"event":"step.started","data":{"stepId":"s1"}},{"event":"stream.complete"}]"#,
    );
    assert_eq!(
        live.take(2, WAIT).last().expect("complete").event,
        "stream.complete"
    );
    assert!(
        live.ends_within(WAIT),
        "the server closes a complete stream"
    );
    // A later connect gets the replay, then the stream closes.
    let late = wrangler.subscribe(&format!("/v1/streams/{job}"), Some(&token), &[]);
    assert_eq!(
        late.take(2, WAIT)
            .iter()
            .map(|m| m.id.clone())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(late.ends_within(WAIT));
    // A reconnect that has seen the end: 204, so EventSource stops.
    let again = wrangler.subscribe(
        &format!("/v1/streams/{job}"),
        Some(&token),
        &[("Last-Event-ID", &ids[1])],
    );
    assert_eq!(again.status, 204);
    // A reconnect that missed the end still gets it.
    let behind = wrangler.subscribe(
        &format!("/v1/streams/{job}"),
        Some(&token),
        &[("Last-Event-ID", &ids[0])],
    );
    assert_eq!(behind.status, 200);
    assert_eq!(behind.take(1, WAIT)[0].event, "stream.complete");
    // No more events on a complete stream.
    let refused = request(
        "POST",
        &wrangler.url(&format!("/v1/streams/{job}/events")),
        Some(&token),
        Some(r#"{"event":"late"}"#),
    );
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["error"], "stream_complete");
    let stats = stats(&wrangler.base, &job, &token);
    assert_eq!(
        (stats["complete"].as_bool(), stats["log_events"].as_u64()),
        (Some(true), Some(2))
    );
}

#[test]
fn stats_count_subscribers_and_the_log() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("stats");
    let url = wrangler.url(&format!("/v1/streams/{stream}/stats"));
    let empty = request("GET", &url, Some(&token), None).json();
    assert_eq!(
        (empty["subscribers"].as_u64(), empty["log_events"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(empty["last_id"].is_null());
    let subs: Vec<_> = (0..2)
        .map(|_| wrangler.subscribe(&format!("/v1/streams/{stream}"), Some(&token), &[]))
        .collect();
    let ids = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"{"event":"e","data":"abc"}"#,
    );
    let stats = request("GET", &url, Some(&token), None).json();
    assert_eq!(stats["subscribers"], 2);
    assert_eq!(stats["last_id"], ids[0].as_str());
    assert_eq!(stats["log_events"], 1);
    assert!(stats["log_bytes"].as_u64().expect("bytes") > 0);
    drop(subs);
}
