//! Reading OpenAPI documents and the worker's route table, for `tests/openapi.rs`: `$ref` resolution, the
//! documented operations, and a small reader of `route()`'s match arms in `edge-worker/src/routes.rs`.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::repo_root;

/// The keys of a path item that are operations (OpenAPI 3.1, "Path Item Object").
pub const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every status in the IANA HTTP Status Code Registry.
pub const REGISTERED_STATUSES: &[u16] = &[
    100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304,
    305, 307, 308, 400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
    416, 417, 421, 422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506,
    507, 508, 510, 511,
];

pub fn document_on_disk() -> Value {
    let path = repo_root().join("edge-worker/public/openapi.json");
    let text = std::fs::read_to_string(&path).expect("edge-worker/public/openapi.json");
    serde_json::from_str(&text).expect("openapi.json is JSON")
}

/// Follows `$ref`s (local ones, `#/...`) until a value that is not a reference.
pub fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(reference) = value.get("$ref").and_then(Value::as_str) else {
            return value;
        };
        value = pointer(doc, reference).unwrap_or_else(|| panic!("unresolved $ref {reference}"));
    }
    panic!("$ref chain too long at {value}")
}

pub fn pointer<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Calls `visit(json pointer, value)` for every value in `value`.
pub fn walk(value: &Value, at: &str, visit: &mut dyn FnMut(&str, &Value)) {
    visit(at, value);
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let key = key.replace('~', "~0").replace('/', "~1");
                walk(child, &format!("{at}/{key}"), visit);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                walk(child, &format!("{at}/{index}"), visit);
            }
        }
        _ => {}
    }
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path template, e.g. `/v1/streams/{connectionId}`.
    pub template: String,
    /// The operationId.
    pub id: String,
    /// The Operation Object.
    pub spec: Value,
}

pub fn operations(doc: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let item = resolve(doc, item);
        for method in OPERATION_KEYS {
            if let Some(spec) = item.get(method) {
                found.push(Operation {
                    method: method.to_ascii_uppercase(),
                    template: template.clone(),
                    id: spec["operationId"].as_str().unwrap_or("").to_string(),
                    spec: spec.clone(),
                });
            }
        }
    }
    found
}

/// `/v1/streams/{connectionId}/stats` -> `/v1/streams/{}/stats`: parameter names do not matter.
pub fn normalise(template: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in template.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// The route table in the worker's source.

/// The characters of `code` outside string and char literals, each with its byte offset and the bracket
/// depth before it, with `//` comments left out.
fn code_chars(code: &str) -> Vec<(usize, char, usize)> {
    let mut out = Vec::new();
    let mut chars = code.char_indices().peekable();
    let mut depth = 0usize;
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                // A string literal, reported as its quotes only.
                out.push((at, c, depth));
                while let Some((end, inner)) = chars.next() {
                    if inner == '\\' {
                        chars.next();
                    } else if inner == '"' {
                        out.push((end, inner, depth));
                        break;
                    }
                }
            }
            '\'' if code[at..].chars().nth(2) == Some('\'') => {
                chars.next();
                chars.next();
            }
            '/' if chars.peek().map(|(_, next)| *next) == Some('/') => {
                for (_, inner) in chars.by_ref() {
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '(' | '[' | '{' => {
                out.push((at, c, depth));
                depth += 1;
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                out.push((at, c, depth));
            }
            _ => out.push((at, c, depth)),
        }
    }
    out
}

/// The offset of the bracket that closes the one at `open`.
fn closing(code: &str, open: usize) -> usize {
    let chars = code_chars(&code[open..]);
    chars
        .iter()
        .skip(1)
        .find(|(_, c, depth)| *depth == 0 && matches!(c, ')' | ']' | '}'))
        .map(|(at, _, _)| open + at)
        .unwrap_or_else(|| panic!("unbalanced bracket at {open}"))
}

/// The offset of the first `needle` in `code` outside brackets, strings and comments.
fn top_level(code: &str, needle: &str) -> Option<usize> {
    code_chars(code)
        .into_iter()
        .find(|(at, _, depth)| *depth == 0 && code[*at..].starts_with(needle))
        .map(|(at, _, _)| at)
}

/// The string literals in `code`, in order.
fn literals(code: &str) -> Vec<&str> {
    let quotes: Vec<usize> = code_chars(code)
        .into_iter()
        .filter(|(_, c, _)| *c == '"')
        .map(|(at, _, _)| at)
        .collect();
    quotes
        .chunks(2)
        .filter(|pair| pair.len() == 2)
        .map(|pair| &code[pair[0] + 1..pair[1]])
        .collect()
}

/// The `(method, path template)` pairs of `route()`'s match arms. An arm is a slice pattern over the
/// path's segments (`"v1"` a literal segment, `id` a parameter) and its body ends with the method the
/// route allows (`["v1", "streams", id, "stats"] => (Route::Stats { .. }, "GET")` is
/// `GET /v1/streams/{}/stats`); the last HTTP method literal in an arm's body is that method.
pub fn route_table(source: &str) -> BTreeSet<(String, String)> {
    let start = source.find("fn route(").expect("fn route( in routes.rs");
    let code = &source[start..];
    let at = code
        .find("match segments.as_slice()")
        .expect("route() matches on segments.as_slice()");
    let open = at + code[at..].find('{').expect("match block");
    let mut arms = &code[open + 1..closing(code, open)];
    let mut table = BTreeSet::new();
    let mut fallback = false;
    while !arms.trim().is_empty() {
        let arrow = top_level(arms, "=>").unwrap_or_else(|| panic!("no `=>` in {arms}"));
        let pattern = arms[..arrow].trim();
        let rest = arms[arrow + 2..].trim_start();
        let (body, next) = if rest.starts_with('{') {
            let end = closing(rest, 0);
            (&rest[..=end], &rest[end + 1..])
        } else {
            let end = top_level(rest, ",").unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        };
        arms = next.trim_start().strip_prefix(',').unwrap_or(next);
        if pattern == "_" {
            assert!(body.contains("NotFound"), "the fallback arm is a 404");
            fallback = true;
            continue;
        }
        let inner = pattern
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
            .unwrap_or_else(|| panic!("route() arm is not a slice pattern: {pattern}"));
        let segments: Vec<String> = inner
            .split(',')
            .map(str::trim)
            .filter(|segment| !segment.is_empty())
            .map(|segment| {
                if let Some(literal) = segment.strip_prefix('"') {
                    literal.trim_end_matches('"').to_string()
                } else if segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    "{}".to_string()
                } else {
                    panic!("unsupported segment pattern {segment:?} in {pattern}")
                }
            })
            .collect();
        let method = literals(body)
            .into_iter()
            .rev()
            .find(|text| ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(text))
            .unwrap_or_else(|| panic!("no method literal in the arm for {pattern}"));
        table.insert((method.to_string(), format!("/{}", segments.join("/"))));
    }
    assert!(fallback, "route() ends with a `_` fallback arm");
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_parser_reads_slice_patterns_blocks_and_comments() {
        let source = r#"
            fn route(method: &Method, path: &str) -> ApiResult<Route> {
                let (route, allow) = match segments.as_slice() {
                    ["healthz"] => (Route::Health, "GET"),
                    ["v1", "streams", id, "stats"] => (
                        Route::Stats { connection: (*id).into() }, // "POST" in a comment
                        "GET",
                    ),
                    ["api", "events", "stream"] => {
                        let x = query(url, "connectionId").ok_or_else(|| bad("a \"POST\" {"));
                        if *method != Method::Get {
                            return Err(ApiError::MethodNotAllowed { allow: "GET" });
                        }
                        (Route::Subscribe { connection: x?, family: '}' }, "GET")
                    }
                    ["runner-jobs", job_id, "events",] => (Route::Publish, "POST"),
                    _ => return Err(ApiError::NotFound),
                };
            }"#;
        let table: Vec<(String, String)> = route_table(source).into_iter().collect();
        let expected = [
            ("GET", "/api/events/stream"),
            ("GET", "/healthz"),
            ("GET", "/v1/streams/{}/stats"),
            ("POST", "/runner-jobs/{}/events"),
        ];
        assert_eq!(
            table,
            expected
                .iter()
                .map(|(m, p)| (m.to_string(), p.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            normalise("/runner-jobs/{jobId}/events/stream"),
            "/runner-jobs/{}/events/stream"
        );
    }
}
