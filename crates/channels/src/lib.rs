//! Meta channels: Messenger, Instagram and WhatsApp (external-apis.md §1–5).
//!
//! - [`signature`]: the webhook handshake and `X-Hub-Signature-256` check (§1.1, §1.2), `appsecret_proof`
//!   (§2.3).
//! - [`events`]: a verified webhook body → normalised [`Event`]s (§1.3, §2.2, §3.2, §4.1).
//! - [`split`]: long answers → pieces that fit each platform's text limit (§2.3, §3.3, §4.2).
//! - [`service`]: the channel service — connect/disconnect, processing stored webhook events, replies,
//!   take-over — and [`queue`], the group-committed webhook queue (durable before acknowledged, §1.4).
//! - [`graph`]: the Graph API client: sends, mark-read, subscriptions, OAuth and token checks (§2.3, §2.4,
//!   §3.3, §4.2, §4.3, §5.1, §5.2), with error classification.
//!
//! Errors: each module has its own error type ([`SignatureError`], [`ParseError`], [`GraphError`]) because
//! callers act on them in different places (the webhook handler, the ingest job, the sender); none of
//! them can ever carry a token or the app secret.

pub mod events;
pub mod graph;
pub mod queue;
pub mod service;
pub mod signature;
pub mod split;

pub use events::{
    Attachment, DeliveryState, Event, GraphErrorSummary, Inbound, InboundKind, ParseError,
    StatusUpdate, parse,
};
pub use graph::{
    AccessToken, ErrorClass, GraphClient, GraphConfig, GraphError, MetaUser, PageAccount,
    SendTarget, SentMessage, TokenInfo, classify,
};
pub use service::{ChannelError, ChannelService, ConnectRequest, MetaConfig, TEXT_ONLY_REPLY};
pub use signature::{SignatureError, appsecret_proof, sign, verify_handshake, verify_signature};
pub use split::{Limit, limit_for, split_message};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The Meta messaging platform a channel, event or send belongs to. Serialised lowercase
/// (`"messenger"`, `"instagram"`, `"whatsapp"`), the same text as [`Platform::as_str`] and [`FromStr`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Facebook Messenger: a Page talks to PSIDs (external-apis.md §2).
    Messenger,
    /// Instagram messaging: an IG professional account talks to IGSIDs (external-apis.md §3).
    Instagram,
    /// WhatsApp Cloud API: a business phone number talks to WhatsApp users (external-apis.md §4).
    WhatsApp,
}

impl Platform {
    /// Every platform, for tables and loops.
    pub const ALL: [Platform; 3] = [Platform::Messenger, Platform::Instagram, Platform::WhatsApp];

    /// The stable lowercase name, as stored and serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Messenger => "messenger",
            Platform::Instagram => "instagram",
            Platform::WhatsApp => "whatsapp",
        }
    }

    /// A name for people: "Messenger", "Instagram", "WhatsApp".
    pub fn label(self) -> &'static str {
        match self {
            Platform::Messenger => "Messenger",
            Platform::Instagram => "Instagram",
            Platform::WhatsApp => "WhatsApp",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A platform name that is not `messenger`, `instagram` or `whatsapp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform {0:?}: expected messenger, instagram or whatsapp")]
pub struct UnknownPlatform(pub String);

impl FromStr for Platform {
    type Err = UnknownPlatform;

    /// Accepts the [`Platform::as_str`] names, ignoring ASCII case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        Platform::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownPlatform(t.chars().take(40).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_round_trip_through_str_and_serde() {
        for (p, name) in [
            (Platform::Messenger, "messenger"),
            (Platform::Instagram, "instagram"),
            (Platform::WhatsApp, "whatsapp"),
        ] {
            assert_eq!(p.as_str(), name);
            assert_eq!(p.to_string(), name);
            assert_eq!(name.parse::<Platform>(), Ok(p));
            assert_eq!(
                serde_json::to_string(&p).expect("serialise"),
                format!("\"{name}\"")
            );
            let back: Platform = serde_json::from_str(&format!("\"{name}\"")).expect("deserialise");
            assert_eq!(back, p);
        }
    }

    #[test]
    fn platform_parsing_rejects_unknown_names() {
        for bad in ["", "telegram", "whats app", "page"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?} should not parse");
        }
        assert_eq!(" WhatsApp ".parse::<Platform>(), Ok(Platform::WhatsApp));
        assert!(serde_json::from_str::<Platform>("\"WhatsApp\"").is_err());
    }
}
