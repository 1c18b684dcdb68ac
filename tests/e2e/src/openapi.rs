//! Reading OpenAPI documents and the worker's route table, for `tests/openapi.rs`: `$ref`
//! resolution, the documented operations, and the route table the worker's router matches against
//! (`edge-worker/src/route_table.rs`, included as it is).

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

// The worker's route table, included as it is: the same data the router matches against.
#[path = "../../../edge-worker/src/route_table.rs"]
#[allow(dead_code, unreachable_pub)]
mod worker_routes;

/// The `(method, path template)` pairs the worker serves, from its route table (templates
/// normalised like the document's, `{}` for every parameter).
pub fn route_table() -> BTreeSet<(String, String)> {
    worker_routes::ROUTES
        .iter()
        .map(|spec| (spec.method.to_string(), normalise(spec.template)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_normalise_their_parameters() {
        assert_eq!(
            normalise("/runner-jobs/{jobId}/events/stream"),
            "/runner-jobs/{}/events/stream"
        );
    }
}
