//! Filters: query-string vectors (accepted and rejected) and a matching table.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::filter::{FilterErrorKind, FilterParam};
use herald_core::{Filter, Vocabulary};

enum Want {
    /// Expected `types` and `categories` (`None`: parameter absent).
    Ok(
        Option<&'static [&'static str]>,
        Option<&'static [&'static str]>,
    ),
    /// Expected parameter, kind and named value.
    Err(FilterParam, FilterErrorKind, &'static str),
}

use FilterErrorKind::{Empty, ForbiddenByte, TooLong, TooMany, Unknown};
use FilterParam::{Categories, Types};

fn check(query: &str, vocabulary: Vocabulary<'_>, want: &Want) {
    let got = Filter::from_query(query, &vocabulary);
    match (want, got) {
        (Want::Ok(types, categories), Ok(filter)) => {
            fn owned(values: Option<&[String]>) -> Option<Vec<&str>> {
                values.map(|v| v.iter().map(String::as_str).collect())
            }
            assert_eq!(
                owned(filter.types()),
                types.map(<[&str]>::to_vec),
                "types of {query:?}"
            );
            assert_eq!(
                owned(filter.categories()),
                categories.map(<[&str]>::to_vec),
                "categories of {query:?}"
            );
        }
        (Want::Err(param, kind, value), Err(error)) => {
            assert_eq!(
                (error.param(), error.kind(), error.value()),
                (*param, *kind, *value),
                "{query:?}"
            );
        }
        (Want::Ok(..), Err(error)) => panic!("{query:?}: unexpected error {error}"),
        (Want::Err(..), Ok(filter)) => panic!("{query:?}: unexpected success {filter:?}"),
    }
}

#[test]
fn query_vectors() {
    let open = Vocabulary::open();
    let sluice = Vocabulary::sluice();
    let dashtam = Vocabulary::dashtam();
    let cases: &[(&str, Vocabulary<'_>, Want)] = &[
        // Absent parameters: everything passes.
        ("", open, Want::Ok(None, None)),
        ("?", open, Want::Ok(None, None)),
        ("connectionId=8c1e&x=%zz", sluice, Want::Ok(None, None)),
        ("Types=job", sluice, Want::Ok(None, None)), // names are case-sensitive
        ("typesX=job&xtypes=job", sluice, Want::Ok(None, None)),
        // Comma lists, repetition, dedup, order of first appearance.
        ("types=job", sluice, Want::Ok(Some(&["job"]), None)),
        (
            "?connectionId=8c1e&types=job,worker&types=queue",
            sluice,
            Want::Ok(Some(&["job", "worker", "queue"]), None),
        ),
        (
            "types=job&types=job,worker,job",
            sluice,
            Want::Ok(Some(&["job", "worker"]), None),
        ),
        ("types=a&&types=b", open, Want::Ok(Some(&["a", "b"]), None)),
        // Percent-decoding applies to names and values, before the comma split.
        (
            "types=job%2Cworker",
            sluice,
            Want::Ok(Some(&["job", "worker"]), None),
        ),
        ("type%73=%6Aob", sluice, Want::Ok(Some(&["job"]), None)),
        ("categor%69es=ai", dashtam, Want::Ok(None, Some(&["ai"]))),
        // Names inside a known namespace are known.
        (
            "types=job:state_change,worker.heartbeat",
            sluice,
            Want::Ok(Some(&["job:state_change", "worker.heartbeat"]), None),
        ),
        (
            "types=heartbeat",
            sluice,
            Want::Ok(Some(&["heartbeat"]), None),
        ),
        // Dashtam: categories are closed, types are open.
        (
            "categories=data_sync,provider&categories=ai",
            dashtam,
            Want::Ok(None, Some(&["data_sync", "provider", "ai"])),
        ),
        (
            "types=sync.accounts.started&categories=data_sync",
            dashtam,
            Want::Ok(Some(&["sync.accounts.started"]), Some(&["data_sync"])),
        ),
        // Unknown values name the value and the parameter.
        ("types=jobs", sluice, Want::Err(Types, Unknown, "jobs")),
        (
            "types=job&types=bogus",
            sluice,
            Want::Err(Types, Unknown, "bogus"),
        ),
        (
            "types=foo:job",
            sluice,
            Want::Err(Types, Unknown, "foo:job"),
        ),
        (
            "categories=sync",
            dashtam,
            Want::Err(Categories, Unknown, "sync"),
        ),
        (
            "categories=data_sync.x",
            dashtam,
            Want::Err(Categories, Unknown, "data_sync.x"),
        ), // no namespaces
        (
            "categories=data_sync",
            sluice,
            Want::Err(Categories, Unknown, "data_sync"),
        ),
        // Empty values are rejected.
        ("types=", open, Want::Err(Types, Empty, "")),
        ("types", open, Want::Err(Types, Empty, "")),
        ("types=job,,worker", sluice, Want::Err(Types, Empty, "")),
        ("categories=ai,", dashtam, Want::Err(Categories, Empty, "")),
        // Charset, after decoding: '+' is a space, a stray '%' stays literal, "%2B" is a literal
        // '+'.
        (
            "types=job+x",
            open,
            Want::Err(Types, ForbiddenByte(b' '), "job x"),
        ),
        (
            "types=job%20x",
            open,
            Want::Err(Types, ForbiddenByte(b' '), "job x"),
        ),
        (
            "types=%zz",
            open,
            Want::Err(Types, ForbiddenByte(b'%'), "%zz"),
        ),
        (
            "types=job%2B",
            open,
            Want::Err(Types, ForbiddenByte(b'+'), "job+"),
        ),
        (
            "types=caf%C3%A9",
            open,
            Want::Err(Types, ForbiddenByte(0xC3), "café"),
        ),
        (
            "types=a%0Ab",
            open,
            Want::Err(Types, ForbiddenByte(b'\n'), "a\nb"),
        ),
        (
            "categories=a/b",
            open,
            Want::Err(Categories, ForbiddenByte(b'/'), "a/b"),
        ),
    ];
    for (query, vocabulary, want) in cases {
        check(query, *vocabulary, want);
    }
}

#[test]
fn length_and_count_limits() {
    let at_limit = "a".repeat(128);
    let filter = Filter::from_query(&format!("types={at_limit}"), &Vocabulary::open()).unwrap();
    assert_eq!(filter.types(), Some(&[at_limit.clone()][..]));
    let error = Filter::from_query(&format!("types={at_limit}b"), &Vocabulary::open()).unwrap_err();
    // The error carries the value cut to 128 bytes, never the whole attacker-sized input.
    assert_eq!(
        (error.param(), error.kind(), error.value()),
        (Types, TooLong, at_limit.as_str())
    );

    let values: Vec<String> = (0..64).map(|i| format!("v{i}")).collect();
    let filter =
        Filter::from_query(&format!("types={}", values.join(",")), &Vocabulary::open()).unwrap();
    assert_eq!(filter.types().map(<[String]>::len), Some(64));
    let error = Filter::from_query(
        &format!("types={}&types=v64", values.join(",")),
        &Vocabulary::open(),
    )
    .unwrap_err();
    assert_eq!(
        (error.param(), error.kind(), error.value()),
        (Types, TooMany, "v64")
    );
    // Duplicates do not count against the limit.
    assert!(Filter::from_query(
        &format!("types={}&types=v0", values.join(",")),
        &Vocabulary::open()
    )
    .is_ok());
}

#[test]
fn matching_table() {
    let open = Vocabulary::open();
    let cases: &[(&str, &str, Option<&str>, bool)] = &[
        ("", "anything", None, true),
        ("", "anything", Some("ai"), true),
        // Namespace match on ':' or '.'.
        ("types=job", "job", None, true),
        ("types=job", "job:state_change", None, true),
        ("types=job", "job.created", None, true),
        ("types=job", "jobs", None, false),
        ("types=job", "jo", None, false),
        ("types=job", "xjob", None, false),
        ("types=job", "Job", None, false),
        ("types=job", "worker:heartbeat", None, false),
        ("types=job,worker", "worker:heartbeat", None, true),
        ("types=job,worker", "queue:snapshot", None, false),
        // A value with a separator matches that name and names below it.
        ("types=job:state_change", "job:state_change", None, true),
        ("types=job:state_change", "job", None, false),
        ("types=job:state_change", "job:state_changed", None, false),
        ("types=sync.accounts", "sync.accounts.started", None, true),
        (
            "types=sync.accounts",
            "sync.transactions.started",
            None,
            false,
        ),
        // Categories match exactly; an event without one fails a category filter.
        ("categories=ai", "ai.response.chunk", Some("ai"), true),
        ("categories=ai", "ai.response.chunk", Some("aix"), false),
        ("categories=ai", "ai.response.chunk", None, false),
        (
            "categories=ai,security",
            "security.login.failed",
            Some("security"),
            true,
        ),
        // Both given: both must match.
        (
            "types=ai&categories=ai",
            "ai.tool.executing",
            Some("ai"),
            true,
        ),
        (
            "types=ai&categories=ai",
            "ai.tool.executing",
            Some("security"),
            false,
        ),
        (
            "types=ai&categories=ai",
            "security.session.new",
            Some("ai"),
            false,
        ),
    ];
    for &(query, name, category, expected) in cases {
        let filter = Filter::from_query(query, &open).unwrap();
        assert_eq!(
            filter.matches(name, category),
            expected,
            "{query:?} vs {name:?} {category:?}"
        );
    }
    assert!(Filter::all().matches("x", None));
    assert_eq!(Filter::from_query("", &open).unwrap(), Filter::all());
}

#[test]
fn error_messages_name_value_and_parameter() {
    let message = |query: &str, vocabulary: Vocabulary<'_>| {
        Filter::from_query(query, &vocabulary)
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        message("types=jobs", Vocabulary::sluice()),
        "unknown value \"jobs\" in parameter types"
    );
    assert_eq!(
        message("categories=", Vocabulary::dashtam()),
        "empty value in parameter categories"
    );
    assert_eq!(
        message("types=a%0Ab", Vocabulary::open()),
        "value \"a\\nb\" in parameter types has forbidden byte 0x0a"
    );
    assert_eq!(
        message(&format!("types={}", "a".repeat(129)), Vocabulary::open()),
        format!(
            "value \"{}\" in parameter types is longer than 128 bytes",
            "a".repeat(128)
        )
    );
    let many: Vec<String> = (0..65).map(|i| format!("v{i}")).collect();
    assert_eq!(
        message(&format!("types={}", many.join(",")), Vocabulary::open()),
        "parameter types has more than 64 values"
    );
}

#[test]
fn vocabularies_know_their_categories() {
    assert!(Vocabulary::dashtam().knows_category("ai"));
    assert!(!Vocabulary::dashtam().knows_category("weather"));
    assert!(!Vocabulary::sluice().knows_category("ai"));
    assert!(Vocabulary::open().knows_category("anything"));
    assert!(Vocabulary::custom(None, Some(&["billing"])).knows_category("billing"));
}
