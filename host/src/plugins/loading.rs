//! Where plugins come from: a `--plugins` directory, the binary (bundled), an upload. Each
//! source is read here into a component, a manifest and assets, then handed to
//! [`PluginRuntime::load`], which compiles, checks and describes it.

use super::*;

impl PluginRuntime {
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
        for grant in &manifest.files {
            if !grant.source.is_dir() {
                return Err(LoadError::Invalid {
                    origin,
                    message: format!(
                        "capabilities.files: {} is not a directory",
                        grant.source.display()
                    ),
                });
            }
        }
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
        let manifest = Manifest::parse(manifest_text, &origin, Path::new("/nonexistent"))?;
        if !manifest.files.is_empty() {
            return Err(LoadError::Invalid {
                origin,
                message: "capabilities.files: a plugin loaded over the API may not be granted \
                          directories; install it in a --plugins directory instead"
                    .into(),
            });
        }
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
        self.load(
            bundled.wasm,
            manifest,
            origin,
            keep,
            assets::Assets::empty(),
        )
        .await
    }
}

/// What [`load_all`] loaded, and what it skipped.
#[derive(Debug, Default)]
pub struct Loaded {
    pub plugins: Vec<Plugin>,
    /// Plugins of the directory that could not be loaded, in file-name order.
    pub broken: Vec<BrokenPlugin>,
}

/// Loads every bundled plugin, then every `*.wasm` in `dir` (a later plugin with the same
/// name replaces an earlier one, so a directory can override a bundled plugin). A plugin of
/// the directory that fails to load is skipped and reported in [`Loaded::broken`]: one bad file
/// must not stop every command. A bundled plugin that fails is a defect of the build, and an
/// error.
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
        let entries = std::fs::read_dir(dir).map_err(|e| LoadError::Io {
            origin: dir.display().to_string(),
            path: dir.to_path_buf(),
            error: e,
        })?;
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            let loaded = runtime.load_file(&path).await.map_err(|e| e.to_string());
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
                        name: path
                            .file_stem()
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
