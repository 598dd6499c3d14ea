//! `mtdesk`: serve the product, migrate the database, and operator tasks.

use anyhow::Context;
use clap::{Parser, Subcommand};
use mtdesk::settings::Settings;
use std::io::Read;
use std::process::ExitCode;

/// MT Desk: AI customer-service chatbots for Messenger, Instagram and WhatsApp, trained on your content.
///
/// Configuration comes from MTDESK_* environment variables (see the README).
#[derive(Parser)]
#[command(name = "mtdesk", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (dashboard, API, webhooks). Applies pending migrations first.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Operator tasks.
    Admin {
        #[command(subcommand)]
        command: Admin,
    },
}

#[derive(Subcommand)]
enum Admin {
    /// Accounts.
    Account {
        #[command(subcommand)]
        command: AdminAccount,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        command: AdminToken,
    },
    /// Quality measurements.
    Eval {
        #[command(subcommand)]
        command: AdminEval,
    },
    /// Deletion requests received by email: add, list, show, accept, execute, tick the sub-processor
    /// checklist.
    DeletionRequest {
        #[command(subcommand)]
        command: mtdesk::operator::DeletionRequestCommand,
    },
    /// The operator role (the privacy page `/operator/privacy`): grant or revoke it for an account.
    Operator {
        #[command(subcommand)]
        command: AdminOperator,
    },
    /// Messages from the public contact page: list, show, delete.
    Contact {
        #[command(subcommand)]
        command: mtdesk::operator::ContactCommand,
    },
    /// Plans and their limits: list, show, set (create or update), delete, import FILE.toml.
    Plan {
        #[command(subcommand)]
        command: mtdesk::plans_cli::PlanCommand,
    },
    /// Mails waiting in the outbox or failed (with --retry, failed ones are queued again).
    Outbox {
        #[arg(long)]
        retry: bool,
    },
    /// Process every knowledge source of a chatbot again (extract, chunk, embed), with a progress bar.
    Reindex {
        /// The chatbot's id.
        #[arg(long)]
        chatbot: String,
    },
}

#[derive(Subcommand)]
enum AdminEval {
    /// Retrieval quality on a labeled set: DIR holds corpus.jsonl, queries.jsonl and qrels.tsv (as in
    /// shared/bench-data/debian-faq-kb). Ingests through the real pipeline into a throwaway chatbot (a
    /// temporary database; nothing is written to yours) and prints JSON: nDCG@10, Recall@5, Recall@10 per
    /// mode (bm25, vector, hybrid), ingest time and query latencies.
    Retrieval {
        dir: std::path::PathBuf,
        /// The hybrid's vector weight (0–1); default: the tuned value.
        #[arg(long)]
        alpha: Option<f32>,
        /// Also report the hybrid at each of these weights (comma-separated), for tuning.
        #[arg(long, value_delimiter = ',')]
        sweep: Vec<f32>,
    },
}

#[derive(Subcommand)]
enum AdminAccount {
    /// Create an account; the password is read from standard input. By running this you confirm the
    /// person is 16 or older.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        company: String,
    },
    /// Delete an account and everything it owns at once, without its password: an account reported as a
    /// child's (under 16), or a deletion request received by email. Prints the deletion receipt.
    Delete {
        #[arg(long)]
        email: String,
        /// Why: `under-16` or `request` (recorded on the receipt).
        #[arg(long)]
        reason: String,
        /// Confirms the deletion (it cannot be undone).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum AdminOperator {
    /// Give the account the operator role.
    Grant {
        #[arg(long)]
        email: String,
    },
    /// Take the operator role back.
    Revoke {
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand)]
enum AdminToken {
    /// Create an API token for an account and print it (shown once).
    Create {
        #[arg(long)]
        email: String,
        /// What the token is for.
        #[arg(long, default_value = "created by mtdesk admin")]
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mtdesk: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mtdesk: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtdesk: {e:#}");
            // Input the operator has to fix (e.g. `admin plan set` with a bad value): 2, like clap's.
            if e.downcast_ref::<mtdesk::plans_cli::BadInput>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_logging() {
    let filter = std::env::var("MTDESK_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,tower_http=warn,sqlx=warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    // One TLS provider for the whole process: ring (no aws-lc-rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match command {
        Command::Serve => {
            mtdesk::log_startup(&settings);
            let state = mtdesk::build_state(&settings).await?;
            mtdesk::log_knowledge(&state);
            let ingestor = mtdesk::ingestor(&settings, &state);
            let workers = settings.meta.workers;
            let listener = tokio::net::TcpListener::bind(settings.bind)
                .await
                .with_context(|| format!("binding {} (MTDESK_BIND)", settings.bind))?;
            tracing::info!(address = %settings.bind, "dashboard at {}", settings.public_url);
            mtdesk::serve(state, Some(ingestor), workers, listener, shutdown_signal()).await
        }
        Command::Migrate => {
            let store = mtdesk::connect_store(&settings).await?;
            let applied = store.migrate().await?;
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!("applied migrations: {applied:?}");
            }
            Ok(())
        }
        Command::Admin { command } => admin(command, settings).await,
    }
}

async fn admin(command: Admin, settings: Settings) -> anyhow::Result<()> {
    if let Admin::Eval {
        command: AdminEval::Retrieval { dir, alpha, sweep },
    } = &command
    {
        return eval_retrieval(&settings, dir, *alpha, sweep).await;
    }
    // Plans need only the database: they can be fixed even while MTDESK_DEFAULT_PLAN names none.
    let command = match command {
        Admin::Plan { command } => {
            let store = mtdesk::open_store(&settings).await?;
            let out = mtdesk::plans_cli::run(&store, command).await;
            store.close().await;
            print!("{}", out?);
            return Ok(());
        }
        other => other,
    };
    let state = mtdesk::build_state(&settings).await?;
    match command {
        Admin::Eval { .. } => unreachable_eval()?,
        Admin::Plan { .. } => anyhow::bail!("plans are handled before the state is built"),
        Admin::Reindex { chatbot } => reindex(&settings, &state, &chatbot).await?,
        Admin::DeletionRequest { command } => {
            print!(
                "{}",
                mtdesk::operator::deletion_request(&state, command).await?
            )
        }
        Admin::Operator { command } => {
            let (email, grant) = match command {
                AdminOperator::Grant { email } => (email, true),
                AdminOperator::Revoke { email } => (email, false),
            };
            let account = state
                .store
                .find_account_by_email(&email)
                .await
                .map_err(|e| match e {
                    mtdesk_storage::StorageError::NotFound => {
                        anyhow::anyhow!("no account with email {email}")
                    }
                    other => anyhow::Error::new(other),
                })?;
            state.store.set_operator(&account.id, grant).await?;
            println!(
                "{} {} the operator role",
                account.email,
                if grant { "now has" } else { "no longer has" }
            );
        }
        Admin::Outbox { retry } => print!("{}", mtdesk::operator::outbox(&state, retry).await?),
        Admin::Contact { command } => {
            print!("{}", mtdesk::operator::contact(&state, command).await?)
        }
        Admin::Account {
            command:
                AdminAccount::Create {
                    email,
                    name,
                    company,
                },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let new = mtdesk_domain::NewAccount::parse(&name, &email, &company, password, true)
                .map_err(|e| anyhow::anyhow!("{}: {}", e.field, e.message))?;
            // The operator vouches for the address: verified at creation, no verification mail.
            let account = mtdesk_http::services::sign_up_verified(&state, new)
                .await
                .map_err(|e| anyhow::anyhow!(e.user_message()))?;
            println!("created account {} for {}", account.id, account.email);
        }
        Admin::Account {
            command: AdminAccount::Delete { email, reason, yes },
        } => {
            let path = match reason.as_str() {
                "under-16" => "operator_under_16",
                "request" => "operator_request",
                other => anyhow::bail!("--reason must be under-16 or request, not {other:?}"),
            };
            if !yes {
                anyhow::bail!("deleting an account cannot be undone: add --yes to confirm");
            }
            let account = state
                .store
                .find_account_by_email(&email)
                .await
                .map_err(|e| match e {
                    mtdesk_storage::StorageError::NotFound => {
                        anyhow::anyhow!("no account with email {email}")
                    }
                    other => anyhow::Error::new(other),
                })?;
            let done = mtdesk_http::services::erase_account(&state, &account.id, path)
                .await
                .map_err(|e| anyhow::anyhow!(e.user_message()))?;
            let deleted = &done.deleted;
            println!(
                "deleted account {} ({} rows: {}); receipt {}",
                account.id,
                deleted.total(),
                deleted
                    .tables
                    .iter()
                    .filter(|(_, n)| *n > 0)
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                done.receipt.id
            );
        }
        Admin::Token {
            command: AdminToken::Create { email, name },
        } => {
            let account = state
                .store
                .find_account_by_email(&email)
                .await
                .map_err(|e| match e {
                    mtdesk_storage::StorageError::NotFound => {
                        anyhow::anyhow!("no account with email {email}")
                    }
                    other => anyhow::Error::new(other),
                })?;
            let (_, secret) = mtdesk_http::services::create_token(&state, &account.id, &name)
                .await
                .map_err(|e| anyhow::anyhow!(e.user_message()))?;
            println!("{secret}");
        }
    }
    state.store.close().await;
    Ok(())
}

fn unreachable_eval() -> anyhow::Result<()> {
    anyhow::bail!("evaluation is handled before the state is built")
}

/// Runs the evaluation in a throwaway SQLite database and data directory, removed afterwards.
async fn eval_retrieval(
    settings: &Settings,
    dir: &std::path::Path,
    alpha: Option<f32>,
    sweep: &[f32],
) -> anyhow::Result<()> {
    if let Some(a) = alpha
        .iter()
        .chain(sweep)
        .find(|a| !(0.0..=1.0).contains(*a))
    {
        anyhow::bail!("--alpha and --sweep take weights between 0 and 1 (got {a})");
    }
    let data = mtdesk_knowledge::eval::Dataset::load(dir)?;
    let tmp = std::env::temp_dir().join(format!("mtdesk-eval-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = async {
        let store = mtdesk_storage::Store::open(&mtdesk_storage::DatabaseUrl::Sqlite(
            tmp.join("eval.sqlite"),
        ))
        .await?;
        let embedders = mtdesk::embedders(settings);
        if let Some(why) = embedders.local_missing() {
            eprintln!("mtdesk: note: no local embedding model ({why}); the vector leg will be empty. Run scripts/fetch-model.");
        }
        let knowledge = mtdesk_knowledge::Knowledge::new(store.clone(), embedders.clone());
        let ingestor = mtdesk_knowledge::ingest::Ingestor {
            store: store.clone(),
            files: mtdesk_storage::FileStore::new(&tmp),
            embedders,
            crawl: mtdesk::crawl_config(settings),
            limits: mtdesk_extract::Limits::default(),
            progress: None,
            // A throwaway evaluation account: no plan applies.
            storage_budget: None,
        };
        let report = mtdesk_knowledge::eval::run_with_sweep(
            &data,
            &ingestor,
            &knowledge,
            alpha.unwrap_or(mtdesk_knowledge::DEFAULT_ALPHA),
            sweep,
        )
        .await;
        store.close().await;
        report
    }
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    println!("{}", serde_json::to_string_pretty(&result?)?);
    Ok(())
}

/// Queues every source of the chatbot again and runs the jobs here, drawing a progress bar.
async fn reindex(
    settings: &Settings,
    state: &mtdesk_http::AppState,
    chatbot: &str,
) -> anyhow::Result<()> {
    let bot_id = mtdesk_domain::ChatbotId::parse(chatbot)
        .ok_or_else(|| anyhow::anyhow!("{chatbot:?} is not a chatbot id"))?;
    let bot = state
        .store
        .find_chatbot_any(&bot_id)
        .await
        .map_err(|e| match e {
            mtdesk_storage::StorageError::NotFound => {
                anyhow::anyhow!("no chatbot with id {chatbot}")
            }
            other => anyhow::Error::new(other),
        })?;
    let sources = state.store.list_sources(&bot.account_id, &bot.id).await?;
    // Note: draining runs whatever jobs are queued on this database, other chatbots' too (they would run
    // on the server's worker anyway); the report below counts only this chatbot's sources.
    let mut queued = 0;
    for s in &sources {
        if state
            .store
            .queue_source_sync(&bot.account_id, &s.id)
            .await?
        {
            queued += 1;
        }
    }
    let bar = indicatif::ProgressBar::new(sources.len() as u64);
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} sources  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut ingestor = mtdesk::ingestor(settings, state);
    let bar2 = bar.clone();
    ingestor.progress = Some(std::sync::Arc::new(move |_id, status, done, total| {
        bar2.set_message(format!("{} {done}/{total}", status.as_str()));
        if matches!(
            status,
            mtdesk_domain::SourceStatus::Ready | mtdesk_domain::SourceStatus::Failed
        ) {
            bar2.inc(1);
        }
    }));
    mtdesk_knowledge::worker::drain(&ingestor).await?;
    // A running server's worker may hold some of these jobs: wait until none of the sources is active.
    let mut after = state.store.list_sources(&bot.account_id, &bot.id).await?;
    while after.iter().any(|s| s.status.is_active()) {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        mtdesk_knowledge::worker::drain(&ingestor).await?;
        after = state.store.list_sources(&bot.account_id, &bot.id).await?;
    }
    bar.finish_and_clear();
    let failed: Vec<_> = after
        .iter()
        .filter(|s| s.status == mtdesk_domain::SourceStatus::Failed)
        .collect();
    println!(
        "reindexed {} of {} sources ({} queued, {} failed)",
        after.len() - failed.len(),
        after.len(),
        queued,
        failed.len()
    );
    for f in &failed {
        println!(
            "  failed: {}: {}",
            f.name,
            f.error.as_deref().unwrap_or("?")
        );
    }
    if !failed.is_empty() {
        anyhow::bail!("{} sources failed", failed.len());
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
