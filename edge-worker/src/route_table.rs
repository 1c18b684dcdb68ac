//! Every public route, as data: method, path template and endpoint. The router matches requests
//! against [`ROUTES`], and the OpenAPI test reads the same table (it includes this file), so the
//! document and the worker cannot drift apart.
//!
//! This file depends on nothing but `core`, so that the end-to-end crate can include it natively.

/// Which seed system's dialect a stream speaks: it picks the heartbeat and the filter vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `/v1/streams/{id}`: comment heartbeats, any type, the configured categories.
    Generic,
    /// `/api/events`: SQLMesh's `ping` events and its plan trackers.
    SqlMesh,
    /// `/api/events/stream`: sluice's `heartbeat` events and `types=job,worker,queue`.
    Sluice,
    /// `/runner-jobs/{id}/events/stream`: CI runner step events, comment heartbeats.
    RunnerJob,
}

impl Family {
    /// Every family, for reading one back by name.
    pub(crate) const ALL: [Family; 4] = [
        Family::Generic,
        Family::SqlMesh,
        Family::Sluice,
        Family::RunnerJob,
    ];

    /// The family's name, as the stream directory lists it.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Family::Generic => "generic",
            Family::SqlMesh => "sqlmesh",
            Family::Sluice => "sluice",
            Family::RunnerJob => "runner-job",
        }
    }

    /// The family named `name`, if any.
    pub(crate) fn named(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|family| family.name() == name)
    }
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `{"ok":true}`.
    Health,
    /// Mint a ticket for one stream.
    Ticket,
    /// Set (or renew) the session cookie.
    Session,
    /// SQLMesh `/api/meta`: version and running task; re-emits the plan trackers.
    PlanMeta,
    /// The tenant's streams (the stream directory).
    Directory,
    /// Subscribe to a stream of this family.
    Subscribe(Family),
    /// Publish to the stream named in the path.
    Publish,
    /// The stream's counters.
    Stats,
    /// Close every subscriber of the stream.
    Disconnect,
    /// SQLMesh `/api/plan`.
    PlanOpen,
    /// SQLMesh `/api/commands/apply`.
    PlanApply,
    /// A plan runner's stage command.
    PlanStage,
    /// The open plan's request (categories included), for the runner.
    PlanRequest,
    /// SQLMesh `/api/plan/cancel`.
    PlanCancel,
}

/// One route: `method` and a path `template` whose `{name}` segments are parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RouteSpec {
    pub(crate) method: &'static str,
    pub(crate) template: &'static str,
    pub(crate) endpoint: Endpoint,
}

const fn get(template: &'static str, endpoint: Endpoint) -> RouteSpec {
    RouteSpec {
        method: "GET",
        template,
        endpoint,
    }
}

const fn post(template: &'static str, endpoint: Endpoint) -> RouteSpec {
    RouteSpec {
        method: "POST",
        template,
        endpoint,
    }
}

/// Every public route of the Worker.
pub(crate) const ROUTES: &[RouteSpec] = &[
    get("/healthz", Endpoint::Health),
    post("/v1/tickets", Endpoint::Ticket),
    post("/v1/sessions", Endpoint::Session),
    get("/api/meta", Endpoint::PlanMeta),
    get("/v1/streams", Endpoint::Directory),
    get("/v1/streams/{id}", Endpoint::Subscribe(Family::Generic)),
    post("/v1/streams/{id}/events", Endpoint::Publish),
    get("/v1/streams/{id}/stats", Endpoint::Stats),
    post("/v1/streams/{id}/disconnect", Endpoint::Disconnect),
    get("/api/events", Endpoint::Subscribe(Family::SqlMesh)),
    get("/api/events/stream", Endpoint::Subscribe(Family::Sluice)),
    post("/api/plan", Endpoint::PlanOpen),
    post("/api/plan/stages", Endpoint::PlanStage),
    get("/api/plan/request", Endpoint::PlanRequest),
    post("/api/commands/apply", Endpoint::PlanApply),
    post("/api/plan/cancel", Endpoint::PlanCancel),
    get(
        "/runner-jobs/{jobId}/events/stream",
        Endpoint::Subscribe(Family::RunnerJob),
    ),
    post("/runner-jobs/{jobId}/events", Endpoint::Publish),
];

/// How a path matched the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Matched<'a> {
    /// A route takes this path and method; `param` is the value of its one `{..}` segment, if any.
    Route {
        spec: &'static RouteSpec,
        param: Option<&'a str>,
    },
    /// A route takes this path, but not with this method: `allow` is the method it takes.
    WrongMethod { allow: &'static str },
    /// No route takes this path.
    NotFound,
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.trim_matches('/').split('/')
}

/// Matches `method` and `path` against [`ROUTES`].
pub(crate) fn find<'a>(method: &str, path: &'a str) -> Matched<'a> {
    let mut allow = None;
    for spec in ROUTES {
        let mut param = None;
        let mut wanted = segments(spec.template);
        let mut given = segments(path);
        let fits = loop {
            match (wanted.next(), given.next()) {
                (None, None) => break true,
                (Some(w), Some(g)) if w.starts_with('{') => param = Some(g),
                (Some(w), Some(g)) if w == g => {}
                _ => break false,
            }
        };
        if !fits {
            continue;
        }
        if spec.method == method {
            return Matched::Route { spec, param };
        }
        allow.get_or_insert(spec.method);
    }
    match allow {
        Some(allow) => Matched::WrongMethod { allow },
        None => Matched::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_templates_methods_and_parameters() {
        assert!(matches!(
            find("GET", "/v1/streams/demo"),
            Matched::Route { spec, param: Some("demo") } if spec.endpoint == Endpoint::Subscribe(Family::Generic)
        ));
        assert!(matches!(
            find("POST", "/runner-jobs/j1/events"),
            Matched::Route { spec, param: Some("j1") } if spec.endpoint == Endpoint::Publish
        ));
        assert!(matches!(
            find("GET", "/api/events"),
            Matched::Route { spec, param: None } if spec.endpoint == Endpoint::Subscribe(Family::SqlMesh)
        ));
        assert_eq!(
            find("GET", "/v1/streams/demo/events"),
            Matched::WrongMethod { allow: "POST" }
        );
        // An empty id matches, so that it is refused as an invalid connection id (400), not a 404.
        assert!(matches!(
            find("POST", "/v1/streams//events"),
            Matched::Route {
                param: Some(""),
                ..
            }
        ));
        assert_eq!(find("GET", "/nope"), Matched::NotFound);
        assert_eq!(find("GET", "/v1/streams/a/b/c"), Matched::NotFound);
    }
}
