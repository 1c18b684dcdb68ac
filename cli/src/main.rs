//! `herald-token`: mints a Herald access token locally, signed with the same key the worker verifies
//! with (from `--dev-vars FILE`, or the `HERALD_TOKEN_KEY` environment variable).
//!
//! ```text
//! herald-token --tenant acme --scope publish,subscribe [--streams build-42,default] [--ttl-s 3600]
//! ```

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use herald_core::{mint, Claims, ConnectionId, Scope, Scopes, TenantId, TokenKind};

const USAGE: &str = "usage: herald-token --tenant T [--scope publish,subscribe] [--streams a,b] [--ttl-s 3600] [--dev-vars .dev.vars]";

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
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = Claims {
        tenant,
        scopes: granted,
        streams,
        exp_s: now_s + ttl_s,
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
