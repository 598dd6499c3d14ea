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
            ExitCode::FAILURE
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
            let listener = tokio::net::TcpListener::bind(settings.bind)
                .await
                .with_context(|| format!("binding {} (MTDESK_BIND)", settings.bind))?;
            tracing::info!(address = %settings.bind, "dashboard at {}", settings.public_url);
            mtdesk::serve(state, listener, shutdown_signal()).await
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
    let state = mtdesk::build_state(&settings).await?;
    match command {
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
            let account = mtdesk_http::services::sign_up(&state, new)
                .await
                .map_err(|e| anyhow::anyhow!(e.user_message()))?;
            println!("created account {} for {}", account.id, account.email);
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
