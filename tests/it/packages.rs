//! Plugin packages (issue 23): a package directory under `--plugins` loads with its assets; a
//! package archive written by `belfry plugin pack` and uploaded over HTTP is live at once with
//! its assets and still after a restart (SQLite and PostgreSQL); hostile archives are refused
//! whole, each with an error naming what was wrong, and nothing is recorded.

use crate::common;

use crate::common::{Backend, cache_dir, config_for, world, world_with};
use belfry::host::plugins::assets::Assets;
use belfry::host::plugins::package::{Limits, Package, PackageError};
use belfry::host::plugins::{self, BundledPlugin, PluginRuntime, RuntimeConfig};
use belfry::serve::ServeConfig;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn bundled(name: &str) -> &'static BundledPlugin {
    belfry::BUNDLED
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no bundled plugin {name}"))
}

/// `manifest` with its `version` set (the manifest's other keys as they are).
fn with_version(manifest: &str, version: &str) -> String {
    let mut t: toml::Table = toml::from_str(manifest).unwrap();
    t.insert("version".into(), toml::Value::String(version.into()));
    toml::to_string(&t).unwrap()
}

/// The bundled `log` adapter as a package of another version, with a few assets.
fn log_package(version: &str, subject: &str) -> Package {
    let log = bundled("log");
    Package {
        manifest: with_version(log.manifest, version),
        component: log.wasm.to_vec(),
        assets: Assets::from_entries([
            (
                "templates/welcome/email/subject.j2".to_string(),
                subject.as_bytes().to_vec(),
            ),
            (
                "templates/welcome/email/subject.de.j2".to_string(),
                "Willkommen, {{ user.name }}".as_bytes().to_vec(),
            ),
            ("translations/de.json".to_string(), b"{}".to_vec()),
        ])
        .unwrap(),
    }
}

fn write_dir(dir: &Path, package: &Package) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("manifest.toml"), &package.manifest).unwrap();
    std::fs::write(dir.join("plugin.wasm"), &package.component).unwrap();
    for (path, bytes) in package.assets.iter() {
        let file = dir.join("assets").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn runtime() -> PluginRuntime {
    PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        ..Default::default()
    })
    .unwrap()
}

/// A package folder under `--plugins` loads with exactly its assets, and a changed asset is a
/// new build; a broken folder is reported with its reason; a folder that is no package (say a
/// directory a file plugin is granted) is left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_package_loads_with_its_assets() {
    let dir = tempfile::tempdir().unwrap();
    let package = log_package("0.9.0", "Welcome, {{ user.name }}");
    write_dir(&dir.path().join("log"), &package);
    // No component.
    std::fs::create_dir_all(dir.path().join("half")).unwrap();
    std::fs::write(dir.path().join("half/manifest.toml"), &package.manifest).unwrap();
    // Something that is not part of a package.
    write_dir(&dir.path().join("extra"), &package);
    std::fs::write(dir.path().join("extra/README.md"), "hello").unwrap();
    // A symbolic link inside the assets.
    write_dir(&dir.path().join("linked"), &package);
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("linked/assets/passwd")).unwrap();
    // Not a package: no manifest.toml, no plugin.wasm.
    std::fs::create_dir_all(dir.path().join("granted")).unwrap();
    std::fs::write(dir.path().join("granted/file.txt"), "x").unwrap();

    let runtime = runtime();
    let loaded = plugins::load_all(&runtime, belfry::BUNDLED, Some(dir.path()))
        .await
        .unwrap();
    let log = loaded
        .plugins
        .iter()
        .find(|p| p.name() == "log")
        .expect("log is loaded");
    assert_eq!(
        log.manifest().version,
        "0.9.0",
        "the package replaced the bundled log"
    );
    assert_eq!(log.origin(), dir.path().join("log").display().to_string());
    assert_eq!(**log.assets(), package.assets);
    assert_eq!(
        log.assets()
            .read("templates/welcome/email/subject.de.j2")
            .as_deref(),
        Some("Willkommen, {{ user.name }}".as_bytes())
    );
    // The assets are part of the build's identity.
    assert_ne!(log.reference().hash, sha256(&package.component));

    let mut broken: Vec<(String, String)> = loaded
        .broken
        .iter()
        .map(|b| (b.name.clone(), b.reason.clone()))
        .collect();
    broken.sort();
    let names: Vec<&str> = broken.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["extra", "half", "linked"], "{broken:?}");
    assert!(
        broken[0].1.contains("`README.md` is not part of a package"),
        "{broken:?}"
    );
    assert!(broken[1].1.contains("no `plugin.wasm`"), "{broken:?}");
    assert!(broken[2].1.contains("is a symbolic link"), "{broken:?}");

    // A changed template is a new build of the same component.
    std::fs::write(
        dir.path()
            .join("log/assets/templates/welcome/email/subject.j2"),
        "Hello, {{ user.name }}",
    )
    .unwrap();
    let again = runtime.load_dir(&dir.path().join("log")).await.unwrap();
    assert_ne!(again.reference(), log.reference());
    assert_eq!(
        again
            .assets()
            .read("templates/welcome/email/subject.j2")
            .as_deref(),
        Some(&b"Hello, {{ user.name }}"[..])
    );
    // The same package loads as the same build.
    let same = runtime.load_dir(&dir.path().join("log")).await.unwrap();
    assert_eq!(same.reference(), again.reference());
}

/// Bundled plugins carry their `plugins/NAME/assets/**`, and a plugin without assets keeps its
/// component's hash as its reference.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_plugins_carry_their_assets() {
    let runtime = runtime();
    for b in belfry::BUNDLED {
        let plugin = runtime.load_bundled(b).await.unwrap();
        let expected = Assets::from_entries(
            b.assets
                .iter()
                .map(|(p, bytes)| (p.to_string(), bytes.to_vec())),
        )
        .unwrap();
        assert_eq!(**plugin.assets(), expected, "{}", b.name);
        let on_disk = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("plugins")
            .join(b.name)
            .join("assets");
        if on_disk.is_dir() {
            assert_eq!(expected, Assets::from_dir(&on_disk).unwrap(), "{}", b.name);
        } else {
            assert!(expected.is_empty(), "{}", b.name);
        }
        if expected.is_empty() {
            assert_eq!(plugin.reference().hash, sha256(b.wasm), "{}", b.name);
        } else {
            assert_ne!(plugin.reference().hash, sha256(b.wasm), "{}", b.name);
        }
    }
}

fn belfry_cli(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_belfry"))
        .args(args)
        .env_remove("BELFRY_PLUGINS")
        .output()
        .unwrap()
}

fn pack(dir: &Path, out: &Path) -> Vec<u8> {
    let output = belfry_cli(&[
        "plugin".as_ref(),
        "pack".as_ref(),
        dir.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        output.status.success(),
        "belfry plugin pack failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::read(out).unwrap()
}

/// `belfry plugin pack`: the archive reads back as the folder; `--json`; a source folder needs
/// `--component`; a folder with a stray file is refused, naming it.
#[test]
fn pack_cli_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let package = log_package("0.9.0", "Welcome");
    let dir = tmp.path().join("log");
    write_dir(&dir, &package);
    let archive = pack(&dir, &tmp.path().join("log.tar.gz"));
    let read = Package::from_archive(&archive, &Limits::default()).unwrap();
    assert_eq!(read, package);
    assert_eq!(read, Package::from_dir(&dir).unwrap());
    // Deterministic: the same folder packs to the same bytes.
    assert_eq!(pack(&dir, &tmp.path().join("again.tar.gz")), archive);

    let json = belfry_cli(&[
        "--json".as_ref(),
        "plugin".as_ref(),
        "pack".as_ref(),
        dir.as_os_str(),
        "-o".as_ref(),
        tmp.path().join("j.tar.gz").as_os_str(),
    ]);
    assert!(json.status.success(), "{json:?}");
    let out: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(out["name"], "log");
    assert_eq!(out["version"], "0.9.0");
    assert_eq!(out["assets"], 3);
    assert_eq!(out["bytes"], archive.len());

    // `belfry plugin check` takes the package folder as it takes a .wasm.
    let check = belfry_cli(&["plugin".as_ref(), "check".as_ref(), dir.as_os_str()]);
    assert!(check.status.success(), "{check:?}");
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("log"),
        "{check:?}"
    );

    // A plugin's source folder: its manifest and assets, with the component built from it.
    let source = tmp.path().join("source");
    std::fs::create_dir_all(source.join("src")).unwrap();
    std::fs::write(source.join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
    std::fs::write(source.join("src/lib.rs"), "").unwrap();
    std::fs::write(source.join("manifest.toml"), &package.manifest).unwrap();
    for (path, bytes) in package.assets.iter() {
        let file = source.join("assets").join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, bytes).unwrap();
    }
    let no_component = belfry_cli(&["plugin".as_ref(), "pack".as_ref(), source.as_os_str()]);
    assert!(!no_component.status.success());
    assert!(
        String::from_utf8_lossy(&no_component.stderr).contains("--component"),
        "{no_component:?}"
    );
    let wasm = tmp.path().join("built.wasm");
    std::fs::write(&wasm, &package.component).unwrap();
    let out = tmp.path().join("from-source.tar.gz");
    let built = belfry_cli(&[
        "plugin".as_ref(),
        "pack".as_ref(),
        source.as_os_str(),
        "--component".as_ref(),
        wasm.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(built.status.success(), "{built:?}");
    assert_eq!(std::fs::read(&out).unwrap(), archive);

    // A stray file: refused, named, and no archive written.
    std::fs::write(dir.join("notes.txt"), "x").unwrap();
    let stray_out = tmp.path().join("stray.tar.gz");
    let stray = belfry_cli(&[
        "plugin".as_ref(),
        "pack".as_ref(),
        dir.as_os_str(),
        "-o".as_ref(),
        stray_out.as_os_str(),
    ]);
    assert!(!stray.status.success());
    assert!(
        String::from_utf8_lossy(&stray.stderr).contains("`notes.txt` is not part of a package"),
        "{stray:?}"
    );
    assert!(!stray_out.exists());
}

struct Server {
    base: String,
    admin: String,
    key: String,
    http: reqwest::Client,
    running: belfry::serve::Running,
}

async fn serve(engine: &belfry::Engine, tweak: impl FnOnce(&mut ServeConfig)) -> Server {
    let mut config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: None,
        ..Default::default()
    };
    tweak(&mut config);
    let running = belfry::serve::start(engine.clone(), config).await.unwrap();
    let (_, admin) = engine.create_key(None, "operator").await.unwrap();
    let (_, key) = engine.create_key(Some("acme"), "test").await.unwrap();
    Server {
        base: format!("http://{}", running.addr),
        admin,
        key,
        http: reqwest::Client::new(),
        running,
    }
}

impl Server {
    async fn upload_as(&self, key: &str, archive: Vec<u8>) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/v1/plugins", self.base))
            .bearer_auth(key)
            .header("content-type", "application/gzip")
            .body(archive)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
        (status, body)
    }

    async fn upload(&self, archive: Vec<u8>) -> (u16, Value) {
        self.upload_as(&self.admin, archive).await
    }
}

/// `belfry plugin pack` → `POST /v1/plugins` → live with its assets at once, recorded, and
/// loaded with them again after a restart.
async fn pack_upload_restart(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let package = log_package("0.9.0", "Welcome, {{ user.name }}");
    write_dir(&tmp.path().join("log"), &package);
    let archive = pack(&tmp.path().join("log"), &tmp.path().join("log.tar.gz"));

    let w = world(backend).await;
    let server = serve(&w.engine, |_| {}).await;
    // A tenant's key may not load plugins.
    let (status, body) = server.upload_as(&server.key, archive.clone()).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.upload(archive.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "log");
    assert_eq!(body["version"], "0.9.0");
    let reference = body["reference"].as_str().unwrap().to_string();
    assert!(
        body["replaced"].as_str().unwrap().starts_with("log@"),
        "{body}"
    );

    let live = w
        .engine
        .plugins()
        .into_iter()
        .find(|p| p.name() == "log")
        .unwrap();
    assert_eq!(live.reference().to_string(), reference);
    assert_eq!(**live.assets(), package.assets);
    let listed = server
        .http
        .get(format!("{}/v1/plugins", server.base))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let log: Vec<&Value> = listed["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "log")
        .collect();
    assert_eq!(log.len(), 1, "{listed}");
    assert_eq!(log[0]["reference"], reference.as_str());
    let stored: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM plugin_uploads WHERE name = 'log' AND assets IS NOT NULL",
    )
    .fetch_one(w.engine.db())
    .await
    .unwrap();
    assert_eq!(stored, 1);
    server.running.shutdown().await.unwrap();

    // A restart (or another node opening the same database) loads the same build.
    let restarted = belfry::Engine::open(config_for(&w.db.url, &w.receiver.url()))
        .await
        .unwrap();
    let again = restarted
        .plugins()
        .into_iter()
        .find(|p| p.name() == "log")
        .unwrap();
    assert_eq!(again.reference().to_string(), reference);
    assert_eq!(again.manifest().version, "0.9.0");
    assert_eq!(**again.assets(), package.assets);
}

on_both_backends!(pack_upload_restart);

/// The JSON form of `POST /v1/plugins` (a manifest and a base64 component) still works beside
/// the archive: a plugin without assets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_upload_still_works() {
    use base64::Engine as _;
    let w = world(Backend::Sqlite).await;
    let server = serve(&w.engine, |_| {}).await;
    let log = bundled("log");
    let res = server
        .http
        .post(format!("{}/v1/plugins", server.base))
        .bearer_auth(&server.admin)
        .json(&serde_json::json!({
            "manifest": with_version(log.manifest, "0.8.0"),
            "component": base64::engine::general_purpose::STANDARD.encode(log.wasm),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let live = w
        .engine
        .plugins()
        .into_iter()
        .find(|p| p.name() == "log")
        .unwrap();
    assert_eq!(live.manifest().version, "0.8.0");
    assert!(live.assets().is_empty());
    assert_eq!(live.reference().hash, sha256(log.wasm));
    server.running.shutdown().await.unwrap();
}

// ---- hostile archives --------------------------------------------------------------------

/// A tar entry written raw: any type, any name (`tar`'s builder refuses `..`), any size.
struct Raw {
    path: &'static str,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Option<&'static str>,
}

fn file(path: &'static str, data: &[u8]) -> Raw {
    Raw {
        path,
        kind: tar::EntryType::Regular,
        data: data.to_vec(),
        link: None,
    }
}

fn tar_gz(entries: Vec<Raw>) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        let name = &mut h.as_old_mut().name;
        name[..e.path.len()].copy_from_slice(e.path.as_bytes());
        h.set_entry_type(e.kind);
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        if let Some(link) = e.link {
            h.set_link_name(link).unwrap();
        }
        h.set_cksum();
        b.append(&h, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// `count` zero bytes through a gzip writer, without holding them.
fn zeros_gz(header: &[u8], count: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(header).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = count;
    while left > 0 {
        let n = left.min(chunk.len());
        gz.write_all(&chunk[..n]).unwrap();
        left -= n;
    }
    gz.finish().unwrap()
}

/// Each hostile archive, uploaded, is refused with 4xx and the error naming what was wrong;
/// nothing is recorded and the plugin in force stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_archives_are_refused() {
    let w = world_with(Backend::Sqlite, |_| {}).await;
    let server = serve(&w.engine, |c| c.max_plugin_bytes = 1 << 20).await;
    let before = w
        .engine
        .plugins()
        .into_iter()
        .find(|p| p.name() == "log")
        .unwrap()
        .reference()
        .clone();
    let manifest = with_version(bundled("log").manifest, "0.9.0");
    let m = manifest.as_bytes();
    let wasm = b"\0asm fake component";

    // A header claiming a 40 MiB asset: over the assets' bound before a byte of it is read.
    let mut big_asset = tar::Header::new_gnu();
    big_asset.set_path("assets/zeros").unwrap();
    big_asset.set_size(40 << 20);
    big_asset.set_mode(0o644);
    big_asset.set_cksum();
    let honest_bomb = zeros_gz(big_asset.as_bytes(), 40 << 20);
    // A GNU long-name entry of 200 MiB (about 200 KiB compressed), which tar's own reader
    // would take into memory whole: refused by its size.
    let mut long_name = tar::Header::new_gnu();
    long_name.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    long_name.set_entry_type(tar::EntryType::GNULongName);
    long_name.set_size(200 << 20);
    long_name.set_cksum();
    let long_name_bomb = zeros_gz(long_name.as_bytes(), 200 << 20);
    assert!(long_name_bomb.len() < 1 << 20, "{}", long_name_bomb.len());
    // A directory entry carrying 200 MiB: no file's size bound applies, so only the bound on
    // what the stream unpacks to stops it.
    let mut dir = tar::Header::new_gnu();
    dir.set_path("assets/").unwrap();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_size(200 << 20);
    dir.set_mode(0o755);
    dir.set_cksum();
    let dir_bomb = zeros_gz(dir.as_bytes(), 200 << 20);
    // Incompressible bytes a little over --max-plugin-bytes (much more may meet a connection
    // the server closed before reading it all).
    let mut noise = Vec::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while noise.len() < (1 << 20) + (64 << 10) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }

    let cases: Vec<(&str, Vec<u8>, u16, &str, &str)> = vec![
        (
            "too big",
            tar_gz(vec![file("manifest.toml", m), file("plugin.wasm", &noise)]),
            413,
            "too_large",
            "",
        ),
        (
            "asset bomb",
            honest_bomb,
            422,
            "package_rejected",
            "`assets/zeros` is 41943040 bytes, over the limit",
        ),
        (
            "long-name bomb",
            long_name_bomb,
            422,
            "package_rejected",
            "is 209715200 bytes, over the limit of 1024 for a long name",
        ),
        (
            "directory bomb",
            dir_bomb,
            422,
            "package_rejected",
            "refused as a compression bomb",
        ),
        (
            "../ path",
            tar_gz(vec![
                file("manifest.toml", m),
                file("plugin.wasm", wasm),
                file("assets/../../etc/cron.d/x", b"x"),
            ]),
            422,
            "package_rejected",
            "has an empty, `.` or `..` segment",
        ),
        (
            "absolute path",
            tar_gz(vec![file("/etc/passwd", b"x")]),
            422,
            "package_rejected",
            "is absolute",
        ),
        (
            "symlink",
            tar_gz(vec![
                file("manifest.toml", m),
                file("plugin.wasm", wasm),
                Raw {
                    path: "assets/passwd",
                    kind: tar::EntryType::Symlink,
                    data: vec![],
                    link: Some("/etc/passwd"),
                },
            ]),
            422,
            "package_rejected",
            "`assets/passwd` is a symbolic link",
        ),
        (
            "hard link",
            tar_gz(vec![
                file("manifest.toml", m),
                Raw {
                    path: "plugin.wasm",
                    kind: tar::EntryType::Link,
                    data: vec![],
                    link: Some("/usr/bin/env"),
                },
            ]),
            422,
            "package_rejected",
            "`plugin.wasm` is a hard link",
        ),
        (
            "device",
            tar_gz(vec![Raw {
                path: "assets/null",
                kind: tar::EntryType::Char,
                data: vec![],
                link: None,
            }]),
            422,
            "package_rejected",
            "is a character device",
        ),
        (
            "two manifests",
            tar_gz(vec![
                file("manifest.toml", m),
                file("plugin.wasm", wasm),
                file("./manifest.toml", m),
            ]),
            422,
            "package_rejected",
            "`manifest.toml` appears twice",
        ),
        (
            "missing component",
            tar_gz(vec![file("manifest.toml", m), file("assets/a.j2", b"x")]),
            422,
            "package_rejected",
            "no `plugin.wasm`",
        ),
        (
            "unknown top-level file",
            tar_gz(vec![
                file("manifest.toml", m),
                file("plugin.wasm", wasm),
                file("install.sh", b"rm -rf /"),
            ]),
            422,
            "package_rejected",
            "`install.sh` is not part of a package",
        ),
        (
            "not gzip",
            b"PK\x03\x04 a zip".to_vec(),
            422,
            "package_rejected",
            "not a gzip-compressed tar archive",
        ),
        (
            "not a component",
            tar_gz(vec![file("manifest.toml", m), file("plugin.wasm", wasm)]),
            422,
            "plugin_rejected",
            "not a valid WebAssembly component",
        ),
    ];
    for (name, archive, status, code, message) in cases {
        let (got, body) = server.upload(archive).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        let text = body["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains(message), "{name}: {text}");
    }
    let recorded = common::count(&w.engine, "plugin_uploads").await;
    assert_eq!(recorded, 0);
    let after = w
        .engine
        .plugins()
        .into_iter()
        .find(|p| p.name() == "log")
        .unwrap();
    assert_eq!(after.reference(), &before);
    server.running.shutdown().await.unwrap();
}

/// The same refusals without HTTP, as `PackageError`s, and the bounds an archive is read within.
#[test]
fn archive_errors_are_typed() {
    let m = b"name = \"x\"";
    let over = Package::from_archive(
        &tar_gz(vec![file("manifest.toml", m), file("plugin.wasm", b"w")]),
        &Limits {
            component_bytes: 0,
            ..Limits::default()
        },
    );
    assert!(
        matches!(over, Err(PackageError::EntryTooLarge { ref path, .. }) if path == "plugin.wasm"),
        "{over:?}"
    );
    let many = Package::from_archive(
        &tar_gz(vec![
            file("manifest.toml", m),
            file("plugin.wasm", b"w"),
            file("assets/a", b"a"),
        ]),
        &Limits {
            entries: 2,
            ..Limits::default()
        },
    );
    assert_eq!(many, Err(PackageError::TooManyEntries { limit: 2 }));
    let tight = Package::from_archive(
        &tar_gz(vec![file("assets/a", &vec![0; 1 << 20])]),
        &Limits {
            unpacked_bytes: 4096,
            ..Limits::default()
        },
    );
    assert_eq!(tight, Err(PackageError::Bomb { limit: 4096 }));
    // Directory entries and a `./` prefix (what `tar -C DIR -czf x .` writes) are fine.
    let mut dot = tar_gz(vec![
        Raw {
            path: "./",
            kind: tar::EntryType::Directory,
            data: vec![],
            link: None,
        },
        file("./manifest.toml", m),
        file("./plugin.wasm", b"w"),
        Raw {
            path: "./assets/",
            kind: tar::EntryType::Directory,
            data: vec![],
            link: None,
        },
        file("./assets/a.j2", b"a"),
    ]);
    let read = Package::from_archive(&dot, &Limits::default()).unwrap();
    assert_eq!(read.assets.list(""), vec!["a.j2"]);
    // A damaged archive is an error, not a panic.
    let half = dot.len() / 2;
    dot.truncate(half);
    assert!(Package::from_archive(&dot, &Limits::default()).is_err());
}

/// A first-party notifier with its templates, packed from its source folder with the component
/// build.rs built (`plugin pack plugins/NAME --component …`), uploads and is live with exactly
/// the assets the binary bundles.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_party_notifier_packs_from_its_source() {
    let notifier = belfry::BUNDLED.iter().find(|b| {
        let m: toml::Table = toml::from_str(b.manifest).unwrap();
        m["kind"].as_str() == Some("notifier") && !b.assets.is_empty()
    });
    let Some(notifier) = notifier else {
        eprintln!("SKIPPED: no bundled notifier carries assets in this build");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let wasm = tmp.path().join("built.wasm");
    std::fs::write(&wasm, notifier.wasm).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins")
        .join(notifier.name);
    let out = tmp.path().join("pkg.tar.gz");
    let packed = belfry_cli(&[
        "plugin".as_ref(),
        "pack".as_ref(),
        source.as_os_str(),
        "--component".as_ref(),
        wasm.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(packed.status.success(), "{packed:?}");
    let archive = std::fs::read(&out).unwrap();
    let package = Package::from_archive(&archive, &Limits::default()).unwrap();
    let bundled_assets = Assets::from_entries(
        notifier
            .assets
            .iter()
            .map(|(p, b)| (p.to_string(), b.to_vec())),
    )
    .unwrap();
    assert_eq!(package.assets, bundled_assets);
    assert_eq!(package.manifest, notifier.manifest);

    let w = world(Backend::Sqlite).await;
    let bundled_ref = w
        .engine
        .plugins()
        .into_iter()
        .find(|p| p.name() == notifier.name)
        .unwrap()
        .reference()
        .to_string();
    let server = serve(&w.engine, |_| {}).await;
    let (status, body) = server.upload(archive).await;
    assert_eq!(status, 201, "{body}");
    // The same component and the same assets: the same build as the bundled one.
    assert_eq!(body["reference"], bundled_ref.as_str(), "{body}");
    let live = w
        .engine
        .plugins()
        .into_iter()
        .find(|p| p.name() == notifier.name)
        .unwrap();
    assert!(live.origin().starts_with("upload"), "{}", live.origin());
    assert_eq!(**live.assets(), bundled_assets);
    server.running.shutdown().await.unwrap();
}
