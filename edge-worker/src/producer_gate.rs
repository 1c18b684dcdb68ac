//! Idempotent producers on Herald's own publish routes (`POST /v1/streams/{id}/events`,
//! `POST /runner-jobs/{jobId}/events`): the Durable Streams headers `Producer-Id`, `Producer-Epoch`
//! and `Producer-Seq` (PROTOCOL.md §5.2.1), decided by herald-core's [`check_producer`].
//!
//! The Hub keeps each producer's state in its SQLite storage and writes it in the same synchronous
//! step as the batch's rows (no `await` in between, which the runtime commits atomically), so a
//! publish retried across a crash or restart is stored once.

use herald_core::durable::{check_producer, ProducerHeaders, ProducerState, ProducerVerdict};
use worker::{Headers, Request, Response, SqlStorage, SqlStorageValue, State};

use crate::error::{ApiError, ApiResult};

/// The producer headers a publish request may carry (forwarded by the Worker to the Hub).
pub(crate) const PRODUCER_HEADERS: [&str; 3] = ["producer-id", "producer-epoch", "producer-seq"];

/// Reads and validates the producer headers (`400` when only some are sent or one is malformed).
pub(crate) fn producer_of(request: &Request) -> ApiResult<Option<ProducerHeaders>> {
    let headers = request.headers();
    let [id, epoch, seq] = PRODUCER_HEADERS.map(|name| headers.get(name).ok().flatten());
    ProducerHeaders::from_headers(id.as_deref(), epoch.as_deref(), seq.as_deref())
        .map_err(|e| ApiError::bad_request("invalid_producer", e))
}

/// What to do with a producer's publish.
#[derive(Debug)]
pub(crate) enum Gate {
    /// Store the batch, then this state.
    Store(ProducerState),
    /// Answer this instead (a duplicate's `204`, or a refusal).
    Answer(Response),
}

/// Each producer's state in one Hub.
#[derive(Debug, Clone)]
pub(crate) struct ProducerTable {
    sql: SqlStorage,
}

fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

fn answer(status: u16, code: &str, message: &str, headers: &[(&str, u64)]) -> ApiResult<Response> {
    let all = Headers::new();
    for (name, value) in headers {
        all.set(name, &value.to_string())?;
    }
    let response = if status == 204 {
        Response::empty()?
    } else {
        all.set("content-type", "application/json")?;
        Response::ok(serde_json::json!({ "error": code, "message": message }).to_string())?
    };
    Ok(response.with_status(status).with_headers(all))
}

impl ProducerTable {
    pub(crate) fn open(state: &State) -> worker::Result<ProducerTable> {
        let sql = state.storage().sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS herald_producers (id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, last_seq INTEGER NOT NULL)",
            None,
        )?;
        Ok(ProducerTable { sql })
    }

    fn get(&self, id: &str) -> worker::Result<Option<ProducerState>> {
        let rows = self.sql.exec(
            "SELECT epoch, last_seq FROM herald_producers WHERE id = ?",
            vec![id.into()],
        )?;
        for row in rows.raw() {
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

    /// Stores a producer's new state; call it in the same synchronous step as the batch's rows.
    pub(crate) fn set(&self, id: &str, state: ProducerState) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO herald_producers (id, epoch, last_seq) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, last_seq = excluded.last_seq",
            vec![id.into(), int(state.epoch), int(state.last_seq)],
        )?;
        Ok(())
    }

    /// Decides a producer's publish: store it, or answer as §5.2.1 says (`204` duplicate, `403`
    /// stale epoch, `400` new epoch not at seq 0, `409` sequence gap).
    pub(crate) fn check(&self, producer: &ProducerHeaders) -> ApiResult<Gate> {
        let verdict = check_producer(self.get(&producer.id)?, producer.epoch, producer.seq);
        Ok(match verdict {
            ProducerVerdict::Accept { next } => Gate::Store(next),
            ProducerVerdict::Duplicate { current } => Gate::Answer(answer(
                204,
                "",
                "",
                &[
                    ("producer-epoch", current.epoch),
                    ("producer-seq", current.last_seq),
                ],
            )?),
            ProducerVerdict::StaleEpoch { current_epoch } => Gate::Answer(answer(
                403,
                "stale_producer_epoch",
                "a newer epoch of this producer has published",
                &[("producer-epoch", current_epoch)],
            )?),
            ProducerVerdict::NewEpochNotAtZero => Gate::Answer(answer(
                400,
                "invalid_producer",
                "a new producer epoch starts at Producer-Seq 0",
                &[],
            )?),
            ProducerVerdict::Gap { expected, received } => Gate::Answer(answer(
                409,
                "producer_sequence_gap",
                "Producer-Seq skips ahead",
                &[
                    ("producer-expected-seq", expected),
                    ("producer-received-seq", received),
                ],
            )?),
        })
    }
}
