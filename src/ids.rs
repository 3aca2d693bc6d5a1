//! Ids given on the command line: whole, or any unique prefix of one, as git takes commits.
//!
//! A prefix is looked up as a range on each table's primary key (`id >= PREFIX AND id <
//! PREFIX + U+007F`), so it costs an index seek, not a scan, however large the table.

use anyhow::{Result, bail};
use belfry::host::store::Db;

/// The shortest prefix taken: shorter ones match too much to be worth a look-up.
pub const MIN_PREFIX: usize = 4;

/// One kind of thing an id may name: its table and what to call it in messages.
#[derive(Clone, Copy, Debug)]
pub struct Kind {
    table: &'static str,
    what: &'static str,
}

pub const EVENT: Kind = Kind {
    table: "events",
    what: "event",
};
pub const NOTIFICATION: Kind = Kind {
    table: "notifications",
    what: "notification",
};
pub const DELIVERY: Kind = Kind {
    table: "deliveries",
    what: "delivery",
};
pub const RUN: Kind = Kind {
    table: "workflow_runs",
    what: "workflow run",
};
pub const RECEIPT: Kind = Kind {
    table: "webhook_receipts",
    what: "webhook receipt",
};
pub const ENDPOINT: Kind = Kind {
    table: "endpoints",
    what: "endpoint",
};
pub const KEY: Kind = Kind {
    table: "api_keys",
    what: "API key",
};
pub const BUCKET: Kind = Kind {
    table: "digest_buckets",
    what: "digest bucket",
};
pub const INBOX_ITEM: Kind = Kind {
    table: "inbox_items",
    what: "inbox item",
};

/// The whole id that `text` is, or is the unique prefix of, among `kinds`. An id that exists
/// as given wins; text that starts no id is returned as it is, for the command to report as
/// unknown in its own words; a prefix shorter than [`MIN_PREFIX`], or one that starts more
/// than one id, is an error naming what it matched.
pub async fn resolve(db: &Db, text: &str, kinds: &[Kind]) -> Result<String> {
    if !text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        // No id has such characters: let the command say that nothing has this id.
        return Ok(text.to_string());
    }
    let upper = format!("{text}\u{7f}");
    let mut found: Vec<(String, &'static str)> = Vec::new();
    for kind in kinds {
        // Table names are constants of this module, never input.
        let sql = format!(
            "SELECT id FROM {} WHERE id >= $1 AND id < $2 ORDER BY id LIMIT 2",
            kind.table
        );
        let ids: Vec<String> = sqlx::query_scalar(&sql)
            .bind(text)
            .bind(&upper)
            .fetch_all(db)
            .await?;
        if ids.iter().any(|id| id == text) {
            return Ok(text.to_string());
        }
        found.extend(
            ids.into_iter()
                .filter(|id| id.starts_with(text))
                .map(|id| (id, kind.what)),
        );
    }
    if found.is_empty() {
        // Nothing has this id or starts with it: the command says so in its own words.
        return Ok(text.to_string());
    }
    if text.chars().count() < MIN_PREFIX {
        bail!(
            "the id prefix `{text}` is too short: give at least {MIN_PREFIX} characters, or the whole id"
        );
    }
    match found.as_slice() {
        [(id, _)] => Ok(id.clone()),
        several => bail!(
            "the id prefix `{text}` is ambiguous: it starts {}{}; give more characters",
            several
                .iter()
                .take(3)
                .map(|(id, what)| format!("{what} {id}"))
                .collect::<Vec<_>>()
                .join(", "),
            if several.len() > 2 { " and more" } else { "" }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn db_with(ids: &[&str]) -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ids.db").display());
        let db = belfry::host::store::open(&url).await.unwrap();
        sqlx::query("CREATE TABLE probe_ids (id TEXT PRIMARY KEY)")
            .execute(&db)
            .await
            .unwrap();
        for id in ids {
            sqlx::query("INSERT INTO probe_ids (id) VALUES ($1)")
                .bind(*id)
                .execute(&db)
                .await
                .unwrap();
        }
        (dir, db)
    }

    const PROBE: Kind = Kind {
        table: "probe_ids",
        what: "probe",
    };

    #[tokio::test]
    async fn a_unique_prefix_names_its_id_and_others_are_refused_clearly() {
        let (_dir, db) = db_with(&[
            "0194a1b2-0000-7000-8000-00000000000a",
            "0194a1b2-0000-7000-8000-00000000000b",
            "0194a1b3-0000-7000-8000-00000000000c",
        ])
        .await;
        let resolve = |t: &'static str| {
            let db = db.clone();
            async move { resolve(&db, t, &[PROBE]).await }
        };
        assert_eq!(
            resolve("0194a1b3").await.unwrap(),
            "0194a1b3-0000-7000-8000-00000000000c"
        );
        assert_eq!(
            resolve("0194a1b2-0000-7000-8000-00000000000b")
                .await
                .unwrap(),
            "0194a1b2-0000-7000-8000-00000000000b"
        );
        let ambiguous = resolve("0194a1b2").await.unwrap_err().to_string();
        assert!(ambiguous.contains("ambiguous"), "{ambiguous}");
        assert!(ambiguous.contains("00000000000a"), "{ambiguous}");
        // Unknown: left for the command to report.
        assert_eq!(resolve("ffff").await.unwrap(), "ffff");
        let short = resolve("019").await.unwrap_err().to_string();
        assert!(short.contains("at least 4 characters"), "{short}");
    }
}
