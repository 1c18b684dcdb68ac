//! Idempotent producers on Herald's own publish routes (`POST /v1/streams/{id}/events`,
//! `POST /runner-jobs/{jobId}/events`): the Durable Streams headers `Producer-Id`, `Producer-Epoch`
//! and `Producer-Seq` (PROTOCOL.md §5.2.1), decided by herald-core's [`check_producer`].
//!
//! The Hub keeps each producer's state as a meta row (`producer:<id>`, `<epoch> <last seq>`) that
//! is written in the same SQL statement as the log's summary, the batch's commit point
//! (storage.rs): the state is stored exactly when the batch is, so a publish retried across a crash
//! or restart is stored once.

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
        Ok(ProducerTable {
            sql: state.storage().sql(),
        })
    }

    fn key(id: &str) -> String {
        format!("producer:{id}")
    }

    fn get(&self, id: &str) -> worker::Result<Option<ProducerState>> {
        // The Hub's store made the meta table before any publish reaches here.
        let rows = self.sql.exec(
            "SELECT value FROM herald_meta WHERE key = ?",
            vec![Self::key(id).into()],
        )?;
        for row in rows.raw() {
            if let Some(SqlStorageValue::String(value)) = row?.into_iter().next() {
                let mut numbers = value.split(' ').map(str::parse::<u64>);
                if let (Some(Ok(epoch)), Some(Ok(last_seq))) = (numbers.next(), numbers.next()) {
                    return Ok(Some(ProducerState { epoch, last_seq }));
                }
            }
        }
        Ok(None)
    }

    /// A producer's new state as the meta row that the batch's commit writes (`Store::append`).
    pub(crate) fn row(id: &str, state: ProducerState) -> (String, String) {
        (Self::key(id), format!("{} {}", state.epoch, state.last_seq))
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
