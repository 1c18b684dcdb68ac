//! Who may publish to or subscribe to which stream: validated names, HS256 tokens and stream
//! tickets.
//!
//! # Names
//! A stream is addressed by a [`ConnectionId`] inside a tenant's namespace, a [`TenantId`]. The
//! Durable Object that owns the stream is named by [`hub_name`], which joins the two with a `/`.
//! Neither alphabet contains `/`, so the join is injective: every `(tenant, connection)` pair names
//! a different hub, and the tenant part of a hub name always comes from the verified token, never
//! from the URL. One tenant can therefore never address another tenant's hub, whatever connection
//! id it puts in a request.
//!
//! # Tokens
//! Tokens are compact JWS (RFC 7515) signed with HMAC-SHA-256 (`{"alg":"HS256","typ":"JWT"}`)
//! carrying these claims (RFC 7519 names where one exists):
//!
//! | claim     | meaning                                                        | required              |
//! |-----------|----------------------------------------------------------------|-----------------------|
//! | `sub`     | the tenant ([`TenantId`])                                      | yes                   |
//! | `scope`   | space-separated: `publish`, `subscribe` (RFC 6749 §3.3 syntax) | yes, at least one     |
//! | `streams` | array of connection ids the token is limited to                | no (absent: any)      |
//! | `exp`     | expiry, Unix seconds; the token is dead at `exp` itself        | yes                   |
//! | `iat`     | issued at, Unix seconds; not in the future                     | no                    |
//! | `kind`    | `access`, `ticket` or `session`                                | no (absent: `access`) |
//!
//! Any other claim or header field is refused rather than ignored: Herald mints its own tokens, and
//! a claim it does not understand (`nbf`, `aud`, a misspelt `scopes`) must not be silently dropped.
//!
//! A token lives at most [`VerifyOptions::lifetime_max_s`] (30 days by default): `exp - iat`, or
//! `exp - now` without `iat`, so a leaked token cannot be good for years. An `iat` more than
//! [`VerifyOptions::clock_skew_s`] (60 s) ahead of the verifier's clock is refused: such a token
//! was minted by a broken clock or to stretch its lifetime.
//!
//! # Status codes
//! [`verify`] fails with an [`AuthError`]: the caller is not authenticated, answer **401**. [`Claims::permits`]
//! and [`Claims::ticket_for`] fail with [`Forbidden`]: the caller is known but not allowed, answer
//! **403**.
//!
//! # Tickets
//! A browser's `EventSource` cannot send an `Authorization` header (whatwg/html#2177), so a
//! subscriber needs its credential in the URL. Putting the access token there would leak a broad,
//! long-lived credential into logs, history and `Referer`. Instead the client trades its access
//! token for a ticket ([`Claims::ticket_for`]): a token of kind `ticket` that can only subscribe,
//! only to one stream, and only for a short time (never past the parent token's expiry). A ticket
//! is reusable until it expires rather than single-use, because `EventSource` reconnects on its own
//! with the same URL after every dropped stream (and a Durable Object deploy drops them all); a
//! single-use ticket would turn each of those reconnects into a 401 that ends the stream. The shell
//! should accept only tickets from the URL, so that an access token never ends up there.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The largest token [`verify`] reads, in bytes; bounds the work an unauthenticated request can
/// cause.
///
/// Large enough for a token listing about a hundred streams of maximal length.
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;

/// Why a [`ConnectionId`], [`TenantId`] or event category was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdentifierError {
    /// The value is the empty string.
    Empty,
    /// The value is longer than its limit.
    TooLong {
        /// Length of the value, in bytes.
        len_bytes: usize,
        /// The limit, in bytes.
        bytes_max: usize,
    },
    /// The value holds a byte outside its alphabet (for non-ASCII text, the first byte of the
    /// character).
    ForbiddenByte {
        /// The offending byte.
        byte: u8,
        /// Its offset in the value, in bytes.
        index: usize,
    },
    /// The value is `.` or `..`, which URL parsers treat as path navigation, not as a name.
    DotSegment,
}

impl fmt::Display for IdentifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty"),
            Self::TooLong {
                len_bytes,
                bytes_max,
            } => {
                write!(f, "{len_bytes} bytes, over the limit of {bytes_max}")
            }
            Self::ForbiddenByte { byte, index } => {
                write!(f, "forbidden byte 0x{byte:02x} at index {index}")
            }
            Self::DotSegment => f.write_str("`.` and `..` are path segments, not names"),
        }
    }
}

impl core::error::Error for IdentifierError {}

/// Checks length and alphabet; shared by every identifier Herald accepts from outside.
pub(crate) fn check_identifier(
    value: &str,
    bytes_max: usize,
    allowed: fn(u8) -> bool,
) -> Result<(), IdentifierError> {
    if value.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if value.len() > bytes_max {
        return Err(IdentifierError::TooLong {
            len_bytes: value.len(),
            bytes_max,
        });
    }
    if let Some(index) = value.bytes().position(|byte| !allowed(byte)) {
        let byte = value.as_bytes()[index];
        return Err(IdentifierError::ForbiddenByte { byte, index });
    }
    Ok(())
}

/// The name of one stream within a tenant: 1..=128 bytes of `[A-Za-z0-9_.-]`, and not `.` or `..`.
///
/// The alphabet is safe in a URL path segment and in a Durable Object name without escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(String);

impl ConnectionId {
    /// The longest connection id, in bytes.
    pub const BYTES_MAX: usize = 128;

    /// Validates `value` as a connection id.
    ///
    /// ```
    /// use herald_core::ConnectionId;
    /// use herald_core::auth::IdentifierError;
    /// assert_eq!(ConnectionId::new("plan-2026.02_a").unwrap().as_str(), "plan-2026.02_a");
    /// assert_eq!(
    ///     ConnectionId::new("a/b"),
    ///     Err(IdentifierError::ForbiddenByte { byte: b'/', index: 1 })
    /// );
    /// ```
    pub fn new(value: &str) -> Result<Self, IdentifierError> {
        check_identifier(value, Self::BYTES_MAX, |byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-')
        })?;
        // "." and ".." pass the alphabet, but a client resolving `/streams/..` would address
        // another route.
        if value == "." || value == ".." {
            return Err(IdentifierError::DotSegment);
        }
        Ok(Self(String::from(value)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The name of a tenant: 1..=64 bytes of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The longest tenant id, in bytes.
    pub const BYTES_MAX: usize = 64;

    /// Validates `value` as a tenant id.
    ///
    /// ```
    /// use herald_core::TenantId;
    /// use herald_core::auth::IdentifierError;
    /// assert_eq!(TenantId::new("acme_eu-1").unwrap().as_str(), "acme_eu-1");
    /// assert_eq!(TenantId::new(""), Err(IdentifierError::Empty));
    /// ```
    pub fn new(value: &str) -> Result<Self, IdentifierError> {
        check_identifier(value, Self::BYTES_MAX, |byte| {
            byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-')
        })?;
        Ok(Self(String::from(value)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The Durable Object name of the hub that owns `connection` for `tenant`:
/// `"{tenant}/{connection}"`.
///
/// Injective: `/` is in neither alphabet, so the first `/` always splits the name back into the
/// same pair and two different pairs never share a name. Pass the tenant from the verified
/// [`Claims`], never from the request, and one tenant can never address another's hub.
///
/// ```
/// use herald_core::{hub_name, ConnectionId, TenantId};
/// let name = hub_name(&TenantId::new("acme").unwrap(), &ConnectionId::new("plan-1").unwrap());
/// assert_eq!(name, "acme/plan-1");
/// ```
pub fn hub_name(tenant: &TenantId, connection: &ConnectionId) -> String {
    let mut name = String::with_capacity(tenant.0.len() + 1 + connection.0.len());
    name.push_str(&tenant.0);
    name.push('/');
    name.push_str(&connection.0);
    name
}

/// The tenant and connection id a hub's name ([`hub_name`]) was made from, if `name` is one.
///
/// ```
/// use herald_core::auth::parse_hub_name;
/// let (tenant, connection) = parse_hub_name("acme/plan-1").unwrap();
/// assert_eq!((tenant.as_str(), connection.as_str()), ("acme", "plan-1"));
/// assert!(parse_hub_name("no-slash").is_none());
/// ```
pub fn parse_hub_name(name: &str) -> Option<(TenantId, ConnectionId)> {
    // A tenant id holds no `/`, so the first one ends it.
    let (tenant, connection) = name.split_once('/')?;
    Some((
        TenantId::new(tenant).ok()?,
        ConnectionId::new(connection).ok()?,
    ))
}

/// One permission a token can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Append events to a stream.
    Publish,
    /// Read a stream.
    Subscribe,
}

impl Scope {
    /// The name used in the `scope` claim.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of [`Scope`]s a token grants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Scopes {
    /// Grants [`Scope::Publish`].
    pub publish: bool,
    /// Grants [`Scope::Subscribe`].
    pub subscribe: bool,
}

impl Scopes {
    /// Both scopes.
    pub const ALL: Scopes = Scopes {
        publish: true,
        subscribe: true,
    };

    /// The set holding only `scope`.
    pub const fn only(scope: Scope) -> Scopes {
        match scope {
            Scope::Publish => Scopes {
                publish: true,
                subscribe: false,
            },
            Scope::Subscribe => Scopes {
                publish: false,
                subscribe: true,
            },
        }
    }

    /// Whether the set grants `scope`.
    pub const fn contains(self, scope: Scope) -> bool {
        match scope {
            Scope::Publish => self.publish,
            Scope::Subscribe => self.subscribe,
        }
    }

    /// Whether the set grants nothing.
    pub const fn is_empty(self) -> bool {
        !self.publish && !self.subscribe
    }

    /// The `scope` claim: space-separated names, `publish` first.
    fn to_claim(self) -> String {
        let mut claim = String::new();
        for scope in [Scope::Publish, Scope::Subscribe] {
            if self.contains(scope) {
                if !claim.is_empty() {
                    claim.push(' ');
                }
                claim.push_str(scope.as_str());
            }
        }
        claim
    }

    /// Parses the `scope` claim. RFC 6749 §3.3: `scope = scope-token *( SP scope-token )`, so an
    /// empty token (two spaces, a leading space) is malformed, not ignored.
    fn from_claim(claim: &str) -> Result<Scopes, AuthError> {
        let mut scopes = Scopes::default();
        for token in claim.split(' ') {
            match token {
                "publish" => scopes.publish = true,
                "subscribe" => scopes.subscribe = true,
                _ => return Err(AuthError::UnknownScope),
            }
        }
        Ok(scopes)
    }
}

/// What a token is for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A client's credential, sent in the `Authorization` header.
    #[default]
    Access,
    /// A narrow credential for one stream, meant for a URL (see the module docs).
    Ticket,
    /// A browser session, carried in an HttpOnly cookie: the scopes and streams of the access
    /// token it was made from, for a short, renewable time (see
    /// [`crate::cookie::SessionPolicy`]).
    Session,
}

impl TokenKind {
    /// The name used in the `kind` claim.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Ticket => "ticket",
            Self::Session => "session",
        }
    }
}

/// The verified content of a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// The tenant the token acts for (`sub`).
    pub tenant: TenantId,
    /// What the token may do (`scope`).
    pub scopes: Scopes,
    /// The streams the token is limited to (`streams`); `None` means every stream of the tenant.
    pub streams: Option<Vec<ConnectionId>>,
    /// Expiry, Unix seconds (`exp`): the token is refused once `now_s >= exp_s`.
    pub exp_s: u64,
    /// Issue time, Unix seconds (`iat`): refused in the future, and the start of the token's
    /// lifetime.
    pub iat_s: Option<u64>,
    /// Access token or ticket (`kind`).
    pub kind: TokenKind,
}

impl Claims {
    /// Whether these claims allow `scope` on `connection` (within their own tenant).
    ///
    /// A ticket never publishes and must name its stream, whatever else it claims: a wrongly minted
    /// ticket cannot widen itself.
    pub fn permits(&self, scope: Scope, connection: &ConnectionId) -> Result<(), Forbidden> {
        let ticket = self.kind == TokenKind::Ticket;
        if !self.scopes.contains(scope) || (ticket && scope == Scope::Publish) {
            return Err(Forbidden::MissingScope(scope));
        }
        match &self.streams {
            None if ticket => Err(Forbidden::StreamNotAllowed),
            None => Ok(()),
            Some(streams) if streams.contains(connection) => Ok(()),
            Some(_) => Err(Forbidden::StreamNotAllowed),
        }
    }

    /// Claims for a ticket to subscribe to `connection`, issued at `now_s` and valid for `ttl_s`
    /// seconds but never past these claims' own expiry.
    ///
    /// These claims must be an access token allowed to subscribe to `connection`; mint the result
    /// with [`mint`].
    pub fn ticket_for(
        &self,
        connection: &ConnectionId,
        now_s: u64,
        ttl_s: u64,
    ) -> Result<Claims, Forbidden> {
        // A ticket already is as narrow as a ticket gets; chaining them would only stretch a leaked
        // one. A session is a browser's, which subscribes with its cookie and needs no
        // ticket.
        if self.kind != TokenKind::Access {
            return Err(Forbidden::TicketFromTicket);
        }
        self.permits(Scope::Subscribe, connection)?;
        Ok(Claims {
            tenant: self.tenant.clone(),
            scopes: Scopes::only(Scope::Subscribe),
            streams: Some(alloc::vec![connection.clone()]),
            exp_s: now_s.saturating_add(ttl_s).min(self.exp_s),
            iat_s: Some(now_s),
            kind: TokenKind::Ticket,
        })
    }
}

/// Why a token was refused: the caller is not authenticated (HTTP 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthError {
    /// The token is longer than [`TOKEN_BYTES_MAX`].
    TooLong,
    /// The token is not three base64url (no padding) parts joined by `.`.
    Malformed,
    /// The header is not a JSON object with `alg` and an optional `typ` of `JWT` (in any case, RFC
    /// 7515 §4.1.9).
    BadHeader,
    /// The header names an algorithm other than `HS256` (including `none`).
    UnsupportedAlgorithm,
    /// The signature does not match the header and payload under this key.
    BadSignature,
    /// The payload is not a JSON object of the known claims with the right types.
    BadClaims,
    /// The payload has no `exp`: Herald issues no tokens that live forever.
    MissingExpiry,
    /// The token expired.
    Expired {
        /// The token's `exp`, Unix seconds.
        exp_s: u64,
        /// The time of the check, Unix seconds.
        now_s: u64,
    },
    /// The token's `iat` is later than the time of the check plus [`VerifyOptions::clock_skew_s`].
    IssuedInFuture {
        /// The token's `iat`, Unix seconds.
        iat_s: u64,
        /// The time of the check, Unix seconds.
        now_s: u64,
    },
    /// The token lives longer than [`VerifyOptions::lifetime_max_s`]: `exp - iat` (or `exp - now`
    /// without `iat`) is over the limit.
    LifetimeTooLong {
        /// The token's lifetime, in seconds.
        lifetime_s: u64,
        /// The limit, in seconds.
        lifetime_max_s: u64,
    },
    /// The `scope` claim names no scope, an unknown one or is not space-separated names.
    UnknownScope,
    /// The `kind` claim is not `access`, `ticket` or `session`.
    UnknownKind,
    /// The `sub` claim is not a valid [`TenantId`].
    InvalidTenant(IdentifierError),
    /// An entry of the `streams` claim is not a valid [`ConnectionId`].
    InvalidStream {
        /// Position of the entry in `streams`.
        index: usize,
        /// What is wrong with it.
        error: IdentifierError,
    },
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "token is longer than {TOKEN_BYTES_MAX} bytes"),
            Self::Malformed => f.write_str("token is not three base64url parts joined by dots"),
            Self::BadHeader => f.write_str("token header is not valid"),
            Self::UnsupportedAlgorithm => f.write_str("token algorithm is not HS256"),
            Self::BadSignature => f.write_str("token signature does not match"),
            Self::BadClaims => f.write_str("token claims are not valid"),
            Self::MissingExpiry => f.write_str("token has no expiry"),
            Self::Expired { exp_s, now_s } => {
                write!(f, "token expired at {exp_s} (now {now_s})")
            }
            Self::IssuedInFuture { iat_s, now_s } => {
                write!(f, "token is issued in the future, at {iat_s} (now {now_s})")
            }
            Self::LifetimeTooLong {
                lifetime_s,
                lifetime_max_s,
            } => write!(
                f,
                "token lives {lifetime_s} s, over the limit of {lifetime_max_s} s"
            ),
            Self::UnknownScope => f.write_str("token scope is not publish and/or subscribe"),
            Self::UnknownKind => f.write_str("token kind is not access, ticket or session"),
            Self::InvalidTenant(error) => write!(f, "token tenant is not valid: {error}"),
            Self::InvalidStream { index, error } => {
                write!(f, "token stream {index} is not valid: {error}")
            }
        }
    }
}

impl core::error::Error for AuthError {}

/// Why verified claims do not allow a request: the caller is known but not allowed (HTTP 403).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Forbidden {
    /// The token does not grant this scope (a ticket never grants publish).
    MissingScope(Scope),
    /// The token is limited to other streams (a ticket is limited to its one stream).
    StreamNotAllowed,
    /// Tickets are issued against access tokens only (not tickets, not sessions).
    TicketFromTicket,
}

impl fmt::Display for Forbidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingScope(scope) => write!(f, "token does not grant {scope}"),
            Self::StreamNotAllowed => f.write_str("token does not cover this stream"),
            Self::TicketFromTicket => {
                f.write_str("only an access token can be exchanged for a ticket")
            }
        }
    }
}

impl core::error::Error for Forbidden {}

type HmacSha256 = Hmac<Sha256>;

/// base64url of `{"alg":"HS256","typ":"JWT"}`, the only header [`mint`] writes.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
}

/// The claims as they appear in JSON; [`Claims`] is this after validation.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireClaims {
    sub: String,
    scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    streams: Option<Vec<String>>,
    // Optional here only so that its absence gets its own error, AuthError::MissingExpiry.
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default)]
    kind: Option<String>,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC hashes long keys and pads short ones (RFC 2104 §2), so no key length is refused.
    HmacSha256::new_from_slice(key).expect("hmac accepts keys of any length")
}

/// Signs `claims` with `key` as a compact JWS: `header.payload.signature`, each base64url without
/// padding.
///
/// `key` should be at least 32 random bytes (RFC 7518 §3.2 asks for a key as long as the hash
/// output).
///
/// ```
/// use herald_core::{mint, verify, Claims, Scopes, TenantId, TokenKind};
/// let claims = Claims {
///     tenant: TenantId::new("acme").unwrap(),
///     scopes: Scopes::ALL,
///     streams: None,
///     exp_s: 1_800_003_600,
///     iat_s: Some(1_800_000_000),
///     kind: TokenKind::Access,
/// };
/// let token = mint(&claims, b"an example key of thirty-two b..");
/// assert_eq!(verify(&token, b"an example key of thirty-two b..", 1_800_000_000), Ok(claims));
/// ```
pub fn mint(claims: &Claims, key: &[u8]) -> String {
    let wire = WireClaims {
        sub: String::from(claims.tenant.as_str()),
        scope: claims.scopes.to_claim(),
        streams: claims
            .streams
            .as_ref()
            .map(|streams| streams.iter().map(|id| String::from(id.as_str())).collect()),
        exp: Some(claims.exp_s),
        iat: claims.iat_s,
        kind: Some(String::from(claims.kind.as_str())),
    };
    let payload =
        serde_json::to_vec(&wire).expect("claims are strings and integers, which always serialise");
    let mut token = String::from(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    let mut signer = mac(key);
    signer.update(token.as_bytes());
    let signature = signer.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// The bounds [`verify_with`] puts on a token's times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VerifyOptions {
    /// The longest a token may live, in seconds: `exp - iat`, or `exp - now` when it has no `iat`.
    /// Default [`VerifyOptions::LIFETIME_MAX_S_DEFAULT`], 30 days.
    pub lifetime_max_s: u64,
    /// How far ahead of the verifier's clock an `iat` may be, in seconds (clocks differ).
    /// Default [`VerifyOptions::CLOCK_SKEW_S_DEFAULT`], 60 s.
    pub clock_skew_s: u64,
}

impl VerifyOptions {
    /// 30 days: a month of use from one mint, and no more for a leaked token.
    pub const LIFETIME_MAX_S_DEFAULT: u64 = 30 * 24 * 3600;
    /// 60 s: more than synchronised clocks drift apart, less than any useful lifetime.
    pub const CLOCK_SKEW_S_DEFAULT: u64 = 60;
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            lifetime_max_s: Self::LIFETIME_MAX_S_DEFAULT,
            clock_skew_s: Self::CLOCK_SKEW_S_DEFAULT,
        }
    }
}

/// Checks `token`'s signature under `key` and its claims at `now_s` (Unix seconds) with the default
/// [`VerifyOptions`], returning the claims. See [`verify_with`].
pub fn verify(token: &str, key: &[u8], now_s: u64) -> Result<Claims, AuthError> {
    verify_with(token, key, now_s, &VerifyOptions::default())
}

/// Checks `token`'s signature under `key` and its claims at `now_s` (Unix seconds), with its
/// lifetime and issue time bounded by `options`, returning the claims.
///
/// Order matters: the header is read only to refuse any algorithm but HS256 (RFC 8725 §3.1: never
/// let the token choose, so `none` cannot pass), then the signature is compared in constant time,
/// and only then are the claims read. A failure here means 401.
///
/// ```
/// use herald_core::{mint, Claims, Scopes, TenantId, TokenKind};
/// use herald_core::auth::{verify_with, AuthError, VerifyOptions};
/// let key = b"an example key of thirty-two b..";
/// let year = Claims {
///     tenant: TenantId::new("acme").unwrap(),
///     scopes: Scopes::ALL,
///     streams: None,
///     exp_s: 1_800_000_000 + 365 * 86_400,
///     iat_s: Some(1_800_000_000),
///     kind: TokenKind::Access,
/// };
/// let options = VerifyOptions::default();
/// assert_eq!(
///     verify_with(&mint(&year, key), key, 1_800_000_000, &options),
///     Err(AuthError::LifetimeTooLong { lifetime_s: 365 * 86_400, lifetime_max_s: 30 * 86_400 })
/// );
/// ```
pub fn verify_with(
    token: &str,
    key: &[u8],
    now_s: u64,
    options: &VerifyOptions,
) -> Result<Claims, AuthError> {
    if token.len() > TOKEN_BYTES_MAX {
        return Err(AuthError::TooLong);
    }
    // RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature); the
    // signature covers the first two parts exactly as sent.
    let (signed, signature_b64) = token.rsplit_once('.').ok_or(AuthError::Malformed)?;
    let (header_b64, payload_b64) = signed.split_once('.').ok_or(AuthError::Malformed)?;
    if payload_b64.contains('.') {
        return Err(AuthError::Malformed);
    }

    let header_json = URL_SAFE_NO_PAD
        .decode(header_b64)
        .map_err(|_| AuthError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| AuthError::BadHeader)?;
    if header.alg != "HS256" {
        return Err(AuthError::UnsupportedAlgorithm);
    }
    if header.typ.is_some_and(|typ| !is_jwt_type(&typ)) {
        return Err(AuthError::BadHeader);
    }

    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| AuthError::Malformed)?;
    let mut verifier = mac(key);
    verifier.update(signed.as_bytes());
    // `verify_slice` compares in constant time, so timing does not reveal how much of a forgery was
    // right.
    verifier
        .verify_slice(&signature)
        .map_err(|_| AuthError::BadSignature)?;

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| AuthError::Malformed)?;
    let wire: WireClaims = serde_json::from_slice(&payload).map_err(|_| AuthError::BadClaims)?;
    let exp_s = wire.exp.ok_or(AuthError::MissingExpiry)?;
    if exp_s <= now_s {
        return Err(AuthError::Expired { exp_s, now_s });
    }
    if let Some(iat_s) = wire.iat {
        if iat_s > now_s.saturating_add(options.clock_skew_s) {
            return Err(AuthError::IssuedInFuture { iat_s, now_s });
        }
    }
    // Without `iat`, what is left of the token's life is all that can be bounded.
    let lifetime_s = exp_s.saturating_sub(wire.iat.unwrap_or(now_s));
    if lifetime_s > options.lifetime_max_s {
        return Err(AuthError::LifetimeTooLong {
            lifetime_s,
            lifetime_max_s: options.lifetime_max_s,
        });
    }
    let tenant = TenantId::new(&wire.sub).map_err(AuthError::InvalidTenant)?;
    let scopes = Scopes::from_claim(&wire.scope)?;
    let streams = match wire.streams {
        None => None,
        Some(streams) => Some(
            streams
                .iter()
                .enumerate()
                .map(|(index, id)| {
                    ConnectionId::new(id).map_err(|error| AuthError::InvalidStream { index, error })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let kind = match wire.kind.as_deref() {
        None | Some("access") => TokenKind::Access,
        Some("ticket") => TokenKind::Ticket,
        Some("session") => TokenKind::Session,
        Some(_) => return Err(AuthError::UnknownKind),
    };
    Ok(Claims {
        tenant,
        scopes,
        streams,
        exp_s,
        iat_s: wire.iat,
        kind,
    })
}

/// RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively, and a value without `/`
/// means `application/` plus that value; so `JWT`, `jwt` and `application/jwt` all name the JWT
/// media type.
fn is_jwt_type(typ: &str) -> bool {
    let subtype = match typ.split_once('/') {
        Some((kind, subtype)) if kind.eq_ignore_ascii_case("application") => subtype,
        Some(_) => return false,
        None => typ,
    };
    subtype.eq_ignore_ascii_case("jwt")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_constant_is_the_documented_header() {
        let decoded = URL_SAFE_NO_PAD.decode(HEADER_B64).unwrap();
        assert_eq!(decoded, br#"{"alg":"HS256","typ":"JWT"}"#);
    }

    #[test]
    fn jwt_type_is_case_insensitive_with_or_without_application() {
        for typ in ["JWT", "jwt", "Jwt", "application/jwt", "APPLICATION/JWT"] {
            assert!(is_jwt_type(typ), "{typ}");
        }
        for typ in [
            "",
            "JOSE",
            "jwt ",
            "text/jwt",
            "application/",
            "/jwt",
            "application/jwt/x",
        ] {
            assert!(!is_jwt_type(typ), "{typ}");
        }
    }

    #[test]
    fn scope_claim_roundtrips_every_set() {
        for scopes in [
            Scopes::only(Scope::Publish),
            Scopes::only(Scope::Subscribe),
            Scopes::ALL,
        ] {
            assert_eq!(Scopes::from_claim(&scopes.to_claim()), Ok(scopes));
        }
        assert_eq!(Scopes::from_claim(""), Err(AuthError::UnknownScope));
    }
}
