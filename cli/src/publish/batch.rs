//! Publish bodies from events: each event's JSON as the worker will measure it, and batches that
//! stay under the worker's limits ([`PublishLimits`]).

use herald_core::publish::compact_json;
use herald_core::{EventName, PublishLimits};
use serde_json::value::RawValue;

/// One event of a publish body (`{"event":..,"data":..}`) and the bytes of its data as the worker
/// counts them: the text of a JSON string, else the compacted JSON.
pub(crate) fn event_json(
    event: &EventName,
    data: &str,
    text: bool,
    category: Option<&str>,
) -> Result<(String, usize), String> {
    let (data_json, data_bytes) = if text {
        (serde_json::Value::from(data).to_string(), data.len())
    } else {
        let raw: &RawValue =
            serde_json::from_str(data).map_err(|e| format!("data is not JSON ({e})"))?;
        let json = compact_json(raw.get());
        let bytes = match serde_json::from_str::<String>(&json) {
            Ok(string) => string.len(),
            Err(_) => json.len(),
        };
        (json, bytes)
    };
    let mut item = format!(
        "{{\"event\":{},\"data\":{data_json}",
        serde_json::Value::from(event.as_str())
    );
    if let Some(category) = category {
        item.push_str(&format!(
            ",\"category\":{}",
            serde_json::Value::from(category)
        ));
    }
    item.push('}');
    Ok((item, data_bytes))
}

/// Events gathered into publish bodies (`{"events":[...]}`) of at most `batch_events_max` events
/// and `batch_bytes_max` bytes.
#[derive(Debug)]
pub(crate) struct Batcher {
    limits: PublishLimits,
    items: Vec<String>,
    /// The length of the body the held items make.
    body_bytes: usize,
}

impl Batcher {
    /// `{"events":[` and `]}`.
    const FRAME_BYTES: usize = 13;

    pub(crate) fn new(limits: PublishLimits) -> Batcher {
        Batcher {
            limits,
            items: Vec::new(),
            body_bytes: Self::FRAME_BYTES,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_full(&self) -> bool {
        self.items.len() >= self.limits.batch_events_max
    }

    /// Adds an event (from [`event_json`]); returns the batch to send before it when it does not
    /// fit with the events held. An event that fits in no batch is an error.
    pub(crate) fn push(
        &mut self,
        item: String,
        data_bytes: usize,
    ) -> Result<Option<String>, String> {
        if data_bytes > self.limits.event_bytes_max {
            return Err(format!(
                "its data is {data_bytes} bytes, over the {} of --event-bytes-max",
                self.limits.event_bytes_max
            ));
        }
        if Self::FRAME_BYTES + item.len() > self.limits.batch_bytes_max {
            return Err(format!(
                "its request would be {} bytes, over the {} of --batch-bytes-max",
                Self::FRAME_BYTES + item.len(),
                self.limits.batch_bytes_max
            ));
        }
        let comma = usize::from(!self.items.is_empty());
        let first = if self.is_full()
            || self.body_bytes + comma + item.len() > self.limits.batch_bytes_max
        {
            self.take()
        } else {
            None
        };
        self.body_bytes += usize::from(!self.items.is_empty()) + item.len();
        self.items.push(item);
        Ok(first)
    }

    /// The held events as one body, if any.
    pub(crate) fn take(&mut self) -> Option<String> {
        if self.items.is_empty() {
            return None;
        }
        let body = format!("{{\"events\":[{}]}}", self.items.join(","));
        debug_assert_eq!(body.len(), self.body_bytes);
        self.items.clear();
        self.body_bytes = Self::FRAME_BYTES;
        Some(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(data: &str) -> (String, usize) {
        let name = EventName::new("tick").unwrap();
        event_json(&name, data, false, None).unwrap()
    }

    #[test]
    fn data_is_sent_as_written_minus_whitespace_and_measured_as_the_worker_does() {
        assert_eq!(
            event("{ \"a\" : [1, 2],\n \"b\": \"x y\" }"),
            (
                r#"{"event":"tick","data":{"a":[1,2],"b":"x y"}}"#.into(),
                21
            )
        );
        // Key order and number spelling are the publisher's; escapes inside strings stay.
        assert_eq!(
            event(r#"{"z":1.50,"a":"q\" }"}"#).0,
            r#"{"event":"tick","data":{"z":1.50,"a":"q\" }"}}"#
        );
        // A JSON string is the data's text: its bytes are the text's.
        assert_eq!(
            event(r#" "h\u00e9" "#),
            (r#"{"event":"tick","data":"h\u00e9"}"#.into(), 3)
        );
        assert!(event_json(&EventName::new("t").unwrap(), "{oops", false, None).is_err());
        let name = EventName::new("log").unwrap();
        assert_eq!(
            event_json(&name, "a \"b\"", true, Some("ai")).unwrap(),
            (
                r#"{"event":"log","data":"a \"b\"","category":"ai"}"#.into(),
                5
            )
        );
    }

    fn limits(events: usize, bytes: usize, event_bytes: usize) -> PublishLimits {
        PublishLimits {
            event_bytes_max: event_bytes,
            batch_events_max: events,
            batch_bytes_max: bytes,
        }
    }

    /// Pushes every item and returns the bodies in the order they would be sent.
    fn batches(limits: PublishLimits, items: &[&str]) -> Vec<String> {
        let mut batcher = Batcher::new(limits);
        let mut out = Vec::new();
        for item in items {
            out.extend(batcher.push(item.to_string(), 1).unwrap());
            if batcher.is_full() {
                out.extend(batcher.take());
            }
        }
        out.extend(batcher.take());
        out
    }

    #[test]
    fn batches_hold_at_most_batch_events_max_events() {
        let items = ["1", "2", "3", "4", "5"];
        assert_eq!(
            batches(limits(2, 1 << 20, 10), &items),
            [
                r#"{"events":[1,2]}"#,
                r#"{"events":[3,4]}"#,
                r#"{"events":[5]}"#
            ]
        );
        assert_eq!(
            batches(limits(100, 1 << 20, 10), &items),
            [r#"{"events":[1,2,3,4,5]}"#]
        );
    }

    #[test]
    fn batches_hold_at_most_batch_bytes_max_bytes() {
        // `{"events":[aaa,bbb]}` is 20 bytes: with 20 both fit, with 19 they go one by one.
        let items = ["aaa", "bbb", "ccc"];
        assert_eq!(
            batches(limits(100, 20, 10), &items),
            [r#"{"events":[aaa,bbb]}"#, r#"{"events":[ccc]}"#]
        );
        assert_eq!(
            batches(limits(100, 19, 10), &items),
            [
                r#"{"events":[aaa]}"#,
                r#"{"events":[bbb]}"#,
                r#"{"events":[ccc]}"#
            ]
        );
        // Every body is within the limit, whatever the sizes.
        let sizes = [1usize, 7, 3, 14, 2, 2, 2, 15, 16, 1];
        let items: Vec<String> = sizes.iter().map(|&n| "x".repeat(n)).collect();
        let refs: Vec<&str> = items.iter().map(String::as_str).collect();
        for max in 29..60 {
            let bodies = batches(limits(4, max, 10), &refs);
            assert!(bodies.iter().all(|b| b.len() <= max), "{max}: {bodies:?}");
            let joined: usize = bodies.iter().map(|b| b.len() - Batcher::FRAME_BYTES).sum();
            let commas = sizes.len() - bodies.len();
            assert_eq!(
                joined,
                sizes.iter().sum::<usize>() + commas,
                "nothing lost at {max}"
            );
        }
    }

    #[test]
    fn an_event_that_fits_no_batch_is_refused() {
        let mut batcher = Batcher::new(limits(10, 21, 5));
        assert!(batcher
            .push("x".repeat(8), 6)
            .unwrap_err()
            .contains("--event-bytes-max"));
        assert!(batcher
            .push("x".repeat(9), 5)
            .unwrap_err()
            .contains("--batch-bytes-max"));
        assert!(batcher.push("x".repeat(8), 5).unwrap().is_none());
        let first = batcher.push("y".repeat(8), 5).unwrap().unwrap();
        assert_eq!(first, format!("{{\"events\":[{}]}}", "x".repeat(8)));
        assert_eq!(
            batcher.take().unwrap(),
            format!("{{\"events\":[{}]}}", "y".repeat(8))
        );
    }
}
