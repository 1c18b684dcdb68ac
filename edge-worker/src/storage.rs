//! The Hub's durable state in its SQLite storage: the replay log (one row an event, holding the
//! encoded frame) and a small key/value table (epoch, next sequence number, completion, plan).
//!
//! Every write of one publish happens inside one Durable Object event with no `await` in between,
//! which the runtime commits atomically; and the Hub validates everything before the first write,
//! so a bad batch writes nothing.

use bytes::Bytes;
use herald_core::{EventName, LogEntry, LogLimits, ReplayLog};
use worker::{SqlStorage, SqlStorageValue, State};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS herald_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS herald_log (
  seq INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT,
  frame BLOB NOT NULL
);";

/// Keys of `herald_meta`.
const EPOCH: &str = "epoch";
const NEXT_SEQ: &str = "next_seq";
const COMPLETE: &str = "complete";
pub(crate) const PLAN: &str = "plan";

/// What a Hub finds in storage when it wakes.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) log: ReplayLog,
    pub(crate) complete: bool,
    pub(crate) plan_json: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Store {
    sql: SqlStorage,
}

fn internal(error: impl core::fmt::Display) -> worker::Error {
    worker::Error::RustError(error.to_string())
}

impl Store {
    pub(crate) fn open(state: &State) -> worker::Result<Store> {
        let sql = state.storage().sql();
        sql.exec(SCHEMA, None)?;
        Ok(Store { sql })
    }

    fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        let rows = self.sql.exec(
            "SELECT value FROM herald_meta WHERE key = ?",
            vec![key.into()],
        )?;
        for row in rows.raw() {
            if let Some(SqlStorageValue::String(value)) = row?.into_iter().next() {
                return Ok(Some(value));
            }
        }
        Ok(None)
    }

    pub(crate) fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO herald_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// Reads the log back, creating a new epoch (from the wall clock) for a Hub that has none: a Hub
    /// whose storage was lost starts a new epoch, so old ids are detected as another epoch's.
    pub(crate) fn load(&self, limits: LogLimits, now_ms: u64) -> worker::Result<Loaded> {
        let epoch = match self.meta(EPOCH)? {
            Some(text) => text.parse().map_err(internal)?,
            None => {
                self.set_meta(EPOCH, &now_ms.to_string())?;
                now_ms
            }
        };
        let next_seq = match self.meta(NEXT_SEQ)? {
            Some(text) => text.parse().map_err(internal)?,
            None => 1,
        };
        let mut entries = Vec::new();
        for row in self
            .sql
            .exec(
                "SELECT seq, name, category, frame FROM herald_log ORDER BY seq",
                None,
            )?
            .raw()
        {
            let mut values = row?.into_iter();
            let (
                Some(SqlStorageValue::Integer(seq)),
                Some(SqlStorageValue::String(name)),
                Some(category),
                Some(frame),
            ) = (values.next(), values.next(), values.next(), values.next())
            else {
                return Err(internal("herald_log row has an unexpected shape"));
            };
            let category = match category {
                SqlStorageValue::String(text) => Some(text),
                _ => None,
            };
            let frame = match frame {
                SqlStorageValue::Blob(bytes) => Bytes::from(bytes),
                SqlStorageValue::String(text) => Bytes::from(text.into_bytes()),
                _ => return Err(internal("herald_log frame is not a blob")),
            };
            let name = EventName::new(&name).map_err(internal)?;
            entries.push(LogEntry {
                seq: seq as u64,
                name,
                category,
                frame,
            });
        }
        // Limits may have shrunk since these rows were written: the log says what no longer fits.
        let (log, evicted) =
            ReplayLog::restore(epoch, next_seq, limits, entries).map_err(internal)?;
        if let Some(through) = evicted.through_seq {
            self.sql.exec(
                "DELETE FROM herald_log WHERE seq <= ?",
                vec![SqlStorageValue::Integer(through as i64)],
            )?;
        }
        Ok(Loaded {
            log,
            complete: self.meta(COMPLETE)?.as_deref() == Some("true"),
            plan_json: self.meta(PLAN)?,
        })
    }

    /// Appends a batch of entries and trims the rows the in-memory log evicted.
    pub(crate) fn append(
        &self,
        entries: &[LogEntry],
        next_seq: u64,
        evicted_through: Option<u64>,
    ) -> worker::Result<()> {
        for entry in entries {
            self.sql.exec(
                "INSERT INTO herald_log (seq, name, category, frame) VALUES (?, ?, ?, ?)",
                vec![
                    SqlStorageValue::Integer(entry.seq as i64),
                    entry.name.as_str().into(),
                    entry.category.clone().into(),
                    SqlStorageValue::Blob(entry.frame.to_vec()),
                ],
            )?;
        }
        self.set_meta(NEXT_SEQ, &next_seq.to_string())?;
        if let Some(through) = evicted_through {
            self.sql.exec(
                "DELETE FROM herald_log WHERE seq <= ?",
                vec![SqlStorageValue::Integer(through as i64)],
            )?;
        }
        Ok(())
    }

    pub(crate) fn set_complete(&self) -> worker::Result<()> {
        self.set_meta(COMPLETE, "true")
    }
}
