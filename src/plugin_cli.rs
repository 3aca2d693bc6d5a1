//! `belfry plugin`: list, check and pack plugins.

use crate::global::{Global, runtime_config};
use crate::{output, pack_cli, plugin_call, plugin_new, plugin_replay, plugin_test};
use anyhow::{Result, bail};
use belfry::host::plugins::PluginRuntime;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(crate) enum PluginCommand {
    /// List the bundled plugins and those in --plugins.
    List,
    /// Load a component, check its world, version and manifest, call `describe` for a
    /// notifier, and print what it is granted.
    Check {
        /// A package folder (manifest.toml, plugin.wasm, assets/), or a plugin's .wasm with
        /// its manifest NAME.toml beside it.
        path: PathBuf,
    },
    /// Write one archive (gzip-compressed tar) of a plugin package folder (manifest.toml,
    /// plugin.wasm, assets/), for `POST /v1/plugins`; see docs/plugins/packages.md.
    Pack {
        /// The package folder; with --component, a plugin's source folder (its manifest.toml
        /// and assets/ are packed).
        dir: PathBuf,
        /// The component to pack instead of DIR/plugin.wasm (a build of a source folder).
        #[arg(long)]
        component: Option<PathBuf>,
        /// Where to write the archive [default: NAME-VERSION.tar.gz].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    New(plugin_new::NewArgs),
    Test(plugin_test::TestArgs),
    Call(plugin_call::CallArgs),
    Replay(plugin_replay::ReplayArgs),
}

pub(crate) async fn run(g: &Global, command: PluginCommand) -> Result<()> {
    match command {
        PluginCommand::List => {
            let runtime = PluginRuntime::new(runtime_config(g)?)?;
            let loaded = belfry::host::plugins::load_all(
                &runtime,
                belfry::BUNDLED,
                g.plugins_dir.as_deref(),
            )
            .await?;
            // Uploads recorded in the database are in force on every node that shares it:
            // list them as `serve` would, or the routes shown here could contradict
            // `/v1/plugins`. No database yet means nothing was uploaded; one that cannot be
            // opened is said, and the list is the rest.
            let mut plugins = loaded.plugins;
            if belfry::host::store::require_existing(&g.database_url).is_ok() {
                let uploaded = async {
                    let db = belfry::host::store::open(&g.database_url).await?;
                    belfry::host::plugins::uploads::load_recorded(&db, &runtime).await
                };
                match uploaded.await {
                    Ok(uploaded) => {
                        plugins = belfry::host::plugins::uploads::apply(plugins, uploaded)
                    }
                    Err(e) => eprintln!(
                        "warning: plugins uploaded to {} are not shown: {e}",
                        g.database_url
                    ),
                }
            }
            // The routes and renderer choices as `serve` would make them from these plugins.
            let registry = belfry::host::plugins::Registry::with_choices(
                plugins,
                &belfry::host::plugins::Choices {
                    routes: belfry::config::routes(&g.routes).map_err(anyhow::Error::msg)?,
                    renderer: g.renderer.clone(),
                },
            )?
            .with_broken(loaded.broken);
            output::print_plugins(&registry, g.json)
        }
        PluginCommand::Check { path } => {
            if !path.is_dir() && path.extension().is_none_or(|e| e != "wasm") {
                bail!(
                    "{}: expected a package folder, or a .wasm file with its manifest .toml \
                     beside it",
                    path.display()
                );
            }
            let runtime = PluginRuntime::new(runtime_config(g)?)?;
            let plugin = runtime.load_path(&path).await?;
            output::print_check(&plugin, g.json)
        }
        PluginCommand::Pack {
            dir,
            component,
            output,
        } => pack_cli::pack(&dir, component.as_deref(), output.as_deref(), g.json),
        PluginCommand::New(args) => plugin_new::run(g, args),
        PluginCommand::Test(args) => plugin_test::run(g, args).await,
        PluginCommand::Call(args) => plugin_call::run(g, args).await,
        PluginCommand::Replay(args) => plugin_replay::run(g, args).await,
    }
}
