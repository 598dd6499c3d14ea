//! Answering a customer's message.
//!
//! [`Answerer::answer`] is the one seam the dashboard's test chat, the API and the channels call:
//! retrieve knowledge (Q&A pairs today), then walk the chatbot's chain — its provider, its fallbacks, and
//! always the offline answerer last — until one produces a complete answer, then record the exchange.
//!
//! - The offline answerer needs no key: the best Q&A pair above [`MATCH_THRESHOLD`], else the chatbot's
//!   fallback reply. It is labelled as such everywhere.
//! - An LLM answer is stored only once complete; a stream cut in the middle is a failed attempt (the
//!   listener is told to discard what it showed) and the next link answers.
//! - Keys: the account's own key (sealed at rest, see `mtdesk_storage::sealed`) wins over the instance key
//!   from `MTDESK_<PROVIDER>_API_KEY`. Keys are never logged or returned.

pub mod offline;
pub mod prompt;
pub mod providers;

use mtdesk_domain::{AccountId, ChainLink, ConversationId, Provider};
use mtdesk_storage::{Chatbot, NewAnswer, Sealer, StorageError, Store};
use providers::{
    ChatRequest, ErrorKind, LlmClient, ProviderConfig, ProviderError, RetryPolicy, StreamEvent,
    Timeouts,
};
use serde::Serialize;
use std::sync::Arc;
use tokio::sync::mpsc;

pub use offline::{CONTEXT_THRESHOLD, MATCH_THRESHOLD, match_score};

/// Where a provider is reached and the instance-wide key, from `MTDESK_<PROVIDER>_*`.
#[derive(Clone)]
pub struct Endpoint {
    pub provider: Provider,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("provider", &self.provider)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Answering configuration, built once from the settings.
#[derive(Debug, Clone)]
pub struct AiConfig {
    pub endpoints: Vec<Endpoint>,
    /// Sent to OpenRouter as `HTTP-Referer` (the instance's public URL).
    pub site_url: Option<String>,
    pub app_name: String,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl AiConfig {
    pub fn endpoint(&self, provider: Provider) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.provider == provider)
    }
}

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerSource {
    /// The offline answerer used a Q&A pair as is.
    QaPair,
    /// A model answered with knowledge from the knowledge base in its context.
    Knowledge,
    /// The offline answerer quoted the most relevant sentences of the best document passages.
    Excerpt,
    /// A model answered with no matching knowledge (only when "answer only from knowledge" is off).
    Model,
    /// Nothing could answer: the chatbot's fallback reply.
    Fallback,
}

/// A piece of knowledge shown as the answer's source.
#[derive(Debug, Clone, Serialize)]
pub struct SourceRef {
    pub kind: &'static str,
    pub id: String,
    pub title: String,
    /// 0..=1, how well the message matched it (see [`match_score`]).
    pub score: f64,
}

/// A link of the chain that did not answer, and why.
#[derive(Debug, Clone, Serialize)]
pub struct FailedAttempt {
    pub provider: String,
    pub model: String,
    /// Stable code (`ErrorKind::as_str`), e.g. `bad_key`, `rate_limited`, `stream_cut`, `not_configured`.
    pub error: String,
    /// What the owner should know, in plain words (never contains a key).
    pub message: String,
}

/// An answer with everything needed to show how it was produced.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub text: String,
    pub source: AnswerSource,
    /// The provider that produced the text (`offline` for the built-in answerer).
    pub answered_by: String,
    pub model: String,
    /// The best-matching Q&A pair, if any matched at all.
    pub matched: Option<SourceRef>,
    /// The knowledge given to the model (or used by the offline answerer).
    pub sources: Vec<SourceRef>,
    /// Providers tried before the one that answered.
    pub fallbacks: Vec<FailedAttempt>,
    /// A note for the owner about how the answer was produced.
    pub notice: Option<String>,
    /// The customer's message was longer than the prompt allows and was cut.
    pub truncated: bool,
    pub latency_ms: u64,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub conversation_id: ConversationId,
    pub answer_id: String,
}

/// What a streaming listener receives while the answer is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamUpdate {
    /// More text of the current attempt.
    Delta(String),
    /// The current attempt failed mid-way: discard the text shown so far; the next link answers.
    Reset,
}

/// Errors of the answering pipeline itself (provider failures are not errors: the chain moves on).
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One request to answer.
pub struct AnswerRequest<'a> {
    pub message: &'a str,
    /// Continue this conversation (checked to belong to the chatbot), or start a new one.
    pub conversation: Option<ConversationId>,
    /// `test`, `api`, `messenger`, `instagram`, `whatsapp`.
    pub channel: &'a str,
    /// A channel message already stored (its id): it is left out of the history, not stored again, and the
    /// reply is stored pending delivery (the channel worker sends it).
    pub inbound: Option<&'a str>,
}

/// Document passages given to a model at most.
const PASSAGES_MAX: usize = 3;

/// How many earlier messages are loaded for the prompt (the token budget then trims them).
const HISTORY_MESSAGES: i64 = 20;

/// The answering service. Cheap to clone.
#[derive(Clone)]
pub struct Answerer {
    store: Store,
    /// Document and website knowledge (chunks); `None` means Q&A pairs only.
    knowledge: Option<mtdesk_knowledge::Knowledge>,
    sealer: Sealer,
    config: Arc<AiConfig>,
    client: LlmClient,
    /// The plan's monthly message limit; `None` answers without limits.
    limiter: Option<mtdesk_billing::limits::MessageLimiter>,
}

impl Answerer {
    pub fn new(store: Store, sealer: Sealer, config: AiConfig) -> Self {
        Self {
            store,
            knowledge: None,
            sealer,
            config: Arc::new(config),
            client: LlmClient::new(),
            limiter: None,
        }
    }

    /// Enforces the monthly message limit of each account's plan: over it, the chatbot's fallback reply is
    /// sent without asking a model (and the owner is mailed once a month, see `MessageLimiter`).
    pub fn with_limits(mut self, limiter: mtdesk_billing::limits::MessageLimiter) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The notice for the owner when the account is over its monthly message limit, `None` otherwise. A
    /// failed check is logged and answers as usual: a database hiccup must not silence every chatbot.
    async fn over_message_limit(&self, account: &AccountId) -> Option<String> {
        let limiter = self.limiter.as_ref()?;
        match limiter.check(account, mtdesk_domain::now_ms()).await {
            Ok(mtdesk_billing::limits::MessageGate::Allowed) => None,
            Ok(mtdesk_billing::limits::MessageGate::OverLimit { plan_name, limit }) => {
                Some(format!(
                    "The {plan_name} plan's limit of {limit} answered messages this month is reached: the fallback reply was sent and no AI model was asked."
                ))
            }
            Err(e) => {
                tracing::error!(error = %e, "checking the monthly message limit failed; answering anyway");
                None
            }
        }
    }

    /// Answers also from documents and websites, through hybrid retrieval.
    pub fn with_knowledge(mut self, knowledge: mtdesk_knowledge::Knowledge) -> Self {
        self.knowledge = Some(knowledge);
        self
    }

    /// The Q&A pairs matching a message, best first (for hit testing).
    pub async fn qa_candidates(
        &self,
        bot: &Chatbot,
        message: &str,
    ) -> Result<Vec<offline::Candidate>, StorageError> {
        offline::retrieve(&self.store, bot, message).await
    }

    /// Document passages for a message when retrieval is confident, best first. A retrieval failure (an
    /// embedding provider down) degrades to Q&A pairs alone and is logged.
    async fn passages(&self, bot: &Chatbot, message: &str) -> Vec<mtdesk_knowledge::Hit> {
        let Some(k) = &self.knowledge else {
            return Vec::new();
        };
        match k.retrieve(&bot.id, message, None, PASSAGES_MAX).await {
            Ok(r) if r.confident => r.hits,
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, "knowledge retrieval failed; answering from Q&A pairs only");
                Vec::new()
            }
        }
    }

    pub fn config(&self) -> &AiConfig {
        &self.config
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    /// The owner string sealed keys are bound to.
    pub fn key_owner(account: &AccountId, provider: Provider) -> String {
        format!("{account}/{}", provider.as_str())
    }

    /// How to call `provider` for `account`: the account's own key first, else the instance key.
    pub async fn provider_config(
        &self,
        account: &AccountId,
        provider: Provider,
    ) -> Result<ProviderConfig, ProviderError> {
        let endpoint = self.config.endpoint(provider);
        let base_url = endpoint.and_then(|e| e.base_url.clone());
        let own = match self.store.find_sealed_provider_key(account, provider).await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "reading provider key");
                None
            }
        };
        let api_key = match own {
            Some(sealed) => match self
                .sealer
                .open(&sealed, &Self::key_owner(account, provider))
            {
                Ok(k) => Some(k),
                Err(e) => {
                    return Err(ProviderError {
                        kind: ErrorKind::NotConfigured,
                        status: None,
                        message: format!(
                            "Your stored {} key cannot be read ({e}): enter it again.",
                            provider.label()
                        ),
                        attempts: 0,
                    });
                }
            },
            None => endpoint.and_then(|e| e.api_key.clone()),
        };
        let needs_key = provider != Provider::OpenaiCompat;
        if provider == Provider::Offline || base_url.is_none() || (needs_key && api_key.is_none()) {
            let message = if base_url.is_none() {
                format!("{} has no base URL configured.", provider.label())
            } else {
                format!(
                    "No API key for {}: add one under AI providers.",
                    provider.label()
                )
            };
            return Err(ProviderError {
                kind: ErrorKind::NotConfigured,
                status: None,
                message,
                attempts: 0,
            });
        }
        Ok(ProviderConfig {
            provider,
            base_url: base_url.unwrap_or_default(),
            api_key,
            site_url: self.config.site_url.clone(),
            app_name: self.config.app_name.clone(),
            timeouts: self.config.timeouts.clone(),
            retry: self.config.retry.clone(),
        })
    }

    pub fn client(&self) -> &LlmClient {
        &self.client
    }

    /// Answers `req` for `bot`, streaming text to `updates` when given, and records the exchange.
    #[tracing::instrument(skip_all, fields(chatbot.id = %bot.id, channel = req.channel))]
    pub async fn answer(
        &self,
        bot: &Chatbot,
        req: AnswerRequest<'_>,
        updates: Option<mpsc::Sender<StreamUpdate>>,
    ) -> Result<Answer, AnswerError> {
        let started = std::time::Instant::now();
        let account = &bot.account_id;
        let (message, truncated) = prompt::truncate_message(req.message);
        // A new conversation has no history: skip the query on this hot path.
        let (conversation, history) = match req.conversation {
            Some(c) => {
                self.store.find_conversation(account, &bot.id, &c).await?;
                let history: Vec<(String, String)> = self
                    .store
                    .recent_messages(account, &c, HISTORY_MESSAGES)
                    .await?
                    .into_iter()
                    .filter(|m| Some(m.id.as_str()) != req.inbound)
                    .map(|m| {
                        (
                            if m.role == "owner" {
                                "assistant".to_string()
                            } else {
                                m.role
                            },
                            m.content,
                        )
                    })
                    .collect();
                (c, history)
            }
            None => {
                let c = self
                    .store
                    .create_conversation(account, &bot.id, req.channel)
                    .await?;
                (c, Vec::new())
            }
        };
        // Over the plan's monthly limit: no retrieval, no model, the fallback reply (not counted as answered).
        let over_limit = self.over_message_limit(account).await;
        let candidates = if over_limit.is_some() {
            Vec::new()
        } else {
            offline::retrieve(&self.store, bot, &message).await?
        };
        let source_of = |c: &offline::Candidate| SourceRef {
            kind: "qa",
            id: c.pair.id.to_string(),
            title: c.pair.question.clone(),
            score: (c.score * 1000.0).round() / 1000.0,
        };
        let context: Vec<&offline::Candidate> = candidates
            .iter()
            .filter(|c| c.score >= CONTEXT_THRESHOLD)
            .take(offline::CONTEXT_MAX)
            .collect();
        let matched = candidates.first().filter(|c| c.score > 0.0).map(source_of);
        // A Q&A pair whose question matches well wins: passages are only looked up without one.
        let passages = if over_limit.is_some() || offline::best_match(&candidates).is_some() {
            Vec::new()
        } else {
            self.passages(bot, &message).await
        };
        let passage_ref = |h: &mtdesk_knowledge::Hit| SourceRef {
            kind: "chunk",
            id: h.chunk_id.to_string(),
            title: passage_label(h),
            score: (f64::from(h.vector_score.unwrap_or(h.score)) * 1000.0).round() / 1000.0,
        };
        let matched = matched.or_else(|| passages.first().map(passage_ref));

        let mut chain: Vec<ChainLink> = vec![ChainLink {
            provider: bot.settings.provider,
            model: bot.settings.model.clone(),
        }];
        chain.extend(bot.settings.fallback_chain.iter().cloned());
        chain.retain(|l| l.provider != Provider::Offline);
        chain.dedup();

        let mut fallbacks: Vec<FailedAttempt> = Vec::new();
        let mut produced: Option<(String, AnswerSource, String, String, u32, u32)> = None;
        // "Answer only from knowledge" with nothing relevant: no model is asked; the offline answerer
        // gives the fallback reply.
        let has_context = !context.is_empty() || !passages.is_empty();
        let skip_models = over_limit.is_some() || (bot.settings.knowledge_only && !has_context);
        if !skip_models {
            let mut items: Vec<prompt::ContextItem> = context
                .iter()
                .enumerate()
                .map(|(i, c)| prompt::ContextItem {
                    marker: i + 1,
                    question: Some(c.pair.question.clone()),
                    answer: c.pair.answer.clone(),
                    source: None,
                })
                .collect();
            for h in &passages {
                items.push(prompt::ContextItem {
                    marker: items.len() + 1,
                    question: None,
                    answer: h.text.clone(),
                    source: Some(passage_label(h)),
                });
            }
            let system = prompt::system_prompt(
                &bot.settings.instructions,
                bot.settings.knowledge_only,
                &items,
            );
            let messages = prompt::build_messages(system, &history, &message);
            for link in &chain {
                let request = ChatRequest {
                    model: link.model.clone(),
                    messages: messages.clone(),
                    temperature: bot.settings.temperature,
                    max_tokens: bot.settings.max_tokens,
                };
                match self
                    .try_link(account, link, &request, updates.as_ref())
                    .await
                {
                    Ok((text, model, pt, ct)) => {
                        let source = if !has_context {
                            AnswerSource::Model
                        } else {
                            AnswerSource::Knowledge
                        };
                        produced = Some((
                            text,
                            source,
                            link.provider.as_str().to_string(),
                            model,
                            pt,
                            ct,
                        ));
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(provider = link.provider.as_str(), error = ?e.kind, "provider failed; trying the next");
                        fallbacks.push(FailedAttempt {
                            provider: link.provider.as_str().to_string(),
                            model: link.model.clone(),
                            error: e.kind.as_str().to_string(),
                            message: owner_message(&e),
                        });
                    }
                }
            }
        }
        let (text, source, answered_by, model, prompt_tokens, completion_tokens) = match produced {
            Some(p) => p,
            None => {
                let (text, source) = match offline::best_match(&candidates) {
                    Some(best) => (best.pair.answer.clone(), AnswerSource::QaPair),
                    None => match offline::excerpt(&message, &passages) {
                        Some(text) => (text, AnswerSource::Excerpt),
                        None => (bot.settings.fallback_reply.clone(), AnswerSource::Fallback),
                    },
                };
                if let Some(tx) = &updates {
                    let _ = tx.send(StreamUpdate::Delta(text.clone())).await;
                }
                (text, source, "offline".to_string(), String::new(), 0, 0)
            }
        };
        let sources: Vec<SourceRef> = match source {
            AnswerSource::QaPair => offline::best_match(&candidates)
                .map(source_of)
                .into_iter()
                .collect(),
            AnswerSource::Knowledge => context
                .iter()
                .map(|c| source_of(c))
                .chain(passages.iter().map(passage_ref))
                .collect(),
            AnswerSource::Excerpt => passages.iter().take(2).map(passage_ref).collect(),
            AnswerSource::Model | AnswerSource::Fallback => Vec::new(),
        };
        let notice = over_limit.or_else(|| {
            notice_for(
                &fallbacks,
                skip_models && bot.settings.provider != Provider::Offline,
                truncated,
            )
        });
        let latency_ms = started.elapsed().as_millis() as u64;
        let record = NewAnswer {
            question: message.clone(),
            answer: text.clone(),
            provider: answered_by.clone(),
            model: model.clone(),
            latency_ms: latency_ms as i64,
            prompt_tokens: i64::from(prompt_tokens),
            completion_tokens: i64::from(completion_tokens),
            from_knowledge: matches!(
                source,
                AnswerSource::QaPair | AnswerSource::Knowledge | AnswerSource::Excerpt
            ),
            answered: source != AnswerSource::Fallback,
            top_score: candidates
                .first()
                .map(|c| c.score)
                .into_iter()
                .chain(passages.first().and_then(|h| h.vector_score.map(f64::from)))
                .reduce(f64::max),
            retrieval: serde_json::to_string(
                &candidates
                    .iter()
                    .map(|c| serde_json::json!({"qa_id": c.pair.id.as_str(), "score": c.score}))
                    .chain(passages.iter().map(|h| {
                        serde_json::json!({"chunk_id": h.chunk_id.as_str(), "score": h.score,
                            "vector": h.vector_score, "lexical": h.lexical_score, "leg": h.leg})
                    }))
                    .collect::<Vec<_>>(),
            )
            .unwrap_or_else(|_| "[]".into()),
            fallbacks: serde_json::to_string(&fallbacks).unwrap_or_else(|_| "[]".into()),
            inbound: req.inbound.map(str::to_string),
            sources: (!sources.is_empty())
                .then(|| serde_json::to_string(&sources).ok())
                .flatten(),
        };
        let answer_id = self
            .store
            .record_exchange(account, &bot.id, &conversation, &record)
            .await?;
        Ok(Answer {
            text,
            source,
            answered_by,
            model,
            matched,
            sources,
            fallbacks,
            notice,
            truncated,
            latency_ms,
            prompt_tokens,
            completion_tokens,
            conversation_id: conversation,
            answer_id: answer_id.to_string(),
        })
    }

    /// One LLM link: configure, call (streaming when a listener is given), return the complete text.
    async fn try_link(
        &self,
        account: &AccountId,
        link: &ChainLink,
        request: &ChatRequest,
        updates: Option<&mpsc::Sender<StreamUpdate>>,
    ) -> Result<(String, String, u32, u32), ProviderError> {
        let cfg = self.provider_config(account, link.provider).await?;
        let Some(tx) = updates else {
            let r = self.client.chat(&cfg, request).await?;
            let usage = r.usage.unwrap_or(providers::Usage {
                prompt_tokens: 0,
                completion_tokens: 0,
            });
            return Ok((
                r.content,
                r.model,
                usage.prompt_tokens,
                usage.completion_tokens,
            ));
        };
        let mut rx = self.client.chat_stream(&cfg, request).await?;
        let mut text = String::new();
        let mut sent_any = false;
        while let Some(item) = rx.recv().await {
            match item {
                Ok(StreamEvent::Delta(d)) => {
                    text.push_str(&d);
                    sent_any = true;
                    let _ = tx.send(StreamUpdate::Delta(d)).await;
                }
                Ok(StreamEvent::Done { usage, .. }) => {
                    let usage = usage.unwrap_or(providers::Usage {
                        prompt_tokens: 0,
                        completion_tokens: 0,
                    });
                    return Ok((
                        text,
                        request.model.clone(),
                        usage.prompt_tokens,
                        usage.completion_tokens,
                    ));
                }
                Err(e) => {
                    if sent_any {
                        let _ = tx.send(StreamUpdate::Reset).await;
                    }
                    return Err(e);
                }
            }
        }
        if sent_any {
            let _ = tx.send(StreamUpdate::Reset).await;
        }
        Err(ProviderError {
            kind: ErrorKind::StreamCut,
            status: None,
            message: "the stream ended before the answer was complete".into(),
            attempts: 1,
        })
    }
}

/// What the owner reads about a failed provider: our plain sentence, then the provider's own words.
pub fn owner_message(e: &ProviderError) -> String {
    if e.kind == ErrorKind::NotConfigured && !e.message.is_empty() {
        // Our own message already says exactly what is missing.
        return e.message.clone();
    }
    if e.message.is_empty() {
        return e.kind.owner_message().to_string();
    }
    format!(
        "{} The provider said: {}",
        e.kind.owner_message(),
        e.message
    )
}

fn notice_for(
    fallbacks: &[FailedAttempt],
    skipped_for_no_knowledge: bool,
    truncated: bool,
) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(first) = fallbacks.first() {
        let name = Provider::parse(&first.provider)
            .map(|p| p.label())
            .unwrap_or("The provider");
        parts.push(format!("{name} did not answer: {}", first.message));
    }
    if skipped_for_no_knowledge {
        parts.push("Nothing in the knowledge base matched and \"answer only from knowledge\" is on, so no model was asked.".into());
    }
    if truncated {
        parts.push(format!(
            "The message was longer than {} characters and was cut before answering.",
            prompt::MESSAGE_PROMPT_MAX
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// "Refund policy > Returns (page 3)" or "…(https://…)": where a passage comes from, for prompts and
/// source lines.
pub fn passage_label(h: &mtdesk_knowledge::Hit) -> String {
    let mut label = h.title.clone();
    if !h.heading.is_empty() && h.heading != h.title {
        label.push_str(" > ");
        label.push_str(&h.heading);
    }
    if let Some(p) = h.page {
        label.push_str(&format!(" (page {p})"));
    } else if let Some(u) = &h.url {
        label.push_str(&format!(" ({u})"));
    }
    label
}
