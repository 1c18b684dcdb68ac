//! Offsets (PROTOCOL.md §8): opaque, lexicographically sortable tokens, and the two sentinels.
//!
//! Herald's offset is the stream's logical position (bytes for byte streams, stored message bytes
//! for JSON streams) written as two 16-digit decimal halves, `{high}_{low}` with `position = high *
//! 10^16 + low`: fixed width, so string order is numeric order, and every `u64` fits. It has the
//! shape of the reference server's offsets (the conformance suite writes the zero offset as
//! `0000000000000000_0000000000000000`). §8: "Offsets are single tokens and MUST NOT contain `,`,
//! `&`, `=`, `?`, or `/`"; digits and `_` never do, and neither sentinel (`-1`, `now`) can be
//! minted.

use alloc::string::String;
use core::fmt;

/// How many characters an offset token has (16 digits, `_`, 16 digits).
pub const OFFSET_DIGITS: usize = 33;

const HALF: u64 = 10_000_000_000_000_000;

/// A position in a stream, as minted by the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub u64);

impl Offset {
    /// The start of every stream.
    pub const START: Offset = Offset(0);

    /// The token sent to clients (`Stream-Next-Offset`, `streamNextOffset`).
    #[must_use]
    pub fn encode(self) -> String {
        alloc::format!("{self}")
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016}_{:016}", self.0 / HALF, self.0 % HALF)
    }
}

/// Where a read starts (the `offset` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// `-1` or no parameter: the beginning of the stream.
    Start,
    /// `now`: the tail at the time of the request.
    Now,
    /// A server-minted offset.
    At(Offset),
}

/// Why an offset token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetError {
    /// The parameter was present but empty.
    Empty,
    /// The token is neither a sentinel nor an offset this server mints.
    Malformed,
}

impl fmt::Display for OffsetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffsetError::Empty => f.write_str("the offset is empty"),
            OffsetError::Malformed => {
                f.write_str("the offset is not -1, now, or an offset this server returned")
            }
        }
    }
}

impl core::error::Error for OffsetError {}

/// Parses a token as an offset minted by [`Offset::encode`].
pub fn parse_offset(token: &str) -> Result<Offset, OffsetError> {
    if token.is_empty() {
        return Err(OffsetError::Empty);
    }
    let (high, low) = token.split_once('_').ok_or(OffsetError::Malformed)?;
    let digits = |half: &str| half.len() == 16 && half.bytes().all(|b| b.is_ascii_digit());
    if !digits(high) || !digits(low) {
        return Err(OffsetError::Malformed);
    }
    let high: u64 = high.parse().map_err(|_| OffsetError::Malformed)?;
    let low: u64 = low.parse().map_err(|_| OffsetError::Malformed)?;
    high.checked_mul(HALF)
        .and_then(|h| h.checked_add(low))
        .map(Offset)
        .ok_or(OffsetError::Malformed)
}

/// Parses the `offset` query parameter; `None` (absent) reads from the start.
///
/// §8: "`-1` (Stream Beginning) ... semantically equivalent to omitting the offset parameter";
/// "`now` ... skip all existing data and begin reading from the current tail position".
pub fn parse_read_from(parameter: Option<&str>) -> Result<ReadFrom, OffsetError> {
    match parameter {
        None | Some("-1") => Ok(ReadFrom::Start),
        Some("now") => Ok(ReadFrom::Now),
        Some(token) => parse_offset(token).map(ReadFrom::At),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels_and_tokens() {
        assert_eq!(parse_read_from(None), Ok(ReadFrom::Start));
        assert_eq!(parse_read_from(Some("-1")), Ok(ReadFrom::Start));
        assert_eq!(parse_read_from(Some("now")), Ok(ReadFrom::Now));
        assert_eq!(parse_read_from(Some("")), Err(OffsetError::Empty));
        for bad in [
            "-2",
            "abc",
            "1",
            "0000000000000000000a",
            "000000000000000000000",
            "99999999999999999999",
        ] {
            assert_eq!(
                parse_read_from(Some(bad)),
                Err(OffsetError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(Offset(5).encode(), "0000000000000000_0000000000000005");
        assert_eq!(
            parse_offset("0000000000000000_0000000000000005"),
            Ok(Offset(5))
        );
        assert_eq!(
            parse_offset(&Offset(u64::MAX).encode()),
            Ok(Offset(u64::MAX))
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn order_is_string_order(a: u64, b: u64) {
                prop_assert_eq!(a.cmp(&b), Offset(a).encode().cmp(&Offset(b).encode()));
                prop_assert_eq!(parse_offset(&Offset(a).encode()), Ok(Offset(a)));
            }
        }
    }
}
