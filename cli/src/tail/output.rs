//! What `herald tail` prints: events as lines or JSON lines, heartbeats when asked, and never half
//! a line, even on Ctrl-C.

use std::io::{self, Write};
use std::sync::{Mutex, PoisonError, TryLockError};
use std::thread;
use std::time::{Duration, Instant};

use herald_core::{Message, STREAM_COMPLETE};

/// Held while a line is written, so that Ctrl-C never cuts one in half.
static LINE: Mutex<()> = Mutex::new(());

/// On Ctrl-C (and SIGTERM), waits for the line being written (at most a second: a reader that
/// stopped reading must not keep us), then exits with 130, the shell's status for an interrupt.
pub(crate) fn exit_on_interrupt() {
    let handler = || {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match LINE.try_lock() {
                Ok(_line) => std::process::exit(130),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(_) => std::process::exit(130),
            }
        }
    };
    if let Err(error) = ctrlc::set_handler(handler) {
        eprintln!("herald: cannot handle Ctrl-C ({error}); it will stop the process at once");
    }
}

/// Writes events as lines.
#[derive(Debug)]
pub(crate) struct Printer<W> {
    out: W,
    json: bool,
    verbose: bool,
    /// The last event id of the message before, to tell which messages carried an `id:`.
    prev_id: String,
}

impl<W: Write> Printer<W> {
    pub(crate) fn new(out: W, json: bool, verbose: bool) -> Printer<W> {
        Printer {
            out,
            json,
            verbose,
            prev_id: String::new(),
        }
    }

    /// Prints one message (a heartbeat only when verbose); true when it completes the stream.
    pub(crate) fn message(&mut self, message: &Message<'_>) -> io::Result<bool> {
        // Herald gives every published event a new id; heartbeats and control events (`reset`,
        // `lagging`, SQLMesh snapshots) carry none, so the last event id stays as it was.
        let carried_id = message.last_event_id != self.prev_id;
        if carried_id {
            self.prev_id = message.last_event_id.to_string();
        }
        let heartbeat = !carried_id && matches!(message.event_type, "ping" | "heartbeat");
        if heartbeat && !self.verbose {
            return Ok(false);
        }
        let id = carried_id.then_some(message.last_event_id);
        let mut line = if self.json {
            // Built by hand to keep the fields in this order (serde_json's maps sort their keys).
            let json = |text: &str| serde_json::Value::from(text).to_string();
            let id = id.map_or_else(|| "null".to_string(), json);
            let (event, data) = (json(message.event_type), json(message.data));
            format!("{{\"id\":{id},\"event\":{event},\"data\":{data}}}")
        } else {
            let mut line = format!("{} {}", id.unwrap_or("-"), message.event_type);
            if !message.data.is_empty() {
                line.push(' ');
                line.push_str(&message.data.replace('\n', "\\n"));
            }
            line
        };
        line.push('\n');
        let _line = LINE.lock().unwrap_or_else(PoisonError::into_inner);
        self.out.write_all(line.as_bytes())?;
        self.out.flush()?;
        Ok(message.event_type == STREAM_COMPLETE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::Parser;

    /// Feeds `stream` through a parser into a printer, returning the output and whether it
    /// completed.
    fn print(stream: &str, json: bool, verbose: bool) -> (String, bool) {
        let mut printer = Printer::new(Vec::new(), json, verbose);
        let mut parser = Parser::new();
        let mut complete = false;
        parser.feed(stream.as_bytes(), |m| {
            complete |= printer.message(m).unwrap()
        });
        (String::from_utf8(printer.out).unwrap(), complete)
    }

    const STREAM: &str = "retry: 3000\n: open\n\n\
        event: heartbeat\ndata: {\"timestamp\":1}\n\n\
        id: 1-1\nevent: job\ndata: {\"n\":1}\n\n\
        event: ping\ndata: {}\n\n\
        event: reset\ndata: {\"reason\":\"evicted\"}\n\n\
        id: 1-2\nevent: log\ndata: two\ndata: lines\n\n\
        id: 1-3\nevent: stream.complete\ndata: {}\n\n";

    #[test]
    fn events_print_as_lines_and_heartbeats_only_when_verbose() {
        let (out, complete) = print(STREAM, false, false);
        assert_eq!(
            out,
            "1-1 job {\"n\":1}\n- reset {\"reason\":\"evicted\"}\n1-2 log two\\nlines\n1-3 stream.complete {}\n"
        );
        assert!(complete);
        let (out, _) = print(STREAM, false, true);
        assert_eq!(out.lines().next(), Some("- heartbeat {\"timestamp\":1}"));
        assert!(out.contains("\n- ping {}\n"), "{out}");
        // An event published with a heartbeat's name has an id, so it is an event.
        let (out, complete) = print("id: 1-9\nevent: heartbeat\ndata: x\n\n", false, false);
        assert_eq!((out.as_str(), complete), ("1-9 heartbeat x\n", false));
        // Empty data leaves no trailing space.
        let (out, complete) = print("id: 2-1\nevent: stream.complete\ndata\n\n", false, false);
        assert_eq!((out.as_str(), complete), ("2-1 stream.complete\n", true));
    }

    #[test]
    fn json_lines_carry_the_data_as_text() {
        let (out, _) = print(STREAM, true, false);
        let lines: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert!(
            out.starts_with(r#"{"id":"1-1","event":"job","data":"{\"n\":1}"}"#),
            "{out}"
        );
        assert_eq!(
            lines[0],
            serde_json::json!({"id": "1-1", "event": "job", "data": "{\"n\":1}"})
        );
        assert_eq!(lines[1]["id"], serde_json::Value::Null);
        assert_eq!(lines[2]["data"], "two\nlines");
    }
}
