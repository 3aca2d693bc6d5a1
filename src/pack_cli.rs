//! `belfry plugin pack`: one archive of a plugin package, to upload (`POST /v1/plugins`) or to
//! hand to another operator. The archive is what `belfry serve` reads back: it is checked
//! here against the same bounds a server applies by default, so a package that packs is one
//! that a default server accepts the shape of (`docs/plugins/packages.md`).

use anyhow::{Context, Result, bail};
use belfry::host::plugins::Manifest;
use belfry::host::plugins::assets::Assets;
use belfry::host::plugins::package::{self, Limits, Package};
use std::path::{Path, PathBuf};

/// Packs `dir` into `output` (default `NAME-VERSION.tar.gz` in the working directory).
/// With `component`, `dir` is a plugin's source folder (`plugins/NAME`: its `manifest.toml`
/// and `assets/`, nothing else of it is read) and `component` the component built from it.
pub fn pack(dir: &Path, component: Option<&Path>, output: Option<&Path>, json: bool) -> Result<()> {
    if !dir.is_dir() {
        bail!(
            "{}: not a directory (expected a plugin package folder)",
            dir.display()
        );
    }
    let package = match component {
        None => {
            if !dir.join(package::COMPONENT).exists() && dir.join("Cargo.toml").is_file() {
                bail!(
                    "{} looks like a plugin's source (it has a Cargo.toml and no {}): build it, \
                     then pass the component with --component, e.g. --component \
                     target/wasm-plugins/wasm32-wasip2/release/CRATE.wasm",
                    dir.display(),
                    package::COMPONENT
                );
            }
            Package::from_dir(dir)
                .with_context(|| format!("{} is not a plugin package", dir.display()))?
        }
        Some(component) => from_source(dir, component)?,
    };
    let manifest = Manifest::parse(
        &package.manifest,
        &dir.join(package::MANIFEST).display().to_string(),
        dir,
    )?;
    if !manifest.files.is_empty() {
        bail!(
            "{}: capabilities.files grants host directories, which an uploaded plugin may not \
             have; ship those files as the package's assets instead",
            dir.join(package::MANIFEST).display()
        );
    }
    let bytes = package.to_archive();
    // What a server with the default --max-plugin-bytes accepts: found out here, not there.
    Package::from_archive(&bytes, &Limits::default()).with_context(|| {
        format!(
            "the archive of {} would be refused by a server with the default limits",
            dir.display()
        )
    })?;
    let output = output
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(format!("{}-{}.tar.gz", manifest.name, manifest.version)));
    write(&output, &bytes)?;
    if json {
        let out = serde_json::json!({
            "file": output.display().to_string(),
            "name": manifest.name,
            "version": manifest.version,
            "kind": manifest.kind.to_string(),
            "bytes": bytes.len(),
            "assets": package.assets.len(),
            "assets_bytes": package.assets.total_bytes(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "packed {} {} ({}): component {} bytes, {} asset file(s) of {} bytes -> {} ({} bytes)",
            manifest.name,
            manifest.version,
            manifest.kind,
            package.component.len(),
            package.assets.len(),
            package.assets.total_bytes(),
            output.display(),
            bytes.len(),
        );
    }
    Ok(())
}

/// A package from a source folder's manifest and assets and a separately built component.
fn from_source(dir: &Path, component: &Path) -> Result<Package> {
    let manifest_path = dir.join(package::MANIFEST);
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let wasm =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let assets_dir = dir.join(package::ASSETS);
    let assets = if assets_dir.is_dir() {
        Assets::from_dir(&assets_dir)
            .with_context(|| format!("the assets in {}", assets_dir.display()))?
    } else {
        Assets::default()
    };
    Ok(Package {
        manifest,
        component: wasm,
        assets,
    })
}

/// Through a temporary file and a rename: a half-written archive is never left under the name.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}
