//! The live page the worker serves at `/`, in headless Chromium: a person connects with a token
//! from the link `scripts/dev.sh` prints, watches a SQLMesh plan move through its stages, cancels
//! it with the page's button, sees heartbeats, a reconnect and a reset, and follows a runner job to
//! its end. The script (`tests/clients/live_page.mjs`) drives the page and reports what it shows;
//! the assertions are here. Screenshots land in `target/e2e-artifacts/`.

use std::time::Duration;

use herald_e2e::clients::{run_node, DevCommand};
use herald_e2e::{full_token, repo_root, seq_of, split_id, unique, Wrangler};
use serde_json::{json, Value};

const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

/// The stages of one tracker as `(stage, status)`, in the order the page draws them.
fn stages(page: &Value, tracker: &str) -> Vec<(String, String)> {
    let tracker = &page["trackers"][tracker];
    tracker["order"]
        .as_array()
        .unwrap_or_else(|| panic!("no such tracker on the page: {page}"))
        .iter()
        .map(|name| {
            let name = name.as_str().expect("stage name");
            let status = tracker["stages"][name]["status"].as_str().unwrap_or("");
            (name.to_string(), status.to_string())
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| ((*a).into(), (*b).into()))
        .collect()
}

/// The ids of the logged events the page listed, in order.
fn listed_ids(page: &Value) -> Vec<u64> {
    page["log"]
        .as_array()
        .expect("log rows")
        .iter()
        .filter_map(|row| row["id"].as_str().filter(|id| !id.is_empty()))
        .map(seq_of)
        .collect()
}

fn kinds(page: &Value, kind: &str) -> usize {
    page["log"]
        .as_array()
        .expect("log rows")
        .iter()
        .filter(|row| row["kind"] == kind)
        .count()
}

#[test]
fn live_page_shows_a_plan_a_cancel_heartbeats_reconnects_resets_and_a_job() {
    // Short heartbeats and retries so that every kind of frame shows up within seconds; a log of 8
    // events so that the job's reconnect finds its id evicted.
    let wrangler = Wrangler::start(&[
        ("HERALD_HEARTBEAT_MS", "400"),
        ("HERALD_RETRY_MS", "1000"),
        ("HERALD_LOG_EVENTS_MAX", "8"),
    ]);
    let token = full_token(&unique("page"));
    let job = unique("job");
    let screenshots = repo_root().join("target/e2e-artifacts");
    let result = run_node(
        "live_page.mjs",
        &json!({
            "herald": wrangler.base,
            "token": token,
            "job": job,
            "screenshots": screenshots,
        }),
        SCRIPT_TIMEOUT,
    );

    // The link's fragment filled the form and left the address bar (and history) without the token.
    assert_eq!(result["title"], "Herald live");
    assert!(
        !result["addressAfterLoad"].as_str().unwrap().contains('#'),
        "token left in the address bar: {}",
        result["addressAfterLoad"]
    );
    assert_eq!(
        result["form"],
        json!({"tokenFilled": token.len(), "family": "sqlmesh", "connection": "default"})
    );
    let connected = &result["connected"];
    assert_eq!(connected["streamUrl"], "/api/events?trackers=last");
    assert_eq!(
        (
            connected["planShown"].as_bool(),
            connected["jobShown"].as_bool()
        ),
        (Some(true), Some(false))
    );

    // Mid-plan: the overview done, the apply tracker running its backfill.
    let running = &result["running"];
    assert_eq!(running["plan"], "running");
    assert_eq!(running["trackers"]["overview"]["status"], "success");
    assert_eq!(
        stages(running, "overview"),
        pairs(&[
            ("validation", "success"),
            ("changes", "success"),
            ("backfills", "success")
        ])
    );
    assert_eq!(running["trackers"]["apply"]["status"], "init");
    assert_eq!(
        stages(running, "apply"),
        pairs(&[
            ("creation", "success"),
            ("restate", "pending"),
            ("backfill", "init"),
            ("promote", "pending")
        ])
    );
    let validation = &running["trackers"]["overview"]["stages"]["validation"];
    let took = validation["duration"].as_str().unwrap();
    assert!(
        took.ends_with(" ms") || took.ends_with(" s"),
        "a finished stage shows its duration: {took:?}"
    );
    assert!(
        validation["barWidth"].as_f64().unwrap() > 0.0,
        "and a bar: {validation}"
    );
    let changes = &running["trackers"]["overview"]["stages"]["changes"];
    assert!(
        changes["details"]
            .as_str()
            .unwrap()
            .contains("sushi.orders"),
        "{changes}"
    );
    let backfill = &running["trackers"]["apply"]["stages"]["backfill"];
    assert_eq!(backfill["shown"], "running");
    assert!(
        backfill["duration"].as_str().unwrap().ends_with('…'),
        "a running stage's clock: {backfill}"
    );
    assert!(
        backfill["details"]
            .as_str()
            .unwrap()
            .contains(r#""completed":3"#),
        "merged update: {backfill}"
    );
    let promote = &running["trackers"]["apply"]["stages"]["promote"];
    assert_eq!(
        (promote["duration"].as_str(), promote["barWidth"].as_f64()),
        (Some(""), Some(0.0))
    );
    assert_eq!(
        running["cancelEnabled"], true,
        "a running plan can be cancelled"
    );

    // The Cancel button went through Herald: the cancel stage runs until the runner stops its
    // stage, then the plan ends cancelled, the apply tracker failed.
    let cancelling = &result["cancelling"];
    assert_eq!(cancelling["plan"], "cancelling");
    assert_eq!(
        cancelling["cancelEnabled"], false,
        "no second cancel while one runs"
    );
    let cancelled = &result["cancelled"];
    assert_eq!(cancelled["trackers"]["apply"]["status"], "fail");
    assert_eq!(stages(cancelled, "cancel"), pairs(&[("cancel", "success")]));
    assert_eq!(
        stages(cancelled, "apply"),
        pairs(&[
            ("creation", "success"),
            ("restate", "pending"),
            ("backfill", "fail"),
            ("promote", "pending")
        ])
    );
    assert_eq!(cancelled["trackers"]["overview"]["status"], "success");
    assert_eq!(cancelled["cancelEnabled"], false);

    // SQLMesh pings are counted and listed as heartbeats, not as events.
    let heartbeats = &result["heartbeats"];
    assert!(heartbeats["counts"]["heartbeats"].as_u64().unwrap() >= 2);
    assert!(
        kinds(heartbeats, "heartbeat") >= 2,
        "heartbeat rows in the log"
    );

    // The server cut the stream: the page reconnected with Last-Event-ID and nothing came twice.
    let before = &result["beforeCut"];
    let reconnected = &result["reconnected"];
    assert_eq!(reconnected["counts"]["reconnects"], 1);
    let resumed = format!(
        "reconnected with Last-Event-ID {}",
        before["lastId"].as_str().expect("last id")
    );
    let notes: Vec<&str> = reconnected["log"]
        .as_array()
        .expect("log rows")
        .iter()
        .filter(|row| row["kind"] == "reconnect")
        .filter_map(|row| row["text"].as_str())
        .collect();
    assert_eq!(notes, ["the server ended the stream", resumed.as_str()]);
    assert_eq!(
        reconnected["counts"]["events"], before["counts"]["events"],
        "no duplicate after the cut"
    );
    let after = &result["afterCut"];
    assert_eq!(
        after["counts"]["events"].as_u64(),
        before["counts"]["events"].as_u64().map(|n| n + 1)
    );
    let ids = listed_ids(after);
    assert!(
        ids.windows(2).all(|w| w[0] + 1 == w[1]),
        "ids listed once each, in order, no gap: {ids:?}"
    );
    assert_eq!(
        after["lastId"]
            .as_str()
            .map(|id| id.ends_with(&format!("-{}", ids.last().unwrap()))),
        Some(true)
    );

    // A fresh connection draws the same plan from the three trackers it gets first (no ids: they
    // are a snapshot, not the log); the page asks for finished trackers as they ended
    // (`trackers=last`), where SQLMesh's own UI gets `{}` for them.
    let fresh = &result["fresh"];
    assert_eq!(fresh["trackers"], cancelled["trackers"]);
    assert_eq!(fresh["counts"]["events"], 3);
    assert_eq!(listed_ids(fresh), Vec::<u64>::new());

    // The runner job: steps with their output.
    let steps = &result["steps"]["steps"];
    assert_eq!(
        steps[0],
        json!({"id": "s1", "status": "success", "name": "Checkout", "output": "cloning...\n"})
    );
    assert_eq!(
        (steps[1]["id"].as_str(), steps[1]["status"].as_str()),
        (Some("s2"), Some("running"))
    );
    assert_eq!(
        result["steps"]["streamUrl"],
        format!("/runner-jobs/{job}/events/stream")
    );
    assert_eq!(
        (
            result["steps"]["planShown"].as_bool(),
            result["steps"]["jobShown"].as_bool()
        ),
        (Some(false), Some(true))
    );

    // The log moved past the page while it was away: a visible reset, then what the log still had.
    let reset = &result["reset"];
    assert_eq!(reset["counts"]["resets"], 1);
    assert_eq!(kinds(reset, "reset"), 1);
    let reset_row = reset["log"]
        .as_array()
        .expect("log rows")
        .iter()
        .find(|row| row["kind"] == "reset")
        .and_then(|row| row["text"].as_str())
        .expect("reset row");
    let last_seen = result["steps"]["lastId"]
        .as_str()
        .expect("last id before the cut");
    let (epoch, _) = split_id(last_seen);
    assert!(
        reset_row.ends_with(&format!(
            "(lost: the events after {last_seen} and before {epoch}-8)"
        )),
        "the reset names what was lost: {reset_row}"
    );
    let complete = &result["complete"];
    assert_eq!(complete["status"], "complete");
    assert_eq!(complete["jobComplete"], true);
    let s2 = &complete["steps"][1];
    assert_eq!(s2["status"], "failure");
    let output = s2["output"].as_str().unwrap();
    // Events 6 and 7 (test 0 and 1) were evicted; events 8 to 15 (test 2 to 9) were replayed.
    assert!(
        output.starts_with("test a ... ok\ntest 2 ... ok\n") && output.ends_with("test 9 ... ok\n"),
        "{output:?}"
    );
    assert!(
        !output.contains("test 0") && !output.contains("test 1 "),
        "{output:?}"
    );
    assert_eq!(
        kinds(complete, "complete"),
        2,
        "the stream.complete event, then the 204"
    );

    // A bad token: the page shows Herald's JSON error instead of retrying forever.
    let bad = &result["badToken"];
    let problem = bad["problem"].as_str().unwrap_or_default();
    assert!(problem.starts_with("401 unauthorized: "), "{bad}");

    assert_eq!(
        result["pageErrors"],
        json!([]),
        "uncaught errors in the page"
    );
    let console: Vec<&str> = result["consoleErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|text| !text.contains("401"))
        .collect();
    assert!(console.is_empty(), "errors the page logged: {console:?}");

    for name in [
        "live-page-plan-running",
        "live-page-plan-cancelled",
        "live-page-runner-job",
    ] {
        let png = std::fs::read(screenshots.join(format!("{name}.png"))).expect("screenshot");
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}.png: {} bytes",
            png.len()
        );
    }
}

#[test]
fn the_dev_command_prints_a_link_that_opens_a_working_page() {
    let dev = DevCommand::start(Duration::from_secs(240));
    assert!(
        dev.printed.contains("curl -N"),
        "the command also prints curl examples:\n{}",
        dev.printed
    );
    let connection = unique("demo");
    let result = run_node(
        "live_page.mjs",
        &json!({ "mode": "link", "link": dev.link, "connection": connection }),
        SCRIPT_TIMEOUT,
    );
    assert!(
        result["listed"]
            .as_array()
            .is_some_and(|listed| listed.contains(&json!(connection))),
        "the page's stream list shows the stream published to: {}",
        result["listed"]
    );
    assert_eq!(
        result["connectedTo"],
        format!("/v1/streams/{connection}"),
        "picking the stream connected to it"
    );
    let page = &result["received"];
    assert_eq!(page["status"], "open");
    let events: Vec<(&str, &str)> = page["log"]
        .as_array()
        .expect("log rows")
        .iter()
        .filter(|row| row["kind"] == "event")
        .map(|row| {
            (
                row["event"].as_str().unwrap(),
                row["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [("job:state_change", r#"{"id":"j1","state":"active"}"#)]
    );
    assert_eq!(result["pageErrors"], json!([]));
}
