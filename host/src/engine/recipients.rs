//! What belongs to recipients: their inbox and its tokens, the signals that move their
//! workflow runs, their preferences, settings and suppressions, and one-click unsubscribes.

use super::Engine;
use crate::inbox::{self, Counts, Filter, InboxError, InboxItem, Mark, Page, token};
use crate::policy::{
    self, PolicyError, PrefScope, Preference, Settings, SettingsPatch, Suppression,
    SuppressionReason, SuppressionTarget,
};
use crate::store::StoreError;
use crate::workflows::{self, RunRecord, SignalError, SignalOutcome, signals};

impl Engine {
    pub async fn inbox(
        &self,
        tenant: &str,
        recipient_id: &str,
    ) -> Result<Vec<InboxItem>, StoreError> {
        inbox::list(&self.db, tenant, recipient_id).await
    }

    /// Marks one of a recipient's inbox items read; a pending fallback of its notification
    /// (say, the email sent only if this item stays unread) is then suppressed `already_read`.
    pub async fn mark_read(
        &self,
        tenant: &str,
        recipient_id: &str,
        item_id: &str,
    ) -> Result<InboxItem, inbox::InboxError> {
        let item = inbox::mark_read(&self.db, tenant, recipient_id, item_id).await?;
        // A `notification.read` signal may have resumed a workflow's wait.
        self.wake.wake();
        Ok(item)
    }

    /// One page of a recipient's inbox.
    pub async fn inbox_page(
        &self,
        tenant: &str,
        recipient_id: &str,
        filter: Filter,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<Page, InboxError> {
        inbox::page(&self.db, tenant, recipient_id, filter, limit, cursor).await
    }

    /// The newest `limit` items in any state, newest first: what a live stream compares.
    pub async fn inbox_recent(
        &self,
        tenant: &str,
        recipient_id: &str,
        limit: i64,
    ) -> Result<Vec<InboxItem>, StoreError> {
        inbox::recent(&self.db, tenant, recipient_id, limit).await
    }

    pub async fn inbox_counts(
        &self,
        tenant: &str,
        recipient_id: &str,
    ) -> Result<Counts, StoreError> {
        inbox::counts(&self.db, tenant, recipient_id).await
    }

    /// Marks an inbox item seen, read, unread or archived (see [`inbox::mark`]).
    pub async fn mark_inbox(
        &self,
        tenant: &str,
        recipient_id: &str,
        item_id: &str,
        how: Mark,
    ) -> Result<InboxItem, InboxError> {
        let item = inbox::mark(&self.db, tenant, recipient_id, item_id, how).await?;
        self.wake.wake();
        Ok(item)
    }

    pub async fn mark_all_read(&self, tenant: &str, recipient_id: &str) -> Result<u64, InboxError> {
        let changed = inbox::mark_all_read(&self.db, tenant, recipient_id).await?;
        self.wake.wake();
        Ok(changed)
    }

    /// Mints a short-lived inbox token for one recipient (see [`inbox::token`]).
    pub async fn mint_inbox_token(
        &self,
        tenant: &str,
        recipient_id: &str,
        ttl_secs: i64,
    ) -> Result<(String, chrono::DateTime<chrono::Utc>), token::TokenError> {
        token::mint(&self.db, tenant, recipient_id, ttl_secs).await
    }

    pub async fn verify_inbox_token(&self, t: &str) -> Result<token::Holder, token::TokenError> {
        token::verify(&self.db, t).await
    }

    /// Sends a signal: every waiting workflow run of `tenant` whose recipient is `actor` and
    /// that listens for `name` ends its wait (for good, or early). A payload naming a
    /// `notification_id` reaches only that notification's run.
    pub async fn signal(
        &self,
        tenant: &str,
        actor: &str,
        name: &str,
        payload: &serde_json::Value,
    ) -> Result<SignalOutcome, SignalError> {
        let out = signals::signal(&self.db, tenant, actor, name, payload).await?;
        if out
            .runs
            .iter()
            .any(|r| r.effect == workflows::Effect::Resumed)
        {
            self.wake.wake();
        }
        Ok(out)
    }

    /// A workflow run with its transitions, by its id, its notification's id or the id of one
    /// of its step deliveries.
    pub async fn workflow_run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        workflows::runs::record(&self.db, id).await
    }

    /// Moves a run whose current step's delivery reached its final outcome, if the executor
    /// has not already: a no-op (`false`) when it has. For hosts that reconcile.
    pub async fn reconcile_workflow(&self, run_id: &str) -> Result<bool, StoreError> {
        let moved = workflows::runs::reconcile(&self.db, run_id).await?;
        if moved {
            self.wake.wake();
        }
        Ok(moved)
    }

    /// Sets (`Some`) or clears (`None`) a preference of a recipient, or of the tenant for `*`.
    pub async fn set_preference(
        &self,
        tenant: &str,
        recipient_id: &str,
        scope: &PrefScope,
        enabled: Option<bool>,
    ) -> Result<(), PolicyError> {
        policy::inputs::set_preference(&self.db, tenant, recipient_id, scope, enabled).await
    }

    /// The stored preferences of a recipient, or of the tenant for `*`.
    pub async fn preferences(
        &self,
        tenant: &str,
        recipient_id: &str,
    ) -> Result<Vec<Preference>, PolicyError> {
        policy::inputs::preferences(&self.db, tenant, recipient_id).await
    }

    /// Changes a recipient's settings (or the tenant's, for `*`); all values are checked first.
    pub async fn set_settings(
        &self,
        tenant: &str,
        recipient_id: &str,
        patch: &SettingsPatch,
    ) -> Result<Settings, PolicyError> {
        policy::inputs::set_settings(&self.db, tenant, recipient_id, patch).await
    }

    /// A recipient's own settings and what applies to them (over the tenant's defaults).
    pub async fn settings(
        &self,
        tenant: &str,
        recipient_id: &str,
    ) -> Result<(Settings, Settings), PolicyError> {
        let own = policy::inputs::settings(&self.db, tenant, recipient_id).await?;
        let effective = policy::inputs::effective_settings(&self.db, tenant, recipient_id).await?;
        Ok((own, effective))
    }

    pub async fn add_suppression(
        &self,
        tenant: &str,
        target: &SuppressionTarget,
        reason: SuppressionReason,
        note: Option<&str>,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Suppression, PolicyError> {
        policy::inputs::add_suppression(&self.db, tenant, target, reason, note, expires_at).await
    }

    /// A tenant's suppressions, newest first; expired ones only when asked for.
    pub async fn suppressions(
        &self,
        tenant: &str,
        include_expired: bool,
    ) -> Result<Vec<Suppression>, PolicyError> {
        policy::inputs::suppressions(&self.db, tenant, include_expired).await
    }

    pub async fn remove_suppression(&self, tenant: &str, id: &str) -> Result<(), PolicyError> {
        policy::inputs::remove_suppression(&self.db, tenant, id).await
    }

    /// A one-click unsubscribe (RFC 8058) from the link in an email this engine sent.
    pub async fn unsubscribe(
        &self,
        token: &str,
    ) -> Result<crate::unsubscribe::Unsubscribed, crate::unsubscribe::UnsubscribeError> {
        crate::unsubscribe::unsubscribe(&self.db, &self.unsubscribe_keys, token).await
    }
}
