//! Nothing here: the check is `tests/architecture.rs`, which reads the source as text.
