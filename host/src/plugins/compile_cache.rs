//! Compiled components cached on disk, keyed by the component's SHA-256 and the engine's
//! compatibility hash (wasmtime version, target, settings), so a restart does not recompile
//! and an upgrade never loads an incompatible artefact.

use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

pub fn compile(
    engine: &Engine,
    wasm: &[u8],
    hash: &str,
    cache_dir: Option<&Path>,
) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::new(engine, wasm);
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let path = dir
        .join("compiled")
        .join(format!("{hash}-{:016x}.cwasm", h.finish()));
    if path.exists() {
        // SAFETY: the file was written by `precompile_component` of an engine with the same
        // compatibility hash (it is in the name), into the operator's own cache directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable compiled plugin")
            }
        }
    }
    let bytes = engine.precompile_component(wasm)?;
    // Write then rename, so a concurrent process never reads half a file.
    if let Some(parent) = path.parent()
        && std::fs::create_dir_all(parent).is_ok()
    {
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &bytes).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    // SAFETY: `bytes` was produced just now by this engine.
    unsafe { Component::deserialize(engine, &bytes) }
}
