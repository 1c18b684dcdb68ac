//! Who a request comes from: a Bearer access token, a ticket in the URL, or the session cookie; and
//! `POST /v1/sessions`, which sets that cookie. The rules (what a session may do, how long it
//! lives, which origins may use it) are herald-core's; this file reads and writes the headers.

use herald_core::auth::verify_with;
use herald_core::cookie::{
    check_origin, cookie_is_secure, renew_session, renewal_due, session_cookie, session_from_token,
    set_cookie_header,
};
use herald_core::{mint, Claims, TokenKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use worker::{Headers, Method, Request, Response, Url};

use crate::body::{read_capped, SMALL_BODY_BYTES_MAX};
use crate::config::Config;
use crate::error::{ApiError, ApiResult};

/// Where a request's credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Bearer,
    Ticket,
    Cookie,
}

/// An authenticated caller: its verified claims and the credential's text (for its id).
#[derive(Debug)]
pub(crate) struct Caller {
    pub(crate) claims: Claims,
    pub(crate) source: Source,
    credential: String,
}

impl Caller {
    /// The id of the credential (its Bearer token, ticket or session): 128 bits of its SHA-256,
    /// never the credential itself, as the tag the Hub keeps with a subscriber's socket. A
    /// credential's text is canonical (HMAC-signed header and payload, a strictly decoded
    /// signature), so one credential has one id.
    pub(crate) fn credential_id(&self) -> String {
        let digest = Sha256::digest(self.credential.as_bytes());
        let mut id = String::from("c:");
        for byte in digest.iter().take(16) {
            id.push_str(&format!("{byte:02x}"));
        }
        id
    }
}

/// Which credentials a route takes besides a Bearer access token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Accepts {
    /// `?ticket=` (subscribe routes).
    pub(crate) ticket: bool,
    /// The session cookie (subscribe routes and SQLMesh's plan routes).
    pub(crate) cookie: bool,
}

/// What a request is checked with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Check<'a> {
    pub(crate) key: &'a [u8],
    pub(crate) now_s: u64,
    pub(crate) config: &'a Config,
}

/// Authenticates a request: the `Authorization` header if it has one (and then nothing else), else
/// a ticket in the URL, else the session cookie, as far as the route `accepts` them. A request the
/// cookie authenticates must also come from an allowed origin (herald-core's `check_origin`):
/// 403 otherwise, before anything is done.
pub(crate) fn authenticate(
    request: &Request,
    url: &Url,
    check: Check<'_>,
    accepts: Accepts,
) -> ApiResult<Caller> {
    if let Some(header) = request.headers().get("authorization")? {
        let token = bearer_token(&header)?;
        let claims = verify(token, check)?;
        if claims.kind != TokenKind::Access {
            return Err(ApiError::Unauthorized(format!(
                "a {} is not an access token: {}",
                claims.kind.as_str(),
                if claims.kind == TokenKind::Ticket {
                    "use it as ?ticket="
                } else {
                    "a session travels in its cookie"
                }
            )));
        }
        return Ok(Caller {
            claims,
            source: Source::Bearer,
            credential: token.to_string(),
        });
    }
    if accepts.ticket {
        if let Some(ticket) = query_value(url, "ticket") {
            let claims = verify(&ticket, check)?;
            if claims.kind != TokenKind::Ticket {
                return Err(ApiError::Unauthorized(
                    "?ticket= takes a ticket from POST /v1/tickets".into(),
                ));
            }
            return Ok(Caller {
                claims,
                source: Source::Ticket,
                credential: ticket,
            });
        }
    }
    if accepts.cookie {
        let cookies = request.headers().get("cookie")?.unwrap_or_default();
        if let Some(token) = session_cookie(&cookies) {
            let claims = verify(token, check)?;
            if claims.kind != TokenKind::Session {
                return Err(ApiError::Unauthorized(
                    "the session cookie does not hold a session".into(),
                ));
            }
            check_request_origin(request, url, check.config)?;
            return Ok(Caller {
                claims,
                source: Source::Cookie,
                credential: token.to_string(),
            });
        }
    }
    Err(ApiError::Unauthorized(
        match (accepts.ticket, accepts.cookie) {
            (true, true) => "missing Authorization: Bearer <token>, ?ticket= or the session cookie",
            (true, false) => "missing Authorization: Bearer <token> or ?ticket=",
            (false, true) => "missing Authorization: Bearer <token> or the session cookie",
            (false, false) => "missing Authorization: Bearer <token>",
        }
        .into(),
    ))
}

/// Refuses a cookie-authenticated request whose `Origin` is neither Herald's own nor on the CORS
/// allow-list; a `POST` must carry one.
fn check_request_origin(request: &Request, url: &Url, config: &Config) -> ApiResult<()> {
    let headers = request.headers();
    let origin = headers.get("origin")?;
    let site = headers.get("sec-fetch-site")?;
    let own = url.origin().ascii_serialization();
    let changes_state = request.method() != Method::Get;
    check_origin(
        origin.as_deref(),
        site.as_deref(),
        &own,
        &config.cors_origins,
        changes_state,
    )
    .map_err(|e| ApiError::Forbidden(e.to_string()))
}

fn verify(token: &str, check: Check<'_>) -> ApiResult<Claims> {
    verify_with(token, check.key, check.now_s, &check.config.verify)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))
}

/// RFC 7235 §2.1: `credentials = auth-scheme [ 1*SP ( token68 / ... ) ]`, and "It uses a
/// case-insensitive token as a means to identify the authentication scheme".
fn bearer_token(header: &str) -> ApiResult<&str> {
    header
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start_matches(' '))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be Bearer <token>".into())
        })
}

pub(crate) fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The `Set-Cookie` for `session` (minted here) on a request to `url`.
fn cookie_for(session: &Claims, url: &Url, check: Check<'_>) -> String {
    let policy = &check.config.session;
    let token = mint(session, check.key);
    let host = url.host_str().unwrap_or_default();
    let secure = cookie_is_secure(url.scheme(), host, policy.same_site);
    set_cookie_header(&token, session, check.now_s, policy.same_site, secure)
}

/// A renewed cookie for a caller whose session cookie has less than half its time left (see
/// herald-core's `renewal_due`), so that a client that never asks (SQLMesh's UI) keeps it.
pub(crate) fn sliding_renewal(caller: &Caller, url: &Url, check: Check<'_>) -> Option<String> {
    let policy = &check.config.session;
    if caller.source != Source::Cookie || !renewal_due(&caller.claims, check.now_s, policy) {
        return None;
    }
    let session = renew_session(&caller.claims, check.now_s, policy).ok()?;
    Some(cookie_for(&session, url, check))
}

/// `response` with `Set-Cookie: cookie` added, when there is one (a fetched response's headers are
/// immutable, so they are copied).
pub(crate) fn with_cookie(response: Response, cookie: Option<String>) -> ApiResult<Response> {
    let Some(cookie) = cookie else {
        return Ok(response);
    };
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        headers.append(&name, &value)?;
    }
    headers.append("set-cookie", &cookie)?;
    Ok(response.with_headers(headers))
}

/// `POST /v1/sessions` takes an empty body or `{}`: everything a session holds comes from the
/// credential.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionRequest {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionResponse<'a> {
    tenant: &'a str,
    expires_at: u64,
    renewed: bool,
}

/// `POST /v1/sessions`: with a Bearer access token, makes a session from it; with the session
/// cookie (from an allowed origin), renews it. Either way the answer sets the cookie.
pub(crate) async fn create(
    request: &mut Request,
    url: &Url,
    check: Check<'_>,
) -> ApiResult<Response> {
    let caller = authenticate(
        request,
        url,
        check,
        Accepts {
            ticket: false,
            cookie: true,
        },
    )?;
    let body = read_capped(request, SMALL_BODY_BYTES_MAX).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        serde_json::from_slice::<SessionRequest>(&body).map_err(|e| {
            ApiError::bad_request("malformed_json", format!("the body is empty or {{}}: {e}"))
        })?;
    }
    let policy = &check.config.session;
    let session = match caller.source {
        Source::Cookie => renew_session(&caller.claims, check.now_s, policy),
        Source::Bearer | Source::Ticket => session_from_token(&caller.claims, check.now_s, policy),
    }
    .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    let cookie = cookie_for(&session, url, check);
    let headers = Headers::new();
    headers.set("content-type", "application/json")?;
    headers.set("set-cookie", &cookie)?;
    headers.set("cache-control", "no-store")?;
    let body = SessionResponse {
        tenant: session.tenant.as_str(),
        expires_at: session.exp_s,
        renewed: caller.source == Source::Cookie,
    };
    Ok(Response::from_json(&body)?.with_headers(headers))
}
