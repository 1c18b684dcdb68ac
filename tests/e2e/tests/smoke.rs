//! The shortest path through Herald: publish, then see it live and in the stats.

use std::time::Duration;

use herald_e2e::{full_token, publish, request, unique, Subscription, Wrangler};

#[test]
fn publish_reaches_a_live_subscriber() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("smoke");
    let sub = Subscription::open(
        &wrangler.base,
        &format!("/v1/streams/{stream}"),
        Some(&token),
        &[],
    );
    assert_eq!(sub.status, 200);
    assert_eq!(
        sub.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let ids = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"{"event":"job:state_change","data":{"id":"j1"}}"#,
    );
    let got = sub.take(1, Duration::from_secs(10));
    assert_eq!(got[0].event, "job:state_change");
    assert_eq!(got[0].data, r#"{"id":"j1"}"#);
    assert_eq!(got[0].id, ids[0]);
    let stats = request(
        "GET",
        &wrangler.url(&format!("/v1/streams/{stream}/stats")),
        Some(&token),
        None,
    )
    .json();
    assert_eq!(stats["subscribers"], 1);
    assert_eq!(stats["last_id"], ids[0].as_str());
}
