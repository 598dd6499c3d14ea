//! Stripe billing state: the account's plan and billing status, the invoices kept for tax law, and the
//! webhook events already applied (external-apis.md §8.4).
//!
//! Every webhook event is applied by [`Store::apply_stripe_event`] in one transaction that first inserts
//! the event id into `stripe_events` with `ON CONFLICT DO NOTHING`: a second delivery of the same event
//! (Stripe retries, duplicates, two nodes receiving it at once) inserts nothing and changes nothing, so an
//! event is applied exactly once. On PostgreSQL a concurrent duplicate waits on the first insert's row lock
//! and then sees the conflict; SQLite has a single writer.

use crate::{NewMail, Result, Store};
use mtdesk_domain::{AccountId, now_ms};
use sqlx::Row;
use sqlx::any::AnyRow;

/// Grace period after a failed payment before the account drops to the default plan's limits.
pub const GRACE_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// The billing columns of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingState {
    /// `None`: the default plan.
    pub plan_id: Option<String>,
    /// none, active, trialing, past_due, unpaid, canceled.
    pub status: String,
    pub stripe_customer_id: Option<String>,
    pub stripe_subscription_id: Option<String>,
    /// While `status` is past_due: the paid plan's limits apply until then.
    pub grace_until: Option<i64>,
    /// `created` (ms) of the last subscription event applied: older ones are ignored.
    pub updated_at: Option<i64>,
}

/// An invoice as kept (tax law): number, amount, currency, date, billing name and country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub id: String,
    /// `None` once the account was deleted.
    pub account_id: Option<AccountId>,
    pub stripe_invoice_id: String,
    pub number: Option<String>,
    /// paid, open, uncollectible, void.
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    pub billing_name: Option<String>,
    pub billing_country: Option<String>,
    /// Stripe's hosted invoice page; cleared on account deletion.
    pub hosted_url: Option<String>,
    pub issued_at: i64,
}

/// An invoice from an `invoice.*` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    pub stripe_invoice_id: String,
    pub number: Option<String>,
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    pub billing_name: Option<String>,
    pub billing_country: Option<String>,
    pub hosted_url: Option<String>,
    pub issued_at: i64,
}

/// How a webhook event names its account; the first that matches a live account wins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountHints {
    pub customer: Option<String>,
    pub subscription: Option<String>,
    /// Our own id, from `client_reference_id` / `metadata.account_id` (set by us at checkout).
    pub account_id: Option<String>,
}

/// The owner of a billed account, for mails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingContact {
    pub account_id: AccountId,
    pub email: String,
    pub name: String,
}

/// What an event changes (§8.4 table).
#[derive(Debug, Clone)]
pub enum BillingChange {
    /// `checkout.session.completed`: link the customer and subscription; active; plan if known.
    CheckoutCompleted {
        customer: Option<String>,
        subscription: Option<String>,
        plan_id: Option<String>,
        /// `payment_status` is `paid` or `no_payment_required`. A session paid by a method that settles
        /// later (`unpaid`) only links the ids; the plan comes with the subscription turning active.
        paid: bool,
    },
    /// `customer.subscription.created|updated`: status and plan from the subscription's prices.
    SubscriptionChanged {
        customer: Option<String>,
        subscription: String,
        /// Already one of ours (see [`billing_status_of`]).
        status: String,
        price_ids: Vec<String>,
        cancel_at_period_end: bool,
    },
    /// `customer.subscription.deleted`: back to the default plan.
    SubscriptionDeleted { subscription: String },
    /// `invoice.paid`: keep the invoice, end any grace period.
    InvoicePaid(NewInvoice),
    /// `invoice.payment_failed`: past_due with a grace period; `mail` is queued (in the same transaction)
    /// the first time this invoice fails.
    InvoiceFailed {
        invoice: NewInvoice,
        mail: Option<NewMail>,
    },
}

/// The outcome of [`Store::apply_stripe_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// The event id was seen before: nothing changed.
    Duplicate,
    /// No live account matched: only the dedupe row was written.
    UnknownAccount,
    /// Older than the last subscription event applied to the account: only the dedupe row (and any ids
    /// still missing) were written.
    Stale { account: AccountId },
    /// Applied to the account. `mailed`: a payment-failed mail was queued.
    Applied { account: AccountId, mailed: bool },
}

/// Stripe's subscription status (§8.4) → ours: none, active, trialing, past_due, unpaid, canceled.
/// `incomplete` (first payment not done) grants nothing yet; `paused` is treated like `unpaid`.
pub fn billing_status_of(stripe_status: &str) -> &'static str {
    match stripe_status {
        "active" => "active",
        "trialing" => "trialing",
        "past_due" => "past_due",
        "unpaid" | "paused" => "unpaid",
        "canceled" | "incomplete_expired" => "canceled",
        _ => "none",
    }
}

const STATE_COLUMNS: &str = "plan_id, billing_status, stripe_customer_id, stripe_subscription_id, \
     grace_until, billing_updated_at";

fn state_from(r: &AnyRow) -> Result<BillingState, sqlx::Error> {
    Ok(BillingState {
        plan_id: r.try_get("plan_id")?,
        status: r.try_get("billing_status")?,
        stripe_customer_id: r.try_get("stripe_customer_id")?,
        stripe_subscription_id: r.try_get("stripe_subscription_id")?,
        grace_until: r.try_get("grace_until")?,
        updated_at: r.try_get("billing_updated_at")?,
    })
}

const INVOICE_COLUMNS: &str = "id, account_id, stripe_invoice_id, number, status, amount_cents, \
     currency, billing_name, billing_country, hosted_url, issued_at";

fn invoice_from(r: &AnyRow) -> Result<Invoice, sqlx::Error> {
    Ok(Invoice {
        id: r.try_get("id")?,
        account_id: r
            .try_get::<Option<String>, _>("account_id")?
            .map(AccountId::from_db),
        stripe_invoice_id: r.try_get("stripe_invoice_id")?,
        number: r.try_get("number")?,
        status: r.try_get("status")?,
        amount_cents: r.try_get("amount_cents")?,
        currency: r.try_get("currency")?,
        billing_name: r.try_get("billing_name")?,
        billing_country: r.try_get("billing_country")?,
        hosted_url: r.try_get("hosted_url")?,
        issued_at: r.try_get("issued_at")?,
    })
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// The plan sold at `price_id` (`plans.stripe_price_id`), if any.
async fn plan_for_prices(tx: &mut Tx<'_>, price_ids: &[String]) -> Result<Option<String>> {
    for price in price_ids {
        let row = sqlx::query("SELECT id FROM plans WHERE stripe_price_id = $1")
            .bind(price)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(row) = row {
            return Ok(Some(row.try_get("id")?));
        }
    }
    Ok(None)
}

/// Inserts the invoice or updates the one with the same Stripe id; returns whether it was new.
async fn upsert_invoice(
    tx: &mut Tx<'_>,
    account: &AccountId,
    inv: &NewInvoice,
    overwrite: bool,
) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO invoices (id, account_id, stripe_invoice_id, number, status, amount_cents, currency,
             billing_name, billing_country, hosted_url, issued_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (stripe_invoice_id) DO NOTHING",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(account.as_str())
    .bind(&inv.stripe_invoice_id)
    .bind(&inv.number)
    .bind(&inv.status)
    .bind(inv.amount_cents)
    .bind(&inv.currency)
    .bind(&inv.billing_name)
    .bind(&inv.billing_country)
    .bind(&inv.hosted_url)
    .bind(inv.issued_at)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    if !inserted && overwrite {
        sqlx::query(
            "UPDATE invoices SET number = COALESCE($2, number), status = $3, amount_cents = $4,
                 currency = $5, billing_name = COALESCE($6, billing_name),
                 billing_country = COALESCE($7, billing_country), hosted_url = COALESCE($8, hosted_url)
             WHERE stripe_invoice_id = $1 AND account_id IS NOT NULL",
        )
        .bind(&inv.stripe_invoice_id)
        .bind(&inv.number)
        .bind(&inv.status)
        .bind(inv.amount_cents)
        .bind(&inv.currency)
        .bind(&inv.billing_name)
        .bind(&inv.billing_country)
        .bind(&inv.hosted_url)
        .execute(&mut **tx)
        .await?;
    }
    Ok(inserted)
}

impl Store {
    /// The account's billing columns.
    pub async fn billing_state(&self, account: &AccountId) -> Result<BillingState> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM accounts WHERE id = $1"
        )))
        .bind(account.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(state_from(&row)?)
    }

    /// When the account's email address was verified (`None`: not yet).
    pub async fn email_verified_at(&self, account: &AccountId) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT email_verified_at FROM accounts WHERE id = $1")
            .bind(account.as_str())
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("email_verified_at")?)
    }

    /// The live account (not being deleted) an event names: by Stripe customer, then subscription, then
    /// our own id from the event's metadata.
    pub async fn find_billing_contact(
        &self,
        hints: &AccountHints,
    ) -> Result<Option<BillingContact>> {
        let candidates = [
            ("stripe_customer_id", &hints.customer),
            ("stripe_subscription_id", &hints.subscription),
            ("id", &hints.account_id),
        ];
        for (column, value) in candidates {
            let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
                continue;
            };
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT id, email, name FROM accounts WHERE {column} = $1 AND deleting_since IS NULL"
            )))
            .bind(value)
            .fetch_optional(self.pool())
            .await?;
            if let Some(row) = row {
                return Ok(Some(BillingContact {
                    account_id: AccountId::from_db(row.try_get("id")?),
                    email: row.try_get("email")?,
                    name: row.try_get("name")?,
                }));
            }
        }
        Ok(None)
    }

    /// The account's invoices, newest first.
    pub async fn list_invoices(&self, account: &AccountId) -> Result<Vec<Invoice>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE account_id = $1 ORDER BY issued_at DESC, id"
        )))
        .bind(account.as_str())
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(invoice_from).collect::<Result<_, _>>()?)
    }

    /// The invoice with this Stripe id, attached or not (tests and the operator).
    pub async fn find_invoice_by_stripe_id(&self, stripe_invoice_id: &str) -> Result<Invoice> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE stripe_invoice_id = $1"
        )))
        .bind(stripe_invoice_id)
        .fetch_one(self.pool())
        .await?;
        Ok(invoice_from(&row)?)
    }

    /// Whether the webhook event `id` was already applied.
    pub async fn stripe_event_seen(&self, id: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT id FROM stripe_events WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .is_some())
    }

    /// Forgets processed event ids received before `before` (ms); Stripe stops retrying after 3 days,
    /// the ids are kept 30.
    pub async fn prune_stripe_events(&self, before: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM stripe_events WHERE received_at < $1")
                .bind(before)
                .execute(self.pool())
                .await?
                .rows_affected(),
        )
    }

    /// Applies one webhook event exactly once (see the module doc): the dedupe row and the change commit
    /// together. `account` is the account the event names (resolved with
    /// [`Store::find_billing_contact`]), `None` when none matched. `event_ms` is the event's `created`, in
    /// ms: a subscription event older than the account's `billing_updated_at` only fills in ids still
    /// missing (Stripe does not guarantee order, §8.4).
    pub async fn apply_stripe_event(
        &self,
        event_id: &str,
        event_type: &str,
        event_ms: i64,
        account: Option<&AccountId>,
        change: &BillingChange,
    ) -> Result<Applied> {
        let now = now_ms();
        let mut tx = self.pool().begin().await?;
        // The write comes first (SQLite takes its write lock here) and is the dedupe.
        let fresh = sqlx::query(
            "INSERT INTO stripe_events (id, type, received_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(event_id)
        .bind(event_type)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !fresh {
            tx.rollback().await?;
            return Ok(Applied::Duplicate);
        }
        let Some(account) = account else {
            tx.commit().await?;
            return Ok(Applied::UnknownAccount);
        };
        // The account's row is locked for the rest of the transaction (PostgreSQL; SQLite holds its
        // write lock already), so two events delivered at once are applied one after the other and the
        // order check below sees the other's result.
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE",
            crate::Backend::Sqlite => "",
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {STATE_COLUMNS} FROM accounts WHERE id = $1 AND deleting_since IS NULL{lock}"
        )))
        .bind(account.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(Applied::UnknownAccount);
        };
        let state = state_from(&row)?;
        let stale = state.updated_at.is_some_and(|at| event_ms < at);
        let mut mailed = false;
        match change {
            BillingChange::CheckoutCompleted {
                customer,
                subscription,
                plan_id,
                paid,
            } => {
                // Another subscription is already the account's (a second Checkout that was paid):
                // only ids still missing are filled in; the current subscription decides the plan.
                let foreign = state
                    .stripe_subscription_id
                    .as_ref()
                    .is_some_and(|s| subscription.as_ref().is_some_and(|n| n != s))
                    && matches!(state.status.as_str(), "active" | "trialing" | "past_due");
                if stale || foreign || !*paid {
                    link_missing(&mut tx, account, customer, subscription).await?;
                } else {
                    let plan = match plan_id {
                        Some(p) => sqlx::query("SELECT id FROM plans WHERE id = $1")
                            .bind(p)
                            .fetch_optional(&mut *tx)
                            .await?
                            .map(|r| r.try_get::<String, _>("id"))
                            .transpose()?,
                        None => None,
                    };
                    sqlx::query(
                        "UPDATE accounts SET stripe_customer_id = COALESCE($2, stripe_customer_id),
                             stripe_subscription_id = COALESCE($3, stripe_subscription_id),
                             plan_id = COALESCE($4, plan_id), billing_status = 'active', grace_until = NULL,
                             billing_updated_at = $5
                         WHERE id = $1",
                    )
                    .bind(account.as_str())
                    .bind(customer)
                    .bind(subscription)
                    .bind(plan)
                    .bind(event_ms)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            BillingChange::SubscriptionChanged {
                customer,
                subscription,
                status,
                price_ids,
                cancel_at_period_end,
            } => {
                // Events of a subscription that is not the account's current one (an old one after a
                // switch, or a second one) do not move the account's plan or state.
                let foreign = state
                    .stripe_subscription_id
                    .as_ref()
                    .is_some_and(|s| s != subscription)
                    && matches!(state.status.as_str(), "active" | "trialing" | "past_due");
                if stale || foreign {
                    link_missing(&mut tx, account, customer, &Some(subscription.clone())).await?;
                } else {
                    let plan = plan_for_prices(&mut tx, price_ids).await?;
                    if plan.is_none() {
                        tracing::warn!(account.id = %account, ?price_ids, "subscription price matches no plan; plan left unchanged");
                    }
                    // canceled / incomplete: no paid plan; the others keep (or get) the price's plan.
                    let clears_plan = matches!(status.as_str(), "canceled" | "none");
                    let grace = match status.as_str() {
                        "past_due" => Some(state.grace_until.unwrap_or(now + GRACE_MS)),
                        _ => None,
                    };
                    sqlx::query(
                        "UPDATE accounts SET stripe_customer_id = COALESCE($2, stripe_customer_id),
                             stripe_subscription_id = $3, billing_status = $4,
                             plan_id = CASE WHEN $5 = 1 THEN NULL ELSE COALESCE($6, plan_id) END,
                             grace_until = $7, billing_updated_at = $8
                         WHERE id = $1",
                    )
                    .bind(account.as_str())
                    .bind(customer)
                    .bind(subscription)
                    .bind(status)
                    .bind(i64::from(clears_plan))
                    .bind(plan)
                    .bind(grace)
                    .bind(event_ms)
                    .execute(&mut *tx)
                    .await?;
                    if *cancel_at_period_end {
                        tracing::info!(account.id = %account, "subscription set to cancel at the end of the period");
                    }
                }
            }
            BillingChange::SubscriptionDeleted { subscription } => {
                if stale {
                    tx.commit().await?;
                    return Ok(Applied::Stale {
                        account: account.clone(),
                    });
                }
                // Only the account's current subscription downgrades it (an old one ending after a
                // switch does not).
                sqlx::query(
                    "UPDATE accounts SET plan_id = NULL, billing_status = 'canceled', grace_until = NULL,
                         stripe_subscription_id = NULL, billing_updated_at = $3
                     WHERE id = $1 AND (stripe_subscription_id IS NULL OR stripe_subscription_id = $2)",
                )
                .bind(account.as_str())
                .bind(subscription)
                .bind(event_ms)
                .execute(&mut *tx)
                .await?;
            }
            BillingChange::InvoicePaid(invoice) => {
                upsert_invoice(&mut tx, account, invoice, true).await?;
                sqlx::query(
                    "UPDATE accounts SET grace_until = NULL,
                         billing_status = CASE WHEN billing_status IN ('past_due', 'unpaid') THEN 'active'
                                               ELSE billing_status END
                     WHERE id = $1",
                )
                .bind(account.as_str())
                .execute(&mut *tx)
                .await?;
            }
            BillingChange::InvoiceFailed { invoice, mail } => {
                // A failure reported after the same invoice was paid (Stripe does not promise order)
                // changes nothing: the invoice stays paid and no grace period starts.
                let already_paid =
                    sqlx::query("SELECT status FROM invoices WHERE stripe_invoice_id = $1")
                        .bind(&invoice.stripe_invoice_id)
                        .fetch_optional(&mut *tx)
                        .await?
                        .map(|r| r.try_get::<String, _>("status"))
                        .transpose()?
                        .is_some_and(|st| st == "paid");
                if already_paid {
                    tx.commit().await?;
                    return Ok(Applied::Stale {
                        account: account.clone(),
                    });
                }
                let first = upsert_invoice(&mut tx, account, invoice, false).await?;
                if !stale {
                    sqlx::query(
                        "UPDATE accounts SET billing_status = 'past_due',
                             grace_until = COALESCE(grace_until, $2)
                         WHERE id = $1",
                    )
                    .bind(account.as_str())
                    .bind(now + GRACE_MS)
                    .execute(&mut *tx)
                    .await?;
                }
                if first && let Some(mail) = mail {
                    sqlx::query(
                        "INSERT INTO outbox (id, account_id, kind, to_addr, subject, body_text, body_html,
                             status, attempts, next_attempt_at, locked_until, last_error, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', 0, $8, 0, NULL, $8)",
                    )
                    .bind(uuid::Uuid::new_v4().to_string())
                    .bind(account.as_str())
                    .bind(&mail.kind)
                    .bind(&mail.to_addr)
                    .bind(&mail.subject)
                    .bind(&mail.body_text)
                    .bind(&mail.body_html)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    mailed = true;
                }
            }
        }
        tx.commit().await?;
        let is_subscription_event = matches!(
            change,
            BillingChange::CheckoutCompleted { .. }
                | BillingChange::SubscriptionChanged { .. }
                | BillingChange::SubscriptionDeleted { .. }
        );
        if stale && is_subscription_event {
            return Ok(Applied::Stale {
                account: account.clone(),
            });
        }
        Ok(Applied::Applied {
            account: account.clone(),
            mailed,
        })
    }
}

/// Fills in the customer / subscription ids an account does not have yet (an older event still names
/// them correctly).
async fn link_missing(
    tx: &mut Tx<'_>,
    account: &AccountId,
    customer: &Option<String>,
    subscription: &Option<String>,
) -> Result<()> {
    sqlx::query(
        "UPDATE accounts SET stripe_customer_id = COALESCE(stripe_customer_id, $2),
             stripe_subscription_id = COALESCE(stripe_subscription_id, $3)
         WHERE id = $1",
    )
    .bind(account.as_str())
    .bind(customer)
    .bind(subscription)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
