//! Events in, deliveries out: triggering, running the queue, changing a delivery's course,
//! and reading what happened (down to `explain`).

use super::Engine;
use crate::deliveries::{self, DeliveryFilter, DeliveryRecord};
use crate::dispatch::{
    self, ChangeError, Dispatched, QueueStats, Scope, WorkerConfig, WorkerReport,
};
use crate::explain::{self, EventListing, ExplainError, Explanation};
use crate::store::StoreError;
use crate::trigger::{
    self, DryRun, NotificationSummary, TriggerError, TriggerOutcome, TriggerRequest,
};

impl Engine {
    /// Plans an event into notifications, deliveries and their jobs (one transaction), then
    /// wakes the workers.
    pub async fn trigger(&self, req: &TriggerRequest) -> Result<TriggerOutcome, TriggerError> {
        let outcome = trigger::trigger(
            &self.db,
            &self.runtime,
            &self.registry.current(),
            &self.gate,
            req,
        )
        .await?;
        metrics::counter!(crate::metrics::TRIGGERS, "notifier" => req.notifier.clone(), "duplicate" => if outcome.duplicate { "true" } else { "false" })
            .increment(1);
        if !outcome.duplicate {
            self.wake.wake();
        }
        Ok(outcome)
    }

    /// Plans up to 1000 events and writes them in one transaction (all or none; an invalid
    /// request fails the batch, naming its index), then wakes the workers.
    pub async fn trigger_many(
        &self,
        reqs: &[TriggerRequest],
    ) -> Result<Vec<TriggerOutcome>, TriggerError> {
        let outcomes = trigger::trigger_many(
            &self.db,
            &self.runtime,
            &self.registry.current(),
            &self.gate,
            reqs,
        )
        .await?;
        for (req, outcome) in reqs.iter().zip(&outcomes) {
            metrics::counter!(crate::metrics::TRIGGERS, "notifier" => req.notifier.clone(), "duplicate" => if outcome.duplicate { "true" } else { "false" })
                .increment(1);
        }
        if outcomes.iter().any(|o| !o.duplicate) {
            self.wake.wake();
        }
        Ok(outcomes)
    }

    /// Plans a trigger and runs the plan-time policy for every recipient and channel, writing
    /// nothing: what would be sent, deferred or suppressed, and why.
    pub async fn dry_run(&self, req: &TriggerRequest) -> Result<DryRun, TriggerError> {
        trigger::dry_run(
            &self.db,
            &self.runtime,
            &self.registry.current(),
            req,
            false,
        )
        .await
    }

    /// [`Engine::dry_run`] with each delivery's content rendered and validated: a preview of
    /// exactly what would be sent, writing and sending nothing.
    pub async fn preview(&self, req: &TriggerRequest) -> Result<DryRun, TriggerError> {
        trigger::dry_run(&self.db, &self.runtime, &self.registry.current(), req, true).await
    }

    /// Runs every job due now in the calling task (no background worker needed); returns
    /// where each delivery ended. Retries scheduled for later are not waited for.
    pub async fn dispatch_pending(&self) -> Result<Vec<Dispatched>, StoreError> {
        dispatch::run_due(
            &self.executor(),
            &self.inline_owner,
            self.dispatch.lease_for,
            Scope::All,
        )
        .await
    }

    /// Like [`Engine::dispatch_pending`], for the deliveries of one event only.
    pub async fn dispatch_event(&self, event_id: &str) -> Result<Vec<Dispatched>, StoreError> {
        dispatch::run_due(
            &self.executor(),
            &self.inline_owner,
            self.dispatch.lease_for,
            Scope::Event(event_id),
        )
        .await
    }

    /// Runs a worker until `stop` turns true, then shuts it down gracefully (see
    /// [`dispatch::worker`]). Several may run in one process, and in several processes.
    pub async fn run_worker(
        &self,
        config: WorkerConfig,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> WorkerReport {
        dispatch::worker::run(
            self.executor(),
            self.wake.clone(),
            Some(self.database_url.clone()),
            config,
            stop,
        )
        .await
    }

    /// Cancels a pending, deferred or held delivery: its job is removed (or it leaves its open
    /// digest bucket) and nothing is sent.
    pub async fn cancel(&self, delivery_id: &str, why: &str) -> Result<Dispatched, ChangeError> {
        dispatch::executor::cancel(&self.db, delivery_id, why).await
    }

    /// Defers a pending or deferred delivery until `until`, with a reason.
    pub async fn defer(
        &self,
        delivery_id: &str,
        until: chrono::DateTime<chrono::Utc>,
        why: &str,
    ) -> Result<Dispatched, ChangeError> {
        let out = dispatch::executor::defer(&self.db, delivery_id, until, why).await?;
        self.wake.wake();
        Ok(out)
    }

    /// Jobs by state.
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        crate::jobs::stats(&self.db).await
    }

    /// The current state of an event.
    pub async fn event(&self, event_id: &str) -> Result<TriggerOutcome, TriggerError> {
        trigger::summary(&self.db, event_id, false).await
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        deliveries::reads::delivery(&self.db, id).await
    }

    /// A notification with its deliveries.
    pub async fn notification(
        &self,
        id: &str,
    ) -> Result<Option<NotificationSummary>, TriggerError> {
        let event_id: Option<String> =
            sqlx::query_scalar("SELECT event_id FROM notifications WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.db)
                .await
                .map_err(StoreError::from)?;
        let Some(event_id) = event_id else {
            return Ok(None);
        };
        let event = trigger::summary(&self.db, &event_id, false).await?;
        Ok(event.notifications.into_iter().find(|n| n.id == id))
    }

    /// The tenant owning an event, notification, delivery or workflow run id.
    pub async fn tenant_of(&self, id: &str) -> Result<Option<String>, StoreError> {
        deliveries::tenant_of(&self.db, id).await
    }

    /// A tenant's newest events.
    pub async fn recent_events(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<EventListing>, StoreError> {
        explain::recent_events(&self.db, tenant, limit).await
    }

    /// A page of a tenant's deliveries, newest first, and the next page's cursor.
    pub async fn deliveries(
        &self,
        tenant: &str,
        filter: &DeliveryFilter,
        limit: i64,
        cursor: Option<(String, String)>,
    ) -> Result<(Vec<DeliveryRecord>, Option<String>), StoreError> {
        deliveries::deliveries_page(&self.db, tenant, filter, limit, cursor).await
    }

    /// The ordered story of a delivery, notification or event.
    pub async fn explain(&self, id: &str) -> Result<Explanation, ExplainError> {
        explain::explain(&self.db, id).await
    }
}
