//! Property tests for ids, hub names and tokens against naive models.
#![cfg(not(target_arch = "wasm32"))]

use herald_core::{
    hub_name, mint, verify, AuthError, Claims, ConnectionId, Scope, Scopes, TenantId, TokenKind,
};
use proptest::prelude::*;

fn connection_id() -> impl Strategy<Value = ConnectionId> {
    "[A-Za-z0-9_.-]{1,128}"
        .prop_filter("dot segments", |s| s != "." && s != "..")
        .prop_map(|s| ConnectionId::new(&s).unwrap())
}

fn tenant_id() -> impl Strategy<Value = TenantId> {
    "[A-Za-z0-9_-]{1,64}".prop_map(|s| TenantId::new(&s).unwrap())
}

fn claims() -> impl Strategy<Value = Claims> {
    (
        tenant_id(),
        prop_oneof![
            Just(Scopes::ALL),
            Just(Scopes::only(Scope::Publish)),
            Just(Scopes::only(Scope::Subscribe))
        ],
        proptest::option::of(proptest::collection::vec(connection_id(), 0..5)),
        1u64..=u64::MAX,
        proptest::option::of(any::<u64>()),
        prop_oneof![Just(TokenKind::Access), Just(TokenKind::Ticket)],
    )
        .prop_map(|(tenant, scopes, streams, exp_s, iat_s, kind)| Claims {
            tenant,
            scopes,
            streams,
            exp_s,
            iat_s,
            kind,
        })
}

proptest! {
    #[test]
    fn connection_id_accepts_exactly_its_alphabet(value in ".{0,140}") {
        let model = !value.is_empty()
            && value.len() <= 128
            && value != "."
            && value != ".."
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        prop_assert_eq!(ConnectionId::new(&value).is_ok(), model);
    }

    #[test]
    fn tenant_id_accepts_exactly_its_alphabet(value in "[A-Za-z0-9_./ -]{0,70}") {
        let model = !value.is_empty()
            && value.len() <= 64
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
        prop_assert_eq!(TenantId::new(&value).is_ok(), model);
    }

    #[test]
    fn hub_name_is_injective(
        t1 in tenant_id(), c1 in connection_id(), t2 in tenant_id(), c2 in connection_id()
    ) {
        let same_pair = t1 == t2 && c1 == c2;
        prop_assert_eq!(hub_name(&t1, &c1) == hub_name(&t2, &c2), same_pair);
    }

    #[test]
    fn hub_name_splits_back_at_the_first_slash(t in tenant_id(), c in connection_id()) {
        let name = hub_name(&t, &c);
        let (tenant, connection) = name.split_once('/').unwrap();
        prop_assert_eq!(tenant, t.as_str());
        prop_assert_eq!(connection, c.as_str());
    }

    #[test]
    fn mint_then_verify_roundtrips(claims in claims(), key in proptest::collection::vec(any::<u8>(), 0..80)) {
        let token = mint(&claims, &key);
        prop_assert_eq!(verify(&token, &key, claims.exp_s - 1), Ok(claims.clone()));
        prop_assert_eq!(
            verify(&token, &key, claims.exp_s),
            Err(AuthError::Expired { exp_s: claims.exp_s, now_s: claims.exp_s })
        );
    }

    #[test]
    fn any_single_byte_change_is_refused(claims in claims(), index in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let key = b"herald-property-test-key-32bytes";
        let token = mint(&claims, key);
        let mut bytes = token.into_bytes();
        let at = index.index(bytes.len());
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        if let Ok(changed) = String::from_utf8(bytes) {
            prop_assert!(verify(&changed, key, 0).is_err(), "{} accepted", changed);
        }
    }

    #[test]
    fn verify_never_panics_on_arbitrary_input(token in ".{0,200}", now_s in any::<u64>()) {
        let _ = verify(&token, b"k", now_s);
    }
}
