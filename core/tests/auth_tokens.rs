//! Tokens: minting, verification, permissions and tickets, as data-driven tables.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use herald_core::auth::{
    verify_with, AuthError, Forbidden, IdentifierError, VerifyOptions, TOKEN_BYTES_MAX,
};
use herald_core::{mint, verify, Claims, ConnectionId, Scope, Scopes, TenantId, TokenKind};

const KEY: &[u8] = b"herald-test-key-0123456789abcdef";
const NOW_S: u64 = 1_800_000_000;
const HS256_HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

/// Signs arbitrary header and payload JSON, independently of `mint`, so tests can build tokens
/// `mint` never would.
fn sign(header: &str, payload: &str, key: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(signed.as_bytes());
    format!(
        "{signed}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn conn(id: &str) -> ConnectionId {
    ConnectionId::new(id).unwrap()
}

fn access(scopes: Scopes, streams: Option<&[&str]>) -> Claims {
    Claims {
        tenant: TenantId::new("acme").unwrap(),
        scopes,
        streams: streams.map(|ids| ids.iter().map(|id| conn(id)).collect()),
        exp_s: NOW_S + 3600,
        iat_s: Some(NOW_S),
        kind: TokenKind::Access,
    }
}

#[test]
fn mint_matches_an_independent_hs256_implementation() {
    // Token computed with Python's hmac/hashlib/base64 for these exact claims.
    let expected = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhY21lIiwic2NvcGUiOiJwdWJsaXNoIHN1YnNjcmli\
ZSIsInN0cmVhbXMiOlsicGxhbi0xIiwiYS5iIl0sImV4cCI6MjAwMDAwMDAwMCwiaWF0IjoxNzAwMDAwMDAwLCJraW5kIjoiYWNjZXNzIn0.\
TzVAYWLo68q0_fEz5iMqtc04dLxX37bhFmfvwycPWjE";
    let claims = Claims {
        tenant: TenantId::new("acme").unwrap(),
        scopes: Scopes::ALL,
        streams: Some(vec![conn("plan-1"), conn("a.b")]),
        exp_s: 2_000_000_000,
        iat_s: Some(1_700_000_000),
        kind: TokenKind::Access,
    };
    assert_eq!(mint(&claims, KEY), expected);
    // It lives about ten years, so only without the lifetime bound.
    let unbounded = VerifyOptions {
        lifetime_max_s: u64::MAX,
        ..VerifyOptions::default()
    };
    assert_eq!(verify_with(expected, KEY, NOW_S, &unbounded), Ok(claims));
}

#[test]
fn minted_tokens_verify_to_the_same_claims() {
    let ticket = access(Scopes::ALL, None)
        .ticket_for(&conn("plan-1"), NOW_S, 60)
        .unwrap();
    let cases = [
        access(Scopes::ALL, None),
        access(Scopes::only(Scope::Publish), Some(&["a", "b.c"])),
        access(Scopes::only(Scope::Subscribe), Some(&[])),
        Claims {
            iat_s: None,
            ..access(Scopes::ALL, None)
        },
        ticket,
    ];
    for claims in cases {
        assert_eq!(
            verify(&mint(&claims, KEY), KEY, NOW_S),
            Ok(claims.clone()),
            "{claims:?}"
        );
    }
}

#[test]
fn verify_table() {
    let good_payload = format!(r#"{{"sub":"acme","scope":"publish","exp":{}}}"#, NOW_S + 10);
    let good = sign(HS256_HEADER, &good_payload, KEY);
    let (good_signed, good_signature) = good.rsplit_once('.').unwrap();
    let (good_header, _) = good_signed.split_once('.').unwrap();
    let other_payload = format!(r#"{{"sub":"evil","scope":"publish","exp":{}}}"#, NOW_S + 10);
    let other_payload_b64 = URL_SAFE_NO_PAD.encode(&other_payload);
    // Flip the first signature character: the last one carries padding bits, and changing it could
    // make the base64 non-canonical (a Malformed token) instead of a wrong signature.
    let flipped = if good_signature.starts_with('A') {
        "B"
    } else {
        "A"
    };
    let tampered_signature = format!("{good_signed}.{flipped}{}", &good_signature[1..]);

    let with_payload = |payload: &str| sign(HS256_HEADER, payload, KEY);
    let exp = NOW_S + 10;
    let cases: Vec<(&str, String, Result<(), AuthError>)> = vec![
        ("good", good.clone(), Ok(())),
        (
            "good without typ",
            sign(r#"{"alg":"HS256"}"#, &good_payload, KEY),
            Ok(()),
        ),
        (
            "expires one second from now",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"publish","exp":{}}}"#,
                NOW_S + 1
            )),
            Ok(()),
        ),
        (
            "expires now",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"publish","exp":{NOW_S}}}"#
            )),
            Err(AuthError::Expired {
                exp_s: NOW_S,
                now_s: NOW_S,
            }),
        ),
        (
            "expired",
            with_payload(r#"{"sub":"acme","scope":"publish","exp":1}"#),
            Err(AuthError::Expired {
                exp_s: 1,
                now_s: NOW_S,
            }),
        ),
        (
            "tampered payload",
            format!("{good_header}.{other_payload_b64}.{good_signature}"),
            Err(AuthError::BadSignature),
        ),
        (
            "tampered signature",
            tampered_signature,
            Err(AuthError::BadSignature),
        ),
        (
            "wrong key",
            sign(HS256_HEADER, &good_payload, b"another key"),
            Err(AuthError::BadSignature),
        ),
        (
            "alg none, no signature",
            format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
                URL_SAFE_NO_PAD.encode(&good_payload)
            ),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (
            "alg none, signed anyway",
            sign(r#"{"alg":"none","typ":"JWT"}"#, &good_payload, KEY),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (
            "alg HS512",
            sign(r#"{"alg":"HS512"}"#, &good_payload, KEY),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (
            "alg lowercase",
            sign(r#"{"alg":"hs256"}"#, &good_payload, KEY),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (
            "alg RS256",
            sign(r#"{"alg":"RS256"}"#, &good_payload, KEY),
            Err(AuthError::UnsupportedAlgorithm),
        ),
        (
            "header without alg",
            sign(r#"{"typ":"JWT"}"#, &good_payload, KEY),
            Err(AuthError::BadHeader),
        ),
        (
            "header typ other",
            sign(r#"{"alg":"HS256","typ":"at+jwt"}"#, &good_payload, KEY),
            Err(AuthError::BadHeader),
        ),
        (
            "header crit",
            sign(r#"{"alg":"HS256","crit":["x"]}"#, &good_payload, KEY),
            Err(AuthError::BadHeader),
        ),
        (
            "header not json",
            sign("alg=HS256", &good_payload, KEY),
            Err(AuthError::BadHeader),
        ),
        (
            "missing exp",
            with_payload(r#"{"sub":"acme","scope":"publish"}"#),
            Err(AuthError::MissingExpiry),
        ),
        (
            "null exp",
            with_payload(r#"{"sub":"acme","scope":"publish","exp":null}"#),
            Err(AuthError::MissingExpiry),
        ),
        (
            "fractional exp",
            with_payload(r#"{"sub":"acme","scope":"publish","exp":1900000000.5}"#),
            Err(AuthError::BadClaims),
        ),
        (
            "string exp",
            with_payload(r#"{"sub":"acme","scope":"publish","exp":"1900000000"}"#),
            Err(AuthError::BadClaims),
        ),
        (
            "missing sub",
            with_payload(&format!(r#"{{"scope":"publish","exp":{exp}}}"#)),
            Err(AuthError::BadClaims),
        ),
        (
            "missing scope",
            with_payload(&format!(r#"{{"sub":"acme","exp":{exp}}}"#)),
            Err(AuthError::BadClaims),
        ),
        (
            "unknown claim",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"publish","exp":{exp},"nbf":0}}"#
            )),
            Err(AuthError::BadClaims),
        ),
        (
            "payload not json",
            with_payload("sub=acme"),
            Err(AuthError::BadClaims),
        ),
        (
            "bad scope: unknown",
            with_payload(&format!(r#"{{"sub":"acme","scope":"admin","exp":{exp}}}"#)),
            Err(AuthError::UnknownScope),
        ),
        (
            "bad scope: comma separated",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"publish,subscribe","exp":{exp}}}"#
            )),
            Err(AuthError::UnknownScope),
        ),
        (
            "bad scope: double space",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"publish  subscribe","exp":{exp}}}"#
            )),
            Err(AuthError::UnknownScope),
        ),
        (
            "bad scope: empty",
            with_payload(&format!(r#"{{"sub":"acme","scope":"","exp":{exp}}}"#)),
            Err(AuthError::UnknownScope),
        ),
        (
            "bad scope: case",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"Publish","exp":{exp}}}"#
            )),
            Err(AuthError::UnknownScope),
        ),
        (
            "bad kind",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"publish","exp":{exp},"kind":"refresh"}}"#
            )),
            Err(AuthError::UnknownKind),
        ),
        (
            "bad tenant",
            with_payload(&format!(
                r#"{{"sub":"acme/x","scope":"publish","exp":{exp}}}"#
            )),
            Err(AuthError::InvalidTenant(IdentifierError::ForbiddenByte {
                byte: b'/',
                index: 4,
            })),
        ),
        (
            "empty tenant",
            with_payload(&format!(r#"{{"sub":"","scope":"publish","exp":{exp}}}"#)),
            Err(AuthError::InvalidTenant(IdentifierError::Empty)),
        ),
        (
            "bad stream",
            with_payload(&format!(
                r#"{{"sub":"acme","scope":"publish","exp":{exp},"streams":["ok",".."]}}"#
            )),
            Err(AuthError::InvalidStream {
                index: 1,
                error: IdentifierError::DotSegment,
            }),
        ),
        ("empty token", String::new(), Err(AuthError::Malformed)),
        (
            "two parts",
            good_signed.to_string(),
            Err(AuthError::Malformed),
        ),
        ("four parts", format!("{good}.x"), Err(AuthError::Malformed)),
        (
            "padded base64",
            format!("{good_header}=.{}", &good[good_header.len() + 1..]),
            Err(AuthError::Malformed),
        ),
        (
            "standard base64 alphabet",
            format!("{good_signed}.+{}", &good_signature[1..]),
            Err(AuthError::Malformed),
        ),
        (
            "too long",
            format!("{good}{}", "A".repeat(TOKEN_BYTES_MAX)),
            Err(AuthError::TooLong),
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(verify(&token, KEY, NOW_S).map(|_| ()), expected, "{name}");
    }
}

#[test]
fn kind_defaults_to_access_and_reads_ticket() {
    let cases = [
        ("", TokenKind::Access),
        (r#","kind":"access""#, TokenKind::Access),
        (r#","kind":"ticket""#, TokenKind::Ticket),
    ];
    for (kind, expected) in cases {
        let payload = format!(
            r#"{{"sub":"acme","scope":"subscribe","exp":{}{kind}}}"#,
            NOW_S + 10
        );
        let claims = verify(&sign(HS256_HEADER, &payload, KEY), KEY, NOW_S).unwrap();
        assert_eq!(claims.kind, expected, "{kind}");
    }
}

#[test]
fn permits_table() {
    let a = conn("a");
    let b = conn("b");
    let all = access(Scopes::ALL, None);
    let publisher = access(Scopes::only(Scope::Publish), None);
    let only_a = access(Scopes::ALL, Some(&["a"]));
    let none_listed = access(Scopes::ALL, Some(&[]));
    let ticket_a = all.ticket_for(&a, NOW_S, 60).unwrap();
    // Tickets minted wrongly (by hand, or by a buggy minter) still cannot publish or roam.
    let wide_ticket = Claims {
        kind: TokenKind::Ticket,
        ..all.clone()
    };
    type Case<'a> = (
        &'a str,
        &'a Claims,
        Scope,
        &'a ConnectionId,
        Result<(), Forbidden>,
    );
    let cases: Vec<Case<'_>> = vec![
        ("all/publish", &all, Scope::Publish, &a, Ok(())),
        ("all/subscribe", &all, Scope::Subscribe, &b, Ok(())),
        ("publisher/publish", &publisher, Scope::Publish, &a, Ok(())),
        (
            "publisher/subscribe",
            &publisher,
            Scope::Subscribe,
            &a,
            Err(Forbidden::MissingScope(Scope::Subscribe)),
        ),
        ("only a/a", &only_a, Scope::Publish, &a, Ok(())),
        (
            "only a/b",
            &only_a,
            Scope::Publish,
            &b,
            Err(Forbidden::StreamNotAllowed),
        ),
        (
            "none listed",
            &none_listed,
            Scope::Subscribe,
            &a,
            Err(Forbidden::StreamNotAllowed),
        ),
        (
            "ticket/subscribe a",
            &ticket_a,
            Scope::Subscribe,
            &a,
            Ok(()),
        ),
        (
            "ticket/subscribe b",
            &ticket_a,
            Scope::Subscribe,
            &b,
            Err(Forbidden::StreamNotAllowed),
        ),
        (
            "ticket/publish a",
            &ticket_a,
            Scope::Publish,
            &a,
            Err(Forbidden::MissingScope(Scope::Publish)),
        ),
        (
            "wide ticket/publish",
            &wide_ticket,
            Scope::Publish,
            &a,
            Err(Forbidden::MissingScope(Scope::Publish)),
        ),
        (
            "wide ticket/subscribe",
            &wide_ticket,
            Scope::Subscribe,
            &a,
            Err(Forbidden::StreamNotAllowed),
        ),
    ];
    for (name, claims, scope, connection, expected) in cases {
        assert_eq!(claims.permits(scope, connection), expected, "{name}");
    }
}

#[test]
fn tickets_are_narrow_and_bounded_by_the_parent() {
    let a = conn("a");
    let parent = access(Scopes::ALL, None); // expires at NOW_S + 3600
    let ticket = parent.ticket_for(&a, NOW_S, 60).unwrap();
    assert_eq!(
        ticket,
        Claims {
            tenant: parent.tenant.clone(),
            scopes: Scopes::only(Scope::Subscribe),
            streams: Some(vec![a.clone()]),
            exp_s: NOW_S + 60,
            iat_s: Some(NOW_S),
            kind: TokenKind::Ticket,
        }
    );
    // A ttl reaching past the parent is cut to the parent's expiry, even one that would overflow.
    for ttl_s in [3600, 3601, 1_000_000, u64::MAX] {
        assert_eq!(
            parent.ticket_for(&a, NOW_S, ttl_s).unwrap().exp_s,
            NOW_S + 3600,
            "{ttl_s}"
        );
    }
    // The ticket verifies until its expiry and not at it.
    let token = mint(&ticket, KEY);
    assert!(verify(&token, KEY, NOW_S + 59).is_ok());
    assert_eq!(
        verify(&token, KEY, NOW_S + 60),
        Err(AuthError::Expired {
            exp_s: NOW_S + 60,
            now_s: NOW_S + 60
        })
    );
}

#[test]
fn tickets_need_a_subscribing_access_token_for_that_stream() {
    let a = conn("a");
    let cases: Vec<(&str, Claims, Result<(), Forbidden>)> = vec![
        ("all", access(Scopes::ALL, None), Ok(())),
        (
            "listed",
            access(Scopes::only(Scope::Subscribe), Some(&["a"])),
            Ok(()),
        ),
        (
            "publisher",
            access(Scopes::only(Scope::Publish), None),
            Err(Forbidden::MissingScope(Scope::Subscribe)),
        ),
        (
            "other stream",
            access(Scopes::ALL, Some(&["b"])),
            Err(Forbidden::StreamNotAllowed),
        ),
        (
            "from a ticket",
            access(Scopes::ALL, None).ticket_for(&a, NOW_S, 60).unwrap(),
            Err(Forbidden::TicketFromTicket),
        ),
    ];
    for (name, parent, expected) in cases {
        assert_eq!(
            parent.ticket_for(&a, NOW_S, 60).map(|_| ()),
            expected,
            "{name}"
        );
    }
}

#[test]
fn errors_display_lowercase_without_period() {
    let texts = [
        AuthError::TooLong.to_string(),
        AuthError::Malformed.to_string(),
        AuthError::BadHeader.to_string(),
        AuthError::UnsupportedAlgorithm.to_string(),
        AuthError::BadSignature.to_string(),
        AuthError::BadClaims.to_string(),
        AuthError::MissingExpiry.to_string(),
        AuthError::Expired { exp_s: 1, now_s: 2 }.to_string(),
        AuthError::IssuedInFuture { iat_s: 3, now_s: 2 }.to_string(),
        AuthError::LifetimeTooLong {
            lifetime_s: 3,
            lifetime_max_s: 2,
        }
        .to_string(),
        AuthError::UnknownScope.to_string(),
        AuthError::UnknownKind.to_string(),
        AuthError::InvalidTenant(IdentifierError::Empty).to_string(),
        AuthError::InvalidStream {
            index: 0,
            error: IdentifierError::Empty,
        }
        .to_string(),
        Forbidden::MissingScope(Scope::Publish).to_string(),
        Forbidden::StreamNotAllowed.to_string(),
        Forbidden::TicketFromTicket.to_string(),
    ];
    for text in texts {
        assert!(!text.ends_with('.'), "{text}");
        assert!(text.starts_with(|c: char| c.is_ascii_lowercase()), "{text}");
    }
    assert_eq!(
        AuthError::Expired { exp_s: 1, now_s: 2 }.to_string(),
        "token expired at 1 (now 2)"
    );
    assert_eq!(
        Forbidden::MissingScope(Scope::Publish).to_string(),
        "token does not grant publish"
    );
    assert_eq!(
        AuthError::IssuedInFuture { iat_s: 3, now_s: 2 }.to_string(),
        "token is issued in the future, at 3 (now 2)"
    );
    assert_eq!(
        AuthError::LifetimeTooLong {
            lifetime_s: 3,
            lifetime_max_s: 2
        }
        .to_string(),
        "token lives 3 s, over the limit of 2 s"
    );
}

#[test]
fn header_typ_is_the_jwt_media_type_in_any_case() {
    let payload = format!(r#"{{"sub":"acme","scope":"publish","exp":{}}}"#, NOW_S + 60);
    for typ in ["JWT", "jwt", "Jwt", "application/jwt", "Application/JWT"] {
        let header = format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#);
        let got = verify(&sign(&header, &payload, KEY), KEY, NOW_S);
        assert!(got.is_ok(), "typ {typ}: {got:?}");
    }
    for typ in ["JOSE", "text/jwt", "jwt ", ""] {
        let header = format!(r#"{{"alg":"HS256","typ":"{typ}"}}"#);
        let got = verify(&sign(&header, &payload, KEY), KEY, NOW_S);
        assert_eq!(got, Err(AuthError::BadHeader), "typ {typ:?}");
    }
}

#[test]
fn time_claims_table() {
    const DAY_S: u64 = 86_400;
    let defaults = VerifyOptions::default();
    assert_eq!(defaults.lifetime_max_s, 30 * DAY_S);
    assert_eq!(defaults.clock_skew_s, 60);
    let token = |exp_s: u64, iat_s: Option<u64>| {
        let mut claims = access(Scopes::ALL, None);
        claims.exp_s = exp_s;
        claims.iat_s = iat_s;
        mint(&claims, KEY)
    };
    let too_long = |lifetime_s| {
        Err(AuthError::LifetimeTooLong {
            lifetime_s,
            lifetime_max_s: 30 * DAY_S,
        })
    };
    let cases: [(&str, String, Result<(), AuthError>); 10] = [
        ("an hour", token(NOW_S + 3600, Some(NOW_S)), Ok(())),
        ("30 days", token(NOW_S + 30 * DAY_S, Some(NOW_S)), Ok(())),
        (
            "30 days and a second",
            token(NOW_S + 30 * DAY_S + 1, Some(NOW_S)),
            too_long(30 * DAY_S + 1),
        ),
        (
            "a year",
            token(NOW_S + 365 * DAY_S, Some(NOW_S)),
            too_long(365 * DAY_S),
        ),
        // The lifetime is what the token claims, even when little of it is left.
        (
            "issued 40 days ago, an hour left",
            token(NOW_S + 3600, Some(NOW_S - 40 * DAY_S)),
            too_long(40 * DAY_S + 3600),
        ),
        // Without iat, what is left of it is bounded.
        (
            "no iat, 30 days left",
            token(NOW_S + 30 * DAY_S, None),
            Ok(()),
        ),
        (
            "no iat, far future",
            token(u64::MAX, None),
            too_long(u64::MAX - NOW_S),
        ),
        (
            "iat within the clock skew",
            token(NOW_S + 3600, Some(NOW_S + 60)),
            Ok(()),
        ),
        (
            "iat past the clock skew",
            token(NOW_S + 3600, Some(NOW_S + 61)),
            Err(AuthError::IssuedInFuture {
                iat_s: NOW_S + 61,
                now_s: NOW_S,
            }),
        ),
        (
            "iat far in the future",
            token(NOW_S + 3600, Some(u64::MAX)),
            Err(AuthError::IssuedInFuture {
                iat_s: u64::MAX,
                now_s: NOW_S,
            }),
        ),
    ];
    for (name, token, expected) in cases {
        assert_eq!(verify(&token, KEY, NOW_S).map(|_| ()), expected, "{name}");
    }
    // The bounds are the caller's to choose.
    let year = token(NOW_S + 365 * DAY_S, Some(NOW_S));
    let long = VerifyOptions {
        lifetime_max_s: 400 * DAY_S,
        ..defaults
    };
    assert!(verify_with(&year, KEY, NOW_S, &long).is_ok());
    let hour = VerifyOptions {
        lifetime_max_s: 3600,
        ..defaults
    };
    assert_eq!(
        verify_with(&token(NOW_S + 3601, Some(NOW_S)), KEY, NOW_S, &hour),
        Err(AuthError::LifetimeTooLong {
            lifetime_s: 3601,
            lifetime_max_s: 3600
        })
    );
    let strict = VerifyOptions {
        clock_skew_s: 0,
        ..defaults
    };
    assert!(verify_with(&token(NOW_S + 10, Some(NOW_S + 1)), KEY, NOW_S, &strict).is_err());
    assert!(verify_with(&token(NOW_S + 10, Some(NOW_S)), KEY, NOW_S, &strict).is_ok());
    // Tickets are tokens too: one minted now for 300 s passes.
    let ticket = access(Scopes::ALL, None)
        .ticket_for(&conn("a"), NOW_S, 300)
        .unwrap();
    assert!(verify(&mint(&ticket, KEY), KEY, NOW_S).is_ok());
}
