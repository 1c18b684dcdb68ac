//! `herald tail STREAM`: follows a stream of any family with herald-core's parser, resuming after
//! every cut with `Last-Event-ID` as EventSource does, until the stream completes.

mod options;
mod output;

use std::io::{self, Read};
use std::thread;
use std::time::Duration;

use herald_core::Parser;

use crate::args::{Args, CliError, Env};
use crate::http::{self, TicketError};
use options::{parse, Auth, Options};
use output::{exit_on_interrupt, Printer};

/// How one connection's stream ended.
#[derive(Debug)]
enum End {
    /// `stream.complete` came.
    Complete,
    /// Whoever reads our output has gone (a closed pipe): nothing is left to do.
    OutputClosed,
    /// The output cannot be written (a full disk).
    OutputFailed(io::Error),
    /// The stream was cut or ended: reconnect.
    Cut(String),
}

/// What to do after one connection.
#[derive(Debug)]
enum Step {
    /// The stream is complete, or nobody reads our output.
    Done,
    /// The stream opened and then ended: reconnect after its `retry:` time.
    Resume,
    /// Reconnect at once (with a new ticket).
    Now,
    /// The attempt failed: back off.
    Failed(String),
}

/// The wait before reconnecting after `failures` failed attempts in a row (at least 1): the
/// stream's `retry:` time (at least 250 ms), doubling, at most 10 s (or the `retry:` time if
/// longer).
fn failure_wait(retry_ms: u64, failures: u32) -> Duration {
    let base = retry_ms.max(250);
    let doubled = base.saturating_mul(1 << failures.saturating_sub(1).min(16));
    Duration::from_millis(doubled.min(retry_ms.max(10_000)))
}

/// What EventSource uses before a stream has said `retry:`.
const RETRY_MS_DEFAULT: u64 = 3_000;

struct Tail {
    options: Options,
    agent: ureq::Agent,
    parser: Parser,
    printer: Printer<io::Stdout>,
    /// The ticket in use with `--via-ticket`, and whether it was fetched since the last stream
    /// opened (a fresh ticket that is refused will not be better the next time).
    ticket: Option<String>,
    ticket_fresh: bool,
}

impl Tail {
    fn note(&self, message: &str) {
        if self.options.verbose {
            eprintln!("herald: {message}");
        }
    }

    fn retry_ms(&self) -> u64 {
        self.parser.retry_ms().unwrap_or(RETRY_MS_DEFAULT)
    }

    /// The id to resume after: the last one received, or the one to start after.
    fn resume_id(&self) -> &str {
        match self.parser.last_event_id() {
            "" => &self.options.last_event_id,
            id => id,
        }
    }

    /// The ticket for the next attempt, fetched if needed; `Ok(Err(why))` when the worker could not
    /// be reached for one.
    fn ticket(&mut self) -> Result<Result<Option<String>, String>, CliError> {
        let token = match &self.options.auth {
            Auth::Bearer(_) => return Ok(Ok(None)),
            Auth::Ticket(ticket) => return Ok(Ok(Some(ticket.clone()))),
            Auth::ViaTicket(token) => token,
        };
        if self.ticket.is_none() {
            let answer =
                http::request_ticket(&self.agent, &self.options.base, token, &self.options.stream);
            match answer {
                Ok(ticket) => {
                    self.note("got a ticket from POST /v1/tickets");
                    self.ticket = Some(ticket);
                    self.ticket_fresh = true;
                }
                Err(TicketError::Unreachable(why)) => return Ok(Err(why)),
                Err(TicketError::Refused(why)) => return Err(CliError::Failed(why)),
            }
        }
        Ok(Ok(self.ticket.clone()))
    }

    fn follow(&mut self) -> Result<(), CliError> {
        let mut failures = 0u32;
        loop {
            let step = match self.ticket()? {
                Err(why) => Step::Failed(why),
                Ok(ticket) => self.attempt(ticket.as_deref())?,
            };
            let wait = match step {
                Step::Done => return Ok(()),
                Step::Now => continue,
                Step::Resume => {
                    failures = 0;
                    Duration::from_millis(self.retry_ms())
                }
                Step::Failed(why) => {
                    failures += 1;
                    let wait = failure_wait(self.retry_ms(), failures);
                    eprintln!("herald: {why}; retrying in {wait:?}");
                    wait
                }
            };
            thread::sleep(wait);
        }
    }

    /// One connection, and what to do next; an error when the worker refuses the stream.
    fn attempt(&mut self, ticket: Option<&str>) -> Result<Step, CliError> {
        let mut request = self
            .agent
            .get(&self.options.url(ticket))
            .set("accept", "text/event-stream");
        if let Auth::Bearer(token) = &self.options.auth {
            request = request.set("authorization", &format!("Bearer {token}"));
        }
        if !self.resume_id().is_empty() {
            request = request.set("last-event-id", self.resume_id());
        }
        match request.call() {
            Ok(response) if response.status() == 204 => {
                self.note("the stream is complete (204)");
                Ok(Step::Done)
            }
            Ok(response) => {
                self.ticket_fresh = false;
                let content_type = response.content_type();
                if content_type != "text/event-stream" {
                    return Err(CliError::failed(format!(
                        "{} answered {} {content_type:?}, not an event stream: is --url a Herald worker?",
                        response.get_url(),
                        response.status()
                    )));
                }
                match self.read(response) {
                    End::Complete | End::OutputClosed => Ok(Step::Done),
                    End::OutputFailed(e) => {
                        Err(CliError::failed(format!("writing the output: {e}")))
                    }
                    End::Cut(why) => {
                        let wait = self.retry_ms();
                        let resume = self.resume_id();
                        self.note(&format!(
                            "{why}; reconnecting in {wait} ms with Last-Event-ID {resume:?}"
                        ));
                        Ok(Step::Resume)
                    }
                }
            }
            Err(ureq::Error::Status(401, response))
                if matches!(self.options.auth, Auth::ViaTicket(_)) && !self.ticket_fresh =>
            {
                let why = http::describe(401, response);
                self.note(&format!(
                    "the ticket was refused ({why}); getting a new one"
                ));
                self.ticket = None;
                Ok(Step::Now)
            }
            Err(ureq::Error::Status(429, response)) => {
                let after_s = response.header("retry-after").and_then(|s| s.parse().ok());
                let why = http::describe(429, response);
                let wait = Duration::from_secs(after_s.unwrap_or(10));
                eprintln!("herald: {why}; retrying in {wait:?}");
                thread::sleep(wait);
                Ok(Step::Now)
            }
            Err(ureq::Error::Status(status, response)) if status >= 500 => {
                Ok(Step::Failed(http::describe(status, response)))
            }
            Err(ureq::Error::Status(status, response)) => {
                Err(CliError::failed(http::describe(status, response)))
            }
            Err(ureq::Error::Transport(error)) => Ok(Step::Failed(error.to_string())),
        }
    }

    /// Reads one stream until it completes or ends.
    fn read(&mut self, response: ureq::Response) -> End {
        let mut body = response.into_reader();
        let mut buf = vec![0u8; 16 * 1024];
        let (parser, printer) = (&mut self.parser, &mut self.printer);
        let why = loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break "the stream ended".to_string(),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    let idle = self.options.idle_timeout.unwrap_or_default();
                    break format!("nothing came for {idle:?}");
                }
                Err(e) => break format!("the stream was cut ({e})"),
            };
            let mut outcome = Ok(false);
            parser.feed(&buf[..n], |message| {
                if matches!(outcome, Ok(false)) {
                    outcome = printer.message(message);
                }
            });
            match outcome {
                Ok(false) => {}
                Ok(true) => return End::Complete,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return End::OutputClosed,
                Err(e) => return End::OutputFailed(e),
            }
        };
        // An event cut in half is dropped; the reconnect resumes after the last whole one.
        parser.finish();
        End::Cut(why)
    }
}

pub(crate) fn run(args: Args, env: Env<'_>) -> Result<(), CliError> {
    let options = parse(args, env)?;
    exit_on_interrupt();
    let mut tail = Tail {
        agent: http::agent(options.idle_timeout),
        parser: Parser::new(),
        printer: Printer::new(io::stdout(), options.json, options.verbose),
        ticket: None,
        ticket_fresh: false,
        options,
    };
    tail.follow()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_waits_honour_retry_and_back_off() {
        let ms = |retry, n| failure_wait(retry, n).as_millis() as u64;
        assert_eq!(
            [ms(3000, 1), ms(3000, 2), ms(3000, 3)],
            [3000, 6000, 10_000]
        );
        assert_eq!(
            [ms(0, 1), ms(0, 2), ms(0, 9), ms(0, 99)],
            [250, 500, 10_000, 10_000]
        );
        assert_eq!(ms(60_000, 5), 60_000);
    }
}
