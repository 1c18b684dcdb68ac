//! The smallest useful workers-rs Worker: the size yardstick for Herald's worker.

use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(_request: Request, _env: Env, _context: Context) -> Result<Response> {
    Response::ok("Hello, World!")
}
