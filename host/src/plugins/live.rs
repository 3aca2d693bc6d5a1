//! Plugins live everywhere: a plugin uploaded on one node (`POST /v1/plugins`, recorded in
//! `plugin_uploads`) is put in force on every node sharing the database, and `--plugins DIR
//! --watch` loads changed packages of the directory, both without a restart.
//!
//! How a node learns of an upload: on PostgreSQL the uploading node sends `NOTIFY
//! belfry_plugins` ([`announce`]) and every follower `LISTEN`s; a notification lost while a
//! listener reconnects is caught by a slow poll ([`SAFETY_POLL`]). SQLite has no notifications:
//! followers poll the ids of `plugin_uploads` every [`LiveConfig::poll`] (500 ms by default, a
//! cheap indexed read of ids only). Either way only uploads not seen yet are loaded
//! ([`uploads::load_one`]), so the cost of a change does not grow with the upload history.
//!
//! A watched directory is looked at every [`LiveConfig::poll`]: each plugin path's files'
//! sizes and modification times (the `.wasm` and its `.toml`, or every file of a package
//! folder). Polling rather than inotify (the `notify` crate): it is a dozen `stat` calls, it
//! works the same on every filesystem (network mounts, container volumes, where inotify
//! misses changes), and a half-written file seen mid-copy is simply seen again, whole, at the
//! next look. Only changed paths are loaded again; one that fails to load keeps its previous
//! build in force and is reported broken, with why (`plugin list`, `/v1/plugins`, `/readyz`).
//!
//! Every rebuild keeps the builds replaced so far reachable ([`Registry::remembering`]):
//! workflow runs and digest buckets pinned to an older build finish on it.

use super::kinds::PluginKind;
use super::loading::{BundledPlugin, plugin_paths};
use super::plugin::Plugin;
use super::registry::{BrokenPlugin, Choices, LiveRegistry, Registry};
use super::runtime::PluginRuntime;
use super::uploads;
use crate::store::{self, Backend, Db, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The PostgreSQL notification channel an upload is announced on.
pub const NOTIFY_CHANNEL: &str = "belfry_plugins";

/// How often a PostgreSQL follower reads the upload ids anyway, in case a notification was
/// lost (a listener reconnecting).
pub const SAFETY_POLL: Duration = Duration::from_secs(5);

/// What a node follows while it runs.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Load changed packages of the plugin directory (`--watch`).
    pub watch: bool,
    /// How often SQLite's uploads, and a watched directory, are looked at.
    pub poll: Duration,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            watch: false,
            poll: Duration::from_millis(500),
        }
    }
}

/// Tells the other nodes that an upload was recorded: `NOTIFY` on PostgreSQL (delivered to
/// listeners once the insert is visible, as it was committed before); nothing on SQLite,
/// whose followers poll. A failure only delays them until their safety poll: logged.
pub async fn announce(db: &Db) {
    if store::backend(db) != Backend::Postgres {
        return;
    }
    if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(db)
        .await
    {
        tracing::warn!(error = %e, "announcing a plugin upload failed; other nodes see it at their next safety poll");
    }
}

/// The recorded uploads a node has loaded, by id, in the order they are replayed.
#[derive(Default)]
pub struct Uploads {
    order: Vec<String>,
    /// `None`: an upload that no longer loads (logged when tried; not tried again).
    loaded: BTreeMap<String, Option<Plugin>>,
}

impl Uploads {
    /// Loads every recorded upload (as [`uploads::load_recorded`] does), keeping their ids.
    pub async fn load(db: &Db, runtime: &PluginRuntime) -> Result<Uploads, StoreError> {
        let mut u = Uploads::default();
        u.refresh(db, runtime).await?;
        Ok(u)
    }

    /// Loads the uploads recorded since the last look; whether there were any.
    async fn refresh(&mut self, db: &Db, runtime: &PluginRuntime) -> Result<bool, StoreError> {
        let ids = uploads::recorded_ids(db).await?;
        if ids == self.order {
            return Ok(false);
        }
        for id in &ids {
            if !self.loaded.contains_key(id) {
                let p = uploads::load_one(db, runtime, id).await?;
                if let Some(p) = &p {
                    tracing::info!(upload = %id, plugin = %p.reference(), "recorded upload loaded");
                }
                self.loaded.insert(id.clone(), p);
            }
        }
        self.order = ids;
        Ok(true)
    }

    /// The loaded uploads, oldest first, for [`uploads::apply`].
    pub fn plugins(&self) -> Vec<Plugin> {
        self.order
            .iter()
            .filter_map(|id| self.loaded.get(id).cloned().flatten())
            .collect()
    }
}

/// A directory entry's files, by size and modification time.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let mut files = Vec::new();
    if path.is_dir() {
        walk(path, &mut files);
    } else {
        files.push(path.to_path_buf());
        files.push(path.with_extension("toml"));
    }
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let meta = std::fs::metadata(&f).ok();
            let len = meta.as_ref().map_or(u64::MAX, |m| m.len());
            let modified = meta.and_then(|m| m.modified().ok());
            (f, len, modified)
        })
        .collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// One plugin path of a watched directory: what it holds now.
struct Entry {
    print: Fingerprint,
    /// The build in force for this path (the previous one when a change failed to load).
    plugin: Option<Plugin>,
    /// Why the latest version did not load.
    problem: Option<String>,
}

/// The bundled plugins and a watched directory's, loaded path by path.
struct Watched {
    dir: PathBuf,
    bundled: Vec<Plugin>,
    entries: BTreeMap<PathBuf, Entry>,
}

impl Watched {
    /// The state [`super::load_all`] left: each path's plugin (by its origin) or its failure.
    async fn start(
        runtime: &PluginRuntime,
        bundled: &[BundledPlugin],
        dir: PathBuf,
        base: &[Plugin],
        broken: &[BrokenPlugin],
    ) -> Watched {
        // The bundled plugins a directory plugin replaced are not in `base`: load them all
        // again, once, so a package removed from the directory gives the bundled one back.
        let mut bundled_plugins = Vec::new();
        for b in bundled {
            match runtime.load_bundled(b).await {
                Ok(p) => bundled_plugins.push(p),
                Err(e) => {
                    tracing::error!(plugin = b.name, error = %e, "bundled plugin does not load")
                }
            }
        }
        let mut entries = BTreeMap::new();
        for path in plugin_paths(&dir).unwrap_or_default() {
            let origin = path.display().to_string();
            entries.insert(
                path.clone(),
                Entry {
                    print: fingerprint(&path),
                    plugin: base.iter().find(|p| p.origin() == origin).cloned(),
                    problem: broken
                        .iter()
                        .find(|b| b.path == path)
                        .map(|b| b.reason.clone()),
                },
            );
        }
        Watched {
            dir,
            bundled: bundled_plugins,
            entries,
        }
    }

    /// Loads the paths that changed; whether anything did.
    async fn refresh(&mut self, runtime: &PluginRuntime) -> bool {
        let paths = match plugin_paths(&self.dir) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "watched plugin directory unreadable; keeping the plugins in force");
                return false;
            }
        };
        let mut changed = false;
        let now: BTreeSet<&PathBuf> = paths.iter().collect();
        self.entries.retain(|path, e| {
            let keep = now.contains(path);
            if !keep {
                tracing::warn!(path = %path.display(), plugin = ?e.plugin.as_ref().map(|p| p.reference().to_string()), "plugin removed from the watched directory; unloading it");
                changed = true;
            }
            keep
        });
        for path in paths {
            let print = fingerprint(&path);
            if self.entries.get(&path).is_some_and(|e| e.print == print) {
                continue;
            }
            changed = true;
            let previous = self.entries.remove(&path).and_then(|e| e.plugin);
            let entry = match runtime.load_path(&path).await {
                Ok(p) => {
                    tracing::info!(path = %path.display(), plugin = %p.reference(), replaced = ?previous.as_ref().map(|p| p.reference().to_string()), "changed plugin loaded");
                    Entry {
                        print,
                        plugin: Some(p),
                        problem: None,
                    }
                }
                Err(e) => {
                    let problem = match &previous {
                        Some(prev) => format!(
                            "{e} (the previous build {} stays in force)",
                            prev.reference()
                        ),
                        None => e.to_string(),
                    };
                    tracing::warn!(path = %path.display(), %problem, "changed plugin does not load");
                    Entry {
                        print,
                        plugin: previous,
                        problem: Some(problem),
                    }
                }
            };
            self.entries.insert(path, entry);
        }
        changed
    }

    /// The plugins in force from the binary and the directory, and the broken ones, as
    /// [`super::load_all`] composes them (a later plugin of a name replaces an earlier one; a
    /// notifier whose key another already describes is skipped as broken).
    fn compose(&self) -> (Vec<Plugin>, Vec<BrokenPlugin>) {
        let mut out = self.bundled.clone();
        let mut broken = Vec::new();
        let name_of = |path: &Path| {
            if path.is_dir() {
                path.file_name()
            } else {
                path.file_stem()
            }
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
        };
        for (path, e) in &self.entries {
            if let Some(reason) = &e.problem {
                broken.push(BrokenPlugin {
                    name: name_of(path),
                    path: path.clone(),
                    reason: reason.clone(),
                });
            }
            let Some(plugin) = &e.plugin else { continue };
            let key = plugin.description().map(|d| d.key.as_str());
            let clash = out.iter().find(|p| {
                p.name() != plugin.name()
                    && key.is_some()
                    && p.description().map(|d| d.key.as_str()) == key
            });
            if let Some(other) = clash {
                broken.push(BrokenPlugin {
                    name: name_of(path),
                    path: path.clone(),
                    reason: format!(
                        "plugin {}: its notifier key `{}` is already described by {}",
                        path.display(),
                        key.unwrap_or_default(),
                        other.reference()
                    ),
                });
                continue;
            }
            out.retain(|p| p.name() != plugin.name());
            out.push(plugin.clone());
        }
        (out, broken)
    }
}

/// Everything a follower needs from its engine.
pub struct Follower {
    pub db: Db,
    pub database_url: String,
    pub runtime: Arc<PluginRuntime>,
    pub registry: LiveRegistry,
    pub choices: Arc<Choices>,
    /// The engine's runtime-load lock: a follower's rebuild and an upload on this node must not
    /// each replace the registry the other built on.
    pub loading: Arc<tokio::sync::Mutex<()>>,
    pub bundled: &'static [BundledPlugin],
    pub plugins_dir: Option<PathBuf>,
    /// The bundled and directory plugins loaded at start, and the broken ones.
    pub base: Vec<Plugin>,
    pub broken: Vec<BrokenPlugin>,
    pub uploads: Uploads,
    pub config: LiveConfig,
}

/// Stops the follower's tasks when the engine (its last clone) goes.
pub struct Running(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Follower {
    /// Starts following: a task that looks for new uploads and (with `watch`) directory
    /// changes, and on PostgreSQL a listener that wakes it.
    pub fn spawn(self) -> Running {
        let wake = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        let postgres = store::backend(&self.db) == Backend::Postgres;
        if postgres {
            tasks.push(tokio::spawn(listen(
                self.database_url.clone(),
                wake.clone(),
            )));
        }
        tasks.push(tokio::spawn(self.run(wake, postgres)));
        Running(tasks)
    }

    async fn run(mut self, wake: Arc<tokio::sync::Notify>, postgres: bool) {
        let mut watched = match (&self.plugins_dir, self.config.watch) {
            (Some(dir), true) => Some(
                Watched::start(
                    &self.runtime,
                    self.bundled,
                    dir.clone(),
                    &self.base,
                    &self.broken,
                )
                .await,
            ),
            _ => None,
        };
        let poll = self.config.poll.max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_upload_look = tokio::time::Instant::now();
        loop {
            let notified = tokio::select! {
                _ = tick.tick() => false,
                _ = wake.notified() => true,
            };
            let mut changed = false;
            if let Some(w) = &mut watched {
                changed |= w.refresh(&self.runtime).await;
            }
            // SQLite: every tick. PostgreSQL: when notified, and at the safety poll.
            if notified || !postgres || last_upload_look.elapsed() >= SAFETY_POLL {
                last_upload_look = tokio::time::Instant::now();
                match self.uploads.refresh(&self.db, &self.runtime).await {
                    Ok(c) => changed |= c,
                    Err(e) => {
                        tracing::warn!(error = %e, "reading plugin uploads failed; trying again")
                    }
                }
            }
            if changed {
                if let Some(w) = &watched {
                    (self.base, self.broken) = w.compose();
                }
                self.rebuild().await;
            }
        }
    }

    /// Puts the bundled, directory and uploaded plugins in force, as a start-up would.
    async fn rebuild(&self) {
        let _one_at_a_time = self.loading.lock().await;
        let current = self.registry.current();
        let plugins = uploads::apply(self.base.clone(), self.uploads.plugins());
        let names =
            |r: &[Plugin]| -> Vec<String> { r.iter().map(|p| p.reference().to_string()).collect() };
        // A plugin uploaded under a broken one's name stands in for it.
        let uploaded = self.uploads.plugins();
        let broken: Vec<BrokenPlugin> = self
            .broken
            .iter()
            .filter(|b| !uploaded.iter().any(|p| p.name() == b.name))
            .cloned()
            .collect();
        if names(&plugins) == names(current.plugins()) && broken.as_slice() == current.broken() {
            // Nothing new here: say, this node's own upload, already in force.
            return;
        }
        match Registry::with_choices(plugins, &self.choices) {
            Ok(next) => {
                let next = next
                    .remembering(current.builds().cloned())
                    .remembering(uploaded)
                    .with_broken(broken);
                let notifiers = next
                    .plugins()
                    .iter()
                    .filter(|p| p.kind() == PluginKind::Notifier)
                    .count();
                tracing::info!(
                    plugins = next.plugins().len(),
                    notifiers,
                    broken = next.broken().len(),
                    "plugins changed elsewhere put in force"
                );
                self.registry.replace(next);
            }
            Err(e) => {
                tracing::error!(error = %e, "the changed plugins do not fit together; keeping the ones in force")
            }
        }
    }
}

/// Wakes the follower on every `NOTIFY belfry_plugins`; reconnects when the connection drops
/// (and wakes it then, as one may have been missed).
async fn listen(url: String, wake: Arc<tokio::sync::Notify>) {
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect(&url).await?;
            l.listen(NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        let mut l = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN for plugin uploads failed; polling until it works");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Anything recorded before the listener was up.
        wake.notify_one();
        loop {
            match l.recv().await {
                Ok(_) => wake.notify_one(),
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection for plugin uploads lost; reconnecting");
                    wake.notify_one();
                    break;
                }
            }
        }
    }
}
