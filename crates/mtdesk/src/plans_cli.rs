//! `mtdesk admin plan …`: plans are operator data. `list`, `show ID`, `set ID …` (create or update),
//! `delete ID` and `import FILE.toml`. Each returns the text to print. Bad input (an unknown plan, a value
//! out of range, a malformed file) is a [`BadInput`], which `main` turns into exit code 2; anything else
//! exits with 1. Messages go to stderr.
//!
//! These commands only open the database: they work even while `MTDESK_DEFAULT_PLAN` names a plan that
//! does not exist (which stops `serve`), so the operator can fix it.

use clap::Subcommand;
use mtdesk_billing::limits::human_bytes;
use mtdesk_billing::plans::validate;
use mtdesk_storage::{NewPlan, Plan, StorageError, Store};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Input the operator has to fix: exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl std::fmt::Display for BadInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

fn bad(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(BadInput(msg.into()))
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Every plan with its limits (-1 / "unlimited" = no limit).
    List,
    /// One plan.
    Show { id: String },
    /// Create a plan, or change the given fields of an existing one.
    Set {
        /// Slug: lowercase letters, digits, - and _ (e.g. `team`).
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// The Stripe Price id subscriptions to this plan use; "none" removes it (not purchasable).
        #[arg(long = "price-id")]
        price_id: Option<String>,
        /// Price per month in cents, as shown on the billing page.
        #[arg(long = "price-cents")]
        price_cents: Option<i64>,
        /// Three-letter currency code, lowercase (default usd).
        #[arg(long)]
        currency: Option<String>,
        /// Chatbots per account; -1 = unlimited.
        #[arg(long, allow_negative_numbers = true)]
        chatbots: Option<i64>,
        /// Answered messages per calendar month (UTC); -1 = unlimited.
        #[arg(long, allow_negative_numbers = true)]
        messages: Option<i64>,
        /// Knowledge storage in MB (uploaded files and crawled text); -1 = unlimited.
        #[arg(long = "storage-mb", allow_negative_numbers = true)]
        storage_mb: Option<i64>,
        /// Connected channels per account; -1 = unlimited.
        #[arg(long, allow_negative_numbers = true)]
        channels: Option<i64>,
        /// Order in lists.
        #[arg(long)]
        position: Option<i64>,
        /// Make it the plan of every account without a paid plan while billing is on.
        #[arg(long)]
        default: bool,
    },
    /// Delete a plan (refused while accounts use it or it is the default).
    Delete { id: String },
    /// Create or update every plan of a TOML file of `[[plan]]` tables (same fields as `set`, with
    /// `storage_mb` and `price_id`); nothing is written unless every plan is valid.
    Import { file: PathBuf },
}

const MB: i64 = 1024 * 1024;

fn limit(n: i64) -> String {
    if n < 0 {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

fn storage(n: i64) -> String {
    if n < 0 {
        "unlimited".into()
    } else {
        human_bytes(n)
    }
}

fn describe(p: &Plan) -> String {
    format!(
        "{id}{default}\n  name:      {name}\n  price:     {price} {currency}/month{price_id}\n  chatbots:  {chatbots}\n  messages:  {messages} per month\n  storage:   {storage}\n  channels:  {channels}\n  position:  {position}\n",
        id = p.id,
        default = if p.is_default { " (default)" } else { "" },
        name = p.name,
        price = format_args!("{}.{:02}", p.price_cents / 100, p.price_cents % 100),
        currency = p.currency,
        price_id = p
            .stripe_price_id
            .as_deref()
            .map(|s| format!(" (Stripe price {s})"))
            .unwrap_or_else(|| " (not purchasable)".into()),
        chatbots = limit(p.max_chatbots),
        messages = limit(p.max_messages_month),
        storage = storage(p.max_storage_bytes),
        channels = limit(p.max_channels),
        position = p.position,
    )
}

fn table(plans: &[Plan]) -> String {
    let mut out = format!(
        "{:<14} {:<16} {:>10} {:<16} {:>9} {:>10} {:>10} {:>9}\n",
        "ID", "NAME", "PRICE", "STRIPE PRICE", "CHATBOTS", "MESSAGES", "STORAGE", "CHANNELS"
    );
    for p in plans {
        out.push_str(&format!(
            "{:<14} {:<16} {:>10} {:<16} {:>9} {:>10} {:>10} {:>9}{}\n",
            p.id,
            p.name,
            format!(
                "{}.{:02} {}",
                p.price_cents / 100,
                p.price_cents % 100,
                p.currency
            ),
            p.stripe_price_id.as_deref().unwrap_or("-"),
            limit(p.max_chatbots),
            limit(p.max_messages_month),
            storage(p.max_storage_bytes),
            limit(p.max_channels),
            if p.is_default { "  (default)" } else { "" },
        ));
    }
    out
}

/// MB to bytes, -1 staying unlimited; refuses what does not fit.
fn mb_to_bytes(mb: i64) -> anyhow::Result<i64> {
    if mb < 0 {
        return Ok(mb);
    }
    mb.checked_mul(MB)
        .ok_or_else(|| bad(format!("storage: {mb} MB is too large")))
}

async fn find(store: &Store, id: &str) -> anyhow::Result<Plan> {
    match store.find_plan(id).await {
        Ok(p) => Ok(p),
        Err(StorageError::NotFound) => Err(bad(format!(
            "no plan {id:?} (see `mtdesk admin plan list`)"
        ))),
        Err(e) => Err(e.into()),
    }
}

async fn save(store: &Store, p: &NewPlan) -> anyhow::Result<Plan> {
    validate(p).map_err(|e| bad(format!("plan {}: --{e}", p.id)))?;
    match store.upsert_plan(p).await {
        Ok(plan) => Ok(plan),
        Err(StorageError::Conflict { .. }) => Err(bad(format!(
            "plan {}: --price-id {} is already used by another plan",
            p.id,
            p.stripe_price_id.as_deref().unwrap_or("")
        ))),
        Err(e) => Err(e.into()),
    }
}

/// One `[[plan]]` table of an import file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanToml {
    id: String,
    name: String,
    price_id: Option<String>,
    #[serde(default)]
    price_cents: i64,
    currency: Option<String>,
    chatbots: i64,
    messages: i64,
    storage_mb: i64,
    channels: i64,
    #[serde(default)]
    default: bool,
    position: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansToml {
    plan: Vec<PlanToml>,
}

/// Reads and checks an import file: every plan valid, ids unique, at most one default.
pub fn parse_import(text: &str) -> anyhow::Result<Vec<NewPlan>> {
    let file: PlansToml = toml::from_str(text).map_err(|e| bad(format!("{e}")))?;
    if file.plan.is_empty() {
        return Err(bad("the file has no [[plan]] table"));
    }
    let mut out: Vec<NewPlan> = Vec::new();
    for (i, p) in file.plan.into_iter().enumerate() {
        let plan = NewPlan {
            stripe_price_id: p
                .price_id
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            price_cents: p.price_cents,
            currency: p.currency.unwrap_or_else(|| "usd".into()),
            max_chatbots: p.chatbots,
            max_messages_month: p.messages,
            max_storage_bytes: mb_to_bytes(p.storage_mb)?,
            max_channels: p.channels,
            is_default: p.default,
            position: p.position.unwrap_or(i as i64),
            name: p.name.trim().to_string(),
            id: p.id.trim().to_string(),
        };
        validate(&plan).map_err(|e| bad(format!("plan {:?}: {e}", plan.id)))?;
        if out.iter().any(|o| o.id == plan.id) {
            return Err(bad(format!("plan {:?} appears twice", plan.id)));
        }
        out.push(plan);
    }
    if out.iter().filter(|p| p.is_default).count() > 1 {
        return Err(bad("more than one plan has default = true"));
    }
    Ok(out)
}

async fn import(store: &Store, file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(format!("cannot read {}: {e}", file.display())))?;
    let plans = parse_import(&text).map_err(|e| match e.downcast::<BadInput>() {
        Ok(BadInput(m)) => bad(format!("{}: {m}", file.display())),
        Err(other) => other,
    })?;
    let mut out = String::new();
    for p in &plans {
        let existed = store.find_plan(&p.id).await.is_ok();
        save(store, p).await?;
        out.push_str(&format!(
            "{} plan {}\n",
            if existed { "updated" } else { "created" },
            p.id
        ));
    }
    Ok(out)
}

/// Runs one `mtdesk admin plan` command against `store`; returns what to print.
pub async fn run(store: &Store, command: PlanCommand) -> anyhow::Result<String> {
    match command {
        PlanCommand::List => Ok(table(&store.list_plans().await?)),
        PlanCommand::Show { id } => Ok(describe(&find(store, &id).await?)),
        PlanCommand::Set {
            id,
            name,
            price_id,
            price_cents,
            currency,
            chatbots,
            messages,
            storage_mb,
            channels,
            position,
            default,
        } => {
            let existing = match store.find_plan(&id).await {
                Ok(p) => Some(p),
                Err(StorageError::NotFound) => None,
                Err(e) => return Err(e.into()),
            };
            let price_id = price_id.map(|s| s.trim().to_string());
            let price_id = match (price_id.as_deref(), &existing) {
                (Some("none") | Some(""), _) => None,
                (Some(_), _) => price_id,
                (None, Some(e)) => e.stripe_price_id.clone(),
                (None, None) => None,
            };
            let storage = storage_mb.map(mb_to_bytes).transpose()?;
            let p = match existing {
                Some(e) => NewPlan {
                    id: e.id,
                    name: name.unwrap_or(e.name),
                    stripe_price_id: price_id,
                    price_cents: price_cents.unwrap_or(e.price_cents),
                    currency: currency.unwrap_or(e.currency),
                    max_chatbots: chatbots.unwrap_or(e.max_chatbots),
                    max_messages_month: messages.unwrap_or(e.max_messages_month),
                    max_storage_bytes: storage.unwrap_or(e.max_storage_bytes),
                    max_channels: channels.unwrap_or(e.max_channels),
                    is_default: default,
                    position: position.unwrap_or(e.position),
                },
                None => {
                    let missing: Vec<&str> = [
                        ("--name", name.is_none()),
                        ("--chatbots", chatbots.is_none()),
                        ("--messages", messages.is_none()),
                        ("--storage-mb", storage.is_none()),
                        ("--channels", channels.is_none()),
                    ]
                    .iter()
                    .filter(|(_, m)| *m)
                    .map(|(f, _)| *f)
                    .collect();
                    if !missing.is_empty() {
                        return Err(bad(format!(
                            "plan {id:?} does not exist yet: give {} to create it",
                            missing.join(", ")
                        )));
                    }
                    let next = store
                        .list_plans()
                        .await?
                        .iter()
                        .map(|p| p.position + 1)
                        .max()
                        .unwrap_or(0);
                    NewPlan {
                        id: id.trim().to_string(),
                        name: name.unwrap_or_default(),
                        stripe_price_id: price_id,
                        price_cents: price_cents.unwrap_or(0),
                        currency: currency.unwrap_or_else(|| "usd".into()),
                        max_chatbots: chatbots.unwrap_or(-1),
                        max_messages_month: messages.unwrap_or(-1),
                        max_storage_bytes: storage.unwrap_or(-1),
                        max_channels: channels.unwrap_or(-1),
                        is_default: default,
                        position: position.unwrap_or(next),
                    }
                }
            };
            let saved = save(store, &p).await?;
            Ok(format!("saved plan\n{}", describe(&saved)))
        }
        PlanCommand::Delete { id } => {
            find(store, &id).await?;
            match store.delete_plan(&id).await {
                Ok(()) => Ok(format!("deleted plan {id}\n")),
                Err(StorageError::Conflict {
                    field: "is_default",
                }) => Err(bad(format!(
                    "plan {id} is the default plan: make another plan the default first (`mtdesk admin plan set OTHER --default`)"
                ))),
                Err(StorageError::Conflict { .. }) => {
                    let n = store.count_accounts_on_plan(&id).await?;
                    Err(bad(format!(
                        "plan {id} is used by {n} account(s): it cannot be deleted while accounts are on it"
                    )))
                }
                Err(e) => Err(e.into()),
            }
        }
        PlanCommand::Import { file } => import(store, &file).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_files_are_checked_before_anything_is_written() {
        let ok = parse_import(
            r#"
[[plan]]
id = "team"
name = "Team"
price_id = "price_team"
price_cents = 4900
chatbots = 5
messages = 5000
storage_mb = 200
channels = 5
default = true

[[plan]]
id = "solo"
name = "Solo"
chatbots = 1
messages = -1
storage_mb = -1
channels = 1
"#,
        )
        .expect("valid file");
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[0].max_storage_bytes, 200 * MB);
        assert_eq!(ok[0].currency, "usd");
        assert!(ok[0].is_default);
        assert_eq!(ok[1].stripe_price_id, None);
        assert_eq!(ok[1].max_storage_bytes, -1);
        assert_eq!(ok[1].position, 1);

        for (bad_file, needle) in [
            ("", "plan"),
            ("[[plan]]\nid = \"x\"\n", "missing field"),
            (
                "[[plan]]\nid = \"x\"\nname = \"X\"\nchatbots = 1\nmessages = 1\nstorage_mb = 1\nchannels = 1\ncolour = \"red\"\n",
                "unknown field",
            ),
            (
                "[[plan]]\nid = \"Bad Id\"\nname = \"X\"\nchatbots = 1\nmessages = 1\nstorage_mb = 1\nchannels = 1\n",
                "id",
            ),
            (
                "[[plan]]\nid = \"x\"\nname = \"X\"\nchatbots = -4\nmessages = 1\nstorage_mb = 1\nchannels = 1\n",
                "chatbots",
            ),
            (
                "[[plan]]\nid = \"x\"\nname = \"X\"\nchatbots = 1\nmessages = 1\nstorage_mb = 1\nchannels = 1\n[[plan]]\nid = \"x\"\nname = \"Y\"\nchatbots = 1\nmessages = 1\nstorage_mb = 1\nchannels = 1\n",
                "twice",
            ),
        ] {
            let err = parse_import(bad_file).expect_err(bad_file);
            assert!(err.downcast_ref::<BadInput>().is_some(), "{err}");
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        }
    }
}
