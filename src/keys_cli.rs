//! `belfry keys`: API keys for `belfry serve`. A secret is printed once, at creation; only
//! its hash is stored, so a lost secret is replaced (create another, revoke the old one).

use anyhow::{Result, bail};
use belfry::host::keys::{self, ApiKey};
use belfry::host::store::Db;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key acting in one tenant (created if new), or with --admin an operator key
    /// (tenants, keys, plugins; any tenant named by the Belfry-Tenant header). Prints the
    /// secret once.
    Create {
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        tenant: Option<String>,
        #[arg(long)]
        admin: bool,
        /// A name to recognise the key by in `keys list`.
        #[arg(long, default_value = "default")]
        name: String,
    },
    /// Every key (or one tenant's), revoked ones included; never a secret.
    List {
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revoke a key by id: it stops working at once.
    Revoke { id: String },
}

pub async fn run(db: &Db, command: KeysCommand, json: bool) -> Result<()> {
    match command {
        KeysCommand::Create {
            tenant,
            admin,
            name,
        } => {
            if admin == tenant.is_some() {
                bail!("give either --tenant T or --admin");
            }
            let (key, secret) = keys::create(db, tenant.as_deref(), &name).await?;
            if json {
                let mut out = serde_json::to_value(&key)?;
                out["secret"] = secret.into();
                println!("{out}");
            } else {
                print_key(&key);
                println!("secret: {secret}");
                eprintln!("(the secret is shown only now; belfry keeps only its hash)");
            }
        }
        KeysCommand::List { tenant } => {
            let list = keys::list(db, tenant.as_deref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no API keys");
            } else {
                for k in &list {
                    print_key(k);
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let key = keys::revoke(db, &id).await?;
            if json {
                println!("{}", serde_json::to_string(&key)?);
            } else {
                print_key(&key);
            }
        }
    }
    Ok(())
}

fn print_key(k: &ApiKey) {
    let scope = match &k.tenant {
        Some(t) => format!("tenant {t}"),
        None => "admin".to_string(),
    };
    let state = match &k.revoked_at {
        Some(t) => format!("revoked {t}"),
        None => "active".to_string(),
    };
    println!(
        "{}  {}…  {scope}  \"{}\"  created {}  {state}",
        k.id, k.prefix, k.name, k.created_at
    );
}
