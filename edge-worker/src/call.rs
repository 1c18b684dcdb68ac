//! Typed calls from the Worker to a Hub: one enum, encoded into the Hub's internal URL and decoded
//! from it here, in one place. Nothing of the client's request reaches the Hub but what a call
//! names: never its raw query string (a ticket stays out of the Hub's URL and the runtime's logs).

use herald_core::resume::JoinPolicy;
use herald_core::Filter;
use worker::{Method, Url};

use crate::error::{ApiError, ApiResult};
use crate::route_table::Family;

/// The Hub's internal origin; only a stub can reach it.
const ORIGIN: &str = "https://hub.herald.internal";

/// The longest tag the runtime keeps with a hibernatable WebSocket.
const TAG_CHARS_MAX: usize = 256;

/// Everything the Worker asks of a Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HubCall {
    /// Open a subscriber socket (a WebSocket upgrade): the subscriber's filter (validated against
    /// its family's vocabulary by the Worker), resume point, and the id of the credential it came
    /// with (a hash, never the credential), which the Hub tags its socket with to bound the
    /// subscribers of one credential. Heartbeats are the relay's, so the Hub needs nothing else of
    /// the family.
    Subscribe {
        filter: Filter,
        last_event_id: Option<String>,
        credential: String,
        /// The family of the route subscribed through, for the stream directory.
        family: Family,
        join: JoinPolicy,
        /// A fresh SQLMesh subscriber's trackers include finished ones (`trackers=last`).
        last_trackers: bool,
    },
    /// Publish the request body (a publish batch).
    Publish,
    /// Ingest the request body (sluice ingest events of this hub's stream), skipping events it
    /// still holds (a retry).
    Ingest,
    /// Report the hub's counters.
    Stats,
    /// Close every subscriber socket; clients resume.
    Disconnect,
    /// SQLMesh `/api/plan`: open (or re-announce) a plan, overview only.
    PlanOpen,
    /// SQLMesh `/api/commands/apply`: open a plan that also applies.
    PlanApply,
    /// A runner's stage command (the body is a plan command).
    PlanCommand,
    /// SQLMesh `/api/plan/cancel`.
    PlanCancel,
    /// SQLMesh `/api/meta`: the version and whether a plan runs; re-emits the trackers.
    PlanMeta,
    /// The open plan's request, for the runner (`/api/plan/request`).
    PlanRequest,
}

impl HubCall {
    fn op(&self) -> &'static str {
        match self {
            HubCall::Subscribe { .. } => "subscribe",
            HubCall::Publish => "publish",
            HubCall::Ingest => "ingest",
            HubCall::Stats => "stats",
            HubCall::Disconnect => "disconnect",
            HubCall::PlanOpen => "plan/open",
            HubCall::PlanApply => "plan/apply",
            HubCall::PlanCommand => "plan/command",
            HubCall::PlanCancel => "plan/cancel",
            HubCall::PlanMeta => "plan/meta",
            HubCall::PlanRequest => "plan/request",
        }
    }

    /// The method the call is sent with.
    pub(crate) fn method(&self) -> Method {
        match self {
            HubCall::Subscribe { .. }
            | HubCall::Stats
            | HubCall::PlanMeta
            | HubCall::PlanRequest => Method::Get,
            _ => Method::Post,
        }
    }

    /// Whether the call only reads the hub (so its stream directory entry cannot change).
    pub(crate) fn reads_only(&self) -> bool {
        matches!(self, HubCall::Stats | HubCall::PlanRequest)
    }

    /// Whether the call carries the client's request body.
    pub(crate) fn has_body(&self) -> bool {
        matches!(
            self,
            HubCall::Publish
                | HubCall::Ingest
                | HubCall::PlanOpen
                | HubCall::PlanApply
                | HubCall::PlanCommand
        )
    }

    /// The Hub URL for this call on hub `name`.
    pub(crate) fn url(&self, name: &str) -> ApiResult<Url> {
        let mut url = Url::parse(&format!("{ORIGIN}/{}", self.op()))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("hub", name);
            if let HubCall::Subscribe {
                filter,
                last_event_id,
                credential,
                family,
                join,
                last_trackers,
            } = self
            {
                query.append_pair("credential", credential);
                query.append_pair("family", family.name());
                if *join == JoinPolicy::FromOldest {
                    query.append_pair("join", "oldest");
                }
                if *last_trackers {
                    query.append_pair("trackers", "last");
                }
                let filter =
                    serde_json::to_string(filter).map_err(|e| ApiError::Internal(e.to_string()))?;
                query.append_pair("filter", &filter);
                if let Some(id) = last_event_id {
                    query.append_pair("last_event_id", id);
                }
            }
        }
        Ok(url)
    }

    /// Reads a call back from the URL and method the Hub received. Anything the Worker would not
    /// have sent is an error: an unknown path is a 404, a bad parameter a 400, never a default.
    pub(crate) fn decode(method: &Method, url: &Url) -> ApiResult<HubCall> {
        let call = match url.path().trim_start_matches('/') {
            "subscribe" => {
                let filter = query(url, "filter").ok_or_else(|| bad("filter is missing"))?;
                let filter = serde_json::from_str(&filter)
                    .map_err(|e| bad(format!("filter is not a filter: {e}")))?;
                let credential = query(url, "credential")
                    .filter(|id| !id.is_empty() && id.len() <= TAG_CHARS_MAX)
                    .ok_or_else(|| bad("credential is missing or longer than a socket tag"))?;
                let family = query(url, "family")
                    .and_then(|name| Family::named(&name))
                    .ok_or_else(|| bad("family is missing or unknown"))?;
                let join = match query(url, "join").as_deref() {
                    None => JoinPolicy::Live,
                    Some("oldest") => JoinPolicy::FromOldest,
                    Some(_) => return Err(bad("join is not `oldest`")),
                };
                HubCall::Subscribe {
                    filter,
                    last_event_id: query(url, "last_event_id"),
                    credential,
                    family,
                    join,
                    last_trackers: query(url, "trackers").as_deref() == Some("last"),
                }
            }
            "publish" => HubCall::Publish,
            "ingest" => HubCall::Ingest,
            "stats" => HubCall::Stats,
            "disconnect" => HubCall::Disconnect,
            "plan/open" => HubCall::PlanOpen,
            "plan/apply" => HubCall::PlanApply,
            "plan/command" => HubCall::PlanCommand,
            "plan/cancel" => HubCall::PlanCancel,
            "plan/meta" => HubCall::PlanMeta,
            "plan/request" => HubCall::PlanRequest,
            _ => return Err(ApiError::NotFound),
        };
        if *method != call.method() {
            return Err(ApiError::MethodNotAllowed {
                allow: if call.method() == Method::Get {
                    "GET"
                } else {
                    "POST"
                },
            });
        }
        Ok(call)
    }
}

fn bad(message: impl core::fmt::Display) -> ApiError {
    ApiError::bad_request("invalid_hub_call", message)
}

fn query(url: &Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
