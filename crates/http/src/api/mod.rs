//! The JSON API under `/api/v1`, documented by `/api/v1/openapi.json` (generated from these handlers).

pub mod account;
pub mod analytics;
pub mod billing;
pub mod channels;
pub mod chat;
pub mod chatbots;
pub mod conversations;
pub mod export;
pub mod password_reset;
pub mod providers;
pub mod qa;
pub mod retention;
pub mod retrieval;
pub mod sources;
pub mod tokens;
pub mod unanswered;
pub mod usage;

use crate::AppState;
use crate::error::{ApiError, ErrorBody};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "MT Desk API",
        description = "Build customer-service chatbots from your own knowledge. Authenticate with `Authorization: Bearer <token>` (create tokens under My Account or with `mtdesk admin token create`). Errors are `{\"error\": \"snake_code\", \"message\": \"…\"}`.",
        license(name = "AGPL-3.0-or-later")
    ),
    paths(
        account::sign_up, account::get_account, account::update_account, account::delete_account,
        account::resend_verification, account::confirm_verification,
        password_reset::request, password_reset::confirm,
        tokens::list, tokens::create, tokens::revoke,
        chatbots::list, chatbots::create, chatbots::get_one, chatbots::update, chatbots::delete,
        qa::list, qa::create, qa::get_one, qa::update, qa::delete, qa::import,
        chat::chat, unanswered::list, unanswered::resolve,
        providers::list, providers::set_key, providers::delete_key, providers::test_key, providers::models,
        usage::usage,
        analytics::json, analytics::csv_export,
        sources::list, sources::create, sources::get_one, sources::update, sources::sync, sources::delete,
        retrieval::retrieval_test, retrieval::get_settings, retrieval::put_settings,
        channels::list, channels::create, channels::get_one, channels::update, channels::delete,
        conversations::list, conversations::get_one, conversations::take_over, conversations::hand_back,
        conversations::reply,
        retention::get_retention, retention::put_retention,
        export::request, export::list, export::download,
        billing::get_billing, billing::checkout, billing::portal,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "account", description = "Your account: sign up, profile, deletion"),
        (name = "tokens", description = "API tokens"),
        (name = "chatbots", description = "Chatbots and their settings"),
        (name = "qa", description = "Q&A pairs of a chatbot"),
        (name = "chat", description = "Ask a chatbot; questions it could not answer"),
        (name = "providers", description = "LLM providers and your own API keys"),
        (name = "usage", description = "Answers and tokens per month"),
        (name = "analytics", description = "Conversations, answer rate, latency, tokens and cost per day, channel and provider (from the daily aggregates)"),
        (name = "knowledge", description = "Knowledge sources (documents, websites), hit testing, embeddings"),
        (name = "channels", description = "Messenger, Instagram and WhatsApp: connect, pause, disconnect"),
        (name = "inbox", description = "Conversations, transcripts, take-over and replies as yourself"),
        (name = "billing", description = "Plan, billing status, invoices; Stripe Checkout and Customer Portal"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .merge(account::router())
        .merge(password_reset::router())
        .merge(tokens::router())
        .merge(chatbots::router())
        .merge(qa::router())
        .merge(chat::router())
        .merge(unanswered::router())
        .merge(providers::router())
        .merge(usage::router())
        .merge(analytics::router())
        .merge(sources::router())
        .merge(retrieval::router())
        .merge(channels::router())
        .merge(conversations::router())
        .merge(retention::router())
        .merge(export::router())
        .merge(billing::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async {
            (
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                Json(ErrorBody {
                    error: "method_not_allowed",
                    message: "this method is not allowed on this resource".into(),
                    field: None,
                }),
            )
                .into_response()
        })
}

async fn openapi_json() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
