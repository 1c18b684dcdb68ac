//! The worker's one error type: every failure maps to an HTTP status and a JSON body
//! `{"error": code, "message": text}` here, in one place.

use serde::Serialize;
use worker::{Headers, Response};

/// Everything a request can fail with. `code` values are stable and documented in the README.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400: the request is malformed (bad JSON, bad id, bad filter, bad event name, ...).
    BadRequest { code: &'static str, message: String },
    /// 401: no credentials, or credentials that are malformed, forged or expired.
    Unauthorized(String),
    /// 403: valid credentials that do not grant this scope, tenant or stream.
    Forbidden(String),
    /// 404: no such route.
    NotFound,
    /// 405: the route exists, the method does not.
    MethodNotAllowed { allow: &'static str },
    /// 422: a SQLMesh plan body that does not validate (SQLMesh's FastAPI answers 422 there).
    Unprocessable { code: &'static str, message: String },
    /// 409: the request conflicts with the hub's state (an illegal plan stage move, a completed
    /// stream).
    Conflict { code: &'static str, message: String },
    /// 413: an event or a batch over its configured limit.
    TooLarge(String),
    /// 429: the stream already has `HERALD_SUBSCRIBERS_MAX` subscribers; try again later.
    TooManySubscribers(String),
    /// 500: the runtime failed (storage, bindings); the message is for operators.
    Internal(String),
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

impl ApiError {
    pub(crate) fn bad_request(code: &'static str, message: impl core::fmt::Display) -> Self {
        ApiError::BadRequest {
            code,
            message: message.to_string(),
        }
    }

    pub(crate) fn conflict(code: &'static str, message: impl core::fmt::Display) -> Self {
        ApiError::Conflict {
            code,
            message: message.to_string(),
        }
    }

    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::BadRequest { .. } => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict { .. } => 409,
            ApiError::Unprocessable { .. } => 422,
            ApiError::TooLarge(_) => 413,
            ApiError::TooManySubscribers(_) => 429,
            ApiError::Internal(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unprocessable { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::TooLarge(_) => "too_large",
            ApiError::TooManySubscribers(_) => "too_many_subscribers",
            ApiError::Internal(_) => "internal",
        }
    }

    fn message(&self) -> &str {
        match self {
            ApiError::BadRequest { message, .. }
            | ApiError::Conflict { message, .. }
            | ApiError::Unprocessable { message, .. } => message,
            ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::TooLarge(m)
            | ApiError::TooManySubscribers(m)
            | ApiError::Internal(m) => m,
            ApiError::NotFound => "no such route",
            ApiError::MethodNotAllowed { .. } => "method not allowed on this route",
        }
    }

    /// The HTTP response for this error.
    pub(crate) fn into_response(self) -> worker::Result<Response> {
        let body = serde_json::to_string(&ErrorBody {
            error: self.code(),
            message: self.message(),
        })
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
        let headers = Headers::new();
        headers.set("content-type", "application/json")?;
        headers.set("cache-control", "no-store")?;
        if let ApiError::MethodNotAllowed { allow } = &self {
            headers.set("allow", allow)?;
        }
        if let ApiError::Unauthorized(_) = &self {
            headers.set("www-authenticate", "Bearer realm=\"herald\"")?;
        }
        if let ApiError::TooManySubscribers(_) = &self {
            headers.set("retry-after", "10")?;
        }
        Ok(Response::ok(body)?
            .with_status(self.status())
            .with_headers(headers))
    }
}

impl From<worker::Error> for ApiError {
    fn from(error: worker::Error) -> Self {
        ApiError::Internal(error.to_string())
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
