//! Dashtam's per-user stream (`GET /api/v1/events`: the user named by the token, categories derived
//! from Dashtam's type names, `?Last-Event-ID=` in the query) and a runner job joined mid-run with
//! `curl -N` and no `Last-Event-ID` (the output so far, then live).

use std::time::Duration;

use herald_core::Scope;
use herald_e2e::clients::Curl;
use herald_e2e::{full_token, publish, request, token, unique, Subscription, Wrangler};

const WAIT: Duration = Duration::from_secs(20);

/// A subscribe-only token confined to the given streams (a Dashtam user's token names its user by
/// holding `user.<userId>`).
fn user_token(tenant: &str, streams: &[&str]) -> String {
    token(tenant, &[Scope::Subscribe], Some(streams), 3600)
}

fn names(sub: &Subscription, n: usize) -> Vec<String> {
    sub.take(n, WAIT).into_iter().map(|m| m.event).collect()
}

/// The status and `error` code of a subscribe that must be refused.
fn refused(wrangler: &Wrangler, path: &str, bearer: Option<&str>) -> (u16, String) {
    let answer = request("GET", &wrangler.url(path), bearer, None);
    let code = serde_json::from_str::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|body| body["error"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("{path}: not an error body: {:?}", answer.body));
    (answer.status, code)
}

#[test]
fn each_user_gets_only_their_own_stream() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let tenant = unique("dashtam");
    let (alice, bob) = (unique("alice"), unique("bob"));
    let (alice_stream, bob_stream) = (format!("user.{alice}"), format!("user.{bob}"));
    let alice_token = user_token(&tenant, &[&alice_stream]);
    // A token may hold other streams too; its one user stream names the user.
    let bob_token = user_token(&tenant, &["shared-board", &bob_stream]);
    let backend = full_token(&tenant);

    let alice_sub = wrangler.subscribe("/api/v1/events", Some(&alice_token), &[]);
    let bob_sub = wrangler.subscribe("/api/v1/events", Some(&bob_token), &[]);
    assert_eq!((alice_sub.status, bob_sub.status), (200, 200));
    assert!(alice_sub
        .header("content-type")
        .is_some_and(|v| v.starts_with("text/event-stream")));

    publish(
        &wrangler.base,
        &alice_stream,
        &backend,
        r#"{"event":"sync.accounts.started","data":{"for":"alice"}}"#,
    );
    publish(
        &wrangler.base,
        &bob_stream,
        &backend,
        r#"{"event":"ai.response.chunk","data":{"for":"bob"}}"#,
    );
    publish(
        &wrangler.base,
        &alice_stream,
        &backend,
        r#"{"event":"security.session.new","data":{"for":"alice"}}"#,
    );
    let alice_got = alice_sub.take(2, WAIT);
    let bob_got = bob_sub.take(1, WAIT);
    assert_eq!(
        alice_got
            .iter()
            .map(|m| (m.event.as_str(), m.data.as_str()))
            .collect::<Vec<_>>(),
        [
            ("sync.accounts.started", r#"{"for":"alice"}"#),
            ("security.session.new", r#"{"for":"alice"}"#)
        ]
    );
    assert_eq!(
        (bob_got[0].event.as_str(), bob_got[0].data.as_str()),
        ("ai.response.chunk", r#"{"for":"bob"}"#)
    );
    // Nothing of the other user's arrives: the next event each gets is its own marker.
    publish(
        &wrangler.base,
        &bob_stream,
        &backend,
        r#"{"event":"b.marker"}"#,
    );
    publish(
        &wrangler.base,
        &alice_stream,
        &backend,
        r#"{"event":"a.marker"}"#,
    );
    assert_eq!(names(&alice_sub, 1), ["a.marker"]);
    assert_eq!(names(&bob_sub, 1), ["b.marker"]);

    // One user's token never reaches another's stream, by any route.
    let bob_path = format!("/v1/streams/{bob_stream}");
    assert_eq!(
        refused(&wrangler, &bob_path, Some(&alice_token)),
        (403, "forbidden".into())
    );
    let ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&alice_token),
        Some(&format!(r#"{{"connectionId":"{bob_stream}"}}"#)),
    );
    assert_eq!(ticket.status, 403, "{}", ticket.body);
    // A query naming another stream changes nothing: the stream is the token's user's.
    let sneaky = wrangler.subscribe(
        &format!("/api/v1/events?connectionId={bob_stream}"),
        Some(&alice_token),
        &[],
    );
    assert_eq!(sneaky.status, 200);
    publish(
        &wrangler.base,
        &bob_stream,
        &backend,
        r#"{"event":"b.secret"}"#,
    );
    publish(
        &wrangler.base,
        &alice_stream,
        &backend,
        r#"{"event":"a.own"}"#,
    );
    assert_eq!(names(&sneaky, 1), ["a.own"]);

    // A ticket minted for the user's stream names the same user (EventSource's way in).
    let minted = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&alice_token),
        Some(&format!(r#"{{"connectionId":"{alice_stream}"}}"#)),
    );
    assert_eq!(minted.status, 200, "{}", minted.body);
    let ticket = minted.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    let by_ticket = wrangler.subscribe(&format!("/api/v1/events?ticket={ticket}"), None, &[]);
    assert_eq!(by_ticket.status, 200);
    publish(
        &wrangler.base,
        &alice_stream,
        &backend,
        r#"{"event":"a.ticket"}"#,
    );
    assert_eq!(names(&by_ticket, 1), ["a.ticket"]);

    // Tokens that name no user, or several, are refused before any stream opens; none is 200.
    let several = user_token(&tenant, &[&alice_stream, &bob_stream]);
    for (bearer, why) in [
        (backend.as_str(), "a token for every stream names no user"),
        (several.as_str(), "a token for two users names neither"),
    ] {
        assert_eq!(
            refused(&wrangler, "/api/v1/events", Some(bearer)),
            (403, "forbidden".into()),
            "{why}"
        );
    }
    let other_ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&backend),
        Some(r#"{"connectionId":"board"}"#),
    );
    let other_ticket = other_ticket.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    assert_eq!(
        refused(
            &wrangler,
            &format!("/api/v1/events?ticket={other_ticket}"),
            None
        ),
        (403, "forbidden".into()),
        "a ticket for a stream that is no user's"
    );
    assert_eq!(
        refused(&wrangler, "/api/v1/events", None),
        (401, "unauthorized".into())
    );
    // A publish-only token cannot subscribe, even to its user's stream.
    let publisher = token(&tenant, &[Scope::Publish], Some(&[&alice_stream]), 600);
    assert_eq!(
        refused(&wrangler, "/api/v1/events", Some(&publisher)),
        (403, "forbidden".into())
    );
}

#[test]
fn categories_are_derived_from_dashtam_type_names() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let tenant = unique("dashtam");
    let user = unique("u");
    let stream = format!("user.{user}");
    let bearer = user_token(&tenant, &[&stream]);
    let backend = full_token(&tenant);
    let sync_or_security = wrangler.subscribe(
        "/api/v1/events?categories=data_sync,security",
        Some(&bearer),
        &[],
    );
    let ai = wrangler.subscribe("/api/v1/events?categories=ai", Some(&bearer), &[]);
    let everything = wrangler.subscribe("/api/v1/events", Some(&bearer), &[]);
    assert_eq!(
        (sync_or_security.status, ai.status, everything.status),
        (200, 200, 200)
    );
    // None of these name a category: each gets the one of its type's first segment.
    publish(
        &wrangler.base,
        &stream,
        &backend,
        r#"[{"event":"sync.transactions.completed"},{"event":"ai.response.chunk","data":"Hel"},
            {"event":"provider.token.expiring"},{"event":"import.progress"},
            {"event":"portfolio.networth.updated"},{"event":"security.login.failed"},
            {"event":"note.other"},{"event":"ai.tool.executing","category":"security"}]"#,
    );
    assert_eq!(
        names(&sync_or_security, 3),
        [
            "sync.transactions.completed",
            "security.login.failed",
            // An explicit category wins over the derived one.
            "ai.tool.executing"
        ]
    );
    assert_eq!(names(&ai, 1), ["ai.response.chunk"]);
    assert_eq!(names(&everything, 8).len(), 8);
    publish(
        &wrangler.base,
        &stream,
        &backend,
        r#"[{"event":"ai.response.complete"},{"event":"sync.x"}]"#,
    );
    assert_eq!(names(&ai, 1), ["ai.response.complete"]);
    assert_eq!(names(&sync_or_security, 1), ["sync.x"]);
    // The derived category is stored with the event: a resume filters the replay by it too.
    let first = publish(
        &wrangler.base,
        &stream,
        &backend,
        r#"[{"event":"import.started"},{"event":"provider.disconnected"},{"event":"import.failed"}]"#,
    );
    let replay = wrangler.subscribe(
        "/api/v1/events?categories=import",
        Some(&bearer),
        &[("Last-Event-ID", first[0].as_str())],
    );
    assert_eq!(names(&replay, 1), ["import.failed"]);
    // An unknown category is a 400 before the stream opens, as on every stream.
    assert_eq!(
        refused(&wrangler, "/api/v1/events?categories=sync", Some(&bearer)),
        (400, "invalid_filter".into())
    );
}

#[test]
fn the_last_event_id_query_alias_resumes_as_dashtam_clients_send_it() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let tenant = unique("dashtam");
    let stream = format!("user.{}", unique("u"));
    let bearer = user_token(&tenant, &[&stream]);
    let backend = full_token(&tenant);
    let ids = publish(
        &wrangler.base,
        &stream,
        &backend,
        r#"[{"event":"import.progress","data":"1"},{"event":"import.progress","data":"2"},
            {"event":"import.progress","data":"3"}]"#,
    );
    let resumed = wrangler.subscribe(
        &format!("/api/v1/events?Last-Event-ID={}", ids[0]),
        Some(&bearer),
        &[],
    );
    let got = resumed.take(2, WAIT);
    assert_eq!(
        got.iter()
            .map(|m| (m.id.as_str(), m.data.as_str()))
            .collect::<Vec<_>>(),
        [(ids[1].as_str(), "2"), (ids[2].as_str(), "3")]
    );
    // Then live, with no gap.
    let live = publish(
        &wrangler.base,
        &stream,
        &backend,
        r#"{"event":"import.completed","data":"4"}"#,
    );
    let next = resumed.next_event(WAIT).expect("live event");
    assert_eq!(
        (next.id.as_str(), next.data.as_str()),
        (live[0].as_str(), "4")
    );
    // An id the log cannot vouch for starts with a reset, as through the header.
    let garbage = wrangler.subscribe("/api/v1/events?Last-Event-ID=nope", Some(&bearer), &[]);
    let first = garbage.next_event(WAIT).expect("reset");
    assert_eq!(first.event, "reset");
    assert!(
        first.data.contains(r#""reason":"malformed""#),
        "{}",
        first.data
    );
    // The alias works on every family (here a generic stream), and the header still wins.
    let generic = wrangler.subscribe(
        &format!("/v1/streams/{stream}?Last-Event-ID={}", ids[2]),
        Some(&backend),
        &[("Last-Event-ID", ids[1].as_str())],
    );
    assert_eq!(
        generic.next_event(WAIT).map(|m| m.data),
        Some("3".to_string())
    );
}

#[test]
fn curl_joining_a_running_job_sees_its_output_so_far_then_live() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let token = full_token("ci");
    let job = unique("build");
    let publish_url = wrangler.url(&format!("/runner-jobs/{job}/events"));
    let post = |body: &str| {
        let answer = request("POST", &publish_url, Some(&token), Some(body));
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|id| id.as_str().expect("id").to_string())
            .collect::<Vec<_>>()
    };
    // The job has run a while before anyone watches.
    let before = post(
        r#"[{"event":"step.started","data":{"stepId":"s1","name":"Build","phase":"build"}},
            {"event":"step.output","data":"compiling herald v0.1.0"},
            {"event":"step.output","data":"warning: unused variable"}]"#,
    );
    let mut curl = Curl::stream(
        &wrangler.url(&format!("/runner-jobs/{job}/events/stream")),
        &token,
    );
    let so_far = format!(
        "retry: 3000\n: open\n\n\
         id: {}\nevent: step.started\ndata: {{\"stepId\":\"s1\",\"name\":\"Build\",\"phase\":\"build\"}}\n\n\
         id: {}\nevent: step.output\ndata: compiling herald v0.1.0\n\n\
         id: {}\nevent: step.output\ndata: warning: unused variable\n\n",
        before[0], before[1], before[2]
    );
    let seen = curl
        .wait_for(WAIT, |t| t.len() >= so_far.len())
        .unwrap_or_else(|| panic!("the output so far: {:?}", curl.text()));
    assert_eq!(
        seen, so_far,
        "the job's output from its first event, in order"
    );
    // Then live: each new line shows up before the next is published.
    let mut transcript = so_far;
    for line in ["Finished release", "running 3 tests"] {
        let ids = post(&format!(r#"{{"event":"step.output","data":"{line}"}}"#));
        transcript.push_str(&format!(
            "id: {}\nevent: step.output\ndata: {line}\n\n",
            ids[0]
        ));
        let seen = curl
            .wait_for(WAIT, |t| t.len() >= transcript.len())
            .unwrap_or_else(|| panic!("{line} live: {:?}", curl.text()));
        assert_eq!(seen, transcript, "no duplicate across the replay/live seam");
    }
    let end = post(r#"{"event":"stream.complete","data":{"status":"success"}}"#);
    assert_eq!(
        curl.exit_within(WAIT),
        Some(0),
        "curl exits at the job's end"
    );
    transcript.push_str(&format!(
        "id: {}\nevent: stream.complete\ndata: {{\"status\":\"success\"}}\n\n",
        end[0]
    ));
    assert_eq!(curl.text(), transcript);

    // A resume with an id still gets only what follows it; a generic stream's joiner gets live
    // only.
    let stream = unique("feed");
    publish(&wrangler.base, &stream, &token, r#"{"event":"old"}"#);
    let live_only = wrangler.subscribe_stream(&stream, &token, &[]);
    publish(&wrangler.base, &stream, &token, r#"{"event":"new"}"#);
    assert_eq!(names(&live_only, 1), ["new"]);
}

#[test]
fn a_joiner_is_told_when_the_jobs_beginning_was_evicted() {
    let wrangler = Wrangler::start(&[
        ("HERALD_HEARTBEAT_MS", "600000"),
        ("HERALD_LOG_EVENTS_MAX", "3"),
    ]);
    let token = full_token("ci");
    let job = unique("long");
    let url = wrangler.url(&format!("/runner-jobs/{job}/events"));
    let mut bodies = Vec::new();
    for n in 1..=5 {
        bodies.push(format!(r#"{{"event":"step.output","data":"line {n}"}}"#));
    }
    let answer = request(
        "POST",
        &url,
        Some(&token),
        Some(&format!("[{}]", bodies.join(","))),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let ids: Vec<String> = answer.json()["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|id| id.as_str().expect("id").to_string())
        .collect();
    let sub = wrangler.subscribe(
        &format!("/runner-jobs/{job}/events/stream"),
        Some(&token),
        &[],
    );
    let got = sub.take(4, WAIT);
    assert_eq!(got[0].event, "reset");
    assert_eq!(
        got[0].data,
        format!(r#"{{"reason":"evicted","oldest":"{}"}}"#, ids[2])
    );
    assert_eq!(
        got[1..].iter().map(|m| m.data.as_str()).collect::<Vec<_>>(),
        ["line 3", "line 4", "line 5"]
    );
}
