//! Billing (external-apis.md §8): `GET /api/v1/billing`, `POST /api/v1/billing/checkout` (a Stripe
//! Checkout Session, §8.2) and `POST /api/v1/billing/portal` (a Customer Portal session, §8.3).
//!
//! The plan is granted only by the signed webhook (`/webhooks/stripe`), never by the redirect back from
//! Checkout (§8.2). The functions here are shared with the dashboard's billing page.

use crate::AppState;
use crate::auth::ApiAccount;
use crate::error::{ApiError, ApiResult, ErrorBody};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use mtdesk_billing::stripe::{CheckoutRequest, StripeBilling, StripeError};
use mtdesk_domain::AccountId;
use mtdesk_storage::StorageError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/billing", get(get_billing))
        .route("/billing/checkout", post(checkout))
        .route("/billing/portal", post(portal))
}

/// A plan as the billing overview shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanRef {
    pub id: String,
    pub name: String,
}

/// An invoice kept for the account (tax law).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvoiceView {
    pub id: String,
    /// Stripe's invoice number, e.g. `MTD-0001`.
    pub number: Option<String>,
    /// paid, open, uncollectible, void.
    pub status: String,
    pub amount_cents: i64,
    pub currency: String,
    pub billing_name: Option<String>,
    pub billing_country: Option<String>,
    /// Stripe's hosted invoice page (view, download the PDF).
    pub hosted_url: Option<String>,
    /// Unix ms.
    pub issued_at: i64,
}

/// The account's billing state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BillingOverview {
    /// Whether this instance sells plans (Stripe configured). When false, the plan comes from
    /// `MTDESK_DEFAULT_PLAN` and nothing here can be bought.
    pub billing_enabled: bool,
    /// The plan that applies now (the paid plan while the subscription is in good standing or in its grace
    /// period, else the default plan). `null` when billing is off.
    pub plan: Option<PlanRef>,
    /// The plan of the subscription, whatever its state (`null`: none).
    pub subscribed_plan_id: Option<String>,
    /// none, active, trialing, past_due, unpaid, canceled.
    pub billing_status: String,
    /// While past_due: the paid plan applies until then (unix ms).
    pub grace_until: Option<i64>,
    /// Whether the account has a Stripe customer (the portal needs one).
    pub has_stripe_customer: bool,
    /// Plans that can be bought here.
    pub purchasable_plans: Vec<PurchasablePlan>,
    pub invoices: Vec<InvoiceView>,
}

/// A plan with a Stripe price.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PurchasablePlan {
    pub id: String,
    pub name: String,
    pub price_cents: i64,
    pub currency: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutBody {
    /// The plan id, e.g. `starter`.
    pub plan: String,
}

/// Where to send the browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedirectUrl {
    pub url: String,
}

fn billing_off() -> ApiError {
    ApiError::Busy(
        "billing is not enabled on this instance (the operator has not configured Stripe)".into(),
    )
}

fn stripe_failed(e: StripeError) -> ApiError {
    tracing::error!(error = %e, "Stripe call failed");
    ApiError::Upstream(format!("the payment provider refused or failed: {e}"))
}

fn public_url(state: &AppState) -> String {
    state.config.public_url.trim_end_matches('/').to_string()
}

fn stripe(state: &AppState) -> ApiResult<&StripeBilling> {
    state.stripe.as_deref().ok_or_else(billing_off)
}

/// The overview of [`get_billing`] (shared with the dashboard).
pub async fn overview(state: &AppState, account: &AccountId) -> ApiResult<BillingOverview> {
    let billing = state.store.billing_state(account).await?;
    let enabled = state.stripe.is_some();
    let plans = state.store.list_plans().await?;
    // The plan that applies now, by the same rule the limits use (billing off: MTDESK_DEFAULT_PLAN).
    let plan = mtdesk_billing::plans::effective_plan(
        &state.store,
        &state.plans,
        account,
        mtdesk_domain::now_ms(),
    )
    .await
    .map(|p| PlanRef {
        id: p.id,
        name: p.name,
    })
    .map(Some)?;
    let invoices = state
        .store
        .list_invoices(account)
        .await?
        .into_iter()
        .map(|i| InvoiceView {
            id: i.id,
            number: i.number,
            status: i.status,
            amount_cents: i.amount_cents,
            currency: i.currency,
            billing_name: i.billing_name,
            billing_country: i.billing_country,
            hosted_url: i.hosted_url,
            issued_at: i.issued_at,
        })
        .collect();
    Ok(BillingOverview {
        billing_enabled: enabled,
        plan,
        subscribed_plan_id: billing.plan_id,
        billing_status: billing.status,
        grace_until: billing.grace_until,
        has_stripe_customer: billing.stripe_customer_id.is_some(),
        purchasable_plans: if enabled {
            plans
                .iter()
                .filter(|p| p.stripe_price_id.is_some())
                .map(|p| PurchasablePlan {
                    id: p.id.clone(),
                    name: p.name.clone(),
                    price_cents: p.price_cents,
                    currency: p.currency.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
        invoices,
    })
}

/// Creates a Checkout Session for `plan` (§8.2) and returns its URL (shared with the dashboard).
/// Refused: billing off (409), email not verified (403), unknown or not purchasable plan (400).
pub async fn start_checkout(
    state: &AppState,
    account: &AccountId,
    plan: &str,
) -> ApiResult<String> {
    let stripe = stripe(state)?;
    if state.store.email_verified_at(account).await?.is_none() {
        return Err(ApiError::EmailNotVerified(
            "verify your email address before buying a plan (see the link we sent you)".into(),
        ));
    }
    let plan = match state.store.find_plan(plan.trim()).await {
        Ok(p) => p,
        Err(StorageError::NotFound) => {
            return Err(ApiError::BadRequest(format!("unknown plan {plan:?}")));
        }
        Err(e) => return Err(e.into()),
    };
    let Some(price_id) = plan.stripe_price_id.clone() else {
        return Err(ApiError::BadRequest(format!(
            "the plan {:?} cannot be bought (it has no Stripe price)",
            plan.id
        )));
    };
    let owner = state.store.find_account(account).await?;
    let billing = state.store.billing_state(account).await?;
    // One subscription per account: a second Checkout would charge twice. Plan changes of a live
    // subscription go through the Customer Portal (§8.3).
    if billing.stripe_subscription_id.is_some()
        && matches!(billing.status.as_str(), "active" | "trialing" | "past_due")
    {
        return Err(ApiError::Busy(
            "this account already has a subscription: change or cancel it with Manage billing (the \
             Customer Portal)"
                .into(),
        ));
    }
    let base = public_url(state);
    let req = CheckoutRequest {
        price_id,
        // `{CHECKOUT_SESSION_ID}` stays literal: Stripe substitutes it (§8.2).
        success_url: format!(
            "{base}/account/billing?checkout=success&session_id={{CHECKOUT_SESSION_ID}}"
        ),
        cancel_url: format!("{base}/account/billing?checkout=cancel"),
        account_id: account.as_str().to_string(),
        plan_id: plan.id.clone(),
        customer: billing.stripe_customer_id,
        customer_email: owner.email,
    };
    let session = stripe
        .client
        .create_checkout_session(&req)
        .await
        .map_err(stripe_failed)?;
    tracing::info!(account.id = %account, plan = %plan.id, session = %session.id, "Checkout Session created");
    Ok(session.url)
}

/// Creates a Customer Portal session (§8.3) and returns its URL (shared with the dashboard). 409 when
/// billing is off or the account has no Stripe customer yet.
pub async fn open_portal(state: &AppState, account: &AccountId) -> ApiResult<String> {
    let stripe = stripe(state)?;
    if state.store.email_verified_at(account).await?.is_none() {
        return Err(ApiError::EmailNotVerified(
            "verify your email address before managing payments (see the link we sent you)".into(),
        ));
    }
    let Some(customer) = state.store.billing_state(account).await?.stripe_customer_id else {
        return Err(ApiError::Busy(
            "there is no billing account yet: buy a plan first".into(),
        ));
    };
    let return_url = format!("{}/account/billing", public_url(state));
    let session = stripe
        .client
        .create_portal_session(&customer, &return_url)
        .await
        .map_err(stripe_failed)?;
    Ok(session.url)
}

/// The account's plan, billing status, grace period and invoices.
#[utoipa::path(get, path = "/api/v1/billing", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = BillingOverview), (status = 401, body = ErrorBody)))]
pub async fn get_billing(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<BillingOverview>> {
    Ok(Json(overview(&state, &account).await?))
}

/// Starts buying a plan: returns the Stripe Checkout URL to send the browser to. The plan is granted once
/// Stripe confirms the payment (webhook), not when the browser comes back.
#[utoipa::path(post, path = "/api/v1/billing/checkout", tag = "billing", security(("bearer" = [])),
    request_body = CheckoutBody,
    responses((status = 200, body = RedirectUrl),
        (status = 400, description = "unknown plan, or the plan cannot be bought", body = ErrorBody),
        (status = 403, description = "the email address is not verified", body = ErrorBody),
        (status = 409, description = "billing is not enabled on this instance, or the account already has a subscription (use the portal)", body = ErrorBody),
        (status = 502, description = "Stripe refused or failed", body = ErrorBody)))]
pub async fn checkout(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
    crate::extract::ApiJson(body): crate::extract::ApiJson<CheckoutBody>,
) -> ApiResult<Json<RedirectUrl>> {
    let url = start_checkout(&state, &account, &body.plan).await?;
    Ok(Json(RedirectUrl { url }))
}

/// Opens Stripe's Customer Portal (payment method, invoices, cancellation): returns its URL.
#[utoipa::path(post, path = "/api/v1/billing/portal", tag = "billing", security(("bearer" = [])),
    responses((status = 200, body = RedirectUrl),
        (status = 409, description = "billing is off, or no Stripe customer yet", body = ErrorBody),
        (status = 502, description = "Stripe refused or failed", body = ErrorBody)))]
pub async fn portal(
    State(state): State<AppState>,
    ApiAccount(account): ApiAccount,
) -> ApiResult<Json<RedirectUrl>> {
    let url = open_portal(&state, &account).await?;
    Ok(Json(RedirectUrl { url }))
}
