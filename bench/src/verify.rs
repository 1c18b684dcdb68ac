//! Untimed checks that every encoder's output is a valid event stream carrying exactly the corpus:
//! each case's full output is parsed by eventsource-stream (independent of every encoder here) and
//! compared event by event.

use std::convert::Infallible;

use bytes::Bytes;
use eventsource_stream::Eventsource as _;
use futures::{executor::block_on, StreamExt as _};

use crate::corpus::{self, RawEvent};

/// What the check found, for the report.
pub(crate) struct Verdict {
    /// Output bytes are identical to the reference encoding (`id`, `event`, `data` order, one
    /// space).
    pub(crate) identical_to_reference: bool,
}

/// Parses `encoded` and compares it with `events`; panics with the first difference.
pub(crate) fn encoder_output(
    case: &str,
    encoded: Vec<u8>,
    events: &[RawEvent],
    reference: &[u8],
) -> Verdict {
    let identical_to_reference = encoded == reference;
    let chunks = corpus::chunks(&Bytes::from(encoded), 16 * 1024);
    let mut parsed =
        futures::stream::iter(chunks.into_iter().map(Ok::<_, Infallible>)).eventsource();
    let mut seen = 0usize;
    block_on(async {
        while let Some(event) = parsed.next().await {
            let event = event.unwrap_or_else(|e| panic!("{case}: output does not parse: {e}"));
            let want = events
                .get(seen)
                .unwrap_or_else(|| panic!("{case}: more events than the corpus"));
            assert!(
                event.id == want.id && event.event == want.name() && event.data == want.data,
                "{case}: event {seen} differs: got id={:?} event={:?} data={:?}",
                event.id,
                event.event,
                event.data,
            );
            seen += 1;
        }
    });
    assert_eq!(seen, events.len(), "{case}: events missing from the output");
    Verdict {
        identical_to_reference,
    }
}
