//! Makes sure the toolchain building belfry can also build its plugins for `wasm32-wasip2`.
//!
//! `rust-toolchain.toml` names the target, but rustup only reads that list when it installs
//! the toolchain: a toolchain that was already there (installed by hand, or for another
//! project) keeps the targets it had, and the plugin build then fails deep inside cargo with
//! `can't find crate for std`. So the build script looks for the target's standard library
//! itself and, when it is missing, asks rustup for it. Kept apart from `build.rs` so that
//! `tests/it/first_run.rs` can run it against a fake sysroot and a fake rustup.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What [`ensure`] found or did.
#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    /// The target's standard library was already in the sysroot.
    Present,
    /// rustup installed it into this toolchain.
    Installed { toolchain: String },
}

/// Whether `sysroot` holds the standard library for `target`.
pub fn has_target(sysroot: &Path, target: &str) -> bool {
    sysroot
        .join("lib")
        .join("rustlib")
        .join(target)
        .join("lib")
        .is_dir()
}

/// The rustup toolchain a sysroot belongs to: `RUSTUP_TOOLCHAIN` when rustup's proxy set it
/// (a name like `1.95.0`, or a path for a linked toolchain), else the sysroot's folder name
/// when it sits in rustup's `toolchains/` folder. `None` for a rustc rustup does not manage.
pub fn toolchain_of(sysroot: &Path, rustup_toolchain: Option<&str>) -> Option<String> {
    if let Some(name) = rustup_toolchain.filter(|t| !t.is_empty()) {
        return Some(name.to_string());
    }
    let parent = sysroot.parent()?;
    if parent.file_name() != Some(OsStr::new("toolchains")) {
        return None;
    }
    sysroot.file_name()?.to_str().map(str::to_string)
}

/// Makes `target`'s standard library available to `rustc`, installing it with `rustup` when it
/// is missing. The error is one line saying what failed and what to run.
pub fn ensure(
    rustc: &OsStr,
    rustup: &OsStr,
    rustup_toolchain: Option<&str>,
    target: &str,
) -> Result<Ensured, String> {
    let sysroot = sysroot(rustc)?;
    if has_target(&sysroot, target) {
        return Ok(Ensured::Present);
    }
    let Some(toolchain) = toolchain_of(&sysroot, rustup_toolchain) else {
        return Err(format!(
            "the {target} standard library is missing from {} (a rustc rustup does not manage): \
             install it for this rustc, or use rustup (`rustup target add {target}`)",
            sysroot.display()
        ));
    };
    let command = format!("rustup target add {target} --toolchain {toolchain}");
    let output = Command::new(rustup)
        .args(["target", "add", target, "--toolchain", &toolchain])
        // Its own backtrace would drown what it says.
        .env("RUST_BACKTRACE", "0")
        .output()
        .map_err(|e| {
            format!(
                "the {target} standard library is missing from toolchain {toolchain} and \
                 rustup could not be run ({e}): run `{command}`, or install the target for \
                 this toolchain another way"
            )
        })?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        return Err(format!(
            "the {target} standard library is missing from toolchain {toolchain} and \
             `{command}` failed ({}): {said}",
            output.status
        ));
    }
    if !has_target(&sysroot, target) {
        return Err(format!(
            "`{command}` succeeded but {} still has no {target} standard library",
            sysroot.display()
        ));
    }
    Ok(Ensured::Installed { toolchain })
}

fn sysroot(rustc: &OsStr) -> Result<PathBuf, String> {
    let shown = Path::new(rustc).display();
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run `{shown} --print sysroot`: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{shown} --print sysroot` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8(output.stdout)
        .map_err(|_| format!("`{shown} --print sysroot` printed a path that is not UTF-8"))?;
    Ok(PathBuf::from(text.trim()))
}
