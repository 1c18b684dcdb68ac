//! Property tests for ids, hub names and tokens against naive models.
#![cfg(not(target_arch = "wasm32"))]

use herald_core::auth::{verify_with, AuthError, VerifyOptions};
use herald_core::{
    hub_name, mint, verify, Claims, ConnectionId, Scope, Scopes, TenantId, TokenKind,
};

/// No bound on lifetime or issue time: for properties about everything else.
const UNBOUNDED: VerifyOptions = VerifyOptions {
    lifetime_max_s: u64::MAX,
    clock_skew_s: u64::MAX,
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
        prop_assert_eq!(verify_with(&token, &key, claims.exp_s - 1, &UNBOUNDED), Ok(claims.clone()));
        prop_assert_eq!(
            verify_with(&token, &key, claims.exp_s, &UNBOUNDED),
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
    fn time_claims_match_a_model_near_the_bounds(
        now_s in 0u64..4_000_000_000,
        exp_delta_s in -100i64..3_000_000,
        iat_delta_s in proptest::option::of(-3_000_000i64..200),
        lifetime_max_s in prop_oneof![Just(VerifyOptions::LIFETIME_MAX_S_DEFAULT), 0u64..3_000_000],
        clock_skew_s in prop_oneof![Just(VerifyOptions::CLOCK_SKEW_S_DEFAULT), 0u64..200],
    ) {
        let at = |delta: i64| now_s.saturating_add_signed(delta);
        check_time_claims(at(exp_delta_s), iat_delta_s.map(at), now_s, VerifyOptions { lifetime_max_s, clock_skew_s })?;
    }

    #[test]
    fn time_claims_match_a_model_anywhere(
        exp_s in any::<u64>(),
        iat_s in proptest::option::of(any::<u64>()),
        now_s in any::<u64>(),
        lifetime_max_s in any::<u64>(),
        clock_skew_s in any::<u64>(),
    ) {
        check_time_claims(exp_s, iat_s, now_s, VerifyOptions { lifetime_max_s, clock_skew_s })?;
    }

    #[test]
    fn verify_never_panics_on_arbitrary_input(token in ".{0,200}", now_s in any::<u64>()) {
        let _ = verify(&token, b"k", now_s);
    }
}

/// Verifies a token with these times against the model: expired, then issued in the future, then
/// living too long, computed in u128 where nothing wraps.
fn check_time_claims(
    exp_s: u64,
    iat_s: Option<u64>,
    now_s: u64,
    options: VerifyOptions,
) -> Result<(), TestCaseError> {
    let key = b"herald-property-test-key-32bytes";
    let claims = Claims {
        tenant: TenantId::new("acme").unwrap(),
        scopes: Scopes::ALL,
        streams: None,
        exp_s,
        iat_s,
        kind: TokenKind::Access,
    };
    let (exp, now) = (u128::from(exp_s), u128::from(now_s));
    let issued = u128::from(iat_s.unwrap_or(now_s));
    let model = match iat_s {
        _ if exp <= now => Err(AuthError::Expired { exp_s, now_s }),
        Some(iat_s) if issued > now + u128::from(options.clock_skew_s) => {
            Err(AuthError::IssuedInFuture { iat_s, now_s })
        }
        _ if exp.saturating_sub(issued) > u128::from(options.lifetime_max_s) => {
            Err(AuthError::LifetimeTooLong {
                lifetime_s: u64::try_from(exp - issued).unwrap(),
                lifetime_max_s: options.lifetime_max_s,
            })
        }
        _ => Ok(claims.clone()),
    };
    prop_assert_eq!(
        verify_with(&mint(&claims, key), key, now_s, &options),
        model
    );
    Ok(())
}
