//! Account mails: address verification, password reset, and the security notices (new sign-in, password
//! changed, email changed with its undo link, API token created). Links are capabilities: callers build
//! them from a fresh secret and never log them.

use askama::Template;

use super::{Rendered, Site, format_utc, greeting};
use crate::EmailError;

struct VerifyEmail<'a> {
    site: &'a Site,
    greeting: String,
    address: &'a str,
    link: &'a str,
    expires_at: String,
}
message!(
    VerifyEmail,
    VerifyEmailText = "verify_email.txt",
    VerifyEmailHtml = "verify_email.html"
);

/// To a new or changed address: "Confirm your email" with the single-use `link` (works until
/// `expires_at`).
pub fn verify_email(
    site: &Site,
    name: &str,
    address: &str,
    link: &str,
    expires_at: i64,
) -> Result<Rendered, EmailError> {
    VerifyEmail {
        site,
        greeting: greeting(name),
        address,
        link,
        expires_at: format_utc(expires_at),
    }
    .render("verify_email", "Confirm your email".to_string())
}

struct PasswordReset<'a> {
    site: &'a Site,
    greeting: String,
    link: &'a str,
    expires_at: String,
}
message!(
    PasswordReset,
    PasswordResetText = "password_reset.txt",
    PasswordResetHtml = "password_reset.html"
);

/// To the account's address after "Forgot your password?": the single-use reset `link`.
pub fn password_reset(
    site: &Site,
    name: &str,
    link: &str,
    expires_at: i64,
) -> Result<Rendered, EmailError> {
    PasswordReset {
        site,
        greeting: greeting(name),
        link,
        expires_at: format_utc(expires_at),
    }
    .render(
        "password_reset",
        format!("Reset your {} password", site.name),
    )
}

struct NewSignIn<'a> {
    site: &'a Site,
    greeting: String,
    at: String,
    device: &'a str,
    reset_link: String,
}
message!(
    NewSignIn,
    NewSignInText = "new_sign_in.txt",
    NewSignInHtml = "new_sign_in.html"
);

/// "Forgot your password?" page of the site: where notices send someone who did not do what they report.
fn forgot_link(site: &Site) -> String {
    format!("{}/forgot-password", site.public_url.trim_end_matches('/'))
}

/// To the owner: a sign-in from a device (`device`, e.g. `Firefox on Linux`) the account had not used.
pub fn new_sign_in(site: &Site, name: &str, device: &str, at: i64) -> Result<Rendered, EmailError> {
    NewSignIn {
        site,
        greeting: greeting(name),
        at: format_utc(at),
        device,
        reset_link: forgot_link(site),
    }
    .render(
        "new_sign_in",
        format!("New sign-in to your {} account", site.name),
    )
}

struct PasswordChanged<'a> {
    site: &'a Site,
    greeting: String,
    at: String,
    reset_link: String,
}
message!(
    PasswordChanged,
    PasswordChangedText = "password_changed.txt",
    PasswordChangedHtml = "password_changed.html"
);

/// To the owner: the password was changed (in My Account or by a reset link).
pub fn password_changed(site: &Site, name: &str, at: i64) -> Result<Rendered, EmailError> {
    PasswordChanged {
        site,
        greeting: greeting(name),
        at: format_utc(at),
        reset_link: forgot_link(site),
    }
    .render(
        "password_changed",
        format!("Your {} password was changed", site.name),
    )
}

struct EmailChanged<'a> {
    site: &'a Site,
    greeting: String,
    old_address: &'a str,
    new_address: &'a str,
    at: String,
    undo_link: &'a str,
    expires_at: String,
}
message!(
    EmailChanged,
    EmailChangedText = "email_changed.txt",
    EmailChangedHtml = "email_changed.html"
);

/// To the OLD address after an email change: what changed and the single-use `undo_link`.
pub fn email_changed(
    site: &Site,
    name: &str,
    old_address: &str,
    new_address: &str,
    at: i64,
    undo_link: &str,
    expires_at: i64,
) -> Result<Rendered, EmailError> {
    EmailChanged {
        site,
        greeting: greeting(name),
        old_address,
        new_address,
        at: format_utc(at),
        undo_link,
        expires_at: format_utc(expires_at),
    }
    .render(
        "email_changed",
        format!(
            "The email address of your {} account was changed",
            site.name
        ),
    )
}

struct TokenCreated<'a> {
    site: &'a Site,
    greeting: String,
    name: &'a str,
    prefix: &'a str,
    at: String,
    reset_link: String,
}
message!(
    TokenCreated,
    TokenCreatedText = "token_created.txt",
    TokenCreatedHtml = "token_created.html"
);

/// To the owner: an API token was created (its name and prefix, never the secret).
pub fn token_created(
    site: &Site,
    name: &str,
    token_name: &str,
    prefix: &str,
    at: i64,
) -> Result<Rendered, EmailError> {
    TokenCreated {
        site,
        greeting: greeting(name),
        name: token_name,
        prefix,
        at: format_utc(at),
        reset_link: forgot_link(site),
    }
    .render(
        "token_created",
        format!("A new API token was created for your {} account", site.name),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const NASTY: &str = "<b>&\"";
    const T: i64 = 1_772_719_500_000; // 5 March 2026, 14:05 UTC
    const LINK: &str = "https://support.example.com/verify-email/abc?x=1&y=2";

    fn site() -> Site {
        Site {
            name: "Acme <Support>".into(),
            public_url: "https://support.example.com".into(),
        }
    }

    fn all() -> Vec<Rendered> {
        let s = site();
        vec![
            verify_email(&s, NASTY, "ann@example.com", LINK, T).expect("render"),
            password_reset(&s, NASTY, LINK, T).expect("render"),
            new_sign_in(&s, NASTY, "Firefox on Linux", T).expect("render"),
            password_changed(&s, NASTY, T).expect("render"),
            email_changed(&s, NASTY, "old@example.com", "new@example.com", T, LINK, T)
                .expect("render"),
            token_created(&s, NASTY, "zapier", "mtd_abc123", T).expect("render"),
        ]
    }

    #[test]
    fn every_account_mail_has_both_bodies_the_site_and_the_time() {
        for r in all() {
            assert!(!r.subject.trim().is_empty(), "{}", r.kind);
            assert!(r.html.contains("<html"), "{}", r.kind);
            assert!(r.text.contains("https://support.example.com"), "{}", r.kind);
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
            assert!(
                !r.html.contains("<b>") && r.text.contains(NASTY),
                "{}: escaping",
                r.kind
            );
        }
    }

    #[test]
    fn links_are_in_both_bodies_and_attribute_safe() {
        let r = verify_email(&site(), "Ann", "ann@example.com", LINK, T).expect("render");
        assert_eq!(r.subject, "Confirm your email");
        assert!(r.text.contains(LINK));
        assert!(
            r.html
                .contains("href=\"https://support.example.com/verify-email/abc?x=1&#38;y=2\"")
                || r.html
                    .contains("href=\"https://support.example.com/verify-email/abc?x=1&amp;y=2\""),
            "{}",
            r.html
        );
        let notice = new_sign_in(&site(), "Ann", "Safari on iOS", T).expect("render");
        assert!(notice.text.contains("Safari on iOS"));
        assert!(
            notice
                .text
                .contains("If this wasn't you, reset your password")
        );
        assert!(
            notice
                .text
                .contains("https://support.example.com/forgot-password")
        );
        let changed =
            email_changed(&site(), "Ann", "old@x.com", "new@x.com", T, LINK, T).expect("render");
        assert!(changed.text.contains("old@x.com") && changed.text.contains("new@x.com"));
        assert!(changed.text.contains(LINK));
        let token = token_created(&site(), "Ann", "zapier", "mtd_abc123", T).expect("render");
        assert!(token.text.contains("zapier") && token.text.contains("mtd_abc123"));
    }
}
