//! `belfry plugin call`: one function of a plugin, with its output, logs and resource use.
//!
//! Being built in this session; until then the command says so.

use crate::global::Global;
use anyhow::{Result, bail};
use clap::Args;

/// Not built yet.
#[derive(Args)]
pub(crate) struct CallArgs {}

pub(crate) async fn run(_g: &Global, _args: CallArgs) -> Result<()> {
    bail!("not built yet")
}
