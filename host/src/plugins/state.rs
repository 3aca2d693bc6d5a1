//! The data of one plugin call's `Store`: WASI with nothing granted but what the manifest
//! lists, the HTTP gate, the memory limiter, and the host imports of contract 1.0 (`log`,
//! `config`, `assets`); older contracts' `log` and `config` forward here (`versions.rs`).

use super::assets::Assets;
use super::capabilities::{AuthorityPattern, HttpGate};
use super::limits::{self, PluginLimiter};
use super::manifest::Manifest;
use super::reference::PluginRef;
use std::collections::BTreeMap;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub struct PluginState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    pub(super) table: ResourceTable,
    /// `wasi:tls` for channel adapters (`tls.rs`).
    pub(super) tls: wasmtime_wasi_tls::WasiTlsCtx,
    pub(crate) gate: HttpGate,
    pub(crate) limiter: PluginLimiter,
    stderr: MemoryOutputPipe,
    /// Where this call's stderr starts: a warm instance keeps what earlier calls wrote.
    stderr_from: usize,
    /// `name@version#hash12`, attached to every log line.
    plugin: String,
    config: Arc<BTreeMap<String, String>>,
    log_lines: usize,
    /// The log lines of a watched call (`Reuse::Observed`), kept as well as logged.
    pub(super) captured: Option<Vec<super::observe::LogLine>>,
    /// What `assets` answers during the current call: a notifier's own package assets, or,
    /// for a renderer, those of the notifier whose request it renders. Set at the start of
    /// every call, because a warm instance serves calls for different notifiers.
    assets: Arc<Assets>,
    /// Bytes `assets` may still return during this call ([`assets_budget`]).
    assets_left: usize,
    /// Set when a call asked `assets` for more than its budget; the call then fails with
    /// `output_too_large` (`bounded.rs`, `classify`).
    pub(crate) assets_exceeded: Option<String>,
}

/// How many bytes `assets.read` and `assets.list` may return to one call: four times the
/// plugin's output limit (`limits.output_kib`, 1 MiB by default). A renderer reads a few
/// templates per call; the bound keeps a guest from reading a 32 MiB package over and over in
/// a loop, which would cost the host a copy per read. Past it the call fails
/// (`output_too_large`) instead of seeing `none`, which it would take for a missing file.
pub fn assets_budget(manifest: &Manifest) -> usize {
    manifest
        .limits
        .output_bytes
        .saturating_mul(ASSETS_BUDGET_FACTOR)
}

/// See [`assets_budget`].
pub const ASSETS_BUDGET_FACTOR: usize = 4;

impl PluginState {
    pub fn new(
        reference: &PluginRef,
        manifest: &Manifest,
        config: Arc<BTreeMap<String, String>>,
        http: Arc<[AuthorityPattern]>,
        tcp: Arc<[AuthorityPattern]>,
    ) -> Result<PluginState, String> {
        let stderr = MemoryOutputPipe::new(limits::STDERR_CAPTURE_BYTES);
        let tls = super::tls::context(reference, &config, &tcp)?;
        let mut wasi = WasiCtxBuilder::new();
        // Deny by default: no args, no environment, no stdin/stdout, no sockets, no name
        // lookup. Only stderr is captured (bounded) so a panic message reaches the error.
        wasi.stderr(stderr.clone())
            // Granted files are small local reads (templates); doing them inline instead of
            // on tokio's blocking pool is ~50x faster per call and still bounded by the
            // epoch deadline. Must be set before the pre-opens, which capture it.
            .allow_blocking_current_thread(true)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let denials = super::capabilities::Denials::default();
        if !tcp.is_empty() {
            // TCP for adapters granted destinations (SMTP): name lookup so the guest can find
            // its server, and a check on every address it then connects to.
            wasi.allow_tcp(true)
                .allow_ip_name_lookup(true)
                .socket_addr_check(super::capabilities::tcp_check(
                    format!("{}@{}", reference.name, reference.version),
                    tcp,
                    denials.clone(),
                ));
        }
        for grant in &manifest.files {
            wasi.preopened_dir(&grant.source, &grant.guest, FsPerms::ReadOnly)
                .map_err(|e| {
                    format!(
                        "cannot open granted directory {}: {e}",
                        grant.source.display()
                    )
                })?;
        }
        Ok(PluginState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            tls,
            gate: HttpGate {
                plugin: format!("{}@{}", reference.name, reference.version),
                allow: http,
                denials,
            },
            limiter: PluginLimiter::new(&manifest.limits),
            stderr,
            stderr_from: 0,
            plugin: reference.to_string(),
            config,
            log_lines: 0,
            captured: None,
            assets: Assets::empty(),
            assets_left: assets_budget(manifest),
            assets_exceeded: None,
        })
    }

    /// Starts a call: what is counted or captured per call begins again here, and `assets`
    /// answers from `assets` (with a fresh budget of `assets_budget` bytes) until the next.
    pub fn begin_call(&mut self, assets: Arc<Assets>, assets_budget: usize) {
        self.log_lines = 0;
        self.stderr_from = self.stderr.contents().len();
        self.assets = assets;
        self.assets_left = assets_budget;
        self.assets_exceeded = None;
    }

    /// Takes `bytes` from this call's assets budget, or records why the call must fail.
    fn spend_on_assets(&mut self, bytes: usize, what: &str) -> wasmtime::Result<()> {
        if self.assets_exceeded.is_none()
            && let Some(left) = self.assets_left.checked_sub(bytes)
        {
            self.assets_left = left;
            return Ok(());
        }
        let message = format!(
            "{what} would take the assets read in this call past {ASSETS_BUDGET_FACTOR} times the output limit"
        );
        self.assets_exceeded.get_or_insert(message.clone());
        Err(wasmtime::format_err!(message))
    }

    /// Whether this state may serve another call: nothing denied, memory to spare, and room
    /// left to capture a panic message.
    pub fn reusable(&self) -> bool {
        self.gate
            .denials
            .lock()
            .map(|d| d.is_empty())
            .unwrap_or(false)
            && self.limiter.roomy()
            && self.stderr.contents().len() <= limits::STDERR_CAPTURE_BYTES / 2
    }

    /// The last part of what the guest wrote to stderr during this call (a panic message,
    /// usually).
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        let bytes = &bytes[self.stderr_from.min(bytes.len())..];
        let text = String::from_utf8_lossy(bytes);
        let text = text.trim();
        let start = text.len().saturating_sub(1024);
        let start = (start..=text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        one_line(&text[start..].replace('\n', " | ")).into_owned()
    }
}

/// Guest text as one line of the host's log: line breaks and every other control character
/// (an ANSI escape, a carriage return that rewinds the terminal line, Unicode's line and
/// paragraph separators) are written as escapes (`\n`, `\u{1b}`), so nothing a plugin says can
/// end the host's line and begin one that looks like the host's own.
pub(crate) fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}');
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime_wasi_tls::WasiTlsView for PluginState {
    fn tls(&mut self) -> wasmtime_wasi_tls::WasiTlsCtxView<'_> {
        wasmtime_wasi_tls::WasiTlsCtxView {
            ctx: &mut self.tls,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for PluginState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.gate,
        }
    }
}

impl PluginState {
    /// One line of the guest's log (`log.log`), at most [`limits::LOG_LINES_PER_CALL`] a
    /// call, each cut to [`limits::LOG_LINE_BYTES`].
    pub(super) fn log_line(&mut self, level: tracing::Level, message: String) {
        self.log_lines += 1;
        if self.log_lines > limits::LOG_LINES_PER_CALL {
            return;
        }
        let mut message = message;
        if message.len() > limits::LOG_LINE_BYTES {
            let mut end = limits::LOG_LINE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        // A guest's newline would start a line of its own in the host's log, one that could
        // pass for the host's (`ERROR belfry_host::…`).
        let message = one_line(&message);
        if let Some(captured) = &mut self.captured {
            captured.push(super::observe::LogLine {
                level: level.as_str().to_ascii_lowercase(),
                message: message.to_string(),
            });
        }
        let plugin = self.plugin.as_str();
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "belfry::plugin", plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "belfry::plugin", plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "belfry::plugin", plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "belfry::plugin", plugin, "{message}"),
            _ => tracing::error!(target: "belfry::plugin", plugin, "{message}"),
        }
    }

    /// A config value of this plugin (`config.get`).
    pub(super) fn config_value(&self, key: &str) -> Option<String> {
        self.config.get(key).cloned()
    }

    /// A file of the call's assets (`assets.read`), paid for from the call's budget.
    pub(super) fn read_asset(&mut self, path: &str) -> wasmtime::Result<Option<Vec<u8>>> {
        let Some(bytes) = self.assets.read(path) else {
            return Ok(None);
        };
        self.spend_on_assets(bytes.len(), "reading assets")?;
        Ok(Some(bytes.to_vec()))
    }

    /// The paths of the call's assets under `prefix` (`assets.list`), paid for likewise.
    pub(super) fn list_assets(&mut self, prefix: &str) -> wasmtime::Result<Vec<String>> {
        let paths = self.assets.list(prefix);
        // Each path is counted with some overhead, so that listing many short names is not free.
        let size = paths.iter().map(|p| p.len() + 8).sum();
        self.spend_on_assets(size, "listing assets")?;
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn guest_text_stays_on_one_line() {
        assert_eq!(one_line("plain text, ünïcode"), "plain text, ünïcode");
        assert_eq!(
            one_line("innocent\nERROR belfry_host::engine: forged"),
            "innocent\\nERROR belfry_host::engine: forged"
        );
        assert_eq!(
            one_line("a\r\x1b[31mb\u{2028}c\td"),
            "a\\r\\u{1b}[31mb\\u{2028}c\\td"
        );
        assert!(!one_line("x\u{85}y\u{7f}").chars().any(char::is_control));
    }
}
