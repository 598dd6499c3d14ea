//! The prompt, in one readable place: what the model is told, with which context and which history.

use crate::providers::{ChatMessage, Role};

/// Customer messages are cut to this many characters before answering (at a word boundary, marked with
/// "…"); the answer says so. Longer text is almost always pasted logs or spam, and it would crowd out the
/// context and history in the model's window.
pub const MESSAGE_PROMPT_MAX: usize = 4_000;

/// Rough token budget for earlier turns of the conversation (about 4 characters per token).
pub const HISTORY_TOKEN_BUDGET: usize = 3_000;

/// A piece of knowledge given to the model, with the marker it can cite.
#[derive(Debug, Clone)]
pub struct ContextItem {
    pub marker: usize,
    /// A Q&A pair's question; for a document passage, `None`.
    pub question: Option<String>,
    /// The pair's answer, or the passage's text.
    pub answer: String,
    /// Where a passage comes from ("Refund policy > Returns, page 3"); `None` for a Q&A pair.
    pub source: Option<String>,
}

/// Estimated tokens of a text: ~4 characters per token plus a little per message overhead.
pub fn estimate_tokens(s: &str) -> usize {
    s.chars().count().div_ceil(4) + 4
}

/// Cuts a message to [`MESSAGE_PROMPT_MAX`] characters at a word boundary. Returns the text and whether
/// it was cut.
pub fn truncate_message(message: &str) -> (String, bool) {
    let trimmed = message.trim();
    if trimmed.chars().count() <= MESSAGE_PROMPT_MAX {
        return (trimmed.to_string(), false);
    }
    let cut: String = trimmed.chars().take(MESSAGE_PROMPT_MAX).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(i) if i > MESSAGE_PROMPT_MAX / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    (format!("{} …", at_word.trim_end()), true)
}

/// The system prompt: the bot's instructions, the rules, and the context with source markers.
pub fn system_prompt(instructions: &str, knowledge_only: bool, context: &[ContextItem]) -> String {
    let mut p = String::new();
    if !instructions.trim().is_empty() {
        p.push_str(instructions.trim());
        p.push_str("\n\n");
    }
    p.push_str("Rules:\n");
    p.push_str("- Answer in the customer's language.\n");
    p.push_str("- Be concise and accurate. Never invent facts, prices, dates or policies.\n");
    if knowledge_only {
        p.push_str(
            "- Answer only from the context below. If the context does not contain the answer, say so plainly \
             and offer to pass the question to a person. Do not use general knowledge.\n",
        );
    } else {
        p.push_str(
            "- Prefer the context below. If it does not cover the question, you may answer from general \
             knowledge when you are sure, and say that it is not from the business's own information.\n",
        );
    }
    p.push_str("- When you use the context, cite its markers, like [1].\n\n");
    p.push_str("Context:\n");
    if context.is_empty() {
        p.push_str("(nothing in the knowledge base matches this question)\n");
    } else {
        for c in context {
            match (&c.question, &c.source) {
                (Some(q), _) => {
                    p.push_str(&format!("[{}] Q: {}\n    A: {}\n", c.marker, q, c.answer))
                }
                (None, Some(src)) => {
                    p.push_str(&format!("[{}] (from {}) {}\n", c.marker, src, c.answer))
                }
                (None, None) => p.push_str(&format!("[{}] {}\n", c.marker, c.answer)),
            }
        }
    }
    p
}

/// The whole message list: system prompt, as many recent turns as fit the budget (newest kept), then the
/// customer's message.
pub fn build_messages(
    system: String,
    history: &[(String, String)],
    message: &str,
) -> Vec<ChatMessage> {
    let mut kept: Vec<ChatMessage> = Vec::new();
    let mut budget = HISTORY_TOKEN_BUDGET;
    for (role, content) in history.iter().rev() {
        let cost = estimate_tokens(content);
        if cost > budget {
            break;
        }
        budget -= cost;
        let role = if role == "assistant" {
            Role::Assistant
        } else {
            Role::User
        };
        kept.push(ChatMessage {
            role,
            content: content.clone(),
        });
    }
    kept.reverse();
    let mut out = Vec::with_capacity(kept.len() + 2);
    out.push(ChatMessage {
        role: Role::System,
        content: system,
    });
    out.extend(kept);
    out.push(ChatMessage {
        role: Role::User,
        content: message.to_string(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_at_a_word_with_a_mark() {
        let long = "word ".repeat(2_000);
        let (cut, was_cut) = truncate_message(&long);
        assert!(was_cut);
        assert!(cut.chars().count() <= MESSAGE_PROMPT_MAX + 2);
        assert!(cut.ends_with("word …"));
        assert_eq!(truncate_message("  short  "), ("short".to_string(), false));
        let unbroken = "x".repeat(10_000);
        assert_eq!(
            truncate_message(&unbroken).0.chars().count(),
            MESSAGE_PROMPT_MAX + 2
        );
    }

    #[test]
    fn the_system_prompt_carries_rules_and_markers() {
        let ctx = vec![
            ContextItem {
                marker: 1,
                question: Some("Hours?".into()),
                answer: "9-5".into(),
                source: None,
            },
            ContextItem {
                marker: 2,
                question: None,
                answer: "Returns are free within 30 days.".into(),
                source: Some("Refund policy > Returns".into()),
            },
        ];
        let p = system_prompt("You are Acme's assistant.", true, &ctx);
        assert!(p.starts_with("You are Acme's assistant."));
        assert!(p.contains("customer's language"));
        assert!(p.contains("does not contain the answer, say so"));
        assert!(p.contains("[1] Q: Hours?"));
        assert!(p.contains("[2] (from Refund policy > Returns) Returns are free within 30 days."));
        let open = system_prompt("", false, &[]);
        assert!(!open.contains("does not contain the answer, say so"));
        assert!(open.contains("nothing in the knowledge base"));
    }

    #[test]
    fn history_keeps_the_newest_turns_within_budget() {
        let big = "y".repeat(HISTORY_TOKEN_BUDGET * 4 - 30);
        let history = vec![
            ("user".to_string(), "oldest".to_string()),
            ("assistant".to_string(), big),
            ("user".to_string(), "newest".to_string()),
        ];
        let msgs = build_messages("sys".into(), &history, "now");
        assert_eq!(msgs.first().map(|m| m.role), Some(Role::System));
        assert_eq!(msgs.last().map(|m| m.content.as_str()), Some("now"));
        assert!(msgs.iter().any(|m| m.content == "newest"));
        assert!(
            !msgs.iter().any(|m| m.content == "oldest"),
            "the oldest turn is dropped first"
        );
    }
}
