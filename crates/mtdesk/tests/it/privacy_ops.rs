//! Emailed deletion requests (record → acknowledgement → execute → confirmation, the sub-processor
//! checklist, the deadline warning), the batched and resumable account deletion, and the anonymized daily
//! aggregates surviving it. Mail goes to a real SMTP server on 127.0.0.1 (the test's sink).

use crate::helpers::{TestAccount, TestApp, email};
use mtdesk::operator::{self, DeletionRequestCommand as Cmd};
use mtdesk_domain::AccountId;
use mtdesk_storage::catalogue;
use mtdesk_testkit::smtp_sink::{ReceivedMail, SmtpSink};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::Row;
use std::time::Duration;

const OPERATOR: &str = "privacy@operator.example";

async fn db(app: &TestApp) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(&app.database_url())
        .await
        .expect("database")
}

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

/// Waits until every queued mail was sent (a sent mail's row is deleted).
pub async fn wait_outbox_empty(app: &TestApp) {
    for _ in 0..400 {
        let (pending, failed) = app.state.store.outbox_counts().await.expect("counts");
        if pending == 0 && failed == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the outbox did not empty");
}

/// The mail to `to` whose subject contains `subject`, once at least `n` mails went to `to` (waiting for
/// it: other mails, such as the sign-up's verification, may arrive first).
pub async fn mail_about(sink: &SmtpSink, n: usize, to: &str, subject: &str) -> ReceivedMail {
    mail_to(sink, n, to).await;
    for _ in 0..800 {
        if let Some(m) = sink.messages().into_iter().find(|m| {
            m.to.iter().any(|t| t == to)
                && m.header("Subject").unwrap_or_default().contains(subject)
        }) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no mail about {subject:?} to {to}")
}

pub async fn mail_to(sink: &SmtpSink, n: usize, to: &str) -> ReceivedMail {
    for _ in 0..800 {
        let mine: Vec<ReceivedMail> = sink
            .messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .collect();
        if let Some(m) = mine.into_iter().nth(n - 1) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no mail #{n} to {to}: {:?}", sink.messages())
}

/// An account with a chatbot, Q&A and an answered chat (conversations, messages, answers, aggregates).
async fn account_with_data(app: &TestApp, tag: &str) -> (TestAccount, String) {
    let a = app.sign_up(&email(tag)).await;
    let bot = app.create_chatbot(&a.token, "Shop bot").await;
    app.add_qa(&a.token, &bot, "When do you open?", "We open at 9.")
        .await;
    let (status, body) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &a.token,
            json!({"message": "When do you open?"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (a, bot)
}

fn add(email: &str, scope: &str, description: Option<&str>, received: Option<&str>) -> Cmd {
    Cmd::Add {
        email: email.into(),
        name: "Ann Lee".into(),
        scope: scope.into(),
        description: description.map(str::to_string),
        received: received.map(str::to_string),
    }
}

fn request_id(out: &str) -> String {
    out.split_whitespace()
        .find(|w| w.starts_with("dr_"))
        .unwrap_or_else(|| panic!("no request id in {out:?}"))
        .to_string()
}

#[tokio::test]
async fn an_emailed_request_is_acknowledged_executed_confirmed_and_forgotten() {
    let (app, sink) = app_with_mail().await;
    let (a, _) = account_with_data(&app, "requester").await;
    let (b, _) = account_with_data(&app, "bystander").await;

    // Recorded: the acknowledgement goes out at once with the 30-day deadline.
    let out = operator::deletion_request(&app.state, add(&a.email, "all", None, None))
        .await
        .expect("add");
    let id = request_id(&out);
    let ack = mail_about(&sink, 1, &a.email, &id).await;
    assert!(
        ack.header("Subject").unwrap_or_default().contains(&id),
        "{:?}",
        ack.header("Subject")
    );
    let text = ack.text_part().expect("text");
    assert!(text.contains("Ann Lee") && text.contains(&id), "{text}");
    let html = ack.html_part().expect("html");
    assert!(html.contains(&id), "{html}");
    let r = app
        .state
        .store
        .find_privacy_request(&id)
        .await
        .expect("request");
    assert_eq!(r.status, "received");
    assert!(r.acknowledged_at.is_some());
    assert_eq!(r.due_at - r.received_at, 30 * 86_400_000);
    let listed = operator::deletion_request(&app.state, Cmd::List { all: false })
        .await
        .expect("list");
    assert!(
        listed.contains(&id) && listed.contains(&a.email),
        "{listed}"
    );

    // Execution needs --yes; unknown ids are a clear error.
    let err = operator::deletion_request(
        &app.state,
        Cmd::Execute {
            id: id.clone(),
            yes: false,
            by: "op".into(),
        },
    )
    .await
    .expect_err("needs --yes");
    assert!(err.to_string().contains("--yes"), "{err}");
    let err = operator::deletion_request(
        &app.state,
        Cmd::Show {
            id: "dr_nope".into(),
        },
    )
    .await
    .expect_err("unknown");
    assert!(
        err.to_string().contains("no such deletion request"),
        "{err}"
    );

    let shown = operator::deletion_request(
        &app.state,
        Cmd::Execute {
            id: id.clone(),
            yes: true,
            by: "Olga".into(),
        },
    )
    .await
    .expect("execute");
    assert!(shown.contains("completed"), "{shown}");
    assert!(
        shown.contains("[-] stripe"),
        "Stripe is done by MT Desk (not applicable here): {shown}"
    );
    assert!(
        shown.contains("[ ] aws"),
        "the manual lines wait for the operator: {shown}"
    );

    // The account is gone, the other one is not; the confirmation lists what was deleted.
    assert_eq!(
        app.get("/api/v1/account", &a.token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.get("/api/v1/account", &b.token).await.0, StatusCode::OK);
    let done = mail_about(&sink, 2, &a.email, "complete").await;
    let text = done.text_part().expect("text");
    assert!(text.contains(&id) && text.contains("messages: 2"), "{text}");
    wait_outbox_empty(&app).await;

    // The request forgot the requester; the receipt names no one.
    let r = app
        .state
        .store
        .find_privacy_request(&id)
        .await
        .expect("request");
    assert_eq!(r.status, "completed");
    assert!(r.email.is_none() && r.name.is_none());
    let receipt = app
        .state
        .store
        .find_receipt(r.receipt_id.as_deref().expect("receipt"))
        .await
        .expect("receipt");
    assert_eq!(receipt.path, "emailed_request");
    assert_eq!(receipt.counts["accounts"], 1);
    let traces = catalogue::find_traces(&app.state.store, &[&a.id, &a.email, "Ann Lee"])
        .await
        .expect("scan");
    // "Ann Lee" is also B's name (the fixture signs both up as Ann Lee): only B's rows may hold it.
    let foreign: Vec<_> = traces
        .iter()
        .filter(|t| !(t.table == "accounts" && t.column == "name"))
        .collect();
    assert!(foreign.is_empty(), "traces left behind: {foreign:?}");

    // The operator ticks a line; a second execution is refused.
    let ticked = operator::deletion_request(
        &app.state,
        Cmd::Tick {
            id: id.clone(),
            processor: "aws".into(),
            status: "done".into(),
            by: "Olga".into(),
            note: Some("backups rotate in 35 days".into()),
        },
    )
    .await
    .expect("tick");
    assert!(ticked.contains("aws"), "{ticked}");
    let shown = operator::deletion_request(&app.state, Cmd::Show { id: id.clone() })
        .await
        .expect("show");
    assert!(
        shown.contains("[x] aws") && shown.contains("by Olga"),
        "{shown}"
    );
    let err = operator::deletion_request(
        &app.state,
        Cmd::Tick {
            id: id.clone(),
            processor: "nobody".into(),
            status: "done".into(),
            by: "Olga".into(),
            note: None,
        },
    )
    .await
    .expect_err("unknown processor");
    assert!(err.to_string().contains("nobody"), "{err}");
    let err = operator::deletion_request(
        &app.state,
        Cmd::Execute {
            id: id.clone(),
            yes: true,
            by: "Olga".into(),
        },
    )
    .await
    .expect_err("twice");
    assert!(err.to_string().contains("already"), "{err}");
}

#[tokio::test]
async fn requests_for_unknown_addresses_meta_data_and_bad_input() {
    let (app, sink) = app_with_mail().await;
    let (a, _) = account_with_data(&app, "metaonly").await;

    // Meta data only: the account stays.
    let out = operator::deletion_request(&app.state, add(&a.email, "meta", None, None))
        .await
        .expect("add");
    let id = request_id(&out);
    operator::deletion_request(
        &app.state,
        Cmd::Execute {
            id: id.clone(),
            yes: true,
            by: "op".into(),
        },
    )
    .await
    .expect("execute");
    assert_eq!(app.get("/api/v1/account", &a.token).await.0, StatusCode::OK);
    let r = app
        .state
        .store
        .find_privacy_request(&id)
        .await
        .expect("request");
    assert_eq!(r.status, "completed");

    // Nobody registered with the address: completed, confirmed, nothing deleted.
    let stranger = email("stranger");
    let out = operator::deletion_request(&app.state, add(&stranger, "all", None, None))
        .await
        .expect("add");
    let id = request_id(&out);
    operator::deletion_request(
        &app.state,
        Cmd::Execute {
            id: id.clone(),
            yes: true,
            by: "op".into(),
        },
    )
    .await
    .expect("execute");
    // The acknowledgement and the confirmation (in either order): the confirmation says nothing was held.
    mail_to(&sink, 2, &stranger).await;
    let texts: Vec<String> = sink
        .messages()
        .iter()
        .filter(|m| m.to.contains(&stranger))
        .filter_map(|m| m.text_part())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("No account or data")),
        "{texts:?}"
    );

    // Bad input: clear errors, nothing recorded.
    let before = app
        .state
        .store
        .list_privacy_requests(true)
        .await
        .expect("list")
        .len();
    for (cmd, needle) in [
        (add("not-an-email", "all", None, None), "email"),
        (add(&stranger, "everything", None, None), "--scope"),
        (add(&stranger, "other", None, None), "description"),
        (
            add("bob(work)@example.com", "all", None, None),
            "plain address",
        ),
        (add(&stranger, "all", None, Some("yesterday")), "RFC 3339"),
        (
            add(&stranger, "all", None, Some("2999-01-01T00:00:00Z")),
            "future",
        ),
    ] {
        let err = operator::deletion_request(&app.state, cmd)
            .await
            .expect_err(needle);
        assert!(err.to_string().contains(needle), "{err} (wanted {needle})");
    }
    assert_eq!(
        app.state
            .store
            .list_privacy_requests(true)
            .await
            .expect("list")
            .len(),
        before
    );

    // "other" with a description: the operator carries it out; the summary says so.
    let out = operator::deletion_request(
        &app.state,
        add(
            &stranger,
            "other",
            Some("the support mail thread of March"),
            None,
        ),
    )
    .await
    .expect("add");
    let id = request_id(&out);
    operator::deletion_request(
        &app.state,
        Cmd::Execute {
            id: id.clone(),
            yes: true,
            by: "Olga".into(),
        },
    )
    .await
    .expect("execute");
    let r = app
        .state
        .store
        .find_privacy_request(&id)
        .await
        .expect("request");
    assert!(r.summary.unwrap_or_default().contains("as described"));
    assert!(
        r.description.is_none(),
        "the requester's words go with their address"
    );
}

#[tokio::test]
async fn drafts_must_be_accepted_and_deadlines_are_warned_about_once_a_day() {
    let (app, sink) = app_with_mail().await;
    let requester = email("late");
    // Received 25 days ago: due in 5 days, inside the warning window.
    let received = time::OffsetDateTime::now_utc() - time::Duration::days(25);
    let received = received
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    let out = operator::deletion_request(&app.state, add(&requester, "all", None, Some(&received)))
        .await
        .expect("add");
    let late = request_id(&out);
    let now = mtdesk_domain::now_ms();
    assert_eq!(
        app.state.privacy.warn_deadlines(now).await.expect("warn"),
        1
    );
    let warning = mail_to(&sink, 1, OPERATOR).await;
    assert!(warning.text_part().unwrap_or_default().contains(&late));
    // Not again within the day.
    assert_eq!(
        app.state
            .privacy
            .warn_deadlines(now + 3_600_000)
            .await
            .expect("warn"),
        0
    );
    assert_eq!(
        app.state
            .privacy
            .warn_deadlines(now + 86_400_000)
            .await
            .expect("warn"),
        1
    );

    // A draft (the contact form's privacy topic) is not acknowledged or executed until accepted.
    let draft = app
        .state
        .privacy
        .add_request(mtdesk_privacy::requests::NewRequest {
            email: email("draft"),
            name: "Bo".into(),
            scope: mtdesk_domain::privacy_request::RequestScope::All,
            description: None,
            origin: "contact_form",
            received_at: None,
        })
        .await
        .expect("draft");
    assert_eq!(draft.status, "draft");
    assert!(draft.acknowledged_at.is_none());
    let err = operator::deletion_request(
        &app.state,
        Cmd::Execute {
            id: draft.id.clone(),
            yes: true,
            by: "op".into(),
        },
    )
    .await
    .expect_err("draft");
    assert!(err.to_string().contains("accept"), "{err}");
    let out = operator::deletion_request(
        &app.state,
        Cmd::Accept {
            id: draft.id.clone(),
        },
    )
    .await
    .expect("accept");
    assert!(out.contains("received"), "{out}");
    let ack = mail_to(&sink, 1, draft.email.as_deref().expect("email")).await;
    assert!(ack.text_part().unwrap_or_default().contains(&draft.id));
}

#[tokio::test]
async fn an_interrupted_account_deletion_resumes_and_aggregates_survive_it() {
    let (app, sink) = app_with_mail().await;
    let (a, bot) = account_with_data(&app, "resume").await;
    let id = AccountId::parse(&a.id).expect("id");
    let store = &app.state.store;
    let mut c = db(&app).await;
    // Many messages, so the batches really run several times.
    let conv: String = sqlx::query("SELECT id FROM conversations WHERE account_id = $1")
        .bind(&a.id)
        .fetch_one(&mut c)
        .await
        .expect("conversation")
        .get("id");
    let mut tx = sqlx::Connection::begin(&mut c).await.expect("tx");
    for i in 0..4_500 {
        sqlx::query(
            "INSERT INTO messages (id, account_id, conversation_id, role, content, created_at) VALUES ($1, $2, $3, 'user', $4, $5)",
        )
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(&a.id)
        .bind(&conv)
        .bind(format!("filler {i}"))
        .bind(1_000_i64 + i)
        .execute(&mut *tx)
        .await
        .expect("insert");
    }
    tx.commit().await.expect("commit");

    // Today's aggregate for the chatbot: one conversation, one answered message in and out.
    let url = app.database_url();
    let stats = |account: Option<String>| {
        let url = url.clone();
        async move {
            let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
                .await
                .expect("database");
            let row = sqlx::query(
            "SELECT CAST(SUM(conversations) AS BIGINT) AS c, CAST(SUM(messages_in) AS BIGINT) AS i,
                    CAST(SUM(messages_out) AS BIGINT) AS o, CAST(SUM(answered) AS BIGINT) AS a
             FROM daily_stats WHERE ($1 IS NULL AND account_id IS NULL) OR account_id = $1",
        )
        .bind(account)
        .fetch_one(&mut c)
        .await
        .expect("stats");
            (
                row.get::<Option<i64>, _>("c").unwrap_or(0),
                row.get::<Option<i64>, _>("i").unwrap_or(0),
                row.get::<Option<i64>, _>("o").unwrap_or(0),
                row.get::<Option<i64>, _>("a").unwrap_or(0),
            )
        }
    };
    assert_eq!(stats(Some(a.id.clone())).await, (1, 1, 1, 1));
    let detached_before = stats(None).await;
    let _ = bot;

    // A crash after the mark: sessions and tokens are already gone, the rows are not.
    store
        .mark_account_deleting(&id, "dashboard")
        .await
        .expect("mark");
    assert_eq!(
        app.get("/api/v1/account", &a.token).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        store.accounts_being_deleted().await.expect("list").len(),
        1,
        "the mark is what a restart resumes from"
    );
    let done = app
        .state
        .privacy
        .resume_account_deletions()
        .await
        .expect("resume");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].deleted.count("messages"), 4_502);
    assert_eq!(done[0].receipt.path, "dashboard");
    assert!(
        store
            .accounts_being_deleted()
            .await
            .expect("list")
            .is_empty()
    );
    let confirmation = mail_about(&sink, 1, &a.email, "has been deleted").await;
    assert!(
        confirmation
            .text_part()
            .unwrap_or_default()
            .contains(&done[0].receipt.id)
    );
    wait_outbox_empty(&app).await;
    let left = catalogue::rows_referencing_account(store, &a.id)
        .await
        .expect("scan");
    assert!(left.iter().all(|(_, n)| *n == 0), "{left:?}");
    let traces = catalogue::find_traces(store, &[&a.id, &a.email])
        .await
        .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");

    // The day's numbers stayed, without the account's ids.
    let (c0, i0, o0, a0) = detached_before;
    assert_eq!(stats(None).await, (c0 + 1, i0 + 1, o0 + 1, a0 + 1));
    assert_eq!(stats(Some(a.id.clone())).await, (0, 0, 0, 0));
}

async fn usage_events(app: &TestApp, account: &str) -> i64 {
    let mut c = db(app).await;
    sqlx::query("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM usage_events WHERE account_id = $1")
        .bind(account)
        .fetch_one(&mut c)
        .await
        .expect("count")
        .get("n")
}

#[tokio::test]
async fn product_analytics_are_collected_only_after_consent_and_deleted_on_withdrawal() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("consent")).await;
    let tab = crate::tab::Tab::new(&app);
    tab.sign_in_as(&a.email).await;

    // Asked once, in a banner of plain forms; nothing is collected before a choice.
    let page = tab.get("/chatbots").await;
    assert!(page.body.contains("id=\"consent-banner\""), "{}", page.body);
    assert!(
        page.set_cookies().iter().all(|c| c.starts_with("mtdesk_")),
        "only our session/CSRF cookies: {:?}",
        page.set_cookies()
    );
    tab.get("/inbox").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(usage_events(&app, &a.id).await, 0);

    // Declined: the banner goes, still nothing is collected.
    let csrf = page.csrf();
    let back = tab
        .post(
            "/account/consent",
            &[("csrf", &csrf), ("choice", "decline"), ("next", "chatbots")],
        )
        .await;
    assert_eq!(back.status, StatusCode::SEE_OTHER);
    assert_eq!(back.location(), "/chatbots");
    let page = tab.get("/chatbots").await;
    assert!(!page.body.contains("consent-banner"));
    tab.get("/deploy").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(usage_events(&app, &a.id).await, 0);

    // Accepted in My Account: page areas (never ids) are recorded.
    let account = tab.get("/account").await;
    assert!(
        account.body.contains("id=\"analytics-on\""),
        "{}",
        account.body
    );
    let csrf = account.csrf();
    let back = tab
        .post(
            "/account/consent",
            &[("csrf", &csrf), ("choice", "accept"), ("next", "account")],
        )
        .await;
    assert_eq!(back.location(), "/account?consent-on=1#analytics");
    tab.get("/inbox").await;
    tab.get("/chatbots").await;
    let mut n = 0;
    for _ in 0..100 {
        n = usage_events(&app, &a.id).await;
        if n >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(n >= 2, "page views recorded: {n}");
    let account = tab.get("/account").await;
    assert!(account.body.contains("view:/inbox"), "{}", account.body);

    // Withdrawn: everything recorded is deleted, and nothing more is collected.
    let csrf = account.csrf();
    tab.post(
        "/account/consent",
        &[("csrf", &csrf), ("choice", "decline"), ("next", "account")],
    )
    .await;
    assert_eq!(usage_events(&app, &a.id).await, 0);
    tab.get("/inbox").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(usage_events(&app, &a.id).await, 0);

    // Bad input: a clear 422, no change; no redirect to elsewhere.
    let csrf = tab.get("/account").await.csrf();
    let bad = tab
        .post("/account/consent", &[("csrf", &csrf), ("choice", "maybe")])
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let odd = tab
        .post(
            "/account/consent",
            &[
                ("csrf", &csrf),
                ("choice", "decline"),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert!(odd.location().starts_with("/account"), "{}", odd.location());
}

#[tokio::test]
async fn the_operator_page_records_and_executes_requests_for_operators_only() {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let operator_email = email("operator");
    let op = operator_email.clone();
    let app = TestApp::spawn_with(move |v| {
        v.insert("MTDESK_SMTP_URL".into(), smtp);
    })
    .await;
    let _ = op;
    let operator = app.sign_up(&operator_email).await;
    // An account is no operator until the operator role is granted (the CLI's `admin operator grant`).
    let ops = crate::tab::Tab::new(&app);
    ops.sign_in_as(&operator_email).await;
    assert_eq!(
        ops.get("/operator/privacy").await.status,
        StatusCode::NOT_FOUND
    );
    app.state
        .store
        .set_operator(&AccountId::parse(&operator.id).expect("id"), true)
        .await
        .expect("grant");
    let (customer, _) = account_with_data(&app, "customer").await;

    // A customer does not see the page at all.
    let tab = crate::tab::Tab::new(&app);
    tab.sign_in_as(&customer.email).await;
    assert_eq!(
        tab.get("/operator/privacy").await.status,
        StatusCode::NOT_FOUND
    );
    let csrf = tab.get("/account").await.csrf();
    let page = tab
        .post(
            "/operator/privacy",
            &[
                ("csrf", &csrf),
                ("email", &customer.email),
                ("name", "X"),
                ("scope", "all"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        app.state
            .store
            .list_privacy_requests(true)
            .await
            .expect("list")
            .is_empty()
    );

    let account = ops.get("/account").await;
    assert!(account.body.contains("operator-privacy-link"));
    let list = ops.get("/operator/privacy").await;
    assert_eq!(list.status, StatusCode::OK);
    let csrf = list.csrf();
    // Bad input is shown on the form, nothing recorded.
    let bad = ops
        .post(
            "/operator/privacy",
            &[
                ("csrf", &csrf),
                ("email", "nope"),
                ("name", "Ann"),
                ("scope", "all"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("field-error"), "{}", bad.body);
    let added = ops
        .post(
            "/operator/privacy",
            &[
                ("csrf", &csrf),
                ("email", &customer.email),
                ("name", "Ann <b>Lee</b>"),
                ("scope", "all"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.body);
    let detail_path = added.location().to_string();
    let detail = ops.get(&detail_path).await;
    assert!(
        detail.body.contains("Ann &#60;b&#62;Lee"),
        "escaped: {}",
        detail.body
    );
    assert!(!detail.body.contains("<b>Lee</b>"));
    let id = detail_path.rsplit('/').next().expect("id").to_string();
    mail_to(&sink, 1, &customer.email).await;

    // Execute needs the box ticked.
    let csrf = detail.csrf();
    let refused = ops
        .post(&format!("{detail_path}/execute"), &[("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(
        app.get("/api/v1/account", &customer.token).await.0,
        StatusCode::OK
    );
    let done = ops
        .post(
            &format!("{detail_path}/execute"),
            &[("csrf", &csrf), ("confirm", "on")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(
        app.get("/api/v1/account", &customer.token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let detail = ops.get(&detail_path).await;
    assert!(detail.body.contains("completed"), "{}", detail.body);
    assert!(detail.body.contains("id=\"task-aws\""));
    mail_to(&sink, 2, &customer.email).await;

    // Tick a checklist line as the signed-in operator.
    let csrf = detail.csrf();
    let ticked = ops
        .post(
            &format!("{detail_path}/tasks/render"),
            &[
                ("csrf", &csrf),
                ("status", "done"),
                ("note", "logs rotate after 30 days"),
            ],
        )
        .await;
    assert_eq!(ticked.status, StatusCode::SEE_OTHER);
    let view = app.state.privacy.request_view(&id).await.expect("view");
    let render = view
        .tasks
        .iter()
        .find(|t| t.processor.id == "render")
        .expect("render");
    assert_eq!(render.status, "done");
    assert_eq!(render.done_by.as_deref(), Some(operator_email.as_str()));

    // The Privacy Policy lists the same sub-processors.
    let policy = tab.get("/privacy").await;
    assert!(policy.body.contains("MongoDB Atlas") && policy.body.contains("OpenRouter"));
}

#[tokio::test]
async fn without_smtp_a_confirmation_waits_a_week_then_the_address_goes() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("nosmtp")).await;
    let done = app
        .state
        .privacy
        .delete_account(&AccountId::parse(&a.id).expect("id"), "api")
        .await
        .expect("delete");
    assert_eq!(done.deleted.count("accounts"), 1);
    // The confirmation waits in the outbox (no SMTP): it names the address.
    assert_eq!(
        app.state.store.outbox_counts().await.expect("counts"),
        (1, 0)
    );
    let report = operator::outbox(&app.state, false).await.expect("report");
    assert!(
        report.contains("account_deleted") && report.contains("SMTP is not configured"),
        "{report}"
    );
    let now = mtdesk_domain::now_ms();
    assert_eq!(
        app.state
            .privacy
            .purge_stale_mail(now)
            .await
            .expect("purge"),
        0
    );
    // A week later it is dropped, and nothing names the account any more.
    assert_eq!(
        app.state
            .privacy
            .purge_stale_mail(now + 8 * 86_400_000)
            .await
            .expect("purge"),
        1
    );
    let traces = catalogue::find_traces(&app.state.store, &[&a.id, &a.email])
        .await
        .expect("scan");
    assert!(traces.is_empty(), "{traces:?}");
}
