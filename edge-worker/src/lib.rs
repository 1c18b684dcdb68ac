//! Herald's Cloudflare Worker: a thin shell over herald-core.
//!
//! The stateless Worker ([`fetch`]) authenticates each request, validates what it can before any
//! stream opens, and forwards it to the [`hub::Hub`] Durable Object named by (tenant, connection id).
//! The Hub numbers events, keeps the replay log in its SQLite storage, fans frames out and sends
//! heartbeats. Every protocol rule is herald-core's; this crate only adapts it to the runtime.

#![cfg(target_arch = "wasm32")]

mod call;
mod config;
mod cors;
mod error;
mod hub;
mod routes;
mod storage;
mod stream;

use worker::{event, Context, Env, Request, Response};

/// The Worker's entry point: every request is routed, authenticated and answered here or by a Hub.
#[event(fetch)]
pub async fn fetch(request: Request, env: Env, _context: Context) -> worker::Result<Response> {
    routes::handle(request, env).await
}
