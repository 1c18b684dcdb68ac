//! `herald tail`'s options, and the URL each stream family is read from.

use std::time::Duration;

use crate::args::{self, Arg, Args, CliError, Env};
use crate::http;
use crate::token::connection_id;

pub(crate) const HELP: &str = "\
usage: herald tail [STREAM] [options]

Follows the stream STREAM (a connection id) and prints its events as they come, one a line:
`<id> <event> <data>` (id `-` for an event without one, such as `reset`; a line break in data is
shown as \\n), or with --json one object a line, {\"id\":..,\"event\":..,\"data\":\"..\"}, data being the
text received (`jq '.data | fromjson'` reads JSON data).

After a cut (the worker restarting, the stream's maximum age, a network failure) it reconnects with
Last-Event-ID, after the retry: time the stream asked for (backing off to 10 s while the worker is
unreachable), so no event is missed or printed twice. It stops with status 0 at `stream.complete`, or
when the worker answers 204 (the stream is complete); 401, 403 and other refusals end it with status 1.

  --family F          generic (default): GET /v1/streams/STREAM
                      sqlmesh: GET /api/events (STREAM is `default` and may be left out)
                      sluice:  GET /api/events/stream?connectionId=STREAM
                      runner:  GET /runner-jobs/STREAM/events/stream
  --url URL           the worker (default: $HERALD_URL, else http://127.0.0.1:8787)
  --token TOKEN       an access token with the subscribe scope (default: $HERALD_TOKEN), sent as
                      Authorization: Bearer
  --via-ticket        trade the token for a ticket (POST /v1/tickets) and subscribe with ?ticket=,
                      as a browser would; a ticket refused on a reconnect (401: it expired) is
                      replaced by a new one
  --ticket TICKET     subscribe with this ticket (no token needed; it is not renewed)
  --types LIST        only these event names or namespaces (types=)
  --categories LIST   only these categories (categories=)
  --last-event-id ID  start after this id, as a reconnect would
  --json              print JSON lines
  -v, --verbose       also print heartbeats (as `- heartbeat <data>`; generic and runner streams
                      are asked for heartbeat=event), and report reconnects on stderr
  --idle-timeout-s S  reconnect when nothing, not even a heartbeat, came for S seconds (default 60,
                      four heartbeats at the worker's default; 0: wait for ever)

Ctrl-C stops it after the line being printed, with status 130.
";

/// The stream families, each with its own path and heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Generic,
    SqlMesh,
    Sluice,
    Runner,
}

/// The connection id of a tenant's SQLMesh stream.
const SQLMESH_STREAM: &str = "default";

impl Family {
    fn named(name: &str) -> Result<Family, CliError> {
        match name {
            "generic" => Ok(Family::Generic),
            "sqlmesh" => Ok(Family::SqlMesh),
            "sluice" => Ok(Family::Sluice),
            "runner" => Ok(Family::Runner),
            other => Err(CliError::usage(format!(
                "unknown family {other:?} (generic, sqlmesh, sluice, runner)"
            ))),
        }
    }

    /// The stream's URL, before its filters and credentials.
    fn url(self, base: &str, stream: &str) -> String {
        match self {
            Family::Generic => format!("{base}/v1/streams/{stream}"),
            Family::SqlMesh => format!("{base}/api/events"),
            Family::Sluice => {
                let mut url = format!("{base}/api/events/stream");
                http::push_query(&mut url, "connectionId", stream);
                url
            }
            Family::Runner => format!("{base}/runner-jobs/{stream}/events/stream"),
        }
    }

    /// Whether its heartbeats are comments, which a parser never dispatches, unless asked for as
    /// events.
    fn heartbeats_are_comments(self) -> bool {
        matches!(self, Family::Generic | Family::Runner)
    }
}

/// The credential a subscription is opened with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    Bearer(String),
    Ticket(String),
    /// Tickets traded for this token at `POST /v1/tickets`, renewed when refused.
    ViaTicket(String),
}

#[derive(Debug)]
pub(crate) struct Options {
    pub(crate) base: String,
    pub(crate) family: Family,
    pub(crate) stream: String,
    pub(crate) auth: Auth,
    pub(crate) types: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) last_event_id: String,
    pub(crate) json: bool,
    pub(crate) verbose: bool,
    pub(crate) idle_timeout: Option<Duration>,
}

pub(crate) fn parse(mut args: Args, env: Env<'_>) -> Result<Options, CliError> {
    let (mut stream, mut url, mut token, mut ticket) = (None, None, None, None);
    let (mut family, mut via_ticket, mut json, mut verbose) =
        (Family::Generic, false, false, false);
    let (mut types, mut categories, mut last_event_id) = (Vec::new(), Vec::new(), String::new());
    let mut idle_timeout_s = 60;
    while let Some(arg) = args.next()? {
        let flag = match arg {
            Arg::Positional(value) if stream.is_none() => {
                stream = Some(value);
                continue;
            }
            Arg::Positional(_) => return Err(args.unknown(arg)),
            Arg::Flag(flag) => flag,
        };
        match flag.as_str() {
            "--family" => family = Family::named(&args.value()?)?,
            "--url" => url = Some(args.value()?),
            "--token" => token = Some(args.value()?),
            "--ticket" => ticket = Some(args.value()?),
            "--via-ticket" => via_ticket = true,
            "--types" => types.extend(args::list(&args.value()?)),
            "--categories" => categories.extend(args::list(&args.value()?)),
            "--last-event-id" => last_event_id = args.value()?,
            "--json" => json = true,
            "-v" | "--verbose" => verbose = true,
            "--idle-timeout-s" => idle_timeout_s = args.number()?,
            "-h" | "--help" => return Err(CliError::Help(HELP)),
            _ => return Err(args.unknown(Arg::Flag(flag))),
        }
    }
    let stream = match (family, stream) {
        (Family::SqlMesh, None) => SQLMESH_STREAM.to_string(),
        (Family::SqlMesh, Some(stream)) if stream != SQLMESH_STREAM => {
            return Err(CliError::usage(format!(
                "a tenant's SQLMesh stream is {SQLMESH_STREAM:?}, not {stream:?}"
            )))
        }
        (_, None) => return Err(CliError::usage("STREAM (a connection id) is required")),
        (_, Some(stream)) => connection_id("STREAM", &stream)?.as_str().to_string(),
    };
    let auth =
        match (ticket, via_ticket) {
            (Some(_), true) => return Err(CliError::usage(
                "--ticket uses the ticket given; --via-ticket gets them with the token: give one",
            )),
            (Some(ticket), false) => Auth::Ticket(ticket),
            (None, true) => Auth::ViaTicket(args::access_token(token, env)?),
            (None, false) => Auth::Bearer(args::access_token(token, env)?),
        };
    Ok(Options {
        base: args::base_url(url, env)?,
        family,
        stream,
        auth,
        types,
        categories,
        last_event_id,
        json,
        verbose,
        idle_timeout: (idle_timeout_s > 0).then(|| Duration::from_secs(idle_timeout_s)),
    })
}

impl Options {
    /// The URL to open, with the filters, the heartbeat asked for and the ticket, if any.
    pub(crate) fn url(&self, ticket: Option<&str>) -> String {
        let mut url = self.family.url(&self.base, &self.stream);
        if !self.types.is_empty() {
            http::push_query(&mut url, "types", &self.types.join(","));
        }
        if !self.categories.is_empty() {
            http::push_query(&mut url, "categories", &self.categories.join(","));
        }
        if self.verbose && self.family.heartbeats_are_comments() {
            http::push_query(&mut url, "heartbeat", "event");
        }
        if let Some(ticket) = ticket {
            http::push_query(&mut url, "ticket", ticket);
        }
        url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(items: &[&str]) -> Result<Options, CliError> {
        let env = |name: &str| (name == "HERALD_TOKEN").then(|| "tok".to_string());
        parse(Args::new(items.iter().map(|s| s.to_string())), &env)
    }

    #[test]
    fn each_family_has_its_path() {
        let url = |items: &[&str]| parse_args(items).unwrap().url(None);
        let base = args::URL_DEFAULT;
        assert_eq!(url(&["s1"]), format!("{base}/v1/streams/s1"));
        assert_eq!(url(&["--family", "sqlmesh"]), format!("{base}/api/events"));
        assert_eq!(
            url(&["default", "--family=sqlmesh"]),
            format!("{base}/api/events")
        );
        assert_eq!(
            url(&["c1", "--family", "sluice", "--types", "job,queue"]),
            format!("{base}/api/events/stream?connectionId=c1&types=job,queue")
        );
        assert_eq!(
            url(&["build-42", "--family", "runner", "-v"]),
            format!("{base}/runner-jobs/build-42/events/stream?heartbeat=event")
        );
        // SQLMesh and sluice heartbeats already are events.
        assert_eq!(
            url(&["--family", "sqlmesh", "-v"]),
            format!("{base}/api/events")
        );
        let options = parse_args(&[
            "s",
            "--types",
            "job",
            "--categories",
            "ai",
            "--categories=import",
        ])
        .unwrap();
        assert_eq!(
            options.url(Some("t.k")),
            format!("{base}/v1/streams/s?types=job&categories=ai,import&ticket=t.k")
        );
    }

    #[test]
    fn arguments() {
        let options = parse_args(&[
            "s",
            "--json",
            "--last-event-id",
            "1-5",
            "--idle-timeout-s",
            "0",
        ])
        .unwrap();
        assert!(options.json && !options.verbose);
        assert_eq!(options.last_event_id, "1-5");
        assert_eq!(options.idle_timeout, None);
        assert_eq!(options.auth, Auth::Bearer("tok".into()));
        assert_eq!(
            parse_args(&["s"]).unwrap().idle_timeout,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_args(&["s", "--via-ticket"]).unwrap().auth,
            Auth::ViaTicket("tok".into())
        );
        let options = parse_args(&["s", "--ticket", "tk"]).unwrap();
        assert_eq!(options.auth, Auth::Ticket("tk".into()));
        for bad in [
            &[][..],
            &["s", "t"],
            &["a/b"],
            &["--family", "nats", "s"],
            &["--family", "sqlmesh", "other"],
            &["s", "--ticket", "tk", "--via-ticket"],
            &["s", "--json=1"],
        ] {
            assert!(
                matches!(parse_args(bad), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
        let no_token = parse(Args::new(["s".to_string()]), &|_: &str| None);
        assert!(matches!(no_token, Err(CliError::Usage(m)) if m.contains("HERALD_TOKEN")));
    }
}
