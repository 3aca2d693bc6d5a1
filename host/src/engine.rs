//! The engine façade: one handle over the database, the plugin runtime and the registry.

use crate::content::Channel;
use crate::digests::buckets::{self, Bucket, BucketError, BucketFilter, Emission};
use crate::digests::cadence::{self, Cadence, CadenceError, CadenceSetting};
use crate::digests::rules::{self, DigestRule, Lookup, RuleError, RuleFilter, RuleSpec, Upserted};
use crate::dispatch::{
    self, ChangeError, DispatchConfig, Dispatched, Executor, QueueStats, Scope, Wakeup,
    WorkerConfig, WorkerReport,
};
use crate::endpoints;
use crate::feedback::{self, FeedbackError, LedgerEvent, Projection, Received, WebhookRequest};
use crate::inbox::{self, Counts, Filter, InboxError, InboxItem, Mark, Page, token};
use crate::keys::{self, ApiKey, KeyError};
use crate::plugins::{
    self, BundledPlugin, LiveRegistry, LoadError, Plugin, PluginConfig, PluginRuntime, Registry,
    RegistryError, RuntimeConfig, uploads,
};
use crate::policy::{
    self, PolicyError, PrefScope, Preference, Settings, SettingsPatch, Suppression,
    SuppressionReason, SuppressionTarget,
};
use crate::store::{self, Db, StoreError};
use crate::tenants::{self, Tenant, TenantError};
use crate::traces::{
    self, DeliveryFilter, DeliveryRecord, EventListing, ExplainError, Explanation,
};
use crate::trigger::{
    self, DryRun, NotificationSummary, TriggerError, TriggerOutcome, TriggerRequest,
};
use crate::workflows::{self, RunRecord, SignalError, SignalOutcome, signals};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything the engine needs to start. Defaults: `sqlite://belfry.db`, no plugin
/// directory, no cache, no plugin config, no bundled plugins, default routes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub database_url: String,
    /// Plugins compiled into the embedding binary.
    pub bundled: &'static [BundledPlugin],
    /// A directory of `NAME.wasm` + `NAME.toml` pairs loaded after (and overriding) bundled ones.
    pub plugins_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub plugin_config: PluginConfig,
    /// When plugin instances are kept for more calls of the same build and tenant.
    pub warm: crate::plugins::WarmConfig,
    /// Channel → adapter plugin name, overriding the manifests' `channels`.
    pub routes: BTreeMap<Channel, String>,
    /// The default renderer (a plugin name) for notifiers that name none (`--renderer`);
    /// `None`: the one named `templates`, else the only (or last loaded) renderer.
    pub renderer: Option<String>,
    /// Follow plugin changes while the engine runs (`serve`, `worker`): uploads recorded by
    /// other nodes on the same database, and with `watch` the plugin directory. `None` (the
    /// default, as for one-shot commands): the plugins loaded at open, plus this engine's own
    /// uploads.
    pub live: Option<crate::plugins::live::LiveConfig>,
    /// Retries and leases.
    pub dispatch: DispatchConfig,
    /// The base URL `belfry serve` is reached at (`https://belfry.example.com`). When set,
    /// every email carries a signed one-click unsubscribe link under it (RFC 8058); without
    /// it there is nowhere to point the link, and emails carry none.
    pub public_url: Option<String>,
    /// Outbound lifecycle webhooks: reachable networks, disabling, timeouts.
    pub endpoints: crate::endpoints::EndpointsConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            database_url: "sqlite://belfry.db".into(),
            bundled: &[],
            plugins_dir: None,
            cache_dir: None,
            plugin_config: PluginConfig::default(),
            warm: crate::plugins::WarmConfig::default(),
            routes: BTreeMap::new(),
            renderer: None,
            live: None,
            dispatch: DispatchConfig::default(),
            public_url: None,
            endpoints: crate::endpoints::EndpointsConfig::default(),
        }
    }
}

impl std::fmt::Debug for BundledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BundledPlugin({})", self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Endpoints(#[from] crate::endpoints::EndpointError),
    #[error("retry policy: {0}")]
    RetryPolicy(#[from] dispatch::retry::RetryPolicyError),
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Db,
    database_url: String,
    runtime: Arc<PluginRuntime>,
    registry: LiveRegistry,
    /// Kept to rebuild the registry when a plugin is loaded at runtime.
    choices: Arc<crate::plugins::Choices>,
    /// The task following plugin changes elsewhere ([`EngineConfig::live`]); it stops with
    /// the last clone of the engine.
    _live: Option<Arc<crate::plugins::live::Running>>,
    /// One runtime load at a time, so two cannot each replace the registry the other built on.
    loading: Arc<tokio::sync::Mutex<()>>,
    dispatch: DispatchConfig,
    /// Shared by every executor this engine hands out.
    retry: Arc<dispatch::RetryPolicy>,
    wake: Wakeup,
    gate: dispatch::WriteGate,
    /// The lease owner for jobs run in the caller's task ([`Engine::dispatch_pending`]).
    inline_owner: String,
    /// Where one-click unsubscribe links point (see [`EngineConfig::public_url`]).
    unsubscribe_links: Option<crate::unsubscribe::Links>,
    /// The links' signing keys, derived once per tenant (also to verify a click).
    unsubscribe_keys: crate::unsubscribe::Keys,
    /// Posts lifecycle events to endpoints; holds the SSRF policy registration checks too.
    endpoint_sender: crate::endpoints::Sender,
}

impl Engine {
    /// Opens the database (applying migrations) and loads every plugin.
    pub async fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        config.dispatch.retry.validate()?;
        let db = store::open(&config.database_url).await?;
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: config.cache_dir.clone(),
            plugin_config: config.plugin_config.clone(),
            warm: config.warm.clone(),
        })?;
        let loaded =
            plugins::load_all(&runtime, config.bundled, config.plugins_dir.as_deref()).await?;
        let recorded = plugins::live::Uploads::load(&db, &runtime).await?;
        let uploaded = recorded.plugins();
        let choices = Arc::new(crate::plugins::Choices {
            routes: config.routes.clone(),
            renderer: config.renderer.clone(),
        });
        // Every recorded upload stays reachable: runs pinned to a replaced build finish on it.
        let registry = Registry::with_choices(
            uploads::apply(loaded.plugins.clone(), uploaded.clone()),
            &choices,
        )?
        .remembering(uploaded)
        .with_broken(loaded.broken.clone());
        let runtime = Arc::new(runtime);
        let registry = LiveRegistry::new(registry);
        let loading = Arc::new(tokio::sync::Mutex::new(()));
        let live = config.live.clone().map(|live| {
            Arc::new(
                plugins::live::Follower {
                    db: db.clone(),
                    database_url: config.database_url.clone(),
                    runtime: runtime.clone(),
                    registry: registry.clone(),
                    choices: choices.clone(),
                    loading: loading.clone(),
                    bundled: config.bundled,
                    plugins_dir: config.plugins_dir.clone(),
                    base: loaded.plugins,
                    broken: loaded.broken,
                    uploads: recorded,
                    config: live,
                }
                .spawn(),
            )
        });
        let unsubscribe_keys = crate::unsubscribe::Keys::default();
        let endpoint_sender = crate::endpoints::Sender::new(&config.endpoints)?;
        Ok(Engine {
            db,
            database_url: config.database_url.clone(),
            runtime,
            registry,
            choices,
            _live: live,
            loading,
            retry: Arc::new(config.dispatch.retry.clone()),
            dispatch: config.dispatch.clone(),
            wake: Wakeup::new(),
            gate: dispatch::WriteGate::new(),
            inline_owner: format!("{} (inline)", dispatch::worker::default_owner()),
            unsubscribe_links: config
                .public_url
                .as_deref()
                .map(|u| crate::unsubscribe::Links::new(u, unsubscribe_keys.clone())),
            unsubscribe_keys,
            endpoint_sender,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// The plugins in force now.
    pub fn plugins(&self) -> Vec<Plugin> {
        self.registry.current().plugins().to_vec()
    }

    /// The registry in force now (a snapshot: a later runtime load does not change it).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.current()
    }

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

    /// What runs jobs: the database, plugins and retry policy of this engine.
    pub fn executor(&self) -> Executor {
        Executor {
            db: self.db.clone(),
            runtime: self.runtime.clone(),
            registry: self.registry.clone(),
            retry: self.retry.clone(),
            unsubscribe: self.unsubscribe_links.clone(),
            endpoints: self.endpoint_sender.clone(),
            gate: self.gate.clone(),
            faults: Default::default(),
        }
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
        traces::delivery(&self.db, id).await
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
        traces::tenant_of(&self.db, id).await
    }

    /// A tenant's newest events.
    pub async fn recent_events(
        &self,
        tenant: &str,
        limit: i64,
    ) -> Result<Vec<EventListing>, StoreError> {
        traces::recent_events(&self.db, tenant, limit).await
    }

    /// A page of a tenant's deliveries, newest first, and the next page's cursor.
    pub async fn deliveries(
        &self,
        tenant: &str,
        filter: &DeliveryFilter,
        limit: i64,
        cursor: Option<(String, String)>,
    ) -> Result<(Vec<DeliveryRecord>, Option<String>), StoreError> {
        traces::deliveries_page(&self.db, tenant, filter, limit, cursor).await
    }

    /// Hands the database-wide gauges (deliveries by status and channel, queue depth and lag)
    /// to the installed metrics recorder.
    pub async fn observe_metrics(&self) -> Result<(), StoreError> {
        crate::metrics::observe(&self.db).await
    }

    /// Whether the database answers and its schema is current.
    pub async fn ready(&self) -> Result<(), String> {
        store::ready(&self.db).await
    }

    /// The ordered story of a delivery, notification or event.
    pub async fn explain(&self, id: &str) -> Result<Explanation, ExplainError> {
        traces::explain(&self.db, id).await
    }

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

    /// Creates a tenant's API key (the tenant too, if new), or an admin key for `None`; the
    /// secret is returned once.
    pub async fn create_key(
        &self,
        tenant: Option<&str>,
        name: &str,
    ) -> Result<(ApiKey, String), KeyError> {
        keys::create(&self.db, tenant, name).await
    }

    pub async fn keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        keys::list(&self.db, tenant).await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey, KeyError> {
        keys::revoke(&self.db, id).await
    }

    /// The live key with this secret, if any.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<ApiKey>, StoreError> {
        keys::authenticate(&self.db, secret).await
    }

    pub async fn ensure_tenant(&self, id: &str) -> Result<(Tenant, bool), TenantError> {
        tenants::ensure(&self.db, id).await
    }

    pub async fn tenants(&self) -> Result<Vec<Tenant>, StoreError> {
        tenants::list(&self.db).await
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

    /// Plans a trigger and runs the plan-time policy for every recipient and channel, writing
    /// nothing: what would be sent, deferred or suppressed, and why.
    pub async fn dry_run(&self, req: &TriggerRequest) -> Result<DryRun, TriggerError> {
        trigger::dry_run(&self.db, &self.runtime, &self.registry.current(), req).await
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

    /// Registers an outbound webhook endpoint for `tenant`; the answer holds its secret.
    pub async fn add_endpoint(
        &self,
        tenant: &str,
        url: &str,
        events: &[String],
        description: Option<&str>,
    ) -> Result<endpoints::CreatedEndpoint, endpoints::EndpointError> {
        endpoints::create(
            &self.db,
            self.endpoint_sender.policy(),
            tenant,
            url,
            events,
            description,
        )
        .await
    }

    /// A tenant's endpoints (`None`: every tenant's).
    pub async fn endpoints(
        &self,
        tenant: Option<&str>,
    ) -> Result<Vec<endpoints::Endpoint>, endpoints::EndpointError> {
        endpoints::list(&self.db, tenant).await
    }

    /// One endpoint, if it is `tenant`'s (`None`: any tenant's).
    pub async fn endpoint(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<endpoints::Endpoint, endpoints::EndpointError> {
        endpoints::get(&self.db, tenant, id).await
    }

    pub async fn endpoint_secret(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<String, endpoints::EndpointError> {
        endpoints::secret(&self.db, tenant, id).await
    }

    /// Enables an endpoint again (clearing its run of failures), or disables it.
    pub async fn set_endpoint_enabled(
        &self,
        tenant: Option<&str>,
        id: &str,
        enabled: bool,
    ) -> Result<endpoints::Endpoint, endpoints::EndpointError> {
        endpoints::set_enabled(&self.db, tenant, id, enabled).await
    }

    /// Sends again the messages an endpoint missed while it was disabled.
    pub async fn recover_endpoint(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<u64, endpoints::EndpointError> {
        let n = endpoints::recover(&self.db, tenant, id).await?;
        if n > 0 {
            self.wake.wake();
        }
        Ok(n)
    }

    pub async fn remove_endpoint(
        &self,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<(), endpoints::EndpointError> {
        endpoints::remove(&self.db, tenant, id).await
    }

    /// An endpoint's messages, newest first, with their tries.
    pub async fn endpoint_messages(
        &self,
        tenant: Option<&str>,
        id: &str,
        limit: u32,
    ) -> Result<Vec<endpoints::Message>, endpoints::EndpointError> {
        endpoints::messages(&self.db, tenant, id, limit).await
    }

    /// A one-click unsubscribe (RFC 8058) from the link in an email this engine sent.
    pub async fn unsubscribe(
        &self,
        token: &str,
    ) -> Result<crate::unsubscribe::Unsubscribed, crate::unsubscribe::UnsubscribeError> {
        crate::unsubscribe::unsubscribe(&self.db, &self.unsubscribe_keys, token).await
    }

    /// Feedback events no delivery has claimed yet.
    pub async fn feedback_orphans(&self, tenant: &str) -> Result<Vec<LedgerEvent>, StoreError> {
        feedback::orphans(&self.db, tenant).await
    }
}
