//! Plugins loaded at runtime (`POST /v1/plugins`), kept in the database so that a restart, or
//! another process on the same database when it starts, loads the same versions. Rows are only
//! appended; replaying them in order, the newest per name wins, as a later plugin in a
//! `--plugins` directory replaces a bundled one of the same name.
//!
//! An upload that came as a package archive keeps its assets too (`assets`, migration 0019:
//! the assets alone as a gzip-compressed tar, [`package::assets_to_archive`]; NULL for a plugin
//! without assets), so a restart, or another node, loads the same build with its templates.

use super::errors::LoadError;
use super::package::{self, Package};
use super::plugin::Plugin;
use super::runtime::PluginRuntime;
use crate::store::{self, Db, StoreError};
use sqlx::Row;

/// Records a plugin just loaded from `component` and `manifest`, by `by` (an API key id).
pub async fn record(
    db: &Db,
    plugin: &Plugin,
    component: &[u8],
    manifest: &str,
    by: &str,
) -> Result<(), StoreError> {
    insert(db, plugin, component, manifest, None, by).await
}

/// Records a plugin just loaded from `package`, by `by` (an API key id), with its assets.
pub async fn record_package(
    db: &Db,
    plugin: &Plugin,
    package: &Package,
    by: &str,
) -> Result<(), StoreError> {
    let assets = (!package.assets.is_empty()).then(|| package::assets_to_archive(&package.assets));
    insert(
        db,
        plugin,
        &package.component,
        &package.manifest,
        assets,
        by,
    )
    .await
}

async fn insert(
    db: &Db,
    plugin: &Plugin,
    component: &[u8],
    manifest: &str,
    assets: Option<Vec<u8>>,
    by: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO plugin_uploads (id, name, version, reference, manifest, component, assets, uploaded_by, uploaded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(store::new_id())
    .bind(plugin.name())
    .bind(&plugin.manifest().version)
    .bind(plugin.reference().to_string())
    .bind(manifest)
    .bind(component.to_vec())
    .bind(assets)
    .bind(by)
    .bind(store::time_text(store::now()))
    .execute(db)
    .await?;
    Ok(())
}

/// Loads every recorded upload in the order it was made, for [`apply`]. One that no longer
/// loads (the host changed under it) is skipped with an error in the log rather than keeping
/// the engine from starting; the plugin it replaced stays in force.
pub async fn load_recorded(db: &Db, runtime: &PluginRuntime) -> Result<Vec<Plugin>, StoreError> {
    let rows = sqlx::query(
        "SELECT id, name, reference, manifest, component, assets FROM plugin_uploads ORDER BY uploaded_at, id",
    )
    .fetch_all(db)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if let Some(p) = load_row(runtime, &r).await {
            out.push(p);
        }
    }
    Ok(out)
}

/// `plugins` with each of `loaded` in turn replacing the plugin of its name (or added).
pub fn apply(mut plugins: Vec<Plugin>, loaded: impl IntoIterator<Item = Plugin>) -> Vec<Plugin> {
    for p in loaded {
        plugins.retain(|q| q.name() != p.name());
        plugins.push(p);
    }
    plugins
}

/// Why a plugin handed over at runtime was not put in force.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// It does not load: not a component, a bad manifest, the wrong world…
    #[error(transparent)]
    Load(#[from] LoadError),
    /// It loads but cannot join the others (say, a second notifier with a taken key).
    #[error(transparent)]
    Conflict(#[from] super::registry::RegistryError),
    /// Its workflow changes the steps of a published `(key, version)`.
    #[error(transparent)]
    Workflow(#[from] super::workflow::PublishError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One stored upload's row loaded as [`load_recorded`] loads each; `None` (logged) when it no
/// longer loads.
async fn load_row(runtime: &PluginRuntime, r: &sqlx::any::AnyRow) -> Option<Plugin> {
    let id: String = r.get("id");
    let origin = format!("upload:{}", r.get::<String, _>("reference"));
    let assets = match r.get::<Option<Vec<u8>>, _>("assets") {
        None => Ok(Default::default()),
        Some(bytes) => package::assets_from_archive(&bytes).map_err(|e| LoadError::Invalid {
            origin: origin.clone(),
            message: format!("its stored assets: {e}"),
        }),
    };
    let loaded = match assets {
        Ok(assets) => {
            let package = Package {
                manifest: r.get("manifest"),
                component: r.get("component"),
                assets,
            };
            runtime.load_uploaded_package(&package, origin).await
        }
        Err(e) => Err(e),
    };
    match loaded {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(
                upload = %id,
                plugin = %r.get::<String, _>("name"),
                error = %e,
                "a plugin loaded at runtime earlier no longer loads; skipping it"
            );
            None
        }
    }
}

/// Every recorded upload's id, in the order [`load_recorded`] replays them: what
/// [`super::live`] compares with the uploads it has loaded, to load only new ones.
pub async fn recorded_ids(db: &Db) -> Result<Vec<String>, StoreError> {
    let rows = sqlx::query("SELECT id FROM plugin_uploads ORDER BY uploaded_at, id")
        .fetch_all(db)
        .await?;
    Ok(rows.iter().map(|r| r.get("id")).collect())
}

/// One recorded upload, loaded as [`load_recorded`] loads each; `None` when there is no such
/// row or it no longer loads (logged).
pub async fn load_one(
    db: &Db,
    runtime: &PluginRuntime,
    id: &str,
) -> Result<Option<Plugin>, StoreError> {
    let row = sqlx::query(
        "SELECT id, name, reference, manifest, component, assets FROM plugin_uploads WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(match row {
        Some(r) => load_row(runtime, &r).await,
        None => None,
    })
}
