//! CORS for browser pages on other origins: an allow-list from `HERALD_CORS_ORIGINS`; preflight
//! allows `Last-Event-ID` (a resuming EventSource sends it) and `Authorization` (for `fetch`).

use worker::{Headers, Request, Response};

use crate::config::Config;

/// The request's `Origin` when it is on the allow-list (`*` in the list allows any origin).
pub(crate) fn allowed_origin(request: &Request, config: &Config) -> Option<String> {
    let origin = request.headers().get("origin").ok().flatten()?;
    config
        .cors_origins
        .iter()
        .any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(&origin))
        .then_some(origin)
}

/// The headers every answer to an allowed origin carries. Credentials are allowed, so the origin is
/// echoed, never `*`.
pub(crate) fn decorate(headers: &Headers, origin: &str) -> worker::Result<()> {
    headers.set("access-control-allow-origin", origin)?;
    headers.set("access-control-allow-credentials", "true")?;
    headers.append("vary", "Origin")?;
    Ok(())
}

/// The answer to a preflight `OPTIONS` request.
pub(crate) fn preflight(origin: Option<String>) -> worker::Result<Response> {
    let headers = Headers::new();
    if let Some(origin) = origin {
        decorate(&headers, &origin)?;
        headers.set("access-control-allow-methods", "GET, POST, OPTIONS")?;
        headers.set(
            "access-control-allow-headers",
            "authorization, content-type, last-event-id",
        )?;
        headers.set("access-control-max-age", "600")?;
    }
    Ok(Response::empty()?.with_status(204).with_headers(headers))
}

/// Copies a response's headers and adds the CORS ones (a fetched response's headers are immutable).
pub(crate) fn with_cors(response: Response, origin: Option<&str>) -> worker::Result<Response> {
    let Some(origin) = origin else {
        return Ok(response);
    };
    let headers = Headers::new();
    for (name, value) in response.headers().entries() {
        headers.append(&name, &value)?;
    }
    decorate(&headers, origin)?;
    Ok(response.with_headers(headers))
}
