//! Builds belfry's WebAssembly plugins and bundles them into the binary.
//!
//! 1. Runs `cargo build --release --target wasm32-wasip2` for the first-party plugins
//!    (`plugins/`) and the hostile test fixtures (`tests/fixtures/plugins/`), each its own
//!    workspace, into one shared target dir, `<target dir>/wasm-plugins`, so dev and release
//!    builds of belfry share the wasm artefacts.
//! 2. Writes `$OUT_DIR/bundled.rs`: one `BUNDLED` static listing every plugin in `plugins/`
//!    (manifest, component bytes, every file its manifest grants, and its package assets,
//!    `plugins/NAME/assets/**`), sorted by name.
//! 3. Copies each hostile fixture to `<target dir>/wasm-plugins/fixtures/` as `<case>.wasm`,
//!    `<case>.toml` (its manifest) and `<case>.expected.toml` (a fixture without one is a
//!    plugin whose behaviour a test observes rather than a failure case), and points the
//!    `BELFRY_FIXTURE_PLUGINS_DIR` compile-time environment variable at that directory.
//! 4. Writes `$OUT_DIR/hostile_cases.rs`: `hostile_cases!(folder_name = "folder-name", …)`
//!    naming every failure case, which `tests/hostile_plugins.rs` turns into one test each.

use std::env;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

#[path = "build/wasm_target.rs"]
mod wasm_target;

const WASM_TARGET: &str = "wasm32-wasip2";

/// The plugin manifest, as the host parses it (unknown keys are errors). Parsed here to
/// fail the build early on a broken manifest and to find the files a plugin is granted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // most fields are only validated
struct Manifest {
    name: String,
    version: String,
    kind: String,
    wit: String,
    description: String,
    #[serde(default)]
    channels: Vec<String>,
    #[allow(dead_code)]
    default_route: Option<bool>,
    #[allow(dead_code)]
    renderer: Option<String>,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    limits: Limits,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Capabilities {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    tcp: Vec<String>,
    #[serde(default)]
    files: Vec<FileGrant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileGrant {
    source: String,
    guest: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Limits {
    memory_mib: Option<u64>,
    timeout_ms: Option<u64>,
    output_kib: Option<u64>,
}

/// A hostile fixture's `expected.toml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Expected {
    kind: String,
    reason: String,
    message_contains: String,
}

const REASONS: &[&str] = &[
    "timeout",
    "memory_limit",
    "trap",
    "plugin_error",
    "capability_denied",
    "output_too_large",
    // Not a call failure: the host refuses the component when loading it.
    "load",
];

/// One plugin crate of a plugin workspace.
struct PluginCrate {
    /// The crate's folder (holds `Cargo.toml` and `manifest.toml`).
    dir: PathBuf,
    /// The folder name: the fixture case name.
    folder: String,
    manifest_path: PathBuf,
    manifest: Manifest,
    /// The component cargo builds: `<crate name with '_'>.wasm`.
    wasm_file: String,
}

fn main() {
    // A failed build says what went wrong in one message; a backtrace of this script (shown
    // because RUST_BACKTRACE is often set) only hides it.
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("the build script failed");
        eprintln!("error: {message}");
    }));
    let root = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let plugins_dir = root.join("plugins");
    let fixtures_src = root.join("tests").join("fixtures").join("plugins");
    let wasm_target_dir = target_dir(&out_dir).join("wasm-plugins");

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    watch_workspace(&plugins_dir);
    watch_workspace(&fixtures_src);
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok();
    match wasm_target::ensure(
        &rustc,
        OsStr::new("rustup"),
        toolchain.as_deref(),
        WASM_TARGET,
    ) {
        Ok(wasm_target::Ensured::Present) => {}
        Ok(wasm_target::Ensured::Installed { toolchain }) => println!(
            "cargo:warning=installed the {WASM_TARGET} target into toolchain {toolchain} (rustup target add)"
        ),
        Err(line) => {
            eprintln!("error: {line}");
            std::process::exit(1);
        }
    }

    cargo_build(&plugins_dir, &wasm_target_dir);
    cargo_build(&fixtures_src, &wasm_target_dir);
    let release_dir = wasm_target_dir.join(WASM_TARGET).join("release");

    // Bundled plugins.
    let mut plugins = plugin_crates(&plugins_dir);
    plugins.sort_by(|a, b| a.manifest.name.cmp(&b.manifest.name));
    for pair in plugins.windows(2) {
        assert!(
            pair[0].manifest.name != pair[1].manifest.name,
            "two plugins in {} are named {:?}",
            plugins_dir.display(),
            pair[0].manifest.name
        );
    }
    let mut bundled = String::from(
        "// @generated by belfry's build.rs: the plugins in plugins/, built for wasm32-wasip2.\n",
    );
    bundled.push_str("pub static BUNDLED: &[belfry_host::plugins::BundledPlugin] = &[\n");
    for plugin in &plugins {
        let wasm = release_dir.join(&plugin.wasm_file);
        assert!(
            wasm.is_file(),
            "cargo built no {} for the plugin in {}",
            wasm.display(),
            plugin.dir.display()
        );
        writeln!(bundled, "    belfry_host::plugins::BundledPlugin {{").unwrap();
        writeln!(bundled, "        name: {:?},", plugin.manifest.name).unwrap();
        writeln!(
            bundled,
            "        manifest: include_str!({:?}),",
            utf8(&plugin.manifest_path)
        )
        .unwrap();
        writeln!(bundled, "        wasm: include_bytes!({:?}),", utf8(&wasm)).unwrap();
        let files = granted_files(plugin);
        if files.is_empty() {
            writeln!(bundled, "        files: &[],").unwrap();
        } else {
            writeln!(bundled, "        files: &[").unwrap();
            for (relative, absolute) in files {
                writeln!(
                    bundled,
                    "            ({relative:?}, include_bytes!({:?})),",
                    utf8(&absolute)
                )
                .unwrap();
            }
            writeln!(bundled, "        ],").unwrap();
        }
        let assets = package_assets(plugin);
        if assets.is_empty() {
            writeln!(bundled, "        assets: &[],").unwrap();
        } else {
            writeln!(bundled, "        assets: &[").unwrap();
            for (relative, absolute) in assets {
                writeln!(
                    bundled,
                    "            ({relative:?}, include_bytes!({:?})),",
                    utf8(&absolute)
                )
                .unwrap();
            }
            writeln!(bundled, "        ],").unwrap();
        }
        writeln!(bundled, "    }},").unwrap();
    }
    bundled.push_str("];\n");
    write_if_changed(&out_dir.join("bundled.rs"), bundled.as_bytes());

    // Hostile fixtures.
    let fixtures_out = wasm_target_dir.join("fixtures");
    fs::create_dir_all(&fixtures_out)
        .unwrap_or_else(|err| panic!("cannot create {}: {err}", fixtures_out.display()));
    let mut produced = Vec::new();
    let mut hostile_cases = String::from("hostile_cases!(\n");
    for case in plugin_crates(&fixtures_src) {
        let wasm = release_dir.join(&case.wasm_file);
        let expected_path = case.dir.join("expected.toml");
        if !expected_path.is_file() {
            // Not a failure case but a plugin whose behaviour a test observes (`remember`).
            for (from, name) in [
                (wasm, format!("{}.wasm", case.folder)),
                (case.manifest_path.clone(), format!("{}.toml", case.folder)),
            ] {
                let bytes = fs::read(&from)
                    .unwrap_or_else(|err| panic!("cannot read {}: {err}", from.display()));
                write_if_changed(&fixtures_out.join(&name), &bytes);
                produced.push(name);
            }
            continue;
        }
        let expected: Expected = parse_toml(&expected_path);
        assert!(
            REASONS.contains(&expected.reason.as_str()),
            "{}: unknown reason {:?} (one of {REASONS:?})",
            expected_path.display(),
            expected.reason
        );
        assert!(
            expected.kind == case.manifest.kind,
            "{}: kind {:?} differs from the manifest's {:?}",
            expected_path.display(),
            expected.kind,
            case.manifest.kind
        );
        let test_name = case.folder.replace('-', "_");
        writeln!(hostile_cases, "    {test_name} = {:?},", case.folder).unwrap();
        let copies = [
            (wasm, format!("{}.wasm", case.folder)),
            (case.manifest_path.clone(), format!("{}.toml", case.folder)),
            (expected_path, format!("{}.expected.toml", case.folder)),
        ];
        for (from, name) in copies {
            let bytes = fs::read(&from)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", from.display()));
            write_if_changed(&fixtures_out.join(&name), &bytes);
            produced.push(name);
        }
    }
    hostile_cases.push_str(");\n");
    write_if_changed(&out_dir.join("hostile_cases.rs"), hostile_cases.as_bytes());
    // Drop what a removed case left behind.
    for entry in read_dir(&fixtures_out) {
        let name = entry.file_name().to_string_lossy().into_owned();
        // Hidden names are other builds' files in flight (see `write_if_changed`).
        if !name.starts_with('.') && !produced.contains(&name) && entry.path().is_file() {
            let _ = fs::remove_file(entry.path());
        }
    }
    println!(
        "cargo:rustc-env=BELFRY_FIXTURE_PLUGINS_DIR={}",
        utf8(&fixtures_out)
    );
}

/// The workspace's target dir: `OUT_DIR` is `<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`.
fn target_dir(out_dir: &Path) -> PathBuf {
    let from_out_dir = out_dir
        .ancestors()
        .nth(2)
        .filter(|build| build.file_name() == Some(OsStr::new("build")))
        .and_then(Path::parent) // the profile dir
        .and_then(Path::parent)
        .map(|dir| {
            let is_triple_dir = env::var_os("TARGET").is_some_and(|t| dir.file_name() == Some(&t));
            match dir.parent() {
                Some(parent) if is_triple_dir => parent.to_path_buf(),
                _ => dir.to_path_buf(),
            }
        });
    if let Some(dir) = from_out_dir {
        return dir;
    }
    match env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => panic!(
            "cannot find the target dir from OUT_DIR={}; set CARGO_TARGET_DIR to an absolute path",
            out_dir.display()
        ),
    }
}

/// `cargo build --release --target wasm32-wasip2` of the workspace in `dir`, with none of the
/// environment the outer build sets for build scripts leaking into it.
fn cargo_build(dir: &Path, target_dir: &Path) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = dir.join("Cargo.toml");
    let mut command = Command::new(&cargo);
    command
        .args([
            "build",
            "--release",
            "--target",
            WASM_TARGET,
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        // Cargo reads `.cargo/config.toml` from the working directory up.
        .current_dir(dir);
    for (key, _) in env::vars_os() {
        let Some(name) = key.to_str() else { continue };
        if leaks_into_nested_cargo(name) {
            command.env_remove(&key);
        }
    }
    let output = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", Path::new(&cargo).display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "building the wasm plugins in {} failed ({}): `cargo build --release --target {WASM_TARGET} --manifest-path {} --target-dir {}`\n\n{stderr}",
            dir.display(),
            output.status,
            manifest.display(),
            target_dir.display(),
        );
    }
    for line in stderr.lines().filter(|l| l.starts_with("warning")) {
        println!("cargo:warning={}: {line}", dir.display());
    }
}

fn leaks_into_nested_cargo(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTDOC",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
        "RUSTC_LINKER",
        "CARGO_MAKEFLAGS",
    ];
    (name.starts_with("CARGO_") && name != "CARGO_HOME")
        || name.starts_with("__CARGO")
        || EXACT.contains(&name)
}

/// `rerun-if-changed` for a plugin workspace: its files and folders, but not its `target/`.
fn watch_workspace(dir: &Path) {
    for entry in read_dir(dir) {
        let name = entry.file_name();
        let hidden = name.to_string_lossy().starts_with('.') && name != ".cargo";
        if name == "target" || hidden {
            continue;
        }
        // A directory is scanned whole by cargo: sources, manifests and templates.
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
}

/// Every crate folder (one with both `Cargo.toml` and `manifest.toml`) in a workspace.
fn plugin_crates(workspace: &Path) -> Vec<PluginCrate> {
    let mut crates = Vec::new();
    for entry in read_dir(workspace) {
        let dir = entry.path();
        let manifest_path = dir.join("manifest.toml");
        let cargo_toml = dir.join("Cargo.toml");
        if !manifest_path.is_file() || !cargo_toml.is_file() {
            continue;
        }
        let manifest: Manifest = parse_toml(&manifest_path);
        let package: toml::Table = parse_toml(&cargo_toml);
        let crate_name = package
            .get("package")
            .and_then(|p| p.get("name"))
            .and_then(toml::Value::as_str)
            .unwrap_or_else(|| panic!("{}: no [package] name", cargo_toml.display()));
        crates.push(PluginCrate {
            folder: entry.file_name().to_string_lossy().into_owned(),
            wasm_file: format!("{}.wasm", crate_name.replace('-', "_")),
            dir,
            manifest_path,
            manifest,
        });
    }
    crates
}

/// Every file under the plugin's `capabilities.files` sources: (path relative to the
/// manifest's folder, '/'-separated; absolute path), sorted.
fn granted_files(plugin: &PluginCrate) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for grant in &plugin.manifest.capabilities.files {
        let source = Path::new(&grant.source);
        assert!(
            source.is_relative()
                && source
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{}: files source {:?} must be a relative path inside the plugin's folder",
            plugin.manifest_path.display(),
            grant.source
        );
        let absolute = plugin.dir.join(source);
        assert!(
            absolute.is_dir(),
            "{}: files source {} is not a directory",
            plugin.manifest_path.display(),
            absolute.display()
        );
        collect_files(&plugin.dir, &absolute, &mut files);
    }
    files.sort();
    files.dedup();
    files
}

/// Every file under the plugin's `assets/` folder (its package assets: a notifier's templates
/// and translations): (path relative to `assets/`, '/'-separated; absolute path), sorted. The
/// host checks each path again when it loads them (`Assets::from_entries`); a symbolic link is
/// refused here as `Assets::from_dir` refuses one in a package directory.
fn package_assets(plugin: &PluginCrate) -> Vec<(String, PathBuf)> {
    let dir = plugin.dir.join("assets");
    if !dir.is_dir() {
        return Vec::new();
    }
    let mut files = Vec::new();
    collect_files(&dir, &dir, &mut files);
    files.sort();
    files
}

fn collect_files(base: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    for entry in read_dir(dir) {
        let path = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        assert!(
            !is_link,
            "{} is a symbolic link: a plugin's files and assets must be regular files",
            path.display()
        );
        if path.is_dir() {
            collect_files(base, &path, files);
        } else if path.is_file() {
            let relative = path
                .strip_prefix(base)
                .expect("a path under the plugin folder");
            let relative = relative
                .components()
                .map(|c| c.as_os_str().to_str().expect("UTF-8 file names"))
                .collect::<Vec<_>>()
                .join("/");
            files.push((relative, path));
        }
    }
}

fn read_dir(dir: &Path) -> Vec<fs::DirEntry> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    entries.sort_by_key(fs::DirEntry::file_name);
    entries
}

fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    toml::from_str(&text).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Writes through a temporary file and a rename (two builds of belfry may run at once),
/// and leaves an unchanged file alone so its mtime does not trigger rebuilds.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    fs::write(&tmp, bytes).unwrap_or_else(|err| panic!("cannot write {}: {err}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
}

fn utf8(path: &Path) -> &str {
    path.to_str()
        .unwrap_or_else(|| panic!("path {} is not UTF-8", path.display()))
}
