//! AI providers: which LLM providers your chatbots can use, your own API keys (stored sealed, only their
//! last four characters are ever shown again) and a key test, over the same functions as
//! `/api/v1/providers`.

use crate::web::{
    self, Chrome, CsrfForm, CsrfOnly, Errors, User, api_error, has_csrf, not_found, page, respond,
    see_other,
};
use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use mtdesk_domain::Provider;
use mtdesk_http::AppState;
use mtdesk_http::api::providers::{
    ProviderStatus, TestResult, provider_statuses, run_key_test, save_key,
};
use serde::Deserialize;

/// An LLM provider by its API name. `offline` has no key, so it is "not found" here like an unknown name.
fn llm_provider(raw: &str) -> Option<Provider> {
    match Provider::parse(raw) {
        Ok(Provider::Offline) | Err(_) => None,
        Ok(p) => Some(p),
    }
}

pub struct Card {
    provider: String,
    label: String,
    has_base_url: bool,
    has_instance_key: bool,
    /// "•••• abcd" when you stored a key of your own.
    own_key: Option<String>,
    own_key_updated: String,
    /// A refused key for this card.
    key_errors: Errors,
    /// The model typed for the last test of this card.
    test_model: String,
    /// The result of a key test of this card.
    test: Option<TestResult>,
}

impl From<ProviderStatus> for Card {
    fn from(s: ProviderStatus) -> Self {
        Self {
            provider: s.provider,
            label: s.label,
            has_base_url: s.has_base_url,
            has_instance_key: s.has_instance_key,
            own_key: s.own_key_hint.map(|h| format!("•••• {h}")),
            own_key_updated: s.own_key_updated_at.map(web::date).unwrap_or_default(),
            key_errors: Errors::none(),
            test_model: String::new(),
            test: None,
        }
    }
}

#[derive(Template)]
#[template(path = "providers.html")]
pub struct ProvidersPage {
    chrome: Chrome,
    cards: Vec<Card>,
}
page!(ProvidersPage);

impl ProvidersPage {
    fn card(&mut self, provider: Provider) -> Option<&mut Card> {
        self.cards
            .iter_mut()
            .find(|c| c.provider == provider.as_str())
    }
}

async fn providers_page(
    state: &AppState,
    user: &User,
    chrome: Chrome,
) -> Result<ProvidersPage, Response> {
    let statuses = provider_statuses(state, &user.account.id)
        .await
        .map_err(|e| api_error(user.chrome("providers"), e))?;
    Ok(ProvidersPage {
        chrome,
        cards: statuses.into_iter().map(Card::from).collect(),
    })
}

/// The flash after a redirect: `?saved=<provider>` or `?deleted=<provider>`. Only known provider labels
/// are put into the sentence, so a crafted link cannot put words on the page.
fn flash(query: Option<&str>) -> Option<String> {
    let label = |key| {
        web::query_value(query, key)
            .and_then(llm_provider)
            .map(|p| p.label())
    };
    if let Some(l) = label("saved") {
        return Some(format!(
            "Your {l} key was saved. Only its last four characters will be shown again."
        ));
    }
    label("deleted").map(|l| format!("Your {l} key was deleted."))
}

/// `GET /account/providers`.
pub async fn page(
    State(state): State<AppState>,
    user: User,
    RawQuery(query): RawQuery,
) -> Response {
    let chrome = user.chrome("providers").with_flash(flash(query.as_deref()));
    match providers_page(&state, &user, chrome).await {
        Ok(page) => respond(StatusCode::OK, &page),
        Err(resp) => resp,
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeyForm {
    csrf: String,
    api_key: String,
}
has_csrf!(KeyForm);

/// `POST /account/providers/{provider}/key`: stores your own key (sealed); a refused key is never echoed.
pub async fn save(
    State(state): State<AppState>,
    user: User,
    Path(provider): Path<String>,
    CsrfForm(form): CsrfForm<KeyForm>,
) -> Response {
    let Some(provider) = llm_provider(&provider) else {
        return not_found(user.chrome("providers"));
    };
    match save_key(&state, &user.account.id, provider, &form.api_key).await {
        Ok(_) => see_other(&format!("/account/providers?saved={}", provider.as_str())),
        Err(e) => {
            let errors = Errors::from_api(&e, &["api_key"]);
            let mut page = match providers_page(&state, &user, user.chrome("providers")).await {
                Ok(p) => p,
                Err(resp) => return resp,
            };
            if let Some(card) = page.card(provider) {
                card.key_errors = errors;
            }
            respond(e.status(), &page)
        }
    }
}

/// `POST /account/providers/{provider}/key/delete`: forgets your own key (the instance key, if any, is
/// used again).
pub async fn delete(
    State(state): State<AppState>,
    user: User,
    Path(provider): Path<String>,
    CsrfForm(_): CsrfForm<CsrfOnly>,
) -> Response {
    let Some(provider) = llm_provider(&provider) else {
        return not_found(user.chrome("providers"));
    };
    match state
        .store
        .delete_provider_key(&user.account.id, provider)
        .await
    {
        Ok(()) => see_other(&format!("/account/providers?deleted={}", provider.as_str())),
        Err(e) => api_error(user.chrome("providers"), e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TestForm {
    csrf: String,
    model: String,
}
has_csrf!(TestForm);

/// `POST /account/providers/{provider}/test`: a cheap call with the key your chatbots would use, and
/// the provider's answer in plain words on the card.
pub async fn test(
    State(state): State<AppState>,
    user: User,
    Path(provider): Path<String>,
    CsrfForm(form): CsrfForm<TestForm>,
) -> Response {
    let Some(provider) = llm_provider(&provider) else {
        return not_found(user.chrome("providers"));
    };
    let model = web::truncate(form.model.trim(), mtdesk_domain::chatbot::MODEL_MAX);
    let result = run_key_test(
        &state,
        &user.account.id,
        provider,
        Some(model.as_str()).filter(|m| !m.is_empty()),
    )
    .await;
    let mut page = match providers_page(&state, &user, user.chrome("providers")).await {
        Ok(p) => p,
        Err(resp) => return resp,
    };
    if let Some(card) = page.card(provider) {
        card.test_model = model;
        card.test = Some(result);
    }
    respond(StatusCode::OK, &page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_llm_providers_have_keys() {
        assert_eq!(llm_provider("openrouter"), Some(Provider::Openrouter));
        assert_eq!(llm_provider("offline"), None);
        assert_eq!(llm_provider("nope"), None);
    }

    #[test]
    fn flashes_name_only_known_providers() {
        assert_eq!(
            flash(Some("deleted=fireworks")).as_deref(),
            Some("Your Fireworks key was deleted.")
        );
        assert!(flash(Some("saved=openrouter")).is_some());
        assert_eq!(flash(Some("saved=%3Cscript%3E")), None);
        assert_eq!(flash(Some("deleted=offline")), None);
        assert_eq!(flash(None), None);
    }
}
