//! The Durable Streams protocol (PROTOCOL.md 1.0, `durable-streams/durable-streams`): every rule
//! the worker's `/ds/` routes apply, without I/O or a clock.
//!
//! - [`offset`](Offset): opaque, sortable offsets and the `-1` / `now` sentinels (§8).
//! - headers: `Stream-Closed`, `Stream-TTL`, `Stream-Expires-At`, `Stream-Seq`, producer headers,
//!   content types (§4.1, §5.1, §5.2).
//! - [`check_producer`]: the idempotent-producer state machine (§5.2.1).
//! - [`split_messages`]: JSON mode's message boundaries and one-level flattening (§9.1).
//! - live: SSE `data` / `control` events, cursors and ETags (§5.8, §10).

mod headers;
mod json_mode;
mod live;
mod offset;
mod producer;
mod time;

pub use headers::{
    check_content_type, is_closed_flag, is_json, is_sse_text, media_type, stream_seq_advances,
    Expiry, HeaderError, ProducerHeaders, CONTENT_TYPE_BYTES_MAX, PRODUCER_ID_BYTES_MAX,
    PRODUCER_NUMBER_MAX, STREAM_SEQ_BYTES_MAX,
};
pub use json_mode::{join_messages, split_messages, JsonBodyKind, JsonModeError};
pub use live::{
    etag, if_none_match_hits, next_cursor, sse_control_event, sse_data_event, Control,
    CACHE_CONTROL_CATCH_UP, CACHE_CONTROL_NO_STORE, CACHE_CONTROL_SSE, CURSOR_EPOCH_MS,
    CURSOR_INTERVAL_MS,
};
pub use offset::{parse_offset, parse_read_from, Offset, OffsetError, ReadFrom, OFFSET_DIGITS};
pub use producer::{check_producer, ProducerState, ProducerVerdict};
pub use time::{format_rfc3339_ms, parse_rfc3339_ms};

use crate::TenantId;
use alloc::string::String;
use core::fmt;

/// The longest stream path under `/ds/`, in bytes.
pub const STREAM_PATH_BYTES_MAX: usize = 512;

/// Why a stream path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamPathError {
    /// Empty, or longer than [`STREAM_PATH_BYTES_MAX`].
    Length,
    /// A `.` or `..` segment, an empty segment, or a control character (§12.2 "validate and
    /// sanitize stream URLs to prevent path traversal").
    Segment,
    /// The first segment is `__ds`, which §6 reserves for control APIs Herald does not serve.
    Reserved,
}

impl fmt::Display for StreamPathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamPathError::Length => "a stream path is 1 to 512 bytes",
            StreamPathError::Segment => {
                "a stream path has no empty, `.` or `..` segments and no control characters"
            }
            StreamPathError::Reserved => "stream paths starting with __ds are reserved",
        })
    }
}

impl core::error::Error for StreamPathError {}

/// Checks the path of a stream below `/ds/` (as it appears in the URL, still percent-encoded).
pub fn check_stream_path(path: &str) -> Result<(), StreamPathError> {
    if path.is_empty() || path.len() > STREAM_PATH_BYTES_MAX {
        return Err(StreamPathError::Length);
    }
    let bad_segment = path.split('/').any(|segment| {
        segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.eq_ignore_ascii_case("%2e")
            || segment.eq_ignore_ascii_case("%2e%2e")
    });
    if bad_segment || path.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(StreamPathError::Segment);
    }
    if path.split('/').next() == Some("__ds") {
        return Err(StreamPathError::Reserved);
    }
    Ok(())
}

/// The name of a stream's Durable Object: tenant and path, so no tenant can address another's
/// stream (as [`hub_name`](crate::hub_name) does for hubs). The tenant id has no `/`, so the split
/// is unambiguous.
#[must_use]
pub fn durable_stream_name(tenant: &TenantId, path: &str) -> String {
    alloc::format!("ds/{}/{}", tenant.as_str(), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(check_stream_path("v1/stream/a-b"), Ok(()));
        assert_eq!(check_stream_path(""), Err(StreamPathError::Length));
        assert_eq!(check_stream_path("a//b"), Err(StreamPathError::Segment));
        assert_eq!(check_stream_path("a/../b"), Err(StreamPathError::Segment));
        assert_eq!(
            check_stream_path("a/%2E%2E/b"),
            Err(StreamPathError::Segment)
        );
        assert_eq!(check_stream_path("__ds/x"), Err(StreamPathError::Reserved));
        let tenant = TenantId::new("acme").unwrap();
        assert_eq!(durable_stream_name(&tenant, "v1/s"), "ds/acme/v1/s");
    }
}
