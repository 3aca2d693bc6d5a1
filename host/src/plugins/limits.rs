//! Per-call resource limits: memory, CPU time and the size of what a plugin returns.
//!
//! Each limit has a default (what a plugin gets without asking) and a host maximum (what a
//! manifest may ask for). A call that hits one fails with a typed reason; the host goes on.

use serde::Serialize;

/// 64 MiB holds a template engine, its templates and a large render with room to spare;
/// plugins that need more say so in their manifest.
pub const DEFAULT_MEMORY_MIB: u64 = 64;
/// The most any manifest may ask for. Also the pooling allocator's slot size, so raising it
/// raises the virtual address space reserved per instance slot.
pub const MAX_MEMORY_MIB: u64 = 512;
/// Renders and plans take microseconds; 2 s only trips on a runaway loop or a slow provider.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// A provider that takes longer than a minute is down, whatever it says.
pub const MAX_TIMEOUT_MS: u64 = 60_000;
/// One rendered message; an e-mail with inline HTML rarely passes 100 KiB.
pub const DEFAULT_OUTPUT_KIB: u64 = 1024;
pub const MAX_OUTPUT_KIB: u64 = 16 * 1024;
/// Epoch tick: the granularity of CPU-time deadlines, and how long a guest computes on an
/// async worker before its call moves off the workers (`off_the_async_workers`). 1 ms keeps
/// that stall short; the ticker thread waking 1000 times a second costs well under 1 % of a core.
pub const EPOCH_TICK_MS: u64 = 1;
/// Guest stderr captured per call (its tail ends up in the error of a trap: panic messages).
pub const STDERR_CAPTURE_BYTES: usize = 16 * 1024;
/// Lines a plugin may log per call, and bytes per line; beyond that they are dropped.
pub const LOG_LINES_PER_CALL: usize = 200;
pub const LOG_LINE_BYTES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub memory_bytes: usize,
    pub timeout_ms: u64,
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: (DEFAULT_MEMORY_MIB << 20) as usize,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            output_bytes: (DEFAULT_OUTPUT_KIB << 10) as usize,
        }
    }
}

impl Limits {
    /// Applies a manifest's requests; the error names the key that is out of range.
    pub fn from_manifest(
        memory_mib: Option<u64>,
        timeout_ms: Option<u64>,
        output_kib: Option<u64>,
    ) -> Result<Limits, String> {
        let check = |key: &str, v: Option<u64>, max: u64, default: u64| match v {
            None => Ok(default),
            Some(0) => Err(format!("{key} must be at least 1")),
            Some(v) if v > max => Err(format!("{key} = {v} exceeds the host maximum of {max}")),
            Some(v) => Ok(v),
        };
        Ok(Limits {
            memory_bytes: (check("memory_mib", memory_mib, MAX_MEMORY_MIB, DEFAULT_MEMORY_MIB)?
                << 20) as usize,
            timeout_ms: check("timeout_ms", timeout_ms, MAX_TIMEOUT_MS, DEFAULT_TIMEOUT_MS)?,
            output_bytes: (check("output_kib", output_kib, MAX_OUTPUT_KIB, DEFAULT_OUTPUT_KIB)?
                << 10) as usize,
        })
    }

    pub fn epoch_ticks(&self) -> u64 {
        self.timeout_ms.div_ceil(EPOCH_TICK_MS).max(1)
    }
}

/// A `ResourceLimiter` that remembers whether it refused memory, so a trap that follows a
/// refused growth (Rust guests abort on allocation failure) is reported as `memory_limit`.
pub struct PluginLimiter {
    memory_bytes: usize,
    pub(crate) memory_refused: bool,
    /// The largest size any of the instance's memories has grown to; a warm instance that
    /// grew past half its limit is retired rather than left to fail a later call.
    pub(crate) memory_peak: usize,
}

impl PluginLimiter {
    pub fn new(limits: &Limits) -> Self {
        PluginLimiter {
            memory_bytes: limits.memory_bytes,
            memory_refused: false,
            memory_peak: 0,
        }
    }

    /// Whether the instance has room to serve another call as it is.
    pub(crate) fn roomy(&self) -> bool {
        !self.memory_refused && self.memory_peak <= self.memory_bytes / 2
    }
}

/// Tables and instances are bounded by the pooling allocator's configuration; only memory is
/// per-plugin.
impl wasmtime::ResourceLimiter for PluginLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_refused = true;
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
