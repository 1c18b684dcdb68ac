//! `herald publish STREAM EVENT [DATA | -]`: one event from the arguments, or one per line of stdin
//! sent in batches that stay under the worker's publish limits.

mod batch;

use std::io::{BufRead, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use herald_core::{EventName, PublishLimits};

use crate::args::{self, Arg, Args, CliError, Env};
use crate::http;
use crate::token::connection_id;
use batch::{event_json, Batcher};

pub(crate) const HELP: &str = "\
usage: herald publish STREAM EVENT [DATA | -] [options]

Publishes an event named EVENT to the stream STREAM (a connection id) and prints the id Herald gave
it. DATA is JSON ('{\"state\":\"active\"}', 42, '\"text\"'); without DATA the event's data is empty.
With -, reads stdin instead: each line is the data of one EVENT event (blank lines are skipped, except
with --text), sent in batches as lines come, and one id is printed per event.

  --url URL              the worker (default: $HERALD_URL, else http://127.0.0.1:8787)
  --token TOKEN          an access token with the publish scope (default: $HERALD_TOKEN)
  --text                 DATA (or each line) is text, not JSON
  --category C           the events' category (one of the worker's HERALD_CATEGORIES)
  --batch-events-max N   events per request (default 100, as the worker's HERALD_BATCH_EVENTS_MAX)
  --batch-bytes-max N    bytes of one request's body (default 1048576, HERALD_BATCH_BYTES_MAX)
  --event-bytes-max N    bytes of one event's data (default 65536, HERALD_EVENT_BYTES_MAX)
  --retries N            tries after the first (default 8), 250 ms apart and doubling up to 8 s
  --retry-unsafe         also retry requests that may have reached the worker (see below)

Retries and duplicates: Herald has no idempotent publish yet, so a request that reached the worker
may have been stored even if no answer came back, and sending it again would store its events a
second time under new ids. So by default only failures before the request was sent are retried (the
name did not resolve, the connection was refused, TLS failed). With --retry-unsafe a 5xx answer and
a connection lost after sending are retried too: nothing is lost, but events may be stored twice
(give them an id of their own in their data if consumers must deduplicate).
";

/// Where the events' data comes from.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// The DATA argument, or none (empty data).
    Argument(Option<String>),
    /// `-`: one event per line of stdin.
    Stdin,
}

#[derive(Debug)]
struct Options {
    url: String,
    token: String,
    stream: String,
    event: EventName,
    source: Source,
    text: bool,
    category: Option<String>,
    limits: PublishLimits,
    retries: u32,
    retry_unsafe: bool,
}

fn parse(mut args: Args, env: Env<'_>) -> Result<Options, CliError> {
    let mut positionals = Vec::new();
    let (mut url, mut token, mut category) = (None, None, None);
    let (mut text, mut retry_unsafe) = (false, false);
    let mut limits = PublishLimits::default();
    let mut retries = 8;
    while let Some(arg) = args.next()? {
        let flag = match arg {
            Arg::Positional(value) if positionals.len() < 3 => {
                positionals.push(value);
                continue;
            }
            Arg::Positional(_) => return Err(args.unknown(arg)),
            Arg::Flag(flag) => flag,
        };
        let size = |value: u64| usize::try_from(value).unwrap_or(usize::MAX).max(1);
        match flag.as_str() {
            "--url" => url = Some(args.value()?),
            "--token" => token = Some(args.value()?),
            "--text" => text = true,
            "--category" => category = Some(args.value()?),
            "--batch-events-max" => limits.batch_events_max = size(args.number()?),
            "--batch-bytes-max" => limits.batch_bytes_max = size(args.number()?),
            "--event-bytes-max" => limits.event_bytes_max = size(args.number()?),
            "--retries" => retries = u32::try_from(args.number()?).unwrap_or(u32::MAX),
            "--retry-unsafe" => retry_unsafe = true,
            "-h" | "--help" => return Err(CliError::Help(HELP)),
            _ => return Err(args.unknown(Arg::Flag(flag))),
        }
    }
    let mut positionals = positionals.into_iter();
    let (Some(stream), Some(event)) = (positionals.next(), positionals.next()) else {
        return Err(CliError::usage("STREAM and EVENT are required"));
    };
    let stream = connection_id("STREAM", &stream)?.as_str().to_string();
    let event =
        EventName::new(&event).map_err(|e| CliError::usage(format!("EVENT {event:?}: {e}")))?;
    let source = match positionals.next() {
        Some(dash) if dash == "-" => Source::Stdin,
        data => Source::Argument(data),
    };
    Ok(Options {
        url: args::base_url(url, env)?,
        token: args::access_token(token, env)?,
        stream,
        event,
        source,
        text,
        category,
        limits,
        retries,
        retry_unsafe,
    })
}

/// The wait before retry number `attempt` (1 for the first): 250 ms, doubling, at most 8 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250u64 << attempt.saturating_sub(1).min(5))
}

/// Sends one body, retrying as the options allow; the ids the worker gave its events.
fn send(agent: &ureq::Agent, options: &Options, body: &str) -> Result<Vec<String>, CliError> {
    let url = format!("{}/v1/streams/{}/events", options.url, options.stream);
    let mut attempt = 0;
    loop {
        let answer = agent
            .post(&url)
            .set("authorization", &format!("Bearer {}", options.token))
            .set("content-type", "application/json")
            .timeout(Duration::from_secs(60))
            .send_string(body);
        let (problem, safe) = match answer {
            Ok(response) => {
                let text = response.into_string().map_err(|e| {
                    CliError::failed(format!(
                        "the answer was cut ({e}); the events may be stored"
                    ))
                })?;
                let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                let ids = json["ids"].as_array().map(|ids| {
                    ids.iter()
                        .filter_map(|id| id.as_str().map(String::from))
                        .collect()
                });
                return ids.ok_or_else(|| CliError::failed(format!("unexpected answer {text:?}")));
            }
            Err(ureq::Error::Status(status, response)) if status >= 500 => {
                (http::describe(status, response), false)
            }
            Err(ureq::Error::Status(status, response)) => {
                return Err(CliError::failed(http::describe(status, response)))
            }
            Err(ureq::Error::Transport(error)) => {
                let safe = http::failed_before_sending(&error);
                (error.to_string(), safe)
            }
        };
        attempt += 1;
        if !(safe || options.retry_unsafe) {
            return Err(CliError::failed(format!(
                "{problem}; the request may have reached the worker, so it was not sent again \
                 (--retry-unsafe would, at the risk of storing its events twice)"
            )));
        }
        if attempt > options.retries {
            return Err(CliError::failed(format!(
                "{problem}; gave up after {} tries",
                attempt
            )));
        }
        let wait = backoff(attempt);
        eprintln!("herald: {problem}; retrying in {wait:?}");
        thread::sleep(wait);
    }
}

fn print_ids(ids: &[String]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    for id in ids {
        writeln!(out, "{id}").map_err(CliError::failed)?;
    }
    out.flush().map_err(CliError::failed)
}

/// How long a batch waits for more lines once it has one: short enough not to delay a live pipe,
/// long enough for a file's lines to gather into full batches.
const LINGER: Duration = Duration::from_millis(10);

/// Reads stdin on a thread of its own, so that a batch can be sent when no line comes for a while.
fn stdin_lines() -> Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::sync_channel(1024);
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let failed = line.is_err();
            if tx.send(line).is_err() || failed {
                break;
            }
        }
    });
    rx
}

fn publish_stdin(agent: &ureq::Agent, options: &Options) -> Result<(), CliError> {
    let lines = stdin_lines();
    let mut batch = Batcher::new(options.limits);
    let (mut line_number, mut published) = (0u64, 0u64);
    let flush = |body: Option<String>, published: &mut u64| -> Result<(), CliError> {
        if let Some(body) = body {
            let ids = send(agent, options, &body).map_err(|e| match e {
                CliError::Failed(m) => {
                    CliError::Failed(format!("{m} ({published} events published before)"))
                }
                other => other,
            })?;
            *published += ids.len() as u64;
            print_ids(&ids)?;
        }
        Ok(())
    };
    loop {
        // Block for the first line of a batch; then take what comes within LINGER.
        let next = if batch.len() == 0 {
            lines.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            lines.recv_timeout(LINGER)
        };
        let line = match next {
            Ok(line) => line.map_err(|e| CliError::failed(format!("reading stdin: {e}")))?,
            Err(RecvTimeoutError::Timeout) => {
                flush(batch.take(), &mut published)?;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        line_number += 1;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        if !options.text && line.trim().is_empty() {
            continue;
        }
        let checked = event_json(
            &options.event,
            line,
            options.text,
            options.category.as_deref(),
        )
        .and_then(|(item, data_bytes)| batch.push(item, data_bytes));
        let full = match checked {
            Ok(full) => full,
            Err(problem) => {
                // The lines before it go out, whatever the timing of stdin made of the batches.
                flush(batch.take(), &mut published)?;
                return Err(CliError::failed(format!(
                    "stdin line {line_number}: {problem} ({published} events published before it)"
                )));
            }
        };
        flush(full, &mut published)?;
        if batch.is_full() {
            flush(batch.take(), &mut published)?;
        }
    }
    flush(batch.take(), &mut published)
}

pub(crate) fn run(args: Args, env: Env<'_>) -> Result<(), CliError> {
    let options = parse(args, env)?;
    let agent = http::agent(None);
    match &options.source {
        Source::Stdin => publish_stdin(&agent, &options),
        Source::Argument(data) => {
            let data = data
                .as_deref()
                .unwrap_or(if options.text { "" } else { "\"\"" });
            let (item, data_bytes) = event_json(
                &options.event,
                data,
                options.text,
                options.category.as_deref(),
            )
            .map_err(|e| CliError::usage(format!("DATA: {e} (--text sends text)")))?;
            let mut batch = Batcher::new(options.limits);
            batch
                .push(item, data_bytes)
                .map_err(|e| CliError::usage(format!("the event: {e}")))?;
            let body = batch.take().expect("one event");
            print_ids(&send(&agent, &options, &body)?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(items: &[&str]) -> Result<Options, CliError> {
        let env = |name: &str| (name == "HERALD_TOKEN").then(|| "t".to_string());
        parse(Args::new(items.iter().map(|s| s.to_string())), &env)
    }

    #[test]
    fn arguments() {
        let options = parse_args(&["s1", "job.done", "{\"n\":1}", "--retry-unsafe"]).unwrap();
        assert_eq!(options.stream, "s1");
        assert_eq!(options.event.as_str(), "job.done");
        assert_eq!(options.source, Source::Argument(Some("{\"n\":1}".into())));
        assert!(options.retry_unsafe && !options.text);
        assert_eq!(options.retries, 8);
        assert_eq!(options.limits, PublishLimits::default());
        let options = parse_args(&[
            "s1",
            "e",
            "-",
            "--batch-events-max",
            "3",
            "--batch-bytes-max=500",
            "--retries",
            "0",
        ])
        .unwrap();
        assert_eq!(options.source, Source::Stdin);
        assert_eq!(
            (
                options.limits.batch_events_max,
                options.limits.batch_bytes_max
            ),
            (3, 500)
        );
        assert_eq!(options.retries, 0);
        let options = parse_args(&["s1", "e", "--", "-5"]).unwrap();
        assert_eq!(options.source, Source::Argument(Some("-5".into())));
        for bad in [
            &["s1"][..],
            &["s/1", "e"],
            &["s1", "bad\nname"],
            &["s", "e", "1", "2"],
            &["s", "e", "-5"],
        ] {
            assert!(
                matches!(parse_args(bad), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_up_to_8_s() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    }
}
