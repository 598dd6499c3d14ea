//! Stripe webhook events → the account's plan and billing state (external-apis.md §8.4).
//!
//! The caller (the `POST /webhooks/stripe` handler) has already verified `Stripe-Signature` over the raw
//! body ([`crate::signature`]); [`Processor::handle`] parses the event and applies it through
//! [`mtdesk_storage::Store::apply_stripe_event`], which dedupes on `event.id` in the same transaction as
//! the change. What each type does (§8.4 table):
//!
//! | event | effect |
//! |---|---|
//! | `checkout.session.completed` | link customer + subscription to the account (`client_reference_id` / `metadata.account_id`), status active, plan from `metadata.plan_id` when known |
//! | `customer.subscription.created` / `.updated` | status, plan from `items.data[].price.id` (`plans.stripe_price_id`) |
//! | `customer.subscription.deleted` | back to the default plan, status canceled |
//! | `invoice.paid` | keep the invoice (tax law), end the grace period |
//! | `invoice.payment_failed` | past_due, 7-day grace, one mail to the owner per invoice |
//!
//! Stripe does not promise order: a subscription event older (`created`) than the last one applied to the
//! account is ignored. An event naming no account we know is acknowledged and logged, nothing else is
//! written but the dedupe row; unknown types are acknowledged and ignored.

use mtdesk_storage::billing::{
    AccountHints, Applied, BillingChange, GRACE_MS, NewInvoice, billing_status_of,
};
use mtdesk_storage::{NewMail, StorageError, Store};
use serde_json::Value;

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The (correctly signed) body is not a Stripe event: answered 400, nothing written.
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// What happened to an event, for logs and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A type we do not act on.
    Ignored,
    Applied(Applied),
}

/// A parsed event envelope (§8.4): `id`, `type`, `created` (unix seconds), `data.object`.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub kind: String,
    /// `created`, in ms.
    pub created_ms: i64,
    pub object: Value,
}

impl Event {
    /// Parses the raw body; anything that is not an event object with an id and a type is refused.
    pub fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| WebhookError::Malformed(format!("the body is not JSON: {e}")))?;
        let id = v["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WebhookError::Malformed("the event has no id".into()))?;
        let kind = v["type"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| WebhookError::Malformed("the event has no type".into()))?;
        let created = v["created"].as_i64().unwrap_or(0);
        let object = v["data"]["object"].clone();
        if !object.is_object() {
            return Err(WebhookError::Malformed(
                "the event has no data.object".into(),
            ));
        }
        Ok(Self {
            id: id.to_string(),
            kind: kind.to_string(),
            created_ms: created.saturating_mul(1000),
            object,
        })
    }
}

/// Applies events. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Processor {
    store: Store,
    /// The site named in the payment-failed mail (name, public URL).
    site: mtdesk_email::Site,
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_string)
}

/// An id field that may be a string or an expanded object (`{"id": …}`).
fn id_of(v: &Value) -> Option<String> {
    text(v).or_else(|| text(&v["id"]))
}

/// The subscription an invoice belongs to: `subscription` (before basil) or
/// `parent.subscription_details.subscription` (basil, §8.4) — both are read.
pub fn invoice_subscription(invoice: &Value) -> Option<String> {
    id_of(&invoice["subscription"])
        .or_else(|| id_of(&invoice["parent"]["subscription_details"]["subscription"]))
}

/// Our account id as an invoice carries it: the subscription's metadata copied onto the invoice (basil
/// `parent.subscription_details.metadata`, older `subscription_details.metadata`), or its own metadata.
fn invoice_account_hint(invoice: &Value) -> Option<String> {
    text(&invoice["parent"]["subscription_details"]["metadata"]["account_id"])
        .or_else(|| text(&invoice["subscription_details"]["metadata"]["account_id"]))
        .or_else(|| text(&invoice["metadata"]["account_id"]))
}

fn new_invoice(invoice: &Value, status: &str, amount_field: &str) -> Option<NewInvoice> {
    Some(NewInvoice {
        stripe_invoice_id: text(&invoice["id"])?,
        number: text(&invoice["number"]),
        status: text(&invoice["status"]).unwrap_or_else(|| status.to_string()),
        amount_cents: invoice[amount_field].as_i64().unwrap_or(0),
        currency: text(&invoice["currency"]).unwrap_or_else(|| "usd".into()),
        billing_name: text(&invoice["customer_name"]),
        billing_country: text(&invoice["customer_address"]["country"]),
        hosted_url: text(&invoice["hosted_invoice_url"]),
        issued_at: invoice["created"]
            .as_i64()
            .map(|s| s.saturating_mul(1000))
            .unwrap_or_else(mtdesk_domain::now_ms),
    })
}

impl Processor {
    pub fn new(store: Store, site: mtdesk_email::Site) -> Self {
        Self { store, site }
    }

    /// Parses and applies one verified event body.
    pub async fn handle(&self, body: &[u8]) -> Result<Outcome, WebhookError> {
        let event = Event::parse(body)?;
        self.apply(&event).await
    }

    /// Applies a parsed event (see the module doc).
    pub async fn apply(&self, event: &Event) -> Result<Outcome, WebhookError> {
        let o = &event.object;
        let (hints, change) = match event.kind.as_str() {
            "checkout.session.completed" => {
                if text(&o["mode"])
                    .as_deref()
                    .is_some_and(|m| m != "subscription")
                {
                    return Ok(Outcome::Ignored);
                }
                let hints = AccountHints {
                    customer: id_of(&o["customer"]),
                    subscription: id_of(&o["subscription"]),
                    account_id: text(&o["client_reference_id"])
                        .or_else(|| text(&o["metadata"]["account_id"])),
                };
                let change = BillingChange::CheckoutCompleted {
                    customer: hints.customer.clone(),
                    subscription: hints.subscription.clone(),
                    plan_id: text(&o["metadata"]["plan_id"]),
                    paid: matches!(
                        o["payment_status"].as_str(),
                        Some("paid" | "no_payment_required")
                    ),
                };
                (hints, change)
            }
            "customer.subscription.created" | "customer.subscription.updated" => {
                let Some(subscription) = text(&o["id"]) else {
                    return Err(WebhookError::Malformed("the subscription has no id".into()));
                };
                let price_ids = o["items"]["data"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| id_of(&i["price"]))
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let hints = AccountHints {
                    customer: id_of(&o["customer"]),
                    subscription: Some(subscription.clone()),
                    account_id: text(&o["metadata"]["account_id"]),
                };
                let change = BillingChange::SubscriptionChanged {
                    customer: hints.customer.clone(),
                    subscription,
                    status: billing_status_of(o["status"].as_str().unwrap_or("")).to_string(),
                    price_ids,
                    cancel_at_period_end: o["cancel_at_period_end"].as_bool().unwrap_or(false),
                };
                (hints, change)
            }
            "customer.subscription.deleted" => {
                let Some(subscription) = text(&o["id"]) else {
                    return Err(WebhookError::Malformed("the subscription has no id".into()));
                };
                let hints = AccountHints {
                    customer: id_of(&o["customer"]),
                    subscription: Some(subscription.clone()),
                    account_id: text(&o["metadata"]["account_id"]),
                };
                (hints, BillingChange::SubscriptionDeleted { subscription })
            }
            "invoice.paid" => {
                let invoice = new_invoice(o, "paid", "amount_paid")
                    .ok_or_else(|| WebhookError::Malformed("the invoice has no id".into()))?;
                let hints = AccountHints {
                    customer: id_of(&o["customer"]),
                    subscription: invoice_subscription(o),
                    account_id: invoice_account_hint(o),
                };
                (hints, BillingChange::InvoicePaid(invoice))
            }
            "invoice.payment_failed" => {
                let invoice = new_invoice(o, "open", "amount_due")
                    .ok_or_else(|| WebhookError::Malformed("the invoice has no id".into()))?;
                let hints = AccountHints {
                    customer: id_of(&o["customer"]),
                    subscription: invoice_subscription(o),
                    account_id: invoice_account_hint(o),
                };
                // The mail is rendered now and queued in the event's transaction, only if this invoice
                // had not failed before (storage decides).
                (
                    hints,
                    BillingChange::InvoiceFailed {
                        invoice,
                        mail: None,
                    },
                )
            }
            other => {
                tracing::debug!(event.id = %event.id, event.kind = other, "Stripe event type not handled; acknowledged");
                return Ok(Outcome::Ignored);
            }
        };
        let contact = self.store.find_billing_contact(&hints).await?;
        let change = match (change, &contact) {
            (BillingChange::InvoiceFailed { invoice, .. }, Some(c)) => {
                let grace_until = self
                    .store
                    .billing_state(&c.account_id)
                    .await?
                    .grace_until
                    .unwrap_or_else(|| mtdesk_domain::now_ms() + GRACE_MS);
                let mail = match mtdesk_email::messages::payment_failed(
                    &self.site,
                    &c.name,
                    invoice.amount_cents,
                    &invoice.currency,
                    grace_until,
                    invoice.hosted_url.as_deref(),
                ) {
                    Ok(r) => Some(NewMail {
                        account_id: Some(c.account_id.clone()),
                        kind: r.kind.to_string(),
                        to_addr: c.email.clone(),
                        subject: r.subject,
                        body_text: r.text,
                        body_html: r.html,
                    }),
                    Err(e) => {
                        tracing::error!(error = %e, "rendering the payment-failed mail failed");
                        None
                    }
                };
                BillingChange::InvoiceFailed { invoice, mail }
            }
            (change, _) => change,
        };
        let applied = self
            .store
            .apply_stripe_event(
                &event.id,
                &event.kind,
                event.created_ms,
                contact.as_ref().map(|c| &c.account_id),
                &change,
            )
            .await?;
        match &applied {
            Applied::Duplicate => {
                tracing::info!(event.id = %event.id, event.kind = %event.kind, "Stripe event already applied; ignored")
            }
            Applied::UnknownAccount => tracing::warn!(
                event.id = %event.id,
                event.kind = %event.kind,
                "Stripe event names no account of this instance; acknowledged, nothing changed"
            ),
            Applied::Stale { account } => tracing::info!(
                event.id = %event.id,
                event.kind = %event.kind,
                account.id = %account,
                "Stripe event older than the account's billing state; ignored"
            ),
            Applied::Applied { account, mailed } => tracing::info!(
                event.id = %event.id,
                event.kind = %event.kind,
                account.id = %account,
                mailed,
                "Stripe event applied"
            ),
        }
        Ok(Outcome::Applied(applied))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_invoice_subscription_is_read_from_both_places() {
        assert_eq!(
            invoice_subscription(&json!({"subscription": "sub_old"})).as_deref(),
            Some("sub_old")
        );
        assert_eq!(
            invoice_subscription(
                &json!({"parent": {"subscription_details": {"subscription": "sub_basil"}}})
            )
            .as_deref(),
            Some("sub_basil")
        );
        assert_eq!(invoice_subscription(&json!({"subscription": null})), None);
    }

    #[test]
    fn events_without_id_type_or_object_are_malformed() {
        for body in [
            &b"not json"[..],
            br#"[1,2]"#,
            br#"{"type":"invoice.paid","data":{"object":{}}}"#,
            br#"{"id":"evt_1","data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"invoice.paid"}"#,
        ] {
            assert!(
                matches!(Event::parse(body), Err(WebhookError::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let e = Event::parse(
            br#"{"id":"evt_1","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"in_1"}}}"#,
        )
        .expect("event");
        assert_eq!(e.created_ms, 1_700_000_000_000);
    }
}
