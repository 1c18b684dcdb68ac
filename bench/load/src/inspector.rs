//! An inspector session on a workerd started with `--inspector-addr`, doing what `wrangler dev`'s
//! inspector proxy does when no DevTools window is open: connect to the worker's debugger
//! WebSocket, send `Runtime.enable` (so console calls and exceptions are reported to it), answer
//! nothing else and read whatever comes, on a thread of its own until the process ends. This lets
//! the load benchmark tell the cost of an attached inspector apart from the rest of wrangler dev.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One blocking HTTP GET of `path`; the body, or `None`.
fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// The path of the first target's `webSocketDebuggerUrl` in the inspector's `/json` list.
fn target_path(port: u16) -> Option<String> {
    let list = get(port, "/json")?;
    let key = "\"webSocketDebuggerUrl\":";
    let rest = &list[list.find(key)? + key.len()..];
    let url = rest.trim_start().strip_prefix('"')?.split('"').next()?;
    let path = url.strip_prefix("ws://")?;
    Some(path[path.find('/')?..].to_owned())
}

/// A masked client text frame (RFC 6455: clients mask every frame; the mask may be any value).
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Attaches to the inspector on `port` (waiting up to 30 s for it), enables the Runtime domain and
/// leaves a thread draining the session. Errors are reported, not fatal: the run then measures an
/// inspector that is only listening, and says so.
pub(crate) fn attach(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let path = loop {
        if let Some(path) = target_path(port) {
            break path;
        }
        if Instant::now() > deadline {
            eprintln!("  inspector on {port}: no target to attach to");
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let attached = (|| -> std::io::Result<TcpStream> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes())?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            head.push(byte[0]);
        }
        if !head.starts_with(b"HTTP/1.1 101") {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(&head).into_owned(),
            ));
        }
        stream.write_all(&text_frame(br#"{"id":1,"method":"Runtime.enable"}"#))?;
        Ok(stream)
    })();
    match attached {
        Ok(mut stream) => {
            std::thread::spawn(move || {
                let mut sink = [0u8; 16 * 1024];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
        Err(error) => eprintln!("  inspector on {port}: could not attach: {error}"),
    }
}
