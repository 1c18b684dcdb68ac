//! The public routes: match the path, authenticate, validate what can be validated before a stream
//! opens, and forward to the Hub named by (tenant, connection id).

use herald_core::{
    hub_name, mint, verify_with, Claims, ConnectionId, Filter, HeartbeatPolicy, HeartbeatProfile,
    RelaySettings, Scope, TenantId, TokenKind, VerifyOptions, Vocabulary,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use worker::{console_error, Date, Env, Headers, Method, Request, RequestInit, Response, Url};

use crate::body::{read_capped, refuse_declared_over, SMALL_BODY_BYTES_MAX};
use crate::call::HubCall;
use crate::config::Config;
use crate::cors;
use crate::error::{ApiError, ApiResult};
pub(crate) use crate::route_table::Family;
use crate::route_table::{self, Endpoint, Matched};
use crate::stream::{sse_headers, RelayBounds, RelayStream};

/// The connection id of a tenant's SQLMesh stream (`/api/events` and the `/api/plan` routes).
pub(crate) const SQLMESH_CONNECTION: &str = "default";

impl Family {
    /// The heartbeat this family's clients expect.
    pub(crate) fn heartbeat_profile(self) -> HeartbeatProfile {
        match self {
            Family::SqlMesh => HeartbeatProfile::SqlMeshPing,
            Family::Sluice => HeartbeatProfile::SluiceHeartbeat,
            Family::Generic | Family::RunnerJob => HeartbeatProfile::Comment,
        }
    }

    /// The filter vocabulary of this family's streams.
    pub(crate) fn vocabulary(self, config: &Config) -> Vocabulary {
        match self {
            Family::Sluice => Vocabulary::sluice(),
            _ => Vocabulary::custom(None, Some(config.categories)),
        }
    }
}

/// What a request asks for, once its path and method are known.
#[derive(Debug)]
enum Route {
    Health,
    Ticket,
    Subscribe { connection: String, family: Family },
    Publish { connection: String },
    Stats { connection: String },
    Disconnect { connection: String },
    PlanOpen,
    PlanApply,
    PlanStage,
    PlanCancel,
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
        Endpoint::Subscribe(family) => {
            let connection = match family {
                Family::SqlMesh => SQLMESH_CONNECTION.into(),
                Family::Sluice => query_value(url, "connectionId").ok_or_else(|| {
                    ApiError::bad_request(
                        "missing_connection_id",
                        "the connectionId query parameter is required",
                    )
                })?,
                Family::Generic | Family::RunnerJob => param,
            };
            Route::Subscribe { connection, family }
        }
        Endpoint::Publish => Route::Publish { connection: param },
        Endpoint::Stats => Route::Stats { connection: param },
        Endpoint::Disconnect => Route::Disconnect { connection: param },
        Endpoint::PlanOpen => Route::PlanOpen,
        Endpoint::PlanApply => Route::PlanApply,
        Endpoint::PlanStage => Route::PlanStage,
        Endpoint::PlanCancel => Route::PlanCancel,
    })
}

fn query_value(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
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
            Route::Publish { .. } | Route::PlanOpen | Route::PlanApply | Route::PlanStage => {
                Some(config.publish.batch_bytes_max)
            }
            Route::Ticket | Route::PlanCancel => Some(SMALL_BODY_BYTES_MAX),
            Route::Health
            | Route::Subscribe { .. }
            | Route::Stats { .. }
            | Route::Disconnect { .. } => None,
        }
    }
}

async fn dispatch(mut request: Request, env: &Env, config: &Config) -> ApiResult<Response> {
    let url = request.url()?;
    // Long-lived credentials never belong in a URL (logs, history, Referer): refused on every route,
    // whatever else the request carries, so that a client that sends one learns at once.
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
    let now_s = Date::now().as_millis() / 1000;
    match route {
        Route::Ticket => {
            let claims = bearer_claims(&request, key, now_s, &config.verify)?;
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
        Route::Subscribe { connection, family } => {
            let connection = connection_id(&connection)?;
            let claims = subscriber_claims(&request, &url, key, now_s, &config.verify)?;
            let tenant = permit(&claims, Scope::Subscribe, &connection)?;
            // Validate the filter and heartbeat here so that a bad value is a 400 before any stream opens.
            let filter = Filter::from_query(url.query().unwrap_or(""), &family.vocabulary(config))
                .map_err(|e| ApiError::bad_request("invalid_filter", e))?;
            let profile = HeartbeatProfile::requested(
                query_value(&url, "heartbeat").as_deref(),
                family.heartbeat_profile(),
            )
            .map_err(|e| ApiError::bad_request("invalid_heartbeat", e))?;
            // An empty value means "no id yet", as an empty Last-Event-ID header does (a page that builds
            // `?lastEventId=${lastId}` before it has seen an event sends one).
            let last_event_id = request
                .headers()
                .get("last-event-id")?
                .or_else(|| query_value(&url, "lastEventId"))
                .or_else(|| query_value(&url, "last_event_id"))
                .filter(|id| !id.is_empty());
            let call = HubCall::Subscribe {
                filter,
                last_event_id,
                credential: credential_id(&request, &url)?,
            };
            let settings = RelaySettings {
                outbox: config.outbox,
                heartbeat: HeartbeatPolicy::new(profile, config.heartbeat_ms),
                retry_ms: config.retry_ms,
                max_age_ms: config.stream_max_age_s.saturating_mul(1000),
            };
            relay(env, config, &tenant, &connection, &call, settings, &request).await
        }
        // The rest take a Bearer token and go to one hub operation each. The SQLMesh plan routes act
        // on the tenant's SQLMesh hub and need the publish scope.
        other => {
            let sqlmesh = || String::from(SQLMESH_CONNECTION);
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
                Route::Health | Route::Ticket | Route::Subscribe { .. } => {
                    return Err(ApiError::Internal("route answered twice".into()))
                }
            };
            let bearer = Bearer { key, now_s, scope };
            forward_bearer(request, env, bearer, &connection, call, body_bytes_max).await
        }
    }
}

/// What a Bearer-authenticated route checks its token with.
#[derive(Debug, Clone, Copy)]
struct Bearer<'a> {
    key: &'a [u8],
    now_s: u64,
    scope: Scope,
}

/// Authenticates a Bearer token for its scope on `connection` and forwards the request (its method
/// and body, read under `body_bytes_max`; the Hub validates the body) to that hub's `op`.
async fn forward_bearer(
    mut request: Request,
    env: &Env,
    bearer: Bearer<'_>,
    connection: &str,
    call: HubCall,
    body_bytes_max: Option<usize>,
) -> ApiResult<Response> {
    let connection = connection_id(connection)?;
    let options = &Config::get(env)?.verify;
    let tenant = permit(
        &bearer_claims(&request, bearer.key, bearer.now_s, options)?,
        bearer.scope,
        &connection,
    )?;
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
    forward(env, &tenant, &connection, &call, headers, body).await
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

pub(crate) fn publish_error(error: herald_core::PublishError) -> ApiError {
    if error.is_too_large() {
        ApiError::TooLarge(error.to_string())
    } else if matches!(error, herald_core::PublishError::Malformed { .. }) {
        ApiError::bad_request("malformed_json", error)
    } else {
        ApiError::bad_request("invalid_event", error)
    }
}

fn connection_id(text: &str) -> ApiResult<ConnectionId> {
    ConnectionId::new(text).map_err(|e| ApiError::bad_request("invalid_connection_id", e))
}

/// Bearer access tokens only: the header is where long-lived credentials belong.
pub(crate) fn bearer_claims(
    request: &Request,
    key: &[u8],
    now_s: u64,
    options: &VerifyOptions,
) -> ApiResult<Claims> {
    let header = request.headers().get("authorization")?;
    let Some(header) = header else {
        return Err(ApiError::Unauthorized(
            "missing Authorization: Bearer <token>".into(),
        ));
    };
    // RFC 7235 §2.1: `credentials = auth-scheme [ 1*SP ( token68 / ... ) ]`, and "It uses a
    // case-insensitive token as a means to identify the authentication scheme".
    let token = header
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim_start_matches(' '))
        .ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be Bearer <token>".into())
        })?;
    let claims = verify_with(token, key, now_s, options)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    if claims.kind != TokenKind::Access {
        return Err(ApiError::Unauthorized(
            "a ticket is not an access token: use it as ?ticket=".into(),
        ));
    }
    Ok(claims)
}

/// Subscribers may also present a ticket in the URL (EventSource cannot set headers); an access
/// token in the URL is refused before (`dispatch`) so that broad credentials never land in logs or
/// history.
pub(crate) fn subscriber_claims(
    request: &Request,
    url: &Url,
    key: &[u8],
    now_s: u64,
    options: &VerifyOptions,
) -> ApiResult<Claims> {
    if request.headers().has("authorization")? {
        return bearer_claims(request, key, now_s, options);
    }
    let Some(ticket) = query_value(url, "ticket") else {
        return Err(ApiError::Unauthorized(
            "missing Authorization: Bearer <token> or ?ticket=".into(),
        ));
    };
    let claims = verify_with(&ticket, key, now_s, options)
        .map_err(|e| ApiError::Unauthorized(e.to_string()))?;
    if claims.kind != TokenKind::Ticket {
        return Err(ApiError::Unauthorized(
            "?ticket= takes a ticket from POST /v1/tickets".into(),
        ));
    }
    Ok(claims)
}

/// The id of the credential a subscriber came with (its Bearer token or its ticket): 128 bits of
/// its SHA-256, never the credential itself, as the tag the Hub keeps with the subscriber's socket.
/// A credential's text is canonical (HMAC-signed header and payload, a strictly decoded signature),
/// so one credential has one id.
fn credential_id(request: &Request, url: &Url) -> ApiResult<String> {
    let text = match request.headers().get("authorization")? {
        Some(header) => header
            .split_whitespace()
            .last()
            .map_or_else(String::new, String::from),
        None => query_value(url, "ticket").unwrap_or_default(),
    };
    let digest = Sha256::digest(text.as_bytes());
    let mut id = String::from("c:");
    for byte in digest.iter().take(16) {
        id.push_str(&format!("{byte:02x}"));
    }
    Ok(id)
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
