//! Digests: their rules, recipients' cadences, and the buckets held deliveries wait in.

use super::Engine;
use crate::digests::buckets::{self, Bucket, BucketError, BucketFilter, Emission};
use crate::digests::cadence::{self, Cadence, CadenceError, CadenceSetting};
use crate::digests::rules::{self, DigestRule, Lookup, RuleError, RuleFilter, RuleSpec, Upserted};

impl Engine {
    /// Publishes a digest rule version; the same content again is `Unchanged`, different
    /// content under a published version is refused ([`RuleError::Immutable`]).
    pub async fn upsert_digest_rule(
        &self,
        tenant: &str,
        spec: &RuleSpec,
    ) -> Result<(DigestRule, Upserted), RuleError> {
        rules::upsert(&self.db, tenant, spec).await
    }

    /// A digest rule's version, or its highest when `version` is `None`.
    pub async fn digest_rule(
        &self,
        tenant: &str,
        key: &str,
        version: Option<i64>,
    ) -> Result<DigestRule, RuleError> {
        rules::get(&self.db, tenant, key, version).await
    }

    pub async fn digest_rules(
        &self,
        tenant: &str,
        filter: &RuleFilter,
    ) -> Result<Vec<DigestRule>, RuleError> {
        rules::list(&self.db, tenant, filter).await
    }

    /// The digest rule that would take a held delivery with these attributes.
    pub async fn match_digest_rule(
        &self,
        tenant: &str,
        lookup: &Lookup<'_>,
    ) -> Result<Option<DigestRule>, RuleError> {
        rules::find_matching(&self.db, tenant, lookup).await
    }

    /// Emits a digest bucket now if it is due (its window has ended, or it is full): for hosts
    /// that drive flushing themselves. Emitting again returns the digest delivery the first
    /// emission made; emitting early returns `NotDue` and changes nothing.
    pub async fn emit_digest(
        &self,
        tenant: &str,
        bucket_id: &str,
    ) -> Result<Emission, BucketError> {
        let emission = buckets::emit(&self.db, tenant, bucket_id).await?;
        if matches!(emission, Emission::Emitted { .. }) {
            self.wake.wake();
        }
        Ok(emission)
    }

    /// Sets a recipient's own digest cadence for a category (replacing any earlier one).
    pub async fn set_digest_cadence(
        &self,
        tenant: &str,
        recipient_id: &str,
        category: &str,
        cadence: Cadence,
    ) -> Result<CadenceSetting, CadenceError> {
        cadence::set(&self.db, tenant, recipient_id, category, cadence).await
    }

    /// Removes a recipient's cadence for a category; `false` when there was none.
    pub async fn clear_digest_cadence(
        &self,
        tenant: &str,
        recipient_id: &str,
        category: &str,
    ) -> Result<bool, CadenceError> {
        cadence::clear(&self.db, tenant, recipient_id, category).await
    }

    pub async fn digest_cadences(
        &self,
        tenant: &str,
        recipient_id: &str,
    ) -> Result<Vec<CadenceSetting>, CadenceError> {
        cadence::list(&self.db, tenant, recipient_id).await
    }

    pub async fn digest_bucket(
        &self,
        tenant: &str,
        bucket_id: &str,
    ) -> Result<Bucket, BucketError> {
        buckets::get(&self.db, tenant, bucket_id).await
    }

    /// The tenant's digest buckets, newest first.
    pub async fn digest_buckets(
        &self,
        tenant: &str,
        filter: &BucketFilter,
        limit: i64,
    ) -> Result<Vec<Bucket>, BucketError> {
        buckets::list(&self.db, tenant, filter, limit).await
    }
}
