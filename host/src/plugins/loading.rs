//! Where plugins come from: a `--plugins` directory (a `NAME.wasm` with `NAME.toml` beside
//! it, or a package directory `NAME/` with `manifest.toml`, `plugin.wasm` and `assets/`), the
//! binary (bundled), an upload (a component and manifest, or a package archive). Each source is
//! read here into a component, a manifest and assets, then handed to [`PluginRuntime::load`],
//! which compiles, checks and describes it.
//!
//! A package's assets are part of its build: a plugin with assets gets a reference hash over
//! its component *and* its assets ([`package_hash`]), so a changed template is a new build,
//! told apart in traces and pins from the one before. A plugin without assets keeps the
//! component's own hash, as before packages.

use super::assets;
use super::capabilities;
use super::errors::LoadError;
use super::kinds::PluginKind;
use super::manifest::{self, Manifest};
use super::package::{self, Package, PackageError};
use super::plugin::{LoadedPlugin, Plugin};
use super::reference::PluginRef;
use super::registry::BrokenPlugin;
use super::runtime::PluginRuntime;
use super::tls;
use super::{compile_cache, versions::Pre};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::component::Component;

/// A first-party plugin compiled into the binary by `build.rs`.
pub struct BundledPlugin {
    pub name: &'static str,
    pub manifest: &'static str,
    pub wasm: &'static [u8],
    /// Files under the manifest's granted directories: (path relative to the manifest, bytes).
    pub files: &'static [(&'static str, &'static [u8])],
    /// The package's assets (`plugins/NAME/assets/**`): (path inside `assets/`, bytes).
    pub assets: &'static [(&'static str, &'static [u8])],
}

/// Config keys the host reads itself and never shows the plugin: an operator widens a
/// plugin's network grants with them (a self-hosted ntfy server, a regional API host, a local
/// test server) without editing the manifest the plugin's author shipped.
pub const ALLOW_HTTP_KEY: &str = "allow_http";
pub const ALLOW_TCP_KEY: &str = "allow_tcp";

/// One kind of network grant (HTTP authorities or TCP destinations), shared by every call.
type Grants = Arc<[capabilities::AuthorityPattern]>;

/// The manifest's grants plus the operator's, taken out of `config` (comma-separated lists).
fn operator_grants(
    manifest: &Manifest,
    config: &mut BTreeMap<String, String>,
) -> Result<(Grants, Grants), String> {
    let mut http = manifest.http.clone();
    let mut tcp = manifest.tcp.clone();
    for (key, parse, into) in [
        (
            ALLOW_HTTP_KEY,
            capabilities::AuthorityPattern::parse as fn(&str) -> Result<_, String>,
            &mut http,
        ),
        (ALLOW_TCP_KEY, manifest::parse_tcp_grant, &mut tcp),
    ] {
        let Some(list) = config.remove(key) else {
            continue;
        };
        if manifest.kind != PluginKind::ChannelAdapter {
            return Err(format!(
                "config `{key}` grants network access, which only channel adapters may have"
            ));
        }
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            into.push(parse(item).map_err(|e| format!("config `{key}`: {e}"))?);
        }
    }
    Ok((http.into(), tcp.into()))
}

impl PluginRuntime {
    pub(super) async fn load(
        &self,
        wasm: &[u8],
        manifest: Manifest,
        origin: String,
        keep: Option<Arc<tempfile::TempDir>>,
        assets: Arc<assets::Assets>,
    ) -> Result<Plugin, LoadError> {
        let invalid = |message: String| LoadError::Invalid {
            origin: origin.clone(),
            message,
        };
        let hash = hex::encode(Sha256::digest(wasm));
        let component =
            compile_cache::compile(&self.engine, wasm, &hash, self.config.cache_dir.as_deref())
                .map_err(|e| invalid(format!("not a valid WebAssembly component: {e:#}")))?;
        self.check_exports(&component, &manifest).map_err(invalid)?;
        let linker = match manifest.kind {
            PluginKind::ChannelAdapter => &self.adapter_linker,
            _ => &self.linker,
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "imports something a {} is not given: {e:#}",
                manifest.kind
            ))
        })?;
        let typed = |e: wasmtime::Error| {
            invalid(format!(
                "exports do not match the {} world of belfry:plugin@{}: {e:#}",
                manifest.kind, manifest.wit
            ))
        };
        let pre = Pre::new(manifest.kind, &manifest.wit, instance_pre).map_err(typed)?;
        let mut config = self
            .config
            .plugin_config
            .get(&manifest.name)
            .cloned()
            .unwrap_or_default();
        let (http, tcp) = operator_grants(&manifest, &mut config).map_err(invalid)?;
        tls::check_config(&manifest, &config).map_err(|e| invalid(e.to_string()))?;
        let config = Arc::new(config);
        let reference = PluginRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            hash,
        };
        let mut plugin = LoadedPlugin {
            reference,
            manifest,
            pre,
            config,
            http,
            tcp,
            description: None,
            assets,
            origin: origin.clone(),
            _files: keep,
        };
        if plugin.manifest.kind == PluginKind::Notifier {
            let p = Plugin(Arc::new(plugin));
            let description = self
                .describe(&p)
                .await
                .map_err(|error| LoadError::Describe {
                    origin: origin.clone(),
                    error,
                })?;
            description.validate().map_err(invalid)?;
            plugin = Arc::into_inner(p.0).expect("no other handle to a plugin being loaded");
            plugin.description = Some(description);
        }
        tracing::info!(plugin = %plugin.reference, kind = %plugin.manifest.kind, %origin, "plugin loaded");
        Ok(Plugin(Arc::new(plugin)))
    }

    /// The WIT version is read from the versioned interface name the component exports.
    fn check_exports(&self, component: &Component, manifest: &Manifest) -> Result<(), String> {
        let expected_iface = match manifest.kind {
            PluginKind::Notifier => "notifications",
            PluginKind::Renderer => "rendering",
            PluginKind::ChannelAdapter => "delivery",
        };
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let ours: Vec<&String> = exports
            .iter()
            .filter(|n| n.starts_with("belfry:plugin/"))
            .collect();
        let Some(found) = ours.first() else {
            return Err(format!(
                "exports no belfry:plugin interface (exports: {})",
                exports.join(", ")
            ));
        };
        let (iface, version) = found
            .trim_start_matches("belfry:plugin/")
            .split_once('@')
            .unwrap_or((found.as_str(), ""));
        if iface != expected_iface {
            return Err(format!(
                "manifest says kind = \"{}\" but the component exports {found}",
                manifest.kind
            ));
        }
        if version != manifest.wit {
            return Err(format!(
                "manifest says wit = \"{}\" but the component was built against belfry:plugin@{version}",
                manifest.wit
            ));
        }
        Ok(())
    }
}

/// The reference hash of a component with assets: SHA-256 over a tag, the component's hash
/// and the assets' digest. With no assets it is the component's hash alone.
pub fn package_hash(component: &[u8], assets: &assets::Assets) -> String {
    let component_hash = hex::encode(Sha256::digest(component));
    if assets.is_empty() {
        return component_hash;
    }
    let mut h = Sha256::new();
    h.update(b"belfry-package-v1\0");
    h.update(component_hash.as_bytes());
    h.update(b"\0");
    h.update(assets.digest().as_bytes());
    hex::encode(h.finalize())
}

/// Whether `path`, an entry of a `--plugins` directory, is a plugin: a `*.wasm` file, or a
/// folder holding `manifest.toml` or `plugin.wasm` (a package). Other folders are left alone:
/// they may be directories a file plugin's manifest grants.
pub fn is_plugin_path(path: &Path) -> bool {
    if path.is_dir() {
        path.join(package::MANIFEST).exists() || path.join(package::COMPONENT).exists()
    } else {
        path.extension().is_some_and(|x| x == "wasm")
    }
}

/// The plugins of a `--plugins` directory ([`is_plugin_path`]), in path order.
pub fn plugin_paths(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_plugin_path(p))
        .collect();
    paths.sort();
    Ok(paths)
}

impl PluginRuntime {
    /// [`PluginRuntime::load`], then the reference hash made to cover the assets too
    /// ([`package_hash`]).
    async fn load_with_assets(
        &self,
        wasm: &[u8],
        manifest: Manifest,
        origin: String,
        keep: Option<Arc<tempfile::TempDir>>,
        assets: assets::Assets,
    ) -> Result<Plugin, LoadError> {
        let hash = (!assets.is_empty()).then(|| package_hash(wasm, &assets));
        let mut plugin = self
            .load(wasm, manifest, origin.clone(), keep, Arc::new(assets))
            .await?;
        if let Some(hash) = hash {
            // `load` hands back the only handle to a new plugin (it asserts as much after
            // `describe`), so its reference can still be set.
            let Some(loaded) = Arc::get_mut(&mut plugin.0) else {
                return Err(LoadError::Invalid {
                    origin,
                    message: "internal: a plugin just loaded is already shared".into(),
                });
            };
            loaded.reference.hash = hash;
            tracing::info!(plugin = %loaded.reference, assets = loaded.assets.len(), "plugin package's reference covers its assets");
        }
        Ok(plugin)
    }

    /// Loads one entry of a `--plugins` directory: a package folder or a `NAME.wasm` file.
    pub async fn load_path(&self, path: &Path) -> Result<Plugin, LoadError> {
        if path.is_dir() {
            self.load_dir(path).await
        } else {
            self.load_file(path).await
        }
    }

    /// Loads a package directory (`manifest.toml`, `plugin.wasm`, `assets/`). Its manifest may
    /// grant directories, relative to the package folder, as an operator's file plugin may.
    pub async fn load_dir(&self, dir: &Path) -> Result<Plugin, LoadError> {
        let origin = dir.display().to_string();
        let invalid = |e: PackageError| LoadError::Invalid {
            origin: origin.clone(),
            message: e.to_string(),
        };
        let package = Package::from_dir(dir).map_err(invalid)?;
        let manifest_path = dir.join(package::MANIFEST);
        let manifest =
            Manifest::parse(&package.manifest, &manifest_path.display().to_string(), dir)?;
        check_grants(&manifest, &origin)?;
        self.load_with_assets(&package.component, manifest, origin, None, package.assets)
            .await
    }

    /// Loads a package handed over at runtime (an archive's contents, or a stored upload),
    /// checked as [`PluginRuntime::load_uploaded`] checks a bare component.
    pub async fn load_uploaded_package(
        &self,
        package: &Package,
        origin: String,
    ) -> Result<Plugin, LoadError> {
        let manifest = uploaded_manifest(&package.manifest, &origin)?;
        self.load_with_assets(
            &package.component,
            manifest,
            origin,
            None,
            package.assets.clone(),
        )
        .await
    }

    /// Loads a plugin from `PATH.wasm` with its manifest `PATH.toml` beside it.
    pub async fn load_file(&self, wasm_path: &Path) -> Result<Plugin, LoadError> {
        let origin = wasm_path.display().to_string();
        let io = |path: &Path, error| LoadError::Io {
            origin: origin.clone(),
            path: path.to_path_buf(),
            error,
        };
        let manifest_path = wasm_path.with_extension("toml");
        let wasm = std::fs::read(wasm_path).map_err(|e| io(wasm_path, e))?;
        let text = std::fs::read_to_string(&manifest_path).map_err(|e| io(&manifest_path, e))?;
        let base = manifest_path.parent().unwrap_or(Path::new("."));
        let manifest = Manifest::parse(&text, &manifest_path.display().to_string(), base)?;
        check_grants(&manifest, &origin)?;
        self.load(&wasm, manifest, origin, None, assets::Assets::empty())
            .await
    }

    /// Loads a plugin handed over at runtime (the component's bytes and its manifest's text),
    /// checked exactly as a file is. Such a plugin may not be granted host directories: those
    /// are the operator's to give, in a `--plugins` directory, not an API caller's.
    pub async fn load_uploaded(
        &self,
        wasm: &[u8],
        manifest_text: &str,
        origin: String,
    ) -> Result<Plugin, LoadError> {
        let manifest = uploaded_manifest(manifest_text, &origin)?;
        self.load(wasm, manifest, origin, None, assets::Assets::empty())
            .await
    }

    /// Loads a plugin compiled into the binary; its granted files are written to the cache
    /// directory (or a temporary one) so they can be pre-opened read-only.
    pub async fn load_bundled(&self, bundled: &BundledPlugin) -> Result<Plugin, LoadError> {
        let origin = format!("bundled:{}", bundled.name);
        let hash = hex::encode(Sha256::digest(bundled.wasm));
        let (base, keep) = match &self.config.cache_dir {
            Some(dir) => (
                dir.join("bundled")
                    .join(format!("{}-{}", bundled.name, &hash[..16])),
                None,
            ),
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("belfry-plugin-")
                    .tempdir()
                    .map_err(|e| LoadError::Io {
                        origin: origin.clone(),
                        path: std::env::temp_dir(),
                        error: e,
                    })?;
                (tmp.path().to_path_buf(), Some(Arc::new(tmp)))
            }
        };
        for (rel, bytes) in bundled.files {
            let path = base.join(rel);
            let write = || -> std::io::Result<()> {
                if std::fs::read(&path).ok().as_deref() == Some(*bytes) {
                    return Ok(());
                }
                std::fs::create_dir_all(path.parent().unwrap_or(&base))?;
                // A temporary name of this writer's own: processes sharing the cache (parallel
                // CLI runs) may write the same file at once, and a shared name let one rename
                // away the file the other was about to rename.
                let tmp = path.with_extension(format!("tmp-{}", crate::store::new_id()));
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &path)
            };
            write().map_err(|e| LoadError::Io {
                origin: origin.clone(),
                path: path.clone(),
                error: e,
            })?;
        }
        let manifest = Manifest::parse(bundled.manifest, &origin, &base)?;
        for grant in &manifest.files {
            std::fs::create_dir_all(&grant.source).map_err(|e| LoadError::Io {
                origin: origin.clone(),
                path: grant.source.clone(),
                error: e,
            })?;
        }
        let assets = assets::Assets::from_entries(
            bundled
                .assets
                .iter()
                .map(|(path, bytes)| (path.to_string(), bytes.to_vec())),
        )
        .map_err(|e| LoadError::Invalid {
            origin: origin.clone(),
            message: format!("assets: {e}"),
        })?;
        self.load_with_assets(bundled.wasm, manifest, origin, keep, assets)
            .await
    }
}

/// A granted directory must exist: a typo would otherwise show only at the first call.
fn check_grants(manifest: &Manifest, origin: &str) -> Result<(), LoadError> {
    for grant in &manifest.files {
        if !grant.source.is_dir() {
            return Err(LoadError::Invalid {
                origin: origin.to_string(),
                message: format!(
                    "capabilities.files: {} is not a directory",
                    grant.source.display()
                ),
            });
        }
    }
    Ok(())
}

/// The manifest of a plugin handed over at runtime. Such a plugin may not be granted host
/// directories: those are the operator's to give, in a `--plugins` directory, not an API
/// caller's (a package brings its files as assets instead).
fn uploaded_manifest(text: &str, origin: &str) -> Result<Manifest, LoadError> {
    let manifest = Manifest::parse(text, origin, Path::new("/nonexistent"))?;
    if !manifest.files.is_empty() {
        return Err(LoadError::Invalid {
            origin: origin.to_string(),
            message: "capabilities.files: a plugin loaded over the API may not be granted \
                      directories; install it in a --plugins directory instead, or ship the \
                      files as the package's assets"
                .into(),
        });
    }
    Ok(manifest)
}

/// What [`load_all`] loaded, and what it skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub plugins: Vec<Plugin>,
    /// Plugins of the directory that could not be loaded, in file-name order.
    pub broken: Vec<BrokenPlugin>,
}

/// Loads every bundled plugin, then every plugin of `dir` ([`plugin_paths`]: `*.wasm` files
/// and package folders, in path order; a later plugin with the same name replaces an earlier
/// one, so a directory can override a bundled plugin). A plugin of the directory that fails to
/// load is skipped and reported in [`Loaded::broken`]: one bad file must not stop every
/// command. A bundled plugin that fails is a defect of the build, and an error.
pub async fn load_all(
    runtime: &PluginRuntime,
    bundled: &[BundledPlugin],
    dir: Option<&Path>,
) -> Result<Loaded, LoadError> {
    let mut out: Vec<Plugin> = Vec::new();
    let mut broken = Vec::new();
    for b in bundled {
        out.push(runtime.load_bundled(b).await?);
    }
    if let Some(dir) = dir {
        let paths = plugin_paths(dir).map_err(|e| LoadError::Io {
            origin: dir.display().to_string(),
            path: dir.to_path_buf(),
            error: e,
        })?;
        for path in paths {
            let loaded = runtime.load_path(&path).await.map_err(|e| e.to_string());
            // A notifier whose key another plugin already describes would make the registry,
            // and so every command, fail: it is skipped like one that did not load.
            let loaded = loaded.and_then(|plugin| {
                let key = plugin.description().map(|d| d.key.as_str());
                let clash = out.iter().find(|p| {
                    p.name() != plugin.name()
                        && key.is_some()
                        && p.description().map(|d| d.key.as_str()) == key
                });
                match clash {
                    Some(other) => Err(format!(
                        "plugin {}: its notifier key `{}` is already described by {}",
                        path.display(),
                        key.unwrap_or_default(),
                        other.reference()
                    )),
                    None => Ok(plugin),
                }
            });
            match loaded {
                Ok(plugin) => {
                    out.retain(|p| p.name() != plugin.name());
                    out.push(plugin);
                }
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "plugin skipped: it could not be loaded");
                    broken.push(BrokenPlugin {
                        // `NAME` of `NAME.wasm`, or the package folder's name.
                        name: if path.is_dir() {
                            path.file_name()
                        } else {
                            path.file_stem()
                        }
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                        path,
                        reason,
                    });
                }
            }
        }
    }
    Ok(Loaded {
        plugins: out,
        broken,
    })
}
