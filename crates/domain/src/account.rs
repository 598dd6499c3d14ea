//! Accounts: who may sign up, and what a profile may hold.

use crate::{DomainError, text};

/// Longest name or company name we accept.
pub const NAME_MAX: usize = 200;
/// RFC 5321's practical limit for a whole address.
pub const EMAIL_MAX: usize = 254;
/// NIST SP 800-63B: at least 8 characters; we ask for 10 since there is no second factor yet.
pub const PASSWORD_MIN: usize = 10;
/// Long enough for any passphrase, short enough that hashing it is not a denial-of-service lever.
pub const PASSWORD_MAX: usize = 256;

/// A syntactically valid email address, trimmed. Comparison and uniqueness use [`Email::normalized`]
/// (lower case), while the address is shown as the user typed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let s = raw.trim();
        let err = |m: &str| DomainError::invalid("email", m);
        if s.is_empty() {
            return Err(err("is required"));
        }
        if s.chars().count() > EMAIL_MAX {
            return Err(err("is too long"));
        }
        let (local, domain) = s
            .rsplit_once('@')
            .ok_or_else(|| err("must look like name@example.com"))?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains(|c: char| c.is_whitespace() || c.is_control() || c == '@')
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels.last().is_some_and(|tld| {
                tld.chars().count() >= 2 && !tld.chars().all(|c| c.is_ascii_digit())
            });
        if !local_ok || !domain_ok {
            return Err(err("must look like name@example.com"));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key for uniqueness and login: lower case, so `Ann@X.com` and `ann@x.com` are one account.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A person's or a company's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        text::bounded(field, raw, 1, NAME_MAX, false).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that passed the rules. It never implements `Display` or a revealing `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Passwords so common that their hash is in every cracking list; refusing them is what users expect.
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "0123456789",
    "iloveyou12",
    "letmein123",
    "welcome123",
    "admin12345",
    "abc1234567",
    "qwerty1234",
    "1q2w3e4r5t",
    "passw0rd12",
    "changeme12",
    "aaaaaaaaaa",
    "1111111111",
];

impl Password {
    /// Checks a new password: length in characters, not the email, not a well-known password, not a single
    /// repeated character.
    pub fn new_for(raw: &str, email: &Email) -> Result<Self, DomainError> {
        let err = |m: String| DomainError::invalid("password", m);
        let len = raw.chars().count();
        if len < PASSWORD_MIN {
            return Err(err(format!("must be at least {PASSWORD_MIN} characters")));
        }
        if len > PASSWORD_MAX {
            return Err(err(format!("must be at most {PASSWORD_MAX} characters")));
        }
        let lower = raw.to_lowercase();
        if lower == email.normalized()
            || lower == email.normalized().split('@').next().unwrap_or("")
        {
            return Err(err("must not be your email address".into()));
        }
        if COMMON_PASSWORDS.contains(&lower.as_str()) {
            return Err(err("is too common; choose another".into()));
        }
        let mut chars = raw.chars();
        if let Some(first) = chars.next()
            && chars.all(|c| c == first)
        {
            return Err(err("must not be one repeated character".into()));
        }
        Ok(Self(raw.to_string()))
    }

    /// A password as typed at login: only checked not to be absurdly long (hashing cost), never validated
    /// against today's rules, so old passwords keep working.
    pub fn for_login(raw: &str) -> Result<Self, DomainError> {
        if raw.is_empty() {
            return Err(DomainError::invalid("password", "is required"));
        }
        if raw.chars().count() > PASSWORD_MAX {
            return Err(DomainError::invalid("password", "is too long"));
        }
        Ok(Self(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A sign-up that passed every rule. Only constructible through [`NewAccount::parse`].
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: PersonName,
    pub email: Email,
    pub company: PersonName,
    pub password: Password,
}

impl NewAccount {
    /// `age_16_or_older` is the person's explicit confirmation: MT Desk is not for under-16s, and we refuse
    /// rather than assume.
    pub fn parse(
        name: &str,
        email: &str,
        company: &str,
        password: &str,
        age_16_or_older: bool,
    ) -> Result<Self, DomainError> {
        let name = PersonName::parse("name", name)?;
        let email = Email::parse(email)?;
        let company = PersonName::parse("company", company)?;
        let password = Password::new_for(password, &email)?;
        if !age_16_or_older {
            return Err(DomainError::invalid(
                "age_16_or_older",
                "you must confirm that you are 16 or older to use MT Desk",
            ));
        }
        Ok(Self {
            name,
            email,
            company,
            password,
        })
    }
}

/// A profile correction (the user's right to rectify). `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountUpdate {
    pub name: Option<PersonName>,
    pub email: Option<Email>,
    pub company: Option<PersonName>,
}

impl AccountUpdate {
    pub fn parse(
        name: Option<&str>,
        email: Option<&str>,
        company: Option<&str>,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            name: name.map(|n| PersonName::parse("name", n)).transpose()?,
            email: email.map(Email::parse).transpose()?,
            company: company
                .map(|c| PersonName::parse("company", c))
                .transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.email.is_none() && self.company.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_emails_are_rejected() {
        for bad in [
            "",
            "plain",
            "@example.com",
            "ann@",
            "ann@example",
            "ann@@example.com",
            "ann example@example.com",
            "ann@exa mple.com",
            "ann@-example.com",
            "ann@example.c",
            "ann@1.2.3.4",
            ".ann@example.com",
            "ann..b@example.com",
            &format!("{}@example.com", "a".repeat(65)),
            &format!("a@{}.com", "b".repeat(250)),
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn valid_emails_are_accepted_and_normalised() {
        let e = Email::parse("  Ann.Lee+shop@Example.CO.uk ").expect("valid");
        assert_eq!(e.as_str(), "Ann.Lee+shop@Example.CO.uk");
        assert_eq!(e.normalized(), "ann.lee+shop@example.co.uk");
    }

    #[test]
    fn weak_passwords_are_rejected() {
        let email = Email::parse("ann@example.com").expect("valid");
        for (bad, why) in [
            ("short", "at least"),
            ("ann@example.com", "email"),
            ("ANN@EXAMPLE.COM", "email"),
            ("password123", "common"),
            ("zzzzzzzzzzzz", "repeated"),
        ] {
            let err = Password::new_for(bad, &email).expect_err(bad);
            assert!(err.message.contains(why), "{bad}: {}", err.message);
        }
        assert!(Password::new_for(&"x1".repeat(200), &email).is_err());
        assert!(Password::new_for("correct horse battery", &email).is_ok());
    }

    #[test]
    fn signup_requires_the_age_confirmation() {
        let err = NewAccount::parse(
            "Ann",
            "ann@example.com",
            "Shop",
            "correct horse battery",
            false,
        )
        .expect_err("under-16 refusal");
        assert_eq!(err.field, "age_16_or_older");
        assert!(
            NewAccount::parse(
                "Ann",
                "ann@example.com",
                "Shop",
                "correct horse battery",
                true
            )
            .is_ok()
        );
    }

    #[test]
    fn signup_checks_each_field() {
        let long = "n".repeat(NAME_MAX + 1);
        let cases = [
            ("", "ann@example.com", "Shop", "name"),
            (long.as_str(), "ann@example.com", "Shop", "name"),
            ("Ann", "nope", "Shop", "email"),
            ("Ann", "ann@example.com", "", "company"),
        ];
        for (name, email, company, field) in cases {
            let err = NewAccount::parse(name, email, company, "correct horse battery", true)
                .expect_err(field);
            assert_eq!(err.field, field);
        }
    }
}
