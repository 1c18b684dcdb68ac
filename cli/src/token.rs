//! `herald token` and `herald ticket`: access tokens minted locally with the signing key, and
//! tickets minted locally or traded for an access token at the worker's `POST /v1/tickets`.

use std::time::{SystemTime, UNIX_EPOCH};

use herald_core::auth::VerifyOptions;
use herald_core::{mint, Claims, ConnectionId, Scope, Scopes, TenantId, TokenKind};

use crate::args::{self, Arg, Args, CliError, Env, KeySource};
use crate::http;

pub(crate) const TOKEN_HELP: &str = "\
usage: herald token --tenant T [--scope publish,subscribe] [--streams a,b] [--ttl-s 3600]
                    [--key-file FILE | --dev-vars FILE]

Mints an access token (an HS256 JWT) signed with the worker's key and prints it. The worker has no
route that mints access tokens: this runs where the key is.

  --tenant T        the tenant (the token's sub): 1 to 64 bytes of [A-Za-z0-9_-]
  --scope LIST      publish, subscribe or both (default: both)
  --streams LIST    the connection ids it may use (default: every stream of the tenant)
  --ttl-s S         seconds until it expires (default 3600; a worker accepts at most
                    HERALD_TOKEN_LIFETIME_MAX_S, 2592000 by default)
  --key-file FILE   the key is FILE's content, without its trailing line break
  --dev-vars FILE   the key is the HERALD_TOKEN_KEY= line of a .dev.vars file
                    (without either: the HERALD_TOKEN_KEY environment variable)

The key must be at least 32 bytes, as the worker requires.
";

pub(crate) const TICKET_HELP: &str = "\
usage: herald ticket STREAM --tenant T [--ttl-s 300] [--key-file FILE | --dev-vars FILE]
       herald ticket STREAM [--url URL] [--token TOKEN]

Prints a ticket: a token good only for subscribing to the one stream STREAM (a connection id), for
a URL's ?ticket= where a client cannot send headers (EventSource).

With --tenant, mints it locally with the signing key, as `herald token` does (same key options and
checks); it lives --ttl-s seconds (default 300, as the worker's HERALD_TICKET_TTL_S).

Without --tenant, trades an access token with the subscribe scope for one at the worker's
POST /v1/tickets: the worker checks the token's scope and streams, and the ticket lives
HERALD_TICKET_TTL_S, never past the token.

  --url URL         the worker (default: $HERALD_URL, else http://127.0.0.1:8787)
  --token TOKEN     the access token (default: $HERALD_TOKEN)
";

/// Seconds since the Unix epoch.
pub(crate) fn now_s() -> Result<u64, CliError> {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .map_err(|e| CliError::failed(format!("the clock is before 1970: {e}")))
}

/// The expiry `now_s + ttl_s`, refused rather than wrapped around into the past.
fn expiry_s(now_s: u64, ttl_s: u64) -> Result<u64, CliError> {
    if ttl_s == 0 {
        return Err(CliError::usage(
            "--ttl-s must be at least 1 (a token with 0 s is expired when minted)",
        ));
    }
    now_s.checked_add(ttl_s).ok_or_else(|| {
        CliError::usage(format!(
            "--ttl-s {ttl_s} puts the expiry past the largest Unix time (u64)"
        ))
    })
}

fn warn_if_over_lifetime(ttl_s: u64) {
    if ttl_s > VerifyOptions::LIFETIME_MAX_S_DEFAULT {
        eprintln!(
            "herald: warning: --ttl-s {ttl_s} is over the {} s a worker accepts by default (HERALD_TOKEN_LIFETIME_MAX_S)",
            VerifyOptions::LIFETIME_MAX_S_DEFAULT
        );
    }
}

fn tenant(value: &str) -> Result<TenantId, CliError> {
    TenantId::new(value).map_err(|e| CliError::usage(format!("--tenant {value:?}: {e}")))
}

pub(crate) fn connection_id(what: &str, value: &str) -> Result<ConnectionId, CliError> {
    ConnectionId::new(value).map_err(|e| CliError::usage(format!("{what} {value:?}: {e}")))
}

/// `herald token`: the token to print.
pub(crate) fn mint_token(mut args: Args, env: Env<'_>, now_s: u64) -> Result<String, CliError> {
    let mut tenant_flag = None;
    let mut scopes = Scopes::ALL;
    let mut streams: Option<Vec<ConnectionId>> = None;
    let mut ttl_s = 3600;
    let mut key = KeySource::default();
    while let Some(arg) = args.next()? {
        let Arg::Flag(flag) = arg else {
            return Err(args.unknown(arg));
        };
        match flag.as_str() {
            "--tenant" => tenant_flag = Some(tenant(&args.value()?)?),
            "--scope" => {
                scopes = Scopes {
                    publish: false,
                    subscribe: false,
                };
                for scope in args::list(&args.value()?) {
                    match scope.as_str() {
                        "publish" => scopes.publish = true,
                        "subscribe" => scopes.subscribe = true,
                        other => {
                            return Err(CliError::usage(format!(
                                "unknown scope {other:?} (publish, subscribe)"
                            )))
                        }
                    }
                }
            }
            "--streams" => {
                let ids = args::list(&args.value()?);
                let ids = ids.iter().map(|id| connection_id("--streams", id));
                streams = Some(ids.collect::<Result<_, _>>()?);
            }
            "--ttl-s" => ttl_s = args.number()?,
            "-h" | "--help" => return Err(CliError::Help(TOKEN_HELP)),
            other => {
                if !key.take(other, &mut args)? {
                    return Err(args.unknown(Arg::Flag(flag)));
                }
            }
        }
    }
    let tenant = tenant_flag.ok_or_else(|| CliError::usage("--tenant is required"))?;
    if scopes.is_empty() {
        return Err(CliError::usage("--scope needs publish, subscribe or both"));
    }
    let key = key.key(env)?;
    let exp_s = expiry_s(now_s, ttl_s)?;
    warn_if_over_lifetime(ttl_s);
    let claims = Claims {
        tenant,
        scopes,
        streams,
        exp_s,
        iat_s: Some(now_s),
        kind: TokenKind::Access,
    };
    Ok(mint(&claims, key.as_bytes()))
}

/// How `herald ticket` gets its ticket.
#[derive(Debug)]
enum TicketSource {
    Local {
        tenant: TenantId,
        ttl_s: u64,
        key: String,
    },
    Server {
        url: String,
        token: String,
    },
}

fn ticket_source(mut args: Args, env: Env<'_>) -> Result<(ConnectionId, TicketSource), CliError> {
    let mut stream = None;
    let mut tenant_flag = None;
    let mut ttl_s = None;
    let mut key = KeySource::default();
    let mut url = None;
    let mut token = None;
    while let Some(arg) = args.next()? {
        let flag = match arg {
            Arg::Positional(value) if stream.is_none() => {
                stream = Some(connection_id("STREAM", &value)?);
                continue;
            }
            Arg::Positional(_) => return Err(args.unknown(arg)),
            Arg::Flag(flag) => flag,
        };
        match flag.as_str() {
            "--tenant" => tenant_flag = Some(tenant(&args.value()?)?),
            "--ttl-s" => ttl_s = Some(args.number()?),
            "--url" => url = Some(args.value()?),
            "--token" => token = Some(args.value()?),
            "-h" | "--help" => return Err(CliError::Help(TICKET_HELP)),
            other => {
                if !key.take(other, &mut args)? {
                    return Err(args.unknown(Arg::Flag(flag)));
                }
            }
        }
    }
    let stream = stream.ok_or_else(|| CliError::usage("STREAM (a connection id) is required"))?;
    let source = match tenant_flag {
        Some(tenant) => {
            if url.is_some() || token.is_some() {
                return Err(CliError::usage(
                    "--tenant mints locally with the key: --url and --token are for asking the worker",
                ));
            }
            TicketSource::Local {
                tenant,
                ttl_s: ttl_s.unwrap_or(300),
                key: key.key(env)?,
            }
        }
        None => {
            if ttl_s.is_some() || key.key_file.is_some() || key.dev_vars.is_some() {
                return Err(CliError::usage(
                    "--ttl-s and the key options mint locally and need --tenant; the worker sets the lifetime of the tickets it gives",
                ));
            }
            TicketSource::Server {
                url: args::base_url(url, env)?,
                token: args::access_token(token, env)?,
            }
        }
    };
    Ok((stream, source))
}

/// A ticket minted here for `stream`: the ticket a worker would give for a token of the tenant
/// allowed that stream only and living as long as the ticket.
fn mint_ticket(
    tenant: TenantId,
    stream: &ConnectionId,
    ttl_s: u64,
    key: &str,
    now_s: u64,
) -> Result<String, CliError> {
    let exp_s = expiry_s(now_s, ttl_s)?;
    warn_if_over_lifetime(ttl_s);
    let parent = Claims {
        tenant,
        scopes: Scopes::only(Scope::Subscribe),
        streams: Some(vec![stream.clone()]),
        exp_s,
        iat_s: Some(now_s),
        kind: TokenKind::Access,
    };
    let ticket = parent
        .ticket_for(stream, now_s, ttl_s)
        .map_err(CliError::failed)?;
    Ok(mint(&ticket, key.as_bytes()))
}

/// `herald ticket`: the ticket to print.
pub(crate) fn ticket(args: Args, env: Env<'_>, now_s: u64) -> Result<String, CliError> {
    match ticket_source(args, env)? {
        (stream, TicketSource::Local { tenant, ttl_s, key }) => {
            mint_ticket(tenant, &stream, ttl_s, &key, now_s)
        }
        (stream, TicketSource::Server { url, token }) => {
            http::fetch_ticket(&http::agent(None), &url, &token, stream.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::verify;

    /// The streams a token is limited to, as text.
    fn streams_of(claims: &Claims) -> Vec<&str> {
        claims
            .streams
            .iter()
            .flatten()
            .map(|s| s.as_str())
            .collect()
    }

    const KEY: &str = "cli-test-key-0123456789abcdef0123";
    const NOW_S: u64 = 1_800_000_000;

    fn env_with_key(key: &'static str) -> impl Fn(&str) -> Option<String> {
        move |name: &str| (name == "HERALD_TOKEN_KEY").then(|| key.to_string())
    }

    fn args(items: &[&str]) -> Args {
        Args::new(items.iter().map(|s| s.to_string()))
    }

    fn token(key: &'static str, items: &[&str]) -> Result<String, CliError> {
        mint_token(args(items), &env_with_key(key), NOW_S)
    }

    #[test]
    fn a_default_token_has_both_scopes_for_an_hour() {
        let token = token(KEY, &["--tenant", "acme"]).unwrap();
        let claims = verify(&token, KEY.as_bytes(), NOW_S).unwrap();
        assert_eq!(claims.tenant.as_str(), "acme");
        assert_eq!(claims.scopes, Scopes::ALL);
        assert_eq!(claims.streams, None);
        assert_eq!((claims.iat_s, claims.exp_s), (Some(NOW_S), NOW_S + 3600));
        assert_eq!(claims.kind, TokenKind::Access);
    }

    #[test]
    fn scope_streams_and_ttl_are_taken() {
        let items = [
            "--tenant=acme",
            "--scope",
            "subscribe",
            "--streams",
            "a, b",
            "--ttl-s",
            "60",
        ];
        let claims = verify(&token(KEY, &items).unwrap(), KEY.as_bytes(), NOW_S).unwrap();
        assert_eq!(claims.scopes, Scopes::only(Scope::Subscribe));
        let streams = streams_of(&claims);
        assert_eq!(streams, ["a", "b"]);
        assert_eq!(claims.exp_s, NOW_S + 60);
        assert!(matches!(
            token(KEY, &["--tenant", "acme", "--scope", "admin"]),
            Err(CliError::Usage(m)) if m.contains("unknown scope")
        ));
        assert!(matches!(
            token(KEY, &["--tenant", "acme", "--streams", "a/b"]),
            Err(CliError::Usage(m)) if m.contains("--streams")
        ));
        assert!(matches!(token(KEY, &[]), Err(CliError::Usage(m)) if m.contains("--tenant")));
        assert_eq!(token(KEY, &["--help"]), Err(CliError::Help(TOKEN_HELP)));
    }

    #[test]
    fn a_huge_ttl_is_refused_not_wrapped() {
        for ttl in [u64::MAX.to_string(), (u64::MAX - 10).to_string()] {
            let error = token(KEY, &["--tenant", "acme", "--ttl-s", &ttl]).unwrap_err();
            assert!(
                matches!(&error, CliError::Usage(m) if m.contains("past the largest Unix time")),
                "{error:?}"
            );
        }
        assert_eq!(expiry_s(10, u64::MAX - 10), Ok(u64::MAX));
        assert!(expiry_s(11, u64::MAX - 10).is_err());
        let error = token(KEY, &["--tenant", "acme", "--ttl-s", "0"]).unwrap_err();
        assert!(matches!(&error, CliError::Usage(m) if m.contains("at least 1")));
        // A long but representable ttl still mints (the worker decides what it accepts).
        assert!(token(KEY, &["--tenant", "acme", "--ttl-s", "31536000"]).is_ok());
    }

    #[test]
    fn keys_under_32_bytes_are_refused_from_every_source() {
        let short = &KEY[..31];
        let dir = std::env::temp_dir().join(format!("herald-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("key");
        let dev_vars = dir.join(".dev.vars");
        let refused = |error: CliError| {
            assert!(
                matches!(&error, CliError::Usage(m) if m.contains("31 bytes") && m.contains("at least 32")),
                "{error:?}"
            );
        };
        refused(token("0123456789012345678901234567890", &["--tenant", "acme"]).unwrap_err());
        std::fs::write(&key_file, format!("{short}\n")).unwrap();
        let path = key_file.display().to_string();
        refused(token(KEY, &["--tenant", "acme", "--key-file", &path]).unwrap_err());
        std::fs::write(&dev_vars, format!("X=1\nHERALD_TOKEN_KEY=\"{short}\"\n")).unwrap();
        let vars = dev_vars.display().to_string();
        refused(token(KEY, &["--tenant", "acme", "--dev-vars", &vars]).unwrap_err());
        refused(
            ticket(
                args(&["s", "--tenant", "acme", "--dev-vars", &vars]),
                &|_| None,
                NOW_S,
            )
            .unwrap_err(),
        );

        // At 32 bytes, from a file with a line break after it, the key signs.
        std::fs::write(&key_file, format!("{}\n", &KEY[..32])).unwrap();
        let token = token(short, &["--tenant", "acme", "--key-file", &path]).unwrap();
        assert!(verify(&token, &KEY.as_bytes()[..32], NOW_S).is_ok());
        let error = mint_token(args(&["--tenant", "acme"]), &|_| None, NOW_S).unwrap_err();
        assert!(matches!(error, CliError::Usage(m) if m.contains("no key")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_local_ticket_is_a_ticket_for_one_stream() {
        let env = env_with_key(KEY);
        let ticket = ticket(args(&["build-42", "--tenant", "acme"]), &env, NOW_S).unwrap();
        let claims = verify(&ticket, KEY.as_bytes(), NOW_S).unwrap();
        assert_eq!(claims.kind, TokenKind::Ticket);
        assert_eq!(claims.scopes, Scopes::only(Scope::Subscribe));
        let streams = streams_of(&claims);
        assert_eq!(streams, ["build-42"]);
        assert_eq!(claims.exp_s, NOW_S + 300);
        let ticket = super::ticket(
            args(&["s", "--tenant", "acme", "--ttl-s", "5"]),
            &env,
            NOW_S,
        )
        .unwrap();
        assert_eq!(
            verify(&ticket, KEY.as_bytes(), NOW_S).unwrap().exp_s,
            NOW_S + 5
        );
    }

    #[test]
    fn ticket_arguments_choose_one_source() {
        let env = |name: &str| match name {
            "HERALD_TOKEN_KEY" => Some(KEY.to_string()),
            "HERALD_TOKEN" => Some("t0ken".to_string()),
            _ => None,
        };
        let (stream, source) = ticket_source(args(&["demo"]), &env).unwrap();
        assert_eq!(stream.as_str(), "demo");
        assert!(matches!(
            source,
            TicketSource::Server { url, token } if url == args::URL_DEFAULT && token == "t0ken"
        ));
        let local = ticket_source(args(&["demo", "--tenant", "acme"]), &env).unwrap();
        assert!(matches!(local.1, TicketSource::Local { ttl_s: 300, .. }));
        for bad in [
            &["demo", "--tenant", "acme", "--url", "http://x"][..],
            &["demo", "--ttl-s", "5"],
            &["demo", "--key-file", "k"],
            &[],
            &["demo", "other"],
            &["bad/stream"],
        ] {
            assert!(
                matches!(ticket_source(args(bad), &env), Err(CliError::Usage(_))),
                "{bad:?}"
            );
        }
    }
}
