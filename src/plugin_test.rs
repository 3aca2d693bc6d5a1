//! `belfry plugin test`: the conformance suite of a plugin's world, and the author's own cases.
//!
//! Being built in this session; until then the command says so.

use crate::global::Global;
use anyhow::{Result, bail};
use clap::Args;

/// Not built yet.
#[derive(Args)]
pub(crate) struct TestArgs {}

pub(crate) async fn run(_g: &Global, _args: TestArgs) -> Result<()> {
    bail!("not built yet")
}
