//! Just enough HTTP/1.1 over a raw tokio socket: a request writer, a response-head reader and a push
//! decoder for chunked bodies. Thousands of streams on a couple of threads need no more, and a raw
//! socket keeps the client's own cost small and visible.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A parsed response head and the body bytes that arrived with it.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) chunked: bool,
    pub(crate) content_length: Option<usize>,
    /// Body bytes read past the head.
    pub(crate) rest: Vec<u8>,
}

/// Writes one request. `headers` are complete `Name: value` lines without CRLF.
pub(crate) async fn send_request(
    stream: &mut TcpStream,
    method: &str,
    path: &str,
    host: &str,
    headers: &[String],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    for header in headers {
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if method == "POST" {
        out.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    stream.write_all(&out).await
}

/// Reads until the end of the response head.
pub(crate) async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Head> {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = find(buf, b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let mut chunked = false;
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked |= value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().ok();
            }
        }
    }
    Ok(Head {
        status,
        chunked,
        content_length,
        rest: buf[end..].to_vec(),
    })
}

/// Reads a whole (small) response body so the connection can carry the next request.
pub(crate) async fn read_body(stream: &mut TcpStream, head: &Head) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut chunk = [0u8; 4096];
    if head.chunked {
        let mut decoder = Dechunker::default();
        decoder.feed(&head.rest, |bytes| body.extend_from_slice(bytes));
        while !decoder.is_done() {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            decoder.feed(&chunk[..n], |bytes| body.extend_from_slice(bytes));
        }
    } else {
        let length = head.content_length.unwrap_or(0);
        body.extend_from_slice(&head.rest);
        while body.len() < length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Ok(body)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A push decoder for `Transfer-Encoding: chunked`: hands data on as soon as it arrives, whatever
/// the read boundaries (a size line or CRLF may be split across reads).
#[derive(Debug, Default)]
pub(crate) struct Dechunker {
    state: ChunkState,
    size: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading hex digits of a size line.
    #[default]
    Size,
    /// Skipping a size line's extension up to its LF.
    SizeRest,
    /// Inside chunk data, `size` bytes left.
    Data,
    /// Skipping the CRLF after chunk data.
    DataEnd,
    /// The last chunk came (its trailers are not awaited).
    Done,
}

impl Dechunker {
    pub(crate) fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    pub(crate) fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => {
                    let byte = input[0];
                    input = &input[1..];
                    match (byte as char).to_digit(16) {
                        Some(digit) => self.size = self.size * 16 + digit as usize,
                        None if byte == b'\n' => self.end_size_line(),
                        None => self.state = ChunkState::SizeRest,
                    }
                }
                ChunkState::SizeRest => {
                    let byte = input[0];
                    input = &input[1..];
                    if byte == b'\n' {
                        self.end_size_line();
                    }
                }
                ChunkState::Data => {
                    let take = self.size.min(input.len());
                    out(&input[..take]);
                    input = &input[take..];
                    self.size -= take;
                    if self.size == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => {
                    let byte = input[0];
                    input = &input[1..];
                    if byte == b'\n' {
                        self.state = ChunkState::Size;
                    }
                }
                ChunkState::Done => return,
            }
        }
    }

    fn end_size_line(&mut self) {
        self.state = if self.size == 0 {
            ChunkState::Done
        } else {
            ChunkState::Data
        };
    }
}

#[cfg(test)]
mod tests {
    use super::Dechunker;

    #[test]
    fn dechunks_split_at_every_index() {
        let wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n";
        for split in 0..=wire.len() {
            let mut decoder = Dechunker::default();
            let mut out = Vec::new();
            decoder.feed(&wire[..split], |b| out.extend_from_slice(b));
            decoder.feed(&wire[split..], |b| out.extend_from_slice(b));
            assert_eq!(out, b"hello world!", "split at {split}");
            assert!(decoder.is_done());
        }
    }
}
