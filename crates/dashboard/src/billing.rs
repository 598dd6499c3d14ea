//! `/account/billing`: the plan, billing status and grace warning, Upgrade (Stripe Checkout, §8.2 of
//! external-apis.md), Manage billing (Customer Portal, §8.3) and the invoices. The plan changes only when
//! Stripe's signed webhook confirms the payment, never because the browser came back from Checkout.

use crate::web::{self, Chrome, CsrfForm, CsrfOnly, User, api_error, has_csrf, page, respond};
use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use mtdesk_http::api::billing::{self as api, BillingOverview};
use mtdesk_http::{ApiError, AppState};
use serde::Deserialize;

/// A plan the account can buy.
pub struct PlanRow {
    id: String,
    name: String,
    /// "19.00 USD".
    price: String,
    /// The plan the account is on now.
    current: bool,
}

pub struct InvoiceRow {
    date: String,
    number: String,
    amount: String,
    status: String,
    url: Option<String>,
}

#[derive(Template)]
#[template(path = "billing.html")]
pub struct BillingPage {
    chrome: Chrome,
    billing_enabled: bool,
    plan_name: String,
    status_label: &'static str,
    /// The end of the grace period, when a payment failed.
    grace: Option<String>,
    canceled: bool,
    /// A live subscription: plan changes go through the Customer Portal, not a second Checkout.
    subscribed: bool,
    has_customer: bool,
    plans: Vec<PlanRow>,
    invoices: Vec<InvoiceRow>,
    error: Option<String>,
    /// The plan's limits against this month's usage (the same meters as My Account).
    meters: Vec<crate::account::MeterRow>,
}
page!(BillingPage);

fn money(cents: i64, currency: &str) -> String {
    format!(
        "{}.{:02} {}",
        cents / 100,
        (cents % 100).abs(),
        currency.to_uppercase()
    )
}

fn status_label(status: &str) -> &'static str {
    match status {
        "active" => "Active",
        "trialing" => "Trial",
        "past_due" => "Payment failed (grace period)",
        "unpaid" => "Unpaid",
        "canceled" => "Cancelled",
        _ => "No subscription",
    }
}

fn view(
    chrome: Chrome,
    o: BillingOverview,
    error: Option<String>,
    meters: Vec<crate::account::MeterRow>,
) -> BillingPage {
    let current = o.plan.as_ref().map(|p| p.id.clone());
    BillingPage {
        chrome,
        billing_enabled: o.billing_enabled,
        plan_name: o
            .plan
            .as_ref()
            .map(|p| p.name.clone())
            .unwrap_or_else(|| "—".into()),
        status_label: status_label(&o.billing_status),
        grace: o
            .grace_until
            .filter(|_| o.billing_status == "past_due")
            .map(web::date_time),
        canceled: o.billing_status == "canceled",
        subscribed: matches!(
            o.billing_status.as_str(),
            "active" | "trialing" | "past_due"
        ),
        has_customer: o.has_stripe_customer,
        plans: o
            .purchasable_plans
            .into_iter()
            .map(|p| PlanRow {
                current: current.as_deref() == Some(p.id.as_str()),
                price: money(p.price_cents, &p.currency),
                id: p.id,
                name: p.name,
            })
            .collect(),
        invoices: o
            .invoices
            .into_iter()
            .map(|i| InvoiceRow {
                date: web::date(i.issued_at),
                number: i.number.unwrap_or_else(|| "—".into()),
                amount: money(i.amount_cents, &i.currency),
                status: i.status,
                url: i.hosted_url,
            })
            .collect(),
        error,
        meters,
    }
}

/// The page's CSP: the site-wide one, with Stripe's Checkout and portal hosts (and a configured API base
/// such as a local fake) allowed as form targets, because the Upgrade and Manage billing forms end in a
/// redirect there and browsers apply `form-action` to redirects.
fn csp(state: &AppState) -> String {
    let mut targets = vec![
        "'self'".to_string(),
        "https://checkout.stripe.com".into(),
        "https://billing.stripe.com".into(),
    ];
    if let Some(s) = &state.stripe {
        let base = s.client.config().api_base.as_str();
        // scheme://host[:port] of the configured base.
        let origin_end = base
            .find("://")
            .and_then(|i| base[i + 3..].find('/').map(|j| i + 3 + j))
            .unwrap_or(base.len());
        let origin = &base[..origin_end];
        if origin != "https://api.stripe.com"
            && !origin.contains([' ', ';', ',', '\'', '"'])
            && origin.starts_with("http")
        {
            targets.push(origin.to_string());
        }
    }
    format!(
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         object-src 'none'; base-uri 'none'; form-action {}; frame-ancestors 'none'",
        targets.join(" ")
    )
}

fn render(state: &AppState, status: StatusCode, page: &BillingPage) -> Response {
    let mut resp = respond(status, page);
    if let Ok(v) = HeaderValue::from_str(&csp(state)) {
        resp.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, v);
    }
    resp
}

async fn show(
    state: &AppState,
    user: &User,
    chrome: Chrome,
    status: StatusCode,
    error: Option<String>,
) -> Response {
    let usage = mtdesk_http::api::usage::report(
        state,
        &user.account.id,
        mtdesk_domain::Month::of_ms(mtdesk_domain::now_ms()),
    )
    .await;
    match (api::overview(state, &user.account.id).await, usage) {
        (Ok(o), Ok(u)) => {
            let meters = u
                .meters
                .into_iter()
                .map(crate::account::meter_row)
                .collect();
            render(state, status, &view(chrome, o, error, meters))
        }
        (Err(e), _) | (_, Err(e)) => api_error(user.chrome("account"), e),
    }
}

/// `GET /account/billing`.
pub async fn page(
    State(state): State<AppState>,
    user: User,
    RawQuery(query): RawQuery,
) -> Response {
    let flash = match web::query_value(query.as_deref(), "checkout") {
        Some("success") => Some(
            "Thank you! Your payment is being confirmed; your plan changes as soon as Stripe confirms it.",
        ),
        Some("cancel") => Some("Checkout was cancelled; nothing was charged."),
        _ => None,
    };
    let chrome = user.chrome("account").with_flash(flash);
    show(&state, &user, chrome, StatusCode::OK, None).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CheckoutForm {
    csrf: String,
    plan: String,
}
has_csrf!(CheckoutForm);

/// A service error shown on the billing page (a form error), or an error page for outages and bugs.
async fn failed(state: &AppState, user: &User, e: ApiError) -> Response {
    match e {
        ApiError::Internal(_) | ApiError::Unavailable | ApiError::NotFound => {
            api_error(user.chrome("account"), e)
        }
        other => {
            let status = other.status();
            show(
                state,
                user,
                user.chrome("account"),
                status,
                Some(other.user_message()),
            )
            .await
        }
    }
}

/// `POST /account/billing/checkout`: creates a Checkout Session and sends the browser there (303).
pub async fn checkout(
    State(state): State<AppState>,
    user: User,
    CsrfForm(form): CsrfForm<CheckoutForm>,
) -> Response {
    match api::start_checkout(&state, &user.account.id, &form.plan).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => failed(&state, &user, e).await,
    }
}

/// `POST /account/billing/portal`: opens Stripe's Customer Portal (303).
pub async fn portal(
    State(state): State<AppState>,
    user: User,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    match api::open_portal(&state, &user.account.id).await {
        Ok(url) => Redirect::to(&url).into_response(),
        Err(e) => failed(&state, &user, e).await,
    }
}
