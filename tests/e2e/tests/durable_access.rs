//! Durable Streams under `/ds/`: credentials as on every other route (no unauthenticated access,
//! tenants apart, stream-limited tokens, scopes, tickets for reads, forks need read access to their
//! source), and live readers through the hibernating design: a stream's object with a waiting
//! long-poll and SSE reader is evicted while idle, and the next append reaches both.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::channel;
use std::thread;
use std::time::{Duration, Instant};

use herald_core::Scope;
use herald_e2e::{full_token, token, unique, Wrangler};

fn call(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, ureq::Response) {
    let mut request = ureq::request(method, url).timeout(Duration::from_secs(90));
    if let Some(token) = bearer {
        request = request.set("authorization", &format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = if body.is_empty() {
        request.call()
    } else {
        request.send_string(body)
    };
    match result {
        Ok(response) => (response.status(), response),
        Err(ureq::Error::Status(status, response)) => (status, response),
        Err(error) => panic!("transport error: {error}"),
    }
}

fn status(
    method: &str,
    url: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> u16 {
    call(method, url, bearer, headers, body).0
}

const TEXT: (&str, &str) = ("content-type", "text/plain");

#[test]
fn streams_take_the_same_credentials_as_every_route() {
    // Streams keep at most 16 bytes here, to see retention at work at the end.
    let wrangler = Wrangler::start(&[("HERALD_DS_STREAM_BYTES_MAX", "16")]);
    let acme = full_token(&unique("acme"));
    let other = full_token(&unique("other"));
    let url = wrangler.url("/ds/orders/a");
    assert_eq!(
        status("PUT", &url, None, &[TEXT], ""),
        401,
        "no credential, no stream"
    );
    assert_eq!(status("GET", &url, None, &[], ""), 401);
    assert_eq!(status("PUT", &url, Some(&acme), &[TEXT], "hello"), 201);
    assert_eq!(
        status("GET", &format!("{url}?offset=-1"), Some(&acme), &[], ""),
        200
    );
    // Another tenant's /ds/orders/a is another stream.
    assert_eq!(status("HEAD", &url, Some(&other), &[], ""), 404);
    assert_eq!(
        status(
            "PUT",
            &url,
            Some(&other),
            &[("content-type", "application/json")],
            ""
        ),
        201
    );
    // Scopes: a read-only token reads and cannot write.
    let tenant = unique("scoped");
    let writer = full_token(&tenant);
    let reader = token(&tenant, &[Scope::Subscribe], None, 3600);
    let flat = wrangler.url("/ds/flat");
    assert_eq!(status("PUT", &flat, Some(&writer), &[TEXT], "x"), 201);
    assert_eq!(
        status("GET", &format!("{flat}?offset=-1"), Some(&reader), &[], ""),
        200
    );
    assert_eq!(status("POST", &flat, Some(&reader), &[TEXT], "y"), 403);
    assert_eq!(status("DELETE", &flat, Some(&reader), &[], ""), 403);
    // A token limited to `flat` reaches nothing else, and cannot fork what it cannot read.
    let limited = token(
        &tenant,
        &[Scope::Publish, Scope::Subscribe],
        Some(&["flat", "copy"]),
        3600,
    );
    assert_eq!(
        status(
            "PUT",
            &wrangler.url("/ds/secret"),
            Some(&writer),
            &[TEXT],
            "s"
        ),
        201
    );
    assert_eq!(
        status(
            "GET",
            &wrangler.url("/ds/secret?offset=-1"),
            Some(&limited),
            &[],
            ""
        ),
        403
    );
    assert_eq!(
        status(
            "GET",
            &wrangler.url("/ds/a/b?offset=-1"),
            Some(&limited),
            &[],
            ""
        ),
        403
    );
    let fork_secret = [("stream-forked-from", "/secret")];
    assert_eq!(
        status(
            "PUT",
            &wrangler.url("/ds/copy"),
            Some(&limited),
            &fork_secret,
            ""
        ),
        403
    );
    let fork_flat = [("stream-forked-from", "/flat")];
    assert_eq!(
        status(
            "PUT",
            &wrangler.url("/ds/copy"),
            Some(&limited),
            &fork_flat,
            ""
        ),
        201
    );
    // Access tokens never ride in the URL; reserved and traversing paths are refused.
    assert_eq!(
        status(
            "GET",
            &format!("{flat}?offset=-1&token={writer}"),
            None,
            &[],
            ""
        ),
        401
    );
    assert_eq!(
        status(
            "PUT",
            &wrangler.url("/ds/__ds/x"),
            Some(&writer),
            &[TEXT],
            ""
        ),
        400
    );
    assert_eq!(
        status("PUT", &wrangler.url("/ds/a//b"), Some(&writer), &[TEXT], ""),
        400
    );

    // Retention: past HERALD_DS_STREAM_BYTES_MAX the oldest appends go; reading from before the
    // earliest kept offset is 410 Gone, and -1 reads from the earliest kept.
    let kept = wrangler.url("/ds/kept");
    let (_, created) = call("PUT", &kept, Some(&writer), &[TEXT], "");
    let start = created
        .header("stream-next-offset")
        .expect("offset")
        .to_string();
    for chunk in ["aaaaaaaa", "bbbbbbbb", "cccccccc"] {
        assert_eq!(status("POST", &kept, Some(&writer), &[TEXT], chunk), 204);
    }
    let from_start = format!("{kept}?offset={start}");
    assert_eq!(status("GET", &from_start, Some(&writer), &[], ""), 410);
    let (code, all) = call("GET", &format!("{kept}?offset=-1"), Some(&writer), &[], "");
    assert_eq!(code, 200);
    assert_eq!(all.into_string().expect("body"), "bbbbbbbbcccccccc");
}

#[test]
fn a_stream_with_waiting_readers_hibernates_and_the_next_append_reaches_them() {
    let wrangler = Wrangler::start(&[("HERALD_DS_LONG_POLL_MS", "120000")]);
    let tok = full_token(&unique("sleepy"));
    let url = wrangler.url(&format!("/ds/{}", unique("live")));
    let (created, response) = call("PUT", &url, Some(&tok), &[TEXT], "start;");
    assert_eq!(created, 201);
    let tail = response
        .header("stream-next-offset")
        .expect("tail")
        .to_string();
    let started = |what: &str| -> u64 {
        let (code, head) = call("HEAD", &url, Some(&tok), &[], "");
        assert_eq!(code, 200, "{what}");
        head.header("herald-object-started-ms")
            .expect("started")
            .parse()
            .expect("ms")
    };
    let before_ms = started("before");

    // A long-poll reader and an SSE reader wait at the tail.
    let (sender, results) = channel::<(&str, String)>();
    let long_poll = {
        let (url, tok, tail, sender) = (url.clone(), tok.clone(), tail.clone(), sender.clone());
        thread::spawn(move || {
            let (code, response) = call(
                "GET",
                &format!("{url}?offset={tail}&live=long-poll"),
                Some(&tok),
                &[],
                "",
            );
            let body = response.into_string().unwrap_or_default();
            let _ = sender.send(("long-poll", format!("{code} {body}")));
        })
    };
    let sse = {
        let (url, tok, tail) = (url.clone(), tok.clone(), tail);
        thread::spawn(move || {
            let (code, response) = call(
                "GET",
                &format!("{url}?offset={tail}&live=sse"),
                Some(&tok),
                &[],
                "",
            );
            assert_eq!(code, 200);
            let mut data_next = false;
            for line in BufReader::new(response.into_reader())
                .lines()
                .map_while(Result::ok)
            {
                if line == "event: data" {
                    data_next = true;
                } else if data_next && line.starts_with("data:") {
                    let _ = sender.send(("sse", line));
                    return;
                }
            }
        })
    };
    // Silence: workerd evicts an idle object about 10 s after its last event.
    thread::sleep(Duration::from_secs(25));
    assert!(
        results.try_recv().is_err(),
        "nothing arrives before the append"
    );
    assert_eq!(
        status("POST", &url, Some(&tok), &[TEXT], "after the nap"),
        204
    );
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        got.push(
            results
                .recv_timeout(left)
                .expect("both readers answer after the append"),
        );
    }
    got.sort();
    assert_eq!(got[0], ("long-poll", "200 after the nap".to_string()));
    assert_eq!(got[1], ("sse", "data:after the nap".to_string()));
    let after_ms = started("after");
    assert!(
        after_ms > before_ms,
        "the object was evicted while its readers waited (started {before_ms} -> {after_ms})"
    );
    let _ = long_poll.join();
    let _ = sse.join();
}
