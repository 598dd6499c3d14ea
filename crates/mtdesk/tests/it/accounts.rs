//! Sign-up, profile correction, password change and API tokens through the API.

use crate::helpers::{PASSWORD, TestApp, email};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn sign_up_returns_the_account_and_a_working_token() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("ann")).await;
    let (status, me) = app.get("/api/v1/account", &a.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["email"], a.email.as_str());
    assert_eq!(me["company"], "Lee Shoes");
    assert!(
        me.get("password_hash").is_none(),
        "the hash must never leave the server"
    );
}

#[tokio::test]
async fn sign_up_without_the_age_confirmation_is_refused() {
    let app = TestApp::spawn().await;
    for confirmation in [json!(false)] {
        let (status, body) = app
            .api(
                Method::POST,
                "/api/v1/account",
                None,
                Some(json!({"name": "Kid", "email": email("kid"), "password": PASSWORD, "company": "School", "age_16_or_older": confirmation})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["field"], "age_16_or_older");
        assert!(body["message"].as_str().unwrap_or("").contains("16"));
    }
    // Omitting the field entirely is refused too.
    let (status, body) = app
        .api(
            Method::POST,
            "/api/v1/account",
            None,
            Some(json!({"name": "Kid", "email": email("kid"), "password": PASSWORD, "company": "School"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("age_16_or_older")
    );
}

#[tokio::test]
async fn email_is_unique_case_insensitively() {
    let app = TestApp::spawn().await;
    let e = email("dup");
    app.sign_up(&e).await;
    let (status, body) = app
        .api(
            Method::POST,
            "/api/v1/account",
            None,
            Some(json!({"name": "Other", "email": e.to_uppercase(), "password": PASSWORD, "company": "X", "age_16_or_older": true})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"], "conflict");
    assert_eq!(body["field"], "email");
}

#[tokio::test]
async fn concurrent_sign_ups_with_one_email_create_exactly_one_account() {
    let app = TestApp::spawn().await;
    let e = email("race");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = app.client.clone();
        let url = app.url("/api/v1/account");
        let body = json!({"name": format!("Racer {i}"), "email": if i % 2 == 0 { e.clone() } else { e.to_uppercase() }, "password": PASSWORD, "company": "X", "age_16_or_older": true});
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("send")
                .status()
        }));
    }
    let mut created = 0;
    let mut conflicts = 0;
    for t in tasks {
        match t.await.expect("join") {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, conflicts), (1, 7));
}

#[tokio::test]
async fn weak_passwords_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let e = email("weak");
    for (password, reason) in [
        ("short", "at least"),
        ("password123", "common"),
        (e.as_str(), "email"),
    ] {
        let (status, body) = app
            .api(
                Method::POST,
                "/api/v1/account",
                None,
                Some(json!({"name": "W", "email": e, "password": password, "company": "X", "age_16_or_older": true})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["field"], "password");
        assert!(
            body["message"].as_str().unwrap_or("").contains(reason),
            "{body}"
        );
    }
}

#[tokio::test]
async fn profile_can_be_corrected_and_email_change_needs_the_password() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("fix")).await;
    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"name": "Ann Lee-Smith", "company": "Lee Boots"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["name"], "Ann Lee-Smith");
    assert_eq!(body["company"], "Lee Boots");

    let new_email = email("moved");
    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"email": new_email})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "current_password");
    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"email": new_email, "current_password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["email"], new_email.as_str());
}

#[tokio::test]
async fn password_change_checks_the_current_password_and_writes_nothing_on_error() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("pw")).await;
    // Wrong current password: nothing changes, not even the name sent alongside.
    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"name": "Changed", "current_password": "wrong password!", "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "current_password");
    // A weak new password: refused before anything is written.
    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"name": "Changed", "current_password": PASSWORD, "new_password": "short"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["field"], "new_password");
    let (_, me) = app.get("/api/v1/account", &a.token).await;
    assert_eq!(me["name"], "Ann Lee");

    let (status, body) = app
        .api(
            Method::PATCH,
            "/api/v1/account",
            Some(&a.token),
            Some(json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let account = app
        .state
        .store
        .find_account_by_email(&a.email)
        .await
        .expect("account");
    assert!(mtdesk_http::auth::verify_blocking(
        &account.password_hash,
        "a brand new passphrase"
    ));
    assert!(!mtdesk_http::auth::verify_blocking(
        &account.password_hash,
        PASSWORD
    ));
}

#[tokio::test]
async fn tokens_are_shown_once_listed_without_secret_and_revocable() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&email("tok")).await;
    let (status, created) = app
        .post("/api/v1/tokens", &a.token, json!({"name": "zapier"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_string();
    assert!(secret.starts_with("mtd_"));
    let (status, list) = app.get("/api/v1/tokens", &secret).await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert!(
        !list.iter().any(|t| t.to_string().contains(&secret)),
        "secrets are never listed"
    );
    // Only the hash is stored.
    let traces = mtdesk_storage::catalogue::find_traces(&app.state.store, &[&secret])
        .await
        .expect("scan");
    assert!(traces.is_empty(), "token stored in clear: {traces:?}");

    let id = created["token"]["id"].as_str().expect("id");
    let (status, _) = app
        .api(
            Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = app.get("/api/v1/account", &secret).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "unauthorized");
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401() {
    let app = TestApp::spawn().await;
    for token in [None, Some("mtd_0000"), Some("not-a-token")] {
        let (status, body) = app.api(Method::GET, "/api/v1/chatbots", token, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["error"], "unauthorized");
    }
}
