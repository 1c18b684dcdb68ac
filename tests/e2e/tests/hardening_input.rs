//! Hostile or broken input: JSON nested too deep to store or parse,
//! lone surrogate escapes, the Bearer scheme and `typ` in any case, and tokens' time bounds, each
//! answered with a clear 4xx before anything is stored.

use std::process::Command;
use std::time::Duration;

use herald_core::{mint, Claims, Scope, Scopes, TenantId, TokenKind};
use herald_e2e::{
    full_token, now_s, repo_root, request, stats, token, unique, Answer, Wrangler, TEST_KEY,
};
use herald_test_support::nested_json;

fn assert_refused(answer: &Answer, status: u16, code: &str, says: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.body);
    let body = answer.json();
    assert_eq!(body["error"], code, "body: {}", answer.body);
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "message {message:?} lacks {says:?}");
}

/// A request with the `Authorization` header exactly as given.
fn with_authorization(method: &str, url: &str, authorization: &str, body: Option<&str>) -> Answer {
    let request = ureq::request(method, url)
        .timeout(Duration::from_secs(30))
        .set("authorization", authorization);
    let result = match body {
        Some(body) => request
            .set("content-type", "application/json")
            .send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("transport error: {error}"),
    };
    Answer {
        status: response.status(),
        headers: Vec::new(),
        body: response.into_string().unwrap_or_default(),
    }
}

/// An HS256 token over exactly this header and payload JSON, signed by Node's crypto (herald-core's
/// `mint` always writes `{"alg":"HS256","typ":"JWT"}`).
fn signed(header: &str, payload: &str) -> String {
    const SIGN: &str = "const [h, p, k] = process.argv.slice(1); \
        const b = (s) => Buffer.from(s).toString('base64url'); const t = b(h) + '.' + b(p); \
        console.log(t + '.' + require('crypto').createHmac('sha256', k).update(t).digest('base64url'));";
    let out = Command::new(repo_root().join("node_modules/.bin/node"))
        .args(["-e", SIGN, header, payload, TEST_KEY])
        .output()
        .expect("run node");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An access token for `acme` with both scopes and these times.
fn timed(exp_s: u64, iat_s: Option<u64>) -> String {
    let claims = Claims {
        tenant: TenantId::new("acme").unwrap(),
        scopes: Scopes::ALL,
        streams: None,
        exp_s,
        iat_s,
        kind: TokenKind::Access,
    };
    mint(&claims, TEST_KEY.as_bytes())
}

#[test]
fn event_data_too_deep_or_with_a_lone_surrogate_is_a_400_and_stores_nothing() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("deep");
    let events = wrangler.url(&format!("/v1/streams/{stream}/events"));
    let post = |data: &str| {
        let body = format!(r#"{{"event":"e","data":{data}}}"#);
        request("POST", &events, Some(&token), Some(&body))
    };

    // At the limit: stored.
    assert_eq!(post(&nested_json(64)).status, 200);
    // One level more, and 30,000 levels (60 KB of brackets, under the size limits).
    for depth in [65, 30_000] {
        assert_refused(
            &post(&nested_json(depth)),
            400,
            "invalid_event",
            "deeper than 64",
        );
    }
    // In a batch, the event is named and the batch refused whole.
    let batch = format!(
        r#"[{{"event":"ok"}},{{"event":"deep","data":{}}}]"#,
        nested_json(100)
    );
    assert_refused(
        &request("POST", &events, Some(&token), Some(&batch)),
        400,
        "invalid_event",
        "event 1: field `data` nests",
    );

    // A lone surrogate escape, as JSON data and as text data.
    for data in [r#"{"a":"\ud800"}"#, r#"["x\udc00"]"#, r#""\ud800 alone""#] {
        assert_refused(&post(data), 400, "invalid_event", "lone surrogate");
    }
    // A pair is one character: stored, verbatim.
    assert_eq!(post(r#"{"a":"\ud83d\ude00"}"#).status, 200);

    let stats = stats(&wrangler.base, &stream, &token);
    assert_eq!(stats["log_events"], 2, "only the two good events: {stats}");
}

#[test]
fn plan_bodies_too_deep_to_store_are_refused_and_the_hub_survives_a_restart() {
    let mut wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let post = |wrangler: &Wrangler, path: &str, body: &str| {
        request("POST", &wrangler.url(path), Some(&token), Some(body))
    };
    let stage = |op: &str, details_depth: usize| {
        // `details` is an object, so its value nests one level less.
        format!(
            r#"{{"op":"{op}","stage":"validation","details":{{"k":{}}}}}"#,
            nested_json(details_depth - 1)
        )
    };
    assert_eq!(post(&wrangler, "/api/plan", "{}").status, 204);
    // Details at their limit (the body at 64): stored in the session.
    let at_limit = post(&wrangler, "/api/plan/stages", &stage("start", 63));
    assert_eq!(at_limit.status, 200, "{}", at_limit.body);
    // One more level; 125 (under serde_json's limit, but not once stored); 30,000.
    for depth in [64, 125, 30_000] {
        assert_refused(
            &post(&wrangler, "/api/plan/stages", &stage("update", depth)),
            400,
            "invalid_plan_command",
            "deeper than 64",
        );
    }
    let unpaired = r#"{"op":"update","stage":"validation","details":{"k":"\udbff"}}"#;
    assert_refused(
        &post(&wrangler, "/api/plan/stages", unpaired),
        400,
        "invalid_plan_command",
        "lone surrogate",
    );
    // A plan request ignores unknown fields, but not their depth (422, as SQLMesh's FastAPI answers
    // a body that does not validate).
    let request_body = format!(r#"{{"environment":"dev","extra":{}}}"#, nested_json(30_000));
    assert_refused(
        &post(&wrangler, "/api/plan", &request_body),
        422,
        "invalid_plan",
        "deeper than 64",
    );

    // After a restart the hub reads its stored plan back and takes the next move.
    wrangler.restart();
    let stop = post(
        &wrangler,
        "/api/plan/stages",
        r#"{"op":"stop","stage":"validation","success":true}"#,
    );
    assert_eq!(stop.status, 200, "{}", stop.body);
    let events = request(
        "POST",
        &wrangler.url("/v1/streams/default/events"),
        Some(&token),
        Some(r#"{"event":"after-restart"}"#),
    );
    assert_eq!(events.status, 200, "{}", events.body);
}

#[test]
fn the_bearer_scheme_and_the_jwt_type_are_case_insensitive_and_times_are_bounded() {
    let wrangler = Wrangler::start(&[]);
    let stats_url = wrangler.url(&format!("/v1/streams/{}/stats", unique("auth")));
    let get = |authorization: &str| with_authorization("GET", &stats_url, authorization, None);
    let token = full_token("acme");

    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let answer = get(&format!("{scheme} {token}"));
        assert_eq!(answer.status, 200, "{scheme}: {}", answer.body);
    }
    for refused in [
        format!("Basic {token}"),
        format!("Bearer{token}"),
        "Bearer".into(),
    ] {
        assert_refused(&get(&refused), 401, "unauthorized", "Bearer <token>");
    }
    // Publishing takes the same header.
    let events = wrangler.url(&format!("/v1/streams/{}/events", unique("auth")));
    let publish = with_authorization(
        "POST",
        &events,
        &format!("BEARER {token}"),
        Some(r#"{"event":"e"}"#),
    );
    assert_eq!(publish.status, 200, "{}", publish.body);

    // `typ` is a media type: any case, with or without `application/`.
    let payload = format!(
        r#"{{"sub":"acme","scope":"publish subscribe","exp":{}}}"#,
        now_s() + 600
    );
    for typ in ["JWT", "jwt", "application/jwt"] {
        let header = format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#);
        let answer = get(&format!("Bearer {}", signed(&header, &payload)));
        assert_eq!(answer.status, 200, "typ {typ}: {}", answer.body);
    }
    let jose = signed(r#"{"alg":"HS256","typ":"JOSE"}"#, &payload);
    assert_refused(
        &get(&format!("Bearer {jose}")),
        401,
        "unauthorized",
        "header",
    );

    // At most 30 days by default, from `iat` (or from now without it).
    let now = now_s();
    let day_s = 86_400;
    assert_eq!(
        get(&format!("Bearer {}", timed(now + 29 * day_s, Some(now)))).status,
        200
    );
    for long in [
        timed(now + 40 * day_s, Some(now)),
        timed(now + 3600, Some(now - 40 * day_s)),
        timed(now + 40 * day_s, None),
        timed(u64::MAX, Some(now)),
    ] {
        assert_refused(
            &get(&format!("Bearer {long}")),
            401,
            "unauthorized",
            "over the limit of 2592000 s",
        );
    }
    // `iat` in the future: refused past a minute of clock skew.
    assert_eq!(
        get(&format!("Bearer {}", timed(now + 3600, Some(now + 30)))).status,
        200
    );
    assert_refused(
        &get(&format!("Bearer {}", timed(now + 7200, Some(now + 3600)))),
        401,
        "unauthorized",
        "issued in the future",
    );
}

#[test]
fn the_configured_token_lifetime_bounds_tokens_and_tickets() {
    let wrangler = Wrangler::start(&[("HERALD_TOKEN_LIFETIME_MAX_S", "120")]);
    let connection = unique("short");
    let stats_url = wrangler.url(&format!("/v1/streams/{connection}/stats"));

    let hour = full_token("acme");
    assert_refused(
        &request("GET", &stats_url, Some(&hour), None),
        401,
        "unauthorized",
        "over the limit of 120 s",
    );
    let short = token("acme", &[Scope::Publish, Scope::Subscribe], None, 100);
    assert_eq!(request("GET", &stats_url, Some(&short), None).status, 200);

    // A ticket from a short token works, and lives no longer than the limit.
    let body = format!(r#"{{"connectionId":"{connection}"}}"#);
    let ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&short),
        Some(&body),
    );
    assert_eq!(ticket.status, 200, "{}", ticket.body);
    let ticket = ticket.json();
    let expires_at = ticket["expiresAt"].as_u64().expect("expiresAt");
    assert!(
        expires_at <= now_s() + 120,
        "ticket expires at {expires_at}"
    );
    let path = format!(
        "/v1/streams/{connection}?ticket={}",
        ticket["ticket"].as_str().expect("ticket")
    );
    let subscription = wrangler.subscribe(&path, None, &[]);
    assert_eq!(subscription.status, 200);
}
