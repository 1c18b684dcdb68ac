//! The message a hub sends one subscriber's relay over their WebSocket: a batch of encoded frames.
//!
//! The hub holds no SSE response; each subscriber's relay (the Worker) does, and the hub reaches it
//! with one binary WebSocket message per batch. The message carries the frames already encoded (the
//! relay writes them as they are), the sequence number of each logged frame (so that the relay can
//! apply the `seq <= last` rule and name a resume id in its `lagging` frame), the hub's epoch, and
//! whether the stream ends after these frames (the stream is complete).
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! message = version:u8 (= 1) flags:u8 epoch:u64 record*
//! flags   = bit 0: the stream ends after this message; other bits are 0
//! record  = seq:u64 (0: a frame with no id, such as a reset or a tracker snapshot) len:u32 frame
//! ```
//!
//! Decoding checks every length against what is left, so a truncated or corrupt message is an
//! error, never a short read or a panic.

use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;

/// The only version this crate writes and reads.
const VERSION: u8 = 1;
/// Flag bit: the stream ends after this message.
const FLAG_CLOSE: u8 = 1;
/// Bytes before the first record: version, flags, epoch.
const HEADER_BYTES: usize = 1 + 1 + 8;
/// Bytes before each record's frame: seq, len.
const RECORD_HEADER_BYTES: usize = 8 + 4;

/// One frame of a [`HubMessage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    /// The frame's sequence number when it is a logged event (it carries `id:`), else `None`.
    pub seq: Option<u64>,
    /// The encoded SSE frame.
    pub frame: Bytes,
}

/// A batch of frames from a hub to one subscriber.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HubMessage {
    /// The epoch of the hub's log: the relay names `<epoch>-<seq>` in a `lagging` frame.
    pub epoch: u64,
    /// The frames, in the order they are to be written.
    pub frames: Vec<WireFrame>,
    /// Whether the stream ends once these frames are written (the stream is complete).
    pub close: bool,
}

/// Why bytes are not a [`HubMessage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than a message header.
    Truncated,
    /// A version this crate does not read.
    Version(u8),
    /// Flag bits this crate does not know.
    Flags(u8),
    /// A record's length runs past the end of the message.
    RecordOverrun,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("hub message is shorter than its header"),
            WireError::Version(version) => write!(f, "hub message has unknown version {version}"),
            WireError::Flags(flags) => write!(f, "hub message has unknown flags 0x{flags:02x}"),
            WireError::RecordOverrun => f.write_str("hub message record runs past its end"),
        }
    }
}

impl core::error::Error for WireError {}

impl HubMessage {
    /// Whether the message has nothing to say: no frames and no close.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && !self.close
    }

    /// The message's bytes.
    ///
    /// A frame's length is written as 32 bits. No frame comes near 4 GiB (publish limits keep them
    /// far below, and an isolate has 128 MB); one that did would be written with a length that
    /// [`HubMessage::decode`] refuses, never read as something else.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let len = HEADER_BYTES
            + self
                .frames
                .iter()
                .map(|f| RECORD_HEADER_BYTES + f.frame.len())
                .sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.push(VERSION);
        out.push(if self.close { FLAG_CLOSE } else { 0 });
        out.extend_from_slice(&self.epoch.to_le_bytes());
        for frame in &self.frames {
            out.extend_from_slice(&frame.seq.unwrap_or(0).to_le_bytes());
            let frame_len = u32::try_from(frame.frame.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&frame_len.to_le_bytes());
            out.extend_from_slice(&frame.frame);
        }
        out
    }

    /// Reads a message written by [`HubMessage::encode`] (its frames are copied out of `bytes`).
    pub fn decode(bytes: &[u8]) -> Result<HubMessage, WireError> {
        Self::decode_shared(Bytes::copy_from_slice(bytes))
    }

    /// Reads a message written by [`HubMessage::encode`]; its frames share `bytes` (no copy).
    pub fn decode_shared(bytes: Bytes) -> Result<HubMessage, WireError> {
        let (header, mut rest) = bytes
            .split_at_checked(HEADER_BYTES)
            .ok_or(WireError::Truncated)?;
        let [version, flags, epoch @ ..] = header else {
            return Err(WireError::Truncated);
        };
        if *version != VERSION {
            return Err(WireError::Version(*version));
        }
        if flags & !FLAG_CLOSE != 0 {
            return Err(WireError::Flags(*flags));
        }
        let mut message = HubMessage {
            epoch: u64::from_le_bytes(to_array(epoch)),
            frames: Vec::new(),
            close: flags & FLAG_CLOSE != 0,
        };
        let mut at = HEADER_BYTES;
        while !rest.is_empty() {
            let (record, after) = rest
                .split_at_checked(RECORD_HEADER_BYTES)
                .ok_or(WireError::RecordOverrun)?;
            let (seq, len) = record.split_at(8);
            let seq = u64::from_le_bytes(to_array(seq));
            let len = usize::try_from(u32::from_le_bytes(to_array(len)))
                .map_err(|_| WireError::RecordOverrun)?;
            let (_, after) = after
                .split_at_checked(len)
                .ok_or(WireError::RecordOverrun)?;
            let start = at + RECORD_HEADER_BYTES;
            message.frames.push(WireFrame {
                seq: (seq != 0).then_some(seq),
                frame: bytes.slice(start..start + len),
            });
            at = start + len;
            rest = after;
        }
        Ok(message)
    }
}

/// The first `N` bytes of `slice`, zero-padded (callers pass slices of exactly `N` bytes).
fn to_array<const N: usize>(slice: &[u8]) -> [u8; N] {
    let mut array = [0; N];
    let len = slice.len().min(N);
    array[..len].copy_from_slice(&slice[..len]);
    array
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn sample() -> HubMessage {
        HubMessage {
            epoch: 1_700_000_000_000,
            frames: vec![
                WireFrame {
                    seq: None,
                    frame: Bytes::from_static(b"event: reset\ndata: {}\n\n"),
                },
                WireFrame {
                    seq: Some(7),
                    frame: Bytes::from_static(b"id: 1700000000000-7\ndata: x\n\n"),
                },
            ],
            close: true,
        }
    }

    #[test]
    fn roundtrips() {
        let message = sample();
        assert_eq!(HubMessage::decode(&message.encode()), Ok(message));
        let empty = HubMessage::default();
        assert!(empty.is_empty());
        assert_eq!(HubMessage::decode(&empty.encode()), Ok(empty));
    }

    #[test]
    fn exact_header_bytes() {
        let bytes = HubMessage {
            epoch: 2,
            frames: vec![WireFrame {
                seq: Some(3),
                frame: Bytes::from_static(b"ab"),
            }],
            close: false,
        }
        .encode();
        assert_eq!(
            bytes,
            [1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, b'a', b'b']
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample().encode();
        for end in 0..bytes.len() {
            let decoded = HubMessage::decode(&bytes[..end]);
            // A cut exactly between records is a shorter valid message; anything else is refused.
            if let Ok(message) = decoded {
                assert!(message.frames.len() < 2, "cut at {end}");
            }
        }
        assert_eq!(HubMessage::decode(&[]), Err(WireError::Truncated));
        let mut bad = bytes.clone();
        bad[0] = 9;
        assert_eq!(HubMessage::decode(&bad), Err(WireError::Version(9)));
        let mut bad = bytes;
        bad[1] = 2;
        assert_eq!(HubMessage::decode(&bad), Err(WireError::Flags(2)));
    }
}
