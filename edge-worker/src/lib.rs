//! Herald's Cloudflare Worker: a thin shell over herald-core.
//!
//! The stateless Worker (`fetch`) authenticates each request, validates what it can before any
//! stream opens, and calls the Hub Durable Object named by (tenant, connection id) with a typed
//! call (`call.rs`). The Hub (`hub/`) numbers events, keeps the replay log in its SQLite storage
//! and sends each subscriber one WebSocket message per batch; it holds no request and no timer, so
//! it hibernates between publishes. The Worker holds each SSE response (`stream.rs`): first bytes,
//! outbox, heartbeats, maximum age. Every protocol rule is herald-core's; this crate only adapts it
//! to the runtime.

// The route table is plain data, built on every target so that its unit tests run natively.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod route_table;

// So is the CORS decision (the headers it becomes are the runtime's).
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod cors;

#[cfg(target_arch = "wasm32")]
mod body;
#[cfg(target_arch = "wasm32")]
mod call;
#[cfg(target_arch = "wasm32")]
mod config;
#[cfg(target_arch = "wasm32")]
mod directory;
#[cfg(target_arch = "wasm32")]
mod ds_read;
#[cfg(target_arch = "wasm32")]
mod ds_routes;
#[cfg(target_arch = "wasm32")]
mod ds_store;
#[cfg(target_arch = "wasm32")]
mod durable_stream;
#[cfg(target_arch = "wasm32")]
mod error;
#[cfg(target_arch = "wasm32")]
mod hub;
#[cfg(target_arch = "wasm32")]
mod producer_gate;
#[cfg(target_arch = "wasm32")]
mod routes;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
mod storage;
#[cfg(target_arch = "wasm32")]
mod stream;

#[cfg(target_arch = "wasm32")]
use worker::{event, Context, Env, Request, Response};

/// The Worker's entry point: every request is routed, authenticated and answered here or by a Hub.
#[cfg(target_arch = "wasm32")]
#[event(fetch)]
pub async fn fetch(request: Request, env: Env, _context: Context) -> worker::Result<Response> {
    routes::handle(request, env).await
}
