//! `herald`: Herald's command line. Mints access tokens and tickets with the same code the worker
//! verifies them with, publishes events (one, or a batched stream of them from stdin) and tails any
//! stream family with herald-core's parser, resuming after cuts.
//!
//! ```text
//! herald token --dev-vars .dev.vars --tenant acme --scope publish,subscribe
//! herald ticket build-42 --token "$HERALD_TOKEN"
//! herald publish demo job:state_change '{"id":"j1","state":"active"}'
//! herald tail demo --types job
//! ```

use std::process::ExitCode;

mod args;
mod http;
mod publish;
mod tail;
mod token;

use args::{Args, CliError};

const HELP: &str = "\
herald: Herald's command line

usage: herald <command> [options]

commands:
  token     mint an access token with the signing key
  ticket    mint a ticket for one stream (with the key, or from the worker for a token)
  publish   publish an event, or one per line of stdin
  tail      follow a stream and print its events, resuming after cuts

`herald <command> --help` tells a command's options. Commands that talk to a worker take --url
(default: $HERALD_URL, else http://127.0.0.1:8787) and --token (default: $HERALD_TOKEN).
Exit status: 0 done, 1 failed (refused, or the worker unreachable), 2 bad usage or input,
130 interrupted.
";

fn run(mut argv: impl Iterator<Item = String>) -> Result<(), CliError> {
    let env = |name: &str| std::env::var(name).ok();
    let command = argv.next();
    let args = Args::new(argv);
    let print = |text: String| println!("{text}");
    match command.as_deref() {
        Some("token") => token::mint_token(args, &env, token::now_s()?).map(print),
        Some("ticket") => token::ticket(args, &env, token::now_s()?).map(print),
        Some("publish") => publish::run(args, &env),
        Some("tail") => tail::run(args, &env),
        Some("-h" | "--help" | "help") => Err(CliError::Help(HELP)),
        None => Err(CliError::usage(
            "a command is needed: token, ticket, publish or tail (see herald --help)",
        )),
        Some(other) => Err(CliError::usage(format!(
            "unknown command {other:?} (token, ticket, publish, tail; see herald --help)"
        ))),
    }
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Help(text)) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(CliError::Usage(message)) => {
            eprintln!("herald: {message}");
            ExitCode::from(2)
        }
        Err(CliError::Failed(message)) => {
            eprintln!("herald: {message}");
            ExitCode::from(1)
        }
    }
}
