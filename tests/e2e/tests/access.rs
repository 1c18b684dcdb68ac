//! Tickets for header-less clients, CORS for pages on other origins, tenancy, and the seed
//! dialects' streams (sluice's named heartbeats and `types=`, runner jobs).

use std::time::Duration;

use herald_core::{mint, verify, ConnectionId, Scope};
use herald_e2e::{full_token, publish, request, stats, token, unique, Wrangler, TEST_KEY};

const WAIT: Duration = Duration::from_secs(15);

fn mint_ticket(wrangler: &Wrangler, bearer: &str, connection: &str) -> herald_e2e::Answer {
    request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(bearer),
        Some(&format!(r#"{{"connectionId":"{connection}"}}"#)),
    )
}

#[test]
fn tickets_are_narrow_reusable_until_expiry_and_never_access_tokens() {
    let wrangler = Wrangler::start(&[("HERALD_TICKET_TTL_S", "30")]);
    let full = full_token("acme");
    let stream = unique("ticketed");
    let answer = mint_ticket(&wrangler, &full, &stream);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let body = answer.json();
    let ticket = body["ticket"].as_str().expect("ticket").to_string();
    assert_eq!(body["connectionId"], stream.as_str());
    let expires_at = body["expiresAt"].as_u64().expect("expiry");
    let now = herald_e2e::now_s();
    assert!(
        (now + 25..=now + 30).contains(&expires_at),
        "HERALD_TICKET_TTL_S is honoured: {expires_at} vs {now}"
    );

    // Good for its stream, twice (EventSource reconnects reuse the URL)...
    for _ in 0..2 {
        let sub = wrangler.subscribe(&format!("/v1/streams/{stream}?ticket={ticket}"), None, &[]);
        assert_eq!(sub.status, 200);
        publish(&wrangler.base, &stream, &full, r#"{"event":"hello"}"#);
        assert_eq!(sub.take(1, WAIT)[0].event, "hello");
    }
    // ...and for nothing else.
    let other = request(
        "GET",
        &wrangler.url(&format!("/v1/streams/other?ticket={ticket}")),
        None,
        None,
    );
    assert_eq!(other.status, 403);
    let as_bearer = request(
        "POST",
        &wrangler.url(&format!("/v1/streams/{stream}/events")),
        Some(&ticket),
        Some(r#"{"event":"x"}"#),
    );
    assert_eq!(as_bearer.status, 401, "a ticket is not an access token");
    let access_in_url = request(
        "GET",
        &wrangler.url(&format!("/v1/streams/{stream}?ticket={full}")),
        None,
        None,
    );
    assert_eq!(access_in_url.status, 401, "an access token is not a ticket");
    // A token that cannot subscribe cannot mint one.
    let publisher = token("acme", &[Scope::Publish], None, 600);
    assert_eq!(mint_ticket(&wrangler, &publisher, &stream).status, 403);
    assert_eq!(mint_ticket(&wrangler, &full, "bad id").status, 400);
    // Expired: 401, and EventSource stops retrying on a non-200. (Minted here, signed with the test
    // key, so that no test waits on the clock.)
    let connection = ConnectionId::new(&stream).expect("id");
    let access = verify(&full, TEST_KEY.as_bytes(), now).expect("token");
    let stale = access
        .ticket_for(&connection, now - 100, 10)
        .expect("ticket");
    let expired = request(
        "GET",
        &wrangler.url(&format!(
            "/v1/streams/{stream}?ticket={}",
            mint(&stale, TEST_KEY.as_bytes())
        )),
        None,
        None,
    );
    assert_eq!(expired.status, 401);
    assert!(
        expired.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("expire"),
        "{}",
        expired.body
    );
    // Neither the access token nor the ticket ever reaches a log.
    let logs = wrangler.logs();
    assert!(
        logs.contains("/v1/tickets"),
        "the request log is being read"
    );
    assert!(
        !logs.contains(&ticket) && !logs.contains(&full),
        "a credential was logged"
    );
}

#[test]
fn cors_allows_listed_origins_and_last_event_id() {
    let wrangler = Wrangler::start(&[(
        "HERALD_CORS_ORIGINS",
        "http://app.example,http://localhost:8000",
    )]);
    let preflight = ureq::request("OPTIONS", &wrangler.url("/v1/streams/s1"))
        .set("Origin", "http://app.example")
        .set("Access-Control-Request-Method", "GET")
        .set("Access-Control-Request-Headers", "last-event-id")
        .call()
        .expect("preflight");
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    let allowed = preflight
        .header("access-control-allow-headers")
        .expect("allow-headers")
        .to_ascii_lowercase();
    assert!(
        allowed.contains("last-event-id") && allowed.contains("authorization"),
        "{allowed}"
    );

    let listed = ureq::get(&wrangler.url("/healthz"))
        .set("Origin", "http://localhost:8000")
        .call()
        .expect("get");
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("http://localhost:8000")
    );
    let unlisted = ureq::get(&wrangler.url("/healthz"))
        .set("Origin", "http://evil.example")
        .call()
        .expect("get");
    assert_eq!(unlisted.header("access-control-allow-origin"), None);
    // Errors carry CORS headers too, so a page can read them.
    let denied = ureq::get(&wrangler.url("/v1/streams/s1"))
        .set("Origin", "http://app.example")
        .call();
    let Err(ureq::Error::Status(401, response)) = denied else {
        panic!("expected 401")
    };
    assert_eq!(
        response.header("access-control-allow-origin"),
        Some("http://app.example")
    );
}

#[test]
fn tenants_sharing_a_connection_id_never_meet() {
    let wrangler = Wrangler::start(&[]);
    let (acme, globex) = (full_token("acme"), full_token("globex"));
    let acme_sub = wrangler.subscribe("/v1/streams/shared", Some(&acme), &[]);
    let globex_sub = wrangler.subscribe("/v1/streams/shared", Some(&globex), &[]);
    publish(&wrangler.base, "shared", &acme, r#"{"event":"acme-only"}"#);
    publish(
        &wrangler.base,
        "shared",
        &globex,
        r#"{"event":"globex-only"}"#,
    );
    assert_eq!(acme_sub.take(1, WAIT)[0].event, "acme-only");
    assert_eq!(globex_sub.take(1, WAIT)[0].event, "globex-only");
    assert!(
        acme_sub.next_event(Duration::from_secs(2)).is_none(),
        "acme never sees globex's event"
    );
    let acme_stats = stats(&wrangler.base, "shared", &acme);
    assert_eq!(
        (
            acme_stats["log_events"].as_u64(),
            acme_stats["subscribers"].as_u64()
        ),
        (Some(1), Some(1))
    );
}

#[test]
fn sluice_streams_send_named_iso_heartbeats_and_filter_types() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "300")]);
    let full = full_token("acme");
    let connection = unique("sluice");
    let sub = wrangler.subscribe(
        &format!("/api/events/stream?connectionId={connection}&types=job,queue"),
        Some(&full),
        &[],
    );
    assert_eq!(sub.status, 200);
    let heartbeat = sub.next(WAIT).expect("heartbeat");
    assert_eq!(heartbeat.event, "heartbeat");
    let data: serde_json::Value = serde_json::from_str(&heartbeat.data).expect("JSON");
    let timestamp = data["timestamp"].as_str().expect("string timestamp");
    assert!(
        timestamp.len() == 24 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
        "ISO 8601: {timestamp}"
    );
    publish(
        &wrangler.base,
        &connection,
        &full,
        r#"[{"event":"worker:heartbeat","data":{"id":"w1"}},{"event":"job:state_change","data":{"id":"j1","state":"active","previousState":"queued"}},{"event":"queue:snapshot","data":{"name":"default","depth":42,"consumers":4}}]"#,
    );
    let got = sub.take(2, WAIT);
    assert_eq!(
        got.iter().map(|m| m.event.as_str()).collect::<Vec<_>>(),
        ["job:state_change", "queue:snapshot"]
    );
    assert_eq!(
        got[1].data,
        r#"{"name":"default","depth":42,"consumers":4}"#
    );
}
