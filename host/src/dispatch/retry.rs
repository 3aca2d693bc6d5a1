//! When to try a failed send again: exponential backoff with jitter, the provider's
//! retry-after, and when to give up.

use rand::Rng;
use std::time::Duration;

/// How a delivery is retried. The default makes 8 attempts over about 30 minutes:
/// waits of 20 s, 40 s, 80 s, 160 s, 320 s, 10 min, 10 min (each ± 20 %).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. A lease lost to a crash counts as an attempt, so a
    /// job that kills its worker every time cannot loop for ever.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with every further failure.
    pub base: Duration,
    /// No wait is longer than this (before jitter).
    pub max_delay: Duration,
    /// Each wait is spread uniformly over ± this fraction, so retries after a provider outage
    /// do not arrive together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(20),
            max_delay: Duration::from_secs(600),
            jitter: 0.2,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RetryPolicyError {
    #[error("max_attempts must be at least 1")]
    NoAttempts,
    #[error("jitter must be between 0 and 1, got {0}")]
    Jitter(f64),
    #[error("max_delay ({max:?}) is shorter than base ({base:?})")]
    Delays { base: Duration, max: Duration },
}

impl RetryPolicy {
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(RetryPolicyError::Jitter(self.jitter));
        }
        if self.max_delay < self.base {
            return Err(RetryPolicyError::Delays {
                base: self.base,
                max: self.max_delay,
            });
        }
        Ok(())
    }

    /// The un-jittered wait after failed attempt `attempt` (1-based).
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.base
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// The wait after failed attempt `attempt`, jittered; `None` when no attempt is left.
    /// A provider's `retry_after` is a floor: the next try is never earlier than it asked.
    pub fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let nominal = self.nominal_delay(attempt).as_secs_f64();
        let spread = rand::rng().random_range(-self.jitter..=self.jitter);
        let jittered = Duration::from_secs_f64((nominal * (1.0 + spread)).max(0.0));
        Some(match retry_after {
            Some(floor) => jittered.max(floor),
            None => jittered,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_spends_about_thirty_minutes_on_eight_attempts() {
        let p = RetryPolicy::default();
        let total: Duration = (1..p.max_attempts).map(|a| p.nominal_delay(a)).sum();
        assert_eq!(
            total,
            Duration::from_secs(20 + 40 + 80 + 160 + 320 + 600 + 600)
        );
        assert!(total > Duration::from_secs(25 * 60) && total < Duration::from_secs(35 * 60));
        assert_eq!(
            p.next_delay(8, None),
            None,
            "the eighth failure is the last"
        );
    }

    #[test]
    fn delays_stay_within_the_jitter_bounds_and_grow() {
        let p = RetryPolicy::default();
        for attempt in 1..p.max_attempts {
            let nominal = p.nominal_delay(attempt).as_secs_f64();
            let mut seen_low = false;
            let mut seen_high = false;
            for _ in 0..2000 {
                let d = p.next_delay(attempt, None).unwrap().as_secs_f64();
                assert!(
                    d >= nominal * 0.8 - 1e-9 && d <= nominal * 1.2 + 1e-9,
                    "{d}"
                );
                seen_low |= d < nominal * 0.95;
                seen_high |= d > nominal * 1.05;
            }
            assert!(seen_low && seen_high, "jitter spreads both ways");
        }
        assert!(p.nominal_delay(2) == 2 * p.nominal_delay(1));
        assert_eq!(p.nominal_delay(40), p.max_delay);
    }

    #[test]
    fn retry_after_is_a_floor() {
        let p = RetryPolicy::default();
        let floor = Duration::from_secs(3600);
        for _ in 0..100 {
            assert!(p.next_delay(1, Some(floor)).unwrap() >= floor);
        }
        // A short retry-after does not shorten the backoff.
        assert!(p.next_delay(3, Some(Duration::from_secs(1))).unwrap() >= Duration::from_secs(64));
    }

    #[test]
    fn bad_policies_are_named() {
        let bad = RetryPolicy {
            max_attempts: 0,
            ..Default::default()
        };
        assert_eq!(bad.validate(), Err(RetryPolicyError::NoAttempts));
        let bad = RetryPolicy {
            jitter: 1.5,
            ..Default::default()
        };
        assert_eq!(bad.validate(), Err(RetryPolicyError::Jitter(1.5)));
    }
}
