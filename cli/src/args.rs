//! The command line's pieces shared by every subcommand: a small flag reader (`--name value`,
//! `--name=value`, `-v`, `--` and positionals), the errors and exit statuses, and the options
//! several commands take (the worker's URL, the access token, the signing key).

use std::collections::VecDeque;
use std::fmt;

/// How a command ends other than by succeeding.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CliError {
    /// `--help`: the text goes to stdout and the exit status is 0.
    Help(&'static str),
    /// The command line or its inputs are wrong; nothing was attempted (exit status 2).
    Usage(String),
    /// The command ran and failed: the worker refused, or could not be reached (exit status 1).
    Failed(String),
}

impl CliError {
    pub(crate) fn usage(message: impl fmt::Display) -> CliError {
        CliError::Usage(message.to_string())
    }

    pub(crate) fn failed(message: impl fmt::Display) -> CliError {
        CliError::Failed(message.to_string())
    }
}

/// Reads an environment variable (a parameter so that tests need not touch the process
/// environment).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The worker's URL when neither `--url` nor `HERALD_URL` gives one: what `scripts/dev.sh` serves.
pub(crate) const URL_DEFAULT: &str = "http://127.0.0.1:8787";

/// One item of the command line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    /// `--name` or `-v` (the value of `--name=value` is kept for [`Args::value`]).
    Flag(String),
    /// Anything else: a lone `-` (stdin), and everything after `--`.
    Positional(String),
}

/// The arguments after the subcommand, read one at a time.
#[derive(Debug)]
pub(crate) struct Args {
    rest: VecDeque<String>,
    /// The flag last returned and the value it carried after `=`, until [`Args::value`] takes it.
    flag: String,
    inline: Option<String>,
    only_positionals: bool,
}

impl Args {
    pub(crate) fn new(items: impl IntoIterator<Item = String>) -> Args {
        Args {
            rest: items.into_iter().collect(),
            flag: String::new(),
            inline: None,
            only_positionals: false,
        }
    }

    /// The next item, or `None` at the end. A `--name=value` whose flag took no value is an error.
    pub(crate) fn next(&mut self) -> Result<Option<Arg>, CliError> {
        if self.inline.take().is_some() {
            return Err(CliError::usage(format!("{} takes no value", self.flag)));
        }
        let Some(item) = self.rest.pop_front() else {
            return Ok(None);
        };
        if self.only_positionals || item == "-" || !item.starts_with('-') {
            return Ok(Some(Arg::Positional(item)));
        }
        if item == "--" {
            self.only_positionals = true;
            return self.next();
        }
        let (flag, inline) = match item.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.into())),
            _ => (item, None),
        };
        self.flag.clone_from(&flag);
        self.inline = inline;
        Ok(Some(Arg::Flag(flag)))
    }

    /// The value of the flag [`Args::next`] just returned: after its `=`, or the next item.
    pub(crate) fn value(&mut self) -> Result<String, CliError> {
        if let Some(value) = self.inline.take() {
            return Ok(value);
        }
        self.rest
            .pop_front()
            .ok_or_else(|| CliError::usage(format!("{} needs a value", self.flag)))
    }

    /// The flag's value as a whole number.
    pub(crate) fn number(&mut self) -> Result<u64, CliError> {
        let value = self.value()?;
        value.parse().map_err(|_| {
            CliError::usage(format!("{} takes a whole number, not {value:?}", self.flag))
        })
    }

    /// The error for a flag the command does not know.
    pub(crate) fn unknown(&self, arg: Arg) -> CliError {
        match arg {
            Arg::Flag(flag) => CliError::usage(format!(
                "unknown option {flag:?} (a value starting with '-' goes after `--`)"
            )),
            Arg::Positional(value) => CliError::usage(format!("unexpected argument {value:?}")),
        }
    }
}

/// A comma-separated list, each item trimmed, empty items dropped.
pub(crate) fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(String::from)
        .collect()
}

/// The worker to talk to: `--url`, else `HERALD_URL`, else [`URL_DEFAULT`]; without a trailing `/`.
pub(crate) fn base_url(flag: Option<String>, env: Env<'_>) -> Result<String, CliError> {
    let url = flag
        .or_else(|| env("HERALD_URL").filter(|url| !url.is_empty()))
        .unwrap_or_else(|| URL_DEFAULT.into());
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(CliError::usage(format!(
            "the URL {url:?} must start with http:// or https://"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The access token: `--token`, else `HERALD_TOKEN`.
pub(crate) fn access_token(flag: Option<String>, env: Env<'_>) -> Result<String, CliError> {
    flag.or_else(|| env("HERALD_TOKEN"))
        .filter(|token| !token.trim().is_empty())
        .map(|token| token.trim().to_string())
        .ok_or_else(|| {
            CliError::usage("no token: pass --token TOKEN or set HERALD_TOKEN (see `herald token`)")
        })
}

/// The shortest key accepted, in bytes: RFC 7518 §3.2 wants an HS256 key at least as long as the
/// hash output, and the worker refuses a shorter `HERALD_TOKEN_KEY` (so a token signed with one
/// would never verify anyway).
pub(crate) const KEY_BYTES_MIN: usize = 32;

/// Where the signing key comes from: `--key-file`, `--dev-vars`, else `HERALD_TOKEN_KEY`.
#[derive(Debug, Default)]
pub(crate) struct KeySource {
    pub(crate) key_file: Option<String>,
    pub(crate) dev_vars: Option<String>,
}

impl KeySource {
    /// Takes `--key-file` and `--dev-vars`; false for any other flag.
    pub(crate) fn take(&mut self, flag: &str, args: &mut Args) -> Result<bool, CliError> {
        match flag {
            "--key-file" => self.key_file = Some(args.value()?),
            "--dev-vars" => self.dev_vars = Some(args.value()?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The key, checked to be long enough.
    pub(crate) fn key(&self, env: Env<'_>) -> Result<String, CliError> {
        let key = match (&self.key_file, &self.dev_vars) {
            (Some(_), Some(_)) => {
                return Err(CliError::usage("give one of --key-file and --dev-vars"));
            }
            (Some(path), None) => std::fs::read_to_string(path)
                .map_err(|e| CliError::usage(format!("cannot read {path}: {e}")))?
                .trim_end()
                .to_string(),
            (None, Some(path)) => key_from_dev_vars(path)?,
            (None, None) => env("HERALD_TOKEN_KEY").ok_or_else(|| {
                CliError::usage(
                    "no key: pass --key-file FILE or --dev-vars FILE, or set HERALD_TOKEN_KEY",
                )
            })?,
        };
        if key.len() < KEY_BYTES_MIN {
            return Err(CliError::usage(format!(
                "the key is {} bytes; HS256 needs at least {KEY_BYTES_MIN} (the worker refuses shorter ones)",
                key.len()
            )));
        }
        Ok(key)
    }
}

/// `HERALD_TOKEN_KEY=...` from a `.dev.vars` file (wrangler's local variables).
fn key_from_dev_vars(path: &str) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {path}: {e}")))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("HERALD_TOKEN_KEY="))
        .map(|value| value.trim().trim_matches('"').to_string())
        .next()
        .ok_or_else(|| CliError::usage(format!("{path} has no HERALD_TOKEN_KEY")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(items: &[&str]) -> Args {
        Args::new(items.iter().map(|s| s.to_string()))
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn flags_take_values_after_a_space_or_an_equals_sign() {
        let mut a = args(&[
            "--tenant",
            "acme",
            "--ttl-s=60",
            "-v",
            "s1",
            "-",
            "--",
            "-5",
        ]);
        assert_eq!(a.next(), Ok(Some(Arg::Flag("--tenant".into()))));
        assert_eq!(a.value(), Ok("acme".into()));
        assert_eq!(a.next(), Ok(Some(Arg::Flag("--ttl-s".into()))));
        assert_eq!(a.number(), Ok(60));
        assert_eq!(a.next(), Ok(Some(Arg::Flag("-v".into()))));
        assert_eq!(a.next(), Ok(Some(Arg::Positional("s1".into()))));
        assert_eq!(a.next(), Ok(Some(Arg::Positional("-".into()))));
        assert_eq!(a.next(), Ok(Some(Arg::Positional("-5".into()))));
        assert_eq!(a.next(), Ok(None));
    }

    #[test]
    fn a_missing_or_unwanted_value_is_a_usage_error() {
        let mut a = args(&["--token"]);
        a.next().unwrap();
        assert_eq!(a.value(), Err(CliError::usage("--token needs a value")));
        let mut a = args(&["--json=yes", "x"]);
        a.next().unwrap();
        assert_eq!(a.next(), Err(CliError::usage("--json takes no value")));
        let mut a = args(&["--ttl-s", "soon"]);
        a.next().unwrap();
        assert!(matches!(a.number(), Err(CliError::Usage(m)) if m.contains("whole number")));
    }

    #[test]
    fn the_url_comes_from_the_flag_then_the_environment_then_the_default() {
        let env = |name: &str| (name == "HERALD_URL").then(|| "https://h.example/".to_string());
        assert_eq!(base_url(None, &no_env), Ok(URL_DEFAULT.into()));
        assert_eq!(base_url(None, &env), Ok("https://h.example".into()));
        assert_eq!(
            base_url(Some("http://127.0.0.1:9".into()), &env),
            Ok("http://127.0.0.1:9".into())
        );
        assert!(base_url(Some("127.0.0.1:9".into()), &env).is_err());
    }

    #[test]
    fn the_token_comes_from_the_flag_then_the_environment() {
        let env = |name: &str| (name == "HERALD_TOKEN").then(|| "from-env\n".to_string());
        assert_eq!(access_token(None, &env), Ok("from-env".into()));
        assert_eq!(access_token(Some("flag".into()), &env), Ok("flag".into()));
        assert!(access_token(None, &no_env).is_err());
    }

    #[test]
    fn lists_are_trimmed() {
        assert_eq!(list(" a, b,,c "), ["a", "b", "c"]);
    }
}
