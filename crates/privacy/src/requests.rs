//! Deletion requests received by email (the policy's contact address) or the contact form: recorded by
//! the operator (`mtdesk admin deletion-request …` or the operator page), acknowledged by email at once
//! (the policy promises within 2 business days), executed within 30 days through the same engine as every
//! other path, and confirmed by email with what was deleted. Each executed request gets a checklist of the
//! policy's sub-processors; a daily job warns the operator about requests near their deadline.

use crate::{DeletionPath, Engine, PrivacyError};
use mtdesk_domain::privacy_request::{RequestScope, deadlines};
use mtdesk_domain::{DomainError, Email, now_ms};
use mtdesk_storage::{NewPrivacyRequest, PrivacyRequest, RequestTask, StorageError};

const DAY_MS: i64 = 86_400_000;
/// Requests due within this many days are in the operator's daily warning.
pub const WARN_DAYS: i64 = 7;

/// A request as the operator records it.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub email: String,
    pub name: String,
    pub scope: RequestScope,
    pub description: Option<String>,
    /// `email` (recorded by the operator) or `contact_form` (a draft until accepted).
    pub origin: &'static str,
    /// When the request arrived (the deadlines count from here); `None` = now.
    pub received_at: Option<i64>,
}

/// What the operator sees of one request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RequestView {
    pub request: PrivacyRequest,
    pub tasks: Vec<RequestTask>,
    /// Chatbots deleted by this call (`execute_request`): the caller's in-memory indexes forget them.
    #[serde(skip)]
    pub deleted_chatbots: Vec<mtdesk_domain::ChatbotId>,
}

impl Engine {
    /// Records a request. From the operator (`origin = "email"`) it is `received` and acknowledged by
    /// email at once; from the contact form it is a `draft` the operator accepts first.
    pub async fn add_request(&self, new: NewRequest) -> Result<PrivacyRequest, PrivacyError> {
        let email = Email::parse(&new.email)?;
        if !mtdesk_email::deliverable(email.as_str()) {
            return Err(DomainError::invalid(
                "email",
                "cannot receive mail from us (use a plain address such as ann@example.com)",
            )
            .into());
        }
        let name = mtdesk_domain::text::bounded("name", &new.name, 1, 200, false)?;
        let description = match new.description.as_deref().map(str::trim) {
            Some("") | None => None,
            Some(d) => Some(mtdesk_domain::text::bounded(
                "description",
                d,
                1,
                4000,
                true,
            )?),
        };
        if new.scope == RequestScope::Other && description.is_none() {
            return Err(DomainError::invalid(
                "description",
                "is required when the scope is \"other\": say what should be deleted",
            )
            .into());
        }
        let now = now_ms();
        let received_at = new.received_at.unwrap_or(now);
        if received_at > now + 60_000 {
            return Err(DomainError::invalid("received", "cannot be in the future").into());
        }
        let (ack_due_at, due_at) = deadlines(received_at);
        let draft = new.origin == "contact_form";
        let request = self
            .store
            .insert_privacy_request(&NewPrivacyRequest {
                email: email.as_str().to_string(),
                name,
                subject_hash: self.subject_hash("email", &email.normalized()),
                scope: new.scope.as_str().to_string(),
                description,
                origin: new.origin.to_string(),
                draft,
                received_at,
                ack_due_at,
                due_at,
            })
            .await?;
        tracing::info!(request = %request.id, scope = %request.scope, draft, "deletion request recorded");
        if draft {
            return Ok(request);
        }
        self.acknowledge(&request).await?;
        Ok(self.store.find_privacy_request(&request.id).await?)
    }

    /// Accepts a draft (from the contact form): it becomes `received` and is acknowledged.
    pub async fn accept_request(&self, id: &str) -> Result<PrivacyRequest, PrivacyError> {
        let request = self.store.accept_privacy_request(id).await?;
        if request.acknowledged_at.is_none() && request.status == "received" {
            self.acknowledge(&request).await?;
        }
        Ok(self.store.find_privacy_request(id).await?)
    }

    async fn acknowledge(&self, r: &PrivacyRequest) -> Result<(), PrivacyError> {
        let (Some(mail), Some(to)) = (&self.mail, &r.email) else {
            return Ok(());
        };
        let scope = RequestScope::parse(&r.scope).unwrap_or(RequestScope::Other);
        let rendered = mtdesk_email::messages::deletion_request_ack(
            &mail.site,
            r.name.as_deref().unwrap_or(""),
            &r.id,
            scope.describe(),
            r.received_at,
            r.due_at,
        )?;
        mail.outbox.enqueue(None, to, rendered).await?;
        self.store
            .set_privacy_request_acknowledged(&r.id, now_ms())
            .await?;
        Ok(())
    }

    /// A request with its checklist.
    pub async fn request_view(&self, id: &str) -> Result<RequestView, PrivacyError> {
        Ok(RequestView {
            request: self.store.find_privacy_request(id).await?,
            tasks: self.store.request_tasks(id).await?,
            deleted_chatbots: Vec::new(),
        })
    }

    /// Executes a `received` request now: "all" deletes the account registered with the requester's address
    /// (everything, as Delete Account does), "meta" disconnects every channel of that account with all
    /// Meta data, "other" records that the operator carried out the description. A receipt is written
    /// either way (also when no account has that address), the sub-processor checklist is opened (what an
    /// API can do is done and recorded), the confirmation with the summary is queued to the requester, and
    /// the request forgets their address and name.
    pub async fn execute_request(
        &self,
        id: &str,
        operator: &str,
    ) -> Result<RequestView, PrivacyError> {
        let request = self.store.find_privacy_request(id).await?;
        match request.status.as_str() {
            "draft" => {
                return Err(PrivacyError::Refused(
                    "this request is a draft from the contact form: accept it first".into(),
                ));
            }
            "completed" => {
                return Err(PrivacyError::Refused(
                    "this request was already executed and confirmed".into(),
                ));
            }
            _ => {}
        }
        let mut deleted_chatbots = Vec::new();
        if request.executed_at.is_none() {
            let started = now_ms();
            let scope = RequestScope::parse(&request.scope).unwrap_or(RequestScope::Other);
            let account = match &request.email {
                Some(e) => match self.store.find_account_by_email_any(e).await {
                    Ok(a) => Some(a),
                    Err(StorageError::NotFound) => None,
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            // What Stripe holds of this person, read before the account (and its billing row) goes.
            let stripe_customer = match &account {
                Some(a) if scope == RequestScope::All => {
                    self.store.billing_state(&a.id).await?.stripe_customer_id
                }
                _ => None,
            };
            let (receipt, summary) = match (scope, account) {
                (RequestScope::All, Some(a)) => {
                    let done = self
                        .delete_account_quietly(&a.id, "emailed_request")
                        .await?;
                    deleted_chatbots = done.chatbots.clone();
                    let summary = summarize(&done.receipt.counts);
                    (done.receipt, summary)
                }
                (RequestScope::Meta, Some(a)) => {
                    let mut counts: Vec<(&'static str, u64)> = Vec::new();
                    for c in self.store.list_channels(&a.id).await? {
                        match self.channels.disconnect(&a.id, &c.id).await {
                            Ok((_, n)) => counts.extend(n),
                            Err(mtdesk_channels::ChannelError::NotFound) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if counts.is_empty() {
                        counts.push(("channels", 0));
                    }
                    let receipt = self
                        .store
                        .insert_receipt(
                            "meta_data",
                            DeletionPath::EmailedRequest.as_str(),
                            &request.subject_hash,
                            &counts,
                            None,
                            started,
                        )
                        .await?;
                    let summary = summarize(&receipt.counts);
                    (receipt, summary)
                }
                (RequestScope::Other, _) => {
                    let receipt = self
                        .store
                        .insert_receipt(
                            "other",
                            DeletionPath::EmailedRequest.as_str(),
                            &request.subject_hash,
                            &[],
                            None,
                            started,
                        )
                        .await?;
                    (
                        receipt,
                        "Carried out by the operator as described in the request.".to_string(),
                    )
                }
                (_, None) => {
                    let receipt = self
                        .store
                        .insert_receipt(
                            "account",
                            DeletionPath::EmailedRequest.as_str(),
                            &request.subject_hash,
                            &[("accounts", 0)],
                            None,
                            started,
                        )
                        .await?;
                    (
                        receipt,
                        "No account or data was registered with this address.".to_string(),
                    )
                }
            };
            // Messages the requester sent through the contact form go with a request for everything
            // (whether or not they had an account).
            let mut summary = summary;
            if scope == RequestScope::All
                && let Some(e) = &request.email
            {
                let n = self.store.delete_contacts_by_email(e).await?;
                if n > 0 {
                    summary.push_str(&format!(" Contact-form messages deleted: {n}."));
                }
            }
            self.store
                .record_privacy_request_executed(id, Some(&receipt.id), &summary)
                .await?;
            self.automated_tasks(id, stripe_customer.is_some()).await?;
            tracing::info!(request = %id, operator, "deletion request executed");
        }
        self.confirm(id).await?;
        let mut view = self.request_view(id).await?;
        view.deleted_chatbots = deleted_chatbots;
        Ok(view)
    }

    /// The checklist lines MT Desk carries out itself: Stripe. Deleting the account cancelled its
    /// subscription through the API; the customer record and invoices stay at Stripe, as tax law requires.
    async fn automated_tasks(&self, id: &str, had_customer: bool) -> Result<(), PrivacyError> {
        let (status, note) = if !self.billing_enabled() {
            (
                "not_applicable",
                "billing is not enabled on this instance: no Stripe customer exists",
            )
        } else if had_customer {
            (
                "done",
                "subscription cancelled through the Stripe API when the account was deleted; the \
                 customer record and invoices stay at Stripe for the period tax law requires",
            )
        } else {
            (
                "not_applicable",
                "no Stripe customer belongs to this address",
            )
        };
        self.store
            .set_request_task(id, "stripe", status, "mtdesk", Some(note))
            .await
            .or_else(ignore_missing)?;
        Ok(())
    }

    /// Queues the confirmation of an executed request and forgets the requester's address and name.
    async fn confirm(&self, id: &str) -> Result<(), PrivacyError> {
        let r = self.store.find_privacy_request(id).await?;
        if r.executed_at.is_none() || r.status == "completed" {
            return Ok(());
        }
        if let (Some(mail), Some(to)) = (&self.mail, &r.email) {
            let counts = match &r.receipt_id {
                Some(rid) => self
                    .store
                    .find_receipt(rid)
                    .await?
                    .counts
                    .iter()
                    .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
                    .collect(),
                None => Vec::new(),
            };
            let mut rendered = mtdesk_email::messages::deletion_request_done(
                &mail.site,
                r.name.as_deref().unwrap_or(""),
                &r.id,
                &counts,
                r.executed_at.unwrap_or_else(now_ms),
            )?;
            if let Some(summary) = &r.summary
                && counts.iter().all(|(_, n)| *n == 0)
            {
                rendered.text = format!("{summary}\n\n{}", rendered.text);
            }
            mail.outbox.enqueue(None, to, rendered).await?;
        }
        self.store.complete_privacy_request(id).await?;
        Ok(())
    }

    /// Confirms requests executed before a crash (called at start-up). One that fails is logged and
    /// left for the next start; the others go on.
    pub async fn resume_requests(&self) -> Result<usize, PrivacyError> {
        let open = self.store.privacy_requests_unconfirmed().await?;
        for r in &open {
            if let Err(e) = self.confirm(&r.id).await {
                tracing::error!(request = %r.id, error = %e, "confirming a deletion request failed");
            }
        }
        Ok(open.len())
    }

    /// The daily deadline check: open requests due within [`WARN_DAYS`] days, or not acknowledged by their
    /// acknowledgement deadline, are logged and mailed to the operator (at most once a day each).
    /// Returns how many were in the warning.
    pub async fn warn_deadlines(&self, now: i64) -> Result<usize, PrivacyError> {
        let near = self
            .store
            .privacy_requests_near_deadline(now, now + WARN_DAYS * DAY_MS, now - 20 * 3_600_000)
            .await?;
        if near.is_empty() {
            return Ok(0);
        }
        for r in &near {
            tracing::warn!(request = %r.id, due_at = r.due_at, "deletion request near its deadline");
        }
        if let Some(mail) = &self.mail
            && let Some(to) = &mail.operator
        {
            let list: Vec<(String, i64)> = near.iter().map(|r| (r.id.clone(), r.due_at)).collect();
            let rendered = mtdesk_email::messages::deletion_deadline_warning(&mail.site, &list)?;
            mail.outbox.enqueue(None, to, rendered).await?;
        }
        for r in &near {
            self.store.set_privacy_request_warned(&r.id, now).await?;
        }
        Ok(near.len())
    }

    /// Ticks a checklist line of an executed request (`done` or `not_applicable`) as `by`.
    pub async fn tick_task(
        &self,
        id: &str,
        processor: &str,
        status: &str,
        by: &str,
        note: Option<&str>,
    ) -> Result<(), PrivacyError> {
        if !matches!(status, "done" | "not_applicable" | "open") {
            return Err(
                DomainError::invalid("status", "must be done, not_applicable or open").into(),
            );
        }
        let by = mtdesk_domain::text::bounded("by", by, 1, 200, false)?;
        let note = match note.map(str::trim) {
            Some("") | None => None,
            Some(n) => Some(mtdesk_domain::text::bounded("note", n, 1, 1000, true)?),
        };
        self.store
            .set_request_task(id, processor, status, &by, note.as_deref())
            .await?;
        Ok(())
    }
}

fn ignore_missing(e: StorageError) -> Result<(), StorageError> {
    match e {
        StorageError::NotFound => Ok(()),
        other => Err(other),
    }
}

/// "messages 120, conversations 4, …" from a receipt's counts (zero categories left out).
pub fn summarize(counts: &serde_json::Map<String, serde_json::Value>) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| format!("{k} {n}")))
        .collect();
    if parts.is_empty() {
        "Nothing was stored for this request.".into()
    } else {
        format!("Deleted: {}.", parts.join(", "))
    }
}
