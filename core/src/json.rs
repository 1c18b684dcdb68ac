//! Checks on JSON that Herald stores and sends on as it came: an event's `data` and a plan body.
//!
//! Two things a JSON parser may let through that consumers cannot take:
//!
//! - Depth. RFC 8259 §9: "An implementation may set limits on the maximum depth of nesting." Most
//!   do: serde_json stops at 128 levels, Python's `json` at about 1,000, V8's `JSON.stringify`
//!   somewhat later. serde_json skips a value it keeps raw (`RawValue`, an ignored field) without
//!   counting its depth, so data nested 30,000 deep would be stored and fanned out to clients that
//!   cannot read it, and a plan's details, stored inside the session (about 3 levels more), could
//!   make the session unreadable for good. [`JSON_DEPTH_MAX`] is far below every one of those
//!   limits.
//! - Lone surrogates. RFC 8259 §8.2: the grammar "allows member names and string values to contain
//!   bit sequences that cannot encode Unicode characters; for example, "\uDEAD" (a single unpaired
//!   UTF-16 surrogate)", and "the behavior of software that receives JSON texts containing such
//!   values is unpredictable". serde_json refuses them when it decodes a string, but not in a value
//!   it keeps raw.
//!
//! `check` reads the text once, without allocating, and stops at the first flaw, so nesting deeper
//! than the limit costs no more than the limit.

use core::fmt;

/// The deepest nesting of arrays and objects Herald accepts in JSON it stores: in one event's
/// `data`, and in a whole plan body (so a plan's `details` nest at most 63 levels, and the trackers
/// they make, as stored and as sent, stay within about 66).
///
/// A scalar has depth 0, `[]` and `{}` depth 1, `{"a":[1]}` depth 2. Chosen well below serde_json's
/// recursion limit (128), which a stored plan session must stay under to be read back, and far
/// below the limits of the parsers consumers use (Python's `json`, `JSON.parse`).
pub const JSON_DEPTH_MAX: usize = 64;

/// What [`check`] found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JsonFlaw {
    /// Arrays and objects nest deeper than the limit.
    TooDeep,
    /// A `\u` escape of a UTF-16 surrogate without its other half.
    LoneSurrogate {
        /// The escaped code unit, e.g. `0xD800`.
        unit: u16,
    },
}

/// The escape as a client wrote it, for error messages: `\ud800`.
pub(crate) struct Escape(pub(crate) u16);

impl fmt::Display for Escape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\\u{:04x}", self.0)
    }
}

/// Checks JSON text for nesting deeper than `depth_max` and for lone surrogate escapes.
///
/// The text need not be valid JSON: only brackets outside strings and escapes inside them are read,
/// and the parser that reads the text afterwards reports anything else.
pub(crate) fn check(text: &[u8], depth_max: usize) -> Result<(), JsonFlaw> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut at = 0;
    while let Some(&byte) = text.get(at) {
        at += 1;
        if !in_string {
            match byte {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > depth_max {
                        return Err(JsonFlaw::TooDeep);
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = false,
            b'\\' => match text.get(at) {
                Some(b'u') => {
                    let Some(unit) = hex_unit(text, at + 1) else {
                        // Not four hex digits: the parser refuses it as a bad escape.
                        at += 1;
                        continue;
                    };
                    at += 5;
                    // RFC 8259 §7: a character outside the BMP is "a 12-character sequence,
                    // encoding the UTF-16 surrogate pair": a high surrogate
                    // escape, then a low one.
                    if is_high_surrogate(unit) {
                        let low = (text.get(at..at + 2) == Some(b"\\u"))
                            .then(|| hex_unit(text, at + 2))
                            .flatten()
                            .filter(|&low| is_low_surrogate(low));
                        if low.is_none() {
                            return Err(JsonFlaw::LoneSurrogate { unit });
                        }
                        at += 6;
                    } else if is_low_surrogate(unit) {
                        return Err(JsonFlaw::LoneSurrogate { unit });
                    }
                }
                // Any other escape is two bytes; skip the escaped one so that `\"` ends no string.
                Some(_) => at += 1,
                None => {}
            },
            _ => {}
        }
    }
    Ok(())
}

/// The four hex digits at `at`, as a UTF-16 code unit.
fn hex_unit(text: &[u8], at: usize) -> Option<u16> {
    let digits = text.get(at..at + 4)?;
    digits.iter().try_fold(0u16, |unit, &digit| {
        let value = (digit as char).to_digit(16)?;
        Some(unit << 4 | value as u16)
    })
}

fn is_high_surrogate(unit: u16) -> bool {
    (0xD800..=0xDBFF).contains(&unit)
}

fn is_low_surrogate(unit: u16) -> bool {
    (0xDC00..=0xDFFF).contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};

    fn nested(depth: usize) -> String {
        let mut text = String::new();
        for _ in 0..depth {
            text.push_str("{\"a\":[");
        }
        text.push('1');
        for _ in 0..depth {
            text.push_str("]}");
        }
        text
    }

    #[test]
    fn depth_counts_arrays_and_objects() {
        assert_eq!(check(b"1", 0), Ok(()));
        assert_eq!(check(b"[]", 0), Err(JsonFlaw::TooDeep));
        assert_eq!(check(b"[]", 1), Ok(()));
        assert_eq!(check(br#"{"a":[1]}"#, 2), Ok(()));
        assert_eq!(check(br#"{"a":[1]}"#, 1), Err(JsonFlaw::TooDeep));
        // Siblings do not add up.
        assert_eq!(check(br#"[[1],[2],{"a":{}},[3]]"#, 3), Ok(()));
        assert_eq!(
            check(br#"[[1],[2],{"a":{}},[3]]"#, 2),
            Err(JsonFlaw::TooDeep)
        );
        // Each level of `nested` is an object and an array.
        assert_eq!(check(nested(32).as_bytes(), 64), Ok(()));
        assert_eq!(check(nested(33).as_bytes(), 64), Err(JsonFlaw::TooDeep));
        assert_eq!(
            check("[".repeat(30_000).as_bytes(), JSON_DEPTH_MAX),
            Err(JsonFlaw::TooDeep)
        );
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        assert_eq!(check(br#"["[[[[", "{{{{"]"#, 1), Ok(()));
        // An escaped quote does not end the string.
        assert_eq!(check(br#"["\"[[[[", "\\", "]"]"#, 1), Ok(()));
        assert_eq!(check(br#"["\\"]"#, 1), Ok(()));
    }

    #[test]
    fn lone_surrogates_are_found_and_pairs_pass() {
        let cases: [(&str, Result<(), JsonFlaw>); 10] = [
            (r#""\ud83d\ude00""#, Ok(())),
            (r#""\uD83D\uDE00""#, Ok(())),
            (r#"{"\ud83d\ude00":1}"#, Ok(())),
            (r#""\u00e9\u0041""#, Ok(())),
            (r#""\ud800""#, Err(JsonFlaw::LoneSurrogate { unit: 0xD800 })),
            (
                r#""\ud800x""#,
                Err(JsonFlaw::LoneSurrogate { unit: 0xD800 }),
            ),
            (
                r#""\ud800\u0041""#,
                Err(JsonFlaw::LoneSurrogate { unit: 0xD800 }),
            ),
            (
                r#""\ud800\ud800""#,
                Err(JsonFlaw::LoneSurrogate { unit: 0xD800 }),
            ),
            (r#""\udc00""#, Err(JsonFlaw::LoneSurrogate { unit: 0xDC00 })),
            (
                r#"{"k\uDFFF":1}"#,
                Err(JsonFlaw::LoneSurrogate { unit: 0xDFFF }),
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(check(text.as_bytes(), 8), expected, "{text}");
        }
        // An escaped backslash before `u` is no escape.
        assert_eq!(check(br#""\\ud800""#, 8), Ok(()));
        // Outside strings, nothing is an escape (the parser refuses it).
        assert_eq!(check(br#"\ud800"#, 8), Ok(()));
        assert_eq!(Escape(0xD800).to_string(), "\\ud800");
    }

    #[test]
    fn truncated_escapes_do_not_panic() {
        for text in [
            r#""\"#,
            r#""\u"#,
            r#""\ud8"#,
            r#""\ud800\"#,
            r#""\ud800\udc"#,
            r#""\uzzzz""#,
        ] {
            let _ = check(text.as_bytes(), 8);
        }
        assert_eq!(
            check(br#""\ud800\udc"#, 8),
            Err(JsonFlaw::LoneSurrogate { unit: 0xD800 })
        );
    }
}
