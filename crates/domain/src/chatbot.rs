//! Chatbot settings: the persona, the model and how it answers.

use crate::{DomainError, text};
use serde::{Deserialize, Serialize};

pub const INSTRUCTIONS_MAX: usize = 20_000;
pub const FALLBACK_MAX: usize = 2_000;
pub const MODEL_MAX: usize = 200;
/// Longest answer a chatbot may ask a model for, in tokens.
pub const MAX_TOKENS_LIMIT: u32 = 8_192;
/// Most fallbacks after the main provider (offline always comes last on its own).
pub const CHAIN_MAX: usize = 4;

/// The fallback reply a new chatbot gets when the user leaves it empty.
pub const DEFAULT_FALLBACK: &str =
    "Sorry, I don't have an answer to that yet. A member of our team will get back to you.";

/// Which LLM provider answers. `Offline` needs no key and answers from the knowledge base alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    #[default]
    Offline,
    Openrouter,
    Fireworks,
    Minimax,
    Moonshot,
    OpenaiCompat,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::Offline,
        Provider::Openrouter,
        Provider::Fireworks,
        Provider::Minimax,
        Provider::Moonshot,
        Provider::OpenaiCompat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Offline => "offline",
            Provider::Openrouter => "openrouter",
            Provider::Fireworks => "fireworks",
            Provider::Minimax => "minimax",
            Provider::Moonshot => "moonshot",
            Provider::OpenaiCompat => "openai_compat",
        }
    }

    /// Human label for the dashboard.
    pub fn label(self) -> &'static str {
        match self {
            Provider::Offline => "Offline (no API key, answers from your Q&A)",
            Provider::Openrouter => "OpenRouter",
            Provider::Fireworks => "Fireworks",
            Provider::Minimax => "MiniMax",
            Provider::Moonshot => "Moonshot (Kimi)",
            Provider::OpenaiCompat => "OpenAI-compatible (Ollama, vLLM, llama.cpp)",
        }
    }

    pub fn parse(s: &str) -> Result<Self, DomainError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|p| p.as_str()).collect();
                DomainError::invalid("provider", format!("must be one of {}", names.join(", ")))
            })
    }
}

/// Everything a chatbot is configured with, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatbotSettings {
    pub name: String,
    pub instructions: String,
    pub provider: Provider,
    pub model: String,
    pub temperature: f64,
    pub fallback_reply: String,
    /// When on, the bot must not answer from the model's general knowledge.
    pub knowledge_only: bool,
    /// Longest answer to ask the model for, in tokens.
    pub max_tokens: u32,
    /// Tried in order when the main provider fails; the offline answerer always comes after them.
    pub fallback_chain: Vec<ChainLink>,
}

/// One provider and model in a fallback chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub provider: Provider,
    pub model: String,
}

impl ChainLink {
    /// Parses the stored/typed form: one link per line, `provider model` (or just `offline`).
    pub fn parse_lines(text: &str) -> Result<Vec<ChainLink>, DomainError> {
        let mut out = Vec::new();
        for (i, line) in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .enumerate()
        {
            let (p, m) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            let provider = Provider::parse(p).map_err(|e| {
                DomainError::invalid("fallback_chain", format!("line {}: {}", i + 1, e.message))
            })?;
            out.push(ChainLink {
                provider,
                model: m.trim().to_string(),
            });
        }
        Self::validate(&out)?;
        Ok(out)
    }

    /// Checks a chain: at most [`CHAIN_MAX`] links, a model for every LLM provider.
    pub fn validate(chain: &[ChainLink]) -> Result<(), DomainError> {
        if chain.len() > CHAIN_MAX {
            return Err(DomainError::invalid(
                "fallback_chain",
                format!("at most {CHAIN_MAX} fallbacks (offline is always added last)"),
            ));
        }
        for (i, link) in chain.iter().enumerate() {
            if link.provider != Provider::Offline && link.model.trim().is_empty() {
                return Err(DomainError::invalid(
                    "fallback_chain",
                    format!(
                        "line {}: give a model for {}",
                        i + 1,
                        link.provider.as_str()
                    ),
                ));
            }
            if link.model.chars().count() > MODEL_MAX {
                return Err(DomainError::invalid(
                    "fallback_chain",
                    format!("line {}: model name too long", i + 1),
                ));
            }
        }
        Ok(())
    }

    /// The stored form, one link per line.
    pub fn to_lines(chain: &[ChainLink]) -> String {
        chain
            .iter()
            .map(|l| {
                if l.model.is_empty() {
                    l.provider.as_str().to_string()
                } else {
                    format!("{} {}", l.provider.as_str(), l.model)
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Raw, optional fields as they arrive from a form or a JSON body. [`ChatbotDraft::apply`] validates them on
/// top of existing settings (PATCH) or defaults (create).
#[derive(Debug, Clone, Default)]
pub struct ChatbotDraft<'a> {
    pub name: Option<&'a str>,
    pub instructions: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    pub temperature: Option<f64>,
    pub fallback_reply: Option<&'a str>,
    pub knowledge_only: Option<bool>,
    pub max_tokens: Option<u32>,
    pub fallback_chain: Option<Vec<ChainLink>>,
}

impl ChatbotSettings {
    /// Defaults for a new chatbot; the name is the one thing the user must give.
    pub fn defaults() -> Self {
        Self {
            name: String::new(),
            instructions: "You are a friendly, concise customer-service assistant.".into(),
            provider: Provider::Offline,
            model: String::new(),
            temperature: 0.3,
            fallback_reply: DEFAULT_FALLBACK.into(),
            knowledge_only: true,
            max_tokens: 512,
            fallback_chain: Vec::new(),
        }
    }
}

impl ChatbotDraft<'_> {
    /// Applies the draft on top of `base`, validating every field given.
    pub fn apply(&self, base: &ChatbotSettings) -> Result<ChatbotSettings, DomainError> {
        let mut s = base.clone();
        if let Some(n) = self.name {
            s.name = text::bounded("name", n, 1, crate::account::NAME_MAX, false)?;
        }
        if let Some(i) = self.instructions {
            s.instructions = text::bounded("instructions", i, 0, INSTRUCTIONS_MAX, true)?;
        }
        if let Some(p) = self.provider {
            s.provider = Provider::parse(p)?;
        }
        if let Some(m) = self.model {
            s.model = text::bounded("model", m, 0, MODEL_MAX, false)?;
        }
        if let Some(t) = self.temperature {
            if !t.is_finite() || !(0.0..=2.0).contains(&t) {
                return Err(DomainError::invalid(
                    "temperature",
                    "must be between 0 and 2",
                ));
            }
            s.temperature = t;
        }
        if let Some(f) = self.fallback_reply {
            s.fallback_reply = text::bounded("fallback_reply", f, 1, FALLBACK_MAX, true)?;
        }
        if let Some(k) = self.knowledge_only {
            s.knowledge_only = k;
        }
        if let Some(m) = self.max_tokens {
            if !(1..=MAX_TOKENS_LIMIT).contains(&m) {
                return Err(DomainError::invalid(
                    "max_tokens",
                    format!("must be between 1 and {MAX_TOKENS_LIMIT}"),
                ));
            }
            s.max_tokens = m;
        }
        if let Some(chain) = &self.fallback_chain {
            ChainLink::validate(chain)?;
            s.fallback_chain = chain.clone();
        }
        if s.name.is_empty() {
            return Err(DomainError::invalid("name", "is required"));
        }
        if s.provider != Provider::Offline && s.model.is_empty() {
            return Err(DomainError::invalid(
                "model",
                format!("is required for provider {}", s.provider.as_str()),
            ));
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bad_field_is_refused() {
        let base = ChatbotSettings::defaults();
        let long_name = "n".repeat(201);
        let long_instr = "i".repeat(INSTRUCTIONS_MAX + 1);
        let cases: Vec<(ChatbotDraft, &str)> = vec![
            (ChatbotDraft::default(), "name"),
            (
                ChatbotDraft {
                    name: Some("  "),
                    ..Default::default()
                },
                "name",
            ),
            (
                ChatbotDraft {
                    name: Some(&long_name),
                    ..Default::default()
                },
                "name",
            ),
            (
                ChatbotDraft {
                    name: Some("Bot"),
                    instructions: Some(&long_instr),
                    ..Default::default()
                },
                "instructions",
            ),
            (
                ChatbotDraft {
                    name: Some("Bot"),
                    provider: Some("gpt"),
                    ..Default::default()
                },
                "provider",
            ),
            (
                ChatbotDraft {
                    name: Some("Bot"),
                    provider: Some("openrouter"),
                    ..Default::default()
                },
                "model",
            ),
            (
                ChatbotDraft {
                    name: Some("Bot"),
                    temperature: Some(2.5),
                    ..Default::default()
                },
                "temperature",
            ),
            (
                ChatbotDraft {
                    name: Some("Bot"),
                    temperature: Some(f64::NAN),
                    ..Default::default()
                },
                "temperature",
            ),
            (
                ChatbotDraft {
                    name: Some("Bot"),
                    fallback_reply: Some(""),
                    ..Default::default()
                },
                "fallback_reply",
            ),
        ];
        for (draft, field) in cases {
            let err = draft.apply(&base).expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn fallback_chains_parse_and_refuse_bad_lines() {
        let chain = ChainLink::parse_lines(
            "openrouter openai/gpt-4o-mini\n\n  fireworks  accounts/fireworks/models/x \noffline",
        )
        .expect("valid");
        assert_eq!(chain.len(), 3);
        assert_eq!(
            chain[1],
            ChainLink {
                provider: Provider::Fireworks,
                model: "accounts/fireworks/models/x".into()
            }
        );
        assert_eq!(
            ChainLink::parse_lines(&ChainLink::to_lines(&chain)).expect("round trip"),
            chain
        );
        for bad in [
            "gpt4 x",
            "openrouter",
            "offline\noffline\noffline\noffline\noffline",
        ] {
            let err = ChainLink::parse_lines(bad).expect_err(bad);
            assert_eq!(err.field, "fallback_chain");
        }
        let err = ChatbotDraft {
            name: Some("B"),
            max_tokens: Some(0),
            ..Default::default()
        }
        .apply(&ChatbotSettings::defaults())
        .expect_err("max_tokens");
        assert_eq!(err.field, "max_tokens");
    }

    #[test]
    fn a_draft_only_changes_what_it_names() {
        let base = ChatbotDraft {
            name: Some("Support"),
            ..Default::default()
        }
        .apply(&ChatbotSettings::defaults())
        .expect("valid");
        let next = ChatbotDraft {
            temperature: Some(1.0),
            ..Default::default()
        }
        .apply(&base)
        .expect("valid");
        assert_eq!(next.name, "Support");
        assert_eq!(next.temperature, 1.0);
        assert_eq!(next.fallback_reply, DEFAULT_FALLBACK);
    }
}
