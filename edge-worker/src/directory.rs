//! The stream directory: one Durable Object per tenant, which lists the tenant's streams for
//! `GET /v1/streams`. Hubs report to it (at most once per `HERALD_DIRECTORY_REPORT_MS` each; the
//! rule is herald-core's [`directory::Reporter`]), and it keeps one row per stream in SQLite, at
//! most `HERALD_DIRECTORY_ENTRIES_MAX` of them. It is named from the tenant alone, so a tenant's
//! requests never reach another's directory.

use herald_core::auth::parse_hub_name;
use herald_core::directory::{self, Entry, ListQuery};
use herald_core::{ConnectionId, TenantId};
use worker::{
    console_error, durable_object, DurableObject, Env, Method, Request, RequestInit, Response,
    SqlStorage, SqlStorageValue, State,
};

use crate::body::read_capped;
use crate::config::Config;
use crate::error::{ApiError, ApiResult};
use crate::route_table::Family;
use crate::stream::now_ms;

/// The directory's internal origin; only a stub reaches it.
const ORIGIN: &str = "https://directory.herald.internal";
/// The largest report or list query the directory reads (a query names at most the streams a
/// token may list; a report is one entry).
const CALL_BYTES_MAX: usize = 256 * 1024;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS herald_streams (
  connection_id TEXT PRIMARY KEY,
  entry TEXT NOT NULL,
  last_event_ms INTEGER,
  reported_ms INTEGER NOT NULL
);";

/// The stub of `tenant`'s directory.
fn stub(env: &Env, tenant: &TenantId) -> worker::Result<worker::Stub> {
    env.durable_object("DIRECTORY")?
        .id_from_name(tenant.as_str())?
        .get_stub()
}

/// Sends `entry` to `tenant`'s directory (a hub's report).
pub(crate) async fn report(env: &Env, tenant: &TenantId, entry: &Entry) -> worker::Result<()> {
    let body = serde_json::to_string(entry).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request = Request::new_with_init(&format!("{ORIGIN}/report"), &init)?;
    let answer = stub(env, tenant)?.fetch_with_request(request).await?;
    if answer.status_code() != 204 {
        return Err(worker::Error::RustError(format!(
            "the directory answered {}",
            answer.status_code()
        )));
    }
    Ok(())
}

/// `tenant`'s listing for `query`, as the directory answers it (JSON).
pub(crate) async fn list(env: &Env, tenant: &TenantId, query: &ListQuery) -> ApiResult<Response> {
    let body = serde_json::to_string(query).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request = Request::new_with_init(&format!("{ORIGIN}/list"), &init)?;
    Ok(stub(env, tenant)?.fetch_with_request(request).await?)
}

#[durable_object]
pub struct Directory {
    state: State,
    env: Env,
}

impl core::fmt::Debug for Directory {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Directory").finish_non_exhaustive()
    }
}

impl DurableObject for Directory {
    fn new(state: State, env: Env) -> Self {
        Directory { state, env }
    }

    async fn fetch(&self, mut request: Request) -> worker::Result<Response> {
        match self.serve(&mut request).await {
            Ok(response) => Ok(response),
            Err(error) => error.into_response(),
        }
    }
}

fn bad(message: impl core::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_directory_call", message)
}

impl Directory {
    async fn serve(&self, request: &mut Request) -> ApiResult<Response> {
        let config = Config::get(&self.env)?;
        if request.method() != Method::Post {
            return Err(ApiError::MethodNotAllowed { allow: "POST" });
        }
        let path = request.path();
        let body = read_capped(request, CALL_BYTES_MAX).await?;
        let sql = self.state.storage().sql();
        sql.exec(SCHEMA, None)?;
        match path.as_str() {
            "/report" => {
                let entry: Entry = serde_json::from_slice(&body).map_err(bad)?;
                self.store(&sql, entry, config.directory_entries_max)?;
                Ok(Response::empty()?.with_status(204))
            }
            "/list" => {
                let query: ListQuery = serde_json::from_slice(&body).map_err(bad)?;
                let entries = directory::listing(self.entries(&sql, &query)?, &query);
                Ok(Response::from_json(&serde_json::json!({
                    "streams": entries,
                    "reportMs": config.directory_report_ms,
                }))?)
            }
            _ => Err(ApiError::NotFound),
        }
    }

    /// Merges a report into the stream's row (a new row for a new stream), then drops the rows
    /// reported longest ago past `entries_max`.
    fn store(&self, sql: &SqlStorage, report: Entry, entries_max: usize) -> ApiResult<()> {
        let stored = read_entries(
            sql,
            "SELECT entry FROM herald_streams WHERE connection_id = ?",
            vec![report.connection_id.as_str().into()],
        )?
        .into_iter()
        .next();
        let entry = stored
            .unwrap_or_else(|| Entry::new(report.connection_id.clone()))
            .merge(report, now_ms());
        let json = serde_json::to_string(&entry).map_err(|e| ApiError::Internal(e.to_string()))?;
        let last_event_ms = entry
            .last_event_ms
            .map_or(SqlStorageValue::Null, |ms| sql_integer(ms as u128));
        sql.exec(
            "INSERT INTO herald_streams (connection_id, entry, last_event_ms, reported_ms) \
             VALUES (?, ?, ?, ?) ON CONFLICT(connection_id) DO UPDATE SET entry = excluded.entry, \
             last_event_ms = excluded.last_event_ms, reported_ms = excluded.reported_ms",
            vec![
                entry.connection_id.as_str().into(),
                json.into(),
                last_event_ms,
                sql_integer(entry.reported_ms as u128),
            ],
        )?;
        sql.exec(
            "DELETE FROM herald_streams WHERE connection_id NOT IN \
             (SELECT connection_id FROM herald_streams ORDER BY reported_ms DESC LIMIT ?)",
            vec![sql_integer(entries_max as u128)],
        )?;
        Ok(())
    }

    /// The rows `query` may list: the newest `limit` of them, or the named ones.
    fn entries(&self, sql: &SqlStorage, query: &ListQuery) -> ApiResult<Vec<Entry>> {
        match &query.only {
            None => read_entries(
                sql,
                "SELECT entry FROM herald_streams \
                 ORDER BY last_event_ms IS NULL, last_event_ms DESC, connection_id LIMIT ?",
                vec![sql_integer(query.limit as u128)],
            ),
            Some(only) => {
                let mut entries = Vec::with_capacity(only.len());
                for id in only {
                    entries.extend(read_entries(
                        sql,
                        "SELECT entry FROM herald_streams WHERE connection_id = ?",
                        vec![id.as_str().into()],
                    )?);
                }
                Ok(entries)
            }
        }
    }
}

/// A count or a time as an SQLite integer (saturating: none of these comes near `i64::MAX`).
fn sql_integer(value: u128) -> SqlStorageValue {
    SqlStorageValue::Integer(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The entries a query's rows hold; a row that does not read back is logged and skipped.
fn read_entries(
    sql: &SqlStorage,
    query: &str,
    bindings: Vec<SqlStorageValue>,
) -> ApiResult<Vec<Entry>> {
    let mut entries = Vec::new();
    for row in sql.exec(query, bindings)?.raw() {
        if let Some(SqlStorageValue::String(json)) = row?.into_iter().next() {
            match serde_json::from_str(&json) {
                Ok(entry) => entries.push(entry),
                Err(error) => console_error!("directory row unreadable, skipped: {error}"),
            }
        }
    }
    Ok(entries)
}

/// What a hub does about its directory entry now.
#[derive(Debug)]
pub(crate) enum HubAction {
    /// Send this entry to this tenant's directory.
    Send { tenant: TenantId, entry: Entry },
    /// Set the alarm for this time (Unix ms) and decide again then.
    Alarm(u64),
    /// Nothing to do.
    Nothing,
}

/// A hub's side of its directory entry: who it is (learnt from the calls it receives), what it
/// knows beyond its log (the family last subscribed through, its last event's time), and when it
/// last reported (herald-core's [`directory::Reporter`]). It lives in memory; a woken hub reports
/// at its first change.
#[derive(Debug)]
pub(crate) struct HubReport {
    reporter: directory::Reporter,
    tenant: Option<TenantId>,
    connection_id: Option<ConnectionId>,
    family: Option<Family>,
    last_event_ms: Option<u64>,
}

impl HubReport {
    pub(crate) fn new(interval_ms: u64) -> HubReport {
        HubReport {
            reporter: directory::Reporter::new(interval_ms),
            tenant: None,
            connection_id: None,
            family: None,
            last_event_ms: None,
        }
    }

    /// Learns the hub's tenant and connection id from its name (`tenant/connection`), which every
    /// call from the Worker carries.
    pub(crate) fn learn_name(&mut self, hub_name: &str) {
        if self.tenant.is_some() {
            return;
        }
        if let Some((tenant, connection)) = parse_hub_name(hub_name) {
            self.tenant = Some(tenant);
            self.connection_id = Some(connection);
        }
    }

    pub(crate) fn saw_subscribe(&mut self, family: Family) {
        self.family = Some(family);
    }

    pub(crate) fn saw_publish(&mut self, now_ms: u64) {
        self.last_event_ms = Some(now_ms);
    }

    /// The alarm rang: any report that waited for it is decided again.
    pub(crate) fn alarm_rang(&mut self) {
        self.reporter.alarm_rang();
    }

    /// Whether a report waits for the alarm (see [`directory::Reporter::alarm_pending`]).
    pub(crate) fn alarm_pending(&self, now_ms: u64) -> bool {
        self.reporter.alarm_pending(now_ms)
    }

    /// When a waiting report wants the alarm, if one does.
    pub(crate) fn pending_at_ms(&self) -> Option<u64> {
        self.reporter.alarm_at_ms()
    }

    /// What to do, given the hub's state at `now_ms`. A hub that does not know its name yet (no
    /// call from the Worker since it woke) reports nothing.
    pub(crate) fn next(
        &mut self,
        subscribers: usize,
        last_event_id: Option<String>,
        complete: bool,
        now_ms: u64,
    ) -> HubAction {
        let (Some(tenant), Some(connection_id)) = (&self.tenant, &self.connection_id) else {
            return HubAction::Nothing;
        };
        let entry = Entry {
            connection_id: connection_id.as_str().to_owned(),
            family: self.family.map(|family| family.name().to_owned()),
            last_event_id,
            last_event_ms: self.last_event_ms,
            subscribers: subscribers as u64,
            complete,
            reported_ms: 0,
        };
        match self.reporter.next(&entry, now_ms) {
            directory::Report::Send => HubAction::Send {
                tenant: tenant.clone(),
                entry,
            },
            directory::Report::At(at_ms) => HubAction::Alarm(at_ms),
            directory::Report::Nothing => HubAction::Nothing,
        }
    }
}
