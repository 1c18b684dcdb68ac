//! Connection ids, tenant ids and hub names: data-driven tables.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::auth::IdentifierError;
use herald_core::{hub_name, ConnectionId, TenantId};

fn forbidden(byte: u8, index: usize) -> Result<(), IdentifierError> {
    Err(IdentifierError::ForbiddenByte { byte, index })
}

#[test]
fn connection_ids() {
    let long_ok = "a".repeat(128);
    let long_bad = "a".repeat(129);
    let cases: &[(&str, Result<(), IdentifierError>)] = &[
        ("a", Ok(())),
        ("plan-1", Ok(())),
        ("A.b_C-9", Ok(())),
        ("...", Ok(())),
        (".hidden", Ok(())),
        (&long_ok, Ok(())),
        ("", Err(IdentifierError::Empty)),
        (
            &long_bad,
            Err(IdentifierError::TooLong {
                len_bytes: 129,
                bytes_max: 128,
            }),
        ),
        (".", Err(IdentifierError::DotSegment)),
        ("..", Err(IdentifierError::DotSegment)),
        ("acme/plan", forbidden(b'/', 4)),
        ("a b", forbidden(b' ', 1)),
        ("a\nb", forbidden(b'\n', 1)),
        ("a\0", forbidden(0, 1)),
        ("a%2Fb", forbidden(b'%', 1)),
        ("a?b", forbidden(b'?', 1)),
        ("a:b", forbidden(b':', 1)),
        ("é", forbidden(0xc3, 0)),
    ];
    for (input, expected) in cases {
        let got = ConnectionId::new(input).map(|id| {
            assert_eq!(id.as_str(), *input);
            assert_eq!(id.to_string(), *input);
        });
        assert_eq!(got, *expected, "{input:?}");
    }
}

#[test]
fn tenant_ids() {
    let long_ok = "t".repeat(64);
    let long_bad = "t".repeat(65);
    let cases: &[(&str, Result<(), IdentifierError>)] = &[
        ("acme", Ok(())),
        ("Acme_EU-1", Ok(())),
        (&long_ok, Ok(())),
        ("", Err(IdentifierError::Empty)),
        (
            &long_bad,
            Err(IdentifierError::TooLong {
                len_bytes: 65,
                bytes_max: 64,
            }),
        ),
        // Dots are allowed in connection ids but not in tenants.
        ("acme.eu", forbidden(b'.', 4)),
        ("acme/eu", forbidden(b'/', 4)),
        ("..", forbidden(b'.', 0)),
        ("ac me", forbidden(b' ', 2)),
    ];
    for (input, expected) in cases {
        let got = TenantId::new(input).map(|id| {
            assert_eq!(id.as_str(), *input);
        });
        assert_eq!(got, *expected, "{input:?}");
    }
}

#[test]
fn identifier_errors_display_lowercase_without_period() {
    let errors = [
        IdentifierError::Empty,
        IdentifierError::TooLong {
            len_bytes: 129,
            bytes_max: 128,
        },
        IdentifierError::ForbiddenByte {
            byte: b'/',
            index: 4,
        },
        IdentifierError::DotSegment,
    ];
    for error in errors {
        let text = error.to_string();
        assert!(!text.ends_with('.'), "{text}");
        assert!(
            !text.starts_with(|c: char| c.is_ascii_uppercase()),
            "{text}"
        );
    }
    assert_eq!(
        IdentifierError::ForbiddenByte {
            byte: b'/',
            index: 4
        }
        .to_string(),
        "forbidden byte 0x2f at index 4"
    );
}

#[test]
fn hub_names_join_tenant_and_connection() {
    let tenant = TenantId::new("acme").unwrap();
    let cases = [
        ("plan-1", "acme/plan-1"),
        ("a.b", "acme/a.b"),
        ("...", "acme/..."),
    ];
    for (connection, expected) in cases {
        assert_eq!(
            hub_name(&tenant, &ConnectionId::new(connection).unwrap()),
            expected
        );
    }
}

#[test]
fn hub_names_never_collide_across_tenants() {
    // Pairs that a naive concatenation (no separator, or a separator from the alphabets) would
    // confuse.
    let pairs = [
        ("ab", "c"),
        ("a", "bc"),
        ("a-b", "c"),
        ("a", "b-c"),
        ("a_b", "c"),
        ("a", "b_c"),
        ("acme", "plan"),
        ("acm", "e.plan"),
    ];
    let names: Vec<String> = pairs
        .iter()
        .map(|(t, c)| hub_name(&TenantId::new(t).unwrap(), &ConnectionId::new(c).unwrap()))
        .collect();
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            assert_ne!(a, b);
        }
    }
}
