//! Reading what a decision needs: every recipient's stored inputs in one query per chunk
//! ([`Inputs::load_many`]), and the counts of past deliveries behind cooldowns and caps
//! ([`History::load`]), read only when a decision will look at them.

use super::decision::Checkpoint;
use super::facts::{Facts, History, Inputs, StoredPref, Subject};
use super::inputs::{self, Settings, Suppression, TENANT_DEFAULT};
use super::rules;
use crate::content::Recipient;
use crate::store::{self, Conn, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// Recipients per loading query; with two addresses each that is 1,500 bind parameters, far
/// below SQLite's and PostgreSQL's limits.
pub const LOAD_CHUNK: usize = 500;

impl Inputs {
    /// Everything that decides for `recipient` in one round trip: preferences and settings
    /// (own and the tenant's defaults) and the active suppressions of its addresses.
    pub async fn load(
        conn: &mut Conn,
        tenant: &str,
        recipient: &Recipient,
        now: DateTime<Utc>,
    ) -> Result<Inputs, StoreError> {
        let mut all = Inputs::load_many(conn, tenant, &[recipient], now).await?;
        Ok(all.remove(&recipient.id).unwrap_or_default())
    }

    /// The inputs of many recipients of one tenant, by recipient id, in one query per
    /// [`LOAD_CHUNK`] recipients: a bulk trigger reads its policy in a statement or two, not
    /// one per recipient.
    pub async fn load_many(
        conn: &mut Conn,
        tenant: &str,
        recipients: &[&Recipient],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Inputs>, StoreError> {
        let mut out: HashMap<String, Inputs> = HashMap::with_capacity(recipients.len());
        for chunk in recipients.chunks(LOAD_CHUNK) {
            let rows = Rows::read(conn, tenant, chunk, now).await?;
            rows.assign(chunk, &mut out);
        }
        Ok(out)
    }
}

fn addresses_of(r: &Recipient) -> impl Iterator<Item = String> + '_ {
    [&r.email, &r.phone]
        .into_iter()
        .flatten()
        .map(|a| inputs::normalise_address(a))
}

/// The stored inputs of a chunk of recipients and of the tenant's defaults, as read.
#[derive(Default)]
struct Rows {
    /// (recipient or `*`, scope, target, enabled)
    prefs: Vec<(String, String, String, bool)>,
    settings: HashMap<String, Settings>,
    suppressions: Vec<Suppression>,
}

impl Rows {
    async fn read(
        conn: &mut Conn,
        tenant: &str,
        recipients: &[&Recipient],
        now: DateTime<Utc>,
    ) -> Result<Rows, StoreError> {
        let ids: Vec<&str> = recipients.iter().map(|r| r.id.as_str()).collect();
        let addresses: Vec<String> = recipients.iter().flat_map(|r| addresses_of(r)).collect();
        let sql = chunk_sql(ids.len(), addresses.len());
        let mut q = sqlx::query(&sql).bind(tenant).bind(store::time_text(now));
        for id in &ids {
            q = q.bind(*id);
        }
        for a in &addresses {
            q = q.bind(a.as_str());
        }
        let mut out = Rows::default();
        for r in &q.fetch_all(&mut *conn).await? {
            out.add(tenant, r)?;
        }
        Ok(out)
    }

    fn add(&mut self, tenant: &str, r: &sqlx::any::AnyRow) -> Result<(), StoreError> {
        let src: String = r.get("src");
        let who: String = r.get("who");
        match src.as_str() {
            "pref" => self.prefs.push((
                who,
                r.get::<String, _>("a"),
                r.get::<String, _>("b"),
                r.get::<Option<i64>, _>("n1").unwrap_or(1) != 0,
            )),
            "settings" => {
                let s = inputs::settings_from_columns(
                    r.get("a"),
                    r.get("n1"),
                    r.get("n2"),
                    r.get("b"),
                    r.get("c"),
                    r.get("d"),
                    r.get("e"),
                )?;
                self.settings.insert(who, s);
            }
            _ => self.suppressions.push(Suppression {
                id: who,
                tenant: tenant.to_string(),
                address: r.get("a"),
                recipient_id: r.get("b"),
                channel: r.get("c"),
                reason: r.get::<Option<String>, _>("d").unwrap_or_default(),
                note: r.get("e"),
                expires_at: r.get("f"),
                created_at: r.get::<Option<String>, _>("g").unwrap_or_default(),
            }),
        }
        Ok(())
    }

    /// Each recipient's inputs: its own rows and the tenant's defaults.
    fn assign(&self, recipients: &[&Recipient], out: &mut HashMap<String, Inputs>) {
        let defaults = self
            .settings
            .get(TENANT_DEFAULT)
            .cloned()
            .unwrap_or_default();
        for r in recipients {
            let mine: Vec<String> = addresses_of(r).collect();
            let prefs = self
                .prefs
                .iter()
                .filter(|p| p.0 == r.id || p.0 == TENANT_DEFAULT)
                .map(|p| StoredPref {
                    own: p.0 != TENANT_DEFAULT,
                    scope: p.1.clone(),
                    target: p.2.clone(),
                    enabled: p.3,
                })
                .collect();
            let suppressions = self
                .suppressions
                .iter()
                .filter(|x| {
                    x.recipient_id.as_deref() == Some(r.id.as_str())
                        || x.address.as_ref().is_some_and(|a| mine.contains(a))
                })
                .cloned()
                .collect();
            let own = self.settings.get(&r.id).cloned().unwrap_or_default();
            out.insert(
                r.id.clone(),
                Inputs {
                    prefs,
                    settings: own.over(&defaults),
                    suppressions,
                },
            );
        }
    }
}

/// The query for `ids` recipients with `addresses` addresses: $1 tenant, $2 now, then the
/// ids, then the addresses.
fn chunk_sql(ids: usize, addresses: usize) -> String {
    let list = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let id_list = list(3, ids);
    // A suppression names an address or a recipient, never both: a branch for each, so each
    // is a lookup in its own index (under one OR, SQLite read every suppression of the tenant).
    let supp = "SELECT 'supp', id, address, recipient_id, channel, reason, note, expires_at,
                created_at, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
         FROM suppressions";
    let by_address = if addresses == 0 {
        String::new()
    } else {
        format!(
            " UNION ALL {supp} WHERE tenant = $1 AND address IN ({})
               AND (expires_at IS NULL OR expires_at > $2)",
            list(3 + ids, addresses)
        )
    };
    // Columns are typed by CAST so both backends agree on the union's types.
    format!(
        "SELECT 'pref' AS src, recipient_id AS who, scope AS a, target AS b,
                CAST(NULL AS TEXT) AS c, CAST(NULL AS TEXT) AS d, CAST(NULL AS TEXT) AS e,
                CAST(NULL AS TEXT) AS f, CAST(NULL AS TEXT) AS g,
                enabled AS n1, CAST(NULL AS BIGINT) AS n2
         FROM preferences WHERE tenant = $1 AND recipient_id IN ('*', {id_list})
         UNION ALL
         SELECT 'settings', recipient_id, time_zone, severity_floor, caps, cooldowns, updated_at,
                CAST(NULL AS TEXT), CAST(NULL AS TEXT), quiet_start, quiet_end
         FROM recipient_settings WHERE tenant = $1 AND recipient_id IN ('*', {id_list})
         UNION ALL
         {supp} WHERE tenant = $1 AND recipient_id IN ({id_list})
           AND (expires_at IS NULL OR expires_at > $2){by_address}"
    )
}

impl History {
    /// Counts what the cooldown and cap rules of `f` will look at, through `conn`, which may
    /// be the trigger's transaction, so deliveries planned earlier in it count. A span out of
    /// range is not counted, nor anything after it: its rule fails the decision first. A repeat
    /// inside the cooldown decides before the cap, so the cap is then not counted either.
    pub async fn load(
        conn: &mut Conn,
        f: &Facts<'_>,
        now: DateTime<Utc>,
    ) -> Result<History, StoreError> {
        let s = f.subject;
        let settings = &f.inputs.settings;
        let mut history = History::default();
        if let Some(secs) = settings.cooldown_for(s.notifier_key) {
            let Ok(since) = rules::cooldown_since(s, secs) else {
                return Ok(history);
            };
            history.repeat_of = repeat_of(conn, f.checkpoint, s, since).await?;
            if history.repeat_of.is_some() {
                return Ok(history);
            }
        }
        if let Some(cap) = settings.caps.get(&s.channel)
            && let Ok(since) = rules::cap_since(s.channel, cap, now)
        {
            history.cap_used = cap_used(conn, f.checkpoint, s, since).await?;
        }
        Ok(history)
    }
}

/// Which other deliveries came "before" this one. At plan time: every one already written,
/// since planning is serialised per recipient (SQLite's writer lock, PostgreSQL's advisory
/// lock) while ids were drawn before it. At send time: only those planned before it (by
/// time-ordered id), so two deliveries that both passed planning cannot stop each other.
fn before(checkpoint: Checkpoint) -> &'static str {
    match checkpoint {
        Checkpoint::Plan => "<>",
        Checkpoint::Send => "<",
    }
}

async fn repeat_of(
    conn: &mut Conn,
    checkpoint: Checkpoint,
    s: &Subject<'_>,
    since: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let before = before(checkpoint);
    Ok(sqlx::query_scalar(&format!(
        "SELECT n.id FROM notifications n JOIN events e ON e.id = n.event_id
         WHERE n.tenant = $1 AND n.recipient_id = $2 AND e.notifier_key = $3
           AND n.id {before} $4 AND n.created_at >= $5
           AND EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id
                       AND d.status IN ('pending', 'deferred', 'succeeded'))
         ORDER BY n.id DESC LIMIT 1"
    ))
    .bind(s.tenant)
    .bind(&s.recipient.id)
    .bind(s.notifier_key)
    .bind(s.notification_id)
    .bind(store::time_text(since))
    .fetch_optional(&mut *conn)
    .await?)
}

async fn cap_used(
    conn: &mut Conn,
    checkpoint: Checkpoint,
    s: &Subject<'_>,
    since: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let before = before(checkpoint);
    Ok(sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
         WHERE n.tenant = $1 AND n.recipient_id = $2 AND d.channel = $3
           AND d.notification_id <> $4
           AND ((d.status = 'succeeded' AND d.sent_at >= $5)
                OR (d.status = 'pending' AND d.id {before} $6))"
    ))
    .bind(s.tenant)
    .bind(&s.recipient.id)
    .bind(s.channel.as_str())
    .bind(s.notification_id)
    .bind(store::time_text(since))
    .bind(s.delivery_id)
    .fetch_one(&mut *conn)
    .await?)
}
