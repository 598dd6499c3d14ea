//! Delete Account, provable: after the deletion no table in the database catalogue holds a row of the
//! account or any trace of it, its files are gone, and other accounts are untouched.

use crate::helpers::{PASSWORD, TestApp, email};
use mtdesk_domain::AccountId;
use mtdesk_storage::catalogue;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn every_table_is_classified_for_deletion() {
    let app = TestApp::spawn().await;
    let unclassified = catalogue::unclassified_tables(&app.state.store)
        .await
        .expect("catalogue");
    assert!(
        unclassified.is_empty(),
        "tables not covered by account deletion: {unclassified:?}. Add each to catalogue::ACCOUNT_TABLES \
         (deleted with the account) or, with a reason, to SYSTEM_TABLES / DERIVED_TABLES"
    );
    // Every account table really has the column the deletion uses.
    for (table, column) in catalogue::ACCOUNT_TABLES {
        let cols = catalogue::list_columns(&app.state.store, table)
            .await
            .expect("columns");
        assert!(
            cols.iter().any(|c| c == column),
            "{table} has no column {column}"
        );
    }
}

#[tokio::test]
async fn deleting_an_account_leaves_no_row_file_or_trace() {
    let sink = mtdesk_testkit::smtp_sink::SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_SMTP_URL".into(), smtp);
    })
    .await;
    let marker = format!("zqx{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let a = app.sign_up(&email("gone")).await;
    let b = app.sign_up(&email("stays")).await;
    for acct in [&a, &b] {
        for n in 0..2 {
            let bot = app
                .create_chatbot(&acct.token, &format!("Bot {n} {marker}"))
                .await;
            for i in 0..3 {
                app.add_qa(
                    &acct.token,
                    &bot,
                    &format!("Question {i} about {marker}?"),
                    &format!("Answer {i} {marker}."),
                )
                .await;
            }
            let (status, _) = app
                .post(
                    &format!("/api/v1/chatbots/{bot}/chat"),
                    &acct.token,
                    json!({"message": format!("about {marker}")}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
            // A knowledge document: its original file, its source row and its chunks.
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(
                    format!("# Guide {marker}\n\nThe {marker} policy covers refunds.").into_bytes(),
                )
                .file_name(format!("guide-{marker}.md")),
            );
            let resp = app
                .client
                .post(app.url(&format!("/api/v1/chatbots/{bot}/sources")))
                .bearer_auth(&acct.token)
                .multipart(form)
                .send()
                .await
                .expect("upload");
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
        }
        let (status, _) = app
            .post(
                "/api/v1/tokens",
                &acct.token,
                json!({"name": format!("extra {marker}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        let (status, _) = app
            .api(
                Method::PUT,
                "/api/v1/providers/openrouter/key",
                Some(&acct.token),
                Some(json!({"api_key": format!("sk-{marker}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(app.drain_jobs().await, 4);
    let a_id = AccountId::parse(&a.id).expect("id");
    // A dashboard session and a file of the account.
    mtdesk_http::auth::start_session(&app.state, &a_id, None)
        .await
        .expect("session");
    let dir = app.state.files.account_dir(&a_id);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("upload.txt"), marker.as_bytes()).expect("file");

    // Account mails (verification, notices) are sent and gone before counting rows.
    crate::privacy_ops::wait_outbox_empty(&app).await;
    let before = catalogue::rows_referencing_account(&app.state.store, &a.id)
        .await
        .expect("scan");
    for table in [
        "accounts",
        "chatbots",
        "qa_pairs",
        "api_tokens",
        "sessions",
        "provider_keys",
        "conversations",
        "messages",
        "answers",
        "sources",
        "chunks",
    ] {
        let n = before
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        assert!(n > 0, "the fixture must fill {table}");
    }

    // Wrong password: nothing happens.
    let (status, body) = app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"password": "wrong password"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(app.get("/api/v1/account", &a.token).await.0, StatusCode::OK);

    let (status, receipt) = app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert_eq!(receipt["deleted"]["chatbots"], 2);
    assert_eq!(receipt["deleted"]["qa_pairs"], 6);
    assert_eq!(receipt["deleted"]["api_tokens"], 2);
    assert_eq!(receipt["deleted"]["sessions"], 1);
    assert_eq!(receipt["deleted"]["accounts"], 1);
    assert_eq!(receipt["deleted"]["provider_keys"], 1);
    assert_eq!(receipt["deleted"]["conversations"], 2);
    assert_eq!(receipt["deleted"]["messages"], 4);
    assert_eq!(receipt["deleted"]["answers"], 2);
    assert_eq!(receipt["deleted"]["sources"], 2);
    assert!(
        receipt["deleted"]["chunks"].as_i64().unwrap_or(0) >= 2,
        "{receipt}"
    );

    // The confirmation went to the owner with the receipt; the outbox keeps no copy once it is sent.
    let receipt_id = receipt["receipt_id"].as_str().expect("receipt id");
    // (The sign-up's verification mail and the token notice went out before.)
    crate::privacy_ops::mail_about(&sink, 1, &a.email, "has been deleted").await;
    let mails: Vec<_> = sink
        .messages()
        .into_iter()
        .filter(|m| {
            m.header("Subject")
                .unwrap_or_default()
                .contains("has been deleted")
        })
        .collect();
    assert_eq!(mails.len(), 1, "one confirmation mail");
    assert_eq!(mails[0].to, vec![a.email.clone()]);
    let text = mails[0].text_part().expect("text part");
    assert!(text.contains(receipt_id), "{text}");
    assert!(text.contains("qa pairs: 6"), "{text}");
    crate::privacy_ops::wait_outbox_empty(&app).await;

    // No row of any table in the catalogue references the account.
    let after = catalogue::rows_referencing_account(&app.state.store, &a.id)
        .await
        .expect("scan");
    let left: Vec<_> = after.iter().filter(|(_, n)| *n > 0).collect();
    assert!(left.is_empty(), "rows left behind: {left:?}");
    // No column of any table (FTS index tables included) contains the id or the email.
    let traces = catalogue::find_traces(&app.state.store, &[&a.id, &a.email])
        .await
        .expect("scan");
    assert!(traces.is_empty(), "traces left behind: {traces:?}");
    // The files are gone.
    assert!(!dir.exists(), "account directory still exists");
    // The token no longer works.
    assert_eq!(
        app.get("/api/v1/account", &a.token).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Account B is untouched, including its full-text index.
    let b_rows = catalogue::rows_referencing_account(&app.state.store, &b.id)
        .await
        .expect("scan");
    assert_eq!(
        b_rows,
        before
            .iter()
            .map(|(t, n)| (t.clone(), if t == "sessions" { 0 } else { *n }))
            .collect::<Vec<_>>()
    );
    let (_, list) = app.get("/api/v1/chatbots", &b.token).await;
    let bot = list[0]["id"].as_str().expect("bot");
    let (_, reply) = app
        .post(
            &format!("/api/v1/chatbots/{bot}/chat"),
            &b.token,
            json!({"message": format!("Question 1 about {marker}")}),
        )
        .await;
    assert_eq!(reply["source"], "qa_pair", "{reply}");

    // Deleting again is a 401 (the token is gone), never a 5xx.
    let (status, _) = app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// On SQLite the deleted text must not survive in the database file or its WAL either (secure_delete,
/// FTS5 merge and a WAL checkpoint after the deletion).
#[tokio::test]
async fn sqlite_files_do_not_keep_deleted_text() {
    // The confirmation mail names the account until it is sent: deliver it first.
    let sink = mtdesk_testkit::smtp_sink::SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_SMTP_URL".into(), smtp);
    })
    .await;
    if app.is_postgres() {
        return;
    }
    let marker = format!("zqx{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    let a = app.sign_up(&email("bytes")).await;
    let bot = app.create_chatbot(&a.token, &format!("Bot {marker}")).await;
    app.add_qa(
        &a.token,
        &bot,
        &format!("What is {marker}?"),
        &format!("{marker} is deleted soon."),
    )
    .await;
    let (status, _) = app
        .api(
            Method::DELETE,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sink.wait_for(1, std::time::Duration::from_secs(20)).await;
    crate::privacy_ops::wait_outbox_empty(&app).await;
    // The sent mail's row is deleted, then the WAL checkpointed: give that a moment.
    let mut left = Vec::new();
    for _ in 0..50 {
        left.clear();
        for file in ["mtdesk.sqlite", "mtdesk.sqlite-wal"] {
            let path = app.data_dir.join(file);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            for needle in [marker.as_bytes(), a.email.as_bytes(), a.id.as_bytes()] {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    left.push(format!(
                        "{} still contains {:?}",
                        path.display(),
                        String::from_utf8_lossy(needle)
                    ));
                }
            }
        }
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{left:?}");
}
