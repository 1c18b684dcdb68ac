//! Bad input gets a clear JSON error and changes nothing.

use herald_core::Scope;
use herald_e2e::{full_token, request, stats, token, unique, Answer, Wrangler};

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["error"], code, "body: {}", answer.body);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message names the problem"
    );
}

#[test]
fn every_bad_request_is_a_json_4xx_and_changes_nothing() {
    let wrangler = Wrangler::start(&[
        ("HERALD_EVENT_BYTES_MAX", "1000"),
        ("HERALD_BATCH_EVENTS_MAX", "5"),
    ]);
    let token = full_token("acme");
    let stream = unique("errors");
    let events = wrangler.url(&format!("/v1/streams/{stream}/events"));
    let sub = wrangler.subscribe(&format!("/v1/streams/{stream}"), Some(&token), &[]);
    let post = |body: &str| request("POST", &events, Some(&token), Some(body));

    assert_error(&post("{not json"), 400, "malformed_json");
    assert_error(&post(r#"{"data":"no event name"}"#), 400, "invalid_event");
    assert_error(&post(r#"{"event":"bad\nname"}"#), 400, "invalid_event");
    assert_error(&post(r#"{"event":"bad\rname"}"#), 400, "invalid_event");
    assert_error(&post(r#"{"event":"bad\u0000name"}"#), 400, "invalid_event");
    assert_error(&post(r#"{"event":"ok","typo":1}"#), 400, "invalid_event");
    assert_error(
        &post(r#"{"event":"ok","category":"nope"}"#),
        400,
        "invalid_event",
    );
    assert_error(&post(r#"[]"#), 400, "invalid_event");
    let big = format!(r#"{{"event":"big","data":"{}"}}"#, "x".repeat(1001));
    assert_error(&post(&big), 413, "too_large");
    let many = format!("[{}]", [r#"{"event":"e"}"#; 6].join(","));
    assert_error(&post(&many), 413, "too_large");
    // A batch with one bad event among good ones is refused whole.
    assert_error(
        &post(r#"[{"event":"good"},{"event":"bad\nname"},{"event":"good"}]"#),
        400,
        "invalid_event",
    );

    let stats = stats(&wrangler.base, &stream, &token);
    assert_eq!(stats["log_events"], 0, "nothing was stored");
    assert!(stats["last_id"].is_null());
    // Nothing was sent either: the first event the subscriber sees is the next good one.
    request(
        "POST",
        &events,
        Some(&token),
        Some(r#"{"event":"first-good"}"#),
    );
    let first = sub
        .next_event(std::time::Duration::from_secs(10))
        .expect("event");
    assert_eq!(first.event, "first-good");
    assert!(
        first.id.ends_with("-1"),
        "the first stored event has seq 1: {}",
        first.id
    );
}

#[test]
fn routes_ids_filters_and_credentials() {
    let wrangler = Wrangler::start(&[]);
    let full = full_token("acme");
    let get = |path: &str, bearer: Option<&str>| request("GET", &wrangler.url(path), bearer, None);

    assert_error(&get("/nope", Some(&full)), 404, "not_found");
    assert_error(&get("/v1/streams/a/b/c", Some(&full)), 404, "not_found");
    let wrong_method = request("DELETE", &wrangler.url("/v1/streams/s1"), Some(&full), None);
    assert_error(&wrong_method, 405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("GET"));
    assert_error(
        &get("/v1/streams/s1/events", Some(&full)),
        405,
        "method_not_allowed",
    );
    assert_error(
        &request("POST", &wrangler.url("/api/events"), Some(&full), None),
        405,
        "method_not_allowed",
    );

    assert_error(
        &get("/v1/streams/bad%20id", Some(&full)),
        400,
        "invalid_connection_id",
    );
    assert_error(
        &get(&format!("/v1/streams/{}", "x".repeat(129)), Some(&full)),
        400,
        "invalid_connection_id",
    );
    assert_error(
        &get("/api/events/stream", Some(&full)),
        400,
        "missing_connection_id",
    );
    assert_error(
        &get(
            "/api/events/stream?connectionId=c1&types=job,bogus",
            Some(&full),
        ),
        400,
        "invalid_filter",
    );
    assert_error(
        &get("/v1/streams/s1?categories=unknown", Some(&full)),
        400,
        "invalid_filter",
    );
    assert_error(
        &get("/v1/streams/s1?types=bad%0Aname", Some(&full)),
        400,
        "invalid_filter",
    );

    assert_error(&get("/v1/streams/s1", None), 401, "unauthorized");
    assert_error(
        &get("/v1/streams/s1", Some("not.a.token")),
        401,
        "unauthorized",
    );
    let expired = token("acme", &[Scope::Subscribe], None, 0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_error(&get("/v1/streams/s1", Some(&expired)), 401, "unauthorized");
    let forged = format!("{}x", &full[..full.len() - 1]);
    assert_error(&get("/v1/streams/s1", Some(&forged)), 401, "unauthorized");
    assert_error(
        &get(&format!("/v1/streams/s1?token={full}"), None),
        401,
        "unauthorized",
    );

    let subscribe_only = token("acme", &[Scope::Subscribe], None, 600);
    assert_error(
        &request(
            "POST",
            &wrangler.url("/v1/streams/s1/events"),
            Some(&subscribe_only),
            Some(r#"{"event":"e"}"#),
        ),
        403,
        "forbidden",
    );
    let publish_only = token("acme", &[Scope::Publish], None, 600);
    assert_error(
        &get("/v1/streams/s1", Some(&publish_only)),
        403,
        "forbidden",
    );
    let one_stream = token(
        "acme",
        &[Scope::Publish, Scope::Subscribe],
        Some(&["s1"]),
        600,
    );
    assert_error(&get("/v1/streams/s2", Some(&one_stream)), 403, "forbidden");
    assert_eq!(get("/v1/streams/s1/stats", Some(&one_stream)).status, 200);

    assert_eq!(
        get("/healthz", None).json()["ok"],
        true,
        "the health check needs no credentials"
    );
}

#[test]
fn a_full_stream_refuses_subscribers_with_429_until_one_leaves() {
    let wrangler = Wrangler::start(&[
        ("HERALD_SUBSCRIBERS_MAX", "2"),
        ("HERALD_HEARTBEAT_MS", "300"),
    ]);
    let token = full_token("acme");
    let stream = unique("full");
    let path = format!("/v1/streams/{stream}");
    let first = wrangler.subscribe(&path, Some(&token), &[]);
    let second = wrangler.subscribe(&path, Some(&token), &[]);
    assert_eq!((first.status, second.status), (200, 200));
    let refused = request("GET", &wrangler.url(&path), Some(&token), None);
    assert_error(&refused, 429, "too_many_subscribers");
    assert_eq!(refused.header("retry-after"), Some("10"));
    assert_eq!(stats(&wrangler.base, &stream, &token)["subscribers"], 2);
    // The bound is per stream: another stream of the same tenant is unaffected.
    let other = wrangler.subscribe(&format!("/v1/streams/{stream}-b"), Some(&token), &[]);
    assert_eq!(other.status, 200);
    // Once a subscriber is gone (noticed at the next heartbeat), there is room again.
    first.abort();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while stats(&wrangler.base, &stream, &token)["subscribers"] != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped subscriber was never removed"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let third = wrangler.subscribe(&path, Some(&token), &[]);
    assert_eq!(third.status, 200);
}
