//! A workflow as a notifier declares it (WIT 0.4.0 `describe().workflow`): part of what a
//! notifier says about itself, so the contract carries it, with the checks a declaration must
//! pass before the notifier is accepted. Running it is `crate::workflows`'.

use crate::content::Channel;
use serde::{Deserialize, Serialize};

/// The most steps a workflow may have.
pub const MAX_STEPS: usize = 20;
/// The most signals a wait may list, per list.
pub const MAX_SIGNALS: usize = 10;
/// The longest signal name.
pub const MAX_SIGNAL_NAME: usize = 100;
/// The longest wait: 30 days.
pub const MAX_WAIT_MS: u64 = 30 * 24 * 3600 * 1000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub key: String,
    pub version: String,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub key: String,
    pub channel: Channel,
    /// `None`: the step follows the previous one at once.
    pub wait: Option<Wait>,
    /// The first branch whose outcome matches decides what follows this step.
    pub on_outcome: Vec<Branch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    pub after_ms: u64,
    /// Signals that end the run during the wait, for good.
    pub cancel_on: Vec<String>,
    /// Signals that end the wait early: the step is sent at once.
    pub resume_on: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    pub outcome: StepOutcome,
    pub then: Target,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Goto(String),
    Stop,
}

/// How a step's delivery ended, as a branch sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOutcome {
    Delivered,
    Suppressed,
    /// In a branch: any failure. As an outcome: a failure that is neither of the two below.
    Failed,
    RetriesExhausted,
    PermanentlyFailed,
    /// The provider reported a hard bounce after the send (provider feedback).
    Bounced,
    /// The recipient complained (marked it as spam) after the send. Not declarable (WIT
    /// 0.4.0 has no such outcome): a branch on `bounced` takes it, as the address is
    /// suppressed for both and neither reached a willing reader.
    Complained,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Delivered => "delivered",
            StepOutcome::Suppressed => "suppressed",
            StepOutcome::Failed => "failed",
            StepOutcome::RetriesExhausted => "retries_exhausted",
            StepOutcome::PermanentlyFailed => "permanently_failed",
            StepOutcome::Bounced => "bounced",
            StepOutcome::Complained => "complained",
        }
    }

    /// Whether a branch declared for `self` takes the actual outcome `actual`: `failed`
    /// takes every failure, `bounced` a complaint too, the others only themselves.
    pub fn takes(self, actual: StepOutcome) -> bool {
        self == actual
            || (self == StepOutcome::Failed
                && matches!(
                    actual,
                    StepOutcome::RetriesExhausted | StepOutcome::PermanentlyFailed
                ))
            || (self == StepOutcome::Bounced && actual == StepOutcome::Complained)
    }
}

impl std::fmt::Display for StepOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A declaration that reuses a published `(key, version)` with other content.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(
        "workflow `{key}` version {version} is published and cannot change ({differences}; first used by {first_by}); declare the change as a new version"
    )]
    Changed {
        key: String,
        version: String,
        /// What differs from the published definition.
        differences: String,
        /// The notifier build whose run first used it.
        first_by: String,
    },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn is_key(s: &str, extra: &[char]) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || c == '_'
                || extra.contains(&c)
        })
}

impl Workflow {
    /// The step with this key and its position.
    pub fn step(&self, key: &str) -> Option<(usize, &Step)> {
        self.steps.iter().enumerate().find(|(_, s)| s.key == key)
    }

    /// What a declaration must satisfy, checked when the notifier is loaded so that no run
    /// can start from a broken one. `channels` is the notifier's `describe().channels`. The
    /// message names the field and the step.
    pub fn validate(&self, channels: &[Channel]) -> Result<(), String> {
        let at = "describe().workflow";
        if !is_key(&self.key, &['.']) {
            return Err(format!(
                "{at}.key must be 1 to 64 bytes of a-z, 0-9, `-`, `_`, `.`, got {:?}",
                self.key
            ));
        }
        if self.version.trim().is_empty() {
            return Err(format!("{at}.version is empty"));
        }
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(format!(
                "{at}.steps must hold 1 to {MAX_STEPS} steps, got {}",
                self.steps.len()
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let here = format!("{at}.steps[{i}]");
            if !is_key(&step.key, &[]) {
                return Err(format!(
                    "{here}.key must be 1 to 64 bytes of a-z, 0-9, `-`, `_`, got {:?}",
                    step.key
                ));
            }
            if let Some(first) = self.steps[..i].iter().position(|s| s.key == step.key) {
                return Err(format!(
                    "{here}.key `{}` is a duplicate of steps[{first}]",
                    step.key
                ));
            }
            if !channels.contains(&step.channel) {
                return Err(format!(
                    "{here} (`{}`): channel {} is not among describe().channels",
                    step.key, step.channel
                ));
            }
            // Deliveries are unique per (notification, channel); see docs/workflows.md.
            if let Some(first) = self.steps[..i]
                .iter()
                .position(|s| s.channel == step.channel)
            {
                return Err(format!(
                    "{here} (`{}`): channel {} is already used by steps[{first}] (`{}`); a workflow uses each channel at most once",
                    step.key, step.channel, self.steps[first].key
                ));
            }
            if let Some(w) = &step.wait {
                if i == 0 {
                    return Err(format!(
                        "{here} (`{}`): the first step cannot wait; trigger with a send time instead",
                        step.key
                    ));
                }
                if w.after_ms == 0 || w.after_ms > MAX_WAIT_MS {
                    return Err(format!(
                        "{here} (`{}`): wait.after-ms must be 1 to {MAX_WAIT_MS} (30 days), got {}",
                        step.key, w.after_ms
                    ));
                }
                for (list, names) in [("cancel-on", &w.cancel_on), ("resume-on", &w.resume_on)] {
                    if names.len() > MAX_SIGNALS {
                        return Err(format!(
                            "{here} (`{}`): wait.{list} lists {} signals, at most {MAX_SIGNALS}",
                            step.key,
                            names.len()
                        ));
                    }
                    if let Some(bad) = names
                        .iter()
                        .find(|n| n.trim().is_empty() || n.len() > MAX_SIGNAL_NAME)
                    {
                        return Err(format!(
                            "{here} (`{}`): wait.{list} has a signal name {bad:?}; names are 1 to {MAX_SIGNAL_NAME} bytes",
                            step.key
                        ));
                    }
                }
                if let Some(both) = w.cancel_on.iter().find(|n| w.resume_on.contains(n)) {
                    return Err(format!(
                        "{here} (`{}`): signal `{both}` is in both wait.cancel-on and wait.resume-on",
                        step.key
                    ));
                }
            }
            for (b, branch) in step.on_outcome.iter().enumerate() {
                if let Target::Goto(target) = &branch.then {
                    match self.step(target) {
                        None => {
                            return Err(format!(
                                "{here} (`{}`).on-outcome[{b}]: goto `{target}`, which is not a step of this workflow",
                                step.key
                            ));
                        }
                        // Forward only: a run ends after at most one pass over its steps.
                        Some((t, _)) if t <= i => {
                            return Err(format!(
                                "{here} (`{}`).on-outcome[{b}]: goto `{target}` goes back; a branch may only go to a later step",
                                step.key
                            ));
                        }
                        Some(_) => {}
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journey() -> Workflow {
        Workflow {
            key: "task-assigned".into(),
            version: "1".into(),
            steps: vec![
                Step {
                    key: "inbox".into(),
                    channel: Channel::InApp,
                    wait: None,
                    on_outcome: vec![],
                },
                Step {
                    key: "email".into(),
                    channel: Channel::Email,
                    wait: Some(Wait {
                        after_ms: 3_600_000,
                        cancel_on: vec!["notification.read".into()],
                        resume_on: vec![],
                    }),
                    on_outcome: vec![Branch {
                        outcome: StepOutcome::Delivered,
                        then: Target::Stop,
                    }],
                },
                Step {
                    key: "sms".into(),
                    channel: Channel::Sms,
                    wait: None,
                    on_outcome: vec![],
                },
            ],
        }
    }

    const CHANNELS: &[Channel] = &[Channel::InApp, Channel::Email, Channel::Sms];

    #[test]
    fn a_good_declaration_passes() {
        journey().validate(CHANNELS).unwrap();
    }

    #[test]
    fn each_bad_declaration_is_named() {
        type Break = fn(&mut Workflow);
        let cases: &[(Break, &str)] = &[
            (
                |w| w.key = "Bad Key".into(),
                "describe().workflow.key must be",
            ),
            (|w| w.version = " ".into(), "version is empty"),
            (|w| w.steps.clear(), "steps must hold 1 to 20"),
            (
                |w| w.steps[2].key = "email".into(),
                "steps[2].key `email` is a duplicate of steps[1]",
            ),
            (
                |w| w.steps[1].on_outcome[0].then = Target::Goto("nowhere".into()),
                "goto `nowhere`, which is not a step",
            ),
            (
                |w| w.steps[1].on_outcome[0].then = Target::Goto("inbox".into()),
                "goto `inbox` goes back",
            ),
            (
                |w| w.steps[1].wait.as_mut().unwrap().after_ms = 0,
                "wait.after-ms must be 1 to",
            ),
            (
                |w| w.steps[1].wait.as_mut().unwrap().after_ms = MAX_WAIT_MS + 1,
                "wait.after-ms must be 1 to",
            ),
            (
                |w| {
                    w.steps[0].wait = Some(Wait {
                        after_ms: 1,
                        cancel_on: vec![],
                        resume_on: vec![],
                    })
                },
                "the first step cannot wait",
            ),
            (
                |w| w.steps[1].wait.as_mut().unwrap().cancel_on = vec!["s".into(); 11],
                "lists 11 signals, at most 10",
            ),
            (
                |w| w.steps[1].wait.as_mut().unwrap().resume_on = vec!["".into()],
                "signal name \"\"",
            ),
            (
                |w| w.steps[1].wait.as_mut().unwrap().resume_on = vec!["notification.read".into()],
                "in both wait.cancel-on and wait.resume-on",
            ),
            (
                |w| w.steps[2].channel = Channel::Email,
                "channel email is already used by steps[1]",
            ),
            (
                |w| w.steps[2].channel = Channel::Push,
                "channel push is not among describe().channels",
            ),
        ];
        for (i, (break_it, expected)) in cases.iter().enumerate() {
            let mut w = journey();
            break_it(&mut w);
            let err = w.validate(CHANNELS).expect_err(&format!("case {i} passed"));
            assert!(err.contains(expected), "case {i}: {err}");
        }
    }

    #[test]
    fn failed_takes_every_failure() {
        assert!(StepOutcome::Failed.takes(StepOutcome::RetriesExhausted));
        assert!(StepOutcome::Failed.takes(StepOutcome::PermanentlyFailed));
        assert!(StepOutcome::Failed.takes(StepOutcome::Failed));
        assert!(!StepOutcome::Failed.takes(StepOutcome::Suppressed));
        assert!(!StepOutcome::PermanentlyFailed.takes(StepOutcome::RetriesExhausted));
    }

    #[test]
    fn bounced_takes_a_complaint_and_no_failure() {
        assert!(StepOutcome::Bounced.takes(StepOutcome::Bounced));
        assert!(StepOutcome::Bounced.takes(StepOutcome::Complained));
        assert!(!StepOutcome::Failed.takes(StepOutcome::Bounced));
        assert!(!StepOutcome::Bounced.takes(StepOutcome::Delivered));
    }
}
