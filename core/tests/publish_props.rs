//! Property tests for publish bodies against a naive model.
#![cfg(not(target_arch = "wasm32"))]

use herald_core::publish::PublishError;
use herald_core::{parse_publish, PublishLimits};
use proptest::prelude::*;
use serde_json::{json, Value};

fn data() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn batch_keeps_order_and_data(
        events in proptest::collection::vec(("[a-z.:-]{1,20}", data(), proptest::option::of("[a-z0-9_]{1,10}")), 1..20),
        wrapped in any::<bool>(),
    ) {
        let items: Vec<Value> = events
            .iter()
            .map(|(name, data, category)| json!({"event": name, "data": data, "category": category}))
            .collect();
        let body = if wrapped { json!({"events": items}) } else { Value::Array(items) };
        let parsed = parse_publish(body.to_string().as_bytes(), &PublishLimits::default()).unwrap();
        prop_assert_eq!(parsed.len(), events.len());
        for (got, (name, data, category)) in parsed.iter().zip(&events) {
            prop_assert_eq!(got.name.as_str(), name.as_str());
            let expected = match data {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            prop_assert_eq!(&got.data, &expected);
            prop_assert_eq!(&got.category, category);
        }
    }

    #[test]
    fn never_panics_and_limits_hold(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let limits = PublishLimits { event_bytes_max: 16, batch_events_max: 3, batch_bytes_max: 200 };
        match parse_publish(&body, &limits) {
            Ok(events) => {
                prop_assert!(!events.is_empty() && events.len() <= 3);
                prop_assert!(events.iter().all(|e| e.data.len() <= 16));
            }
            Err(PublishError::BodyTooLarge { body_bytes, .. }) => prop_assert!(body_bytes > 200),
            Err(_) => prop_assert!(body.len() <= 200),
        }
    }
}
