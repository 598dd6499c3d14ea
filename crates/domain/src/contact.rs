//! The public contact form (`/contact`): what a visitor may send, and the rules that keep it usable
//! without a third-party captcha (a signed render time, a honeypot field, a cap on links).

use crate::{DomainError, Email, text};

/// What the message is about. A privacy request also becomes a draft deletion request for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactTopic {
    Support,
    Billing,
    Privacy,
}

impl ContactTopic {
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        match s.trim() {
            "support" => Ok(Self::Support),
            "billing" => Ok(Self::Billing),
            "privacy" => Ok(Self::Privacy),
            _ => Err(DomainError::invalid(
                "topic",
                "must be support, billing or privacy request",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Support => "support",
            Self::Billing => "billing",
            Self::Privacy => "privacy",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Support => "Support",
            Self::Billing => "Billing",
            Self::Privacy => "Privacy request",
        }
    }
}

/// A contact message that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMessage {
    pub name: String,
    pub email: Email,
    pub topic: ContactTopic,
    pub message: String,
}

/// Most links a message may carry: link spam is the bulk of contact-form spam.
pub const MAX_LINKS: usize = 3;
pub const MAX_MESSAGE_CHARS: usize = 5000;

impl ContactMessage {
    pub fn parse(name: &str, email: &str, topic: &str, message: &str) -> Result<Self, DomainError> {
        let name = text::bounded("name", name, 1, 200, false)?;
        let email = Email::parse(email)?;
        let topic = ContactTopic::parse(topic)?;
        let message = text::bounded("message", message, 10, MAX_MESSAGE_CHARS, true)?;
        let links = message.matches("http://").count()
            + message.matches("https://").count()
            + message.matches("www.").count();
        if links > MAX_LINKS {
            return Err(DomainError::invalid(
                "message",
                format!("may contain at most {MAX_LINKS} links"),
            ));
        }
        Ok(Self {
            name,
            email,
            topic,
            message,
        })
    }
}

/// Why a submission is not accepted as a message from a person (the time stamp of the rendered form is
/// signed by the server; see `FormClock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormCheck {
    /// A person could have filled it in.
    Human,
    /// Sent sooner than a person types (or the hidden honeypot field was filled): answered like a success,
    /// nothing is stored or sent.
    Bot,
    /// The form is older than a day or its stamp was not ours: the visitor reloads the page.
    Expired,
}

/// Fewer milliseconds than this between rendering the form and sending it is not a person.
pub const MIN_FILL_MS: i64 = 2_000;
/// A rendered form stays valid this long.
pub const MAX_FORM_AGE_MS: i64 = 86_400_000;

/// Judges a submission from its (already signature-checked) render time and the honeypot field.
pub fn check_form(rendered_at: Option<i64>, honeypot: &str, now: i64) -> FormCheck {
    let Some(rendered_at) = rendered_at else {
        return FormCheck::Expired;
    };
    if !honeypot.trim().is_empty() {
        return FormCheck::Bot;
    }
    let age = now - rendered_at;
    if !(0..=MAX_FORM_AGE_MS).contains(&age) {
        FormCheck::Expired
    } else if age < MIN_FILL_MS {
        FormCheck::Bot
    } else {
        FormCheck::Human
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_message() {
        let m = ContactMessage::parse(
            " Ann ",
            "Ann@Example.com",
            "privacy",
            "Please delete my data.",
        )
        .expect("parsed");
        assert_eq!(m.name, "Ann");
        assert_eq!(m.topic, ContactTopic::Privacy);
        assert_eq!(m.message, "Please delete my data.");
    }

    #[test]
    fn refuses_bad_fields() {
        let e = ContactMessage::parse("", "a@b.co", "support", "hello there friend")
            .expect_err("refused");
        assert_eq!(e.field, "name");
        let e = ContactMessage::parse("A", "nope", "support", "hello there friend")
            .expect_err("refused");
        assert_eq!(e.field, "email");
        let e = ContactMessage::parse("A", "a@b.co", "sales", "hello there friend")
            .expect_err("refused");
        assert_eq!(e.field, "topic");
        let e = ContactMessage::parse("A", "a@b.co", "support", "hi").expect_err("refused");
        assert_eq!(e.field, "message");
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert_eq!(
            ContactMessage::parse("A", "a@b.co", "support", &long)
                .expect_err("refused")
                .field,
            "message"
        );
    }

    #[test]
    fn refuses_link_spam() {
        let spam = "buy https://a.example https://b.example http://c.example www.d.example";
        let e = ContactMessage::parse("A", "a@b.co", "support", spam).expect_err("refused");
        assert!(e.message.contains("at most 3 links"), "{e}");
        let ok = "see https://a.example and https://b.example please";
        assert!(ContactMessage::parse("A", "a@b.co", "support", ok).is_ok());
    }

    #[test]
    fn judges_form_timing_and_honeypot() {
        let now = 1_000_000_000;
        assert_eq!(check_form(None, "", now), FormCheck::Expired);
        assert_eq!(check_form(Some(now - 500), "", now), FormCheck::Bot);
        assert_eq!(check_form(Some(now - 5_000), "", now), FormCheck::Human);
        assert_eq!(
            check_form(Some(now - 5_000), "http://spam", now),
            FormCheck::Bot
        );
        assert_eq!(
            check_form(Some(now - MAX_FORM_AGE_MS - 1), "", now),
            FormCheck::Expired
        );
        assert_eq!(check_form(Some(now + 60_000), "", now), FormCheck::Expired);
    }
}
