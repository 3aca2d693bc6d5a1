//! Watching one call from outside, for a plugin author (`belfry plugin call`): what the guest
//! logged and the most linear memory its instance reached. Only a call made with
//! [`Reuse::Observed`](super::Reuse::Observed) is watched; the engine's own calls capture
//! nothing and pay nothing for it.

use serde::Serialize;
use std::sync::Mutex;

/// Where a watched call leaves what was seen; read it after the call with [`Observation::seen`].
#[derive(Debug, Default)]
pub struct Observation(Mutex<Observed>);

/// What a watched call did besides returning.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Observed {
    /// The largest size the instance's linear memory grew to, in bytes (a fresh instance, so
    /// this call's own).
    pub peak_memory_bytes: usize,
    /// The guest's log lines, in order, as the host's log gets them (cut and bounded the same).
    pub logs: Vec<LogLine>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub level: String,
    pub message: String,
}

impl Observation {
    pub fn seen(&self) -> Observed {
        self.0.lock().map(|o| o.clone()).unwrap_or_default()
    }

    pub(super) fn record(&self, peak_memory_bytes: usize, logs: Vec<LogLine>) {
        if let Ok(mut o) = self.0.lock() {
            *o = Observed {
                peak_memory_bytes,
                logs,
            };
        }
    }
}

/// Observations are told apart by identity: two are the same only if they are one.
impl PartialEq for Observation {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

impl Eq for Observation {}
