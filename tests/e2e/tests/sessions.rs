//! Cookie sessions for SQLMesh's web client, which sends nothing but cookies: `POST /v1/sessions`
//! sets an HttpOnly cookie that authenticates the subscribe routes and SQLMesh's plan routes; a
//! cookie-authenticated request must come from Herald's own origin or an allowed one (else 403,
//! nothing done); CORS allows credentials for listed origins only, never for `*`.

use std::time::Duration;

use herald_core::Scope;
use herald_e2e::{full_token, request, request_with, stats, token, Answer, Wrangler};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);
const UI: &str = "http://ui.example:5173";

/// `herald_session=<token>` from a `Set-Cookie` value.
fn cookie_of(answer: &Answer) -> String {
    let set = answer
        .header("set-cookie")
        .unwrap_or_else(|| panic!("no Set-Cookie: {} {}", answer.status, answer.body));
    set.split(';').next().expect("a pair").trim().to_string()
}

fn new_session(wrangler: &Wrangler, bearer: &str) -> Answer {
    request(
        "POST",
        &wrangler.url("/v1/sessions"),
        Some(bearer),
        Some("{}"),
    )
}

fn post_with(wrangler: &Wrangler, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    request_with("POST", &wrangler.url(path), headers, Some(body))
}

fn log_events(wrangler: &Wrangler) -> Value {
    stats(&wrangler.base, "default", &full_token("acme"))["log_events"].clone()
}

#[test]
fn a_session_cookie_drives_sqlmesh_from_allowed_origins_only() {
    let wrangler = Wrangler::start(&[("HERALD_CORS_ORIGINS", UI)]);
    let made = new_session(&wrangler, &full_token("acme"));
    assert_eq!(made.status, 200, "{}", made.body);
    let set = made.header("set-cookie").expect("Set-Cookie").to_string();
    for attribute in ["HttpOnly", "Path=/", "SameSite=Lax", "Max-Age=3600"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP on 127.0.0.1 cannot take a Secure cookie: {set}"
    );
    assert_eq!(made.json()["tenant"], "acme");
    assert_eq!(made.json()["renewed"], false);
    let cookie = cookie_of(&made);
    let own = wrangler.base.clone();

    // The cookie alone opens /api/events, as SQLMesh's EventSource does (withCredentials).
    let ui = wrangler.subscribe("/api/events", None, &[("Cookie", &cookie), ("Origin", UI)]);
    assert_eq!(ui.status, 200);

    // A cookie POST from the allowed origin opens a plan; CORS lets the page read the answer.
    let opened = post_with(
        &wrangler,
        "/api/plan",
        &[("Cookie", &cookie), ("Origin", UI)],
        r#"{"environment":"dev"}"#,
    );
    assert_eq!(opened.status, 204, "{}", opened.body);
    assert_eq!(opened.header("access-control-allow-origin"), Some(UI));
    assert_eq!(
        opened.header("access-control-allow-credentials"),
        Some("true")
    );
    let overview = ui.next_event(WAIT).expect("plan-overview");
    assert_eq!(overview.event, "plan-overview");

    // From another origin, or with no Origin at all: 403, and nothing is emitted or stored.
    let before = log_events(&wrangler);
    for headers in [
        vec![
            ("Cookie", cookie.as_str()),
            ("Origin", "https://evil.example"),
        ],
        vec![("Cookie", cookie.as_str()), ("Origin", "null")],
        vec![("Cookie", cookie.as_str())],
    ] {
        for path in ["/api/plan", "/api/commands/apply", "/api/plan/cancel"] {
            let refused = post_with(&wrangler, path, &headers, "{}");
            assert_eq!(refused.status, 403, "{path} {headers:?}: {}", refused.body);
            assert_eq!(refused.json()["error"], "forbidden");
        }
    }
    assert_eq!(
        log_events(&wrangler),
        before,
        "a refused request changes nothing"
    );
    // A forbidden origin gets no CORS grant either.
    let evil = post_with(
        &wrangler,
        "/api/plan",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
        "{}",
    );
    assert_eq!(evil.header("access-control-allow-origin"), None);

    // Herald's own origin (a UI served through a route of Herald's host) may use it.
    let cancel = post_with(
        &wrangler,
        "/api/plan/cancel",
        &[("Cookie", &cookie), ("Origin", &own)],
        "",
    );
    assert_eq!(cancel.status, 204, "{}", cancel.body);

    // A subscriber whose EventSource runs on a page of another origin is refused too.
    let foreign = wrangler.subscribe(
        "/api/events",
        None,
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
    );
    assert_eq!(foreign.status, 403);

    // The cookie does not reach the runner's and publishers' routes: those take Bearer tokens.
    for (path, body) in [
        ("/api/plan/stages", r#"{"op":"alive"}"#),
        ("/v1/streams/default/events", r#"{"event":"x"}"#),
        ("/v1/tickets", r#"{"connectionId":"default"}"#),
    ] {
        let refused = post_with(
            &wrangler,
            path,
            &[("Cookie", &cookie), ("Origin", UI)],
            body,
        );
        assert_eq!(refused.status, 401, "{path}: {}", refused.body);
    }
    let request_route = request_with(
        "GET",
        &wrangler.url("/api/plan/request"),
        &[("Cookie", &cookie), ("Origin", UI)],
        None,
    );
    assert_eq!(request_route.status, 401);
    // A session is no Bearer token.
    let token_text = cookie.trim_start_matches("herald_session=").to_string();
    let as_bearer = request(
        "POST",
        &wrangler.url("/api/plan"),
        Some(&token_text),
        Some("{}"),
    );
    assert_eq!(as_bearer.status, 401, "{}", as_bearer.body);

    // Renewal: the cookie, from an allowed origin, gets a fresh cookie.
    let renewed = post_with(
        &wrangler,
        "/v1/sessions",
        &[("Cookie", &cookie), ("Origin", UI)],
        "",
    );
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert_eq!(renewed.json()["renewed"], true);
    assert!(cookie_of(&renewed).starts_with("herald_session="));
    let stolen = post_with(
        &wrangler,
        "/v1/sessions",
        &[("Cookie", &cookie), ("Origin", "https://evil.example")],
        "",
    );
    assert_eq!(stolen.status, 403);
}

#[test]
fn sessions_keep_their_token_s_tenant_scopes_and_streams() {
    let wrangler = Wrangler::start(&[("HERALD_CORS_ORIGINS", UI)]);
    let cookie_for = |bearer: &str| {
        let made = new_session(&wrangler, bearer);
        assert_eq!(made.status, 200, "{}", made.body);
        cookie_of(&made)
    };
    // Subscribe only: the stream opens, plans do not.
    let reader = cookie_for(&token("acme", &[Scope::Subscribe], None, 600));
    let sub = wrangler.subscribe("/api/events", None, &[("Cookie", &reader)]);
    assert_eq!(sub.status, 200);
    let refused = post_with(
        &wrangler,
        "/api/plan",
        &[("Cookie", &reader), ("Origin", UI)],
        "{}",
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    // Limited to other streams: not SQLMesh's.
    let other = cookie_for(&token("acme", &[Scope::Subscribe], Some(&["other"]), 600));
    let sub = wrangler.subscribe("/api/events", None, &[("Cookie", &other)]);
    assert_eq!(sub.status, 403);
    let sub = wrangler.subscribe("/v1/streams/other", None, &[("Cookie", &other)]);
    assert_eq!(sub.status, 200);
    // Another tenant's cookie reads its own hub: acme's plan is not there.
    let globex = cookie_for(&full_token("globex"));
    assert_eq!(
        post_with(
            &wrangler,
            "/api/plan",
            &[("Cookie", &globex), ("Origin", UI)],
            "{}"
        )
        .status,
        204
    );
    let acme = wrangler.subscribe("/api/events", Some(&full_token("acme")), &[]);
    assert_eq!(acme.status, 200);
    assert!(
        acme.next_event(Duration::from_secs(2)).is_none(),
        "globex's plan must not reach acme"
    );

    // A session never outlives its token at first: a 100 s token makes a 100 s cookie (or 99).
    let short = new_session(&wrangler, &token("acme", &[Scope::Subscribe], None, 100));
    let set = short.header("set-cookie").expect("Set-Cookie").to_string();
    assert!(
        set.contains("Max-Age=100;") || set.contains("Max-Age=99;"),
        "{set}"
    );

    // Bad input: a ticket or a forged cookie is no session; a body with fields is refused.
    let ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&full_token("acme")),
        Some(r#"{"connectionId":"default"}"#),
    )
    .json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    for forged in [
        format!("herald_session={ticket}"),
        "herald_session=a.b.c".into(),
    ] {
        let sub = wrangler.subscribe("/api/events", None, &[("Cookie", &forged)]);
        assert_eq!(sub.status, 401, "{forged}");
    }
    let with_fields = request(
        "POST",
        &wrangler.url("/v1/sessions"),
        Some(&full_token("acme")),
        Some(r#"{"ttl":5}"#),
    );
    assert_eq!(with_fields.status, 400, "{}", with_fields.body);
    assert_eq!(with_fields.header("set-cookie"), None);
    let no_credential = request("POST", &wrangler.url("/v1/sessions"), None, Some("{}"));
    assert_eq!(no_credential.status, 401);
    let with_ticket = request(
        "POST",
        &wrangler.url("/v1/sessions"),
        Some(&ticket),
        Some("{}"),
    );
    assert_eq!(with_ticket.status, 401);
}

#[test]
fn a_wildcard_never_carries_credentials_and_samesite_none_is_secure() {
    let wrangler = Wrangler::start(&[
        ("HERALD_CORS_ORIGINS", "*"),
        ("HERALD_SESSION_SAMESITE", "None"),
        ("HERALD_SESSION_TTL_S", "600"),
    ]);
    let made = new_session(&wrangler, &full_token("acme"));
    assert_eq!(made.status, 200, "{}", made.body);
    let set = made.header("set-cookie").expect("Set-Cookie").to_string();
    assert!(
        set.contains("SameSite=None") && set.contains("Secure"),
        "{set}"
    );
    assert!(set.contains("Max-Age=600"), "{set}");
    let cookie = cookie_of(&made);
    // `*` lets any page read Bearer answers, but no origin may use the cookie through it.
    let refused = post_with(
        &wrangler,
        "/api/plan",
        &[("Cookie", &cookie), ("Origin", UI)],
        "{}",
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.header("access-control-allow-origin"), Some("*"));
    assert_eq!(refused.header("access-control-allow-credentials"), None);
    let preflight = request_with(
        "OPTIONS",
        &wrangler.url("/api/plan"),
        &[
            ("Origin", UI),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        None,
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-credentials"), None);
}

#[test]
fn a_bad_samesite_setting_is_refused() {
    let wrangler = Wrangler::start_answering(&[("HERALD_SESSION_SAMESITE", "loose")]);
    let answer = request("GET", &wrangler.url("/healthz"), None, None);
    assert_eq!(answer.status, 500);
    assert!(
        answer.body.contains("HERALD_SESSION_SAMESITE"),
        "{}",
        answer.body
    );
}
