//! Request bodies, read under a cap. A body is never read whole before its size is known to be
//! within the limit: a `Content-Length` over it is refused before a byte is read, and a body of
//! unknown length (chunked) is read a chunk at a time from the runtime's `ReadableStream` and
//! refused as soon as it passes the limit. One 200 MB request would otherwise take the isolate,
//! which every tenant's requests share, past its 128 MB.
//!
//! A refused body is let go (its reader's lock released), not cancelled: the runtime then treats
//! the rest as it treats any body a Worker does not read, and the client gets its 413, where a
//! cancelled upload ends in a reset connection (or, under `wrangler dev`, a 500 from its proxy).

use worker::js_sys::{Function, Promise, Reflect, Uint8Array};
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::Request;

use crate::error::{ApiError, ApiResult};

/// The cap on bodies that carry a few fields at most (`POST /v1/tickets`, plan cancel), and on the
/// declared length of requests that take no body at all.
pub(crate) const SMALL_BODY_BYTES_MAX: usize = 4 * 1024;

fn too_large(limit: usize) -> ApiError {
    ApiError::TooLarge(format!("the body is over the limit of {limit} bytes"))
}

/// Refuses a request whose `Content-Length` is over `limit`, without reading its body; answers
/// the declared length otherwise.
pub(crate) fn refuse_declared_over(request: &Request, limit: usize) -> ApiResult<Option<u64>> {
    let declared = request
        .headers()
        .get("content-length")?
        .and_then(|value| value.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => Err(ApiError::TooLarge(format!(
            "the body is {length} bytes, over the limit of {limit}"
        ))),
        _ => Ok(declared),
    }
}

/// Calls `target.name()` with no arguments.
fn call(target: &JsValue, name: &str) -> ApiResult<JsValue> {
    let method: Function = Reflect::get(target, &JsValue::from_str(name))
        .and_then(|method| method.dyn_into())
        .map_err(|_| ApiError::Internal(format!("the request body has no {name}()")))?;
    method
        .call0(target)
        .map_err(|error| ApiError::Internal(format!("{name}() failed: {error:?}")))
}

/// Reads the body, refusing it (413) once it is over `limit` bytes, declared or not.
pub(crate) async fn read_capped(request: &mut Request, limit: usize) -> ApiResult<Vec<u8>> {
    if refuse_declared_over(request, limit)?.is_some() {
        // A declared length within the limit: the runtime delivers exactly that many bytes, so
        // the body is read in one call rather than a chunk at a time.
        return Ok(request.bytes().await?);
    }
    let Some(stream) = request.inner().body() else {
        return Ok(Vec::new());
    };
    let reader = call(&stream, "getReader")?;
    let mut body = Vec::new();
    loop {
        let read: Promise = call(&reader, "read")?
            .dyn_into()
            .map_err(|_| ApiError::Internal("read() returned no promise".into()))?;
        let result = JsFuture::from(read)
            .await
            .map_err(|error| ApiError::Internal(format!("reading the body failed: {error:?}")))?;
        let done = Reflect::get(&result, &JsValue::from_str("done"))
            .ok()
            .and_then(|done| done.as_bool())
            .unwrap_or(true);
        if done {
            return Ok(body);
        }
        let chunk = Reflect::get(&result, &JsValue::from_str("value"))
            .map(|value| Uint8Array::new(&value))
            .map_err(|_| ApiError::Internal("a body chunk has no value".into()))?;
        // `body.len() <= limit` holds: a chunk is only taken in when it fits.
        if chunk.length() as usize > limit - body.len() {
            let _ = call(&reader, "releaseLock");
            return Err(too_large(limit));
        }
        let at = body.len();
        body.resize(at + chunk.length() as usize, 0);
        chunk.copy_to(&mut body[at..]);
    }
}
