//! Publish bodies: accepted shapes, every error kind, all-or-nothing batches and each limit at and
//! over its value.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::auth::IdentifierError;
use herald_core::publish::PublishError;
use herald_core::{parse_publish, NewEvent, PublishLimits};

/// An event as plain strings, so tables can state expectations without constructing names.
type Plain = (&'static str, &'static str, Option<&'static str>);

fn plain(events: &[NewEvent]) -> Vec<(String, String, Option<String>)> {
    events
        .iter()
        .map(|e| {
            (
                e.name.as_str().to_owned(),
                e.data.clone(),
                e.category.clone(),
            )
        })
        .collect()
}

fn owned(events: &[Plain]) -> Vec<(String, String, Option<String>)> {
    events
        .iter()
        .map(|(n, d, c)| (n.to_string(), d.to_string(), c.map(str::to_string)))
        .collect()
}

#[test]
fn accepted_bodies() {
    let cases: &[(&str, &[Plain])] = &[
        (r#"{"event":"job.done"}"#, &[("job.done", "", None)]),
        (
            r#"{"event":"note","data":"hello"}"#,
            &[("note", "hello", None)],
        ),
        // A JSON string is the text itself: not re-quoted, escapes decoded.
        (
            r#"{"event":"note","data":"a \"b\"\nc"}"#,
            &[("note", "a \"b\"\nc", None)],
        ),
        (r#"{"event":"note","data":""}"#, &[("note", "", None)]),
        // Any other JSON value is re-serialised compactly.
        (
            r#"{"event":"n","data": { "a" : [1, 2.5, true, null] } }"#,
            &[("n", r#"{"a":[1,2.5,true,null]}"#, None)],
        ),
        (r#"{"event":"n","data":42}"#, &[("n", "42", None)]),
        (r#"{"event":"n","data":null}"#, &[("n", "null", None)]),
        (r#"{"event":"n","data":false}"#, &[("n", "false", None)]),
        (r#"{"event":"n","data":[]}"#, &[("n", "[]", None)]),
        (
            r#"{"event":"n","data":"{\"a\": 1}"}"#,
            &[("n", r#"{"a": 1}"#, None)],
        ),
        (
            r#"{"data":1,"category":"ai","event":"ai.response.chunk"}"#,
            &[("ai.response.chunk", "1", Some("ai"))],
        ),
        (r#"{"event":"n","category":null}"#, &[("n", "", None)]),
        (
            r#"{"event":"plan-overview","category":"data_sync_2"}"#,
            &[("plan-overview", "", Some("data_sync_2"))],
        ),
        (
            r#"{"event":"job:state_change é"}"#,
            &[("job:state_change é", "", None)],
        ),
        (
            r#"[{"event":"a"},{"event":"b","data":"x"}]"#,
            &[("a", "", None), ("b", "x", None)],
        ),
        (
            r#"{"events":[{"event":"a"},{"event":"b","data":{"k":"v"}}]}"#,
            &[("a", "", None), ("b", r#"{"k":"v"}"#, None)],
        ),
        (" \n[ {\"event\" : \"a\"} ]\n ", &[("a", "", None)]),
    ];
    for (body, expected) in cases {
        let events = parse_publish(body.as_bytes(), &PublishLimits::default())
            .unwrap_or_else(|error| panic!("{body}: {error}"));
        assert_eq!(plain(&events), owned(expected), "{body}");
    }
}

fn unknown(index: Option<usize>, field: &str) -> PublishError {
    PublishError::UnknownField {
        index,
        field: field.to_string(),
    }
}

#[test]
fn refused_bodies() {
    let long_key = format!(r#"{{"event":"a","{}":1}}"#, "k".repeat(100));
    let long_category = format!(r#"{{"event":"a","category":"{}"}}"#, "c".repeat(65));
    let cases: Vec<(&str, String, PublishError)> = vec![
        (
            "empty body",
            String::new(),
            PublishError::Malformed { line: 1, column: 0 },
        ),
        (
            "not json",
            "event=a".into(),
            PublishError::Malformed { line: 1, column: 1 },
        ),
        (
            "truncated",
            r#"{"event":"a""#.into(),
            PublishError::Malformed {
                line: 1,
                column: 12,
            },
        ),
        (
            "trailing garbage",
            r#"{"event":"a"} x"#.into(),
            PublishError::Malformed {
                line: 1,
                column: 15,
            },
        ),
        (
            "two objects",
            r#"{"event":"a"}{"event":"b"}"#.into(),
            PublishError::Malformed {
                line: 1,
                column: 14,
            },
        ),
        ("string body", r#""hello""#.into(), PublishError::NotABatch),
        ("number body", "7".into(), PublishError::NotABatch),
        ("null body", "null".into(), PublishError::NotABatch),
        (
            "events not an array",
            r#"{"events":{"event":"a"}}"#.into(),
            PublishError::NotABatch,
        ),
        (
            "events null",
            r#"{"events":null}"#.into(),
            PublishError::NotABatch,
        ),
        ("empty array", "[]".into(), PublishError::EmptyBatch),
        (
            "empty events",
            r#"{"events":[]}"#.into(),
            PublishError::EmptyBatch,
        ),
        (
            "empty object",
            "{}".into(),
            PublishError::MissingEvent { index: 0 },
        ),
        (
            "item not an object",
            r#"[{"event":"a"},"b"]"#.into(),
            PublishError::NotAnObject { index: 1 },
        ),
        (
            "item an array",
            r#"{"events":[[]]}"#.into(),
            PublishError::NotAnObject { index: 0 },
        ),
        (
            "nested batch",
            r#"[[{"event":"a"}]]"#.into(),
            PublishError::NotAnObject { index: 0 },
        ),
        (
            "typo in field",
            r#"{"event":"a","dta":"x"}"#.into(),
            unknown(Some(0), "dta"),
        ),
        (
            "typo in event key",
            r#"{"evnt":"a"}"#.into(),
            unknown(Some(0), "evnt"),
        ),
        (
            "typo in batch item",
            r#"[{"event":"a"},{"event":"b","catgory":"x"}]"#.into(),
            unknown(Some(1), "catgory"),
        ),
        (
            "events after fields",
            r#"{"event":"a","events":[]}"#.into(),
            unknown(Some(0), "events"),
        ),
        (
            "key beside events",
            r#"{"events":[{"event":"a"}],"event":"b"}"#.into(),
            unknown(None, "event"),
        ),
        (
            "long unknown key cut",
            long_key,
            unknown(Some(0), &"k".repeat(64)),
        ),
        (
            "duplicate event",
            r#"{"event":"a","event":"b"}"#.into(),
            PublishError::DuplicateField {
                index: 0,
                field: "event",
            },
        ),
        (
            "duplicate data",
            r#"[{"event":"a"},{"data":1,"event":"b","data":2}]"#.into(),
            PublishError::DuplicateField {
                index: 1,
                field: "data",
            },
        ),
        (
            "missing event",
            r#"{"data":"x"}"#.into(),
            PublishError::MissingEvent { index: 0 },
        ),
        (
            "missing event in batch",
            r#"[{"event":"a"},{"event":"b"},{"data":1}]"#.into(),
            PublishError::MissingEvent { index: 2 },
        ),
        (
            "event null",
            r#"{"event":null}"#.into(),
            PublishError::WrongType {
                index: 0,
                field: "event",
                expected: "a string",
            },
        ),
        (
            "event number",
            r#"{"event":1}"#.into(),
            PublishError::WrongType {
                index: 0,
                field: "event",
                expected: "a string",
            },
        ),
        (
            "category number",
            r#"{"event":"a","category":1}"#.into(),
            PublishError::WrongType {
                index: 0,
                field: "category",
                expected: "a string or null",
            },
        ),
        (
            "category empty",
            r#"{"event":"a","category":""}"#.into(),
            invalid_category(0, IdentifierError::Empty),
        ),
        (
            "category uppercase",
            r#"{"event":"a","category":"Data"}"#.into(),
            invalid_category(
                0,
                IdentifierError::ForbiddenByte {
                    byte: b'D',
                    index: 0,
                },
            ),
        ),
        (
            "category dot",
            r#"{"event":"a","category":"data.sync"}"#.into(),
            invalid_category(
                0,
                IdentifierError::ForbiddenByte {
                    byte: b'.',
                    index: 4,
                },
            ),
        ),
        (
            "category dash",
            r#"{"event":"a","category":"data-sync"}"#.into(),
            invalid_category(
                0,
                IdentifierError::ForbiddenByte {
                    byte: b'-',
                    index: 4,
                },
            ),
        ),
        (
            "category too long",
            long_category,
            invalid_category(
                0,
                IdentifierError::TooLong {
                    len_bytes: 65,
                    bytes_max: 64,
                },
            ),
        ),
    ];
    for (name, body, expected) in cases {
        let got = parse_publish(body.as_bytes(), &PublishLimits::default());
        assert_eq!(got, Err(expected), "{name}");
        assert!(!got.unwrap_err().is_too_large(), "{name} is a 400");
    }
}

fn invalid_category(index: usize, error: IdentifierError) -> PublishError {
    PublishError::InvalidCategory { index, error }
}

#[test]
fn refused_event_names_name_the_index() {
    // The name error itself comes from `EventName` (encode.rs); this pins the field and the index.
    let long_name = format!(r#"{{"event":"{}"}}"#, "n".repeat(129));
    let cases: Vec<(&str, String, usize)> = vec![
        ("empty", r#"{"event":""}"#.into(), 0),
        ("LF", r#"{"event":"a\nb"}"#.into(), 0),
        (
            "CR in batch",
            r#"[{"event":"ok"},{"event":"a\rb"}]"#.into(),
            1,
        ),
        (
            "CRLF in events",
            r#"{"events":[{"event":"ok"},{"event":"ok"},{"event":"a\r\nb"}]}"#.into(),
            2,
        ),
        ("NUL", r#"{"event":"a\u0000b"}"#.into(), 0),
        ("too long", long_name, 0),
    ];
    for (name, body, expected_index) in cases {
        let got = parse_publish(body.as_bytes(), &PublishLimits::default());
        match &got {
            Err(error @ PublishError::InvalidEvent { index, .. }) => {
                assert_eq!(*index, expected_index, "{name}");
                assert!(!error.is_too_large(), "{name}");
                assert!(
                    error.to_string().contains("field `event`"),
                    "{name}: {error}"
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let at_limit = format!(r#"{{"event":"{}"}}"#, "n".repeat(128));
    assert!(parse_publish(at_limit.as_bytes(), &PublishLimits::default()).is_ok());
}

#[test]
fn a_bad_item_rejects_the_whole_batch() {
    // Whatever position the bad item takes, nothing is returned: the result is the error, not a
    // partial batch.
    let good = r#"{"event":"ok","data":1}"#;
    let bad = r#"{"event":"ok","dat":1}"#;
    for len in 1..=5 {
        for bad_index in 0..len {
            let items: Vec<&str> = (0..len)
                .map(|i| if i == bad_index { bad } else { good })
                .collect();
            for body in [
                format!("[{}]", items.join(",")),
                format!(r#"{{"events":[{}]}}"#, items.join(",")),
            ] {
                assert_eq!(
                    parse_publish(body.as_bytes(), &PublishLimits::default()),
                    Err(unknown(Some(bad_index), "dat")),
                    "{body}"
                );
            }
        }
        let all_good = format!("[{}]", vec![good; len].join(","));
        assert_eq!(
            parse_publish(all_good.as_bytes(), &PublishLimits::default())
                .unwrap()
                .len(),
            len
        );
    }
}

/// A single event whose body is exactly `body_bytes` long: `{"event":"e","data":"xxx"}`.
fn body_of_len(body_bytes: usize) -> String {
    let frame = r#"{"event":"e","data":""}"#;
    let body = format!(
        r#"{{"event":"e","data":"{}"}}"#,
        "x".repeat(body_bytes - frame.len())
    );
    assert_eq!(body.len(), body_bytes);
    body
}

#[test]
fn body_size_limit_at_and_over() {
    let limits = PublishLimits {
        batch_bytes_max: 100,
        ..PublishLimits::default()
    };
    assert!(parse_publish(body_of_len(100).as_bytes(), &limits).is_ok());
    let over = parse_publish(body_of_len(101).as_bytes(), &limits).unwrap_err();
    assert_eq!(
        over,
        PublishError::BodyTooLarge {
            body_bytes: 101,
            bytes_max: 100
        }
    );
    assert!(over.is_too_large());
    // Checked before parsing: an oversized body that is not even JSON is still a 413, not a 400.
    let junk = vec![b'{'; 101];
    assert_eq!(
        parse_publish(&junk, &limits),
        Err(PublishError::BodyTooLarge {
            body_bytes: 101,
            bytes_max: 100
        })
    );
    assert_eq!(PublishLimits::default().batch_bytes_max, 1024 * 1024);
}

#[test]
fn bodies_and_composed_events_outside_a_batch_obey_the_same_limits() {
    let limits = PublishLimits {
        event_bytes_max: 10,
        batch_bytes_max: 20,
        ..PublishLimits::default()
    };
    assert_eq!(limits.check_body(&[b' '; 20]), Ok(()));
    let over = limits.check_body(&[b' '; 21]).unwrap_err();
    assert_eq!(
        over,
        PublishError::BodyTooLarge {
            body_bytes: 21,
            bytes_max: 20
        }
    );
    assert!(over.is_too_large());
    assert_eq!(limits.check_composed(["", "0123456789"]), Ok(()));
    let over = limits
        .check_composed(["{}", "0123456789", "0123456789a", "0123456789ab"])
        .unwrap_err();
    assert_eq!(
        over,
        PublishError::EventTooLarge {
            index: 2,
            data_bytes: 11,
            bytes_max: 10
        },
        "the first one over is named"
    );
    assert!(over.is_too_large());
}

#[test]
fn event_count_limit_at_and_over() {
    let limits = PublishLimits {
        batch_events_max: 3,
        ..PublishLimits::default()
    };
    for (count, ok) in [(1, true), (3, true), (4, false), (10, false)] {
        let items = vec![r#"{"event":"e"}"#; count].join(",");
        for body in [format!("[{items}]"), format!(r#"{{"events":[{items}]}}"#)] {
            let got = parse_publish(body.as_bytes(), &limits);
            if ok {
                assert_eq!(got.unwrap().len(), count, "{body}");
            } else {
                let error = got.unwrap_err();
                assert_eq!(
                    error,
                    PublishError::TooManyEvents { events_max: 3 },
                    "{body}"
                );
                assert!(error.is_too_large());
            }
        }
    }
    let default_max = PublishLimits::default().batch_events_max;
    assert_eq!(default_max, 100);
    let at = format!("[{}]", vec![r#"{"event":"e"}"#; default_max].join(","));
    let over = format!("[{}]", vec![r#"{"event":"e"}"#; default_max + 1].join(","));
    assert_eq!(
        parse_publish(at.as_bytes(), &PublishLimits::default())
            .unwrap()
            .len(),
        default_max
    );
    assert_eq!(
        parse_publish(over.as_bytes(), &PublishLimits::default()),
        Err(PublishError::TooManyEvents {
            events_max: default_max
        })
    );
}

#[test]
fn event_data_limit_at_and_over() {
    let limits = PublishLimits {
        event_bytes_max: 8,
        ..PublishLimits::default()
    };
    let cases: &[(&str, Option<usize>)] = &[
        // Text data counts its decoded bytes: "\n" is one byte, "é" two.
        (r#"{"event":"e","data":"12345678"}"#, None),
        (r#"{"event":"e","data":"123456789"}"#, Some(9)),
        (r#"{"event":"e","data":"1234567\n"}"#, None),
        (r#"{"event":"e","data":"éééé"}"#, None),
        (r#"{"event":"e","data":"ééééé"}"#, Some(10)),
        // JSON data counts its compact form: `{"a": 1}` with spaces is `{"a":1}`, 7 bytes.
        (r#"{"event":"e","data":{ "a" :  1 }}"#, None),
        (r#"{"event":"e","data":[1,2,3,4]}"#, Some(9)),
        (r#"{"event":"e","data":12345678}"#, None),
    ];
    for (body, over) in cases {
        let got = parse_publish(body.as_bytes(), &limits);
        match over {
            None => assert!(got.is_ok(), "{body}: {got:?}"),
            Some(data_bytes) => {
                let error = got.unwrap_err();
                assert_eq!(
                    error,
                    PublishError::EventTooLarge {
                        index: 0,
                        data_bytes: *data_bytes,
                        bytes_max: 8
                    },
                    "{body}"
                );
                assert!(error.is_too_large());
            }
        }
    }
    // In a batch the error names the oversized event and rejects the rest.
    let batch = r#"[{"event":"e","data":"ok"},{"event":"e","data":"much too long"}]"#;
    assert_eq!(
        parse_publish(batch.as_bytes(), &limits),
        Err(PublishError::EventTooLarge {
            index: 1,
            data_bytes: 13,
            bytes_max: 8
        })
    );
    assert_eq!(PublishLimits::default().event_bytes_max, 64 * 1024);
}

#[test]
fn errors_display_lowercase_and_name_the_place() {
    let cases: Vec<(PublishError, &str)> = vec![
        (
            PublishError::BodyTooLarge {
                body_bytes: 2,
                bytes_max: 1,
            },
            "body is 2 bytes, over the limit of 1",
        ),
        (
            PublishError::TooManyEvents { events_max: 3 },
            "batch holds more than 3 events",
        ),
        (
            PublishError::EventTooLarge {
                index: 4,
                data_bytes: 9,
                bytes_max: 8,
            },
            "event 4: data is 9 bytes, over the limit of 8",
        ),
        (
            PublishError::Malformed { line: 1, column: 5 },
            "body is not valid json (line 1, column 5)",
        ),
        (PublishError::EmptyBatch, "batch holds no events"),
        (
            PublishError::NotAnObject { index: 2 },
            "event 2: not a json object",
        ),
        (
            unknown(Some(1), "dta"),
            "event 1: unknown field `dta` (expected `event`, `data` or `category`)",
        ),
        (unknown(None, "x"), "unknown field `x` beside `events`"),
        (
            PublishError::DuplicateField {
                index: 0,
                field: "data",
            },
            "event 0: field `data` given twice",
        ),
        (
            PublishError::MissingEvent { index: 3 },
            "event 3: field `event` is required",
        ),
        (
            PublishError::WrongType {
                index: 0,
                field: "event",
                expected: "a string",
            },
            "event 0: field `event` must be a string",
        ),
        (
            invalid_category(5, IdentifierError::Empty),
            "event 5: field `category` is not valid: empty",
        ),
    ];
    for (error, expected) in cases {
        assert_eq!(error.to_string(), expected);
    }
    let not_a_batch = PublishError::NotABatch.to_string();
    assert!(not_a_batch.starts_with("body must be") && !not_a_batch.ends_with('.'));
}
