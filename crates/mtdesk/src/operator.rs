//! Operator commands for privacy work: `mtdesk admin deletion-request …` (requests received by email) and
//! `mtdesk admin outbox` (mails waiting or failed). Each returns the text to print; errors are the
//! operator's to read (exit code 1 with the message).

use anyhow::Context;
use clap::Subcommand;
use mtdesk_domain::privacy_request::RequestScope;
use mtdesk_email::messages::format_utc;
use mtdesk_http::AppState;
use mtdesk_privacy::PrivacyError;
use mtdesk_privacy::requests::{NewRequest, RequestView};
use mtdesk_storage::PrivacyRequest;

#[derive(Debug, Subcommand)]
pub enum DeletionRequestCommand {
    /// Record a deletion request received by email; the acknowledgement (deadline: 30 days) is queued at
    /// once.
    Add {
        /// The requester's address (the confirmation goes there; "all" and "meta" act on the account
        /// registered with it).
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// all (the whole account), meta (Meta data only: every connected channel) or other.
        #[arg(long, default_value = "all")]
        scope: String,
        /// What to delete, in the requester's words (required for --scope other).
        #[arg(long)]
        description: Option<String>,
        /// When the mail arrived (RFC 3339, e.g. 2026-12-01T09:30:00Z); the deadlines count from here.
        /// Default: now.
        #[arg(long)]
        received: Option<String>,
    },
    /// Open requests by deadline (with --all, completed ones too).
    List {
        #[arg(long)]
        all: bool,
    },
    /// One request with its sub-processor checklist.
    Show { id: String },
    /// Accept a draft from the contact form (it is acknowledged then).
    Accept { id: String },
    /// Carry out a request now, then confirm it to the requester by email with what was deleted.
    Execute {
        id: String,
        /// Confirms the deletion (it cannot be undone).
        #[arg(long)]
        yes: bool,
        /// Who executes it (recorded).
        #[arg(long, default_value = "operator")]
        by: String,
    },
    /// Tick a sub-processor's line of an executed request's checklist.
    Tick {
        id: String,
        /// The sub-processor's id (see `show`).
        processor: String,
        /// done, not_applicable or open.
        #[arg(long, default_value = "done")]
        status: String,
        /// Who did it.
        #[arg(long)]
        by: String,
        #[arg(long)]
        note: Option<String>,
    },
}

fn privacy_err(e: PrivacyError) -> anyhow::Error {
    match e {
        PrivacyError::NotFound => anyhow::anyhow!("no such deletion request"),
        PrivacyError::Invalid(d) => anyhow::anyhow!("{}: {}", d.field, d.message),
        other => anyhow::Error::new(other),
    }
}

fn parse_time(raw: &str) -> anyhow::Result<i64> {
    let t = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("--received {raw:?} is not an RFC 3339 time such as 2026-12-01T09:30:00Z")
        })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Runs one `deletion-request` command and returns what to print.
pub async fn deletion_request(
    state: &AppState,
    cmd: DeletionRequestCommand,
) -> anyhow::Result<String> {
    let engine = &state.privacy;
    let out = match cmd {
        DeletionRequestCommand::Add {
            email,
            name,
            scope,
            description,
            received,
        } => {
            let scope = RequestScope::parse(&scope)
                .map_err(|e| anyhow::anyhow!("--scope {}", e.message))?;
            let received_at = received.as_deref().map(parse_time).transpose()?;
            let r = engine
                .add_request(NewRequest {
                    email,
                    name,
                    scope,
                    description,
                    origin: "email",
                    received_at,
                })
                .await
                .map_err(privacy_err)?;
            format!(
                "recorded deletion request {}\n  acknowledgement queued to {} (due by {})\n  complete by {}\n",
                r.id,
                r.email.as_deref().unwrap_or("-"),
                format_utc(r.ack_due_at),
                format_utc(r.due_at)
            )
        }
        DeletionRequestCommand::List { all } => {
            let list = state.store.list_privacy_requests(all).await?;
            list_table(&list)
        }
        DeletionRequestCommand::Show { id } => {
            show(&engine.request_view(&id).await.map_err(privacy_err)?)
        }
        DeletionRequestCommand::Accept { id } => {
            let r = engine.accept_request(&id).await.map_err(privacy_err)?;
            format!(
                "request {} is {}; complete by {}\n",
                r.id,
                r.status,
                format_utc(r.due_at)
            )
        }
        DeletionRequestCommand::Execute { id, yes, by } => {
            if !yes {
                anyhow::bail!(
                    "executing a deletion request cannot be undone: add --yes to confirm"
                );
            }
            let view = engine
                .execute_request(&id, &by)
                .await
                .map_err(privacy_err)?;
            format!("executed and confirmed.\n{}", show(&view))
        }
        DeletionRequestCommand::Tick {
            id,
            processor,
            status,
            by,
            note,
        } => {
            engine
                .tick_task(&id, &processor, &status, &by, note.as_deref())
                .await
                .map_err(|e| match e {
                    PrivacyError::NotFound => anyhow::anyhow!(
                        "no checklist line {processor:?} on request {id:?} (is it executed? see `show`)"
                    ),
                    other => privacy_err(other),
                })?;
            format!("{processor}: {status} by {by}\n")
        }
    };
    // Send what was queued now when SMTP is configured (the server's delivery worker would otherwise).
    if state.outbox.mailer().is_configured()
        && let Err(e) = state.outbox.deliver_due().await
    {
        tracing::warn!(error = %e, "sending queued mail failed; it stays in the outbox");
    }
    Ok(out)
}

fn list_table(list: &[PrivacyRequest]) -> String {
    if list.is_empty() {
        return "no deletion requests\n".into();
    }
    let mut out = format!(
        "{:<14} {:<10} {:<6} {:<13} {:<22} {:<22} {}\n",
        "ID", "STATUS", "SCOPE", "ORIGIN", "RECEIVED", "DUE", "REQUESTER"
    );
    for r in list {
        out.push_str(&format!(
            "{:<14} {:<10} {:<6} {:<13} {:<22} {:<22} {}\n",
            r.id,
            r.status,
            r.scope,
            r.origin,
            format_utc(r.received_at),
            format_utc(r.due_at),
            r.email
                .as_deref()
                .unwrap_or("(forgotten after confirmation)")
        ));
    }
    out
}

fn show(v: &RequestView) -> String {
    let r = &v.request;
    let t = |x: Option<i64>| x.map(format_utc).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "request      {}\nstatus       {}\nscope        {}\norigin       {}\nrequester    {} {}\ndescription  {}\nreceived     {}\nacknowledged {} (due {})\ndue          {}\nexecuted     {}\nconfirmed    {}\nreceipt      {}\nsummary      {}\n",
        r.id,
        r.status,
        r.scope,
        r.origin,
        r.name.as_deref().unwrap_or("-"),
        r.email
            .as_deref()
            .map(|e| format!("<{e}>"))
            .unwrap_or_default(),
        r.description.as_deref().unwrap_or("-"),
        format_utc(r.received_at),
        t(r.acknowledged_at),
        format_utc(r.ack_due_at),
        format_utc(r.due_at),
        t(r.executed_at),
        t(r.confirmed_at),
        r.receipt_id.as_deref().unwrap_or("-"),
        r.summary.as_deref().unwrap_or("-"),
    );
    if !v.tasks.is_empty() {
        out.push_str("\nsub-processor checklist:\n");
        for task in &v.tasks {
            out.push_str(&format!(
                "  [{}] {:<14} {:<28} {}\n",
                match task.status.as_str() {
                    "done" => "x",
                    "not_applicable" => "-",
                    _ => " ",
                },
                task.processor.id,
                task.processor.name,
                match (&task.done_by, task.done_at) {
                    (Some(by), Some(at)) => format!(
                        "{} by {by} at {}{}",
                        task.status,
                        format_utc(at),
                        task.note
                            .as_deref()
                            .map(|n| format!(": {n}"))
                            .unwrap_or_default()
                    ),
                    _ => task.processor.deletion.clone(),
                }
            ));
        }
    }
    out
}

/// `mtdesk admin outbox`: mails waiting or failed; `retry` puts failed ones back in the queue.
pub async fn outbox(state: &AppState, retry: bool) -> anyhow::Result<String> {
    let mut out = String::new();
    if retry {
        let n = state.store.retry_failed_mails().await?;
        out.push_str(&format!("{n} failed mail(s) queued again\n"));
    }
    out.push_str(&mtdesk_email::outbox_report(&state.store, 200).await?);
    if !state.outbox.mailer().is_configured() {
        out.push_str(
            "\nSMTP is not configured (MTDESK_SMTP_URL): these mails are sent once it is.\n",
        );
    }
    Ok(out)
}

/// `mtdesk admin contact …`: messages from the public contact page.
#[derive(Debug, clap::Subcommand)]
pub enum ContactCommand {
    /// The newest messages first (id, received, topic, sender).
    List {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One message in full.
    Show { id: String },
    /// Deletes a message (handled, or spam).
    Delete { id: String },
}

pub async fn contact(state: &AppState, command: ContactCommand) -> anyhow::Result<String> {
    let not_found = |id: &str| anyhow::anyhow!("no contact message with id {id}");
    match command {
        ContactCommand::List { limit } => {
            if !(1..=10_000).contains(&limit) {
                anyhow::bail!("--limit must be between 1 and 10000");
            }
            let rows = state.store.list_contacts(limit).await?;
            if rows.is_empty() {
                return Ok("no contact messages\n".into());
            }
            let mut out = String::new();
            for r in rows {
                out.push_str(&format!(
                    "{}  {}  {:<8}  {} <{}>{}\n",
                    r.id,
                    mtdesk_email::messages::format_utc(r.created_at),
                    r.topic,
                    r.name,
                    r.email,
                    r.privacy_request_id
                        .map(|q| format!("  (deletion request {q})"))
                        .unwrap_or_default()
                ));
            }
            Ok(out)
        }
        ContactCommand::Show { id } => {
            let r = state.store.find_contact(&id).await.map_err(|e| match e {
                mtdesk_storage::StorageError::NotFound => not_found(&id),
                other => anyhow::Error::new(other),
            })?;
            Ok(format!(
                "id:       {}\nreceived: {}\ntopic:    {}\nfrom:     {} <{}>\n{}\n{}\n",
                r.id,
                mtdesk_email::messages::format_utc(r.created_at),
                r.topic,
                r.name,
                r.email,
                r.privacy_request_id
                    .map(|q| format!("request:  {q} (mtdesk admin deletion-request show {q})\n"))
                    .unwrap_or_default(),
                r.message
            ))
        }
        ContactCommand::Delete { id } => {
            state.store.delete_contact(&id).await.map_err(|e| match e {
                mtdesk_storage::StorageError::NotFound => not_found(&id),
                other => anyhow::Error::new(other),
            })?;
            Ok(format!("contact message {id} deleted\n"))
        }
    }
}
