//! The OpenAPI document served at `/openapi.json`, held against the worker it describes: it is well
//! formed (OpenAPI 3.1, every `$ref` resolves, unique operationIds, real statuses); it lists
//! exactly the routes of the worker's route table (`edge-worker/src/route_table.rs`, which the
//! router matches against); every documented operation answers the live worker with a documented
//! status, headers and error code; every other method on a documented path is a 405 naming the
//! documented one; and an OpenAPI validator from npm accepts it (and refuses a broken copy).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use herald_core::Scope;
use herald_e2e::clients::run_node;
use herald_e2e::openapi::{
    document_on_disk, normalise, operations, pointer, resolve, route_table, walk, Operation,
    OPERATION_KEYS, REGISTERED_STATUSES,
};
use herald_e2e::{full_token, repo_root, request, token, unique, Subscription, Wrangler};
use serde_json::Value;

#[test]
fn the_document_lists_exactly_the_routes_of_the_worker() {
    let table = route_table();
    let doc = document_on_disk();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|op| (op.method, normalise(&op.template)))
        .collect();
    let undocumented: Vec<_> = table.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&table).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "routes the worker serves but openapi.json does not document: {undocumented:?}; \
         operations openapi.json documents but route() does not serve: {not_served:?}"
    );
}

// ---------------------------------------------------------------------------------------------------
// The document itself.

fn check_well_formed(doc: &Value) {
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "OpenAPI 3.1.x, got {version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut references = 0;
    walk(doc, "", &mut |at, value| {
        if let Some(reference) = value.get("$ref") {
            let reference = reference.as_str().expect("$ref is a string");
            assert!(
                pointer(doc, reference).is_some(),
                "$ref {reference} at {at} does not resolve"
            );
            references += 1;
        }
        if let Some(mapping) = value.get("discriminator").and_then(|d| d.get("mapping")) {
            for target in mapping.as_object().expect("mapping").values() {
                let target = target.as_str().expect("mapping target");
                assert!(
                    pointer(doc, target).is_some(),
                    "discriminator mapping {target} at {at} does not resolve"
                );
            }
        }
    });
    assert!(references > 20, "the document shares its schemas by $ref");

    let ops = operations(doc);
    assert!(!ops.is_empty(), "the document has operations");
    let mut ids = BTreeSet::new();
    for op in &ops {
        let name = format!("{} {}", op.method, op.template);
        assert!(!op.id.is_empty(), "{name} has no operationId");
        assert!(ids.insert(op.id.clone()), "operationId {} twice", op.id);
        let responses = op.spec["responses"].as_object().expect("responses");
        assert!(!responses.is_empty(), "{name} documents no response");
        for (code, response) in responses {
            let status: u16 = code
                .parse()
                .unwrap_or_else(|_| panic!("{name}: response key {code:?} is not a status"));
            assert!(
                REGISTERED_STATUSES.contains(&status),
                "{name}: {status} is not an HTTP status"
            );
            assert!(
                resolve(doc, response)["description"].is_string(),
                "{name} {status} has no description"
            );
        }
        // Every `{name}` in the template is a required path parameter, and there are no others.
        let in_template: BTreeSet<String> = op
            .template
            .split('{')
            .skip(1)
            .map(|rest| rest.split('}').next().unwrap_or("").to_string())
            .collect();
        let declared: BTreeSet<String> = parameters(doc, op)
            .into_iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{name}: path parameters are required");
                p["name"].as_str().expect("name").to_string()
            })
            .collect();
        assert_eq!(in_template, declared, "{name}: path parameters");
    }
    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for op in &ops {
        let op_tags = op.spec["tags"]
            .as_array()
            .expect("every operation is tagged");
        for tag in op_tags {
            let tag = tag.as_str().expect("tag");
            assert!(tags.contains(tag), "{}: tag {tag} is not declared", op.id);
        }
    }
}

fn parameters<'a>(doc: &'a Value, op: &'a Operation) -> Vec<&'a Value> {
    op.spec["parameters"]
        .as_array()
        .map(|list| list.iter().map(|p| resolve(doc, p)).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------
// Answers against what the document says.

/// An answer from the worker, whichever client got it.
#[derive(Debug)]
struct Seen {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The `error` codes a documented error response allows (`enum` or `const` on its `error` property,
/// possibly inside `allOf`), or every code of the `ErrorCode` schema.
fn allowed_codes(doc: &Value, schema: &Value) -> BTreeSet<String> {
    let schema = resolve(doc, schema);
    let mut codes = BTreeSet::new();
    let mut parts = vec![schema];
    if let Some(all) = schema["allOf"].as_array() {
        parts.extend(all.iter().map(|part| resolve(doc, part)));
    }
    for part in parts {
        let error = resolve(doc, &part["properties"]["error"]);
        if let Some(values) = error["enum"].as_array() {
            codes = values
                .iter()
                .map(|v| v.as_str().expect("code").to_string())
                .collect();
        }
        if let Some(value) = error["const"].as_str() {
            codes = BTreeSet::from([value.to_string()]);
        }
    }
    codes
}

/// Checks an answer against one documented response: its media type, its required headers (and
/// their `const` values), an empty body where no content is documented, and for errors the Error
/// schema's required fields and a documented code.
fn check_response(doc: &Value, what: &str, response: &Value, seen: &Seen) {
    let response = resolve(doc, response);
    let content_type = seen.header("content-type").map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let content = response["content"].as_object();
    match (content, &content_type) {
        (Some(content), Some(media)) => assert!(
            content.contains_key(media.as_str()),
            "{what}: content-type {media} is not documented ({:?})",
            content.keys().collect::<Vec<_>>()
        ),
        (Some(_), None) => panic!("{what}: no content-type, but content is documented"),
        (None, _) => assert!(
            seen.body.is_empty(),
            "{what}: a body where the document has none: {}",
            seen.body
        ),
    }
    if let Some(headers) = response["headers"].as_object() {
        for (name, header) in headers {
            let header = resolve(doc, header);
            let value = seen.header(name);
            if header["required"] == true {
                assert!(value.is_some(), "{what}: documented header {name} missing");
            }
            if let (Some(value), Some(expected)) = (value, header["schema"]["const"].as_str()) {
                assert_eq!(value, expected, "{what}: header {name}");
            }
        }
    }
    if seen.status >= 400 {
        let body: Value = serde_json::from_str(&seen.body)
            .unwrap_or_else(|e| panic!("{what}: error body is not JSON ({e}): {:?}", seen.body));
        let error_schema = &doc["components"]["schemas"]["Error"];
        for field in error_schema["required"].as_array().expect("Error.required") {
            let field = field.as_str().expect("field name");
            assert!(
                body[field].is_string(),
                "{what}: error body lacks {field}: {body}"
            );
        }
        if error_schema["additionalProperties"] == false {
            let known = error_schema["properties"].as_object().expect("properties");
            for key in body.as_object().expect("object").keys() {
                assert!(known.contains_key(key), "{what}: undocumented field {key}");
            }
        }
        let schema = &response["content"]["application/json"]["schema"];
        let codes = allowed_codes(doc, schema);
        let code = body["error"].as_str().unwrap_or("");
        assert!(
            codes.contains(code),
            "{what}: error {code:?} is not documented for {}: {codes:?}",
            seen.status
        );
    }
}

/// Checks an answer to a documented operation: a documented status, never the route-level 404 or a
/// 405, never a 5xx, and the documented response's shape.
fn check_operation_answer(doc: &Value, op: &Operation, probe: &str, seen: &Seen) -> u16 {
    let what = format!("{} {} ({probe})", op.method, op.template);
    let responses = op.spec["responses"].as_object().expect("responses");
    let response = responses.get(&seen.status.to_string()).unwrap_or_else(|| {
        panic!(
            "{what}: status {} is not documented ({:?}); body: {}",
            seen.status,
            responses.keys().collect::<Vec<_>>(),
            seen.body
        )
    });
    assert!(
        !seen.body.contains("\"not_found\"") && seen.status != 405,
        "{what}: the route itself was refused: {} {}",
        seen.status,
        seen.body
    );
    assert!(
        seen.status < 500,
        "{what}: server error {}: {}",
        seen.status,
        seen.body
    );
    check_response(doc, &what, response, seen);
    seen.status
}

fn is_stream(doc: &Value, op: &Operation) -> bool {
    resolve(doc, &op.spec["responses"]["200"])["content"]
        .get("text/event-stream")
        .is_some()
}

/// Sends one request for `op`. A stream is opened over a raw socket, its headers read and the
/// connection dropped; any other answer is read whole.
fn send(
    base: &str,
    doc: &Value,
    op: &Operation,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Seen {
    if op.method == "GET" && is_stream(doc, op) {
        let sub = Subscription::open(base, path, bearer, &[]);
        let streaming = sub
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let mut body = Vec::new();
        if !streaming && sub.status != 204 {
            // An error: its JSON body, which the subscription's reader hands on as raw bytes.
            let deadline = Instant::now() + Duration::from_secs(10);
            while serde_json::from_slice::<Value>(&body).is_err() && Instant::now() < deadline {
                body.extend(sub.raw_bytes());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let seen = Seen {
            status: sub.status,
            headers: sub.headers.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        };
        sub.abort();
        return seen;
    }
    let answer = request(&op.method, &format!("{base}{path}"), bearer, body);
    Seen {
        status: answer.status,
        headers: answer.headers,
        body: answer.body,
    }
}

/// What fills an operation's parameters in one probe.
struct Fill<'a> {
    /// Every path parameter and every required query parameter.
    id: &'a str,
    /// Leave the required query parameters out.
    omit_required_query: bool,
    /// Extra query text (`name=value&...`).
    extra_query: &'a str,
}

fn url_for(doc: &Value, op: &Operation, fill: &Fill<'_>) -> String {
    let mut path = String::new();
    let mut in_param = false;
    for c in op.template.chars() {
        match c {
            '{' => {
                in_param = true;
                path.push_str(fill.id);
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => path.push(c),
        }
    }
    let mut query: Vec<String> = parameters(doc, op)
        .into_iter()
        .filter(|p| p["in"] == "query" && p["required"] == true && !fill.omit_required_query)
        .map(|p| format!("{}={}", p["name"].as_str().expect("name"), fill.id))
        .collect();
    if !fill.extra_query.is_empty() {
        query.push(fill.extra_query.to_string());
    }
    if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

/// The request body examples of an operation, by name (`example` is named "example").
fn body_examples(op: &Operation) -> Vec<(String, String)> {
    let media = &op.spec["requestBody"]["content"]["application/json"];
    let mut found = Vec::new();
    if let Some(example) = media.get("example") {
        found.push(("example".to_string(), example.to_string()));
    }
    if let Some(examples) = media["examples"].as_object() {
        for (name, example) in examples {
            found.push((name.clone(), example["value"].to_string()));
        }
    }
    found
}

/// A minimal valid body for an operation that takes one: its first example, else its schema's
/// example, else `{}`.
fn valid_body(doc: &Value, op: &Operation) -> Option<String> {
    let media = &op.spec["requestBody"]["content"]["application/json"];
    if media.is_null() {
        return None;
    }
    let schema_example = &resolve(doc, &media["schema"])["example"];
    Some(match body_examples(op).into_iter().next() {
        Some((_, body)) => body,
        None if !schema_example.is_null() => schema_example.to_string(),
        None => "{}".to_string(),
    })
}

/// Dashtam's stream is the user's that the token names (its one `user.<userId>` stream).
const DASHTAM_OP: &str = "subscribeDashtamEvents";

/// A token with both scopes that `op` accepts: every stream of `tenant`, or for Dashtam's stream
/// the user `id`'s.
fn bearer_for(op: &Operation, tenant: &str, id: &str) -> String {
    if op.id == DASHTAM_OP {
        let user = format!("user.{id}");
        token(
            tenant,
            &[Scope::Publish, Scope::Subscribe],
            Some(&[&user]),
            3600,
        )
    } else {
        full_token(tenant)
    }
}

/// The one operation whose success needs state first: a plan runner reports on an open plan.
fn setup(base: &str, op: &Operation, bearer: &str) {
    if op.id == "reportPlanStage" {
        let opened = request(
            "POST",
            &format!("{base}/api/plan"),
            Some(bearer),
            Some("{}"),
        );
        assert_eq!(opened.status, 204, "open a plan: {}", opened.body);
    }
}

#[test]
fn the_served_document_is_well_formed_and_the_one_in_the_repository() {
    let wrangler = Wrangler::start(&[]);
    let answer = request("GET", &wrangler.url("/openapi.json"), None, None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        answer.header("content-type")
    );
    let served = answer.json();
    assert_eq!(
        served,
        document_on_disk(),
        "the served document is the file"
    );
    check_well_formed(&served);
    // As the document says of itself: the asset layer, not the Worker, refuses other methods on it.
    let posted = request("POST", &wrangler.url("/openapi.json"), None, Some("{}"));
    assert_eq!(
        (posted.status, posted.body.as_str()),
        (405, ""),
        "POST /openapi.json"
    );
}

#[test]
fn every_documented_operation_answers_a_documented_status() {
    let wrangler = Wrangler::start(&[]);
    let base = wrangler.base.as_str();
    let doc = document_on_disk();
    let ops = operations(&doc);
    let mut statuses_seen = BTreeSet::new();
    for op in &ops {
        // A tenant of its own per operation, so no probe sees another's state.
        let tenant = unique("openapi");
        let id = unique("probe");
        let bearer = bearer_for(op, &tenant, &id);
        let secured = op.spec["security"]
            .as_array()
            .is_none_or(|schemes| !schemes.is_empty());
        let plain = Fill {
            id: &id,
            omit_required_query: false,
            extra_query: "",
        };
        let mut probe = |name: &str, fill: &Fill<'_>, bearer: Option<&str>, body: Option<&str>| {
            let seen = send(base, &doc, op, &url_for(&doc, op, fill), bearer, body);
            let status = check_operation_answer(&doc, op, name, &seen);
            statuses_seen.insert((op.id.clone(), status));
            status
        };

        // With valid credentials and a valid body: a success.
        setup(base, op, &bearer);
        let body = valid_body(&doc, op);
        let status = probe("valid", &plain, Some(&bearer), body.as_deref());
        assert!(
            (200..300).contains(&status),
            "{}: a valid request gets {status}",
            op.id
        );
        // Every value of every enumerated query parameter is accepted.
        for param in parameters(&doc, op) {
            let Some(values) = param["schema"]["enum"].as_array() else {
                continue;
            };
            for value in values {
                let query = format!(
                    "{}={}",
                    param["name"].as_str().unwrap(),
                    value.as_str().unwrap()
                );
                let fill = Fill {
                    extra_query: &query,
                    ..plain
                };
                let status = probe(&query, &fill, Some(&bearer), body.as_deref());
                assert!(
                    (200..300).contains(&status),
                    "{}: {query} gets {status}",
                    op.id
                );
            }
        }
        // Every documented example body gets a documented answer (some need state a fresh tenant
        // lacks).
        for (name, example) in body_examples(op) {
            let tenant = unique("openapi");
            let bearer = bearer_for(op, &tenant, &id);
            setup(base, op, &bearer);
            probe(
                &format!("example {name}"),
                &plain,
                Some(&bearer),
                Some(&example),
            );
        }
        // A ticket, where the operation takes one (minted for the stream it reads: the SQLMesh
        // stream is the connection id `default`).
        if op.spec["security"]
            .as_array()
            .is_some_and(|schemes| schemes.iter().any(|s| s.get("ticket").is_some()))
        {
            let connection = if op.template.contains('{')
                || parameters(&doc, op)
                    .iter()
                    .any(|p| p["in"] == "query" && p["required"] == true)
            {
                id.clone()
            } else if op.id == DASHTAM_OP {
                format!("user.{id}")
            } else {
                "default".to_string()
            };
            let minted = request(
                "POST",
                &wrangler.url("/v1/tickets"),
                Some(&bearer),
                Some(&format!(r#"{{"connectionId":"{connection}"}}"#)),
            );
            assert_eq!(minted.status, 200, "{}", minted.body);
            let ticket = minted.json()["ticket"]
                .as_str()
                .expect("ticket")
                .to_string();
            let query = format!("ticket={ticket}");
            let fill = Fill {
                extra_query: &query,
                ..plain
            };
            let status = probe("ticket", &fill, None, body.as_deref());
            assert_eq!(status, 200, "{}: a ticket for its stream", op.id);
        }
        // Without credentials: 401 (or the answer, on the one open route).
        let status = probe("no credentials", &plain, None, body.as_deref());
        // A session is made for whatever streams its token names, and the stream directory lists
        // them: there is no stream to be forbidden.
        if secured && !["createSession", "listStreams"].contains(&op.id.as_str()) {
            assert_eq!(status, 401, "{}: no credentials", op.id);
            // A token limited to another stream: 403.
            let elsewhere = token(
                &tenant,
                &[Scope::Publish, Scope::Subscribe],
                Some(&["elsewhere"]),
                600,
            );
            let status = probe(
                "another stream's token",
                &plain,
                Some(&elsewhere),
                body.as_deref(),
            );
            assert_eq!(status, 403, "{}: a token for another stream", op.id);
        } else if secured {
            assert_eq!(status, 401, "{}: no credentials", op.id);
        } else {
            assert_eq!(status, 200, "{}: needs no credentials", op.id);
        }
        // Bad input, where there is input to get wrong: a 400 (a 422 on SQLMesh's plan bodies, as
        // SQLMesh's FastAPI answers).
        if body.is_some() {
            let status = probe("malformed body", &plain, Some(&bearer), Some("{not json"));
            assert!(
                matches!(status, 400 | 422),
                "{}: malformed body gets {status}",
                op.id
            );
        }
        if op.template.contains('{') {
            let fill = Fill {
                id: "bad%20id",
                ..plain
            };
            let status = probe(
                "invalid path parameter",
                &fill,
                Some(&bearer),
                body.as_deref(),
            );
            assert_eq!(status, 400, "{}: invalid id", op.id);
        }
        for param in parameters(&doc, op) {
            if param["in"] != "query" {
                continue;
            }
            if param["required"] == true {
                let fill = Fill {
                    omit_required_query: true,
                    ..plain
                };
                let status = probe("required query missing", &fill, Some(&bearer), None);
                assert_eq!(status, 400, "{}: without {}", op.id, param["name"]);
            }
            // A value its pattern forbids (a line feed in a filter value).
            if param["schema"]["items"]["pattern"].is_string() {
                let query = format!("{}=bad%0Avalue", param["name"].as_str().unwrap());
                let fill = Fill {
                    extra_query: &query,
                    ..plain
                };
                let status = probe(&query, &fill, Some(&bearer), None);
                assert_eq!(status, 400, "{}: {query}", op.id);
            }
        }
    }
    // The probes reached every operation and more than its success.
    let probed: BTreeSet<&str> = statuses_seen.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(probed.len(), ops.len());
    let codes: BTreeSet<u16> = statuses_seen.iter().map(|(_, status)| *status).collect();
    for status in [200, 204, 400, 401, 403, 409] {
        assert!(
            codes.contains(&status),
            "no probe saw a {status}: {codes:?}"
        );
    }
}

#[test]
fn every_other_method_is_a_405_naming_the_documented_ones() {
    let wrangler = Wrangler::start(&[]);
    let doc = document_on_disk();
    let bearer = full_token("acme");
    let method_not_allowed = &doc["components"]["responses"]["MethodNotAllowed"];
    let not_found = &doc["components"]["responses"]["NotFound"];
    let mut checked = 0;
    for (template, item) in doc["paths"].as_object().expect("paths") {
        let item = resolve(&doc, item);
        let documented: Vec<String> = OPERATION_KEYS
            .iter()
            .filter(|m| item.get(**m).is_some())
            .map(|m| m.to_ascii_uppercase())
            .collect();
        let path = normalise(template).replace("{}", "c1");
        let url = wrangler.url(&path);
        // OPTIONS is the CORS preflight on every path (204), not a route's method.
        for method in ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let answer = request(method, &url, Some(&bearer), None);
            let what = format!("{method} {path}");
            assert_eq!(answer.status, 405, "{what}: {}", answer.body);
            assert_eq!(
                answer.header("allow"),
                Some(documented.join(", ").as_str()),
                "{what}: Allow"
            );
            let seen = Seen {
                status: answer.status,
                headers: answer.headers,
                body: answer.body,
            };
            // A HEAD answer has no body to check.
            if method != "HEAD" {
                check_response(&doc, &what, method_not_allowed, &seen);
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} method probes");
    // And a path the document does not list is the route-level 404.
    for path in ["/v1/streams/c1/nope", "/api", "/v1/tickets/c1"] {
        let answer = request("GET", &wrangler.url(path), Some(&bearer), None);
        let seen = Seen {
            status: answer.status,
            headers: answer.headers,
            body: answer.body,
        };
        assert_eq!(seen.status, 404, "GET {path}");
        check_response(&doc, &format!("GET {path}"), not_found, &seen);
    }
}

#[test]
fn an_openapi_validator_accepts_the_document_and_refuses_a_broken_copy() {
    let good = repo_root().join("edge-worker/public/openapi.json");
    let mut broken = document_on_disk();
    broken["components"]["schemas"]
        .as_object_mut()
        .expect("schemas")
        .remove("Error");
    let broken_path = std::env::temp_dir().join(format!("{}.json", unique("openapi-broken")));
    std::fs::write(&broken_path, broken.to_string()).expect("write broken copy");
    let result = run_node(
        "openapi_validate.mjs",
        &serde_json::json!({ "documents": [good, &broken_path] }),
        Duration::from_secs(60),
    );
    let _ = std::fs::remove_file(&broken_path);
    let results = result["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{result}");
    assert_eq!(
        results[0]["valid"], true,
        "the validator refuses openapi.json: {}",
        results[0]
    );
    assert_eq!(results[0]["specification"], "OpenAPI");
    assert_eq!(
        results[0]["warnings"].as_array().map(Vec::len),
        Some(0),
        "{}",
        results[0]
    );
    assert_eq!(
        results[1]["valid"], false,
        "the validator accepts a document with dangling $refs, so it checks nothing: {}",
        results[1]
    );
}
