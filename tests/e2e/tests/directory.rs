//! The stream directory (`GET /v1/streams`): what a tenant's hubs report, within the report
//! interval, and who may see which entries.

use std::thread;
use std::time::{Duration, Instant};

use herald_core::Scope;
use herald_e2e::{full_token, publish, request, token, Wrangler};
use serde_json::Value;

/// Hubs report at most this often in these tests (`HERALD_DIRECTORY_REPORT_MS`).
const REPORT_MS: &str = "500";
/// How long a listing may take to catch up: the interval, a report's trip, and a slow machine.
const WAIT: Duration = Duration::from_secs(15);

fn list(wrangler: &Wrangler, token: &str, query: &str) -> herald_e2e::Answer {
    request(
        "GET",
        &wrangler.url(&format!("/v1/streams{query}")),
        Some(token),
        None,
    )
}

fn entry<'a>(listing: &'a Value, connection: &str) -> Option<&'a Value> {
    listing["streams"]
        .as_array()?
        .iter()
        .find(|entry| entry["connectionId"] == connection)
}

/// Lists until `done` holds for the listing, or fails with the last one.
fn wait_for(wrangler: &Wrangler, token: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let answer = list(wrangler, token, "");
        assert_eq!(answer.status, 200, "{}", answer.body);
        let listing = answer.json();
        if done(&listing) {
            return listing;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not listed within {WAIT:?}: {listing}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_directory_follows_publishes_subscribers_and_completion() {
    // Frequent heartbeats: under wrangler dev a client that goes away is noticed at the next write.
    let wrangler = Wrangler::start(&[
        ("HERALD_DIRECTORY_REPORT_MS", REPORT_MS),
        ("HERALD_HEARTBEAT_MS", "250"),
    ]);
    let token = full_token("acme");
    let empty = list(&wrangler, &token, "");
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.json()["streams"], serde_json::json!([]));
    assert_eq!(empty.json()["reportMs"], 500);

    let quiet = publish(
        &wrangler.base,
        "quiet",
        &token,
        r#"{"event":"job","data":1}"#,
    );
    let subscriber = wrangler.subscribe_stream("busy", &token, &[]);
    // Three publishes within one interval: the first is reported at once, the last when the
    // interval ends (the hub's alarm), and none may be lost in between.
    let mut last = Vec::new();
    for n in 0..3 {
        last = publish(
            &wrangler.base,
            "busy",
            &token,
            &format!(r#"{{"event":"job","data":{n}}}"#),
        );
    }
    let last_busy = last[0].clone();
    let listing = wait_for(&wrangler, &token, "both streams", |listing| {
        entry(listing, "quiet").is_some_and(|e| e["lastEventId"] == quiet[0].as_str())
            && entry(listing, "busy")
                .is_some_and(|e| e["lastEventId"] == last_busy.as_str() && e["subscribers"] == 1)
    });
    let busy = entry(&listing, "busy").expect("busy");
    assert_eq!(busy["family"], "generic");
    assert_eq!(busy["complete"], false);
    assert!(busy["lastEventMs"].as_u64().is_some(), "{busy}");
    assert!(busy["reportedMs"].as_u64().is_some(), "{busy}");
    // Newest event first.
    let order: Vec<&str> = listing["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|e| e["connectionId"].as_str())
        .collect();
    assert_eq!(order, ["busy", "quiet"]);

    publish(
        &wrangler.base,
        "quiet",
        &token,
        r#"{"event":"stream.complete"}"#,
    );
    // Stats calls report nothing to the directory: the subscriber's leaving reaches it only from
    // the hub's close handler.
    subscriber.abort();
    let deadline = Instant::now() + WAIT;
    while herald_e2e::stats(&wrangler.base, "busy", &token)["subscribers"] != 0 {
        assert!(
            Instant::now() < deadline,
            "the hub still counts the subscriber"
        );
        thread::sleep(Duration::from_millis(100));
    }
    wait_for(
        &wrangler,
        &token,
        "completion and the subscriber gone",
        |listing| {
            entry(listing, "quiet").is_some_and(|e| e["complete"] == true)
                && entry(listing, "busy").is_some_and(|e| e["subscribers"] == 0)
        },
    );

    let newest = list(&wrangler, &token, "?limit=1");
    assert_eq!(newest.status, 200, "{}", newest.body);
    let streams = newest.json()["streams"].clone();
    assert_eq!(streams.as_array().map(Vec::len), Some(1), "{streams}");
}

#[test]
fn each_credential_sees_only_its_tenants_allowed_streams() {
    let wrangler = Wrangler::start(&[("HERALD_DIRECTORY_REPORT_MS", REPORT_MS)]);
    let acme = full_token("acme");
    publish(&wrangler.base, "alpha", &acme, r#"{"event":"job"}"#);
    publish(&wrangler.base, "beta", &acme, r#"{"event":"job"}"#);
    wait_for(&wrangler, &acme, "both streams", |listing| {
        entry(listing, "alpha").is_some() && entry(listing, "beta").is_some()
    });

    // Another tenant has its own directory, empty; the same connection ids there are its own.
    let globex = full_token("globex");
    let theirs = list(&wrangler, &globex, "");
    assert_eq!(theirs.json()["streams"], serde_json::json!([]));

    // A token limited to some streams lists only those.
    let limited = token("acme", &[Scope::Subscribe], Some(&["beta", "gamma"]), 600);
    let listing = list(&wrangler, &limited, "").json();
    let ids: Vec<&str> = listing["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|e| e["connectionId"].as_str())
        .collect();
    assert_eq!(ids, ["beta"]);

    // Publish-only tokens, tickets and no credential are refused; a bad limit names the problem.
    let publisher = token("acme", &[Scope::Publish], None, 600);
    let refused = list(&wrangler, &publisher, "");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("subscribe scope"), "{}", refused.body);
    let ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&acme),
        Some(r#"{"connectionId":"alpha"}"#),
    )
    .json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let with_ticket = request(
        "GET",
        &wrangler.url(&format!("/v1/streams?ticket={ticket}")),
        None,
        None,
    );
    assert_eq!(with_ticket.status, 401, "{}", with_ticket.body);
    assert_eq!(
        request("GET", &wrangler.url("/v1/streams"), None, None).status,
        401
    );
    for bad in ["0", "1001", "many"] {
        let answer = list(&wrangler, &acme, &format!("?limit={bad}"));
        assert_eq!(answer.status, 400, "{}", answer.body);
        assert_eq!(answer.json()["error"], "invalid_limit", "{}", answer.body);
    }
}
