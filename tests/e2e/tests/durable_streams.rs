//! The official Durable Streams conformance suite (`@durable-streams/server-conformance-tests`)
//! against Herald's `/ds/` routes under `wrangler dev`.
//!
//! The suite sends no credentials, so it talks to a local proxy (tests/conformance/proxy.mjs) that
//! adds a Bearer token; Herald itself never serves `/ds/` without one. Every test must pass except
//! those listed, each with its reason, in tests/conformance/expected-failures.txt: a new failure
//! fails this test, and so does a listed test that now passes (the list must shrink with it).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use herald_e2e::{full_token, repo_root, unique, Wrangler};

struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the credential-adding proxy in front of `upstream`; returns it and its port.
fn start_proxy(upstream: &str, token: &str) -> (Proxy, u16) {
    let root = repo_root();
    let mut child = Command::new(root.join("node_modules/.bin/node"))
        .arg(root.join("tests/conformance/proxy.mjs"))
        .env("DS_UPSTREAM", upstream)
        .env("DS_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the proxy (node from scripts/setup.sh)");
    let stdout = child.stdout.take().expect("proxy stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("proxy announces its port");
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("proxy said {line:?}"));
    (Proxy(child), port)
}

/// The expected failures: `full test name | reason` per line; `#` starts a comment.
fn expected_failures() -> BTreeSet<String> {
    let path = repo_root().join("tests/conformance/expected-failures.txt");
    let text = std::fs::read_to_string(&path).expect("expected-failures.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l
                .rsplit_once(" | ")
                .unwrap_or_else(|| panic!("no reason: {l}"));
            assert!(!reason.trim().is_empty(), "no reason: {l}");
            name.trim().to_string()
        })
        .collect()
}

#[test]
fn official_conformance_suite() {
    // The suite's CORS test preflights from https://example.com: allowed here as an operator would
    // allow a browser app's origin (Herald allows no origin by default).
    let wrangler = Wrangler::start(&[("HERALD_CORS_ORIGINS", "https://example.com")]);
    let token = full_token(&unique("conformance"));
    let (_proxy, port) = start_proxy(&wrangler.base, &token);
    let root = repo_root();
    let report = root
        .join(".e2e")
        .join(format!("{}.json", unique("conformance")));
    let status = Command::new(root.join("node_modules/.bin/vitest"))
        .args(["run", "--config", "tests/conformance/vitest.config.mjs"])
        .args(["--reporter=json", "--outputFile"])
        .arg(&report)
        .current_dir(&root)
        .env("DS_BASE_URL", format!("http://127.0.0.1:{port}/ds"))
        .env(
            "PATH",
            format!(
                "{}:{}",
                root.join("node_modules/.bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .status()
        .expect("run vitest");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("vitest report"))
            .expect("report json");
    let _ = std::fs::remove_file(&report);
    let mut passed = BTreeSet::new();
    let mut failed = BTreeSet::new();
    for file in json["testResults"].as_array().expect("testResults") {
        for test in file["assertionResults"]
            .as_array()
            .expect("assertionResults")
        {
            let name = test["fullName"].as_str().unwrap_or_default().to_string();
            match test["status"].as_str() {
                Some("passed") => {
                    passed.insert(name);
                }
                Some("failed") => {
                    let why = test["failureMessages"][0].as_str().unwrap_or_default();
                    println!(
                        "failed: {name}\n  {}",
                        why.lines().next().unwrap_or_default()
                    );
                    failed.insert(name);
                }
                _ => {}
            }
        }
    }
    println!(
        "conformance: {} passed, {} failed (vitest exit {status})",
        passed.len(),
        failed.len()
    );
    assert!(
        passed.len() + failed.len() >= 300,
        "the suite did not run: {status}"
    );
    let expected = expected_failures();
    let unexpected: Vec<_> = failed.difference(&expected).collect();
    let now_passing: Vec<_> = expected.difference(&failed).collect();
    assert!(
        unexpected.is_empty() && now_passing.is_empty(),
        "new failures: {unexpected:#?}\nlisted but not failing (shrink the list): {now_passing:#?}"
    );
}
