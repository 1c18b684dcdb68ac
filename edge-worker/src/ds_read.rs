//! A durable stream's reads: catch-up reads (the Worker builds long-poll and SSE from them),
//! `HEAD`, and what a fork copies from its source. Every rule is herald-core's
//! (`herald_core::durable`).

use herald_core::durable::{
    etag, format_rfc3339_ms, if_none_match_hits, is_json, join_messages, parse_offset,
    parse_read_from, Expiry, Offset, ReadFrom, CACHE_CONTROL_CATCH_UP, CACHE_CONTROL_NO_STORE,
};
use worker::Request;

use crate::ds_store::{DsStore, Meta};
use crate::durable_stream::{bad, describe, header, Answer, DsLimits, H_EMPTY, H_FORK};

/// What a fork of this stream starts with: its configuration (in a header) and its rows up to
/// the fork point (in the body, framed as `start u64 | length u32 | bytes`).
pub(crate) fn fork_export(
    store: &DsStore,
    meta: Option<Meta>,
    url: &worker::Url,
) -> worker::Result<Answer> {
    let Some(meta) = meta else {
        return Ok(Answer::error(
            404,
            "source_not_found",
            "no stream at Stream-Forked-From",
        ));
    };
    if meta.soft_deleted {
        return Ok(Answer::error(
            409,
            "source_soft_deleted",
            "the source stream was deleted",
        ));
    }
    let query = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let anchor = match query("offset") {
        None => meta.tail(),
        Some(token) => match parse_offset(&token) {
            Ok(offset) => offset,
            Err(e) => return Ok(bad("invalid_fork_offset", e)),
        },
    };
    if anchor > meta.tail() {
        return Ok(bad(
            "invalid_fork_offset",
            "Stream-Fork-Offset is past the source's tail",
        ));
    }
    let sub_offset = match query("sub").map(|s| s.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return Ok(bad(
                "invalid_fork_sub_offset",
                "Stream-Fork-Sub-Offset must be a non-negative integer",
            ))
        }
    };
    let rows = store.rows_from(meta.earliest, usize::MAX, usize::MAX)?;
    let mut framed = Vec::new();
    let mut point = anchor.0;
    let mut remaining = sub_offset;
    let json = is_json(&meta.content_type);
    for (start, bytes) in rows {
        let end = start + (bytes.len() as u64).max(1);
        let take = if end <= anchor.0 {
            bytes.len()
        } else if remaining == 0 {
            break;
        } else if json {
            if start < anchor.0 {
                break;
            }
            remaining -= 1;
            point = end;
            bytes.len()
        } else {
            let from = anchor.0.max(start);
            let available = end - from;
            if remaining > available {
                return Ok(bad(
                    "invalid_fork_sub_offset",
                    "Stream-Fork-Sub-Offset is past the next data boundary",
                ));
            }
            point = from + remaining;
            remaining = 0;
            (point - start) as usize
        };
        framed.extend_from_slice(&start.to_be_bytes());
        let kept = bytes.get(..take).unwrap_or(&bytes);
        let length = u32::try_from(kept.len()).unwrap_or(u32::MAX);
        framed.extend_from_slice(&length.to_be_bytes());
        framed.extend_from_slice(kept);
    }
    if remaining > 0 {
        return Ok(bad(
            "invalid_fork_sub_offset",
            "Stream-Fork-Sub-Offset is past the next data boundary",
        ));
    }
    let source = ForkSource {
        source_path: String::new(),
        content_type: meta.content_type.clone(),
        ttl_s: meta.ttl_s,
        expires_at_ms: meta.expires_at_ms,
        point,
        sub_offset,
        rows_bytes: framed.len() as u64,
    };
    let mut answer = Answer::new(200);
    answer.set(
        H_FORK,
        &serde_json::to_string(&source).map_err(|e| worker::Error::RustError(e.to_string()))?,
    );
    answer.body = framed;
    Ok(answer)
}

/// What the Worker tells a new fork about its source.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct ForkSource {
    pub(crate) source_path: String,
    pub(crate) content_type: String,
    pub(crate) ttl_s: Option<u64>,
    pub(crate) expires_at_ms: Option<i64>,
    pub(crate) point: u64,
    pub(crate) sub_offset: u64,
    /// How many bytes of the fork's body are the source's framed rows (the rest is its own).
    pub(crate) rows_bytes: u64,
}

impl ForkSource {
    /// The source's expiry, which a fork without its own inherits.
    pub(crate) fn expiry(&self) -> Expiry {
        match (self.ttl_s, self.expires_at_ms) {
            (Some(ttl_s), _) => Expiry::Ttl { ttl_s },
            (None, Some(at_ms)) => Expiry::At { at_ms },
            (None, None) => Expiry::Never,
        }
    }
}

/// The rows [`fork_export`] framed (a truncated frame ends the list).
pub(crate) fn decode_rows(mut framed: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut rows = Vec::new();
    while framed.len() >= 12 {
        let mut start = [0u8; 8];
        start.copy_from_slice(&framed[..8]);
        let mut length = [0u8; 4];
        length.copy_from_slice(&framed[8..12]);
        let length = u32::from_be_bytes(length) as usize;
        let Some(end) = length.checked_add(12) else {
            break;
        };
        let (Some(bytes), Some(rest)) = (framed.get(12..end), framed.get(end..)) else {
            break;
        };
        rows.push((u64::from_be_bytes(start), bytes.to_vec()));
        framed = rest;
    }
    rows
}

pub(crate) fn head(meta: &Meta) -> Answer {
    let mut answer = Answer::new(200)
        .with("content-type", &meta.content_type)
        .with("cache-control", CACHE_CONTROL_NO_STORE);
    describe(&mut answer, meta);
    match meta.expiry() {
        Expiry::Ttl { ttl_s } => answer.set("stream-ttl", &ttl_s.to_string()),
        Expiry::At { at_ms } => answer.set("stream-expires-at", &format_rfc3339_ms(at_ms)),
        Expiry::Never => {}
    }
    answer
}

/// A catch-up read (§5.6); the Worker builds long-poll and SSE answers from these.
pub(crate) fn read(
    store: &DsStore,
    meta: &Meta,
    request: &Request,
    url: &worker::Url,
    limits: &DsLimits,
) -> worker::Result<Answer> {
    let offsets: Vec<String> = url
        .query_pairs()
        .filter(|(k, _)| k == "offset")
        .map(|(_, v)| v.into_owned())
        .collect();
    if offsets.len() > 1 {
        return Ok(bad("invalid_offset", "send one offset"));
    }
    let from = match parse_read_from(offsets.first().map(String::as_str)) {
        Ok(from) => from,
        Err(e) => return Ok(bad("invalid_offset", e)),
    };
    let json = is_json(&meta.content_type);
    let start = match from {
        ReadFrom::Start => Offset(meta.earliest),
        ReadFrom::Now => {
            let mut answer = Answer::new(200)
                .with("content-type", &meta.content_type)
                .with("stream-up-to-date", "true")
                .with("cache-control", CACHE_CONTROL_NO_STORE)
                .with(H_EMPTY, "true");
            describe(&mut answer, meta);
            if json {
                answer.body = b"[]".to_vec();
            }
            return Ok(answer);
        }
        ReadFrom::At(offset) => offset,
    };
    if start.0 < meta.earliest {
        return Ok(Answer::error(
            410,
            "offset_gone",
            "the offset is before the earliest retained data",
        ));
    }
    if start > meta.tail() {
        return Ok(bad(
            "invalid_offset",
            "the offset is past the stream's tail",
        ));
    }
    let rows = store.rows_from(start.0, limits.read_bytes_max, usize::MAX)?;
    let mut next = start.0;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for (row_start, bytes) in rows {
        let end = row_start + (bytes.len() as u64).max(1);
        let skip = start.0.saturating_sub(row_start) as usize;
        chunks.push(
            bytes
                .get(skip.min(bytes.len())..)
                .unwrap_or_default()
                .to_vec(),
        );
        next = end;
    }
    let up_to_date = next >= meta.tail;
    let closed_here = meta.closed && up_to_date;
    let tag = etag(&meta.generation, start, Offset(next), closed_here);
    let mut answer = Answer::new(200)
        .with("content-type", &meta.content_type)
        .with("stream-next-offset", &Offset(next).encode())
        .with("etag", &tag)
        .with("cache-control", CACHE_CONTROL_CATCH_UP);
    if chunks.is_empty() {
        answer.set(H_EMPTY, "true");
    }
    if up_to_date {
        answer.set("stream-up-to-date", "true");
    }
    if closed_here {
        answer.set("stream-closed", "true");
    }
    if header(request, "if-none-match").is_some_and(|v| if_none_match_hits(&v, &tag)) {
        answer.status = 304;
        return Ok(answer);
    }
    answer.body = if json {
        join_messages(chunks.iter().map(Vec::as_slice))
    } else {
        chunks.concat()
    };
    Ok(answer)
}
