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
//! Recipient cadences build on these (issue 6, in progress).

pub mod buckets;
pub mod rules;
pub mod window;

pub use buckets::{Bucket, BucketError, BucketFilter, Emission};
pub use rules::{DigestRule, GroupBy, Lookup, RuleError, RuleFilter, RuleSpec};
pub use window::{Window, WindowError};
