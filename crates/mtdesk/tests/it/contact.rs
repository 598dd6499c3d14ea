//! The public contact page: stored for the operator and mailed to them, a privacy request becoming a draft
//! deletion request, spam resistance without a captcha (signed render time, honeypot, link cap, rate
//! limits), retention and deletion of the messages.

use crate::helpers::TestApp;
use crate::privacy_ops::{mail_about, wait_outbox_empty};
use crate::tab::{Page, Tab};
use mtdesk::operator::{self, ContactCommand};
use mtdesk_testkit::smtp_sink::SmtpSink;
use reqwest::StatusCode;
use sqlx::Row;
use std::time::Duration;

const OPERATOR: &str = "hello@operator.example";

async fn app_with_mail() -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_SMTP_URL".into(), smtp);
        v.insert("MTDESK_PRIVACY_EMAIL".into(), OPERATOR.into());
        v.insert("MTDESK_OPERATOR_NAME".into(), "Lee Support Ltd".into());
    })
    .await;
    (app, sink)
}

fn hidden(page: &Page, name: &str) -> String {
    let at = page
        .body
        .find(&format!("name=\"{name}\""))
        .unwrap_or_else(|| panic!("no {name} field: {}", page.body));
    let tag_start = page.body[..at].rfind('<').unwrap_or(0);
    let tag = &page.body[tag_start..at + page.body[at..].find('>').unwrap_or(0)];
    let v = tag.find("value=\"").expect("value") + 7;
    tag[v..v + tag[v..].find('"').expect("quote")].to_string()
}

/// A browser tab holding a rendered contact form old enough to be sent by a person (2 s).
async fn filled_form(app: &TestApp) -> (Tab, String, String) {
    let tab = Tab::new(app);
    let page = tab.get("/contact").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"contact-form\""), "{}", page.body);
    let (csrf, stamp) = (page.csrf(), hidden(&page, "stamp"));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    (tab, csrf, stamp)
}

async fn send(tab: &Tab, csrf: &str, stamp: &str, fields: &[(&str, &str)]) -> Page {
    let mut form = vec![("csrf", csrf), ("stamp", stamp), ("website", "")];
    for (k, v) in fields {
        form.retain(|(name, _)| name != k);
        form.push((k, v));
    }
    tab.post("/contact", &form).await
}

async fn stored(app: &TestApp) -> Vec<mtdesk_storage::contact::ContactRecord> {
    app.state.store.list_contacts(1000).await.expect("list")
}

#[tokio::test]
async fn a_message_is_stored_and_mailed_and_a_privacy_request_becomes_a_draft() {
    let (app, sink) = app_with_mail().await;
    let (tab, csrf, stamp) = filled_form(&app).await;
    let page = send(
        &tab,
        &csrf,
        &stamp,
        &[
            ("name", "Ann Lee"),
            ("email", "ann@shop.example"),
            ("topic", "support"),
            (
                "message",
                "My bot does not answer on WhatsApp since Monday.",
            ),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), "/contact?sent=1");
    let done = tab.get("/contact?sent=1").await;
    assert!(done.body.contains("id=\"contact-sent\""));
    let mail = mail_about(&sink, 1, OPERATOR, "Contact form: Support from Ann Lee").await;
    let text = mail.text_part().expect("text");
    assert!(text.contains("ann@shop.example"), "{text}");
    assert!(text.contains("does not answer on WhatsApp"), "{text}");

    let page = send(
        &tab,
        &csrf,
        &stamp,
        &[
            ("name", "Bo <b>Berg</b>"),
            ("email", "bo@home.example"),
            ("topic", "privacy"),
            ("message", "Please delete everything you hold about me."),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let rows = stored(&app).await;
    assert_eq!(rows.len(), 2);
    let privacy = rows.iter().find(|r| r.topic == "privacy").expect("privacy");
    let request_id = privacy.privacy_request_id.clone().expect("draft request");
    let request = app
        .state
        .store
        .find_privacy_request(&request_id)
        .await
        .expect("request");
    assert_eq!(request.status, "draft");
    assert_eq!(request.origin, "contact_form");
    assert_eq!(request.email.as_deref(), Some("bo@home.example"));
    let mail = mail_about(&sink, 2, OPERATOR, "Privacy request").await;
    let html = mail.html_part().expect("html");
    assert!(
        html.contains("Bo &#60;b&#62;Berg") || html.contains("Bo &lt;b&gt;Berg"),
        "{html}"
    );
    assert!(
        html.contains(&format!("/operator/privacy/{request_id}")),
        "{html}"
    );

    // The operator's CLI lists, shows and deletes them.
    let list = operator::contact(&app.state, ContactCommand::List { limit: 50 })
        .await
        .expect("list");
    assert!(
        list.contains("bo@home.example") && list.contains(&request_id),
        "{list}"
    );
    let show = operator::contact(
        &app.state,
        ContactCommand::Show {
            id: privacy.id.clone(),
        },
    )
    .await
    .expect("show");
    assert!(show.contains("Please delete everything"), "{show}");
    operator::contact(
        &app.state,
        ContactCommand::Delete {
            id: privacy.id.clone(),
        },
    )
    .await
    .expect("delete");
    let again = operator::contact(
        &app.state,
        ContactCommand::Delete {
            id: privacy.id.clone(),
        },
    )
    .await
    .expect_err("gone");
    assert!(again.to_string().contains("no contact message"), "{again}");
    assert!(
        operator::contact(&app.state, ContactCommand::List { limit: 0 })
            .await
            .is_err()
    );
    wait_outbox_empty(&app).await;
}

#[tokio::test]
async fn bots_bad_input_and_bursts_get_quiet_or_clear_answers_and_nothing_half_written() {
    let (app, _sink) = app_with_mail().await;
    let good = [
        ("name", "Ann Lee"),
        ("email", "ann@shop.example"),
        ("topic", "billing"),
        ("message", "Why was I charged twice this month?"),
    ];
    // Sent at once after rendering: a bot, answered like a success, nothing stored.
    let tab = Tab::new(&app);
    let page = tab.get("/contact").await;
    let quick = send(&tab, &page.csrf(), &hidden(&page, "stamp"), &good).await;
    assert_eq!(quick.status, StatusCode::SEE_OTHER);
    assert!(stored(&app).await.is_empty());

    let (tab, csrf, stamp) = filled_form(&app).await;
    // The honeypot filled in: quiet success, nothing stored.
    let mut bot = good.to_vec();
    bot.push(("website", "http://spam.example"));
    let page = send(&tab, &csrf, &stamp, &bot).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    // A forged or missing stamp: the visitor is asked to send again, the text kept.
    for forged in [
        "",
        "123.abc",
        &format!("{}.00", mtdesk_domain::now_ms() - 10_000),
    ] {
        let page = send(&tab, &csrf, forged, &good).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{forged}");
        assert!(page.body.contains("out of date"), "{}", page.body);
        assert!(page.body.contains("charged twice"));
    }
    // No CSRF token: refused.
    let page = send(&tab, "", &stamp, &good).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // Field errors next to the field.
    for (field, value, expect) in [
        ("email", "not-an-email", "id=\"email-error\""),
        ("name", " ", "id=\"name-error\""),
        ("topic", "sales", "id=\"topic-error\""),
        ("message", "hi", "id=\"message-error\""),
        (
            "message",
            "cheap https://a.example https://b.example https://c.example https://d.example",
            "at most 3 links",
        ),
    ] {
        let page = send(
            &tab,
            &csrf,
            &stamp,
            &[good.as_slice(), &[(field, value)]].concat(),
        )
        .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{field}={value}");
        assert!(page.body.contains(expect), "{field}: {}", page.body);
    }
    let mut garbage = good.to_vec();
    let long = "x".repeat(200_000);
    garbage.push(("message", &long));
    let page = send(&tab, &csrf, &stamp, &garbage).await;
    assert!(page.status.is_client_error(), "{}", page.status);
    assert!(stored(&app).await.is_empty());

    // A burst from one address: 5 accepted, then 429 with Retry-After; never a 5xx.
    let mut statuses = Vec::new();
    for i in 0..8 {
        let msg = format!("Question number {i} about my invoice.");
        let page = send(
            &tab,
            &csrf,
            &stamp,
            &[good.as_slice(), &[("message", msg.as_str())]].concat(),
        )
        .await;
        if page.status == StatusCode::TOO_MANY_REQUESTS {
            let retry: i64 = page.headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("seconds");
            assert!((1..=3600).contains(&retry), "{retry}");
            assert!(page.body.contains("Too many messages"), "{}", page.body);
        }
        statuses.push(page.status);
    }
    assert_eq!(
        statuses,
        [
            [StatusCode::SEE_OTHER; 5].as_slice(),
            &[StatusCode::TOO_MANY_REQUESTS; 3]
        ]
        .concat()
    );
    assert_eq!(
        stored(&app).await.len(),
        5,
        "refused messages are not stored"
    );
}

#[tokio::test]
async fn messages_are_purged_after_12_months_and_deleted_with_an_emailed_request() {
    let (app, _sink) = app_with_mail().await;
    let (tab, csrf, stamp) = filled_form(&app).await;
    for (who, msg) in [
        ("old@home.example", "An old question about prices."),
        ("cy@home.example", "A recent question about prices."),
        ("cy@home.example", "Another recent question, sorry."),
    ] {
        let page = send(
            &tab,
            &csrf,
            &stamp,
            &[
                ("name", "Cy"),
                ("email", who),
                ("topic", "support"),
                ("message", msg),
            ],
        )
        .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("db");
    let year_ago = mtdesk_domain::now_ms() - 366 * 86_400_000;
    sqlx::query("UPDATE contact_messages SET created_at = $1 WHERE email = 'old@home.example'")
        .bind(year_ago)
        .execute(&mut db)
        .await
        .expect("age");
    app.state
        .privacy
        .purge_expired(mtdesk_domain::now_ms())
        .await
        .expect("purge");
    let left: Vec<String> = stored(&app).await.into_iter().map(|r| r.email).collect();
    assert_eq!(left, ["cy@home.example", "cy@home.example"]);

    // An emailed request for everything about Cy takes the contact messages with it.
    let view = app
        .state
        .privacy
        .add_request(mtdesk_privacy::requests::NewRequest {
            email: "CY@home.example".into(),
            name: "Cy".into(),
            scope: mtdesk_domain::privacy_request::RequestScope::All,
            description: None,
            origin: "email",
            received_at: None,
        })
        .await
        .expect("request");
    let done = app
        .state
        .privacy
        .execute_request(&view.id, "ops@operator.example")
        .await
        .expect("execute");
    assert!(
        done.request
            .summary
            .as_deref()
            .unwrap_or("")
            .contains("Contact-form messages deleted: 2"),
        "{:?}",
        done.request.summary
    );
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM contact_messages")
        .fetch_one(&mut db)
        .await
        .expect("count")
        .try_get("n")
        .expect("n");
    assert_eq!(n, 0);
    wait_outbox_empty(&app).await;
}

#[tokio::test]
async fn a_concurrent_burst_stores_no_more_than_the_limit() {
    let (app, _sink) = app_with_mail().await;
    let (tab, csrf, stamp) = filled_form(&app).await;
    let posts = (0..12).map(|i| {
        let (tab, csrf, stamp) = (&tab, csrf.clone(), stamp.clone());
        async move {
            let msg = format!("Concurrent question {i} about the bot.");
            send(
                tab,
                &csrf,
                &stamp,
                &[
                    ("name", "Ann"),
                    ("email", "ann@shop.example"),
                    ("topic", "support"),
                    ("message", msg.as_str()),
                ],
            )
            .await
            .status
        }
    });
    let statuses = futures_util::future::join_all(posts).await;
    let accepted = statuses
        .iter()
        .filter(|s| **s == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(accepted, 5, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::SEE_OTHER || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(stored(&app).await.len(), 5);
}
