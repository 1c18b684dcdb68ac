//! Dashtam's dialect: one stream per user, and the category an event type belongs to.
//!
//! Dashtam (`GET /api/v1/events`) serves each user the events published for that user, the user
//! being whoever the verified token names. Herald keeps every stream in a connection id, so a
//! user's stream is the connection id `user.<userId>` ([`user_stream`]), and the token names its
//! user by being confined to that stream: its `streams` claim holds `user.<userId>` (and no other
//! user's stream). Because a token's `streams` claim confines it on every route, a user's token can
//! never read, publish to or mint a ticket for another user's stream; a ticket minted from it is
//! confined the same way and names the same user.
//!
//! Dashtam derives an event's category from its type (`_EVENT_TYPE_TO_CATEGORY` in its
//! `sse_event.py`): every type is `{prefix}.{resource}.{action}`, and the prefix decides the
//! category, with one rename (`sync.*` is `data_sync`). [`category_of_type`] applies that rule, so
//! a publisher that sends only Dashtam's type names is seen by `?categories=` subscribers.

use alloc::string::String;
use core::fmt;

use crate::auth::{Claims, ConnectionId};

/// The connection-id prefix of a Dashtam user's stream.
pub const USER_STREAM_PREFIX: &str = "user.";

/// Dashtam's type prefixes and the category each belongs to (`sync.*` is `data_sync`; the others
/// share their prefix's name).
const PREFIX_CATEGORIES: &[(&str, &str)] = &[
    ("sync", "data_sync"),
    ("provider", "provider"),
    ("ai", "ai"),
    ("import", "import"),
    ("portfolio", "portfolio"),
    ("security", "security"),
];

/// The Dashtam category of an event type: the category of its first `.`-separated segment, or
/// `None` for a type outside Dashtam's six prefixes.
///
/// ```
/// use herald_core::dashtam::category_of_type;
/// assert_eq!(category_of_type("sync.accounts.started"), Some("data_sync"));
/// assert_eq!(category_of_type("ai.response.chunk"), Some("ai"));
/// assert_eq!(category_of_type("security"), Some("security"));
/// assert_eq!(category_of_type("job:state_change"), None);
/// assert_eq!(category_of_type("synced.x"), None);
/// ```
#[must_use]
pub fn category_of_type(event_type: &str) -> Option<&'static str> {
    let prefix = event_type.split('.').next().unwrap_or(event_type);
    PREFIX_CATEGORIES
        .iter()
        .find(|(known, _)| *known == prefix)
        .map(|(_, category)| *category)
}

/// Why a token names no Dashtam user (HTTP 403: the token is valid, but not a user's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserStreamError {
    /// The token's `streams` claim holds no `user.<userId>` stream (or the token has no `streams`
    /// claim, so it is not confined to one user).
    NoUser,
    /// The token's `streams` claim holds the streams of several users: it names none of them.
    SeveralUsers,
}

impl fmt::Display for UserStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUser => f.write_str(
                "token names no user: its streams claim must hold the user's stream user.<userId>",
            ),
            Self::SeveralUsers => f.write_str(
                "token names several users: its streams claim may hold one user.<userId> stream",
            ),
        }
    }
}

impl core::error::Error for UserStreamError {}

/// The stream of the user a verified token names: the one `user.<userId>` connection id in its
/// `streams` claim (see the module documentation).
///
/// ```
/// use herald_core::dashtam::{user_stream, UserStreamError};
/// use herald_core::{Claims, ConnectionId, Scopes, TenantId, TokenKind};
/// let claims = |streams: Option<&[&str]>| Claims {
///     tenant: TenantId::new("acme").unwrap(),
///     scopes: Scopes { publish: false, subscribe: true },
///     streams: streams.map(|s| s.iter().map(|id| ConnectionId::new(id).unwrap()).collect()),
///     exp_s: 2_000_000_000,
///     iat_s: None,
///     kind: TokenKind::Access,
/// };
/// assert_eq!(user_stream(&claims(Some(&["user.alice", "other"]))).unwrap().as_str(), "user.alice");
/// assert_eq!(user_stream(&claims(None)), Err(UserStreamError::NoUser));
/// assert_eq!(user_stream(&claims(Some(&["user.a", "user.b"]))), Err(UserStreamError::SeveralUsers));
/// ```
pub fn user_stream(claims: &Claims) -> Result<ConnectionId, UserStreamError> {
    let mut users = claims
        .streams
        .iter()
        .flatten()
        .filter(|stream| is_user_stream(stream.as_str()));
    let user = users.next().ok_or(UserStreamError::NoUser)?;
    if users.next().is_some() {
        return Err(UserStreamError::SeveralUsers);
    }
    Ok(user.clone())
}

/// The stream of user `user_id` (`user.<userId>`), for publishers; `None` when the result is not a
/// valid connection id (an empty id, a byte outside `[A-Za-z0-9_.-]`, or too long).
///
/// ```
/// use herald_core::dashtam::user_stream_of;
/// assert_eq!(user_stream_of("0190b6c2-7a1e").unwrap().as_str(), "user.0190b6c2-7a1e");
/// assert!(user_stream_of("").is_none());
/// assert!(user_stream_of("a/b").is_none());
/// ```
#[must_use]
pub fn user_stream_of(user_id: &str) -> Option<ConnectionId> {
    if user_id.is_empty() {
        return None;
    }
    let mut id = String::with_capacity(USER_STREAM_PREFIX.len() + user_id.len());
    id.push_str(USER_STREAM_PREFIX);
    id.push_str(user_id);
    ConnectionId::new(&id).ok()
}

fn is_user_stream(id: &str) -> bool {
    id.strip_prefix(USER_STREAM_PREFIX)
        .is_some_and(|user| !user.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Scopes, TenantId, TokenKind};
    use alloc::vec::Vec;

    /// Every type of Dashtam's `SSEEventType` enum (at `ca3308c`), with the category its
    /// `_EVENT_TYPE_TO_CATEGORY` gives it.
    const DASHTAM_TYPES: &[(&str, &str)] = &[
        ("sync.accounts.started", "data_sync"),
        ("sync.accounts.completed", "data_sync"),
        ("sync.accounts.failed", "data_sync"),
        ("sync.transactions.started", "data_sync"),
        ("sync.transactions.completed", "data_sync"),
        ("sync.transactions.failed", "data_sync"),
        ("sync.holdings.started", "data_sync"),
        ("sync.holdings.completed", "data_sync"),
        ("sync.holdings.failed", "data_sync"),
        ("provider.token.expiring", "provider"),
        ("provider.token.refreshed", "provider"),
        ("provider.token.failed", "provider"),
        ("provider.disconnected", "provider"),
        ("ai.response.chunk", "ai"),
        ("ai.tool.executing", "ai"),
        ("ai.response.complete", "ai"),
        ("import.started", "import"),
        ("import.progress", "import"),
        ("import.completed", "import"),
        ("import.failed", "import"),
        ("portfolio.balance.updated", "portfolio"),
        ("portfolio.holdings.updated", "portfolio"),
        ("portfolio.networth.updated", "portfolio"),
        ("security.session.new", "security"),
        ("security.session.suspicious", "security"),
        ("security.session.expiring", "security"),
        ("security.session.revoked", "security"),
        ("security.password.changed", "security"),
        ("security.login.failed", "security"),
    ];

    #[test]
    fn every_dashtam_type_gets_its_category() {
        for (event_type, category) in DASHTAM_TYPES {
            assert_eq!(
                category_of_type(event_type),
                Some(*category),
                "{event_type}"
            );
        }
    }

    #[test]
    fn other_types_get_none() {
        for event_type in [
            "",
            "job:state_change",
            "step.output",
            "data_sync.x",
            "Sync.accounts",
            "syncx",
            ".sync",
            "plan-apply",
            "stream.complete",
        ] {
            assert_eq!(category_of_type(event_type), None, "{event_type:?}");
        }
    }

    fn claims(streams: Option<&[&str]>) -> Claims {
        Claims {
            tenant: TenantId::new("t").expect("tenant"),
            scopes: Scopes::only(crate::auth::Scope::Subscribe),
            streams: streams.map(|ids| {
                ids.iter()
                    .map(|id| ConnectionId::new(id).expect("id"))
                    .collect::<Vec<_>>()
            }),
            exp_s: 10,
            iat_s: None,
            kind: TokenKind::Access,
        }
    }

    #[test]
    fn the_user_is_the_one_user_stream_of_the_token() {
        assert_eq!(
            user_stream(&claims(Some(&["a", "user.bob", "b"]))).map(|c| c.as_str().into()),
            Ok(String::from("user.bob"))
        );
        assert_eq!(
            user_stream(&claims(Some(&["a", "user."]))),
            Err(UserStreamError::NoUser)
        );
        assert_eq!(
            user_stream(&claims(Some(&[]))),
            Err(UserStreamError::NoUser)
        );
        assert_eq!(user_stream(&claims(None)), Err(UserStreamError::NoUser));
        assert_eq!(
            user_stream(&claims(Some(&["user.a", "user.b"]))),
            Err(UserStreamError::SeveralUsers)
        );
        // A ticket minted for the user's stream names the same user.
        let ticket = claims(Some(&["user.bob"]))
            .ticket_for(&ConnectionId::new("user.bob").expect("id"), 1, 5)
            .expect("ticket");
        assert_eq!(
            user_stream(&ticket).map(|c| c.as_str().into()),
            Ok(String::from("user.bob"))
        );
    }

    #[test]
    fn a_user_stream_of_an_id_is_a_connection_id() {
        let long = "x".repeat(ConnectionId::BYTES_MAX - USER_STREAM_PREFIX.len());
        assert!(user_stream_of(&long).is_some());
        assert!(user_stream_of(&(long + "x")).is_none());
        assert!(user_stream_of("a b").is_none());
    }

    #[test]
    fn a_publish_without_a_category_gets_the_derived_one_if_the_vocabulary_knows_it() {
        use crate::hub::LogSummary;
        use crate::log::LogLimits;
        use crate::{EventName, Hub, NewEvent, Vocabulary};
        let event = |name: &str, category: Option<&str>| NewEvent {
            name: EventName::new(name).expect("name"),
            data: String::new(),
            category: category.map(String::from),
        };
        let hub = Hub::from_summary(LogSummary::new(1), LogLimits::default(), false);
        let events = alloc::vec![
            event("sync.accounts.started", None),
            event("sync.accounts.failed", Some("security")),
            event("job:state_change", None),
            event("ai.response.chunk", None),
        ];
        let categories = |vocabulary: &Vocabulary<'_>| {
            hub.prepare(events.clone(), vocabulary)
                .expect("prepared")
                .entries
                .into_iter()
                .map(|entry| entry.category)
                .collect::<Vec<_>>()
        };
        let some = |c: &str| Some(String::from(c));
        assert_eq!(
            categories(&Vocabulary::dashtam()),
            [some("data_sync"), some("security"), None, some("ai")]
        );
        // A deployment whose categories lack `data_sync` leaves such events without one.
        let custom = Vocabulary::custom(None, Some(&["ai", "security"]));
        assert_eq!(
            categories(&custom),
            [None, some("security"), None, some("ai")]
        );
    }
}
