//! Stripe billing (external-apis.md §8) against the fake Stripe of the testkit: Checkout and the portal
//! through the API, signed webhooks (signature variants, duplicates, order, unknown customers, malformed
//! bodies), the payment-failed grace period and mail, and account deletion cancelling the subscription
//! while the invoice stays, detached.

use crate::helpers::{PASSWORD, TestAccount, TestApp, email};
use crate::tab::Tab;
use mtdesk_testkit::fake_stripe::{
    BILLING_COUNTRY, BILLING_NAME, Delivery, FakeStripe, FakeStripeConfig, Signing,
};
use mtdesk_testkit::smtp_sink::SmtpSink;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;
use std::time::Duration;

struct Billing {
    app: TestApp,
    fake: FakeStripe,
}

async fn db(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("database")
}

async fn spawn(smtp: Option<String>, webhook_secret: bool) -> Billing {
    let fake = FakeStripe::start(FakeStripeConfig::new()).await;
    let cfg = fake.config().clone();
    let base = fake.base_url();
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_STRIPE_SECRET_KEY".into(), cfg.secret_key.clone());
        if webhook_secret {
            v.insert(
                "MTDESK_STRIPE_WEBHOOK_SECRET".into(),
                cfg.webhook_secret.clone(),
            );
        }
        v.insert("MTDESK_STRIPE_API_BASE".into(), base);
        if let Some(smtp) = smtp {
            v.insert("MTDESK_SMTP_URL".into(), smtp);
        }
    })
    .await;
    fake.set_webhook_url(&app.url("/webhooks/stripe"));
    Billing { app, fake }
}

/// Marks the account's email verified directly in the database (checkout needs it).
async fn verify_email(app: &TestApp, account: &TestAccount) {
    sqlx::query("UPDATE accounts SET email_verified_at = $1 WHERE id = $2")
        .bind(mtdesk_domain::now_ms())
        .bind(&account.id)
        .execute(&mut db(app).await)
        .await
        .expect("verify");
}

async fn billing(app: &TestApp, account: &TestAccount) -> Value {
    let (status, body) = app.get("/api/v1/billing", &account.token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_string()))
        .bind(bind.to_string())
        .fetch_one(&mut db(app).await)
        .await
        .expect("count")
        .try_get::<i64, _>(0)
        .expect("n")
}

async fn stripe_event_count(app: &TestApp) -> i64 {
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) FROM stripe_events")
        .fetch_one(&mut db(app).await)
        .await
        .expect("count")
        .try_get::<i64, _>(0)
        .expect("n")
}

/// A verified account that started a Checkout for `plan`; returns it with the session id.
async fn checkout(b: &Billing, plan: &str) -> (TestAccount, String) {
    let account = b.app.sign_up(&email("billing")).await;
    verify_email(&b.app, &account).await;
    let (status, body) = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": plan}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let session = b.fake.last_session_id().expect("a session");
    (account, session)
}

/// A verified account on the starter plan through a completed Checkout.
async fn subscribed(b: &Billing) -> (TestAccount, mtdesk_testkit::fake_stripe::Completed) {
    let (account, session) = checkout(b, "starter").await;
    let done = b
        .fake
        .complete_checkout(&session, Delivery::default())
        .await;
    for (status, body) in &done.responses {
        assert_eq!(*status, 200, "{body}");
    }
    (account, done)
}

/// The payment-failed mails the sink received for the account's owner.
fn payment_failed_mails(
    sink: &SmtpSink,
    account: &TestAccount,
) -> Vec<mtdesk_testkit::smtp_sink::ReceivedMail> {
    sink.messages()
        .into_iter()
        .filter(|m| {
            m.to.contains(&account.email)
                && m.header("Subject")
                    .unwrap_or_default()
                    .contains("payment failed")
        })
        .collect()
}

fn all_ok(responses: &[(u16, String)]) {
    for (status, body) in responses {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<Value>(body).expect("json"),
            json!({"received": true})
        );
    }
}

#[tokio::test]
async fn upgrading_through_checkout_grants_the_plan_only_after_the_signed_webhook() {
    let b = spawn(None, true).await;
    let account = b.app.sign_up_unverified(&email("upgrade")).await;

    // Not verified yet: 403, nothing sent to Stripe.
    let (status, body) = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": "starter"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "email_not_verified");
    assert!(b.fake.requests().is_empty());

    verify_email(&b.app, &account).await;
    let (status, body) = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": "starter"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["url"].as_str().expect("url");
    assert!(
        url.starts_with(&format!("{}/checkout/cs_test_", b.fake.base_url())),
        "{url}"
    );

    // What Stripe received (§8.1, §8.2).
    let sent = b.fake.requests_to("/v1/checkout/sessions");
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!(r.method, "POST");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {}", b.fake.config().secret_key).as_str())
    );
    assert_eq!(r.header("stripe-version"), Some("2025-03-31.basil"));
    let key = r.header("idempotency-key").expect("idempotency key");
    assert!(uuid::Uuid::parse_str(key).is_ok(), "{key}");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.param("mode"), Some("subscription"));
    assert_eq!(r.param("line_items[0][price]"), Some("price_starter"));
    assert_eq!(r.param("line_items[0][quantity]"), Some("1"));
    assert_eq!(
        r.param("success_url"),
        Some(
            format!(
                "{}/account/billing?checkout=success&session_id={{CHECKOUT_SESSION_ID}}",
                b.app.base
            )
            .as_str()
        )
    );
    assert!(
        r.raw_body.contains("%7BCHECKOUT_SESSION_ID%7D"),
        "{}",
        r.raw_body
    );
    assert!(
        r.raw_body
            .contains("line_items%5B0%5D%5Bprice%5D=price_starter"),
        "{}",
        r.raw_body
    );
    assert_eq!(
        r.param("cancel_url"),
        Some(format!("{}/account/billing?checkout=cancel", b.app.base).as_str())
    );
    assert_eq!(r.param("client_reference_id"), Some(account.id.as_str()));
    assert_eq!(r.param("customer_email"), Some(account.email.as_str()));
    assert_eq!(r.param("customer"), None);
    assert_eq!(r.param("metadata[account_id]"), Some(account.id.as_str()));
    assert_eq!(
        r.param("subscription_data[metadata][account_id]"),
        Some(account.id.as_str())
    );

    // The redirect back grants nothing: only the webhook does (§8.2).
    let before = billing(&b.app, &account).await;
    assert_eq!(before["billing_status"], "none");
    assert_eq!(before["plan"]["id"], "free");
    // The free plan allows one chatbot: the second is refused until the upgrade.
    b.app.create_chatbot(&account.token, "First bot").await;
    let (status, body) = b
        .app
        .post(
            "/api/v1/chatbots",
            &account.token,
            json!({"name": "Second bot"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "plan_limit");
    let (status, body) = b
        .app
        .api(
            Method::POST,
            "/api/v1/billing/portal",
            Some(&account.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "no customer yet: {body}");

    let session = b.fake.last_session_id().expect("session");
    let done = b
        .fake
        .complete_checkout(&session, Delivery::default())
        .await;
    all_ok(&done.responses);

    let after = billing(&b.app, &account).await;
    assert_eq!(after["billing_enabled"], true);
    assert_eq!(after["plan"]["id"], "starter");
    // The limit is raised: Starter allows three chatbots.
    b.app.create_chatbot(&account.token, "Second bot").await;
    b.app.create_chatbot(&account.token, "Third bot").await;
    let (status, body) = b
        .app
        .post(
            "/api/v1/chatbots",
            &account.token,
            json!({"name": "Fourth bot"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(after["plan"]["name"], "Starter");
    assert_eq!(after["billing_status"], "active");
    assert_eq!(after["grace_until"], Value::Null);
    assert_eq!(after["has_stripe_customer"], true);
    let invoices = after["invoices"].as_array().expect("invoices");
    assert_eq!(invoices.len(), 1, "{after}");
    assert_eq!(invoices[0]["status"], "paid");
    assert_eq!(invoices[0]["amount_cents"], 1900);
    assert_eq!(invoices[0]["currency"], "usd");
    assert_eq!(invoices[0]["billing_name"], BILLING_NAME);
    assert_eq!(invoices[0]["billing_country"], BILLING_COUNTRY);
    assert!(
        invoices[0]["hosted_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&done.invoice))
    );
    assert!(invoices[0]["number"].as_str().is_some());

    // Now the portal works, and a second purchase reuses the customer.
    let (status, body) = b
        .app
        .api(
            Method::POST,
            "/api/v1/billing/portal",
            Some(&account.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["url"].as_str().expect("url").contains("/portal/bps_"));
    let portal = b.fake.requests_to("/v1/billing_portal/sessions");
    assert_eq!(portal[0].param("customer"), Some(done.customer.as_str()));
    assert_eq!(
        portal[0].param("return_url"),
        Some(format!("{}/account/billing", b.app.base).as_str())
    );
    assert!(portal[0].header("idempotency-key").is_some());
    // A second Checkout while subscribed would charge twice: refused, the portal changes plans.
    let (status, body) = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("Manage billing"),
        "{body}"
    );
    assert_eq!(b.fake.requests_to("/v1/checkout/sessions").len(), 1);

    // After the subscription ended, a new purchase reuses the Stripe customer.
    b.fake
        .send_subscription_deleted(&done.subscription, Signing::Valid)
        .await;
    assert_eq!(
        billing(&b.app, &account).await["billing_status"],
        "canceled"
    );
    let (status, body) = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": "pro"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = b.fake.requests_to("/v1/checkout/sessions");
    assert_eq!(second[1].param("customer"), Some(done.customer.as_str()));
    assert_eq!(second[1].param("customer_email"), None);
    assert_ne!(
        second[0].header("idempotency-key"),
        second[1].header("idempotency-key")
    );
}

#[tokio::test]
async fn stripe_failures_are_retried_with_the_same_idempotency_key() {
    let b = spawn(None, true).await;
    let account = b.app.sign_up(&email("retry")).await;
    verify_email(&b.app, &account).await;
    b.fake.fail_next(500);
    b.fake.fail_next(429);
    let (status, body) = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": "starter"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sent = b.fake.requests_to("/v1/checkout/sessions");
    assert_eq!(sent.len(), 3);
    let key = sent[0].header("idempotency-key").expect("key");
    assert!(
        sent.iter()
            .all(|r| r.header("idempotency-key") == Some(key))
    );
    assert!(sent.iter().all(|r| r.raw_body == sent[0].raw_body));

    // Stripe keeps failing: a clear 502, never a 500.
    for _ in 0..4 {
        b.fake.fail_next(503);
    }
    let (status, body) = b
        .app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": "starter"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"], "upstream_error");
}

#[tokio::test]
async fn the_fake_replays_idempotent_requests_and_refuses_changed_parameters() {
    let fake = FakeStripe::start(FakeStripeConfig::new()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/v1/checkout/sessions", fake.base_url());
    let form = "mode=subscription&line_items%5B0%5D%5Bprice%5D=price_starter&success_url=http%3A%2F%2Fx%2Fok";
    let send = |body: &'static str, key: &'static str, auth: &'static str| {
        client
            .post(&url)
            .header("Authorization", auth)
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let first = send(form, "k-1", "Bearer sk_test_fake")
        .await
        .expect("send");
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.expect("json");
    let again: Value = send(form, "k-1", "Bearer sk_test_fake")
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(first, again, "same key and params: the stored response");
    let changed = send(
        "mode=subscription&line_items%5B0%5D%5Bprice%5D=price_pro&success_url=http%3A%2F%2Fx%2Fok",
        "k-1",
        "Bearer sk_test_fake",
    )
    .await
    .expect("send");
    assert_eq!(changed.status(), 400);
    let changed: Value = changed.json().await.expect("json");
    assert_eq!(changed["error"]["type"], "idempotency_error");
    let unauthorized = send(form, "k-2", "Bearer sk_live_nope")
        .await
        .expect("send");
    assert_eq!(unauthorized.status(), 401);
    let body: Value = unauthorized.json().await.expect("json");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let unknown_price = send(
        "mode=subscription&line_items%5B0%5D%5Bprice%5D=price_x&success_url=http%3A%2F%2Fx%2Fok",
        "k-3",
        "Bearer sk_test_fake",
    )
    .await
    .expect("send");
    assert_eq!(unknown_price.status(), 400);
    let no_mode = send(
        "line_items%5B0%5D%5Bprice%5D=price_starter&success_url=x",
        "k-4",
        "Bearer sk_test_fake",
    )
    .await
    .expect("send");
    assert_eq!(no_mode.status(), 400);
    let portal = client
        .post(format!("{}/v1/billing_portal/sessions", fake.base_url()))
        .header("Authorization", "Bearer sk_test_fake")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("customer=cus_nobody&return_url=http%3A%2F%2Fx")
        .send()
        .await
        .expect("send");
    assert_eq!(portal.status(), 404);
    let body: Value = portal.json().await.expect("json");
    assert_eq!(body["error"]["code"], "resource_missing");
}

#[tokio::test]
async fn unknown_and_unpurchasable_plans_are_refused() {
    let b = spawn(None, true).await;
    let account = b.app.sign_up(&email("plans")).await;
    verify_email(&b.app, &account).await;
    for (plan, why) in [("gold", "unknown plan"), ("free", "cannot be bought")] {
        let (status, body) = b
            .app
            .post(
                "/api/v1/billing/checkout",
                &account.token,
                json!({"plan": plan}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{plan}: {body}");
        assert!(
            body["message"].as_str().expect("message").contains(why),
            "{body}"
        );
    }
    let (status, _) = b
        .app
        .post("/api/v1/billing/checkout", &account.token, json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(b.fake.requests().is_empty());
}

#[tokio::test]
async fn without_stripe_settings_billing_is_off_and_webhooks_are_refused() {
    let app = TestApp::spawn().await;
    let account = app.sign_up(&email("off")).await;
    verify_email(&app, &account).await;
    let (status, body) = app
        .post(
            "/api/v1/billing/checkout",
            &account.token,
            json!({"plan": "starter"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("billing is not enabled")
    );
    let (status, _) = app
        .api(
            Method::POST,
            "/api/v1/billing/portal",
            Some(&account.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let overview = billing(&app, &account).await;
    assert_eq!(overview["billing_enabled"], false);
    assert_eq!(overview["purchasable_plans"], json!([]));

    let body = br#"{"id":"evt_1","object":"event","type":"invoice.paid","created":1,"data":{"object":{"id":"in_1"}}}"#;
    let header = format!(
        "t={},v1={}",
        mtdesk_domain::now_ms() / 1000,
        mtdesk_testkit::fake_stripe::sign("whsec_x", mtdesk_domain::now_ms() / 1000, body)
    );
    let resp = app
        .client
        .post(app.url("/webhooks/stripe"))
        .header("Stripe-Signature", header)
        .body(body.to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let text = resp.text().await.expect("body");
    assert!(text.contains("MTDESK_STRIPE_WEBHOOK_SECRET"), "{text}");
    assert_eq!(stripe_event_count(&app).await, 0);
}

#[tokio::test]
async fn a_missing_webhook_secret_refuses_deliveries_even_with_a_secret_key() {
    let b = spawn(None, false).await;
    let (account, session) = checkout(&b, "starter").await;
    let done = b
        .fake
        .complete_checkout(&session, Delivery::default())
        .await;
    for (status, body) in &done.responses {
        assert_eq!(*status, 403, "{body}");
    }
    assert_eq!(billing(&b.app, &account).await["billing_status"], "none");
    assert_eq!(stripe_event_count(&b.app).await, 0);
}

#[tokio::test]
async fn badly_signed_webhooks_are_rejected_with_400_and_change_nothing() {
    let b = spawn(None, true).await;
    let (account, session) = checkout(&b, "starter").await;
    for signing in [
        Signing::Missing,
        Signing::WrongSecret,
        Signing::Stale,
        Signing::Future,
        Signing::V0Only,
    ] {
        let done = b
            .fake
            .complete_checkout(
                &session,
                Delivery {
                    signing,
                    ..Delivery::default()
                },
            )
            .await;
        for (status, body) in &done.responses {
            assert_eq!(*status, 400, "{signing:?}: {body}");
            assert!(body.contains("invalid_signature"), "{body}");
        }
    }
    // An altered body under a signature made for the original.
    let event = b.fake.event(
        "customer.subscription.deleted",
        mtdesk_domain::now_ms() / 1000,
        json!({"id": "sub_x", "customer": "cus_x", "status": "canceled", "metadata": {"account_id": account.id}}),
    );
    let body = serde_json::to_vec(&event).expect("json");
    let header = b.fake.header_for(&body, Signing::Valid);
    let mut altered = body.clone();
    let pos = altered.len() - 2;
    altered.insert(pos, b' ');
    assert_eq!(b.fake.post_raw(&altered, header.clone()).await.0, 400);
    for garbage in ["garbage", "t=abc,v1=00", "v1=abcdef", ""] {
        assert_eq!(
            b.fake.post_raw(&body, Some(garbage.to_string())).await.0,
            400,
            "{garbage:?}"
        );
    }
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "none");
    assert_eq!(state["invoices"], json!([]));
    assert_eq!(stripe_event_count(&b.app).await, 0);

    // Two v1 during a secret roll: accepted when one matches.
    let done = b
        .fake
        .complete_checkout(
            &session,
            Delivery {
                signing: Signing::TwoV1,
                ..Delivery::default()
            },
        )
        .await;
    all_ok(&done.responses);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "active");
    assert_eq!(state["plan"]["id"], "starter");
}

#[tokio::test]
async fn duplicate_events_are_applied_once() {
    let sink = SmtpSink::start().await;
    let b = spawn(Some(sink.url()), true).await;
    let (account, session) = checkout(&b, "starter").await;
    let done = b
        .fake
        .complete_checkout(
            &session,
            Delivery {
                duplicate: true,
                ..Delivery::default()
            },
        )
        .await;
    assert_eq!(done.responses.len(), 6);
    all_ok(&done.responses);
    assert_eq!(stripe_event_count(&b.app).await, 3);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["invoices"].as_array().expect("invoices").len(), 1);
    assert_eq!(state["plan"]["id"], "starter");

    // The same payment_failed event delivered five times at once: one state change, one mail.
    let sub = b.fake.subscription_status(&done.subscription);
    assert_eq!(sub.as_deref(), Some("active"));
    let event = b.fake.event(
        "invoice.payment_failed",
        mtdesk_domain::now_ms() / 1000,
        json!({
            "id": "in_concurrent_1", "object": "invoice", "customer": done.customer, "status": "open",
            "amount_due": 1900, "amount_paid": 0, "currency": "usd", "created": 1_700_000_000,
            "parent": {"subscription_details": {"subscription": done.subscription}},
        }),
    );
    let sends = (0..5).map(|_| b.fake.post_event(&event, Signing::Valid));
    let answers = futures_util::future::join_all(sends).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(stripe_event_count(&b.app).await, 4);
    // Wait until the outbox is drained of it, then exactly one reached the owner.
    for _ in 0..400 {
        let queued = count(
            &b.app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE account_id = $1 AND kind = 'payment_failed'",
            &account.id,
        )
        .await;
        if queued == 0 && !payment_failed_mails(&sink, &account).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        payment_failed_mails(&sink, &account).len(),
        1,
        "exactly one mail for one failed invoice"
    );
}

#[tokio::test]
async fn events_in_reverse_order_end_in_the_right_state() {
    let b = spawn(None, true).await;
    let (account, session) = checkout(&b, "starter").await;
    let done = b
        .fake
        .complete_checkout(
            &session,
            Delivery {
                reversed: true,
                ..Delivery::default()
            },
        )
        .await;
    all_ok(&done.responses);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["plan"]["id"], "starter");
    assert_eq!(state["billing_status"], "active");
    assert_eq!(state["invoices"].as_array().expect("invoices").len(), 1);

    // An old subscription event arriving late does not undo the newer state.
    let old = b.fake.event(
        "customer.subscription.updated",
        mtdesk_domain::now_ms() / 1000 - 3600,
        json!({"id": done.subscription, "object": "subscription", "customer": done.customer,
               "status": "canceled", "items": {"data": [{"price": {"id": "price_starter"}}]}}),
    );
    assert_eq!(b.fake.post_event(&old, Signing::Valid).await.0, 200);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "active");
    assert_eq!(state["plan"]["id"], "starter");
}

#[tokio::test]
async fn events_for_unknown_customers_are_acknowledged_and_change_nothing() {
    let b = spawn(None, true).await;
    let bystander = b.app.sign_up(&email("bystander")).await;
    let before = billing(&b.app, &bystander).await;
    for (kind, object) in [
        (
            "customer.subscription.updated",
            json!({"id": "sub_nobody", "customer": "cus_nobody", "status": "active",
                   "items": {"data": [{"price": {"id": "price_pro"}}]}}),
        ),
        (
            "invoice.paid",
            json!({"id": "in_nobody", "customer": "cus_nobody", "status": "paid", "amount_paid": 9900,
                   "currency": "usd", "subscription": "sub_nobody"}),
        ),
        (
            "checkout.session.completed",
            json!({"id": "cs_nobody", "mode": "subscription", "customer": "cus_nobody",
                   "subscription": "sub_nobody", "client_reference_id": "no-such-account"}),
        ),
        ("customer.created", json!({"id": "cus_nobody"})),
    ] {
        let event = b.fake.event(kind, mtdesk_domain::now_ms() / 1000, object);
        let (status, body) = b.fake.post_event(&event, Signing::Valid).await;
        assert_eq!(status, 200, "{kind}: {body}");
    }
    assert_eq!(billing(&b.app, &bystander).await, before);
    assert_eq!(
        count(
            &b.app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM invoices WHERE stripe_invoice_id = $1",
            "in_nobody"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &b.app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM accounts WHERE stripe_customer_id = $1",
            "cus_nobody"
        )
        .await,
        0
    );
    // Only the dedupe rows of the three handled types (an unknown type is just acknowledged).
    assert_eq!(stripe_event_count(&b.app).await, 3);
}

#[tokio::test]
async fn a_deleted_subscription_returns_the_account_to_the_default_plan() {
    let b = spawn(None, true).await;
    let (account, done) = subscribed(&b).await;
    assert_eq!(billing(&b.app, &account).await["plan"]["id"], "starter");
    let (status, body) = b
        .fake
        .send_subscription_deleted(&done.subscription, Signing::Valid)
        .await;
    assert_eq!(status, 200, "{body}");
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "canceled");
    assert_eq!(state["plan"]["id"], "free");
    assert_eq!(state["subscribed_plan_id"], Value::Null);
    // The invoice stays; the customer stays (the portal still shows old invoices).
    assert_eq!(state["invoices"].as_array().expect("invoices").len(), 1);
    assert_eq!(state["has_stripe_customer"], true);
}

#[tokio::test]
async fn a_failed_payment_starts_a_grace_period_and_mails_the_owner_once_per_invoice() {
    let sink = SmtpSink::start().await;
    let b = spawn(Some(sink.url()), true).await;
    let (account, done) = subscribed(&b).await;
    let started = mtdesk_domain::now_ms();
    let (invoice, (status, body)) = b
        .fake
        .send_payment_failed(&done.subscription, None, Signing::Valid)
        .await;
    assert_eq!(status, 200, "{body}");
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "past_due");
    let grace = state["grace_until"].as_i64().expect("grace_until");
    let week = 7 * 24 * 3600 * 1000;
    assert!(
        grace >= started + week - 60_000 && grace <= started + week + 60_000,
        "{grace}"
    );
    // Within the grace period the paid plan still applies.
    assert_eq!(state["plan"]["id"], "starter");
    // The billing page warns about it.
    let tab = Tab::new(&b.app);
    let token = tab.get("/login").await.csrf();
    let login = tab
        .post(
            "/login",
            &[
                ("email", account.email.as_str()),
                ("password", PASSWORD),
                ("csrf", token.as_str()),
            ],
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER);
    let page = tab.get("/account/billing").await;
    assert!(page.body.contains("id=\"grace-warning\""), "{}", page.body);

    // Stripe retries the same invoice: a new event, no second mail, the grace period is not extended.
    let (_, (status, _)) = b
        .fake
        .send_payment_failed(&done.subscription, Some(&invoice), Signing::Valid)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        billing(&b.app, &account).await["grace_until"].as_i64(),
        Some(grace)
    );

    let mut mails = Vec::new();
    for _ in 0..400 {
        mails = payment_failed_mails(&sink, &account);
        if !mails.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(mails.len(), 1, "one mail about the failed payment");
    let subject = mails[0].header("Subject").unwrap_or_default();
    assert!(subject.contains("payment failed"), "{subject}");
    // Give a (wrong) second mail the time to arrive, then check there is still one.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let n = payment_failed_mails(&sink, &account).len();
    assert_eq!(n, 1);
    assert_eq!(
        count(
            &b.app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM outbox WHERE account_id = $1 AND kind = 'payment_failed'",
            &account.id
        )
        .await,
        0,
        "no second payment mail queued"
    );

    // The invoice is paid after all: grace ends, active again, the invoice is recorded as paid.
    let paid = b.fake.event(
        "invoice.paid",
        mtdesk_domain::now_ms() / 1000,
        json!({"id": invoice, "object": "invoice", "customer": done.customer, "status": "paid",
               "amount_paid": 1900, "currency": "usd", "created": 1_700_000_000,
               "subscription": done.subscription}),
    );
    assert_eq!(b.fake.post_event(&paid, Signing::Valid).await.0, 200);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "active");
    assert_eq!(state["grace_until"], Value::Null);
    let invoices = state["invoices"].as_array().expect("invoices");
    assert_eq!(invoices.len(), 2);
    assert!(invoices.iter().all(|i| i["status"] == "paid"), "{state}");
}

#[tokio::test]
async fn malformed_bodies_with_valid_signatures_get_400_never_5xx() {
    let b = spawn(None, true).await;
    for body in [
        &b"not json at all"[..],
        b"{}",
        b"[1,2,3]",
        br#"{"id":"evt_1"}"#,
        br#"{"id":"evt_2","type":"invoice.paid","data":{"object":"nope"}}"#,
        br#"{"id":"evt_3","type":"invoice.paid","created":1,"data":{"object":{"customer":"cus_1"}}}"#,
        br#"{"id":"evt_4","type":"customer.subscription.updated","created":1,"data":{"object":{"status":"active"}}}"#,
    ] {
        let header = b.fake.header_for(body, Signing::Valid);
        let (status, text) = b.fake.post_raw(body, header).await;
        assert_eq!(status, 400, "{}: {text}", String::from_utf8_lossy(body));
    }
    assert_eq!(stripe_event_count(&b.app).await, 0);
    // Too large: refused before anything is read.
    let big = vec![b'a'; 2 * 1024 * 1024];
    let (status, _) = b.fake.post_raw(&big, Some("t=1,v1=00".into())).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn deleting_the_account_cancels_the_subscription_and_keeps_the_invoice_detached() {
    let b = spawn(None, true).await;
    let (account, done) = subscribed(&b).await;
    assert_eq!(
        b.fake.subscription_status(&done.subscription).as_deref(),
        Some("active")
    );

    // Stripe is down: the deletion stops before anything is deleted, with a clear message.
    for _ in 0..4 {
        b.fake.fail_next(503);
    }
    let (status, body) = b
        .app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&account.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["message"]
            .as_str()
            .expect("message")
            .contains("Stripe"),
        "{body}"
    );
    assert_eq!(billing(&b.app, &account).await["billing_status"], "active");

    let (status, body) = b
        .app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&account.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["kept"]
            .as_str()
            .is_some_and(|k| k.starts_with("1 invoice (")),
        "the receipt names what tax law keeps: {body}"
    );
    assert_eq!(
        b.fake.subscription_status(&done.subscription).as_deref(),
        Some("canceled")
    );
    let cancels: Vec<_> = b
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .collect();
    assert!(
        cancels
            .iter()
            .all(|r| r.path == format!("/v1/subscriptions/{}", done.subscription))
    );

    let row = sqlx::query(
        "SELECT account_id, hosted_url, number, amount_cents, currency, billing_name, billing_country
         FROM invoices WHERE stripe_invoice_id = $1",
    )
    .bind(&done.invoice)
    .fetch_one(&mut db(&b.app).await)
    .await
    .expect("the invoice stays");
    assert_eq!(
        row.try_get::<Option<String>, _>("account_id").expect("col"),
        None
    );
    assert_eq!(
        row.try_get::<Option<String>, _>("hosted_url").expect("col"),
        None
    );
    assert!(
        row.try_get::<Option<String>, _>("number")
            .expect("col")
            .is_some()
    );
    assert_eq!(row.try_get::<i64, _>("amount_cents").expect("col"), 1900);
    assert_eq!(
        row.try_get::<Option<String>, _>("billing_name")
            .expect("col")
            .as_deref(),
        Some(BILLING_NAME)
    );
    assert_eq!(
        row.try_get::<Option<String>, _>("billing_country")
            .expect("col")
            .as_deref(),
        Some(BILLING_COUNTRY)
    );
    // Nothing in the invoices names the account or its owner any more.
    for needle in [&account.id, &account.email] {
        assert_eq!(
            count(
                &b.app,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM invoices
                 WHERE account_id = $1 OR COALESCE(billing_name, '') = $1 OR COALESCE(hosted_url, '') = $1",
                needle
            )
            .await,
            0
        );
    }
    // A late event for the deleted account changes nothing and is acknowledged.
    let (status, _) = b
        .fake
        .send_subscription_deleted(&done.subscription, Signing::Valid)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        count(
            &b.app,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM accounts WHERE id = $1",
            &account.id
        )
        .await,
        0
    );
}

#[tokio::test]
async fn the_billing_page_shows_the_plan_and_its_buttons_redirect_to_stripe() {
    let b = spawn(None, true).await;
    let (account, _done) = subscribed(&b).await;
    let tab = Tab::new(&b.app);
    let token = tab.get("/login").await.csrf();
    let login = tab
        .post(
            "/login",
            &[
                ("email", account.email.as_str()),
                ("password", PASSWORD),
                ("csrf", token.as_str()),
            ],
        )
        .await;
    assert_eq!(login.status, StatusCode::SEE_OTHER, "{}", login.body);

    let page = tab.get("/account/billing?checkout=success").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csp = page
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(csp.contains(&b.fake.base_url()), "{csp}");
    assert!(page.body.contains("Starter"), "plan name shown");
    assert!(page.body.contains("payment is being confirmed"));
    assert!(page.body.contains("id=\"invoice-list\""));
    assert!(page.body.contains("id=\"manage-billing\""));
    // Subscribed: plan changes go through the portal, no second Checkout is offered.
    assert!(!page.body.contains("id=\"upgrade-pro\""));
    assert!(page.body.contains("id=\"change-plan-hint\""));
    let csrf = page.csrf();

    let portal = tab
        .post("/account/billing/portal", &[("csrf", csrf.as_str())])
        .await;
    assert_eq!(portal.status, StatusCode::SEE_OTHER, "{}", portal.body);
    assert!(
        portal
            .location()
            .starts_with(&format!("{}/portal/bps_", b.fake.base_url())),
        "{}",
        portal.location()
    );
    let upgrade = tab
        .post(
            "/account/billing/checkout",
            &[("csrf", csrf.as_str()), ("plan", "pro")],
        )
        .await;
    assert_eq!(upgrade.status, StatusCode::CONFLICT, "{}", upgrade.body);
    assert!(
        upgrade.body.contains("already has a subscription"),
        "{}",
        upgrade.body
    );
    let unknown = tab
        .post(
            "/account/billing/checkout",
            &[("csrf", csrf.as_str()), ("plan", "gold")],
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert!(unknown.body.contains("unknown plan"), "{}", unknown.body);
    let forged = tab
        .post(
            "/account/billing/checkout",
            &[("csrf", "forged"), ("plan", "pro")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_emailed_request_cancels_the_subscription_and_ticks_stripe_on_the_checklist() {
    let b = spawn(None, true).await;
    let (account, done) = subscribed(&b).await;
    let stripe_task = |view: &mtdesk_privacy::requests::RequestView| {
        view.tasks
            .iter()
            .find(|t| t.processor.id == "stripe")
            .map(|t| (t.status.clone(), t.note.clone().unwrap_or_default()))
            .expect("stripe line")
    };
    let request = |mail: &str| mtdesk_privacy::requests::NewRequest {
        email: mail.to_string(),
        name: "Ann Lee".into(),
        scope: mtdesk_domain::privacy_request::RequestScope::All,
        description: None,
        origin: "email",
        received_at: None,
    };
    let privacy = &b.app.state.privacy;
    let added = privacy
        .add_request(request(&account.email))
        .await
        .expect("add");
    let view = privacy
        .execute_request(&added.id, "ops@operator.example")
        .await
        .expect("execute");
    assert_eq!(
        b.fake.subscription_status(&done.subscription).as_deref(),
        Some("canceled")
    );
    let (status, note) = stripe_task(&view);
    assert_eq!(status, "done", "{note}");
    assert!(note.contains("subscription cancelled"), "{note}");

    // Someone without a Stripe customer: nothing to do there, and the checklist says why.
    let other = b.app.sign_up(&email("billing-none")).await;
    let added = privacy
        .add_request(request(&other.email))
        .await
        .expect("add");
    let view = privacy
        .execute_request(&added.id, "ops@operator.example")
        .await
        .expect("execute");
    let (status, note) = stripe_task(&view);
    assert_eq!(status, "not_applicable");
    assert!(note.contains("no Stripe customer"), "{note}");
}

#[tokio::test]
async fn an_unpaid_checkout_links_ids_only_and_a_late_failure_does_not_undo_a_paid_invoice() {
    let b = spawn(None, true).await;
    let (account, session) = checkout(&b, "starter").await;
    let now = mtdesk_domain::now_ms() / 1000;
    // A payment method that settles later: the session completes unpaid, nothing is granted yet.
    let completed = b.fake.event(
        "checkout.session.completed",
        now - 30,
        json!({"id": session, "object": "checkout.session", "mode": "subscription",
               "status": "complete", "payment_status": "unpaid", "customer": "cus_late",
               "subscription": "sub_late", "client_reference_id": account.id,
               "metadata": {"account_id": account.id, "plan_id": "starter"}}),
    );
    assert_eq!(b.fake.post_event(&completed, Signing::Valid).await.0, 200);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "none", "{state}");
    assert_eq!(state["plan"]["id"], "free");
    assert_eq!(state["has_stripe_customer"], true);

    // The subscription turns active once the payment settles: now the plan applies.
    let active = b.fake.event(
        "customer.subscription.updated",
        now - 20,
        json!({"id": "sub_late", "object": "subscription", "customer": "cus_late",
               "status": "active", "items": {"data": [{"price": {"id": "price_starter"}}]}}),
    );
    assert_eq!(b.fake.post_event(&active, Signing::Valid).await.0, 200);
    let invoice = json!({"id": "in_late", "object": "invoice", "customer": "cus_late",
        "number": "INV-7", "amount_paid": 1900, "amount_due": 1900, "currency": "usd",
        "created": now - 15, "customer_name": "Lee Shoes GmbH",
        "customer_address": {"country": "DE"}, "attempt_count": 1,
        "parent": {"type": "subscription_details",
                   "subscription_details": {"subscription": "sub_late"}}});
    let mut paid = invoice.clone();
    paid["status"] = json!("paid");
    let mut failed = invoice;
    failed["status"] = json!("open");
    let paid = b.fake.event("invoice.paid", now - 10, paid);
    assert_eq!(b.fake.post_event(&paid, Signing::Valid).await.0, 200);
    // The failure of the same invoice, reported after its payment: ignored.
    let failed = b.fake.event("invoice.payment_failed", now - 12, failed);
    assert_eq!(b.fake.post_event(&failed, Signing::Valid).await.0, 200);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "active", "{state}");
    assert_eq!(state["plan"]["id"], "starter");
    assert_eq!(state["grace_until"], Value::Null);
    let invoices = state["invoices"].as_array().expect("invoices");
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["status"], "paid");

    // Events of another subscription (a second one) do not move the account's state.
    let other = b.fake.event(
        "customer.subscription.updated",
        now - 5,
        json!({"id": "sub_other", "object": "subscription", "customer": "cus_late",
               "status": "canceled", "items": {"data": [{"price": {"id": "price_pro"}}]}}),
    );
    assert_eq!(b.fake.post_event(&other, Signing::Valid).await.0, 200);
    let state = billing(&b.app, &account).await;
    assert_eq!(state["billing_status"], "active", "{state}");
    assert_eq!(state["plan"]["id"], "starter");
}
