//! Finding line ends: the CR and LF bytes of a text, 64 bytes at a time as a bit mask.
//!
//! A text is scanned once, in order, one 64-byte window at a time, and only as far as the lines
//! read so far: each line end is then a `tzcnt` of the window's mask rather than a call to a
//! search function. On x86_64 a window's mask is four SSE2 compares (SSE2 is part of the
//! architecture, so no feature detection is needed); elsewhere eight bytes at a time in a `u64`.

/// One window's width: the bits of a `u64`.
const WINDOW_BYTES: usize = 64;

/// The line ends of a text, found in order.
///
/// Searches must not go backwards: each [`LineEnds::find`] starts at or after the previous one.
#[derive(Debug)]
pub(super) struct LineEnds<'b> {
    bytes: &'b [u8],
    /// Where the current window starts.
    window_start: usize,
    /// The current window's line ends not yet passed: bit `i` is `bytes[window_start + i]`.
    mask: u64,
}

impl<'b> LineEnds<'b> {
    pub(super) fn new(bytes: &'b [u8]) -> LineEnds<'b> {
        LineEnds {
            bytes,
            window_start: 0,
            mask: window_mask(bytes, 0),
        }
    }

    /// The first CR or LF at or after `from` (which must not be before the previous search).
    #[inline(always)]
    pub(super) fn find(&mut self, from: usize) -> Option<usize> {
        let mut offset = from.wrapping_sub(self.window_start);
        loop {
            if offset < WINDOW_BYTES {
                let ahead = self.mask & (u64::MAX << offset);
                if ahead != 0 {
                    self.mask = ahead;
                    return Some(self.window_start + ahead.trailing_zeros() as usize);
                }
            }
            let next = self.window_start + WINDOW_BYTES;
            if next >= self.bytes.len() {
                self.mask = 0;
                return None;
            }
            self.window_start = next;
            self.mask = window_mask(self.bytes, next);
            offset = offset.saturating_sub(WINDOW_BYTES);
        }
    }
}

/// The line ends of the 64 bytes at `start` (fewer at the end of `bytes`), as bits.
#[inline(always)]
fn window_mask(bytes: &[u8], start: usize) -> u64 {
    let rest = bytes.get(start..).unwrap_or_default();
    match rest.first_chunk::<WINDOW_BYTES>() {
        Some(window) => line_end_mask(window),
        None => {
            // The last, short window: padded with bytes that are not line ends.
            let mut window = [0u8; WINDOW_BYTES];
            window[..rest.len()].copy_from_slice(rest);
            line_end_mask(&window)
        }
    }
}

/// Bit `i` is set when `window[i]` is a CR or LF.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn line_end_mask(window: &[u8; WINDOW_BYTES]) -> u64 {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    let cr = set_splat_i8_m128i(b'\r' as i8);
    let lf = set_splat_i8_m128i(b'\n' as i8);
    let (blocks, _) = window.as_chunks::<16>();
    let mut mask = 0;
    for (at, block) in blocks.iter().enumerate() {
        let bytes = load_unaligned_m128i(block);
        let ends = cmp_eq_mask_i8_m128i(bytes, cr) | cmp_eq_mask_i8_m128i(bytes, lf);
        // `movemask` gives 16 bits, zero-extended into the i32.
        mask |= u64::from(move_mask_i8_m128i(ends) as u16) << (at * 16);
    }
    mask
}

/// Bit `i` is set when `window[i]` is a CR or LF.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn line_end_mask(window: &[u8; WINDOW_BYTES]) -> u64 {
    line_end_mask_portable(window)
}

/// Bit `i` is set when `window[i]` is a CR or LF: eight bytes at a time in a `u64`.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn line_end_mask_portable(window: &[u8; WINDOW_BYTES]) -> u64 {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const LOWS: u64 = u64::from_le_bytes([0x7F; 8]);
    /// The high bit of each byte of `word` that is zero (exactly: no borrow crosses bytes).
    fn zero_bytes(word: u64) -> u64 {
        !(((word & LOWS) + LOWS) | word | LOWS)
    }
    let mut mask = 0;
    for (at, word) in window.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let word = u64::from_le_bytes(bytes);
        let ends = zero_bytes(word ^ (ONES * u64::from(b'\r')))
            | zero_bytes(word ^ (ONES * u64::from(b'\n')));
        // Gathers the eight high bits into the top byte: each lands alone, so nothing carries.
        let bits = ((ends >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        mask |= bits << (at * 8);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn naive(bytes: &[u8]) -> Vec<usize> {
        (0..bytes.len())
            .filter(|&at| bytes[at] == b'\r' || bytes[at] == b'\n')
            .collect()
    }

    fn found(bytes: &[u8]) -> Vec<usize> {
        let mut ends = LineEnds::new(bytes);
        let mut seen = Vec::new();
        let mut from = 0;
        while let Some(at) = ends.find(from) {
            seen.push(at);
            from = at + 1;
        }
        seen
    }

    #[test]
    fn every_line_end_is_found_at_every_position_and_length() {
        // Lengths around one, two and three windows; a CR, LF or both at every position, and
        // bytes near CR and LF (and with the high bit) everywhere else.
        for len in (0..200).chain([255, 256, 257]) {
            for at in 0..len {
                for end in [&b"\r"[..], b"\n", b"\r\n"] {
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'a', 0x0B, 0x0C, 0x0E, 0x09, 0x8A, 0x8D, 0][i % 8])
                        .collect();
                    let tail = (at + end.len()).min(len);
                    bytes[at..tail].copy_from_slice(&end[..tail - at]);
                    assert_eq!(found(&bytes), naive(&bytes), "len {len}, at {at}");
                }
            }
        }
        let all = [b'\n'; 130];
        assert_eq!(found(&all), naive(&all));
    }

    #[test]
    fn searches_may_skip_ahead_several_windows() {
        let mut bytes = [b'x'; 300];
        for at in [3, 70, 200, 299] {
            bytes[at] = b'\n';
        }
        let mut ends = LineEnds::new(&bytes);
        assert_eq!(ends.find(0), Some(3));
        assert_eq!(ends.find(4), Some(70));
        assert_eq!(ends.find(150), Some(200));
        assert_eq!(ends.find(299), Some(299));
        assert_eq!(ends.find(300), None);
    }

    #[test]
    fn the_portable_mask_agrees_with_each_byte() {
        for byte in 0..=255u8 {
            for at in 0..WINDOW_BYTES {
                let mut window = [b'\n'; WINDOW_BYTES];
                window[at] = byte;
                let expected = if byte == b'\r' || byte == b'\n' {
                    u64::MAX
                } else {
                    !(1 << at)
                };
                assert_eq!(line_end_mask_portable(&window), expected);
                assert_eq!(line_end_mask(&window), expected);
            }
        }
    }
}
