//! Finding line ends: the bytes of a text that may be a CR or LF, 64 bytes at a time as a bit mask.
//!
//! The text is walked one 64-byte window at a time; the caller reads a window's mask bit by bit
//! (`tzcnt`, then clear the lowest bit), so a line end costs no call to a search function. To keep
//! the scan to two vector operations per 16 bytes, a mask marks every byte from 0x08 to 0x0F (CR
//! and LF, and BS, TAB, VT, FF, SO, SI): the caller skips a marked byte that is not a CR or LF.
//! Text rarely holds the other six (JSON, for one, cannot hold them raw inside a string). On x86_64
//! a window's mask takes four SSE2 compares, through `safe_arch`'s safe wrappers (herald-core
//! forbids `unsafe`; SSE2 is part of the architecture, so no feature detection is needed);
//! elsewhere it is computed eight bytes at a time in a `u64`.

/// One window's width: the bits of a `u64`.
const WINDOW_BYTES: usize = 64;

/// The possible line ends of `bytes`, one 64-byte window at a time: the window's start and its
/// mask, in which bit `i` is set when `bytes[start + i]` is from 0x08 to 0x0F (every CR and LF is
/// so marked).
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

/// Bit `i` is set when `window[i]` is from 0x08 to 0x0F.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[inline(always)]
fn line_end_mask(window: &[u8; WINDOW_BYTES]) -> u64 {
    use safe_arch::{
        cmp_eq_mask_i8_m128i, load_unaligned_m128i, move_mask_i8_m128i, set_splat_i8_m128i,
    };
    // The bytes 0x08 to 0x0F, CR and LF among them, are those that are 0x0F once their three
    // low bits are set.
    let low_bits = set_splat_i8_m128i(0x07);
    let candidate = set_splat_i8_m128i(0x0F);
    let (blocks, _) = window.as_chunks::<16>();
    let mut mask = 0;
    for (at, block) in blocks.iter().enumerate() {
        let bytes = load_unaligned_m128i(block) | low_bits;
        let ends = cmp_eq_mask_i8_m128i(bytes, candidate);
        // `movemask` gives 16 bits, zero-extended into the i32.
        mask |= u64::from(move_mask_i8_m128i(ends) as u16) << (at * 16);
    }
    mask
}

/// Bit `i` is set when `window[i]` is from 0x08 to 0x0F.
#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
#[inline(always)]
fn line_end_mask(window: &[u8; WINDOW_BYTES]) -> u64 {
    line_end_mask_portable(window)
}

/// Bit `i` is set when `window[i]` is from 0x08 to 0x0F: eight bytes at a time in a `u64`.
#[cfg_attr(all(target_arch = "x86_64", target_feature = "sse2"), allow(dead_code))]
#[inline(always)]
fn line_end_mask_portable(window: &[u8; WINDOW_BYTES]) -> u64 {
    const LOW_BITS: u64 = u64::from_le_bytes([0x07; 8]);
    const CANDIDATE: u64 = u64::from_le_bytes([0x0F; 8]);
    const LOWS: u64 = u64::from_le_bytes([0x7F; 8]);
    let mut mask = 0;
    for (at, word) in window.chunks_exact(8).enumerate() {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        // Zero where the byte, its three low bits set, is 0x0F.
        let word = (u64::from_le_bytes(bytes) | LOW_BITS) ^ CANDIDATE;
        // The high bit of each zero byte (exactly: no carry crosses bytes).
        let zero_bytes = !(((word & LOWS) + LOWS) | word | LOWS);
        // Gathers the eight high bits into the top byte: each lands alone, so nothing carries.
        let bits = ((zero_bytes >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        mask |= bits << (at * 8);
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn marked(byte: u8) -> bool {
        (0x08..=0x0F).contains(&byte)
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
    fn every_marked_byte_is_found_at_every_position_and_length() {
        // Lengths around one, two and three windows; a CR, LF or CRLF at every position, among
        // bytes near 0x08 to 0x0F (and with the high bit) everywhere else.
        for len in (0..200).chain([255, 256, 257]) {
            for at in 0..len {
                for end in [&b"\r"[..], b"\n", b"\r\n"] {
                    let mut bytes: Vec<u8> = (0..len)
                        .map(|i| [b'a', 0x07, 0x10, 0x0B, 0x09, 0x8A, 0x8D, 0, 0xFF][i % 9])
                        .collect();
                    let tail = (at + end.len()).min(len);
                    bytes[at..tail].copy_from_slice(&end[..tail - at]);
                    let expected: Vec<usize> = (0..len).filter(|&i| marked(bytes[i])).collect();
                    assert_eq!(found(&bytes), expected, "len {len}, at {at}");
                }
            }
        }
    }

    #[test]
    fn both_masks_mark_exactly_the_bytes_from_0x08_to_0x0f() {
        for byte in 0..=255u8 {
            for at in 0..WINDOW_BYTES {
                let mut window = [b'\n'; WINDOW_BYTES];
                window[at] = byte;
                let expected = if marked(byte) { u64::MAX } else { !(1 << at) };
                assert_eq!(
                    line_end_mask_portable(&window),
                    expected,
                    "{byte:#x} at {at}"
                );
                assert_eq!(line_end_mask(&window), expected, "{byte:#x} at {at}");
            }
        }
    }
}
