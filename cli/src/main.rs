//! `herald-token`: mints a Herald access token locally, signed with the same key the worker verifies
//! with (from `--dev-vars FILE`, or the `HERALD_TOKEN_KEY` environment variable).
//!
//! ```text
//! herald-token --tenant acme --scope publish,subscribe [--streams build-42,default] [--ttl-s 3600]
//! ```

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_core::{mint, Claims, ConnectionId, Scope, Scopes, TenantId, TokenKind, VerifyOptions};

const USAGE: &str = "usage: herald-token --tenant T [--scope publish,subscribe] [--streams a,b] [--ttl-s 3600] [--dev-vars .dev.vars]";

/// The shortest key accepted, in bytes: RFC 7518 §3.2 wants an HS256 key at least as long as the hash
/// output, and the worker refuses a shorter `HERALD_TOKEN_KEY` (so a token signed with one would never
/// verify anyway).
const KEY_BYTES_MIN: usize = 32;

/// The token's expiry: `now_s + ttl_s`, refused rather than wrapped around into the past.
fn expiry_s(now_s: u64, ttl_s: u64) -> Result<u64, String> {
    if ttl_s == 0 {
        return Err("--ttl-s must be at least 1 (a token with 0 s is expired when minted)".into());
    }
    now_s
        .checked_add(ttl_s)
        .ok_or_else(|| format!("--ttl-s {ttl_s} puts the expiry past the largest Unix time (u64)"))
}

fn check_key(key: &str) -> Result<(), String> {
    if key.len() < KEY_BYTES_MIN {
        return Err(format!(
            "the key is {} bytes; HS256 needs at least {KEY_BYTES_MIN} (the worker refuses shorter ones)",
            key.len()
        ));
    }
    Ok(())
}

fn key_from_dev_vars(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("HERALD_TOKEN_KEY="))
        .map(|value| value.trim().trim_matches('"').to_string())
        .next()
        .ok_or_else(|| format!("{path} has no HERALD_TOKEN_KEY"))
}

fn run(args: &[String]) -> Result<String, String> {
    let mut tenant = None;
    let mut scopes = vec![Scope::Publish, Scope::Subscribe];
    let mut streams: Option<Vec<String>> = None;
    let mut ttl_s = 3600u64;
    let mut key = std::env::var("HERALD_TOKEN_KEY").ok();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--tenant" => tenant = Some(value()?),
            "--scope" => {
                scopes = value()?
                    .split(',')
                    .map(|s| match s.trim() {
                        "publish" => Ok(Scope::Publish),
                        "subscribe" => Ok(Scope::Subscribe),
                        other => Err(format!("unknown scope {other:?} (publish, subscribe)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--streams" => {
                streams = Some(value()?.split(',').map(|s| s.trim().to_string()).collect())
            }
            "--ttl-s" => {
                ttl_s = value()?
                    .parse()
                    .map_err(|_| "--ttl-s takes whole seconds".to_string())?
            }
            "--dev-vars" => key = Some(key_from_dev_vars(&value()?)?),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let tenant = tenant.ok_or_else(|| format!("--tenant is required\n{USAGE}"))?;
    let tenant = TenantId::new(&tenant).map_err(|e| format!("--tenant: {e}"))?;
    let streams = match streams {
        None => None,
        Some(ids) => Some(
            ids.iter()
                .map(|id: &String| {
                    ConnectionId::new(id).map_err(|e| format!("--streams {id:?}: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let mut granted = Scopes {
        publish: false,
        subscribe: false,
    };
    for scope in scopes {
        match scope {
            Scope::Publish => granted.publish = true,
            Scope::Subscribe => granted.subscribe = true,
        }
    }
    let key = key.ok_or("no key: pass --dev-vars FILE or set HERALD_TOKEN_KEY")?;
    check_key(&key)?;
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let exp_s = expiry_s(now_s, ttl_s)?;
    if ttl_s > VerifyOptions::LIFETIME_MAX_S_DEFAULT {
        eprintln!(
            "herald-token: warning: --ttl-s {ttl_s} is over the {} s a worker accepts by default (HERALD_TOKEN_LIFETIME_MAX_S)",
            VerifyOptions::LIFETIME_MAX_S_DEFAULT
        );
    }
    let claims = Claims {
        tenant,
        scopes: granted,
        streams,
        exp_s,
        iat_s: Some(now_s),
        kind: TokenKind::Access,
    };
    Ok(mint(&claims, key.as_bytes()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("herald-token: {message}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::verify;

    const KEY: &str = "cli-test-key-0123456789abcdef0123";

    /// Runs with the key in a `.dev.vars` file of its own.
    fn run_with_key(key: &str, args: &[&str]) -> Result<String, String> {
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let file = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "herald-token-test-{}-{file}.dev.vars",
            std::process::id()
        ));
        std::fs::write(&path, format!("HERALD_TOKEN_KEY={key}\n")).unwrap();
        let mut all: Vec<String> = vec!["--dev-vars".into(), path.display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        let result = run(&all);
        let _ = std::fs::remove_file(&path);
        result
    }

    fn now_s() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_default_token_verifies_for_an_hour() {
        let token = run_with_key(KEY, &["--tenant", "acme"]).unwrap();
        let claims = verify(&token, KEY.as_bytes(), now_s()).unwrap();
        assert_eq!(claims.tenant.as_str(), "acme");
        let iat_s = claims.iat_s.unwrap();
        assert_eq!(claims.exp_s - iat_s, 3600);
    }

    #[test]
    fn a_huge_ttl_is_refused_not_wrapped() {
        for ttl in [u64::MAX.to_string(), (u64::MAX - 10).to_string()] {
            let error = run_with_key(KEY, &["--tenant", "acme", "--ttl-s", &ttl]).unwrap_err();
            assert!(error.contains("past the largest Unix time"), "{error}");
        }
        assert_eq!(expiry_s(10, u64::MAX - 10), Ok(u64::MAX));
        assert!(expiry_s(11, u64::MAX - 10).is_err());
        let error = run_with_key(KEY, &["--tenant", "acme", "--ttl-s", "0"]).unwrap_err();
        assert!(error.contains("at least 1"), "{error}");
        // A long but representable ttl still mints (the worker decides what it accepts).
        let token = run_with_key(KEY, &["--tenant", "acme", "--ttl-s", "31536000"]).unwrap();
        assert!(!token.is_empty());
    }

    #[test]
    fn keys_under_32_bytes_are_refused() {
        let short = &KEY[..31];
        let error = run_with_key(short, &["--tenant", "acme"]).unwrap_err();
        assert!(
            error.contains("31 bytes") && error.contains("at least 32"),
            "{error}"
        );
        assert!(run_with_key(&KEY[..32], &["--tenant", "acme"]).is_ok());
    }
}
