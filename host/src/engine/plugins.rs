//! The engine's plugins after open: loading one at runtime, and what adapters are asked to do
//! with providers' webhooks and what those said.

use super::Engine;
use crate::feedback::{self, FeedbackError, LedgerEvent, Projection, Received, WebhookRequest};
use crate::plugins::{self, Plugin, Registry, uploads};
use crate::store::{self, StoreError};

impl Engine {
    /// Loads a plugin at runtime from its component and manifest, checked as `belfry plugin
    /// check` checks one, and puts it in force for every trigger and job that starts from now
    /// on, replacing the plugin of the same name. It is recorded first, so a restart loads it
    /// again; jobs already running finish with the plugins they started with.
    pub async fn load_plugin(
        &self,
        component: &[u8],
        manifest: &str,
        by: &str,
    ) -> Result<(Plugin, Option<Plugin>), uploads::UploadError> {
        let package = crate::plugins::package::Package {
            manifest: manifest.to_string(),
            component: component.to_vec(),
            assets: Default::default(),
        };
        self.load_package(&package, by).await
    }

    /// [`Engine::load_plugin`] for a whole package (a `POST /v1/plugins` archive): its assets
    /// are loaded with it and recorded with it.
    pub async fn load_package(
        &self,
        package: &crate::plugins::package::Package,
        by: &str,
    ) -> Result<(Plugin, Option<Plugin>), uploads::UploadError> {
        let _one_at_a_time = self.loading.lock().await;
        let origin = format!("upload by {by}");
        let plugin = self.runtime.load_uploaded_package(package, origin).await?;
        let current = self.registry.current();
        let replaced = current
            .plugins()
            .iter()
            .find(|p| p.name() == plugin.name())
            .cloned();
        let next = Registry::with_choices(
            uploads::apply(current.plugins().to_vec(), [plugin.clone()]),
            &self.choices,
        )?
        .remembering(current.builds().cloned())
        // A plugin loaded under a broken one's name stands in for it.
        .with_broken(
            current
                .broken()
                .iter()
                .filter(|b| b.name != plugin.name())
                .cloned()
                .collect(),
        );
        // A notifier naming a renderer that is not loaded would fail every render: refused
        // here, where the caller can load the renderer first (409, naming both).
        if plugin.kind() == crate::plugins::PluginKind::Notifier {
            next.renderer_for(&plugin)?;
        }
        // A published workflow version is immutable: refused here rather than at its first
        // trigger.
        if let Some(wf) = plugin.description().and_then(|d| d.workflow.as_ref()) {
            let reference = plugin.reference().to_string();
            crate::workflows::definition::check_published(&self.db, wf, &reference).await?;
        }
        uploads::record_package(&self.db, &plugin, package, by).await?;
        self.registry.replace(next);
        // Other nodes on this database put it in force too (see `plugins::live`).
        crate::plugins::live::announce(&self.db).await;
        tracing::info!(plugin = %plugin.reference(), replaced = ?replaced.as_ref().map(|p| p.reference().to_string()), "plugin loaded at runtime");
        Ok((plugin, replaced))
    }

    /// A provider's webhook for `tenant`, handed to the channel adapter named `adapter`, which
    /// verifies it before anything is parsed or stored (see [`crate::feedback`]).
    pub async fn receive_webhook(
        &self,
        tenant: &str,
        adapter: &str,
        request: WebhookRequest,
    ) -> Result<Received, FeedbackError> {
        let registry = self.registry.current();
        let plugin = registry
            .plugins()
            .iter()
            .find(|p| p.name() == adapter && p.kind() == plugins::PluginKind::ChannelAdapter)
            .ok_or_else(|| FeedbackError::UnknownAdapter(adapter.to_string()))?;
        feedback::receive(&self.db, &self.runtime, plugin, tenant, request).await
    }

    /// Processes a stored webhook request again (`belfry webhooks replay`).
    pub async fn replay_webhook(&self, receipt_id: &str) -> Result<Received, FeedbackError> {
        let registry = self.registry.current();
        feedback::replay(
            &self.db,
            &self.runtime,
            |name| {
                registry
                    .plugins()
                    .iter()
                    .find(|p| p.name() == name)
                    .cloned()
            },
            receipt_id,
        )
        .await
    }

    /// Deletes raw webhook requests older than `days` days; their events stay in the ledger.
    pub async fn purge_webhook_receipts(&self, days: u32) -> Result<u64, StoreError> {
        // More days than there are times purges nothing, rather than overflowing.
        let before = crate::time_bounds::before("days", store::now(), i64::from(days) * 86_400)
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
        feedback::purge_receipts(&self.db, before).await
    }

    /// What providers reported about a delivery: its projection and its events in order.
    pub async fn delivery_feedback(
        &self,
        tenant: &str,
        delivery_id: &str,
    ) -> Result<(Option<Projection>, Vec<LedgerEvent>), StoreError> {
        Ok((
            feedback::projection(&self.db, tenant, delivery_id).await?,
            feedback::events_of(&self.db, tenant, delivery_id).await?,
        ))
    }

    /// Feedback events no delivery has claimed yet.
    pub async fn feedback_orphans(&self, tenant: &str) -> Result<Vec<LedgerEvent>, StoreError> {
        feedback::orphans(&self.db, tenant).await
    }
}
