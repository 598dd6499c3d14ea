//! Typed ids. Stored as text (a UUID v4) so the same column type works on SQLite and PostgreSQL, and so a
//! chatbot id can never be passed where an account id is expected.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                Self(uuid::Uuid::new_v4().to_string())
            }

            /// Parses an id from a URL or body. Anything that is not a UUID is refused here, so a malformed id
            /// is a plain "not found" and never reaches SQL.
            pub fn parse(s: &str) -> Option<Self> {
                uuid::Uuid::parse_str(s).ok().map(|u| Self(u.to_string()))
            }

            /// Wraps a value read back from the database (already canonical).
            pub fn from_db(s: String) -> Self {
                Self(s)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// The tenant. Every row in the database that belongs to a business carries one.
    AccountId
);
id_type!(
    /// One chatbot of an account.
    ChatbotId
);
id_type!(
    /// One question/answer pair of a chatbot.
    QaPairId
);
id_type!(
    /// One API token (the id, never the secret).
    TokenId
);
id_type!(
    /// One conversation between an end user (or the owner testing) and a chatbot.
    ConversationId
);
id_type!(
    /// One recorded answer.
    AnswerId
);
id_type!(
    /// One knowledge source: an uploaded document or a crawled website.
    SourceId
);
id_type!(
    /// One chunk of a source's text, the unit of retrieval.
    ChunkId
);
id_type!(
    /// One job in the database job queue.
    JobId
);
id_type!(
    /// One connected channel: a Facebook Page, an Instagram account or a WhatsApp number.
    ChannelId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_only_uuids() {
        assert!(ChatbotId::parse("not-a-uuid").is_none());
        assert!(ChatbotId::parse("").is_none());
        assert!(ChatbotId::parse("1; DROP TABLE chatbots").is_none());
        let id = ChatbotId::new();
        assert_eq!(ChatbotId::parse(id.as_str()), Some(id.clone()));
        // Upper case input is normalised, so lookups by either spelling find the same row.
        let upper = id.as_str().to_uppercase();
        assert_eq!(ChatbotId::parse(&upper), Some(id));
    }
}
