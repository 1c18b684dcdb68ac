//! Arbitrary text encoded as an event's data parses back as that text, line breaks normalised to LF.
#![no_main]

use herald_core::{Frame, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &str| {
    let (mut bytes, mut events) = (Vec::new(), Vec::new());
    Frame::new().data(data).encode_into(&mut bytes);
    Parser::new().feed(&bytes, |m| events.push(m.data.to_owned()));
    assert_eq!(events, [data.replace("\r\n", "\n").replace('\r', "\n")]);
});
