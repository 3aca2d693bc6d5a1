//! `belfry serve` as a process (its log captured to a file) and `belfry` commands, for the
//! route and live-plugin tests.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `belfry` binary on `database_url`, with the shared compile cache and, when given, a
/// plugin directory.
pub fn belfry(database_url: &str, plugins: Option<&Path>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_belfry"));
    c.env("BELFRY_DATABASE_URL", database_url)
        .env(
            "BELFRY_CACHE_DIR",
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache"),
        )
        .env_remove("BELFRY_PLUGINS")
        .env_remove("BELFRY_ROUTES")
        .env_remove("BELFRY_RENDERER")
        .env_remove("BELFRY_WATCH")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    if let Some(p) = plugins {
        c.env("BELFRY_PLUGINS", p);
    }
    c
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `belfry ARGS`, asserting it succeeds.
pub fn run_ok(database_url: &str, plugins: Option<&Path>, args: &[&str]) -> Output {
    let out = belfry(database_url, plugins).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "belfry {args:?}: {}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

pub struct Server {
    child: Child,
    pub base: String,
    /// An operator (admin) key.
    pub admin: String,
    log: PathBuf,
    pub http: reqwest::Client,
}

impl Server {
    /// `belfry serve` on a free port with `args` after `serve`; ready when `/healthz` answers.
    /// `dir` holds its log.
    pub async fn start(
        database_url: &str,
        plugins: Option<&Path>,
        dir: &Path,
        global: &[&str],
        args: &[&str],
    ) -> Server {
        let out = run_ok(
            database_url,
            plugins,
            &["--json", "keys", "create", "--admin", "--name", "test"],
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        let admin = created["secret"].as_str().unwrap().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("serve-{port}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let child = belfry(database_url, plugins)
            .args(global)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            admin,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let up = server
                .http
                .get(format!("{}/healthz", server.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "belfry serve did not start: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Everything it logged so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `POST /v1/plugins`, the JSON form: a manifest and a component.
    pub async fn upload(&self, manifest: &str, component: &[u8]) -> (u16, Value) {
        use base64::Engine as _;
        self.post(
            "/v1/plugins",
            &serde_json::json!({
                "manifest": manifest,
                "component": base64::engine::general_purpose::STANDARD.encode(component),
            }),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bundled plugin's component and manifest.
pub fn bundled(name: &str) -> (&'static [u8], &'static str) {
    let b = belfry::BUNDLED
        .iter()
        .find(|b| b.name == name)
        .unwrap_or_else(|| panic!("no bundled plugin {name}"));
    (b.wasm, b.manifest)
}

/// Writes `NAME.wasm` and `NAME.toml` into `dir`.
pub fn write_file_plugin(dir: &Path, name: &str, wasm: &[u8], manifest: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{name}.wasm")), wasm).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
}

/// An adapter built from the bundled `log` component under another name, listing `channels`.
pub fn log_adapter_as(name: &str, version: &str, channels: &str) -> (Vec<u8>, String) {
    let (wasm, _) = bundled("log");
    let manifest = format!(
        "name = \"{name}\"\nversion = \"{version}\"\nkind = \"channel-adapter\"\nwit = \"1.0.0\"\n\
         description = \"the log adapter under another name\"\nchannels = {channels}\n"
    );
    (wasm.to_vec(), manifest)
}
