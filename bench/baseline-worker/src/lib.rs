//! The baseline for `scripts/bench-load.sh`: what the runtime itself costs to fan bytes out of a
//! Durable Object to open SSE responses. Herald's overhead is measured against this.
//!
//! - `GET /s/{hub}` opens a stream on hub `{hub}` (one Durable Object per name, as Herald's hubs).
//!   The stream is a JS `TransformStream` the Durable Object writes to directly: the cheapest way
//!   the runtime offers to push bytes down a response, so this is the ceiling.
//! - `GET /r/{hub}` opens a stream the way workers-rs streams usually are (and Herald's are): a Rust
//!   `Stream` behind `Response::from_stream`, polled by the runtime through wasm-bindgen. Comparing
//!   the two separates the cost of that bridge from the cost of Herald's own work.
//! - `POST /c/{hub}` ends every open stream of the hub (the load generator calls it after a phase,
//!   so streams whose clients left do not pile up: a stream nobody writes to is never noticed gone).
//! - `POST /p/{hub}` sends the request body, which the load generator has already encoded as a whole
//!   SSE frame, unchanged to every open stream of that hub.
//!
//! The same-shape baseline for a Herald whose Worker holds the SSE response and relays from a
//! hibernatable Durable Object (see `relay`): `GET /w/{hub}` subscribes, `POST /pw/{hub}` publishes
//! (the body is a whole SSE frame), `POST /cw/{hub}` closes every socket of the hub.
//!
//! No auth, parsing, ids, storage, filters or heartbeats: whatever Herald adds on top shows up as
//! the difference.

mod relay;

use std::cell::RefCell;

use futures_channel::mpsc::{unbounded, UnboundedSender};
use worker::js_sys::{Promise, Uint8Array};
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::JsValue;
use worker::web_sys::{TransformStream, WritableStreamDefaultWriter};
use worker::{
    durable_object, event, Context, DurableObject, Env, Headers, Method, Request, Response,
    ResponseBody, Result, State,
};

type Chunk = std::result::Result<Vec<u8>, worker::Error>;

/// Sent first on every stream so that the response head and first bytes flush at once.
const OPEN_FRAME: &[u8] = b": open\n\n";

#[event(fetch)]
async fn fetch(request: Request, env: Env, _context: Context) -> Result<Response> {
    let path = request.path();
    let request = match relay::route(request, &path, &env).await {
        Ok(response) => return response,
        Err(request) => request,
    };
    let hub = match path
        .strip_prefix("/s/")
        .or_else(|| path.strip_prefix("/r/"))
        .or_else(|| path.strip_prefix("/p/"))
        .or_else(|| path.strip_prefix("/c/"))
    {
        Some(hub) if !hub.is_empty() => hub.to_owned(),
        _ => return Response::error("not found", 404),
    };
    // The same hop Herald makes: the stateless Worker forwards to the hub's Durable Object.
    let stub = env.durable_object("FAN")?.id_from_name(&hub)?.get_stub()?;
    stub.fetch_with_request(request).await
}

/// One open stream.
enum Subscriber {
    Js(WritableStreamDefaultWriter),
    Rust(UnboundedSender<Chunk>),
}

impl Subscriber {
    /// Queues `frame`; false once the client is gone.
    fn send(&self, frame: &[u8], ignore: &Closure<dyn FnMut(JsValue)>) -> bool {
        match self {
            Subscriber::Js(writer) => {
                // A cancelled body errors the writable side: its desired size is then null.
                if !matches!(writer.desired_size(), Ok(Some(_))) {
                    return false;
                }
                let chunk = Uint8Array::from(frame);
                let written: Promise = writer.write_with_chunk(&chunk);
                // A write that fails because the client left is expected: no unhandled rejection.
                let _ = written.catch(ignore);
                true
            }
            // A closed stream drops its receiver, so the send fails.
            Subscriber::Rust(sender) => sender.unbounded_send(Ok(frame.to_vec())).is_ok(),
        }
    }
}

#[durable_object(fetch)]
pub struct Fan {
    subscribers: RefCell<Vec<Subscriber>>,
    ignore: Closure<dyn FnMut(JsValue)>,
}

fn sse_headers() -> Result<Headers> {
    let headers = Headers::new();
    headers.set("content-type", "text/event-stream; charset=utf-8")?;
    headers.set("cache-control", "no-cache, no-transform")?;
    Ok(headers)
}

impl DurableObject for Fan {
    fn new(_state: State, _env: Env) -> Self {
        Fan {
            subscribers: RefCell::new(Vec::new()),
            ignore: Closure::new(|_: JsValue| {}),
        }
    }

    async fn fetch(&self, mut request: Request) -> Result<Response> {
        match request.method() {
            Method::Get if request.path().starts_with("/r/") => {
                let (sender, receiver) = unbounded::<Chunk>();
                let _ = sender.unbounded_send(Ok(OPEN_FRAME.to_vec()));
                self.subscribers.borrow_mut().push(Subscriber::Rust(sender));
                Ok(Response::from_stream(receiver)?.with_headers(sse_headers()?))
            }
            Method::Get => {
                let pipe = TransformStream::new()?;
                let writer = pipe.writable().get_writer()?;
                let subscriber = Subscriber::Js(writer);
                subscriber.send(OPEN_FRAME, &self.ignore);
                self.subscribers.borrow_mut().push(subscriber);
                let response = Response::from_body(ResponseBody::Stream(pipe.readable()))?;
                Ok(response.with_headers(sse_headers()?))
            }
            Method::Post if request.path().starts_with("/c/") => {
                let closed = self.subscribers.take();
                for subscriber in &closed {
                    if let Subscriber::Js(writer) = subscriber {
                        let _ = writer.close().catch(&self.ignore);
                    }
                }
                // Dropping a Rust stream's sender ends that stream.
                Response::ok(format!("{}", closed.len()))
            }
            Method::Post => {
                let frame = request.bytes().await?;
                self.subscribers
                    .borrow_mut()
                    .retain(|subscriber| subscriber.send(&frame, &self.ignore));
                Response::ok("ok")
            }
            _ => Response::error("method not allowed", 405),
        }
    }
}
