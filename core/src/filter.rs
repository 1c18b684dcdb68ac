//! Subscriber filters from the query string: `types=` (sluice) and `categories=` (Dashtam).
//!
//! Both parameters accept comma lists and repetition (`types=job,worker&types=queue`). Values are
//! checked before the stream opens, so a bad filter is a 400 with a message naming the value, not a
//! stream that breaks after its headers went out (Dashtam's `validate_categories` fails inside the
//! generator).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest filter value in bytes (the same bound as an event name).
const VALUE_BYTES_MAX: usize = 128;

/// Most values one parameter may carry, counting repetitions.
const VALUES_MAX: usize = 64;

/// Which events a subscriber wants.
///
/// A type value matches an event name equal to it, or starting with it followed by `:` or `.`:
/// `job` matches `job`, `job:state_change` and `job.x`, but not `jobs`. Categories match exactly.
/// When both parameters are given, an event must match both; an event without a category never
/// matches a category filter.
///
/// A filter serializes (as `{"types":[..]|null,"categories":[..]|null}`) so that it can ride with a
/// subscriber's socket while its hub hibernates.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Filter {
    types: Option<Vec<String>>,
    categories: Option<Vec<String>>,
}

impl Filter {
    /// The filter that lets every event through.
    #[must_use]
    pub fn all() -> Self {
        Filter::default()
    }

    /// Reads `types` and `categories` from a raw query string (with or without its leading `?`),
    /// checking every value against `vocabulary`. Other parameters are ignored.
    pub fn from_query(query: &str, vocabulary: &Vocabulary<'_>) -> Result<Filter, FilterError> {
        let query = query.strip_prefix('?').unwrap_or(query);
        let mut filter = Filter::all();
        // URL Standard, application/x-www-form-urlencoded parsing:
        // "1. Let sequences be the result of splitting input on 0x26 (&)."
        for sequence in query.as_bytes().split(|&byte| byte == b'&') {
            // "2.1. If bytes is the empty byte sequence, then continue."
            if sequence.is_empty() {
                continue;
            }
            // "2.2. If bytes contains a 0x3D (=), then let name be the bytes from the start of
            // bytes up to but excluding its first 0x3D (=), and let value be the bytes,
            // if any, after the first 0x3D (=) up to the end of bytes. ... Otherwise,
            // let name have the value of bytes and let value be the empty
            // byte sequence."
            let (name, value) = match sequence.iter().position(|&byte| byte == b'=') {
                Some(at) => (&sequence[..at], &sequence[at + 1..]),
                None => (sequence, &[][..]),
            };
            let param = match form_decode(name).as_slice() {
                b"types" => FilterParam::Types,
                b"categories" => FilterParam::Categories,
                _ => continue,
            };
            let value = form_decode(value);
            let (known, values) = match param {
                FilterParam::Types => (vocabulary.types, &mut filter.types),
                FilterParam::Categories => (vocabulary.categories, &mut filter.categories),
            };
            let values = values.get_or_insert_with(Vec::new);
            for item in value.split(|&byte| byte == b',') {
                let item = check_value(param, item, known)?;
                if values.contains(&item) {
                    continue;
                }
                if values.len() == VALUES_MAX {
                    return Err(FilterError::new(
                        param,
                        FilterErrorKind::TooMany,
                        item.as_bytes(),
                    ));
                }
                values.push(item);
            }
        }
        Ok(filter)
    }

    /// Whether an event with this name and category passes the filter.
    #[must_use]
    pub fn matches(&self, name: &str, category: Option<&str>) -> bool {
        let type_ok = self
            .types
            .as_ref()
            .is_none_or(|types| types.iter().any(|value| type_matches(value, name)));
        let category_ok = self.categories.as_ref().is_none_or(|categories| {
            category.is_some_and(|category| categories.iter().any(|value| value == category))
        });
        type_ok && category_ok
    }

    /// The `types` values, in order of first appearance (`None` when the parameter was absent).
    #[must_use]
    pub fn types(&self) -> Option<&[String]> {
        self.types.as_deref()
    }

    /// The `categories` values, in order of first appearance (`None` when the parameter was
    /// absent).
    #[must_use]
    pub fn categories(&self) -> Option<&[String]> {
        self.categories.as_deref()
    }
}

fn type_matches(value: &str, name: &str) -> bool {
    match name.strip_prefix(value) {
        Some("") => true,
        Some(rest) => rest.starts_with([':', '.']),
        None => false,
    }
}

/// The namespace of a type value: everything before its first `:` or `.`.
fn namespace(value: &str) -> &str {
    value.split([':', '.']).next().unwrap_or(value)
}

fn check_value(
    param: FilterParam,
    item: &[u8],
    known: Option<&[&str]>,
) -> Result<String, FilterError> {
    let fail = |kind| Err(FilterError::new(param, kind, item));
    if item.is_empty() {
        return fail(FilterErrorKind::Empty);
    }
    if item.len() > VALUE_BYTES_MAX {
        return fail(FilterErrorKind::TooLong);
    }
    if let Some(&byte) = item
        .iter()
        .find(|&&byte| !(byte.is_ascii_alphanumeric() || b"_-.:".contains(&byte)))
    {
        return fail(FilterErrorKind::ForbiddenByte(byte));
    }
    // Only ASCII is left, so this conversion is lossless.
    let item = String::from_utf8_lossy(item).into_owned();
    let is_known = known.is_none_or(|known| {
        known.iter().any(|&entry| {
            entry == item || (param == FilterParam::Types && entry == namespace(&item))
        })
    });
    if !is_known {
        return fail(FilterErrorKind::Unknown);
    }
    Ok(item)
}

/// Percent-decodes one name or value of a form-encoded query.
fn form_decode(input: &[u8]) -> Vec<u8> {
    let mut output = Vec::with_capacity(input.len());
    let mut index = 0;
    while let Some(&byte) = input.get(index) {
        index += 1;
        match byte {
            // URL Standard, urlencoded parsing 2.3: "Replace any 0x2B (+) in name and value with
            // 0x20 (SP)." This runs before percent-decoding, so "%2B" still yields a
            // literal '+'.
            b'+' => output.push(b' '),
            // URL Standard, percent-decode: "Otherwise, if byte is 0x25 (%) and the next two bytes
            // after byte in input are not in the ranges 0x30 (0) to 0x39 (9), 0x41 (A)
            // to 0x46 (F), and 0x61 (a) to 0x66 (f), all inclusive, append byte to
            // output. Otherwise: let bytePoint be the two bytes after byte in input,
            // decoded, and then interpreted as hexadecimal number. Append a byte whose value
            // is bytePoint to output. Skip the next two bytes in input."
            b'%' => match (
                input.get(index).and_then(hex_value),
                input.get(index + 1).and_then(hex_value),
            ) {
                (Some(high), Some(low)) => {
                    output.push((high << 4) | low);
                    index += 2;
                }
                // A stray '%' stays literal; in a filter value it is then rejected as a forbidden
                // byte.
                _ => output.push(b'%'),
            },
            _ => output.push(byte),
        }
    }
    output
}

fn hex_value(byte: &u8) -> Option<u8> {
    char::from(*byte)
        .to_digit(16)
        .and_then(|digit| u8::try_from(digit).ok())
}

/// Which type namespaces and names and which categories a deployment knows.
///
/// `None` for a parameter means "any syntactically valid value". A type value is known when it, or
/// its namespace (the part before its first `:` or `.`), is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vocabulary<'a> {
    types: Option<&'a [&'a str]>,
    categories: Option<&'a [&'a str]>,
}

impl Vocabulary<'static> {
    /// Dashtam's event categories (`SSEEventCategory`).
    pub const DASHTAM_CATEGORIES: &'static [&'static str] = &[
        "data_sync",
        "provider",
        "ai",
        "import",
        "portfolio",
        "security",
    ];

    /// Any syntactically valid type and category.
    #[must_use]
    pub const fn open() -> Self {
        Vocabulary {
            types: None,
            categories: None,
        }
    }

    /// sluice.sh: types `job`, `worker`, `queue` and `heartbeat` (and names inside those
    /// namespaces, like `job:state_change`). sluice events have no categories, so any
    /// `categories` value is unknown.
    #[must_use]
    pub const fn sluice() -> Self {
        Vocabulary {
            types: Some(&["job", "worker", "queue", "heartbeat"]),
            categories: Some(&[]),
        }
    }

    /// Dashtam: categories `data_sync`, `provider`, `ai`, `import`, `portfolio` and `security`; any
    /// type.
    #[must_use]
    pub const fn dashtam() -> Self {
        Vocabulary {
            types: None,
            categories: Some(Self::DASHTAM_CATEGORIES),
        }
    }
}

impl<'a> Vocabulary<'a> {
    /// Whether `category` belongs to this vocabulary: a publisher may only tag events with
    /// categories a subscriber could select. Any category belongs to a vocabulary without a
    /// category list.
    #[must_use]
    pub fn knows_category(&self, category: &str) -> bool {
        self.categories
            .is_none_or(|known| known.contains(&category))
    }

    /// A custom vocabulary (`None`: any syntactically valid value).
    #[must_use]
    pub const fn custom(types: Option<&'a [&'a str]>, categories: Option<&'a [&'a str]>) -> Self {
        Vocabulary { types, categories }
    }
}

/// The query parameter a [`FilterError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterParam {
    /// `types=`.
    Types,
    /// `categories=`.
    Categories,
}

impl FilterParam {
    /// The parameter name as it appears in the query.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FilterParam::Types => "types",
            FilterParam::Categories => "categories",
        }
    }
}

impl fmt::Display for FilterParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a filter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FilterErrorKind {
    /// The value is empty (`types=`, `types=a,,b`, or a bare `types`).
    Empty,
    /// The value is longer than 128 bytes.
    TooLong,
    /// The value has a byte outside `A-Z a-z 0-9 _ - . :` (after percent-decoding).
    ForbiddenByte(u8),
    /// The parameter has more than 64 values.
    TooMany,
    /// The value is well-formed but not in the vocabulary.
    Unknown,
}

/// A rejected filter value, naming the parameter and the value (percent-decoded, cut to 128 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    param: FilterParam,
    kind: FilterErrorKind,
    value: String,
}

impl FilterError {
    fn new(param: FilterParam, kind: FilterErrorKind, value: &[u8]) -> Self {
        // Cut before converting so an attacker-sized value cannot make an attacker-sized error
        // message.
        let value =
            String::from_utf8_lossy(&value[..value.len().min(VALUE_BYTES_MAX)]).into_owned();
        FilterError { param, kind, value }
    }

    /// The parameter the value came from.
    #[must_use]
    pub fn param(&self) -> FilterParam {
        self.param
    }

    /// What is wrong with the value.
    #[must_use]
    pub fn kind(&self) -> FilterErrorKind {
        self.kind
    }

    /// The offending value (percent-decoded, at most 128 bytes of it).
    #[must_use]
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` quotes the value and escapes control characters, so the message stays one clean
        // line.
        let (param, value) = (self.param, self.value.as_str());
        match self.kind {
            FilterErrorKind::Empty => write!(f, "empty value in parameter {param}"),
            FilterErrorKind::TooLong => {
                write!(
                    f,
                    "value {value:?} in parameter {param} is longer than {VALUE_BYTES_MAX} bytes"
                )
            }
            FilterErrorKind::ForbiddenByte(byte) => {
                write!(
                    f,
                    "value {value:?} in parameter {param} has forbidden byte 0x{byte:02x}"
                )
            }
            FilterErrorKind::TooMany => {
                write!(f, "parameter {param} has more than {VALUES_MAX} values")
            }
            FilterErrorKind::Unknown => write!(f, "unknown value {value:?} in parameter {param}"),
        }
    }
}

impl core::error::Error for FilterError {}
