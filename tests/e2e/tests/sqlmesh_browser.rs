//! SQLMesh's web client paths in headless Chromium: a page on an allowed origin sets the session
//! cookie (`POST /v1/sessions`), then uses nothing but that cookie, as SQLMesh's client does: an
//! EventSource with `withCredentials: true` on `/api/events`, `fetch` with `credentials: "include"`
//! to `/api/meta`, `/api/plan` and `/api/plan/cancel`. It receives the plan's trackers and pings; a
//! page on an origin Herald does not list sends the same cookie and is refused (403, no plan).
//! Both deployment shapes: the page on another origin of the same site with Herald's URL (its
//! origin listed in `HERALD_CORS_ORIGINS`), and Herald behind the page's own host, as a Worker
//! route would put it, with SQLMesh's relative URLs and nothing listed.
//! The Node script (`tests/clients/sqlmesh_page.mjs`) drives and reports; the assertions are here.

use std::time::Duration;

use herald_e2e::clients::{free_port, request_log, run_node, Logged};
use herald_e2e::{full_token, Wrangler};
use serde_json::{json, Value};

fn trackers(seen: &Value, topic: &str) -> Vec<Value> {
    seen["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["topic"] == topic)
        .map(|e| serde_json::from_str(e["data"].as_str().expect("data")).expect("tracker JSON"))
        .collect()
}

#[test]
fn a_page_on_a_listed_origin_with_only_the_session_cookie_runs_and_cancels_a_plan() {
    run("cross-origin");
}

#[test]
fn a_page_serving_herald_through_its_own_host_uses_sqlmesh_s_relative_urls() {
    run("route");
}

fn run(mode: &str) {
    let page_port = free_port();
    let other_port = free_port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let route = mode == "route";
    // Through a route, the page and Herald share an origin: nothing to list.
    let listed = if route { "" } else { page_origin.as_str() };
    let wrangler = Wrangler::start(&[
        ("HERALD_CORS_ORIGINS", listed),
        ("HERALD_HEARTBEAT_MS", "1000"),
    ]);
    let result = run_node(
        "sqlmesh_page.mjs",
        &json!({"herald": wrangler.base, "token": full_token("acme"),
                "pagePort": page_port, "otherPort": other_port, "mode": mode}),
        Duration::from_secs(180),
    );
    assert_eq!(result["pageErrors"], json!([]), "{result}");

    // The cookie: set through a credentialed CORS fetch, HttpOnly (no script sees it), Lax.
    assert_eq!(result["session"]["status"], 200, "{result}");
    assert_eq!(result["session"]["body"]["tenant"], "acme");
    assert_eq!(
        result["session"]["cookieVisible"], "",
        "HttpOnly: not in document.cookie"
    );
    let cookies = result["cookies"].as_array().expect("cookies");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    assert_eq!(cookies[0]["name"], "herald_session");
    assert_eq!(cookies[0]["httpOnly"], true);
    assert_eq!(cookies[0]["sameSite"], "Lax");
    assert_eq!(cookies[0]["path"], "/");

    // /api/meta on mount and mid-plan, with the cookie only.
    assert_eq!(
        result["metaBefore"]["status"], 200,
        "{}",
        result["metaBefore"]
    );
    let before: Value = serde_json::from_str(result["metaBefore"]["body"].as_str().expect("body"))
        .expect("meta JSON");
    assert_eq!(before["has_running_task"], false);
    let during: Value = serde_json::from_str(result["metaDuring"]["body"].as_str().expect("body"))
        .expect("meta JSON");
    assert_eq!(during["has_running_task"], true);

    // The page's plan opened with its categories, which the runner read.
    assert_eq!(result["plan"]["status"], 204, "{}", result["plan"]);
    assert_eq!(
        result["opened"]["request"]["categories"],
        json!({"sushi.items": 2, "sushi.orders": 1})
    );
    assert_eq!(result["cancel"]["status"], 204, "{}", result["cancel"]);

    // The trackers reached the page's EventSource: the overview's stages, then the cancel.
    let seen = &result["seen"];
    let overviews = trackers(seen, "plan-overview");
    let first = overviews.first().expect("plan-overview");
    assert_eq!(first["environment"], "dev");
    assert_eq!(first["meta"]["status"], "init");
    let last = overviews.last().expect("plan-overview");
    assert_eq!(last["validation"]["meta"]["status"], "success");
    assert_eq!(last["changes"]["meta"]["status"], "fail");
    assert_eq!(last["changes"]["added"][0]["name"], "sushi.orders");
    assert_eq!(
        last["meta"]["status"], "fail",
        "a cancelled overview ends in fail"
    );
    let cancels = trackers(seen, "plan-cancel");
    let done = cancels.last().expect("plan-cancel");
    assert_eq!(done["meta"]["status"], "success");
    assert_eq!(done["cancel"]["meta"]["status"], "success");
    // One connection all along, kept alive by pings (1 s here) through the plan's traffic.
    assert_eq!(seen["opens"], 1, "{seen}");
    assert_eq!(seen["errors"], 0, "{seen}");
    assert_eq!(seen["readyState"], 1, "{seen}");
    assert!(seen["pings"].as_u64().is_some_and(|n| n >= 3), "{seen}");

    // The page on an unlisted origin sent the cookie: refused, and no plan opened.
    assert_eq!(result["forged"], "sent");
    assert_eq!(
        result["afterForgery"]["state"], "cancelled",
        "{}",
        result["afterForgery"]
    );
    let plan_posts: Vec<Logged> = request_log(&wrangler)
        .into_iter()
        .filter(|r| r.path == "/api/plan")
        .collect();
    let statuses: Vec<(&str, u16)> = plan_posts
        .iter()
        .map(|r| (r.method.as_str(), r.status))
        .collect();
    let expected: &[(&str, u16)] = if route {
        // Same origin: no preflight.
        &[("POST", 204), ("POST", 403)]
    } else {
        &[("OPTIONS", 204), ("POST", 204), ("POST", 403)]
    };
    assert_eq!(
        statuses, expected,
        "the page's (preflight and) plan, then the forged plan refused"
    );
}
