//! Chatbot settings: the persona, the model and how it answers.

use crate::{DomainError, text};
use serde::{Deserialize, Serialize};

pub const INSTRUCTIONS_MAX: usize = 20_000;
pub const FALLBACK_MAX: usize = 2_000;
pub const MODEL_MAX: usize = 200;

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
