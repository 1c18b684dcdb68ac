//! Clients nobody on this project wrote: headless Chromium's own EventSource (from a page on
//! another origin, with a ticket), npm `eventsource` in Node, and `curl -N`. Each must get every
//! event exactly once and in order across a server-side cut, and stop at a complete stream; curl
//! must see a runner job's steps live. The Node scripts (`tests/clients/`) only drive and report;
//! the assertions are here.

use std::time::Duration;

use herald_e2e::clients::{free_port, request_log, run_node, Curl, Logged};
use herald_e2e::{full_token, now_s, request, seq_of, split_id, unique, Subscription, Wrangler};
use serde_json::{json, Value};

const BEFORE_CUT: usize = 20;
const AFTER_CUT: usize = 20;
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);
const WAIT: Duration = Duration::from_secs(20);

/// `(type, id, data)` of each event a script reports.
fn events(list: &Value) -> Vec<(String, String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| {
            let field = |k: &str| {
                e[k].as_str()
                    .unwrap_or_else(|| panic!("{k} in {e}"))
                    .to_string()
            };
            (field("type"), field("id"), field("data"))
        })
        .collect()
}

/// The expected sequence, built here rather than taken from the script: event n (1-based)
/// alternates between two names and carries `{"n":n,"stage":"s<n>"}`.
fn expected_events(published: &[(String, String, String)]) -> Vec<(String, String, String)> {
    let epoch = split_id(&published[0].1).0;
    (1..=BEFORE_CUT + AFTER_CUT)
        .map(|n| {
            let name = if n % 2 == 0 {
                "tick"
            } else {
                "job:state_change"
            };
            (
                name.to_string(),
                format!("{epoch}-{n}"),
                format!(r#"{{"n":{n},"stage":"s{n}"}}"#),
            )
        })
        .collect()
}

/// The assertions every EventSource client must pass; `result` is what `resumeScenario` printed.
fn assert_resumes_and_stops(wrangler: &Wrangler, token: &str, stream: &str, result: &Value) {
    let published = events(&result["published"]);
    let expected = expected_events(&published);
    assert_eq!(published, expected, "ids must count up from 1 with no gap");
    assert_eq!(result["disconnected"], 1, "the cut closed the one client");

    // Exactly once and in order across the cut: same names, ids and data as published.
    let resumed = events(&result["resumed"]["received"]);
    assert_eq!(resumed, expected, "every event exactly once, in order");
    let state = &result["resumed"]["state"];
    assert_eq!(state["readyState"], 1, "open again after the cut: {state}");
    assert_eq!(state["opens"], 2, "one open, one reopen: {state}");
    assert_eq!(
        state["errors"],
        json!([0]),
        "one error, while reconnecting: {state}"
    );
    assert_eq!(state["unnamed"], 0, "named events never reach onmessage");

    // The complete stream: its last event arrives, then the reconnect gets 204 and the client
    // stops.
    let complete_id = result["completeId"].as_str().expect("completeId");
    assert_eq!(seq_of(complete_id), (BEFORE_CUT + AFTER_CUT + 1) as u64);
    let mut with_complete = expected.clone();
    with_complete.push((
        "stream.complete".into(),
        complete_id.into(),
        r#"{"ok":true}"#.into(),
    ));
    assert_eq!(events(&result["final"]["received"]), with_complete);
    let state = &result["final"]["state"];
    assert_eq!(state["readyState"], 2, "CLOSED after the 204: {state}");
    assert_eq!(state["opens"], 2, "{state}");
    assert_eq!(
        state["errors"],
        json!([0, 0, 2]),
        "cut, end of stream, then the 204 fails the connection: {state}"
    );
    assert_eq!(
        result["closed"], *state,
        "nothing changed during the quiet period"
    );

    // What the client sent: a first GET without Last-Event-ID, a reconnect resuming from an event
    // it had before the cut, and one resuming from the end, answered 204. No request after
    // that.
    let requests = result["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 3, "stream requests: {}", result["requests"]);
    assert_eq!(
        result["requestsAtClose"], 3,
        "no request during the quiet period"
    );
    assert_eq!(requests[0]["lastEventId"], Value::Null);
    assert_eq!(requests[0]["status"], 200);
    let resumed_from = requests[1]["lastEventId"].as_str().expect("Last-Event-ID");
    assert!(
        expected[..BEFORE_CUT].iter().any(|e| e.1 == resumed_from),
        "the reconnect resumes from an event seen before the cut, got {resumed_from}"
    );
    assert_eq!(requests[1]["status"], 200);
    assert_eq!(requests[2]["lastEventId"], complete_id);
    assert_eq!(requests[2]["status"], 204);

    // The server's own log agrees: three GETs (200, 200, 204) and no preflight for the stream.
    let path = format!("/v1/streams/{stream}");
    let log: Vec<Logged> = request_log(wrangler)
        .into_iter()
        .filter(|r| r.path == path)
        .collect();
    let statuses: Vec<(&str, u16)> = log.iter().map(|r| (r.method.as_str(), r.status)).collect();
    assert_eq!(statuses, [("GET", 200), ("GET", 200), ("GET", 204)]);

    // And Herald's own view: complete, nobody connected, the whole sequence in the log.
    let stats = request(
        "GET",
        &wrangler.url(&format!("/v1/streams/{stream}/stats")),
        Some(token),
        None,
    )
    .json();
    assert_eq!(stats["complete"], true);
    assert_eq!(stats["subscribers"], 0);
    assert_eq!(stats["last_id"], complete_id);
    assert_eq!(stats["log_events"], BEFORE_CUT + AFTER_CUT + 1);
    // A fresh reader of a complete stream gets the full replay, then the end: the same sequence.
    let replay = Subscription::open(&wrangler.base, &path, Some(token), &[]);
    assert_eq!(replay.status, 200);
    let got: Vec<(String, String, String)> = replay
        .take(BEFORE_CUT + AFTER_CUT + 1, WAIT)
        .into_iter()
        .map(|m| (m.event, m.id, m.data))
        .collect();
    assert_eq!(got, with_complete);
    assert!(replay.ends_within(WAIT), "a complete stream closes");
}

#[test]
fn chromium_eventsource_on_another_origin_resumes_after_a_cut_and_stops_at_complete() {
    let page_port = free_port();
    let page_origin = format!("http://localhost:{page_port}");
    // Only the page's origin is allowed: the ticket fetch carries Authorization, so it is
    // preflighted.
    let wrangler = Wrangler::start(&[
        ("HERALD_CORS_ORIGINS", &page_origin),
        ("HERALD_RETRY_MS", "500"),
    ]);
    let token = full_token("acme");
    let stream = unique("browser");
    let result = run_node(
        "browser_eventsource.mjs",
        &json!({"herald": wrangler.base, "token": token, "stream": stream, "pagePort": page_port}),
        SCRIPT_TIMEOUT,
    );
    assert_eq!(result["pageOrigin"], page_origin.as_str());
    assert_eq!(result["pageErrors"], json!([]));
    assert!(
        result["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("chromium")),
        "{}",
        result["client"]
    );
    // One ticket, for this stream, expiring after the default 300 s; the page never had to re-mint.
    let tickets = result["tickets"].as_array().expect("tickets");
    assert_eq!(tickets.len(), 1, "{}", result["tickets"]);
    assert_eq!(tickets[0]["connectionId"], stream.as_str());
    let expires_at = tickets[0]["expiresAt"].as_u64().expect("expiresAt");
    let ttl_s = expires_at.saturating_sub(now_s());
    assert!(
        (240..=300).contains(&ttl_s),
        "ticket expires in {ttl_s} s, want about 300"
    );
    assert_eq!(result["final"]["state"]["recoveries"], 0);
    // The browser's requests, as the server saw them: a preflight and the ticket POST.
    let tickets: Vec<(String, u16)> = request_log(&wrangler)
        .into_iter()
        .filter(|r| r.path == "/v1/tickets")
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(tickets, [("OPTIONS".into(), 204), ("POST".into(), 200)]);
    assert!(
        result["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .all(|r| r["resourceType"] == "eventsource"),
        "every stream request is the browser's EventSource: {}",
        result["requests"]
    );
    assert_resumes_and_stops(&wrangler, &token, &stream, &result);
}

#[test]
fn chromium_page_renews_an_expired_ticket_and_resumes_with_last_event_id_query() {
    let page_port = free_port();
    let page_origin = format!("http://localhost:{page_port}");
    let wrangler = Wrangler::start(&[
        ("HERALD_CORS_ORIGINS", &page_origin),
        ("HERALD_RETRY_MS", "500"),
        ("HERALD_TICKET_TTL_S", "2"),
    ]);
    let token = full_token("acme");
    let stream = unique("expiry");
    let result = run_node(
        "browser_eventsource.mjs",
        &json!({"herald": wrangler.base, "token": token, "stream": stream,
                "pagePort": page_port, "mode": "expiry"}),
        SCRIPT_TIMEOUT,
    );
    assert_eq!(result["pageErrors"], json!([]));
    assert_eq!(result["disconnected"], 1);
    let published = events(&result["published"]);
    assert_eq!(published.len(), 15);
    let epoch = split_id(&published[0].1).0;
    for (n, (_, id, data)) in published.iter().enumerate() {
        let n = n + 1;
        assert_eq!(*id, format!("{epoch}-{n}"));
        assert_eq!(*data, format!(r#"{{"n":{n},"stage":"s{n}"}}"#));
    }
    // Five before the expiry, five while the page was renewing its ticket, five live afterwards:
    // each exactly once, in order, across two EventSource objects.
    assert_eq!(events(&result["received"]), published);
    let state = &result["state"];
    assert_eq!(state["readyState"], 1, "{state}");
    assert_eq!(state["opens"], 2, "{state}");
    assert_eq!(
        state["errors"],
        json!([0, 2]),
        "the cut (reconnecting), then the 401 fails the connection (no retry): {state}"
    );
    assert_eq!(state["recoveries"], 1, "{state}");
    assert_eq!(state["unnamed"], 0);
    assert_eq!(
        result["tickets"].as_array().map(Vec::len),
        Some(2),
        "a second ticket: {}",
        result["tickets"]
    );

    // The browser's reconnect used the expired ticket and Last-Event-ID: 401. The page's new
    // EventSource carries no header (a fresh object has no id) but ?lastEventId= with the same id.
    let requests = result["requests"].as_array().expect("requests");
    let seen: Vec<(Value, Value, Value)> = requests
        .iter()
        .map(|r| {
            (
                r["lastEventId"].clone(),
                r["lastEventIdQuery"].clone(),
                r["status"].clone(),
            )
        })
        .collect();
    let fifth = json!(published[4].1);
    assert_eq!(
        seen,
        [
            (Value::Null, Value::Null, json!(200)),
            (fifth.clone(), Value::Null, json!(401)),
            (Value::Null, fifth, json!(200)),
        ],
        "{}",
        result["requests"]
    );
    let log: Vec<(String, u16)> = request_log(&wrangler)
        .into_iter()
        .filter(|r| r.path == format!("/v1/streams/{stream}"))
        .map(|r| (r.method, r.status))
        .collect();
    assert_eq!(
        log,
        [
            ("GET".into(), 200),
            ("GET".into(), 401),
            ("GET".into(), 200)
        ]
    );
}

#[test]
fn npm_eventsource_resumes_after_a_cut_and_stops_at_complete() {
    let wrangler = Wrangler::start(&[("HERALD_RETRY_MS", "500")]);
    let token = full_token("acme");
    let stream = unique("node");
    let result = run_node(
        "node_eventsource.mjs",
        &json!({"herald": wrangler.base, "token": token, "stream": stream}),
        SCRIPT_TIMEOUT,
    );
    assert_eq!(result["client"], "eventsource@4.1.1");
    assert_eq!(
        result["final"]["state"]["errorMessages"][2],
        "Server sent HTTP 204, not reconnecting"
    );
    assert_resumes_and_stops(&wrangler, &token, &stream, &result);
}

/// Publishes one event to a runner job and returns its id.
fn publish_step(wrangler: &Wrangler, job: &str, token: &str, body: &str) -> String {
    let answer = request(
        "POST",
        &wrangler.url(&format!("/runner-jobs/{job}/events")),
        Some(token),
        Some(body),
    );
    assert_eq!(answer.status, 200, "publish: {}", answer.body);
    answer.json()["ids"][0].as_str().expect("id").to_string()
}

#[test]
fn curl_sees_runner_job_steps_live_and_exits_at_complete() {
    // Default retry hint (the README shows 3000); heartbeats pushed far out so that the transcript
    // below is exact even on a slow machine.
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let token = full_token("ci");
    let job = unique("build");
    let mut curl = Curl::stream(
        &wrangler.url(&format!("/runner-jobs/{job}/events/stream")),
        &token,
    );
    // The opening frame: the retry hint, then a comment so the first bytes flush at once.
    let open = curl
        .wait_for(WAIT, |t| t.contains("\n\n"))
        .expect("the stream opens");
    assert!(
        open.starts_with("retry: 3000\n: "),
        "opening frame: {open:?}"
    );
    let mut transcript = open;

    // Bodies as a CI runner sends them (the first is the README's). JSON data comes back compact on
    // one line with the publisher's key order; text data with a line break becomes two data:
    // lines.
    let steps = [
        (
            r#"{"event":"step.started","data":{"stepId":"s1","name":"Running tests","phase":"validation"}}"#,
            "step.started",
            vec![r#"{"stepId":"s1","name":"Running tests","phase":"validation"}"#],
        ),
        (
            r#"{"event":"step.output","data":"running 12 tests\ntest result: ok. 12 passed"}"#,
            "step.output",
            vec!["running 12 tests", "test result: ok. 12 passed"],
        ),
        (
            r#"{"event":"step.completed","data":{"stepId":"s1","status":"success", "durationMs": 1532}}"#,
            "step.completed",
            vec![r#"{"stepId":"s1","status":"success","durationMs":1532}"#],
        ),
    ];
    for (body, name, data_lines) in steps {
        let before = curl.text().len();
        let id = publish_step(&wrangler, &job, &token, body);
        let data: String = data_lines.iter().map(|l| format!("data: {l}\n")).collect();
        let block = format!("id: {id}\nevent: {name}\n{data}\n");
        // Seen on curl's stdout before the next event is even published: live, not buffered.
        let seen = curl
            .wait_for(WAIT, |t| t.len() >= before + block.len())
            .unwrap_or_else(|| panic!("{name} not on curl's stdout: {:?}", curl.text()));
        assert_eq!(
            &seen[before..],
            block,
            "exactly the {name} frame, nothing else"
        );
        transcript.push_str(&block);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        curl.exit_within(Duration::from_millis(500)).is_none(),
        "curl keeps the stream open until the job completes"
    );

    let id = publish_step(
        &wrangler,
        &job,
        &token,
        r#"{"event":"stream.complete","data":{"status":"success"}}"#,
    );
    let code = curl
        .exit_within(WAIT)
        .expect("stream.complete ends curl's stream");
    assert_eq!(code, 0, "the server closed the stream cleanly");
    transcript.push_str(&format!(
        "id: {id}\nevent: stream.complete\ndata: {{\"status\":\"success\"}}\n\n"
    ));
    let all = curl
        .wait_for(WAIT, |t| t.len() >= transcript.len())
        .unwrap_or_else(|| panic!("curl's output ended short: {:?}", curl.text()));
    assert_eq!(all, transcript, "the whole stream, byte for byte");

    // The job is over: a resuming client is told to stop, and the job takes no more events.
    let resume = request(
        "GET",
        &wrangler.url(&format!(
            "/runner-jobs/{job}/events/stream?lastEventId={id}"
        )),
        Some(&token),
        None,
    );
    assert_eq!(resume.status, 204);
    let late = request(
        "POST",
        &wrangler.url(&format!("/runner-jobs/{job}/events")),
        Some(&token),
        Some(r#"{"event":"step.output","data":"late"}"#),
    );
    assert_eq!(late.status, 409, "{}", late.body);
    assert_eq!(late.json()["error"], "stream_complete");
}
