//! Browser sessions in an HttpOnly cookie, and the origin rule that keeps them safe from cross-site
//! requests.
//!
//! SQLMesh's web client sends no credential of its own: its `EventSource` is opened with
//! `withCredentials: true` and its `fetch` calls carry only cookies. So a page (or its backend)
//! trades an access token for a session ([`session_from_token`]): a token of kind
//! [`TokenKind::Session`] with the token's tenant, scopes and streams, living
//! [`SessionPolicy::ttl_s`]. The Worker sets it as the cookie [`SESSION_COOKIE`]
//! ([`set_cookie_header`]): `HttpOnly` (no script can read it), `Path=/`, `SameSite` as configured,
//! and `Secure` except on plain-HTTP loopback ([`cookie_is_secure`]). A session is renewed
//! ([`renew_session`]) for another `ttl_s` (by the client, or by the Worker once less than half its
//! time is left: [`renewal_due`]), but never past its hard end, so a stolen cookie cannot be kept
//! alive forever: the earlier of the token's expiry and [`SessionPolicy::lifetime_max_s`] after the
//! session was made. The session keeps that end in its `iat`, which is set to `end -
//! lifetime_max_s` (never later than its making) and kept across renewals: `iat` is then the start
//! of the session's allowed life, and no other claim is needed.
//!
//! # Cross-site request forgery
//! A browser attaches cookies to requests that other sites' pages make. A request authenticated by
//! the cookie that changes state must therefore prove where it comes from: [`check_origin`] accepts
//! it only when its `Origin` is Herald's own origin or one on the CORS allow-list (never through
//! `*`, never `null`). A cookie-authenticated request that does not pass is refused (HTTP 403)
//! before it does anything.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::auth::{Claims, TokenKind};

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "herald_session";

/// The cookie's `SameSite` attribute (RFC 6265bis §5.4.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SameSite {
    /// Sent only with requests from Herald's own site.
    Strict,
    /// Sent with requests from Herald's own site and with top-level navigations to it: enough when
    /// the UI and Herald share a site (the same registrable domain, or Herald behind a route
    /// of the UI's host).
    Lax,
    /// Sent with every request, cross-site ones included: for a UI on another site. Browsers take
    /// it only with `Secure`, so such a cookie is always `Secure`.
    None,
}

impl SameSite {
    /// Reads `Strict`, `Lax` or `None` (in any case).
    ///
    /// ```
    /// use herald_core::cookie::SameSite;
    /// assert_eq!(SameSite::parse("none"), Some(SameSite::None));
    /// assert_eq!(SameSite::parse("loose"), None);
    /// ```
    pub fn parse(text: &str) -> Option<SameSite> {
        [SameSite::Strict, SameSite::Lax, SameSite::None]
            .into_iter()
            .find(|value| value.as_str().eq_ignore_ascii_case(text.trim()))
    }

    /// The attribute's value.
    pub const fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

/// How long sessions live and how their cookie is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// How long a new or renewed session lives, in seconds.
    pub ttl_s: u64,
    /// The longest a session lives from when it was first made, renewals included, in seconds.
    pub lifetime_max_s: u64,
    /// The cookie's `SameSite`.
    pub same_site: SameSite,
}

impl SessionPolicy {
    /// One hour per session or renewal.
    pub const TTL_S_DEFAULT: u64 = 3_600;
    /// Renewable for a working day.
    pub const LIFETIME_MAX_S_DEFAULT: u64 = 12 * 3_600;
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            ttl_s: Self::TTL_S_DEFAULT,
            lifetime_max_s: Self::LIFETIME_MAX_S_DEFAULT,
            same_site: SameSite::Lax,
        }
    }
}

/// Why a session cannot be made or renewed from these claims (HTTP 403: the caller is
/// authenticated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionError {
    /// Sessions are made from access tokens only: a ticket is for one URL.
    NotAnAccessToken,
    /// Only a session can be renewed.
    NotASession,
    /// The session has reached [`SessionPolicy::lifetime_max_s`]: make a new one with an access
    /// token.
    LifetimeOver,
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnAccessToken => f.write_str("a session is made from an access token only"),
            Self::NotASession => f.write_str("only a session can be renewed"),
            Self::LifetimeOver => f.write_str(
                "the session has reached its longest lifetime: make a new one with an access token",
            ),
        }
    }
}

impl core::error::Error for SessionError {}

/// The claims of a new session made at `now_s` from an access token's `claims`: the same tenant,
/// scopes and streams, living `policy.ttl_s`, and never (renewals included) past the token's own
/// expiry nor `policy.lifetime_max_s` from now. Its `iat` is that end less `lifetime_max_s` (see
/// the module docs).
///
/// ```
/// use herald_core::{Claims, Scopes, TenantId, TokenKind};
/// use herald_core::cookie::{session_from_token, SessionPolicy};
/// let token = Claims { tenant: TenantId::new("acme").unwrap(), scopes: Scopes::ALL, streams: None,
///     exp_s: 100_000, iat_s: None, kind: TokenKind::Access };
/// let policy = SessionPolicy::default(); // 3,600 s each, 43,200 s in all
/// let session = session_from_token(&token, 1_000, &policy).unwrap();
/// assert_eq!((session.kind, session.iat_s, session.exp_s), (TokenKind::Session, Some(1_000), 4_600));
/// // A token that ends sooner ends the session sooner, and its renewals.
/// let short = Claims { exp_s: 52_000, ..token };
/// let session = session_from_token(&short, 50_000, &policy).unwrap();
/// assert_eq!((session.iat_s, session.exp_s), (Some(52_000 - 43_200), 52_000));
/// ```
pub fn session_from_token(
    claims: &Claims,
    now_s: u64,
    policy: &SessionPolicy,
) -> Result<Claims, SessionError> {
    if claims.kind != TokenKind::Access {
        return Err(SessionError::NotAnAccessToken);
    }
    let end_s = now_s
        .saturating_add(policy.lifetime_max_s)
        .min(claims.exp_s);
    Ok(Claims {
        tenant: claims.tenant.clone(),
        scopes: claims.scopes,
        streams: claims.streams.clone(),
        exp_s: now_s.saturating_add(policy.ttl_s).min(end_s),
        iat_s: Some(end_s.saturating_sub(policy.lifetime_max_s)),
        kind: TokenKind::Session,
    })
}

/// The claims of `session` renewed at `now_s`: another `policy.ttl_s`, but never past its hard end,
/// `iat + policy.lifetime_max_s` (see [`session_from_token`]); `iat` is kept.
pub fn renew_session(
    session: &Claims,
    now_s: u64,
    policy: &SessionPolicy,
) -> Result<Claims, SessionError> {
    if session.kind != TokenKind::Session {
        return Err(SessionError::NotASession);
    }
    let made_s = session.iat_s.unwrap_or(now_s);
    let end_s = made_s.saturating_add(policy.lifetime_max_s);
    if now_s >= end_s {
        return Err(SessionError::LifetimeOver);
    }
    Ok(Claims {
        exp_s: now_s.saturating_add(policy.ttl_s).min(end_s),
        iat_s: Some(made_s),
        ..session.clone()
    })
}

/// Whether a session should be renewed at `now_s` without being asked: when less than half of
/// `policy.ttl_s` is left and a renewal would live longer. A client that only ever sends its cookie
/// (SQLMesh's UI, whose EventSource reconnects at least every `HERALD_STREAM_MAX_AGE_S`) so keeps
/// it up to its hard end.
///
/// ```
/// use herald_core::{Claims, Scopes, TenantId, TokenKind};
/// use herald_core::cookie::{renewal_due, session_from_token, SessionPolicy};
/// let token = Claims { tenant: TenantId::new("acme").unwrap(), scopes: Scopes::ALL, streams: None,
///     exp_s: 100_000, iat_s: None, kind: TokenKind::Access };
/// let policy = SessionPolicy::default();
/// let session = session_from_token(&token, 1_000, &policy).unwrap(); // until 4,600
/// assert!(!renewal_due(&session, 2_799, &policy));
/// assert!(renewal_due(&session, 2_801, &policy));
/// ```
pub fn renewal_due(session: &Claims, now_s: u64, policy: &SessionPolicy) -> bool {
    let left_s = session.exp_s.saturating_sub(now_s);
    left_s.saturating_mul(2) < policy.ttl_s
        && renew_session(session, now_s, policy).is_ok_and(|renewed| renewed.exp_s > session.exp_s)
}

/// Whether the session cookie gets `Secure` for a request to `scheme://host`: always, except over
/// plain HTTP to `localhost` or a loopback address (where there is no TLS to require), and always
/// with `SameSite=None`, which browsers refuse without it. `host` is the URL's host, without port.
///
/// ```
/// use herald_core::cookie::{cookie_is_secure, SameSite};
/// assert!(!cookie_is_secure("http", "127.0.0.1", SameSite::Lax));
/// assert!(cookie_is_secure("http", "127.0.0.1", SameSite::None));
/// assert!(cookie_is_secure("https", "herald.example", SameSite::Lax));
/// assert!(cookie_is_secure("http", "herald.example", SameSite::Lax));
/// ```
pub fn cookie_is_secure(scheme: &str, host: &str, same_site: SameSite) -> bool {
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1");
    !(scheme.eq_ignore_ascii_case("http") && loopback && same_site != SameSite::None)
}

/// The `Set-Cookie` value that stores `token` (a minted session whose claims are `session`) at
/// `now_s`.
///
/// ```
/// use herald_core::{Claims, Scopes, TenantId, TokenKind};
/// use herald_core::cookie::{set_cookie_header, SameSite};
/// let session = Claims { tenant: TenantId::new("acme").unwrap(), scopes: Scopes::ALL, streams: None,
///     exp_s: 4_600, iat_s: Some(1_000), kind: TokenKind::Session };
/// assert_eq!(
///     set_cookie_header("abc.def.ghi", &session, 1_000, SameSite::Lax, false),
///     "herald_session=abc.def.ghi; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
/// );
/// ```
pub fn set_cookie_header(
    token: &str,
    session: &Claims,
    now_s: u64,
    same_site: SameSite,
    secure: bool,
) -> String {
    let max_age_s = session.exp_s.saturating_sub(now_s);
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite={}{secure}",
        same_site.as_str()
    )
}

/// The session token in a request's `Cookie` header, if there is one (RFC 6265 §4.2.1: `name=value`
/// pairs separated by `; `). The first cookie of that name wins, as browsers send the most specific
/// first.
///
/// ```
/// use herald_core::cookie::session_cookie;
/// assert_eq!(session_cookie("theme=dark; herald_session=a.b.c"), Some("a.b.c"));
/// assert_eq!(session_cookie("herald_sessionx=1"), None);
/// ```
pub fn session_cookie(header: &str) -> Option<&str> {
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE)
            .then(|| value.trim().trim_matches('"'))
            .filter(|value| !value.is_empty())
    })
}

/// Why a cookie-authenticated request was refused by [`check_origin`] (HTTP 403).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CsrfError {
    /// A state-changing request without an `Origin` header (browsers send one with every `POST`).
    MissingOrigin,
    /// The `Origin` is neither Herald's own nor on the allow-list.
    OriginNotAllowed {
        /// The origin sent (at most its first 128 characters).
        origin: String,
    },
    /// A request that says (`Sec-Fetch-Site: cross-site`) it comes from another site, without an
    /// `Origin`.
    CrossSite,
}

impl fmt::Display for CsrfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingOrigin => f.write_str(
                "a request authenticated by the session cookie must carry an Origin header",
            ),
            Self::OriginNotAllowed { origin } => write!(
                f,
                "origin {origin:?} may not use the session cookie: it is not Herald's origin nor in HERALD_CORS_ORIGINS"
            ),
            Self::CrossSite => {
                f.write_str("a cross-site request may not use the session cookie without an Origin")
            }
        }
    }
}

impl core::error::Error for CsrfError {}

/// Whether a request authenticated by the session cookie may go on: its `Origin` must be
/// `own_origin` (Herald's, as the request URL names it) or one listed in `allowed` (compared
/// without regard to ASCII case; `*` and `null` never count). Without an `Origin`, a state-changing
/// request (`changes_state`, e.g. any `POST`) is refused; another is refused only when
/// `Sec-Fetch-Site` says `cross-site`.
///
/// ```
/// use herald_core::cookie::{check_origin, CsrfError};
/// let allowed = ["https://ui.example".to_string(), "*".to_string()];
/// let own = "https://herald.example";
/// assert_eq!(check_origin(Some("https://ui.example"), None, own, &allowed, true), Ok(()));
/// assert_eq!(check_origin(Some("https://herald.example"), None, own, &allowed, true), Ok(()));
/// assert!(check_origin(Some("https://evil.example"), None, own, &allowed, true).is_err());
/// assert_eq!(check_origin(None, None, own, &allowed, true), Err(CsrfError::MissingOrigin));
/// assert_eq!(check_origin(None, Some("same-origin"), own, &allowed, false), Ok(()));
/// ```
pub fn check_origin(
    origin: Option<&str>,
    sec_fetch_site: Option<&str>,
    own_origin: &str,
    allowed: &[String],
    changes_state: bool,
) -> Result<(), CsrfError> {
    let Some(origin) = origin.map(str::trim) else {
        if changes_state {
            return Err(CsrfError::MissingOrigin);
        }
        return match sec_fetch_site {
            Some(site) if site.eq_ignore_ascii_case("cross-site") => Err(CsrfError::CrossSite),
            _ => Ok(()),
        };
    };
    let listed = allowed
        .iter()
        .filter(|entry| *entry != "*" && !entry.eq_ignore_ascii_case("null"))
        .any(|entry| entry.eq_ignore_ascii_case(origin));
    if !origin.eq_ignore_ascii_case("null") && (origin.eq_ignore_ascii_case(own_origin) || listed) {
        Ok(())
    } else {
        Err(CsrfError::OriginNotAllowed {
            origin: origin.chars().take(128).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Scopes, TenantId};
    use alloc::string::ToString;
    use alloc::vec;

    fn access(exp_s: u64) -> Claims {
        Claims {
            tenant: TenantId::new("acme").unwrap(),
            scopes: Scopes::ALL,
            streams: None,
            exp_s,
            iat_s: None,
            kind: TokenKind::Access,
        }
    }

    /// Unix seconds of today's order: `iat` is the session's end less its longest lifetime, which
    /// only Unix times (far above any lifetime) can hold.
    const T: u64 = 1_800_000_000;

    #[test]
    fn a_session_never_outlives_its_token_even_renewed() {
        let policy = SessionPolicy::default();
        let session = session_from_token(&access(T + 100), T, &policy).unwrap();
        assert_eq!(session.exp_s, T + 100);
        assert_eq!(
            renew_session(&session, T + 50, &policy).map(|s| s.exp_s),
            Ok(T + 100)
        );
        assert!(!renewal_due(&session, T + 50, &policy), "nothing to gain");
        assert_eq!(
            renew_session(&session, T + 100, &policy),
            Err(SessionError::LifetimeOver)
        );
        let mut ticket = access(5_000);
        ticket.kind = TokenKind::Ticket;
        assert_eq!(
            session_from_token(&ticket, 1_000, &policy),
            Err(SessionError::NotAnAccessToken)
        );
    }

    #[test]
    fn renewals_stop_at_the_longest_lifetime() {
        let policy = SessionPolicy {
            ttl_s: 100,
            lifetime_max_s: 250,
            same_site: SameSite::Lax,
        };
        let session = session_from_token(&access(1_000_000), 1_000, &policy).unwrap();
        assert_eq!((session.iat_s, session.exp_s), (Some(1_000), 1_100));
        let renewed = renew_session(&session, 1_090, &policy).unwrap();
        assert_eq!((renewed.iat_s, renewed.exp_s), (Some(1_000), 1_190));
        let last = renew_session(&renewed, 1_180, &policy).unwrap();
        assert_eq!(last.exp_s, 1_250, "capped at iat + lifetime_max_s");
        assert_eq!(
            renew_session(&last, 1_250, &policy),
            Err(SessionError::LifetimeOver)
        );
        assert_eq!(
            renew_session(&access(5_000), 1_000, &policy),
            Err(SessionError::NotASession)
        );
    }

    #[test]
    fn null_and_wildcards_never_pass_the_origin_check() {
        let allowed = vec!["*".to_string(), "null".to_string()];
        for origin in ["null", "https://a.example"] {
            assert!(check_origin(Some(origin), None, "https://h.example", &allowed, true).is_err());
        }
        assert_eq!(
            check_origin(None, Some("cross-site"), "https://h", &allowed, false),
            Err(CsrfError::CrossSite)
        );
    }

    #[test]
    fn cookie_header_parsing_takes_the_named_cookie_only() {
        assert_eq!(session_cookie("herald_session=x"), Some("x"));
        assert_eq!(session_cookie("a=1;herald_session=\"y\" ; b=2"), Some("y"));
        assert_eq!(session_cookie("herald_session="), None);
        assert_eq!(session_cookie(""), None);
    }
}
