//! Encoder conformance: exact bytes for every vector, attempted field injection through ids, names,
//! data and comments, and each encoded frame parsed back by the WHATWG parser.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::encode::{IdError, NameError};
use herald_core::{EventId, EventName, Frame, Parser, KEEP_ALIVE};

/// Parses `bytes` and returns the dispatched (type, data, last event id).
fn parse(bytes: &[u8]) -> Vec<(String, String, String)> {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    parser.feed(bytes, |m| {
        events.push((
            m.event_type.to_owned(),
            m.data.to_owned(),
            m.last_event_id.to_owned(),
        ))
    });
    parser.finish();
    events
}

/// Encodes `frame` three ways (into an empty buffer, appended after existing bytes, `to_bytes`),
/// checks they agree with each other and with `encoded_len`, and returns the bytes.
fn encode(frame: Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    frame.encode_into(&mut out);
    assert_eq!(frame.encoded_len(), out.len(), "encoded_len of {frame:?}");
    let mut appended = b"before".to_vec();
    frame.encode_into(&mut appended);
    assert_eq!(&appended[..6], b"before");
    assert_eq!(&appended[6..], &out[..]);
    assert_eq!(&frame.to_bytes()[..], &out[..]);
    out
}

#[test]
fn data_vectors() {
    // (data, exact bytes, what a parser gets back)
    let vectors: &[(&str, &[u8], &str)] = &[
        ("x", b"data: x\n\n", "x"),
        ("", b"data:\n\n", ""),
        ("{\"a\":1}", b"data: {\"a\":1}\n\n", "{\"a\":1}"),
        (
            " leading space",
            b"data:  leading space\n\n",
            " leading space",
        ),
        ("a\nb", b"data: a\ndata: b\n\n", "a\nb"),
        ("a\rb", b"data: a\ndata: b\n\n", "a\nb"),
        ("a\r\nb", b"data: a\ndata: b\n\n", "a\nb"),
        ("a\n\rb", b"data: a\ndata:\ndata: b\n\n", "a\n\nb"),
        ("a\r\rb", b"data: a\ndata:\ndata: b\n\n", "a\n\nb"),
        ("a\n", b"data: a\ndata:\n\n", "a\n"),
        ("\n", b"data:\ndata:\n\n", "\n"),
        ("\r\n", b"data:\ndata:\n\n", "\n"),
        ("a\0b", b"data: a\0b\n\n", "a\0b"),
        ("a\tb\x0bc\x0c", b"data: a\tb\x0bc\x0c\n\n", "a\tb\x0bc\x0c"),
        (
            ":not a comment",
            b"data: :not a comment\n\n",
            ":not a comment",
        ),
        (
            "caf\u{e9} \u{1F600}",
            "data: caf\u{e9} \u{1F600}\n\n".as_bytes(),
            "caf\u{e9} \u{1F600}",
        ),
        // Injection attempts through data: every line stays inside its own `data:` field.
        (
            "x\n\nevent: evil\ndata: y",
            b"data: x\ndata:\ndata: event: evil\ndata: data: y\n\n",
            "x\n\nevent: evil\ndata: y",
        ),
        ("x\r\nid: 666", b"data: x\ndata: id: 666\n\n", "x\nid: 666"),
        ("x\rretry: 1", b"data: x\ndata: retry: 1\n\n", "x\nretry: 1"),
    ];
    for &(data, bytes, parsed) in vectors {
        let out = encode(Frame::new().data(data));
        assert_eq!(out, bytes, "data {data:?}");
        assert_eq!(
            parse(&out),
            [("message".to_owned(), parsed.to_owned(), String::new())],
            "data {data:?}"
        );
    }
}

#[test]
fn long_data_is_split_wherever_its_line_breaks_are() {
    for len in [1023, 1024, 1025, 5000] {
        for at in [0, len / 2, len - 1] {
            let mut data = "x".repeat(len);
            let out = encode(Frame::new().data(&data));
            assert_eq!(out.len(), "data: \n\n".len() + len);
            data.replace_range(at..=at, "\n");
            let out = encode(Frame::new().data(&data));
            assert_eq!(
                out.len(),
                "data: \ndata: \n\n".len() + len
                    - 1
                    - usize::from(at == 0)
                    - usize::from(at == len - 1)
            );
            assert_eq!(
                parse(&out),
                [("message".to_owned(), data.clone(), String::new())],
                "len {len}, break at {at}"
            );
        }
    }
}

#[test]
fn field_order_is_fixed_whatever_the_builder_order() {
    let id = EventId::new("7-42").unwrap();
    let name = EventName::new("plan-apply").unwrap();
    let expected: &[u8] = b": hi\nid: 7-42\nevent: plan-apply\nretry: 3000\ndata: {}\n\n";
    let forwards = Frame::new()
        .comment("hi")
        .id(&id)
        .event(&name)
        .retry_ms(3000)
        .data("{}");
    let backwards = Frame::new()
        .data("{}")
        .retry_ms(3000)
        .event(&name)
        .id(&id)
        .comment("hi");
    assert_eq!(encode(forwards), expected);
    assert_eq!(encode(backwards), expected);
    assert_eq!(
        parse(expected),
        [("plan-apply".to_owned(), "{}".to_owned(), "7-42".to_owned())]
    );
}

#[test]
fn frames_without_data_dispatch_nothing() {
    let id = EventId::new("5").unwrap();
    let name = EventName::from_static("job");
    let vectors: &[(Frame<'_>, &[u8])] = &[
        (Frame::new(), b"\n"),
        (Frame::new().id(&id), b"id: 5\n\n"),
        (Frame::new().event(&name), b"event: job\n\n"),
        (Frame::new().retry_ms(0), b"retry: 0\n\n"),
        (
            Frame::new().retry_ms(u64::MAX),
            b"retry: 18446744073709551615\n\n",
        ),
        (Frame::new().comment(""), b":\n\n"),
        (Frame::new().comment("a\nb\r\nc"), b": a\n: b\n: c\n\n"),
        // A comment cannot inject a field either.
        (
            Frame::new().comment("x\ndata: evil\n\ndata: more"),
            b": x\n: data: evil\n:\n: data: more\n\n",
        ),
    ];
    for (frame, bytes) in vectors {
        let out = encode(*frame);
        assert_eq!(out, *bytes, "{frame:?}");
        assert_eq!(parse(&out), [], "{frame:?}");
    }
    // An id-only frame still moves the client's last event id; a retry-only frame its reconnection
    // time.
    let mut parser = Parser::new();
    parser.feed(&encode(Frame::new().id(&id).retry_ms(1500)), |_| {
        panic!("nothing to dispatch")
    });
    assert_eq!(
        (parser.last_event_id(), parser.retry_ms()),
        ("5", Some(1500))
    );
}

#[test]
fn keep_alive_is_a_bare_comment() {
    assert_eq!(KEEP_ALIVE, b":\n\n");
    assert_eq!(encode(Frame::new().comment("")), KEEP_ALIVE);
    assert_eq!(parse(KEEP_ALIVE), []);
}

#[test]
fn ids_refuse_everything_that_could_inject_or_preflight() {
    let long = "a".repeat(129);
    let rejected: &[(&str, IdError)] = &[
        ("", IdError::Empty),
        (&long, IdError::TooLong),
        ("1\n", IdError::ForbiddenByte(b'\n')),
        ("1\r", IdError::ForbiddenByte(b'\r')),
        ("1\r\nevent: evil", IdError::ForbiddenByte(b'\r')),
        ("a\0", IdError::ForbiddenByte(0)),
        ("a b", IdError::ForbiddenByte(b' ')),
        ("\ta", IdError::ForbiddenByte(b'\t')),
        ("a:b", IdError::ForbiddenByte(b':')),
        ("<script>", IdError::ForbiddenByte(b'<')),
        ("\"q\"", IdError::ForbiddenByte(b'"')),
        ("x\u{7f}", IdError::ForbiddenByte(0x7F)),
        ("caf\u{e9}", IdError::ForbiddenByte(0xC3)),
    ];
    for (id, error) in rejected {
        assert_eq!(EventId::new(id), Err(*error), "{id:?}");
        assert_eq!(id.parse::<EventId>(), Err(*error), "{id:?}");
    }
    for id in [
        "1",
        "1700000000000-42",
        "!#$%&'*+,-./09;=AZ^_`az|~",
        &"z".repeat(128),
    ] {
        let parsed = EventId::new(id).unwrap();
        assert_eq!(parsed.as_str(), id);
        assert_eq!(parsed.to_string(), id);
        let out = encode(Frame::new().id(&parsed).data("x"));
        assert_eq!(
            parse(&out),
            [("message".to_owned(), "x".to_owned(), id.to_owned())]
        );
    }
}

#[test]
fn names_refuse_line_breaks_and_nul() {
    let long = "e".repeat(129);
    let rejected: &[(&str, NameError)] = &[
        ("", NameError::Empty),
        (&long, NameError::TooLong),
        ("job\ndata: forged", NameError::ForbiddenByte(b'\n')),
        ("job\r", NameError::ForbiddenByte(b'\r')),
        ("\r\n", NameError::ForbiddenByte(b'\r')),
        ("job\0", NameError::ForbiddenByte(0)),
    ];
    for (name, error) in rejected {
        assert_eq!(EventName::new(name), Err(*error), "{name:?}");
        assert_eq!(name.parse::<EventName>(), Err(*error), "{name:?}");
    }
    for name in [
        "job:state_change",
        "plan-apply",
        " spaced ",
        "caf\u{e9}",
        "a:b",
        &"e".repeat(128),
    ] {
        let parsed = EventName::new(name).unwrap();
        assert_eq!(parsed.as_str(), name);
        assert_eq!(parsed.to_string(), name);
        let out = encode(Frame::new().event(&parsed).data("x"));
        assert_eq!(
            parse(&out),
            [(name.to_owned(), "x".to_owned(), String::new())]
        );
    }
}

#[test]
fn static_names_are_checked_at_compile_time_and_equal_owned_ones() {
    const PING: EventName = EventName::from_static("ping");
    assert_eq!(PING, EventName::new("ping").unwrap());
    assert_eq!(PING.as_str(), "ping");
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
#[should_panic(expected = "invalid event name")]
fn static_names_panic_when_invalid() {
    let _ = EventName::from_static("ping\ndata: x");
}

#[test]
fn errors_display_lowercase_without_period() {
    let messages = [
        IdError::Empty.to_string(),
        IdError::TooLong.to_string(),
        IdError::ForbiddenByte(b'\n').to_string(),
        NameError::Empty.to_string(),
        NameError::TooLong.to_string(),
        NameError::ForbiddenByte(0).to_string(),
    ];
    assert_eq!(messages[1], "event id is longer than 128 bytes");
    assert_eq!(messages[2], "event id contains forbidden byte 0x0a");
    assert_eq!(messages[5], "event name contains forbidden byte 0x00");
    for message in messages {
        assert!(
            message.starts_with(char::is_lowercase) && !message.ends_with('.'),
            "{message}"
        );
    }
}

#[test]
fn encoding_appends_without_touching_what_is_there() {
    let id = EventId::new("1").unwrap();
    let mut out = Vec::new();
    Frame::new().id(&id).data("a").encode_into(&mut out);
    Frame::new().data("b\nc").encode_into(&mut out);
    out.extend_from_slice(KEEP_ALIVE);
    assert_eq!(out, b"id: 1\ndata: a\n\ndata: b\ndata: c\n\n:\n\n");
    assert_eq!(
        parse(&out),
        [
            ("message".to_owned(), "a".to_owned(), "1".to_owned()),
            ("message".to_owned(), "b\nc".to_owned(), "1".to_owned())
        ]
    );
}
