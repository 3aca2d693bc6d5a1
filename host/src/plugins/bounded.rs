//! How every plugin call is run and bounded: on a warm or fresh instance, within its CPU
//! time (epoch ticks) and wall-clock limit, off the async workers once it computes for long,
//! and every way it can end turned into its result or a [`CallError`] with a reason code.

use super::assets;
use super::errors::{CallError, FailureReason};
use super::plugin::{LoadedPlugin, Plugin};
use super::runtime::PluginRuntime;
use super::state::{self, PluginState};
use super::versions::Instance;
use super::warm::Reuse;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use wasmtime::Store;

impl PluginRuntime {
    /// Runs `body` on an instance of `plugin` — a warm one kept for this tenant if `reuse`
    /// allows and one waits, else a fresh one, answering `assets` reads from `assets` for this
    /// call only — then `finish` on what it returned (the
    /// plugin's own errors, output limits, conversion), and turns every way it can fail into
    /// a `CallError`. The instance is offered back to the warm pool if the call succeeded or
    /// failed only by the plugin's own verdict; any other failure drops it with its store.
    pub(super) async fn run<R, T>(
        &self,
        plugin: &Plugin,
        function: &'static str,
        reuse: Reuse<'_>,
        assets: &Arc<assets::Assets>,
        body: impl AsyncFnOnce(&mut Store<PluginState>, &Instance) -> wasmtime::Result<R>,
        finish: impl FnOnce(R) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let p = &*plugin.0;
        let tenant = self.warm.tenant(reuse);
        let warm = tenant.and_then(|t| self.warm.take(plugin, t));
        let span = tracing::debug_span!(
            "plugin_call",
            plugin = %p.reference,
            function,
            warm = warm.is_some()
        );
        async {
            let started = std::time::Instant::now();
            let (mut store, instance, calls) = match warm {
                Some(w) => (w.store, Some(w.instance), w.calls),
                None => (self.new_store(p)?, None, 0),
            };
            store
                .data_mut()
                .begin_call(assets.clone(), state::assets_budget(&p.manifest));
            if let Reuse::Observed(_) = reuse {
                store.data_mut().captured = Some(Vec::new());
            }
            let wall = Duration::from_millis(p.manifest.limits.timeout_ms);
            let computing = Arc::new(std::sync::atomic::AtomicBool::new(false));
            deadline_per_tick(&mut store, wall, computing.clone());
            let outcome = off_the_async_workers(
                &computing,
                tokio::time::timeout(wall, async {
                    let instance = match instance {
                        Some(i) => i,
                        None => p.pre.instantiate(&mut store).await?,
                    };
                    let r = body(&mut store, &instance).await?;
                    Ok((instance, r))
                }),
            )
            .await;
            let result = classify(p, function, &store, outcome.map_err(|_| ()));
            if let Reuse::Observed(watch) = reuse {
                let state = store.data_mut();
                watch.record(state.limiter.memory_peak, state.captured.take().unwrap_or_default());
            }
            let name = format!("{}@{}", p.manifest.name, p.manifest.version);
            metrics::histogram!(crate::metrics::PLUGIN_CALL_SECONDS, "plugin" => name.clone(), "function" => function)
                .record(started.elapsed().as_secs_f64());
            let (result, instance) = match result {
                Ok((instance, r)) => (finish(r), Some(instance)),
                Err(e) => (Err(e), None),
            };
            let sound = match &result {
                Ok(_) => true,
                Err(e) => e.reason == FailureReason::PluginError,
            };
            if let (Some(t), Some(instance), true) = (tenant, instance, sound) {
                self.warm.put(plugin, t, store, instance, calls + 1);
            }
            if let Err(e) = &result {
                metrics::counter!(crate::metrics::PLUGIN_CALL_FAILURES, "plugin" => name, "function" => function, "reason" => e.reason.as_str())
                    .increment(1);
            }
            result
        }
        .instrument(span)
        .await
    }
}

/// Guest code is checked at every epoch tick ([`limits::EPOCH_TICK_MS`]): past `limit` since
/// the call began it traps (`Trap::Interrupt`, reported as a timeout, as before). Once the
/// guest has been seen at two ticks, so it has computed for at least one whole tick, it is
/// marked `computing` and yields to the executor at every tick: that yield is where
/// [`off_the_async_workers`] takes the call off the async workers. A quick call that merely
/// straddles one tick stays where it is. The yield is tokio's, which lets the worker poll for
/// I/O before it resumes the call, so on a runtime where the call cannot leave (current-thread)
/// other tasks still take turns with it.
fn deadline_per_tick(
    store: &mut Store<PluginState>,
    limit: Duration,
    computing: Arc<std::sync::atomic::AtomicBool>,
) {
    let began = std::time::Instant::now();
    let mut ticks_seen = 0u32;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if began.elapsed() >= limit {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        ticks_seen = ticks_seen.saturating_add(1);
        if ticks_seen < 2 {
            return Ok(wasmtime::UpdateDeadline::Continue(1));
        }
        computing.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(wasmtime::UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
}

/// Runs a plugin call so that it never holds an async worker for more than a tick or two of
/// the guest computing.
///
/// A call starts where it was made, on the async worker: nearly every call (a render, a plan,
/// a send waiting on its provider) is over in microseconds or waits on I/O without computing,
/// and a hop to another thread for every call would cost more than most calls do. Once the
/// guest has computed for a whole tick (`computing`, set by [`deadline_per_tick`]), the rest of
/// the call runs on this thread as a blocking section (`block_in_place`): the runtime hands
/// its other tasks to another worker and the OS shares the cores between them and the busy
/// plugins, so one slow plugin, or sixteen, cannot hold up `/healthz` or anyone else's
/// request. Chosen over keeping every call on the workers and only yielding at each tick,
/// which made a probe wait behind every busy call's slice in turn: docs/performance.md,
/// "Plugin calls off the async workers". Only a multi-threaded runtime can do this; on a
/// current-thread one the call stays, taking turns with other tasks at every tick.
async fn off_the_async_workers<F: std::future::Future>(
    computing: &std::sync::atomic::AtomicBool,
    call: F,
) -> F::Output {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = call.as_mut().poll(cx) {
            return std::task::Poll::Ready(out);
        }
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        match runtime {
            Some(runtime) if computing.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::debug!("plugin call computing for over a tick: leaving the async workers");
                std::task::Poll::Ready(tokio::task::block_in_place(|| {
                    runtime.block_on(call.as_mut())
                }))
            }
            _ => std::task::Poll::Pending,
        }
    })
    .await
}

/// Turns the way a call ended into its result or a `CallError` with a reason code.
/// `Err(())` is the wall-clock timeout.
fn classify<R>(
    p: &LoadedPlugin,
    function: &'static str,
    store: &Store<PluginState>,
    outcome: Result<wasmtime::Result<R>, ()>,
) -> Result<R, CallError> {
    let err = |reason, message: String| CallError {
        plugin: p.reference.to_string(),
        function,
        reason,
        // A trap's text can quote the guest: kept to one line.
        message: state::one_line(&message).into_owned(),
    };
    let state = store.data();
    let denials = state.gate.denials.lock().unwrap().clone();
    if !denials.is_empty() {
        return Err(err(FailureReason::CapabilityDenied, denials.join("; ")));
    }
    if let Some(message) = &state.assets_exceeded {
        return Err(err(
            FailureReason::OutputTooLarge,
            format!("{message} ({} bytes)", state::assets_budget(&p.manifest)),
        ));
    }
    match outcome {
        Err(()) => Err(err(
            FailureReason::Timeout,
            format!("did not finish within {} ms", p.manifest.limits.timeout_ms),
        )),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            if state.limiter.memory_refused {
                return Err(err(
                    FailureReason::MemoryLimit,
                    format!(
                        "memory limit of {} MiB reached",
                        p.manifest.limits.memory_bytes >> 20
                    ),
                ));
            }
            if matches!(
                e.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            ) {
                return Err(err(
                    FailureReason::Timeout,
                    format!(
                        "CPU time limit of {} ms reached",
                        p.manifest.limits.timeout_ms
                    ),
                ));
            }
            let mut message = match e.downcast_ref::<wasmtime::Trap>() {
                // A trap's own text already starts with "wasm trap: ".
                Some(trap) => trap.to_string(),
                None => format!("{e:#}"),
            };
            let stderr = state.stderr_tail();
            if !stderr.is_empty() {
                message.push_str(&format!("; guest stderr: {stderr}"));
            }
            Err(err(FailureReason::Trap, message))
        }
    }
}
