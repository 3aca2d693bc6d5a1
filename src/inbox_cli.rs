//! `belfry inbox`: a recipient's in-app items, and marking one read (which stops a fallback
//! of its notification, such as the email sent only if the item stays unread).

use anyhow::Result;
use belfry::host::inbox::{self, InboxItem};
use belfry::host::store::Db;
use belfry::host::trigger::DEFAULT_TENANT;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum InboxCommand {
    /// A recipient's items, newest first.
    List {
        #[arg(long)]
        recipient: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Mark one of a recipient's items read (reading again keeps the first time).
    Read {
        item_id: String,
        #[arg(long)]
        recipient: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

pub async fn run(db: &Db, command: InboxCommand, json: bool) -> Result<()> {
    match command {
        InboxCommand::List { recipient, tenant } => {
            let items = inbox::list(db, &tenant, &recipient).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&items)?);
            } else if items.is_empty() {
                println!("recipient {recipient} of tenant {tenant} has no inbox items");
            } else {
                for item in &items {
                    print_item(item);
                }
            }
        }
        InboxCommand::Read {
            item_id,
            recipient,
            tenant,
        } => {
            let item = inbox::mark_read(db, &tenant, &recipient, &item_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&item)?);
            } else {
                print_item(&item);
            }
        }
    }
    Ok(())
}

fn print_item(item: &InboxItem) {
    let state = match &item.read_at {
        Some(at) => format!("read {at}"),
        None => "unread".to_string(),
    };
    println!(
        "{}  {}  {:<24}  {}\n    {}",
        item.id, item.created_at, state, item.headline, item.body
    );
}
