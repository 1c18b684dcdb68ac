//! The Hub's durable state in its SQLite storage: the replay log (one row an event, holding the
//! encoded frame) and a small key/value table (the log's summary, completion, plan). A woken Hub
//! reads only the key/value rows; the log's rows are read when a replay needs them.
//!
//! Every write of one publish happens inside one Durable Object event with no `await` in between,
//! which the runtime commits atomically; and the Hub validates everything before the first write,
//! so a bad batch writes nothing.
//!
//! Should a statement fail midway, the statements before it are still committed. So the summary is
//! the commit point: a publish writes its rows, then the summary (with completion) in one
//! statement, then deletes what it evicted; and a Hub that loads its meta deletes the rows the
//! summary does not cover (rows of a publish whose summary was never written, rows evicted but not
//! yet deleted).
//!
//! `herald_seen` holds the fingerprints of ingested sluice events (herald-core's `IngestEvent`),
//! each with the sequence number of the event it was stored as. They are written with the log's
//! rows, before the summary, and follow the rows' fate: deleted when their event is evicted, and
//! deleted on load when the summary does not cover their event. So an ingested event is recognised
//! exactly as long as it is in the log, and a failed publish leaves no fingerprint behind.
//! `herald_sluice_jobs` holds each ingested job's latest state (for the next event's
//! `previousState`) under the same rules.

use bytes::Bytes;
use herald_core::hub::LogSummary;
use herald_core::log::{Evicted, LogEntry};
use herald_core::EventName;
use worker::{SqlStorage, SqlStorageValue, State};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS herald_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS herald_log (
  seq INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  category TEXT,
  frame BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS herald_seen (fingerprint TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS herald_sluice_jobs (
  external_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  seq INTEGER NOT NULL
);";

/// The tables whose rows belong to a logged event (by `seq`), deleted with it.
const LOG_TABLES: [&str; 3] = ["herald_log", "herald_seen", "herald_sluice_jobs"];

/// What an ingested sluice event leaves in storage beside its log row: its fingerprint, and for a
/// job event the job's `(externalId, state)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ingested<'a> {
    pub(crate) fingerprint: &'a str,
    pub(crate) job: Option<(&'a str, &'a str)>,
}

/// Keys of `herald_meta`.
const EPOCH: &str = "epoch";
const NEXT_SEQ: &str = "next_seq";
/// The log's summary (epoch, next seq, oldest retained, totals) as JSON: all a woken Hub reads.
const LOG: &str = "log";
const COMPLETE: &str = "complete";
pub(crate) const PLAN: &str = "plan";
/// The hub's name (`tenant/connection`), kept so that a woken hub can report to its tenant's
/// stream directory before any call names it.
pub(crate) const NAME: &str = "name";

/// What a Hub reads when it wakes: a few meta rows, never the log itself.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) summary: LogSummary,
    pub(crate) complete: bool,
    pub(crate) plan_json: Option<String>,
    pub(crate) name: Option<String>,
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

    fn set_summary(&self, summary: &LogSummary) -> worker::Result<()> {
        self.set_meta(LOG, &serde_json::to_string(summary).map_err(internal)?)
    }

    /// The summary and, for a batch that completes the stream, the completion, in one statement: a
    /// publish's commit point.
    ///
    /// `also` are more meta rows that must be written exactly when the batch is (an idempotent
    /// producer's state): they ride in the same statement.
    fn commit_summary(
        &self,
        summary: &LogSummary,
        completes: bool,
        also: Option<(String, String)>,
    ) -> worker::Result<()> {
        let summary = serde_json::to_string(summary).map_err(internal)?;
        let mut rows: Vec<SqlStorageValue> = vec![LOG.into(), summary.into()];
        if completes {
            rows.extend([COMPLETE.into(), "true".into()]);
        }
        if let Some((key, value)) = also {
            rows.extend([key.into(), value.into()]);
        }
        let values = vec!["(?, ?)"; rows.len() / 2].join(", ");
        self.sql.exec(
            &format!(
                "INSERT INTO herald_meta (key, value) VALUES {values} \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ),
            rows,
        )?;
        Ok(())
    }

    /// Reads the meta rows, creating a new epoch (from the wall clock) for a Hub that has none: a
    /// Hub whose storage was lost starts a new epoch, so old ids are detected as another
    /// epoch's.
    ///
    /// A Hub written before the summary existed has only `epoch` and `next_seq`: its summary is
    /// computed once from the log's rows and stored.
    pub(crate) fn load_meta(&self, now_ms: u64) -> worker::Result<Meta> {
        let summary = match self.meta(LOG)? {
            Some(json) => serde_json::from_str(&json).map_err(internal)?,
            None => {
                let summary = match self.meta(EPOCH)? {
                    None => LogSummary::new(now_ms),
                    Some(epoch) => {
                        let epoch = epoch.parse().map_err(internal)?;
                        let next_seq = match self.meta(NEXT_SEQ)? {
                            Some(text) => text.parse().map_err(internal)?,
                            None => 1,
                        };
                        self.summarize(epoch, next_seq)?
                    }
                };
                self.set_summary(&summary)?;
                summary
            }
        };
        for table in LOG_TABLES {
            self.sql.exec(
                &format!("DELETE FROM {table} WHERE seq < ? OR seq >= ?"),
                vec![seq_value(summary.oldest_seq)?, seq_value(summary.next_seq)?],
            )?;
        }
        Ok(Meta {
            summary,
            complete: self.meta(COMPLETE)?.as_deref() == Some("true"),
            plan_json: self.meta(PLAN)?,
            name: self.meta(NAME)?,
        })
    }

    fn summarize(&self, epoch: u64, next_seq: u64) -> worker::Result<LogSummary> {
        let mut summary = LogSummary {
            epoch,
            next_seq,
            oldest_seq: next_seq,
            events: 0,
            bytes: 0,
        };
        for (index, row) in self.oldest_sizes().enumerate() {
            let (seq, bytes) = row?;
            if index == 0 {
                summary.oldest_seq = seq;
            }
            summary.events += 1;
            summary.bytes += bytes;
        }
        Ok(summary)
    }

    /// `(seq, frame bytes)` of the stored entries, oldest first, read lazily: a caller that stops
    /// early reads no further rows.
    fn oldest_sizes(&self) -> impl Iterator<Item = worker::Result<(u64, usize)>> {
        let rows = self
            .sql
            .exec(
                "SELECT seq, length(frame) FROM herald_log ORDER BY seq",
                None,
            )
            .map(|cursor| cursor.raw());
        let (rows, error) = match rows {
            Ok(rows) => (Some(rows), None),
            Err(error) => (None, Some(Err(error))),
        };
        error
            .into_iter()
            .chain(rows.into_iter().flatten().map(|row| {
                let mut values = row?.into_iter();
                match (values.next(), values.next()) {
                    (
                        Some(SqlStorageValue::Integer(seq)),
                        Some(SqlStorageValue::Integer(bytes)),
                    ) => Ok((seq as u64, bytes as usize)),
                    _ => Err(internal("herald_log size row has an unexpected shape")),
                }
            }))
    }

    /// The sizes [`herald_core::Hub::commit`] asks for; a storage error ends the sequence early
    /// (the Hub then evicts from the batch itself, never more than it must).
    pub(crate) fn oldest_sizes_lossy(&self) -> impl Iterator<Item = (u64, usize)> {
        self.oldest_sizes().map_while(Result::ok)
    }

    /// Every stored entry, oldest first: what a replay needs.
    pub(crate) fn entries(&self) -> worker::Result<Vec<LogEntry>> {
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
        Ok(entries)
    }

    /// Deletes the rows the log evicted (through `seq`), and their events' fingerprints.
    pub(crate) fn delete_through(&self, seq: u64) -> worker::Result<()> {
        for table in LOG_TABLES {
            self.sql.exec(
                &format!("DELETE FROM {table} WHERE seq <= ?"),
                vec![seq_value(seq)?],
            )?;
        }
        Ok(())
    }

    /// The latest state the stream remembers for the ingested job `external_id`.
    pub(crate) fn job_state(&self, external_id: &str) -> worker::Result<Option<String>> {
        let rows = self.sql.exec(
            "SELECT state FROM herald_sluice_jobs WHERE external_id = ?",
            vec![external_id.into()],
        )?;
        for row in rows.raw() {
            if let Some(SqlStorageValue::String(state)) = row?.into_iter().next() {
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// Whether an ingested event with this fingerprint is still in the log.
    pub(crate) fn seen(&self, fingerprint: &str) -> worker::Result<bool> {
        let rows = self.sql.exec(
            "SELECT seq FROM herald_seen WHERE fingerprint = ?",
            vec![fingerprint.into()],
        )?;
        match rows.raw().next() {
            Some(row) => row.map(|_| true),
            None => Ok(false),
        }
    }

    /// Appends a batch of entries, then stores the log's new summary (and the completion, for a
    /// batch that `completes` the stream) in one statement, then trims the rows it evicted.
    ///
    /// `ingested` is what ingested events leave beside their rows (by `seq`), written with them.
    ///
    /// `producer` is an idempotent producer's state as a meta row (see producer_gate.rs), written
    /// in the summary's statement: stored exactly when the batch is.
    ///
    /// `fail_after_rows` is a test hook (`HERALD_TEST_FAIL_STORAGE`): the append fails after
    /// writing its rows, before the summary, as storage failing midway would.
    pub(crate) fn append(
        &self,
        entries: &[LogEntry],
        ingested: &[(u64, Ingested<'_>)],
        summary: &LogSummary,
        (evicted, completes): (Evicted, bool),
        fail_after_rows: bool,
        producer: Option<(String, String)>,
    ) -> worker::Result<()> {
        for entry in entries {
            self.sql.exec(
                "INSERT INTO herald_log (seq, name, category, frame) VALUES (?, ?, ?, ?)",
                vec![
                    seq_value(entry.seq)?,
                    entry.name.as_str().into(),
                    entry.category.clone().into(),
                    SqlStorageValue::Blob(entry.frame.to_vec()),
                ],
            )?;
        }
        for (seq, ingested) in ingested {
            self.sql.exec(
                "INSERT INTO herald_seen (fingerprint, seq) VALUES (?, ?)",
                vec![ingested.fingerprint.into(), seq_value(*seq)?],
            )?;
            if let Some((external_id, state)) = ingested.job {
                self.sql.exec(
                    "INSERT INTO herald_sluice_jobs (external_id, state, seq) VALUES (?, ?, ?) \
                     ON CONFLICT(external_id) DO UPDATE SET state = excluded.state, seq = excluded.seq",
                    vec![external_id.into(), state.into(), seq_value(*seq)?],
                )?;
            }
        }
        if fail_after_rows {
            return Err(internal(
                "storage failed (injected by HERALD_TEST_FAIL_STORAGE)",
            ));
        }
        self.commit_summary(summary, completes, producer)?;
        if let Some(through) = evicted.through_seq {
            self.delete_through(through)?;
        }
        Ok(())
    }
}

/// A sequence number as SQLite's integer (sequence numbers count from 1 and never reach 2^63).
fn seq_value(seq: u64) -> worker::Result<SqlStorageValue> {
    i64::try_from(seq)
        .map(SqlStorageValue::Integer)
        .map_err(|_| internal(format!("sequence number {seq} is past SQLite's integers")))
}
