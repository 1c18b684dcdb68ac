//! The public routes: match the path, authenticate, validate what can be validated before a stream
//! opens, and forward to the Hub named by (tenant, connection id).

use herald_core::dashtam::user_stream;
use herald_core::directory::ListQuery;
use herald_core::heartbeat::{HeartbeatPolicy, HeartbeatProfile};
use herald_core::relay::RelaySettings;
use herald_core::resume::JoinPolicy;
use herald_core::sluice::{ingest_body_for, ingest_connections, parse_ingest};
use herald_core::{hub_name, mint, Claims, ConnectionId, Filter, Scope, TenantId, Vocabulary};
use serde::{Deserialize, Serialize};
use worker::{console_error, Env, Headers, Method, Request, RequestInit, Response, Url};

use crate::body::{read_capped, refuse_declared_over, SMALL_BODY_BYTES_MAX};
use crate::call::HubCall;
use crate::config::Config;
use crate::cors;
use crate::directory;
use crate::error::{ApiError, ApiResult};
pub(crate) use crate::route_table::Family;
use crate::route_table::{self, Endpoint, Matched};
use crate::session::{
    self, authenticate, query_value, sliding_renewal, with_cookie, Accepts, Check,
};
use crate::stream::{now_ms, sse_headers, RelayBounds, RelayStream};

/// The connection id of a tenant's SQLMesh stream (`/api/events` and the `/api/plan` routes).
pub(crate) const SQLMESH_CONNECTION: &str = "default";

impl Family {
    /// The heartbeat this family's clients expect.
    pub(crate) fn heartbeat_profile(self) -> HeartbeatProfile {
        match self {
            Family::SqlMesh => HeartbeatProfile::SqlMeshPing,
            Family::Sluice => HeartbeatProfile::SluiceHeartbeat,
            Family::Generic | Family::RunnerJob | Family::Dashtam => HeartbeatProfile::Comment,
        }
    }

    /// What a client that connects without a `Last-Event-ID` gets (herald-core's [`JoinPolicy`]
    /// says why): a runner job's output so far, then live; every other family, live only.
    pub(crate) fn join_policy(self) -> JoinPolicy {
        match self {
            Family::RunnerJob => JoinPolicy::FromOldest,
            Family::Generic | Family::SqlMesh | Family::Sluice | Family::Dashtam => {
                JoinPolicy::Live
            }
        }
    }

    /// The filter vocabulary of this family's streams; `categories` are the configured ones
    /// (`Config::category_names`).
    pub(crate) fn vocabulary<'a>(self, categories: &'a [&'a str]) -> Vocabulary<'a> {
        match self {
            Family::Sluice => Vocabulary::sluice(),
            _ => Vocabulary::custom(None, Some(categories)),
        }
    }
}

/// What a request asks for, once its path and method are known.
#[derive(Debug)]
enum Route {
    Health,
    Ticket,
    Session,
    PlanMeta,
    Directory,
    Subscribe { connection: String, family: Family },
    Publish { connection: String },
    Stats { connection: String },
    Disconnect { connection: String },
    PlanOpen,
    PlanApply,
    PlanStage,
    PlanRequest,
    PlanCancel,
    Ingest,
}

/// Matches the request against the route table and takes the connection id from where the route
/// keeps it (the path, the `connectionId` query parameter for sluice, or the tenant's SQLMesh hub).
fn route(method: &Method, path: &str, url: &Url) -> ApiResult<Route> {
    let (spec, param) = match route_table::find(method.as_ref(), path) {
        Matched::Route { spec, param } => (spec, param.unwrap_or_default().to_string()),
        Matched::WrongMethod { allow } => return Err(ApiError::MethodNotAllowed { allow }),
        Matched::NotFound => return Err(ApiError::NotFound),
    };
    Ok(match spec.endpoint {
        Endpoint::Health => Route::Health,
        Endpoint::Ticket => Route::Ticket,
        Endpoint::Session => Route::Session,
        Endpoint::PlanMeta => Route::PlanMeta,
        Endpoint::Directory => Route::Directory,
        Endpoint::Subscribe(family) => {
            let connection = match family {
                Family::SqlMesh => SQLMESH_CONNECTION.into(),
                Family::Sluice => query_value(url, "connectionId").ok_or_else(|| {
                    ApiError::bad_request(
                        "missing_connection_id",
                        "the connectionId query parameter is required",
                    )
                })?,
                // Dashtam's stream is the user's, named by the token (see `dispatch`).
                Family::Generic | Family::RunnerJob | Family::Dashtam => param,
            };
            Route::Subscribe { connection, family }
        }
        Endpoint::Publish => Route::Publish { connection: param },
        Endpoint::Stats => Route::Stats { connection: param },
        Endpoint::Disconnect => Route::Disconnect { connection: param },
        Endpoint::PlanOpen => Route::PlanOpen,
        Endpoint::PlanApply => Route::PlanApply,
        Endpoint::PlanStage => Route::PlanStage,
        Endpoint::PlanRequest => Route::PlanRequest,
        Endpoint::PlanCancel => Route::PlanCancel,
        Endpoint::Ingest => Route::Ingest,
    })
}

/// Entry point of the Worker: answers errors as JSON and adds CORS headers for allowed origins.
pub(crate) async fn handle(request: Request, env: Env) -> worker::Result<Response> {
    let config = match Config::get(&env) {
        Ok(config) => config,
        Err(error) => {
            if let ApiError::Internal(message) = &error {
                console_error!("configuration refused: {message}");
            }
            return cors::with_cors(error.into_response()?, None);
        }
    };
    let allowed = cors::allowed_origin(&request, config);
    if request.method() == Method::Options {
        if request.path().starts_with("/ds/") {
            return crate::ds_routes::preflight(allowed);
        }
        return cors::preflight(allowed);
    }
    let response = match dispatch(request, &env, config).await {
        Ok(response) => response,
        Err(error) => error.into_response()?,
    };
    cors::with_cors(response, allowed.as_ref())
}

impl Route {
    /// The most bytes this route's request body may have; `None` for routes whose body, if any, is
    /// never read.
    fn body_bytes_max(&self, config: &Config) -> Option<usize> {
        match self {
            Route::Publish { .. }
            | Route::PlanOpen
            | Route::PlanApply
            | Route::PlanStage
            | Route::Ingest => Some(config.publish.batch_bytes_max),
            Route::Ticket | Route::Session | Route::PlanCancel => Some(SMALL_BODY_BYTES_MAX),
            Route::Health
            | Route::Directory
            | Route::PlanMeta
            | Route::PlanRequest
            | Route::Subscribe { .. }
            | Route::Stats { .. }
            | Route::Disconnect { .. } => None,
        }
    }
}

async fn dispatch(mut request: Request, env: &Env, config: &Config) -> ApiResult<Response> {
    let url = request.url()?;
    // Long-lived credentials never belong in a URL (logs, history, Referer): refused on every
    // route, whatever else the request carries, so that a client that sends one learns at once.
    if query_value(&url, "token").is_some() || query_value(&url, "access_token").is_some() {
        return Err(ApiError::Unauthorized(
            "access tokens are not accepted in the URL: send Authorization: Bearer, or mint a ticket"
                .into(),
        ));
    }
    // Durable Streams: every URL under /ds/ is a stream (ds_routes.rs).
    if let Some(path) = url.path().strip_prefix("/ds/") {
        let path = path.to_string();
        return crate::ds_routes::handle(request, env, config, &path).await;
    }
    let route = route(&request.method(), url.path(), &url)?;
    let body_bytes_max = route.body_bytes_max(config);
    if let Some(limit) = body_bytes_max {
        refuse_declared_over(&request, limit)?;
    }
    if let Route::Health = route {
        return Ok(Response::from_json(&serde_json::json!({ "ok": true }))?);
    }
    let key = Config::token_key(env)?;
    let now_s = now_ms() / 1000;
    let check = Check { key, now_s, config };
    match route {
        Route::Session => session::create(&mut request, &url, check).await,
        Route::Ticket => {
            let claims = bearer_claims(&request, &url, check)?;
            let body = read_capped(&mut request, SMALL_BODY_BYTES_MAX).await?;
            let ask: TicketRequest = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request("malformed_json", e))?;
            let connection = connection_id(&ask.connection_id)?;
            // A ticket living longer than tokens may would be refused when used.
            let ttl_s = config.ticket_ttl_s.min(config.verify.lifetime_max_s);
            let ticket = claims
                .ticket_for(&connection, now_s, ttl_s)
                .map_err(|e| ApiError::Forbidden(e.to_string()))?;
            let expires_at = ticket.exp_s;
            let body = TicketResponse {
                ticket: mint(&ticket, key),
                connection_id: connection.as_str(),
                expires_at,
            };
            Ok(Response::from_json(&body)?)
        }
        Route::Directory => {
            // A Bearer token or the session cookie (a ticket is for one stream's EventSource).
            let accepts = Accepts {
                ticket: false,
                cookie: true,
            };
            let claims = authenticate(&request, &url, check, accepts)?.claims;
            if !claims.scopes.contains(Scope::Subscribe) {
                return Err(ApiError::Forbidden(
                    "listing streams needs the subscribe scope".into(),
                ));
            }
            let only = claims
                .streams
                .as_ref()
                .map(|streams| streams.iter().map(|id| id.as_str().to_owned()).collect());
            let query = ListQuery::new(query_value(&url, "limit").as_deref(), only)
                .map_err(|e| ApiError::bad_request("invalid_limit", e))?;
            directory::list(env, &claims.tenant, &query).await
        }
        Route::Subscribe { connection, family } => {
            let connection = match family {
                Family::Dashtam => None,
                _ => Some(connection_id(&connection)?),
            };
            let caller = authenticate(&request, &url, check, SUBSCRIBER)?;
            // Dashtam: the stream is the user's that the verified token names, never one the
            // request chooses, so one user's token cannot reach another's stream.
            let connection = match connection {
                Some(connection) => connection,
                None => {
                    user_stream(&caller.claims).map_err(|e| ApiError::Forbidden(e.to_string()))?
                }
            };
            let tenant = permit(&caller.claims, Scope::Subscribe, &connection)?;
            // Validate the filter and heartbeat here so that a bad value is a 400 before any stream
            // opens.
            let categories = config.category_names();
            let filter =
                Filter::from_query(url.query().unwrap_or(""), &family.vocabulary(&categories))
                    .map_err(|e| ApiError::bad_request("invalid_filter", e))?;
            let profile = HeartbeatProfile::requested(
                query_value(&url, "heartbeat").as_deref(),
                family.heartbeat_profile(),
            )
            .map_err(|e| ApiError::bad_request("invalid_heartbeat", e))?;
            // An empty value means "no id yet", as an empty Last-Event-ID header does (a page that
            // builds `?lastEventId=${lastId}` before it has seen an event sends one).
            let last_event_id = request
                .headers()
                .get("last-event-id")?
                .or_else(|| query_value(&url, "lastEventId"))
                .or_else(|| query_value(&url, "last_event_id"))
                // Dashtam's clients put it in the query under the header's name.
                .or_else(|| query_value(&url, "Last-Event-ID"))
                .filter(|id| !id.is_empty());
            // SQLMesh's stream only: which trackers a fresh subscriber gets first.
            let last_trackers = match query_value(&url, "trackers").as_deref() {
                _ if family != Family::SqlMesh => false,
                None | Some("current") => false,
                Some("last") => true,
                Some(other) => {
                    return Err(ApiError::bad_request(
                        "invalid_trackers",
                        format!(
                            "trackers {:?} is not one of: current, last",
                            other.chars().take(64).collect::<String>()
                        ),
                    ))
                }
            };
            let call = HubCall::Subscribe {
                filter,
                last_event_id,
                credential: caller.credential_id(),
                family,
                join: family.join_policy(),
                last_trackers,
            };
            let settings = RelaySettings {
                outbox: config.outbox,
                heartbeat: HeartbeatPolicy::new(profile, config.heartbeat_ms),
                retry_ms: config.retry_ms,
                max_age_ms: config.stream_max_age_s.saturating_mul(1000),
            };
            let renewal = sliding_renewal(&caller, &url, check);
            let response =
                relay(env, config, &tenant, &connection, &call, settings, &request).await?;
            with_cookie(response, renewal)
        }
        Route::Ingest => ingest(request, &url, env, check).await,
        // The rest take a Bearer token (SQLMesh's UI routes also the session cookie) and go to one
        // hub operation each. The SQLMesh plan routes act on the tenant's SQLMesh hub and need the
        // publish scope (`/api/meta` the subscribe scope).
        other => {
            let sqlmesh = || String::from(SQLMESH_CONNECTION);
            // SQLMesh's UI sends only its cookies, to these routes.
            let cookie = matches!(
                other,
                Route::PlanOpen | Route::PlanApply | Route::PlanCancel | Route::PlanMeta
            );
            let (connection, scope, call) = match other {
                Route::Publish { connection } => (connection, Scope::Publish, HubCall::Publish),
                Route::Stats { connection } => (connection, Scope::Subscribe, HubCall::Stats),
                Route::Disconnect { connection } => {
                    (connection, Scope::Publish, HubCall::Disconnect)
                }
                Route::PlanOpen => (sqlmesh(), Scope::Publish, HubCall::PlanOpen),
                Route::PlanApply => (sqlmesh(), Scope::Publish, HubCall::PlanApply),
                Route::PlanStage => (sqlmesh(), Scope::Publish, HubCall::PlanCommand),
                Route::PlanCancel => (sqlmesh(), Scope::Publish, HubCall::PlanCancel),
                Route::PlanMeta => (sqlmesh(), Scope::Subscribe, HubCall::PlanMeta),
                Route::PlanRequest => (sqlmesh(), Scope::Publish, HubCall::PlanRequest),
                Route::Health
                | Route::Ticket
                | Route::Session
                | Route::Directory
                | Route::Ingest
                | Route::Subscribe { .. } => {
                    return Err(ApiError::Internal("route answered twice".into()))
                }
            };
            let accepts = Accepts {
                ticket: false,
                cookie,
            };
            let connection = connection_id(&connection)?;
            let caller = authenticate(&request, &url, check, accepts)?;
            let tenant = permit(&caller.claims, scope, &connection)?;
            let renewal = sliding_renewal(&caller, &url, check);
            let response =
                forward_body(request, env, &tenant, &connection, call, body_bytes_max).await?;
            with_cookie(response, renewal)
        }
    }
}

/// sluice's `POST /api/ingest`: checks the whole batch and the token's publish scope on every
/// stream it names before anything is stored, then sends each stream's events to its hub, which
/// skips the ones it already holds (herald-core's ingest rules). Hubs are separate, so a batch that
/// spans streams is stored stream by stream: should one hub fail, the ones before it keep their
/// events, and the sender's retry stores only what is missing.
async fn ingest(
    mut request: Request,
    url: &Url,
    env: &Env,
    check: Check<'_>,
) -> ApiResult<Response> {
    let claims = bearer_claims(&request, url, check)?;
    let config = check.config;
    let body = read_capped(&mut request, config.publish.batch_bytes_max).await?;
    let events = parse_ingest(&body, &config.publish).map_err(ingest_error)?;
    let connections = ingest_connections(&events);
    for connection in &connections {
        permit(&claims, Scope::Publish, connection)?;
    }
    let mut totals = IngestAnswer::default();
    for connection in &connections {
        let body = ingest_body_for(connection, &events).into_bytes();
        let call = HubCall::Ingest;
        let mut answer = forward(
            env,
            &claims.tenant,
            connection,
            &call,
            Headers::new(),
            Some(body),
        )
        .await?;
        if answer.status_code() != 200 {
            return Ok(answer);
        }
        let stored: IngestAnswer = answer.json().await?;
        totals.ids.extend(stored.ids);
        totals.accepted += stored.accepted;
        totals.duplicates += stored.duplicates;
    }
    Ok(Response::from_json(&totals)?)
}

/// What `POST /api/ingest` answers (and each hub answers it): the ids of the events stored, how
/// many that is, and how many were skipped as already stored.
#[derive(Debug, Default, Serialize, Deserialize)]
struct IngestAnswer {
    ids: Vec<String>,
    accepted: usize,
    duplicates: usize,
}

pub(crate) fn ingest_error(error: herald_core::sluice::IngestError) -> ApiError {
    if error.is_too_large() {
        ApiError::TooLarge(error.to_string())
    } else {
        ApiError::bad_request("invalid_ingest", error)
    }
}

/// Subscribe routes take a Bearer token, a ticket or the session cookie.
const SUBSCRIBER: Accepts = Accepts {
    ticket: true,
    cookie: true,
};

/// Forwards an authenticated request (its body, read under `body_bytes_max`; the Hub validates
/// it) to the hub's `call`.
async fn forward_body(
    mut request: Request,
    env: &Env,
    tenant: &TenantId,
    connection: &ConnectionId,
    call: HubCall,
    body_bytes_max: Option<usize>,
) -> ApiResult<Response> {
    // A body the call does not use (plan cancel may carry one) is still read under its cap, so
    // that an oversized upload of unknown length is refused rather than ignored.
    let body = match body_bytes_max {
        Some(limit) => Some(read_capped(&mut request, limit).await?),
        None => None,
    };
    let body = body.filter(|_| call.has_body());
    // Idempotent producers: the headers are checked here (400 before the hub) and forwarded.
    let headers = Headers::new();
    if call == HubCall::Publish && crate::producer_gate::producer_of(&request)?.is_some() {
        for name in crate::producer_gate::PRODUCER_HEADERS {
            if let Some(value) = request.headers().get(name)? {
                headers.set(name, &value)?;
            }
        }
    }
    forward(env, tenant, connection, &call, headers, body).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TicketRequest {
    connection_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TicketResponse<'a> {
    ticket: String,
    connection_id: &'a str,
    expires_at: u64,
}

pub(crate) fn publish_error(error: herald_core::publish::PublishError) -> ApiError {
    if error.is_too_large() {
        ApiError::TooLarge(error.to_string())
    } else if matches!(error, herald_core::publish::PublishError::Malformed { .. }) {
        ApiError::bad_request("malformed_json", error)
    } else {
        ApiError::bad_request("invalid_event", error)
    }
}

fn connection_id(text: &str) -> ApiResult<ConnectionId> {
    ConnectionId::new(text).map_err(|e| ApiError::bad_request("invalid_connection_id", e))
}

/// Bearer access tokens only: the header is where long-lived credentials belong.
pub(crate) fn bearer_claims(request: &Request, url: &Url, check: Check<'_>) -> ApiResult<Claims> {
    let accepts = Accepts {
        ticket: false,
        cookie: false,
    };
    Ok(authenticate(request, url, check, accepts)?.claims)
}

fn permit(claims: &Claims, scope: Scope, connection: &ConnectionId) -> ApiResult<TenantId> {
    claims
        .permits(scope, connection)
        .map_err(|e| ApiError::Forbidden(e.to_string()))?;
    Ok(claims.tenant.clone())
}

/// Sends a call to the Hub of (tenant, connection). The Hub's name is derived from both, so no
/// tenant can address another's hub.
async fn forward(
    env: &Env,
    tenant: &TenantId,
    connection: &ConnectionId,
    call: &HubCall,
    headers: Headers,
    body: Option<Vec<u8>>,
) -> ApiResult<Response> {
    let name = hub_name(tenant, connection);
    let stub = env.durable_object("HUB")?.id_from_name(&name)?.get_stub()?;
    let mut init = RequestInit::new();
    init.with_method(call.method()).with_headers(headers);
    if let Some(body) = body {
        init.with_body(Some(js_sys::Uint8Array::from(body.as_slice()).into()));
    }
    let request = Request::new_with_init(call.url(&name)?.as_str(), &init)?;
    Ok(stub.fetch_with_request(request).await?)
}

/// Opens a subscription: the Hub answers with a WebSocket (or with a plain answer such as 204 for a
/// finished stream, 429, or an error, which goes back to the client as it is), and the Worker holds
/// the SSE response, relaying what the Hub sends.
async fn relay(
    env: &Env,
    config: &Config,
    tenant: &TenantId,
    connection: &ConnectionId,
    call: &HubCall,
    settings: RelaySettings,
    request: &Request,
) -> ApiResult<Response> {
    let headers = Headers::new();
    headers.set("upgrade", "websocket")?;
    let answer = forward(env, tenant, connection, call, headers, None).await?;
    if answer.status_code() != 101 {
        return Ok(answer);
    }
    let socket = answer
        .websocket()
        .ok_or_else(|| ApiError::Internal("the hub answered 101 without a socket".into()))?;
    let bounds = RelayBounds {
        drain_ms_max: config.drain_ms_max,
        isolate_queue_bytes_max: config.isolate_queue_bytes_max,
    };
    let stream = RelayStream::start(socket, settings, bounds, Some(request.inner().signal()))?;
    Ok(Response::from_stream(stream)?.with_headers(sse_headers()?))
}
