//! Vectors for the ingest dialect: what sluice's Celery SDK sends, both type spellings, every
//! refusal, and retry recognition.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

use super::*;

const TS: &str = "2026-11-30T06:30:00.123456Z";

/// A `job.state_change` shaped as sluice-celery 0.1.0 builds it (`_events.py`), connectionId added
/// by its transport.
fn sdk_job(uuid: &str, state: &str, celery_state: &str) -> String {
    format!(
        r#"{{"type": "job.state_change", "timestamp": "{TS}", "framework": "celery", "job": {{"externalId": "{uuid}", "name": "tasks.add", "state": "{state}", "queue": "celery", "workerId": "celery@h", "attempt": 1, "extensions": {{"celeryState": "{celery_state}"}}}}, "connectionId": "550e8400-e29b-41d4-a716-446655440000"}}"#
    )
}

fn batch(events: &[String]) -> Vec<u8> {
    format!(r#"{{"events": [{}]}}"#, events.join(", ")).into_bytes()
}

fn parse(body: &[u8]) -> Result<Vec<IngestEvent>, IngestError> {
    parse_ingest(body, &PublishLimits::default())
}

fn one(event: &str) -> Result<(String, String), IngestError> {
    let events = parse(&batch(&[event.into()]))?;
    Ok((
        String::from(events[0].event.name.as_str()),
        events[0].event.data.clone(),
    ))
}

#[test]
fn the_celery_sdk_job_events_become_job_state_changes() {
    let events = parse(&batch(&[
        sdk_job("t1", "queued", "RECEIVED"),
        sdk_job("t1", "active", "STARTED"),
        sdk_job("t1", "completed", "SUCCESS"),
    ]))
    .expect("parsed");
    let states: Vec<_> = events
        .iter()
        .map(|e| {
            (
                e.connection.as_str(),
                e.event.name.as_str(),
                e.event.data.as_str(),
            )
        })
        .collect();
    let data = |state: &str| {
        format!(
            r#"{{"id":"t1","name":"tasks.add","state":"{state}","previousState":null,"timestamp":"{TS}"}}"#
        )
    };
    let connection = "550e8400-e29b-41d4-a716-446655440000";
    assert_eq!(
        states,
        [
            (connection, "job:state_change", data("queued").as_str()),
            (connection, "job:state_change", data("active").as_str()),
            (connection, "job:state_change", data("completed").as_str()),
        ]
    );
    assert!(events.iter().all(|e| e.event.category.is_none()));
}

#[test]
fn every_type_in_both_spellings() {
    let event = |kind: &str, payload: &str| {
        format!(
            r#"{{"type":"{kind}","timestamp":"{TS}","framework":"bullmq","connectionId":"c1",{payload}}}"#
        )
    };
    let job = r#""job":{"externalId":"j1","name":"n","state":"failed","previousState":"active","error":"boom"}"#;
    let heartbeat = r#""worker":{"externalId":"celery@w1","hostname":"celery@w1","state":"heartbeat","activeJobs":3,"pid":7}"#;
    let offline = r#""worker":{"externalId":"celery@w1","state":"offline"}"#;
    let queue = r#""queue":{"name":"default","depth":42,"consumers":4}"#;
    for (dot, underscore, payload, name, data) in [
        (
            "job.state_change",
            "job_state_change",
            job,
            "job:state_change",
            format!(
                r#"{{"id":"j1","name":"n","state":"failed","previousState":"active","timestamp":"{TS}"}}"#
            ),
        ),
        (
            "worker.state_change",
            "worker_state_change",
            heartbeat,
            "worker:heartbeat",
            r#"{"id":"celery@w1","hostname":"celery@w1","state":"online","activeJobs":3}"#.into(),
        ),
        (
            "worker.state_change",
            "worker_state_change",
            offline,
            "worker:state_change",
            format!(
                r#"{{"id":"celery@w1","hostname":"celery@w1","state":"offline","activeJobs":0,"timestamp":"{TS}"}}"#
            ),
        ),
        (
            "queue.snapshot",
            "queue_snapshot",
            queue,
            "queue:snapshot",
            r#"{"name":"default","depth":42,"consumers":4}"#.into(),
        ),
    ] {
        for kind in [dot, underscore] {
            assert_eq!(
                one(&event(kind, payload)).expect(kind),
                (String::from(name), data.clone()),
                "{kind}"
            );
        }
    }
}

#[test]
fn every_refusal_names_the_problem_and_its_event() {
    let ok = sdk_job("t1", "active", "STARTED");
    let with = |from: &str, to: &str| {
        let changed = ok.replacen(from, to, 1);
        assert_ne!(changed, ok, "{from} is in the vector");
        changed
    };
    let cases: Vec<(String, &str)> = vec![
        (
            with("job.state_change", "job.created"),
            "`type` is \"job.created\"",
        ),
        (with("\"celery\"", "\"rq\""), "`framework` is \"rq\""),
        (
            with("550e8400-e29b-41d4-a716-446655440000", "a/b"),
            "`connectionId` is not valid",
        ),
        (with(TS, "yesterday"), "not an ISO 8601"),
        (with(TS, "2026-11-30 06:30:00Z"), "not an ISO 8601"),
        (with(TS, "2026-11-30T06:30:00."), "not an ISO 8601"),
        (
            with("\"state\": \"active\"", "\"state\": \"running\""),
            "`job.state` is \"running\"",
        ),
        (
            with("\"externalId\": \"t1\"", "\"externalId\": \"\""),
            "`job.externalId` is empty",
        ),
        (
            with("\"attempt\": 1", "\"attempt\": 0"),
            "`job.attempt` counts from 1",
        ),
        (with("\"attempt\": 1", "\"attempt\": \"1\""), "invalid type"),
        (
            with(
                "\"job\": {",
                "\"worker\": {\"externalId\":\"w\",\"state\":\"idle\"}, \"job\": {",
            ),
            "carries no `worker`",
        ),
        (with("\"job\"", "\"jobs\""), "unknown field `jobs`"),
        (
            with("\"name\": \"tasks.add\", ", ""),
            "missing field `name`",
        ),
        (with("\"timestamp\"", "\"time\""), "unknown field `time`"),
    ];
    for (event, expected) in cases {
        let error = parse(&batch(&[ok.clone(), event.clone()])).expect_err(&event);
        let text = format!("{error}");
        assert!(
            text.starts_with("event 1: ") && text.contains(expected),
            "{text:?} should name {expected:?}"
        );
        assert!(!error.is_too_large());
    }
    let queue_without = r#"{"type":"queue_snapshot","timestamp":"2026-11-30T06:30:00+01:00","framework":"celery","connectionId":"c"}"#;
    assert!(format!(
        "{}",
        parse(&batch(&[queue_without.into()])).expect_err("no queue")
    )
    .contains("needs `queue`"));
    for (body, expected) in [
        (&b"{not json"[..], "body must be {\"events\": [...]}"),
        (b"[]", "body must be"),
        (b"{\"events\":[1]}", "event 0: not a json object"),
        (b"{\"events\":[],\"x\":1}", "unknown field `x`"),
        (b"{\"events\":[]}", "batch holds no events"),
    ] {
        let text = format!("{}", parse(body).expect_err("refused"));
        assert!(text.contains(expected), "{text:?} should say {expected:?}");
    }
}

#[test]
fn limits_are_a_publishs() {
    let limits = PublishLimits {
        event_bytes_max: 80,
        batch_events_max: 2,
        batch_bytes_max: 2_000,
    };
    let job = sdk_job("t1", "active", "STARTED");
    let three = batch(&[job.clone(), job.clone(), job.clone()]);
    let error = parse_ingest(&three, &limits).expect_err("three");
    assert_eq!(
        error,
        IngestError::TooManyEvents {
            events: 3,
            events_max: 2
        }
    );
    assert!(error.is_too_large());
    let long = parse_ingest(&batch(&[job]), &limits).expect_err("data over 80 bytes");
    assert!(
        matches!(long, IngestError::EventTooLarge { index: 0, .. }),
        "{long:?}"
    );
    let spread: Vec<String> = (0..=INGEST_CONNECTIONS_MAX)
        .map(|n| sdk_job("t", "active", "X").replace("550e8400", &format!("{n:08}")))
        .collect();
    let wide = PublishLimits::default();
    assert_eq!(
        parse_ingest(&batch(&spread), &wide),
        Err(IngestError::TooManyConnections {
            connections: INGEST_CONNECTIONS_MAX + 1,
            connections_max: INGEST_CONNECTIONS_MAX
        })
    );
    assert!(parse_ingest(&batch(&spread[1..]), &wide).is_ok());
    let big = vec![b' '; 2_001];
    assert!(matches!(
        parse_ingest(&big, &limits),
        Err(IngestError::BodyTooLarge {
            body_bytes: 2_001,
            bytes_max: 2_000
        })
    ));
}

#[test]
fn a_retry_has_the_same_fingerprints_and_is_stored_once() {
    let first = parse(&batch(&[
        sdk_job("t1", "active", "STARTED"),
        sdk_job("t1", "completed", "SUCCESS"),
    ]))
    .expect("first");
    // The retry: the same events, whatever whitespace the sender put between tokens.
    let compact = format!(
        r#"{{"events":[{}]}}"#,
        [
            sdk_job("t1", "active", "STARTED"),
            sdk_job("t1", "completed", "SUCCESS")
        ]
        .map(|e| compact_json(&e))
        .join(",")
    );
    let retry = parse(compact.as_bytes()).expect("retry");
    let prints = |events: &[IngestEvent]| {
        events
            .iter()
            .map(|e| e.fingerprint.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(prints(&first), prints(&retry));
    assert_ne!(first[0].fingerprint, first[1].fingerprint);
    assert!(
        first[0].fingerprint.len() == 64
            && first[0].fingerprint.bytes().all(|b| b.is_ascii_hexdigit())
    );
    // What a hub that stored the first batch keeps of the retry: nothing; of a batch adding one
    // event: that event.
    let stored = prints(&first);
    assert!(fresh_ingest_events(&retry, |print| stored.iter().any(|s| s == print)).is_empty());
    let more = parse(&batch(&[
        sdk_job("t1", "completed", "SUCCESS"),
        sdk_job("t2", "queued", "RECEIVED"),
    ]))
    .expect("more");
    assert_eq!(
        fresh_ingest_events(&more, |print| stored.iter().any(|s| s == print)),
        [1]
    );
    // A different value anywhere is a different event.
    let other = parse(&batch(&[sdk_job("t1", "active", "RETRY")])).expect("other");
    assert_ne!(other[0].fingerprint, first[0].fingerprint);
}

#[test]
fn a_batch_is_split_by_connection_for_the_hubs() {
    let event = |connection: &str, n: u32| {
        format!(
            r#"{{"type":"queue.snapshot","timestamp":"{TS}","framework":"celery","connectionId":"{connection}","queue":{{"name":"q","depth":{n}}}}}"#
        )
    };
    let events = parse(&batch(&[event("a", 1), event("b", 2), event("a", 3)])).expect("parsed");
    let connections = ingest_connections(&events);
    assert_eq!(
        connections
            .iter()
            .map(ConnectionId::as_str)
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    let for_a = ingest_body_for(&connections[0], &events);
    let again = parse(for_a.as_bytes()).expect("a hub's body parses");
    assert_eq!(
        again
            .iter()
            .map(|e| e.event.data.as_str())
            .collect::<Vec<_>>(),
        [
            r#"{"name":"q","depth":1,"consumers":0}"#,
            r#"{"name":"q","depth":3,"consumers":0}"#
        ]
    );
    assert_eq!(again[0].fingerprint, events[0].fingerprint);
    assert_eq!(again[1].fingerprint, events[2].fingerprint);
}

#[test]
fn iso_8601_date_times() {
    for good in [
        "2026-02-27T10:30:00Z",
        "2026-02-27T10:30:00.000Z",
        "2026-02-27T10:30:00.123456Z",
        "2026-02-27t10:30:00z",
        "2026-02-27T10:30:00+05:30",
        "2026-02-27T10:30:00.5-01:00",
    ] {
        assert!(is_iso_8601(good), "{good}");
    }
    for bad in [
        "",
        "2026-02-27",
        "2026-02-27T10:30Z",
        "2026-02-27T10:30:00",
        "2026-02-27T10:30:00.Z",
        "2026-02-27T10:30:00+0530",
        "2026-02-27T10:30:00Zjunk",
        "2026-2-27T10:30:00Z",
        "２026-02-27T10:30:00Z",
    ] {
        assert!(!is_iso_8601(bad), "{bad}");
    }
}

#[test]
fn previous_states_come_from_the_batch_then_from_what_the_stream_remembers() {
    let event = |task: &str, state: &str, previous: Option<&str>| {
        let previous = previous.map_or(String::new(), |p| format!(r#","previousState":"{p}""#));
        format!(
            r#"{{"type":"job.state_change","timestamp":"{TS}","framework":"celery","connectionId":"c",
                "job":{{"externalId":"{task}","name":"n","state":"{state}"{previous}}}}}"#
        )
    };
    let mut events = parse(&batch(&[
        event("t1", "active", None),
        event("t2", "queued", None),
        event("t1", "retrying", Some("scheduled")),
        event("t1", "queued", None),
        event("t3", "active", None),
        format!(
            r#"{{"type":"queue.snapshot","timestamp":"{TS}","framework":"celery","connectionId":"c","queue":{{"name":"q","depth":1}}}}"#
        ),
    ]))
    .expect("parsed");
    let before: Vec<String> = events.iter().map(|e| e.fingerprint.clone()).collect();
    let mut asked = Vec::new();
    fill_previous_states(&mut events, |id| {
        asked.push(String::from(id));
        match id {
            "t1" => Some("queued".into()),
            "t3" => Some("not-a-state".into()),
            _ => None,
        }
    });
    let previous: Vec<Option<String>> = events
        .iter()
        .filter_map(|e| e.job_state().map(|_| e))
        .map(|e| {
            let data: serde_json::Value = serde_json::from_str(&e.event.data).expect("json");
            data["previousState"].as_str().map(String::from)
        })
        .collect();
    let some = |s: &str| Some(String::from(s));
    assert_eq!(
        previous,
        [
            some("queued"),
            None,
            some("scheduled"),
            some("retrying"),
            None
        ]
    );
    // Storage is asked only for jobs the batch has not shown yet.
    assert_eq!(asked, ["t1", "t2", "t3"]);
    // The fingerprints are the events' as sent, whatever was filled in.
    assert_eq!(
        events
            .iter()
            .map(|e| e.fingerprint.clone())
            .collect::<Vec<_>>(),
        before
    );
    assert_eq!(events[3].job_state(), Some(("t1", "queued")));
    assert_eq!(events[5].job_state(), None);
}
