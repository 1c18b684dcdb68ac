//! sluice's `POST /api/ingest`, sent with `curl` as an SDK sends it: events translated onto the
//! connection's stream as sluice's stream names them, retried batches stored once (also across a
//! storage failure), batches spanning streams, and every bad input refused with nothing stored.

use std::process::Command;
use std::time::Duration;

use herald_core::Scope;
use herald_e2e::{full_token, publish, stats, token, unique, Subscription, Wrangler};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);
const TS: &str = "2026-11-30T06:30:00.123456Z";

/// `curl` POSTs `body` to `/api/ingest` with `bearer` (if any); the status and the body as JSON.
fn curl_ingest(wrangler: &Wrangler, bearer: Option<&str>, body: &str) -> (u16, Value) {
    let mut command = Command::new("curl");
    command.args([
        "-s",
        "-w",
        "\n%{http_code}",
        "-H",
        "content-type: application/json",
    ]);
    if let Some(bearer) = bearer {
        command
            .arg("-H")
            .arg(format!("Authorization: Bearer {bearer}"));
    }
    let output = command
        .arg("--data-binary")
        .arg(body)
        .arg(wrangler.url("/api/ingest"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').expect("status line");
    let status = status.trim().parse().expect("status");
    let answer = serde_json::from_str(answer).unwrap_or_else(|e| panic!("{e}: {answer:?}"));
    (status, answer)
}

/// A `job.state_change` as sluice-celery sends it.
fn job(connection: &str, task: &str, state: &str) -> Value {
    json!({"type": "job.state_change", "timestamp": TS, "framework": "celery",
           "job": {"externalId": task, "name": "tasks.add", "state": state, "queue": "celery",
                   "extensions": {"celeryState": "X"}},
           "connectionId": connection})
}

fn body(events: &[Value]) -> String {
    json!({ "events": events }).to_string()
}

fn sluice_stream(wrangler: &Wrangler, bearer: &str, connection: &str, types: &str) -> Subscription {
    let sub = wrangler.subscribe(
        &format!("/api/events/stream?connectionId={connection}&types={types}"),
        Some(bearer),
        &[],
    );
    assert_eq!(sub.status, 200);
    sub
}

fn events(sub: &Subscription, n: usize) -> Vec<(String, Value)> {
    sub.take(n, WAIT)
        .into_iter()
        .map(|m| {
            let data = serde_json::from_str(&m.data).unwrap_or_else(|e| panic!("{e}: {}", m.data));
            (m.event, data)
        })
        .collect()
}

#[test]
fn ingested_events_reach_the_connections_sluice_stream() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let bearer = full_token(&unique("sluice"));
    let connection = "550e8400-e29b-41d4-a716-446655440000";
    let jobs = sluice_stream(&wrangler, &bearer, connection, "job");
    let others = sluice_stream(&wrangler, &bearer, connection, "worker,queue");
    let batch = [
        job(connection, "t1", "queued"),
        job(connection, "t1", "active"),
        json!({"type": "job_state_change", "timestamp": "2026-11-30T06:30:01Z", "framework": "celery",
               "connectionId": connection,
               "job": {"externalId": "t1", "name": "tasks.add", "state": "completed", "previousState": "active"}}),
        json!({"type": "worker.state_change", "timestamp": TS, "framework": "celery", "connectionId": connection,
               "worker": {"externalId": "celery@w1", "hostname": "celery@w1", "state": "heartbeat", "activeJobs": 2,
                          "metadata": {"software": "py-celery"}}}),
        json!({"type": "worker_state_change", "timestamp": TS, "framework": "celery", "connectionId": connection,
               "worker": {"externalId": "celery@w1", "hostname": "celery@w1", "state": "offline"}}),
        json!({"type": "queue_snapshot", "timestamp": TS, "framework": "celery", "connectionId": connection,
               "queue": {"name": "default", "depth": 42, "consumers": 4}}),
    ];
    let (status, answer) = curl_ingest(&wrangler, Some(&bearer), &body(&batch));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].clone(), answer["duplicates"].clone()),
        (json!(6), json!(0))
    );
    assert_eq!(answer["ids"].as_array().map(Vec::len), Some(6));
    let job_data = |state: &str, previous: Value, timestamp: &str| json!({"id": "t1", "name": "tasks.add", "state": state, "previousState": previous, "timestamp": timestamp});
    let job_messages = jobs.take(3, WAIT);
    // The stream's ids are the ones the ingest answered, in order.
    assert_eq!(
        job_messages.iter().map(|m| json!(m.id)).collect::<Vec<_>>(),
        answer["ids"].as_array().expect("ids")[..3]
    );
    let job_events: Vec<(String, Value)> = job_messages
        .into_iter()
        .map(|m| (m.event, serde_json::from_str(&m.data).expect("json")))
        .collect();
    assert_eq!(
        job_events,
        [
            (
                "job:state_change".to_string(),
                job_data("queued", Value::Null, TS)
            ),
            // The SDK sends no previousState: the stream fills in the job's last state.
            (
                "job:state_change".to_string(),
                job_data("active", json!("queued"), TS)
            ),
            (
                "job:state_change".to_string(),
                job_data("completed", json!("active"), "2026-11-30T06:30:01Z")
            ),
        ]
    );
    // A later batch: the stream remembers the job's last state.
    let later = [job(connection, "t1", "retrying")];
    let (status, answer) = curl_ingest(&wrangler, Some(&bearer), &body(&later));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        events(&jobs, 1),
        [(
            "job:state_change".to_string(),
            job_data("retrying", json!("completed"), TS)
        )]
    );
    assert_eq!(
        events(&others, 3),
        [
            (
                "worker:heartbeat".to_string(),
                json!({"id": "celery@w1", "hostname": "celery@w1", "state": "online", "activeJobs": 2})
            ),
            (
                "worker:state_change".to_string(),
                json!({"id": "celery@w1", "hostname": "celery@w1", "state": "offline", "activeJobs": 0, "timestamp": TS})
            ),
            (
                "queue:snapshot".to_string(),
                json!({"name": "default", "depth": 42, "consumers": 4})
            ),
        ]
    );
}

#[test]
fn a_retried_batch_is_stored_once() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let bearer = full_token(&unique("sluice"));
    let connection = unique("conn");
    let sub = sluice_stream(&wrangler, &bearer, &connection, "job");
    let batch = [
        job(&connection, "t1", "active"),
        job(&connection, "t1", "failed"),
    ];
    let (status, first) = curl_ingest(&wrangler, Some(&bearer), &body(&batch));
    assert_eq!(
        (status, first["accepted"].clone()),
        (200, json!(2)),
        "{first}"
    );
    // The SDK's retry: the very same bytes.
    let (status, retry) = curl_ingest(&wrangler, Some(&bearer), &body(&batch));
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry, json!({"ids": [], "accepted": 0, "duplicates": 2}));
    // Whitespace between tokens does not make another event.
    let spaced = serde_json::to_string_pretty(&json!({ "events": batch })).expect("json");
    let (status, again) = curl_ingest(&wrangler, Some(&bearer), &spaced);
    assert_eq!(
        (status, again["duplicates"].clone()),
        (200, json!(2)),
        "{again}"
    );
    // A batch holding an old event and a new one stores the new one; the same event twice in one
    // batch is stored once.
    let mixed = [
        job(&connection, "t1", "failed"),
        job(&connection, "t2", "queued"),
        job(&connection, "t2", "queued"),
    ];
    let (status, mixed) = curl_ingest(&wrangler, Some(&bearer), &body(&mixed));
    assert_eq!(status, 200, "{mixed}");
    assert_eq!(
        (mixed["accepted"].clone(), mixed["duplicates"].clone()),
        (json!(1), json!(2))
    );
    assert_eq!(stats(&wrangler.base, &connection, &bearer)["log_events"], 3);
    let got = events(&sub, 3);
    let states: Vec<_> = got
        .iter()
        .map(|(_, data)| {
            (
                data["id"].as_str().unwrap().to_string(),
                data["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("t1".into(), "active".into()),
            ("t1".into(), "failed".into()),
            ("t2".into(), "queued".into())
        ]
    );
    // Nothing else came: the next event is a marker published now.
    publish(
        &wrangler.base,
        &connection,
        &bearer,
        r#"{"event":"job:marker"}"#,
    );
    assert_eq!(
        sub.next_event(WAIT).map(|m| m.event),
        Some("job:marker".to_string())
    );
}

#[test]
fn a_batch_for_several_streams_reaches_each_and_needs_the_token_for_all() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let tenant = unique("sluice");
    let bearer = full_token(&tenant);
    let (a, b) = (unique("a"), unique("b"));
    let sub_a = sluice_stream(&wrangler, &bearer, &a, "job");
    let sub_b = sluice_stream(&wrangler, &bearer, &b, "job");
    let batch = [
        job(&a, "ta", "active"),
        job(&b, "tb", "active"),
        job(&a, "ta", "completed"),
    ];
    // A key for stream `a` only may not write to `b`: refused whole, nothing stored anywhere.
    let only_a = token(
        &tenant,
        &[Scope::Publish, Scope::Subscribe],
        Some(&[&a]),
        600,
    );
    let (status, refused) = curl_ingest(&wrangler, Some(&only_a), &body(&batch));
    assert_eq!(
        (status, refused["error"].as_str()),
        (403, Some("forbidden")),
        "{refused}"
    );
    assert_eq!(stats(&wrangler.base, &a, &bearer)["log_events"], 0);
    let (status, answer) = curl_ingest(&wrangler, Some(&bearer), &body(&batch));
    assert_eq!(
        (status, answer["accepted"].clone()),
        (200, json!(3)),
        "{answer}"
    );
    let ids = |sub: &Subscription, n| {
        events(sub, n)
            .into_iter()
            .map(|(_, d)| d["state"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&sub_a, 2), [json!("active"), json!("completed")]);
    assert_eq!(ids(&sub_b, 1), [json!("active")]);
    // A subscribe-only token cannot ingest.
    let reader = token(&tenant, &[Scope::Subscribe], None, 600);
    let (status, _) = curl_ingest(&wrangler, Some(&reader), &body(&batch[..1]));
    assert_eq!(status, 403);
}

#[test]
fn bad_input_is_refused_and_stores_nothing() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let bearer = full_token(&unique("sluice"));
    let connection = unique("conn");
    let good = job(&connection, "t1", "active");
    let with = |pointer: &str, value: Value| {
        let mut event = good.clone();
        *event.pointer_mut(pointer).expect(pointer) = value;
        body(&[good.clone(), event])
    };
    let cases = [
        ("{not json".to_string(), "body must be"),
        (r#"{"events":[]}"#.to_string(), "no events"),
        (
            r#"{"events":[1]}"#.to_string(),
            "event 0: not a json object",
        ),
        (
            with("/type", json!("job.created")),
            "event 1: `type` is \"job.created\"",
        ),
        (
            with("/framework", json!("rq")),
            "event 1: `framework` is \"rq\"",
        ),
        (
            with("/connectionId", json!("a/b")),
            "event 1: `connectionId` is not valid",
        ),
        (
            with("/timestamp", json!("yesterday")),
            "event 1: `timestamp` \"yesterday\"",
        ),
        (
            with("/job/state", json!("running")),
            "event 1: `job.state` is \"running\"",
        ),
        (with("/job/externalId", json!(7)), "event 1: invalid type"),
        (
            with("/job", json!(null)),
            "event 1: a job.state_change event needs `job`",
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = curl_ingest(&wrangler, Some(&bearer), &body);
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"], "invalid_ingest", "{answer}");
        let message = answer["message"].as_str().expect("message");
        assert!(
            message.contains(expected),
            "{message:?} should name {expected:?}"
        );
    }
    let too_many: Vec<Value> = (0..101)
        .map(|n| job(&connection, &format!("t{n}"), "queued"))
        .collect();
    let (status, answer) = curl_ingest(&wrangler, Some(&bearer), &body(&too_many));
    assert_eq!(
        (status, answer["error"].as_str()),
        (413, Some("too_large")),
        "{answer}"
    );
    let (status, answer) = curl_ingest(&wrangler, None, &body(std::slice::from_ref(&good)));
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("unauthorized"))
    );
    let stats = herald_e2e::request(
        "GET",
        &wrangler.url(&format!("/v1/streams/{connection}/stats")),
        Some(&bearer),
        None,
    );
    assert_eq!(stats.json()["log_events"], 0, "nothing was stored");
    let get = herald_e2e::request("GET", &wrangler.url("/api/ingest"), Some(&bearer), None);
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
}

#[test]
fn a_failed_store_remembers_nothing_so_the_retry_is_stored() {
    let wrangler = Wrangler::start(&[
        ("HERALD_TEST_HOOKS", "1"),
        ("HERALD_TEST_FAIL_STORAGE", "queue:snapshot"),
    ]);
    let bearer = full_token(&unique("sluice"));
    let connection = unique("conn");
    let queue = json!({"type": "queue.snapshot", "timestamp": TS, "framework": "celery",
                       "connectionId": connection, "queue": {"name": "q", "depth": 1}});
    let batch = [job(&connection, "t1", "active"), queue];
    // Storage fails after writing the batch's rows and fingerprints: nothing of it counts.
    let (status, answer) = curl_ingest(&wrangler, Some(&bearer), &body(&batch));
    assert_eq!(status, 500, "{answer}");
    assert_eq!(stats(&wrangler.base, &connection, &bearer)["log_events"], 0);
    // So the job event, sent again, is new: the failed attempt left no fingerprint behind.
    let (status, answer) = curl_ingest(&wrangler, Some(&bearer), &body(&batch[..1]));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["accepted"].clone(), answer["duplicates"].clone()),
        (json!(1), json!(0))
    );
    let (_, again) = curl_ingest(&wrangler, Some(&bearer), &body(&batch[..1]));
    assert_eq!(again["duplicates"], 1, "{again}");
}

#[test]
fn retries_and_previous_states_are_remembered_across_a_restart() {
    let mut wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let bearer = full_token(&unique("sluice"));
    let connection = unique("conn");
    let batch = [
        job(&connection, "t1", "queued"),
        job(&connection, "t1", "active"),
    ];
    let (status, first) = curl_ingest(&wrangler, Some(&bearer), &body(&batch));
    assert_eq!(
        (status, first["accepted"].clone()),
        (200, json!(2)),
        "{first}"
    );
    // The hub's memory is gone; its SQLite is not.
    wrangler.restart();
    let (status, retry) = curl_ingest(&wrangler, Some(&bearer), &body(&batch));
    assert_eq!(status, 200, "{retry}");
    assert_eq!(retry, json!({"ids": [], "accepted": 0, "duplicates": 2}));
    let sub = sluice_stream(&wrangler, &bearer, &connection, "job");
    let (status, next) = curl_ingest(
        &wrangler,
        Some(&bearer),
        &body(&[job(&connection, "t1", "completed")]),
    );
    assert_eq!(
        (status, next["accepted"].clone()),
        (200, json!(1)),
        "{next}"
    );
    let got = events(&sub, 1);
    assert_eq!(
        (got[0].1["state"].clone(), got[0].1["previousState"].clone()),
        (json!("completed"), json!("active"))
    );
    assert_eq!(stats(&wrangler.base, &connection, &bearer)["log_events"], 3);
}

#[test]
fn an_event_evicted_from_the_log_is_forgotten() {
    let wrangler = Wrangler::start(&[
        ("HERALD_HEARTBEAT_MS", "600000"),
        ("HERALD_LOG_EVENTS_MAX", "2"),
    ]);
    let bearer = full_token(&unique("sluice"));
    let connection = unique("conn");
    let first = [job(&connection, "t1", "queued")];
    let (status, _) = curl_ingest(&wrangler, Some(&bearer), &body(&first));
    assert_eq!(status, 200);
    // Two more events push the first out of the two-event log, and its fingerprint with it.
    let more = [
        job(&connection, "t1", "active"),
        job(&connection, "t1", "completed"),
    ];
    let (status, _) = curl_ingest(&wrangler, Some(&bearer), &body(&more));
    assert_eq!(status, 200);
    let (status, again) = curl_ingest(&wrangler, Some(&bearer), &body(&first));
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["accepted"].clone(), again["duplicates"].clone()),
        (json!(1), json!(0)),
        "past the log, a retry is a new event (the README's dedupe window)"
    );
    // The two still in the log are still known.
    let (_, known) = curl_ingest(&wrangler, Some(&bearer), &body(&more[1..]));
    assert_eq!(known["duplicates"], 1, "{known}");
}
