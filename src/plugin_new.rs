//! `belfry plugin new`: a plugin project to start from.
//!
//! Being built in this session; until then the command says so.

use crate::global::Global;
use anyhow::{Result, bail};
use clap::Args;

/// Not built yet.
#[derive(Args)]
pub(crate) struct NewArgs {}

pub(crate) fn run(_g: &Global, _args: NewArgs) -> Result<()> {
    bail!("not built yet")
}
