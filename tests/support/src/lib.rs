//! What Herald's tests and load benchmark share: one decoder for HTTP/1.1 chunked bodies
//! ([`Dechunker`], and [`DechunkRead`] over a blocking reader; Herald's SSE responses are chunked,
//! and the tests read them off raw sockets to see every byte as it arrives), and JSON nested to a
//! given depth ([`nested_json`]) for the depth limits.

use std::io::Read;

/// A push decoder for `Transfer-Encoding: chunked`: hands data on as soon as it arrives, whatever
/// the read boundaries (a size line or CRLF may be split across reads).
#[derive(Debug, Default)]
pub struct Dechunker {
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
    /// Whether the last chunk came.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decodes `input`, the next bytes of the body, handing each piece of chunk data to `out`.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) {
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

/// A JSON value nesting `depth` levels: alternately arrays and objects, `1` at the bottom.
pub fn nested_json(depth: usize) -> String {
    let mut text = String::new();
    for level in 0..depth {
        text.push_str(if level % 2 == 0 { "[" } else { "{\"k\":" });
    }
    text.push('1');
    for level in (0..depth).rev() {
        text.push(if level % 2 == 0 { ']' } else { '}' });
    }
    text
}

/// A chunked body read from `inner` as a plain byte stream: each read returns the data of whatever
/// arrived (it blocks only when nothing has), and 0 once the last chunk came.
#[derive(Debug)]
pub struct DechunkRead<R> {
    inner: R,
    decoder: Dechunker,
    /// Decoded bytes not yet handed out.
    ready: Vec<u8>,
    ready_at: usize,
}

impl<R: Read> DechunkRead<R> {
    /// Decodes the body that `inner` is positioned at.
    pub fn new(inner: R) -> DechunkRead<R> {
        DechunkRead {
            inner,
            decoder: Dechunker::default(),
            ready: Vec::new(),
            ready_at: 0,
        }
    }
}

impl<R: Read> Read for DechunkRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut raw = [0u8; 16 * 1024];
        while self.ready_at == self.ready.len() {
            if self.decoder.is_done() {
                return Ok(0);
            }
            let n = self.inner.read(&mut raw)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.ready.clear();
            self.ready_at = 0;
            let ready = &mut self.ready;
            self.decoder
                .feed(&raw[..n], |data| ready.extend_from_slice(data));
        }
        let n = buf.len().min(self.ready.len() - self.ready_at);
        buf[..n].copy_from_slice(&self.ready[self.ready_at..self.ready_at + n]);
        self.ready_at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::{DechunkRead, Dechunker};

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

    #[test]
    fn reads_a_body_in_pieces_and_ends_at_the_last_chunk() {
        let wire: &[u8] = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nnext response";
        let mut body = String::new();
        DechunkRead::new(wire)
            .read_to_string(&mut body)
            .expect("a whole body");
        assert_eq!(body, "hello world");
    }

    #[test]
    fn a_body_cut_short_is_an_error() {
        let mut body = Vec::new();
        let error = DechunkRead::new(&b"5\r\nhel"[..])
            .read_to_end(&mut body)
            .expect_err("cut");
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof);
        assert_eq!(body, b"hel");
    }
}
