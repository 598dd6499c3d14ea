//! Channel vocabulary: the three Meta platforms, a channel's state, who answers a conversation, the
//! platform ids a user pastes, and the messaging windows (external-apis.md §2.3, §3.3, §4.2).

use crate::DomainError;

/// A Meta messaging platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Messenger,
    Instagram,
    Whatsapp,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [Self::Messenger, Self::Instagram, Self::Whatsapp];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Messenger => "messenger",
            Self::Instagram => "instagram",
            Self::Whatsapp => "whatsapp",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "messenger" => Some(Self::Messenger),
            "instagram" => Some(Self::Instagram),
            "whatsapp" => Some(Self::Whatsapp),
            _ => None,
        }
    }

    /// How the product names it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Messenger => "Messenger",
            Self::Instagram => "Instagram",
            Self::Whatsapp => "WhatsApp",
        }
    }
}

/// Whether a channel can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    Connected,
    /// The platform refused the token (code 190 and friends, §2.4): nothing is sent until the owner
    /// connects again.
    NeedsReconnect,
}

impl ChannelStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::NeedsReconnect => "needs_reconnect",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "connected" => Some(Self::Connected),
            "needs_reconnect" => Some(Self::NeedsReconnect),
            _ => None,
        }
    }
}

/// Who answers a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationMode {
    Bot,
    /// The owner took it over: the bot stays silent until it is handed back.
    Human,
}

impl ConversationMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Bot => "bot",
            Self::Human => "human",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bot" => Some(Self::Bot),
            "human" => Some(Self::Human),
            _ => None,
        }
    }
}

/// The standard messaging window after the end user's last message, on all three platforms.
pub const WINDOW_MS: i64 = 24 * 3600 * 1000;
/// How long a human agent may still answer on Messenger and Instagram (`HUMAN_AGENT` tag, §2.3, §3.3).
pub const HUMAN_AGENT_WINDOW_MS: i64 = 7 * 24 * 3600 * 1000;

/// Whether (and how) a message may be sent now, given the end user's last inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Inside the 24-hour window: anyone may answer.
    Open,
    /// Messenger/Instagram, 24 h – 7 days: only a human, with the `HUMAN_AGENT` tag.
    HumanAgentOnly,
    Closed,
}

/// The window for `kind` at `now_ms`; `last_inbound_ms` is `None` when the user never wrote.
pub fn window(kind: ChannelKind, last_inbound_ms: Option<i64>, now_ms: i64) -> Window {
    let Some(last) = last_inbound_ms else {
        return Window::Closed;
    };
    let age = now_ms.saturating_sub(last);
    if age < WINDOW_MS {
        Window::Open
    } else if kind != ChannelKind::Whatsapp && age < HUMAN_AGENT_WINDOW_MS {
        Window::HumanAgentOnly
    } else {
        Window::Closed
    }
}

/// A platform id as pasted by a user: digits only (Page, Instagram account, phone number and WABA ids
/// are numeric, §2.1, §3.1, §4.1), 1–32 of them.
pub fn platform_id(field: &'static str, raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    if s.is_empty() {
        return Err(DomainError::invalid(field, format!("{field} is required")));
    }
    if s.len() > 32 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(
            field,
            format!("{field} must be the numeric id Meta shows (digits only, at most 32)"),
        ));
    }
    Ok(s.to_string())
}

/// A pasted access token: printable ASCII without spaces, 10–1024 characters.
pub fn access_token(raw: &str) -> Result<String, DomainError> {
    let s = raw.trim();
    if s.len() < 10 {
        return Err(DomainError::invalid(
            "access_token",
            "access_token is required (the Page, Instagram or WhatsApp system-user token)",
        ));
    }
    if s.len() > 1024 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::invalid(
            "access_token",
            "access_token must be the token as Meta shows it (no spaces, at most 1024 characters)",
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_platform_rules() {
        let h = 3600 * 1000;
        let cases = [
            (ChannelKind::Messenger, Some(0), h, Window::Open),
            (
                ChannelKind::Messenger,
                Some(0),
                25 * h,
                Window::HumanAgentOnly,
            ),
            (
                ChannelKind::Instagram,
                Some(0),
                6 * 24 * h,
                Window::HumanAgentOnly,
            ),
            (ChannelKind::Instagram, Some(0), 8 * 24 * h, Window::Closed),
            (ChannelKind::Whatsapp, Some(0), 23 * h, Window::Open),
            (ChannelKind::Whatsapp, Some(0), 25 * h, Window::Closed),
            (ChannelKind::Whatsapp, None, 0, Window::Closed),
        ];
        for (kind, last, now, want) in cases {
            assert_eq!(window(kind, last, now), want, "{kind:?} {last:?} {now}");
        }
    }

    #[test]
    fn platform_ids_are_digits() {
        assert_eq!(
            platform_id("page_id", " 110000000000001 ").ok().as_deref(),
            Some("110000000000001")
        );
        for bad in ["", "abc", "12 34", "1/../2", &"9".repeat(33)] {
            assert!(platform_id("page_id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_printable_and_bounded() {
        assert!(access_token("EAAB-page-token").is_ok());
        for bad in ["", "short", "EAAB page token", &"x".repeat(1025)] {
            assert!(access_token(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for k in ChannelKind::ALL {
            assert_eq!(ChannelKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ChannelKind::parse("telegram"), None);
    }
}
