//! Digest rules on SQLite and PostgreSQL: versioned upserts (a published version never
//! changes), get, list with exact-match filters, the matching precedence, tenant isolation and
//! validation that names the field and writes nothing. The window maths is tested
//! table-driven in `host/src/digests/window.rs`.

use crate::common::{Backend, count, world};
use belfry::Engine;
use belfry::host::content::Channel;
use belfry::host::digests::rules::Upserted;
use belfry::host::digests::{GroupBy, Lookup, RuleError, RuleFilter, RuleSpec, Window};

fn rule(key: &str, version: i64) -> RuleSpec {
    RuleSpec {
        key: key.into(),
        version,
        channel: Channel::Email,
        notifier_key: None,
        category: None,
        digest_key: None,
        group_by: GroupBy::Category,
        window: Window::fixed(60).unwrap(),
        max_items: None,
        first_now: false,
    }
}

fn lookup<'a>(
    notifier: Option<&'a str>,
    category: Option<&'a str>,
    digest_key: Option<&'a str>,
) -> Lookup<'a> {
    Lookup {
        channel: Channel::Email,
        notifier_key: notifier,
        category,
        digest_key,
    }
}

async fn matched(e: &Engine, tenant: &str, l: Lookup<'_>) -> Option<String> {
    e.match_digest_rule(tenant, &l)
        .await
        .unwrap()
        .map(|r| format!("{}@{}", r.spec.key, r.spec.version))
}

async fn a_published_version_never_changes(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let first = rule("hourly", 1);
    let (stored, how) = e.upsert_digest_rule("t", &first).await.unwrap();
    assert_eq!(how, Upserted::Created);
    assert_eq!(stored.spec, first);
    // The same content again: nothing changes.
    let (again, how) = e.upsert_digest_rule("t", &first).await.unwrap();
    assert_eq!(how, Upserted::Unchanged);
    assert_eq!(again, stored);
    // Different content under version 1 is refused, naming what differs.
    let changed = RuleSpec {
        window: Window::fixed(30).unwrap(),
        max_items: Some(10),
        ..first.clone()
    };
    let err = e.upsert_digest_rule("t", &changed).await.unwrap_err();
    assert!(
        matches!(&err, RuleError::Immutable { differs, .. } if differs == &["window", "max_items"]),
        "{err}"
    );
    assert!(
        err.to_string().contains("upsert it as a new version"),
        "{err}"
    );
    assert_eq!(e.digest_rule("t", "hourly", Some(1)).await.unwrap(), stored);
    // As version 2 it is published, and becomes what `get` without a version returns.
    let changed = RuleSpec {
        version: 2,
        ..changed
    };
    e.upsert_digest_rule("t", &changed).await.unwrap();
    assert_eq!(
        e.digest_rule("t", "hourly", None).await.unwrap().spec,
        changed
    );
    assert_eq!(e.digest_rule("t", "hourly", Some(1)).await.unwrap(), stored);
    assert!(matches!(
        e.digest_rule("t", "hourly", Some(3)).await.unwrap_err(),
        RuleError::NotFound { .. }
    ));
    // A boundary window is stored and read back exactly.
    let daily = RuleSpec {
        window: Window::boundary(9 * 60, "Europe/London").unwrap(),
        first_now: true,
        ..rule("daily", 1)
    };
    e.upsert_digest_rule("t", &daily).await.unwrap();
    assert_eq!(e.digest_rule("t", "daily", None).await.unwrap().spec, daily);
}

async fn list_filters_by_exact_matches(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let specs = [
        RuleSpec {
            category: Some("orders".into()),
            ..rule("orders", 1)
        },
        RuleSpec {
            category: Some("orders".into()),
            max_items: Some(5),
            ..rule("orders", 2)
        },
        RuleSpec {
            channel: Channel::InApp,
            notifier_key: Some("mention".into()),
            group_by: GroupBy::Notifier,
            ..rule("mentions", 1)
        },
        rule("catch-all", 1),
    ];
    for s in &specs {
        e.upsert_digest_rule("t", s).await.unwrap();
    }
    let keys = |rules: Vec<belfry::host::digests::DigestRule>| -> Vec<String> {
        rules
            .iter()
            .map(|r| format!("{}@{}", r.spec.key, r.spec.version))
            .collect()
    };
    let all = e.digest_rules("t", &RuleFilter::default()).await.unwrap();
    assert_eq!(
        keys(all),
        ["catch-all@1", "mentions@1", "orders@1", "orders@2"]
    );
    let f = |f: RuleFilter| async move { keys(e.digest_rules("t", &f).await.unwrap()) };
    assert_eq!(
        f(RuleFilter {
            category: Some("orders".into()),
            latest_only: true,
            ..Default::default()
        })
        .await,
        ["orders@2"]
    );
    assert_eq!(
        f(RuleFilter {
            channel: Some(Channel::InApp),
            ..Default::default()
        })
        .await,
        ["mentions@1"]
    );
    // `Some("")` finds the rules that leave that match open.
    assert_eq!(
        f(RuleFilter {
            category: Some(String::new()),
            channel: Some(Channel::Email),
            ..Default::default()
        })
        .await,
        ["catch-all@1"]
    );
    assert_eq!(
        f(RuleFilter {
            group_by: Some(GroupBy::Notifier),
            ..Default::default()
        })
        .await,
        ["mentions@1"]
    );
    // Another tenant sees none of them.
    assert!(
        e.digest_rules("u", &RuleFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn the_most_specific_latest_rule_matches(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    assert_eq!(
        matched(e, "t", lookup(None, Some("orders"), None)).await,
        None
    );
    let specs = [
        rule("a-any", 1),
        RuleSpec {
            category: Some("orders".into()),
            ..rule("b-category", 1)
        },
        RuleSpec {
            notifier_key: Some("order-shipped".into()),
            ..rule("c-notifier", 1)
        },
        RuleSpec {
            notifier_key: Some("order-shipped".into()),
            category: Some("orders".into()),
            ..rule("d-notifier-category", 1)
        },
        RuleSpec {
            digest_key: Some("weekly-summary".into()),
            ..rule("e-digest-key", 1)
        },
        // Same specificity as b-category, but sorts after it: the tie goes to b.
        RuleSpec {
            category: Some("orders".into()),
            ..rule("f-category", 1)
        },
    ];
    for s in &specs {
        e.upsert_digest_rule("t", s).await.unwrap();
    }
    let cases = [
        (lookup(None, None, None), "a-any@1"),
        (lookup(None, Some("billing"), None), "a-any@1"),
        (lookup(None, Some("orders"), None), "b-category@1"),
        (lookup(Some("order-shipped"), None, None), "c-notifier@1"),
        (
            lookup(Some("order-shipped"), Some("orders"), None),
            "d-notifier-category@1",
        ),
        (
            lookup(
                Some("order-shipped"),
                Some("orders"),
                Some("weekly-summary"),
            ),
            "e-digest-key@1",
        ),
        (lookup(None, None, Some("other-key")), "a-any@1"),
    ];
    for (l, expected) in cases {
        assert_eq!(matched(e, "t", l).await.as_deref(), Some(expected), "{l:?}");
    }
    // Only a key's highest version counts: v2 of the notifier-and-category rule moves to sms,
    // so for email the notifier-only rule takes over.
    e.upsert_digest_rule(
        "t",
        &RuleSpec {
            channel: Channel::Sms,
            version: 2,
            ..specs[3].clone()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        matched(e, "t", lookup(Some("order-shipped"), Some("orders"), None))
            .await
            .as_deref(),
        Some("c-notifier@1")
    );
    // Other channels and other tenants: nothing.
    let push = Lookup {
        channel: Channel::Push,
        ..lookup(None, None, None)
    };
    assert_eq!(matched(e, "t", push).await, None);
    assert_eq!(matched(e, "other", lookup(None, None, None)).await, None);
}

async fn invalid_rules_are_rejected_naming_the_field(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let cases: Vec<(RuleSpec, &str)> = vec![
        (rule("", 1), "invalid key"),
        (rule(" padded", 1), "invalid key"),
        (rule("ok", 0), "invalid version: must be at least 1, got 0"),
        (
            RuleSpec {
                category: Some(String::new()),
                ..rule("ok", 1)
            },
            "invalid category",
        ),
        (
            RuleSpec {
                max_items: Some(1),
                ..rule("ok", 1)
            },
            "invalid max_items: must be 2 to",
        ),
    ];
    for (spec, expected) in cases {
        let err = e.upsert_digest_rule("t", &spec).await.unwrap_err();
        assert!(
            err.to_string().contains(expected),
            "{err} should say {expected}"
        );
    }
    assert_eq!(count(e, "digest_rules").await, 0, "nothing was written");
    for (bad, field) in [
        (Window::fixed(0).unwrap_err().to_string(), "window.minutes"),
        (
            Window::boundary(1440, "UTC").unwrap_err().to_string(),
            "window.at",
        ),
        (
            Window::boundary(0, "Mars/Olympus").unwrap_err().to_string(),
            "window.zone",
        ),
    ] {
        assert!(bad.contains(field), "{bad} should name {field}");
    }
    assert!(
        "weekly"
            .parse::<GroupBy>()
            .unwrap_err()
            .to_string()
            .contains("group_by")
    );
}

on_both_backends!(
    a_published_version_never_changes,
    list_filters_by_exact_matches,
    the_most_specific_latest_rule_matches,
    invalid_rules_are_rejected_naming_the_field,
);
