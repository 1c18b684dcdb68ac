//! CORS for browser pages on other origins: an allow-list from `HERALD_CORS_ORIGINS`; preflight
//! allows `Last-Event-ID` (a resuming EventSource sends it) and `Authorization` (for `fetch`).
//!
//! Two shapes, never mixed:
//! - `*` in the list: every origin gets a literal `Access-Control-Allow-Origin: *` and never
//!   `Access-Control-Allow-Credentials`. Herald's credentials are a Bearer header or a `?ticket=`,
//!   which need no credentials mode, and a browser sends no cookies to a wildcard; so once cookie
//!   sessions exist, a wildcard still cannot carry them.
//! - listed origins: the request's origin is echoed (compared without regard to ASCII case) with
//!   credentials allowed. `null` (sandboxed frames, `file:` pages, some redirects) is shared by
//!   every such page, so it is never echoed, even when listed.
//!
//! Every answer carries `Vary: Origin`, so that a cache never serves one origin's answer to
//! another.

/// What a request's origin is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Allowed {
    /// `HERALD_CORS_ORIGINS` has `*`: a literal `*`, without credentials.
    Any,
    /// A listed origin, echoed, with credentials.
    Origin(String),
}

/// What `origin` (the request's `Origin` header) is allowed by the list `allowed`.
pub(crate) fn decide(origin: Option<&str>, allowed: &[String]) -> Option<Allowed> {
    let origin = origin?;
    if allowed.iter().any(|entry| entry == "*") {
        return Some(Allowed::Any);
    }
    if origin.eq_ignore_ascii_case("null") {
        return None;
    }
    allowed
        .iter()
        .any(|entry| entry.eq_ignore_ascii_case(origin))
        .then(|| Allowed::Origin(origin.to_string()))
}

#[cfg(target_arch = "wasm32")]
pub(crate) use runtime::{allowed_origin, preflight, preflight_for, with_cors};

#[cfg(target_arch = "wasm32")]
mod runtime {
    use worker::{Headers, Request, Response};

    use super::{decide, Allowed};
    use crate::config::Config;

    /// What the request's `Origin` is allowed.
    pub(crate) fn allowed_origin(request: &Request, config: &Config) -> Option<Allowed> {
        let origin = request.headers().get("origin").ok().flatten();
        decide(origin.as_deref(), &config.cors_origins)
    }

    /// Adds the CORS headers for `allowed`, and `Vary: Origin` whatever the origin.
    fn decorate(headers: &Headers, allowed: Option<&Allowed>) -> worker::Result<()> {
        match allowed {
            Some(Allowed::Any) => {
                headers.set("access-control-allow-origin", "*")?;
                headers.delete("access-control-allow-credentials")?;
            }
            Some(Allowed::Origin(origin)) => {
                headers.set("access-control-allow-origin", origin)?;
                headers.set("access-control-allow-credentials", "true")?;
            }
            None => {}
        }
        let varies = headers.get("vary")?.is_some_and(|vary| {
            vary.split(',')
                .any(|name| name.trim().eq_ignore_ascii_case("origin"))
        });
        if !varies {
            headers.append("vary", "Origin")?;
        }
        Ok(())
    }

    /// The answer to a preflight `OPTIONS` request.
    pub(crate) fn preflight(allowed: Option<Allowed>) -> worker::Result<Response> {
        preflight_for(
            allowed,
            "GET, POST, OPTIONS",
            "authorization, content-type, last-event-id",
        )
    }

    /// A preflight answer allowing `methods` and `request_headers` to allowed origins.
    pub(crate) fn preflight_for(
        allowed: Option<Allowed>,
        methods: &str,
        request_headers: &str,
    ) -> worker::Result<Response> {
        let headers = Headers::new();
        decorate(&headers, allowed.as_ref())?;
        if allowed.is_some() {
            headers.set("access-control-allow-methods", methods)?;
            headers.set("access-control-allow-headers", request_headers)?;
            headers.set("access-control-max-age", "600")?;
        }
        Ok(Response::empty()?.with_status(204).with_headers(headers))
    }

    /// Copies a response's headers and adds the CORS ones (a fetched response's headers are
    /// immutable).
    pub(crate) fn with_cors(
        response: Response,
        allowed: Option<&Allowed>,
    ) -> worker::Result<Response> {
        let headers = Headers::new();
        for (name, value) in response.headers().entries() {
            headers.append(&name, &value)?;
        }
        decorate(&headers, allowed)?;
        Ok(response.with_headers(headers))
    }
}

#[cfg(test)]
mod tests {
    use super::{decide, Allowed};

    fn list(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn a_wildcard_allows_any_origin_as_a_literal_star() {
        let any = list(&["https://a.example", "*"]);
        for origin in ["https://evil.example", "null", "https://a.example"] {
            assert_eq!(decide(Some(origin), &any), Some(Allowed::Any), "{origin}");
        }
        assert_eq!(decide(None, &any), None, "no Origin, no CORS");
    }

    #[test]
    fn listed_origins_are_echoed_and_null_never_is() {
        let listed = list(&["https://a.example", "null"]);
        assert_eq!(
            decide(Some("https://A.example"), &listed),
            Some(Allowed::Origin("https://A.example".into()))
        );
        assert_eq!(decide(Some("https://b.example"), &listed), None);
        assert_eq!(decide(Some("null"), &listed), None);
        assert_eq!(decide(Some("NULL"), &listed), None);
        assert_eq!(decide(Some("https://a.example"), &[]), None);
    }
}
