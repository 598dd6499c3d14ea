//! The messages MT Desk sends, one function each. Every message has a plain-text and an HTML body, both
//! from askama templates in `crates/email/templates/` (compiled in). The `.html` templates are
//! HTML-escaped by askama, so a name like `<b>` arrives as text; the `.txt` ones are not escaped (they are
//! plain text). Dates are shown in UTC, written out (`5 March 2026, 14:05 UTC`), because the recipient's
//! time zone is unknown and a numeric date is ambiguous across countries.

use askama::Template;

use crate::EmailError;

/// The operator's company and public URL, in every message's footer and links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// Company or product name, e.g. `Acme Support`.
    pub name: String,
    /// Where the dashboard is served, e.g. `https://support.example.com` (no trailing slash needed).
    pub public_url: String,
}

/// A rendered message, ready for [`crate::Outbox::enqueue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The template's name, stored in the outbox and shown by `mtdesk admin outbox`.
    pub kind: &'static str,
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// Days a deletion request may take (the policy's 30 days).
pub const DELETION_DEADLINE_DAYS: i64 = 30;

/// `5 March 2026, 14:05 UTC`.
pub fn format_utc(ms: i64) -> String {
    let format = time::macros::format_description!(
        "[day padding:none] [month repr:long] [year], [hour]:[minute] UTC"
    );
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms since 1970"))
}

fn greeting(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        "Hello,".to_string()
    } else {
        format!("Hello {name},")
    }
}

/// Receipt categories as people read them: `source_pages` → `source pages`.
fn summary_lines(summary: &[(String, u64)]) -> Vec<(String, u64)> {
    summary
        .iter()
        .map(|(what, n)| (what.replace('_', " "), *n))
        .collect()
}

/// Renders the two bodies of one message from one context: a `Text` and an `Html` template struct that
/// both borrow the context as `m`.
macro_rules! message {
    ($ctx:ident, $text:ident = $text_path:literal, $html:ident = $html_path:literal) => {
        #[derive(Template)]
        #[template(path = $text_path)]
        struct $text<'a> {
            m: &'a $ctx<'a>,
        }

        #[derive(Template)]
        #[template(path = $html_path)]
        struct $html<'a> {
            m: &'a $ctx<'a>,
        }

        impl $ctx<'_> {
            fn render(&self, kind: &'static str, subject: String) -> Result<Rendered, EmailError> {
                let mut text = $text { m: self }.render()?;
                if !text.ends_with('\n') {
                    text.push('\n');
                }
                Ok(Rendered {
                    kind,
                    subject,
                    text,
                    html: $html { m: self }.render()?,
                })
            }
        }
    };
}

// Verification, password reset and security notices (after the macro: the module uses it).
mod account_security;
pub use account_security::{
    email_changed, new_sign_in, password_changed, password_reset, token_created, verify_email,
};

struct AccountDeleted<'a> {
    site: &'a Site,
    greeting: String,
    summary: Vec<(String, u64)>,
    kept: Option<&'a str>,
    receipt_id: &'a str,
    deleted_at: String,
}
message!(
    AccountDeleted,
    AccountDeletedText = "account_deleted.txt",
    AccountDeletedHtml = "account_deleted.html"
);

/// To the account owner, after their account was deleted: what was deleted (receipt category → count),
/// the receipt id, and `kept` — what the law makes us keep (e.g. `invoices, for 10 years under tax
/// law`), `None` when nothing is kept.
pub fn account_deleted(
    site: &Site,
    name: &str,
    receipt_summary: &[(String, u64)],
    kept: Option<&str>,
    receipt_id: &str,
    deleted_at: i64,
) -> Result<Rendered, EmailError> {
    AccountDeleted {
        site,
        greeting: greeting(name),
        summary: summary_lines(receipt_summary),
        kept,
        receipt_id,
        deleted_at: format_utc(deleted_at),
    }
    .render(
        "account_deleted",
        format!("Your {} account has been deleted", site.name),
    )
}

struct DeletionRequestAck<'a> {
    site: &'a Site,
    greeting: String,
    request_id: &'a str,
    scope: &'a str,
    received_at: String,
    due_at: String,
}
message!(
    DeletionRequestAck,
    DeletionRequestAckText = "deletion_request_ack.txt",
    DeletionRequestAckHtml = "deletion_request_ack.html"
);

/// To a requester: we received the deletion request and will complete it by `due_at` (at most
/// [`DELETION_DEADLINE_DAYS`] after `received_at`). `scope_text` completes "your request to delete …",
/// e.g. `all data we hold about you`.
pub fn deletion_request_ack(
    site: &Site,
    name: &str,
    request_id: &str,
    scope_text: &str,
    received_at: i64,
    due_at: i64,
) -> Result<Rendered, EmailError> {
    DeletionRequestAck {
        site,
        greeting: greeting(name),
        request_id,
        scope: scope_text,
        received_at: format_utc(received_at),
        due_at: format_utc(due_at),
    }
    .render(
        "deletion_request_ack",
        format!("We received your deletion request ({request_id})"),
    )
}

struct DeletionRequestDone<'a> {
    site: &'a Site,
    greeting: String,
    request_id: &'a str,
    summary: Vec<(String, u64)>,
    completed_at: String,
}
message!(
    DeletionRequestDone,
    DeletionRequestDoneText = "deletion_request_done.txt",
    DeletionRequestDoneHtml = "deletion_request_done.html"
);

/// To a requester: the deletion request is completed; what was deleted (category → count).
pub fn deletion_request_done(
    site: &Site,
    name: &str,
    request_id: &str,
    receipt_summary: &[(String, u64)],
    completed_at: i64,
) -> Result<Rendered, EmailError> {
    DeletionRequestDone {
        site,
        greeting: greeting(name),
        request_id,
        summary: summary_lines(receipt_summary),
        completed_at: format_utc(completed_at),
    }
    .render(
        "deletion_request_done",
        format!("Your deletion request {request_id} is complete"),
    )
}

struct DeletionDeadlineWarning<'a> {
    site: &'a Site,
    requests: Vec<(&'a str, String)>,
}
message!(
    DeletionDeadlineWarning,
    DeletionDeadlineWarningText = "deletion_deadline_warning.txt",
    DeletionDeadlineWarningHtml = "deletion_deadline_warning.html"
);

/// To the operator: deletion requests (id, due at) close to their deadline and not completed.
pub fn deletion_deadline_warning(
    site: &Site,
    requests: &[(String, i64)],
) -> Result<Rendered, EmailError> {
    let subject = match requests.len() {
        1 => "1 deletion request is due soon".to_string(),
        n => format!("{n} deletion requests are due soon"),
    };
    DeletionDeadlineWarning {
        site,
        requests: requests
            .iter()
            .map(|(id, due)| (id.as_str(), format_utc(*due)))
            .collect(),
    }
    .render("deletion_deadline_warning", subject)
}

struct ExportReady<'a> {
    site: &'a Site,
    greeting: String,
    link: &'a str,
    expires_at: String,
}
message!(
    ExportReady,
    ExportReadyText = "export_ready.txt",
    ExportReadyHtml = "export_ready.html"
);

/// To the account owner: their data export can be downloaded from `link` until `expires_at`.
pub fn export_ready(
    site: &Site,
    name: &str,
    link: &str,
    expires_at: i64,
) -> Result<Rendered, EmailError> {
    ExportReady {
        site,
        greeting: greeting(name),
        link,
        expires_at: format_utc(expires_at),
    }
    .render(
        "export_ready",
        format!("Your {} data export is ready", site.name),
    )
}

struct PaymentFailed<'a> {
    site: &'a Site,
    greeting: String,
    amount: String,
    grace_until: String,
    billing_link: String,
    invoice_link: Option<&'a str>,
}
message!(
    PaymentFailed,
    PaymentFailedText = "payment_failed.txt",
    PaymentFailedHtml = "payment_failed.html"
);

/// To the account owner, once per invoice whose payment failed (Stripe `invoice.payment_failed`): the
/// amount (`amount_cents` in `currency`), the end of the grace period and the billing page.
pub fn payment_failed(
    site: &Site,
    name: &str,
    amount_cents: i64,
    currency: &str,
    grace_until: i64,
    invoice_link: Option<&str>,
) -> Result<Rendered, EmailError> {
    PaymentFailed {
        site,
        greeting: greeting(name),
        amount: format!(
            "{}.{:02} {}",
            amount_cents / 100,
            (amount_cents % 100).abs(),
            currency.to_uppercase()
        ),
        grace_until: format_utc(grace_until),
        billing_link: format!("{}/account/billing", site.public_url.trim_end_matches('/')),
        invoice_link,
    }
    .render(
        "payment_failed",
        format!("Your {} payment failed", site.name),
    )
}

struct MessageLimitReached<'a> {
    site: &'a Site,
    greeting: String,
    plan: &'a str,
    limit: i64,
    month: &'a str,
    link: String,
}
message!(
    MessageLimitReached,
    MessageLimitReachedText = "message_limit_reached.txt",
    MessageLimitReachedHtml = "message_limit_reached.html"
);

/// To the account owner, once per month: the plan's monthly limit of answered messages is reached, so the
/// chatbots send their fallback reply until the month ends. `month` is as people read it (`March 2026`).
pub fn message_limit_reached(
    site: &Site,
    name: &str,
    plan: &str,
    limit: i64,
    month: &str,
) -> Result<Rendered, EmailError> {
    MessageLimitReached {
        site,
        greeting: greeting(name),
        plan,
        limit,
        month,
        link: format!("{}/account#plan", site.public_url.trim_end_matches('/')),
    }
    .render(
        "message_limit_reached",
        format!("Your {} message limit for {month} is reached", site.name),
    )
}

struct ContactMessage<'a> {
    site: &'a Site,
    id: &'a str,
    name: &'a str,
    email: &'a str,
    topic: &'a str,
    message: &'a str,
    request_id: Option<&'a str>,
    received_at: String,
}
message!(
    ContactMessage,
    ContactMessageText = "contact_message.txt",
    ContactMessageHtml = "contact_message.html"
);

/// To the operator: a message from the public contact page (`topic` as shown, e.g. `Privacy request`),
/// with the draft deletion request it created, if any.
#[allow(clippy::too_many_arguments)]
pub fn contact_message(
    site: &Site,
    id: &str,
    name: &str,
    email: &str,
    topic: &str,
    message: &str,
    request_id: Option<&str>,
    received_at: i64,
) -> Result<Rendered, EmailError> {
    ContactMessage {
        site,
        id,
        name,
        email,
        topic,
        message,
        request_id,
        received_at: format_utc(received_at),
    }
    .render(
        "contact_message",
        format!(
            "Contact form: {topic} from {}",
            name.replace(['\r', '\n'], " ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = "<b>&\"";

    fn site() -> Site {
        Site {
            name: "Acme <Support>".into(),
            public_url: "https://support.example.com".into(),
        }
    }

    fn summary() -> Vec<(String, u64)> {
        vec![("messages".into(), 12), ("source_pages".into(), 3)]
    }

    const T: i64 = 1_772_719_500_000; // 5 March 2026, 14:05 UTC

    fn all() -> Vec<Rendered> {
        let s = site();
        vec![
            account_deleted(&s, NASTY, &summary(), Some("invoices (tax law)"), "r-1", T)
                .expect("render"),
            deletion_request_ack(&s, NASTY, "req-1", "all data", T, T + 30 * 86_400_000)
                .expect("render"),
            deletion_request_done(&s, NASTY, "req-1", &summary(), T).expect("render"),
            deletion_deadline_warning(&s, &[("req-1".into(), T), (NASTY.into(), T)])
                .expect("render"),
            export_ready(&s, NASTY, "https://x.example/e?a=1&b=2", T).expect("render"),
            contact_message(
                &s,
                "c-1",
                NASTY,
                "ann@shop.example",
                "Support",
                NASTY,
                Some("req-1"),
                T,
            )
            .expect("render"),
            payment_failed(
                &s,
                NASTY,
                1900,
                "usd",
                T,
                Some("https://x.example/i?a=1&b=2"),
            )
            .expect("render"),
        ]
    }

    #[test]
    fn every_message_has_a_subject_a_text_and_an_html_body_with_the_site() {
        let rendered = all();
        let mut kinds: Vec<_> = rendered.iter().map(|r| r.kind).collect();
        kinds.dedup();
        assert_eq!(kinds.len(), rendered.len(), "one kind per message");
        for r in &rendered {
            assert!(!r.subject.trim().is_empty(), "{}", r.kind);
            assert!(!r.text.trim().is_empty(), "{}", r.kind);
            assert!(r.html.contains("<html"), "{}", r.kind);
            assert!(
                r.text.contains("https://support.example.com"),
                "{}: text links back",
                r.kind
            );
            assert!(
                r.html.contains("href=\"https://support.example.com\""),
                "{}: html links back",
                r.kind
            );
            assert!(
                r.text.contains("5 March 2026, 14:05 UTC"),
                "{}: {}",
                r.kind,
                r.text
            );
            assert!(
                !r.text.contains("{{") && !r.html.contains("{{"),
                "{}",
                r.kind
            );
        }
    }

    #[test]
    fn names_are_html_escaped_in_html_and_verbatim_in_text() {
        for r in all() {
            assert!(
                !r.html.contains(NASTY) && !r.html.contains("<b>"),
                "{}: raw markup in html",
                r.kind
            );
            assert!(
                r.html.contains("&#60;b&#62;&#38;&#34;") || r.html.contains("&lt;b&gt;&amp;&quot;"),
                "{}: escaped name in html:\n{}",
                r.kind,
                r.html
            );
            assert!(r.text.contains(NASTY), "{}: name verbatim in text", r.kind);
            assert!(!r.html.contains("Acme <Support>"), "{}", r.kind);
        }
    }

    #[test]
    fn account_deleted_lists_counts_and_what_is_kept() {
        let r = account_deleted(
            &site(),
            "Ann",
            &summary(),
            Some("invoices (tax law)"),
            "r-1",
            T,
        )
        .expect("render");
        assert!(r.text.starts_with("Hello Ann,\n"));
        assert!(
            r.text.contains("  - messages: 12\n  - source pages: 3\n"),
            "{}",
            r.text
        );
        assert!(r.text.contains("invoices (tax law)"));
        assert!(r.text.contains("r-1"));
        assert!(r.html.contains("source pages"));
        let none = account_deleted(&site(), "", &summary(), None, "r-1", T).expect("render");
        assert!(none.text.starts_with("Hello,\n"));
        assert!(!none.text.contains("law requires"));
        assert!(!none.html.contains("law requires"));
    }

    #[test]
    fn deletion_ack_names_the_deadline() {
        let due = T + DELETION_DEADLINE_DAYS * 86_400_000;
        let r = deletion_request_ack(
            &site(),
            "Ann",
            "req-9",
            "all data we hold about you",
            T,
            due,
        )
        .expect("render");
        assert!(r.subject.contains("req-9"));
        assert!(r.text.contains("by 4 April 2026, 14:05 UTC"), "{}", r.text);
        assert!(r.html.contains("4 April 2026, 14:05 UTC"));
    }

    #[test]
    fn deletion_done_without_data_says_so() {
        let r = deletion_request_done(&site(), "Ann", "req-9", &[], T).expect("render");
        assert!(r.text.contains("We found no data"));
        assert!(!r.text.contains("We deleted:"));
        assert!(r.html.contains("We found no data"));
    }

    #[test]
    fn export_link_is_an_attribute_safe_href() {
        let r = export_ready(&site(), "Ann", "https://x.example/e?a=1&b=2", T).expect("render");
        assert!(r.text.contains("https://x.example/e?a=1&b=2"));
        assert!(
            r.html.contains("href=\"https://x.example/e?a=1&#38;b=2\"")
                || r.html.contains("href=\"https://x.example/e?a=1&amp;b=2\""),
            "{}",
            r.html
        );
    }
}
