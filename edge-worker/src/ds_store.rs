//! A durable stream's SQLite storage: one meta row (configuration, tail, closure, writer state),
//! the data in offset order (one row per append, or per message in JSON mode), and the producers'
//! state.
//!
//! An append writes its data rows, its producer's state and the new meta inside one Durable Object
//! event with no `await` in between, which the runtime commits atomically: a producer retried
//! across a crash or restart finds either all of an append (and is told "duplicate") or none of it.

use herald_core::durable::{Expiry, Offset, ProducerState};
use serde::{Deserialize, Serialize};
use worker::{SqlStorage, SqlStorageValue, State};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ds_meta (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ds_data (start INTEGER PRIMARY KEY, bytes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS ds_producers (id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, last_seq INTEGER NOT NULL);";

/// The request that closed a stream, so that its retry is a duplicate rather than a conflict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct ClosedBy {
    pub(crate) producer: String,
    pub(crate) epoch: u64,
    pub(crate) seq: u64,
}

/// Everything about a stream except its data and producers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    /// Unique per creation (a deleted and re-created stream gets a new one): part of every ETag.
    pub(crate) generation: String,
    pub(crate) content_type: String,
    pub(crate) ttl_s: Option<u64>,
    pub(crate) expires_at_ms: Option<i64>,
    pub(crate) closed: bool,
    pub(crate) closed_by: Option<ClosedBy>,
    /// The offset after the last byte (or message) stored.
    pub(crate) tail: u64,
    /// The first offset still retained (retention drops older rows; reads before it are `410`).
    pub(crate) earliest: u64,
    pub(crate) retained_bytes: u64,
    pub(crate) stream_seq: Option<String>,
    pub(crate) last_access_ms: i64,
    /// The source of a fork (its path below `/ds/`), and how many forks reference this stream.
    pub(crate) forked_from: Option<String>,
    pub(crate) fork_offset: Option<u64>,
    pub(crate) fork_sub_offset: u64,
    pub(crate) refs: u64,
    pub(crate) soft_deleted: bool,
}

impl Meta {
    pub(crate) fn expiry(&self) -> Expiry {
        match (self.ttl_s, self.expires_at_ms) {
            (Some(ttl_s), _) => Expiry::Ttl { ttl_s },
            (None, Some(at_ms)) => Expiry::At { at_ms },
            (None, None) => Expiry::Never,
        }
    }

    pub(crate) fn tail(&self) -> Offset {
        Offset(self.tail)
    }
}

fn internal(error: impl core::fmt::Display) -> worker::Error {
    worker::Error::RustError(error.to_string())
}

fn int(value: u64) -> worker::Result<SqlStorageValue> {
    i64::try_from(value)
        .map(SqlStorageValue::Integer)
        .map_err(|_| internal("offset beyond i64"))
}

#[derive(Debug, Clone)]
pub(crate) struct DsStore {
    sql: SqlStorage,
}

impl DsStore {
    pub(crate) fn open(state: &State) -> worker::Result<DsStore> {
        let sql = state.storage().sql();
        sql.exec(SCHEMA, None)?;
        Ok(DsStore { sql })
    }

    pub(crate) fn meta(&self) -> worker::Result<Option<Meta>> {
        for row in self
            .sql
            .exec("SELECT json FROM ds_meta WHERE id = 1", None)?
            .raw()
        {
            if let Some(SqlStorageValue::String(json)) = row?.into_iter().next() {
                return serde_json::from_str(&json).map(Some).map_err(internal);
            }
        }
        Ok(None)
    }

    pub(crate) fn set_meta(&self, meta: &Meta) -> worker::Result<()> {
        let json = serde_json::to_string(meta).map_err(internal)?;
        self.sql.exec(
            "INSERT INTO ds_meta (id, json) VALUES (1, ?) ON CONFLICT(id) DO UPDATE SET json = excluded.json",
            vec![json.into()],
        )?;
        Ok(())
    }

    /// Removes the stream entirely: meta, data, producers.
    pub(crate) fn purge(&self) -> worker::Result<()> {
        self.sql.exec(
            "DELETE FROM ds_meta; DELETE FROM ds_data; DELETE FROM ds_producers;",
            None,
        )?;
        Ok(())
    }

    /// Appends rows at `meta.tail`, advancing it; returns the bytes added.
    pub(crate) fn append_rows(&self, meta: &mut Meta, rows: &[&[u8]]) -> worker::Result<u64> {
        let mut added = 0u64;
        for row in rows {
            self.sql.exec(
                "INSERT INTO ds_data (start, bytes) VALUES (?, ?)",
                vec![int(meta.tail)?, SqlStorageValue::Blob(row.to_vec())],
            )?;
            let length = row.len() as u64;
            // Every row advances the tail by at least one, so offsets stay unique.
            meta.tail += length.max(1);
            added += length;
        }
        meta.retained_bytes += added;
        Ok(added)
    }

    /// Drops the oldest rows until at most `bytes_max` are retained (never the newest row).
    pub(crate) fn enforce_retention(&self, meta: &mut Meta, bytes_max: u64) -> worker::Result<()> {
        while meta.retained_bytes > bytes_max {
            let oldest = self.rows_from(meta.earliest, usize::MAX, 2)?;
            let [(start, bytes), (next_start, _)] = oldest.as_slice() else {
                return Ok(());
            };
            self.sql
                .exec("DELETE FROM ds_data WHERE start = ?", vec![int(*start)?])?;
            meta.retained_bytes = meta.retained_bytes.saturating_sub(bytes.len() as u64);
            meta.earliest = *next_start;
        }
        Ok(())
    }

    /// Rows whose range ends after `from`, oldest first, up to `bytes_max` bytes (at least one row)
    /// or `rows_max` rows.
    pub(crate) fn rows_from(
        &self,
        from: u64,
        bytes_max: usize,
        rows_max: usize,
    ) -> worker::Result<Vec<(u64, Vec<u8>)>> {
        let mut rows = Vec::new();
        let mut total = 0usize;
        let limit = i64::try_from(rows_max).unwrap_or(i64::MAX);
        // A row starting before `from` that reaches past it holds the start of the read.
        let cursor = self.sql.exec(
            "SELECT start, bytes FROM ds_data WHERE start >= (SELECT COALESCE(MAX(start), 0) FROM ds_data WHERE start <= ?) ORDER BY start LIMIT ?",
            vec![int(from)?, SqlStorageValue::Integer(limit)],
        )?;
        for row in cursor.raw() {
            let mut values = row?.into_iter();
            let (Some(SqlStorageValue::Integer(start)), Some(bytes)) =
                (values.next(), values.next())
            else {
                return Err(internal("ds_data row has an unexpected shape"));
            };
            let bytes = match bytes {
                SqlStorageValue::Blob(bytes) => bytes,
                SqlStorageValue::String(text) => text.into_bytes(),
                _ => Vec::new(),
            };
            let start = start as u64;
            if start + (bytes.len() as u64).max(1) <= from {
                continue;
            }
            if !rows.is_empty() && total + bytes.len() > bytes_max {
                break;
            }
            total += bytes.len();
            rows.push((start, bytes));
        }
        Ok(rows)
    }

    pub(crate) fn producer(&self, id: &str) -> worker::Result<Option<ProducerState>> {
        for row in self
            .sql
            .exec(
                "SELECT epoch, last_seq FROM ds_producers WHERE id = ?",
                vec![id.into()],
            )?
            .raw()
        {
            let mut values = row?.into_iter();
            if let (Some(SqlStorageValue::Integer(epoch)), Some(SqlStorageValue::Integer(seq))) =
                (values.next(), values.next())
            {
                return Ok(Some(ProducerState {
                    epoch: epoch as u64,
                    last_seq: seq as u64,
                }));
            }
        }
        Ok(None)
    }

    pub(crate) fn set_producer(&self, id: &str, state: ProducerState) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO ds_producers (id, epoch, last_seq) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, last_seq = excluded.last_seq",
            vec![id.into(), int(state.epoch)?, int(state.last_seq)?],
        )?;
        Ok(())
    }
}
