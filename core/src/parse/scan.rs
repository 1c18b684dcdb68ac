//! Finding line ends: the CR and LF bytes of a text, 64 bytes at a time as a bit mask.
//!
//! A text is scanned once, in order, one 64-byte window at a time, and only as far as the lines
//! read so far: each line end is then a `tzcnt` of the window's mask rather than a call to a
//! search function. On x86_64 a window's mask is four SSE2 compares (SSE2 is part of the
//! architecture, so no feature detection is needed); elsewhere eight bytes at a time in a `u64`.

/// One window's width: the bits of a `u64`.
const WINDOW_BYTES: usize = 64;

/// The line ends of `bytes`, one 64-byte window at a time: the window's start and its mask, in
/// which bit `i` is set when `bytes[start + i]` is a CR or LF.
#[inline(always)]
pub(super) fn line_end_masks(bytes: &[u8]) -> impl Iterator<Item = (usize, u64)> + '_ {
    let (windows, tail) = bytes.as_chunks::<WINDOW_BYTES>();
    let tail_start = windows.len() * WINDOW_BYTES;
    let whole = windows
        .iter()
        .enumerate()
        .map(|(at, window)| (at * WINDOW_BYTES, line_end_mask(window)));
    // The last, short window: padded with bytes that are not line ends.
    let short = (!tail.is_empty()).then(|| {
        let mut window = [0u8; WINDOW_BYTES];
        window[..tail.len()].copy_from_slice(tail);
        (tail_start, line_end_mask(&window))
    });
    whole.chain(short)
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
        let mut seen = Vec::new();
        for (start, mut mask) in line_end_masks(bytes) {
            while mask != 0 {
                seen.push(start + mask.trailing_zeros() as usize);
                mask &= mask - 1;
            }
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
