//! Server-rendered dashboard pages: sign up, log in, chatbots (Settings, Q&A, Knowledge, Retrieval test,
//! Test chat, Unanswered), AI providers and My Account (with this month's usage).
//!
//! Every page works without JavaScript and under the strict CSP set by `mtdesk_http` (no inline scripts
//! or styles): forms post to the server, which answers a success with a 303 redirect and a refused form
//! with the same page, what was typed and the message next to the field. Handlers are thin: they call the
//! same services, domain parsers and store methods as the JSON API, so the rules live in one place.
//!
//! Authentication and CSRF protection are extractors in [`web`]: a protected handler takes a `User`
//! (no session → 303 to `/login`), a POST handler reads its body through `CsrfForm` (bad token → 403); the
//! two multipart forms (Q&A import, knowledge upload) check the same token with `web::csrf_failure`.

mod account;
mod analytics;
mod assets;
mod billing;
mod charts;
mod chat;
mod chatbots;
mod contact;
mod deletion_status;
mod deploy;
mod email_links;
mod export;
mod inbox;
mod knowledge;
mod operator;
mod policy;
mod providers;
mod qa;
mod retrieval;
mod session;
mod unanswered;
mod web;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use mtdesk_http::AppState;

/// Every dashboard route, merged by the binary next to the API.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(session::index))
        .route("/signup", get(session::signup_form).post(session::signup))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/verify-email/{secret}", get(email_links::verify))
        .route("/account/verification", post(email_links::resend))
        .route(
            "/forgot-password",
            get(email_links::forgot_form).post(email_links::forgot),
        )
        .route(
            "/reset-password/{secret}",
            get(email_links::reset_form).post(email_links::reset),
        )
        .route(
            "/undo-email/{secret}",
            get(email_links::undo_form).post(email_links::undo),
        )
        .route("/chatbots", get(chatbots::list).post(chatbots::create))
        .route(
            "/chatbots/{id}",
            get(chatbots::settings).post(chatbots::update),
        )
        .route("/chatbots/{id}/delete", post(chatbots::delete))
        .route("/chatbots/{id}/qa", get(qa::tab).post(qa::add))
        .route("/chatbots/{id}/qa/import", post(qa::import))
        .route("/chatbots/{id}/qa/{qa_id}", post(qa::update))
        .route("/chatbots/{id}/qa/{qa_id}/delete", post(qa::delete))
        .route("/chatbots/{id}/knowledge", get(knowledge::tab))
        .route(
            "/chatbots/{id}/knowledge/status.json",
            get(knowledge::status),
        )
        // Uploads carry many megabytes: the global body limit is lifted here; the upload service
        // enforces its own caps (per file while streaming, and per request in total).
        .route(
            "/chatbots/{id}/knowledge/upload",
            post(knowledge::upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/chatbots/{id}/knowledge/url", post(knowledge::add_url))
        .route(
            "/chatbots/{id}/knowledge/embedding",
            post(knowledge::embedding),
        )
        .route(
            "/chatbots/{id}/knowledge/{source_id}",
            get(knowledge::detail),
        )
        .route(
            "/chatbots/{id}/knowledge/{source_id}/delete",
            post(knowledge::delete),
        )
        .route(
            "/chatbots/{id}/knowledge/{source_id}/sync",
            post(knowledge::sync),
        )
        .route(
            "/chatbots/{id}/knowledge/{source_id}/schedule",
            post(knowledge::schedule),
        )
        .route(
            "/chatbots/{id}/retrieval-test",
            get(retrieval::page).post(retrieval::search),
        )
        .route("/chatbots/{id}/chat", get(chat::page).post(chat::send))
        .route("/chatbots/{id}/chat/stream", post(chat::stream))
        .route("/chatbots/{id}/unanswered", get(unanswered::tab))
        .route(
            "/chatbots/{id}/unanswered/{answer_id}/resolve",
            post(unanswered::resolve),
        )
        .route("/account", get(account::page))
        .route("/account/billing", get(billing::page))
        .route("/account/billing/checkout", post(billing::checkout))
        .route("/account/billing/portal", post(billing::portal))
        .route("/account/profile", post(account::profile))
        .route("/account/password", post(account::password))
        .route("/account/tokens", post(account::create_token))
        .route("/account/tokens/{id}/delete", post(account::revoke_token))
        .route("/account/delete", post(account::delete))
        .route("/account/retention", post(account::retention))
        .route("/account/consent", post(account::consent))
        .route("/account/export", post(export::request))
        .route("/account/providers", get(providers::page))
        .route("/account/providers/{provider}/key", post(providers::save))
        .route(
            "/account/providers/{provider}/key/delete",
            post(providers::delete),
        )
        .route("/account/providers/{provider}/test", post(providers::test))
        .route("/operator/privacy", get(operator::list).post(operator::add))
        .route("/operator/privacy/{id}", get(operator::detail))
        .route("/operator/privacy/{id}/accept", post(operator::accept))
        .route("/operator/privacy/{id}/execute", post(operator::execute))
        .route(
            "/operator/privacy/{id}/tasks/{processor}",
            post(operator::task),
        )
        .route("/contact", get(contact::form).post(contact::send))
        .route("/privacy", get(policy::privacy))
        .route("/data-deletion", get(policy::data_deletion))
        .route("/data-deletion/{code}", get(deletion_status::status))
        .route("/deploy", get(deploy::page))
        .route("/deploy/connect", post(deploy::connect))
        .route("/deploy/facebook", get(deploy::facebook_start))
        .route("/deploy/facebook/callback", get(deploy::facebook_callback))
        .route("/deploy/facebook/pick", post(deploy::facebook_pick))
        .route("/deploy/{id}/settings", post(deploy::settings))
        .route("/deploy/{id}/disconnect", post(deploy::disconnect))
        .route("/analytics", get(analytics::page))
        .route("/analytics.csv", get(analytics::csv))
        .route("/inbox", get(inbox::list))
        .route("/inbox/events", get(inbox::events))
        .route("/inbox/{id}", get(inbox::conversation))
        .route("/inbox/{id}/takeover", post(inbox::take_over))
        .route("/inbox/{id}/handback", post(inbox::hand_back))
        .route("/inbox/{id}/reply", post(inbox::reply))
        .route("/static/app.css", get(assets::css))
        .route("/static/app.js", get(assets::js))
        // Unknown paths outside /api/v1 (which has its own JSON fallback) get the HTML 404 page.
        .fallback(|| async { web::not_found(web::Chrome::bare()) })
}
