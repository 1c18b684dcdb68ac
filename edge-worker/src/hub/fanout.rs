//! Fan-out: one message per distinct filter, encoded once and handed to the runtime as one buffer
//! for all the sockets of that filter.

use herald_core::hub::{Batch, SubscriberRecord};
use herald_core::Filter;
use sha2::{Digest, Sha256};
use worker::js_sys::Uint8Array;

use super::Hub;
use crate::error::{ApiError, ApiResult};

/// The distinct filters of a hub's open sockets, each keyed by the tag its sockets carry
/// (`f:` and a hash of the filter). A publish encodes one message per filter and sends it to the
/// sockets with that tag, so it reads no socket's attachment.
///
/// An instance that starts (a wake, a restart) does not know the filters of the sockets it
/// inherited: its first publish reads every attachment once (`complete` then holds); sockets it
/// accepts itself are added as they come.
#[derive(Debug, Default)]
pub(super) struct Filters {
    by_tag: Vec<(String, Filter)>,
    complete: bool,
}

impl Filters {
    pub(super) fn learn(&mut self, tag: String, filter: Filter) {
        if !self.by_tag.iter().any(|(known, _)| *known == tag) {
            self.by_tag.push((tag, filter));
        }
    }
}

/// The tag of the sockets whose subscribers share `filter`: `f:` and 128 bits of SHA-256 of the
/// filter's JSON (a filter may be kilobytes; a tag is at most 256 characters).
pub(super) fn filter_tag(filter: &Filter) -> ApiResult<String> {
    let json = serde_json::to_vec(filter).map_err(|e| ApiError::Internal(e.to_string()))?;
    let digest = Sha256::digest(&json);
    let mut tag = String::with_capacity(34);
    tag.push_str("f:");
    for byte in &digest[..16] {
        tag.push_str(&format!("{byte:02x}"));
    }
    Ok(tag)
}

impl Hub {
    /// Sends each subscriber what the batch holds for it: one message per distinct filter, encoded
    /// once and handed to the runtime as one buffer for all the sockets of that filter.
    ///
    /// A subscriber's cursor needs no check here: accepting a socket and publishing are each one
    /// synchronous step of the Hub, so every open socket's cursor is below the batch's first
    /// sequence number (the cursor matters to the relay, across the replay/live seam).
    pub(super) fn fan_out(&self, epoch: u64, batch: &Batch) {
        let mut filters = self.filters.borrow_mut();
        if !filters.complete {
            for socket in self.state.get_websockets() {
                let record = socket.deserialize_attachment::<SubscriberRecord>();
                match record
                    .ok()
                    .flatten()
                    .map(|r| (filter_tag(&r.filter), r.filter))
                {
                    Some((Ok(tag), filter)) => filters.learn(tag, filter),
                    _ => {
                        let _ = socket.close(Some(1011), Some("subscriber record unreadable"));
                    }
                }
            }
            filters.complete = true;
        }
        filters.by_tag.retain(|(tag, filter)| {
            let sockets = self.state.get_websockets_with_tag(tag);
            if sockets.is_empty() {
                return false;
            }
            let record = SubscriberRecord {
                filter: filter.clone(),
                cursor_seq: 0,
            };
            if let Some(message) = record.message_for(epoch, batch) {
                let bytes = Uint8Array::from(message.encode().as_slice());
                for socket in sockets {
                    // A socket that is closing refuses the send; its relay is gone anyway.
                    let _ = socket.as_ref().send_with_array_buffer_view(&bytes);
                }
            }
            true
        });
    }
}
