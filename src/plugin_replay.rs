//! `belfry plugin replay`: recorded events through a candidate plugin and the build that ran.
//!
//! Being built in this session; until then the command says so.

use crate::global::Global;
use anyhow::{Result, bail};
use clap::Args;

/// Not built yet.
#[derive(Args)]
pub(crate) struct ReplayArgs {}

pub(crate) async fn run(_g: &Global, _args: ReplayArgs) -> Result<()> {
    bail!("not built yet")
}
