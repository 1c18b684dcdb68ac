//! JSON Herald stores as it came (event data, plan bodies): nesting at and over `JSON_DEPTH_MAX`,
//! the 30,000-deep body, lone surrogate escapes, and a plan whose details nest as deep as allowed
//! surviving storage (serialised, read back by serde_json) and the trackers and snapshot it makes.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::json::JSON_DEPTH_MAX;
use herald_core::plan::{BodyError, PlanCommand, PlanRequest, PlanSession};
use herald_core::publish::PublishError;
use herald_core::{parse_publish, PublishLimits};
use herald_test_support::nested_json;

fn publish(data: &str) -> Result<String, PublishError> {
    let body = format!(r#"{{"event":"e","data":{data}}}"#);
    let limits = PublishLimits {
        event_bytes_max: 1 << 20,
        batch_bytes_max: 1 << 20,
        ..PublishLimits::default()
    };
    parse_publish(body.as_bytes(), &limits).map(|mut events| events.remove(0).data)
}

#[test]
fn the_limit_is_64_levels() {
    assert_eq!(JSON_DEPTH_MAX, 64);
}

// Stored plan sessions are read back by serde_json, which stops at 128 levels: keep a wide margin.
const _: () = assert!(JSON_DEPTH_MAX + 8 < 128);

#[test]
fn event_data_at_the_depth_limit_is_kept_and_one_more_level_is_refused() {
    let at_limit = nested_json(JSON_DEPTH_MAX);
    assert_eq!(publish(&at_limit), Ok(at_limit.clone()));
    let over = PublishError::DataTooDeep {
        index: 0,
        depth_max: JSON_DEPTH_MAX,
    };
    assert_eq!(publish(&nested_json(JSON_DEPTH_MAX + 1)), Err(over.clone()));
    assert!(!over.is_too_large(), "a 400, not a 413");
    // A body 30,000 levels deep. serde_json keeps `data` raw without counting its depth.
    assert_eq!(publish(&nested_json(30_000)), Err(over));
    // Brackets inside strings are text, whatever their number.
    let text = format!(r#"["{}"]"#, "[{".repeat(1000));
    assert_eq!(publish(&text), Ok(text.clone()));
    assert!(publish(&format!(r#""{}""#, "[".repeat(1000))).is_ok());
}

#[test]
fn a_too_deep_event_in_a_batch_is_named_and_refuses_the_batch() {
    let body = format!(
        r#"{{"events":[{{"event":"a","data":{}}},{{"event":"b","data":{}}}]}}"#,
        nested_json(3),
        nested_json(JSON_DEPTH_MAX + 1)
    );
    assert_eq!(
        parse_publish(body.as_bytes(), &PublishLimits::default()),
        Err(PublishError::DataTooDeep {
            index: 1,
            depth_max: JSON_DEPTH_MAX
        })
    );
}

#[test]
fn lone_surrogates_in_data_are_refused_and_pairs_kept() {
    let lone = |unit| Err(PublishError::LoneSurrogate { index: 0, unit });
    let cases: &[(&str, Result<&str, PublishError>)] = &[
        // Paired escapes are one character: as JSON they are kept verbatim, as text decoded.
        (r#"{"a":"\ud83d\ude00"}"#, Ok(r#"{"a":"\ud83d\ude00"}"#)),
        (r#""\ud83d\ude00""#, Ok("\u{1F600}")),
        (r#"["\\ud800"]"#, Ok(r#"["\\ud800"]"#)),
        (r#"{"a":"\ud800"}"#, lone(0xD800)),
        (r#"{"a":"\uDBFF x"}"#, lone(0xDBFF)),
        (r#"{"a":"\ud800\u0041"}"#, lone(0xD800)),
        (r#"{"a":"\udc00"}"#, lone(0xDC00)),
        (r#"{"\udfff":1}"#, lone(0xDFFF)),
        // In text data too (it used to be "must be valid JSON").
        (r#""\ud800""#, lone(0xD800)),
        (r#""ok \ude00""#, lone(0xDE00)),
    ];
    for (data, expected) in cases {
        let got = publish(data);
        assert_eq!(got.as_deref(), expected.as_ref().map(|s| *s), "{data}");
    }
    assert_eq!(
        PublishError::LoneSurrogate {
            index: 2,
            unit: 0xD800
        }
        .to_string(),
        "event 2: field `data` holds the lone surrogate escape `\\ud800` (half of a UTF-16 pair), which encodes no character"
    );
    assert_eq!(
        PublishError::DataTooDeep {
            index: 0,
            depth_max: 64
        }
        .to_string(),
        "event 0: field `data` nests arrays and objects deeper than 64 levels"
    );
}

fn start(details_depth: usize) -> String {
    // `details` is an object: its own level plus a value nesting one level less.
    format!(
        r#"{{"op":"start","stage":"validation","details":{{"k":{}}}}}"#,
        nested_json(details_depth - 1)
    )
}

#[test]
fn plan_details_one_level_below_the_limit_survive_storage() {
    // The command object is one level, so details may nest JSON_DEPTH_MAX - 1.
    let body = start(JSON_DEPTH_MAX - 1);
    let command = PlanCommand::from_json(body.as_bytes()).expect("at the limit");
    let mut session = PlanSession::new();
    session.open(PlanRequest::default(), 1_000);
    let update = session.apply(command, 1_010).expect("a legal move");
    // The trackers it makes parse, as clients and the log read them.
    for (name, json) in update.events() {
        serde_json::from_str::<serde_json::Value>(json)
            .unwrap_or_else(|e| panic!("{name} unreadable: {e}"));
    }
    serde_json::from_str::<serde_json::Value>(&session.snapshot().to_json_object())
        .expect("the reset snapshot parses");
    // The stored session reads back: the Hub restores it from this text after every restart.
    let stored = serde_json::to_string(&session).expect("serialises");
    let restored: PlanSession = serde_json::from_str(&stored).expect("reads back");
    assert_eq!(restored, session);
}

#[test]
fn plan_bodies_over_the_limit_are_refused_with_a_clear_error() {
    let too_deep = Err(BodyError::TooDeep {
        depth_max: JSON_DEPTH_MAX,
    });
    let request_too_deep = Err(BodyError::TooDeep {
        depth_max: JSON_DEPTH_MAX,
    });
    assert_eq!(
        PlanCommand::from_json(start(JSON_DEPTH_MAX).as_bytes()),
        too_deep
    );
    // The issue's command: 125 levels, under serde_json's limit, but not storable with the
    // session's own.
    assert_eq!(PlanCommand::from_json(start(125).as_bytes()), too_deep);
    // Deeper than serde_json's limit: refused by the check, not as "malformed".
    assert_eq!(PlanCommand::from_json(start(30_000).as_bytes()), too_deep);
    let update = format!(
        r#"{{"op":"update","stage":"backfill","details":{{"tasks":{}}}}}"#,
        nested_json(200)
    );
    assert_eq!(PlanCommand::from_json(update.as_bytes()), too_deep);
    // A plan request ignores unknown fields, which serde_json skips without counting: limited too.
    let request = format!(r#"{{"environment":"dev","x":{}}}"#, nested_json(30_000));
    assert_eq!(PlanRequest::from_json(request.as_bytes()), request_too_deep);
    assert_eq!(
        BodyError::TooDeep { depth_max: 64 }.to_string(),
        "body nests arrays and objects deeper than 64 levels (details may nest 63)"
    );
}

#[test]
fn lone_surrogates_in_plan_bodies_are_refused() {
    let body = br#"{"op":"update","stage":"backfill","details":{"queue":["\ud800"]}}"#;
    assert_eq!(
        PlanCommand::from_json(body),
        Err(BodyError::LoneSurrogate { unit: 0xD800 })
    );
    assert_eq!(
        PlanRequest::from_json(br#"{"environment":"\udc01"}"#),
        Err(BodyError::LoneSurrogate { unit: 0xDC01 })
    );
    // A pair is a character.
    let body = br#"{"op":"update","stage":"backfill","details":{"queue":["\ud83d\ude00"]}}"#;
    assert!(PlanCommand::from_json(body).is_ok());
    assert_eq!(
        BodyError::LoneSurrogate { unit: 0xDC01 }.to_string(),
        "body holds the lone surrogate escape `\\udc01` (half of a UTF-16 pair), which encodes no character"
    );
}

#[cfg(not(target_arch = "wasm32"))]
mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The model: nesting depth of a parsed value.
    fn depth(value: &Value) -> usize {
        match value {
            Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
            Value::Object(members) => 1 + members.values().map(depth).max().unwrap_or(0),
            _ => 0,
        }
    }

    /// Values up to about 80 levels deep, so both sides of the limit are common.
    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<i32>().prop_map(Value::from),
            "[a-z\\[\\]{}\"\\\\]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(80, 160, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..3)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn data_is_accepted_exactly_within_the_depth_limit(value in value(), pad in 0usize..70) {
            // Pad with arrays so that the depth straddles the limit.
            let mut data = value;
            for _ in 0..pad {
                data = Value::Array(vec![data]);
            }
            let text = serde_json::to_string(&data).unwrap();
            let got = publish(&text);
            if depth(&data) <= JSON_DEPTH_MAX {
                prop_assert_eq!(got, Ok(text));
            } else {
                prop_assert_eq!(got, Err(PublishError::DataTooDeep { index: 0, depth_max: JSON_DEPTH_MAX }));
            }
        }

        #[test]
        fn valid_text_with_every_unit_escaped_is_accepted(text in "\\PC{0,12}") {
            // Every UTF-16 unit as a \u escape: characters outside the BMP become surrogate pairs.
            let escaped: String = text.encode_utf16().map(|unit| format!("\\u{unit:04x}")).collect();
            let data = format!(r#"{{"s":"{escaped}"}}"#);
            let got = publish(&data);
            prop_assert_eq!(got, Ok(data));
            prop_assert_eq!(publish(&format!("\"{escaped}\"")), Ok(text));
        }
    }
}
