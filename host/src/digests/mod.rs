//! Digests: deliveries held back and collapsed into one message per recipient and window.
//!
//! - [`rules`]: digest rules — which held deliveries a rule takes (channel, notifier, category,
//!   digest key), how it groups them and its window; versioned, a published version never
//!   changes; tenant-scoped;
//! - [`window`]: the window maths — fixed windows aligned to the Unix epoch, or from one local
//!   time of day to the next in a time zone (DST as in quiet hours).
//!
//! - [`buckets`]: held deliveries per (tenant, rule, recipient, channel, grouping value,
//!   window), joined once in the trigger's transaction and emitted exactly once as a digest
//!   delivery when the window ends (or the bucket is full).
//!
//! - [`cadence`]: a recipient's own cadence per category (instant, hourly, daily, weekly),
//!   which replaces the window of the rule that takes their held deliveries.

pub mod buckets;
pub mod cadence;
pub mod emit;
pub mod rules;
pub mod window;

pub use buckets::{Bucket, BucketError, BucketFilter, BucketStatus, Emission};
pub use cadence::{Cadence, CadenceError, CadenceSetting};
pub use rules::{DigestRule, GroupBy, Lookup, RuleError, RuleFilter, RuleSpec};
pub use window::{Window, WindowError};
