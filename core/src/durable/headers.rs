//! Request header rules: content types, `Stream-Closed`, `Stream-TTL`, `Stream-Expires-At`,
//! `Stream-Seq`, and the idempotent-producer triple (PROTOCOL.md §4.1, §5.1, §5.2, §5.2.1).

use alloc::string::String;
use core::fmt;

use super::time::parse_rfc3339_ms;

/// The largest producer epoch or sequence number (§5.2.1: "≤ 2^53-1 (for JavaScript
/// interoperability)").
pub const PRODUCER_NUMBER_MAX: u64 = (1 << 53) - 1;

/// The longest `Producer-Id` Herald stores, in bytes.
pub const PRODUCER_ID_BYTES_MAX: usize = 256;

/// The longest `Stream-Seq` Herald stores, in bytes.
pub const STREAM_SEQ_BYTES_MAX: usize = 256;

/// The longest content type Herald stores, in bytes.
pub const CONTENT_TYPE_BYTES_MAX: usize = 256;

/// A header value that breaks its rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// `Stream-TTL` is not a decimal integer without sign, leading zeros, point or exponent.
    Ttl,
    /// `Stream-Expires-At` is not an RFC 3339 timestamp.
    ExpiresAt,
    /// Both `Stream-TTL` and `Stream-Expires-At` were sent.
    TtlAndExpiresAt,
    /// Only some of `Producer-Id`, `Producer-Epoch`, `Producer-Seq` were sent.
    ProducerIncomplete,
    /// `Producer-Id` is empty or too long.
    ProducerId,
    /// `Producer-Epoch` or `Producer-Seq` is not an integer in 0..=2^53-1.
    ProducerNumber,
    /// `Stream-Seq` is empty or too long.
    StreamSeq,
    /// The content type is empty, too long, or not `type/subtype`.
    ContentType,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderError::Ttl => {
                "Stream-TTL must be a non-negative decimal integer without sign or leading zeros"
            }
            HeaderError::ExpiresAt => "Stream-Expires-At must be an RFC 3339 timestamp",
            HeaderError::TtlAndExpiresAt => "send Stream-TTL or Stream-Expires-At, not both",
            HeaderError::ProducerIncomplete => {
                "Producer-Id, Producer-Epoch and Producer-Seq go together or not at all"
            }
            HeaderError::ProducerId => "Producer-Id must be 1 to 256 bytes",
            HeaderError::ProducerNumber => {
                "Producer-Epoch and Producer-Seq must be integers from 0 to 2^53-1"
            }
            HeaderError::StreamSeq => "Stream-Seq must be 1 to 256 bytes",
            HeaderError::ContentType => "the content type must be type/subtype, at most 256 bytes",
        })
    }
}

impl core::error::Error for HeaderError {}

/// §4.1: "Servers MUST treat the header as present only when its value is exactly `true`
/// (case-insensitive comparison)"; any other value is as if the header were absent.
#[must_use]
pub fn is_closed_flag(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The media type of a content type, for comparison: `type/subtype` lowercased, parameters dropped
/// (`application/json; charset=utf-8` is `application/json`).
#[must_use]
pub fn media_type(content_type: &str) -> String {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.to_ascii_lowercase()
}

/// Checks a content type a client declared for a new stream.
pub fn check_content_type(content_type: &str) -> Result<(), HeaderError> {
    let essence = media_type(content_type);
    let valid = content_type.len() <= CONTENT_TYPE_BYTES_MAX
        && essence
            .split_once('/')
            .is_some_and(|(kind, sub)| !kind.is_empty() && !sub.is_empty() && !sub.contains('/'))
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
    if valid {
        Ok(())
    } else {
        Err(HeaderError::ContentType)
    }
}

/// Whether a stream of this content type is in JSON mode (§9.1).
#[must_use]
pub fn is_json(content_type: &str) -> bool {
    media_type(content_type) == "application/json"
}

/// Whether SSE data events of this content type carry text as it is (§5.8: `text/*` and
/// `application/json`); any other is base64-encoded.
#[must_use]
pub fn is_sse_text(content_type: &str) -> bool {
    let essence = media_type(content_type);
    essence.starts_with("text/") || essence == "application/json"
}

/// A decimal integer without sign, leading zeros, point or exponent (§5.1 `Stream-TTL`).
fn parse_strict_decimal(value: &str) -> Option<u64> {
    let digits_only = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = value.len() > 1 && value.starts_with('0');
    if !digits_only || leading_zero {
        return None;
    }
    value.parse().ok()
}

/// A stream's expiry as created (§4 "TTL/Expiry").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Expiry {
    /// Lives until deleted.
    #[default]
    Never,
    /// Expires after this many seconds without a read or write.
    Ttl {
        /// The sliding window, in seconds.
        ttl_s: u64,
    },
    /// Expires at this instant, in milliseconds since the Unix epoch.
    At {
        /// The deadline.
        at_ms: i64,
    },
}

impl Expiry {
    /// Parses `Stream-TTL` and `Stream-Expires-At` (§5.1: both at once is `400`).
    pub fn from_headers(
        ttl: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<Expiry, HeaderError> {
        match (ttl, expires_at) {
            (Some(_), Some(_)) => Err(HeaderError::TtlAndExpiresAt),
            (Some(ttl), None) => parse_strict_decimal(ttl.trim())
                .map(|ttl_s| Expiry::Ttl { ttl_s })
                .ok_or(HeaderError::Ttl),
            (None, Some(at)) => parse_rfc3339_ms(at.trim())
                .map(|at_ms| Expiry::At { at_ms })
                .ok_or(HeaderError::ExpiresAt),
            (None, None) => Ok(Expiry::Never),
        }
    }

    /// A fork's expiry (§4.2's table): its own when the fork request sets one, else its source's
    /// (a TTL is the same sliding window, refreshed independently; an Expires-At the same
    /// deadline).
    #[must_use]
    pub fn for_fork(requested: Expiry, source: Expiry) -> Expiry {
        match requested {
            Expiry::Never => source,
            own => own,
        }
    }

    /// Whether a stream last read or written at `last_access_ms` has expired at `now_ms`.
    #[must_use]
    pub fn is_expired(self, last_access_ms: i64, now_ms: i64) -> bool {
        match self {
            Expiry::Never => false,
            Expiry::Ttl { ttl_s } => {
                let ttl_ms = i64::try_from(ttl_s.saturating_mul(1000)).unwrap_or(i64::MAX);
                now_ms >= last_access_ms.saturating_add(ttl_ms)
            }
            Expiry::At { at_ms } => now_ms >= at_ms,
        }
    }
}

/// The idempotent-producer triple of one append (§5.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerHeaders {
    /// `Producer-Id`: the stable name of the producer.
    pub id: String,
    /// `Producer-Epoch`: the producer's session, raised on restart.
    pub epoch: u64,
    /// `Producer-Seq`: the request's number within the epoch.
    pub seq: u64,
}

fn producer_number(value: &str) -> Result<u64, HeaderError> {
    parse_strict_decimal(value.trim())
        .filter(|n| *n <= PRODUCER_NUMBER_MAX)
        .ok_or(HeaderError::ProducerNumber)
}

impl ProducerHeaders {
    /// Parses the three headers: §5.2.1 "All three producer headers MUST be provided together or
    /// none at all", the id "MUST be a non-empty string", the numbers "non-negative integer ≤
    /// 2^53-1".
    pub fn from_headers(
        id: Option<&str>,
        epoch: Option<&str>,
        seq: Option<&str>,
    ) -> Result<Option<ProducerHeaders>, HeaderError> {
        match (id, epoch, seq) {
            (None, None, None) => Ok(None),
            (Some(id), Some(epoch), Some(seq)) => {
                if id.is_empty() || id.len() > PRODUCER_ID_BYTES_MAX {
                    return Err(HeaderError::ProducerId);
                }
                Ok(Some(ProducerHeaders {
                    id: id.into(),
                    epoch: producer_number(epoch)?,
                    seq: producer_number(seq)?,
                }))
            }
            _ => Err(HeaderError::ProducerIncomplete),
        }
    }
}

/// Checks a `Stream-Seq` value against the last one accepted (§5.2: "If provided and less than or
/// equal to the last appended sequence (as determined by lexicographic comparison), the server MUST
/// return `409 Conflict`"). `Ok(true)` accepts it, `Ok(false)` is a regression.
pub fn stream_seq_advances(last: Option<&str>, next: &str) -> Result<bool, HeaderError> {
    if next.is_empty() || next.len() > STREAM_SEQ_BYTES_MAX {
        return Err(HeaderError::StreamSeq);
    }
    Ok(last.is_none_or(|last| next.as_bytes() > last.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_flag_is_exactly_true() {
        assert!(is_closed_flag(Some("true")));
        assert!(is_closed_flag(Some("TRUE")));
        for other in ["false", "yes", "1", "", " true"] {
            assert!(!is_closed_flag(Some(other)), "{other}");
        }
        assert!(!is_closed_flag(None));
    }

    #[test]
    fn ttl_is_strict() {
        assert_eq!(
            Expiry::from_headers(Some("3600"), None),
            Ok(Expiry::Ttl { ttl_s: 3600 })
        );
        assert_eq!(
            Expiry::from_headers(Some("0"), None),
            Ok(Expiry::Ttl { ttl_s: 0 })
        );
        for bad in ["+3600", "03600", "3600.0", "3.6e3", "-1", "", "abc"] {
            assert_eq!(
                Expiry::from_headers(Some(bad), None),
                Err(HeaderError::Ttl),
                "{bad}"
            );
        }
        assert_eq!(
            Expiry::from_headers(Some("1"), Some("2030-01-01T00:00:00Z")),
            Err(HeaderError::TtlAndExpiresAt)
        );
        assert_eq!(
            Expiry::from_headers(None, Some("1970-01-01T00:00:01Z")),
            Ok(Expiry::At { at_ms: 1000 })
        );
        assert_eq!(
            Expiry::from_headers(None, Some("soon")),
            Err(HeaderError::ExpiresAt)
        );
    }

    #[test]
    fn expiry_arithmetic() {
        let ttl = Expiry::Ttl { ttl_s: 2 };
        assert!(!ttl.is_expired(1_000, 2_999));
        assert!(ttl.is_expired(1_000, 3_000));
        assert!(!Expiry::Never.is_expired(0, i64::MAX));
        assert!(Expiry::At { at_ms: 5 }.is_expired(0, 5));
        assert!(!Expiry::Ttl { ttl_s: u64::MAX }.is_expired(0, i64::MAX - 1));
    }

    #[test]
    fn fork_expiry_table() {
        let ttl = |ttl_s| Expiry::Ttl { ttl_s };
        let at = |at_ms| Expiry::At { at_ms };
        // (source, request, fork gets): every row of §4.2's table.
        let table = [
            (Expiry::Never, Expiry::Never, Expiry::Never),
            (Expiry::Never, ttl(5), ttl(5)),
            (Expiry::Never, at(9), at(9)),
            (ttl(7), Expiry::Never, ttl(7)),
            (ttl(7), ttl(5), ttl(5)),
            (ttl(7), at(9), at(9)),
            (at(3), Expiry::Never, at(3)),
            (at(3), ttl(5), ttl(5)),
            (at(3), at(9), at(9)),
        ];
        for (source, requested, fork) in table {
            assert_eq!(
                Expiry::for_fork(requested, source),
                fork,
                "{source:?} {requested:?}"
            );
        }
    }

    #[test]
    fn producer_headers() {
        assert_eq!(ProducerHeaders::from_headers(None, None, None), Ok(None));
        assert_eq!(
            ProducerHeaders::from_headers(Some("p"), Some("0"), None),
            Err(HeaderError::ProducerIncomplete)
        );
        assert_eq!(
            ProducerHeaders::from_headers(Some(""), Some("0"), Some("0")),
            Err(HeaderError::ProducerId)
        );
        assert_eq!(
            ProducerHeaders::from_headers(Some("p"), Some("-1"), Some("0")),
            Err(HeaderError::ProducerNumber)
        );
        assert_eq!(
            ProducerHeaders::from_headers(Some("p"), Some("9007199254740992"), Some("0")),
            Err(HeaderError::ProducerNumber)
        );
        let ok = ProducerHeaders::from_headers(Some("p"), Some("9007199254740991"), Some("3"));
        assert_eq!(
            ok.map(|p| p.map(|p| (p.epoch, p.seq))),
            Ok(Some((PRODUCER_NUMBER_MAX, 3)))
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            media_type("Application/JSON; charset=utf-8"),
            "application/json"
        );
        assert!(is_json("APPLICATION/JSON"));
        assert!(is_sse_text("text/plain"));
        assert!(!is_sse_text("application/octet-stream"));
        assert!(check_content_type("text/plain").is_ok());
        assert!(check_content_type("nonsense").is_err());
        assert!(check_content_type("").is_err());
    }

    #[test]
    fn stream_seq_is_bytewise() {
        assert_eq!(stream_seq_advances(None, "001"), Ok(true));
        assert_eq!(stream_seq_advances(Some("001"), "002"), Ok(true));
        assert_eq!(stream_seq_advances(Some("002"), "002"), Ok(false));
        assert_eq!(stream_seq_advances(Some("10"), "9"), Ok(true));
        assert_eq!(stream_seq_advances(Some("9"), "10"), Ok(false));
        assert_eq!(stream_seq_advances(None, ""), Err(HeaderError::StreamSeq));
    }
}
