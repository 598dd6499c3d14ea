//! `Settings`: every `MTDESK_*` variable, parsed once at start-up and passed down. No global.
//!
//! [`Settings::from_vars`] takes the variables as a map so tests can build settings without touching the
//! process environment. Every bad variable is reported at once, by name; optional features that are off
//! are listed by [`Settings::disabled_features`] and logged once at start-up.

use mtdesk_http::PasswordParams;
use mtdesk_storage::DatabaseUrl;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// A secret from the environment: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One LLM provider's connection settings.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The `<PROVIDER>` part of the variable names, e.g. `OPENROUTER`.
    pub env_name: &'static str,
    pub api_key: Option<Secret>,
    /// `None` only for OPENAI_COMPAT, which has no public default.
    pub base_url: Option<String>,
}

/// The providers of the public contract with their public base URLs (external-apis.md §7).
pub const PROVIDERS: &[(&str, Option<&str>)] = &[
    ("OPENROUTER", Some("https://openrouter.ai/api/v1")),
    ("FIREWORKS", Some("https://api.fireworks.ai/inference/v1")),
    ("MINIMAX", Some("https://api.minimax.io/v1")),
    ("MOONSHOT", Some("https://api.moonshot.ai/v1")),
    ("OPENAI_COMPAT", None),
];

#[derive(Debug, Clone)]
pub struct MetaSettings {
    pub app_id: Option<String>,
    pub app_secret: Option<Secret>,
    pub verify_token: Option<Secret>,
    pub graph_api_base: String,
    pub graph_api_version: String,
    /// `graph.instagram.com` (Instagram Login API, external-apis.md §3).
    pub instagram_api_base: String,
    /// Where the Facebook Login dialog is (`https://www.facebook.com`, §5.1).
    pub dialog_base: String,
    /// Send `appsecret_proof` with Page-token calls (§2.3), for apps that require it.
    pub appsecret_proof: bool,
    /// Channel worker tasks per node (webhook processing and replies).
    pub workers: usize,
    /// Seconds a claimed webhook event or reply stays with its worker before another takes it over.
    pub lease_secs: u64,
    /// Extra phrases an end user can write to have their data deleted (comma-separated).
    pub delete_phrases: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct StripeSettings {
    pub secret_key: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub api_base: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub database_url: DatabaseUrl,
    /// True when `MTDESK_DATABASE_URL` was not set (SQLite under the data dir, created on first start).
    pub database_is_default: bool,
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    pub public_url: String,
    /// `None`: generate one into `<data dir>/secret_key` on first start.
    pub secret_key: Option<Secret>,
    pub meta: MetaSettings,
    pub providers: Vec<ProviderSettings>,
    pub stripe: StripeSettings,
    /// `MTDESK_DEFAULT_PLAN`: the plan of every account while billing is off (default `unlimited`).
    pub default_plan: String,
    pub smtp_url: Option<Secret>,
    /// The From mailbox of every mail (`MTDESK_MAIL_FROM`); default `MT Desk <no-reply@<public host>>`.
    pub mail_from: Option<String>,
    pub allow_private_urls: bool,
    /// Who runs this instance (Privacy Policy, Data Deletion page).
    pub operator_name: String,
    /// The address for privacy and deletion requests.
    pub privacy_email: Option<String>,
    pub max_body_bytes: usize,
    /// The local embedding model's directory (`MTDESK_MODEL_DIR`, default `<data dir>/models/all-MiniLM-L6-v2`).
    pub model_dir: PathBuf,
    /// Largest uploaded knowledge file (`MTDESK_MAX_UPLOAD_BYTES`, default 20 MB).
    pub max_upload_bytes: usize,
    /// Uploaded files per chatbot (`MTDESK_MAX_FILES_PER_CHATBOT`, default 500).
    pub max_files_per_chatbot: usize,
    /// Pause between two requests to the same site while crawling (`MTDESK_CRAWL_DELAY_MS`, default 500).
    pub crawl_delay_ms: u64,
    pub password: PasswordParams,
    /// `MTDESK_*` variables that are not ours (likely typos), reported as warnings.
    pub unknown_vars: Vec<String>,
}

/// Every variable we read, for the unknown-variable check and the README's table.
pub const KNOWN_VARS: &[&str] = &[
    "MTDESK_DATABASE_URL",
    "MTDESK_DATA_DIR",
    "MTDESK_BIND",
    "MTDESK_PUBLIC_URL",
    "MTDESK_SECRET_KEY",
    "MTDESK_META_APP_ID",
    "MTDESK_META_APP_SECRET",
    "MTDESK_META_VERIFY_TOKEN",
    "MTDESK_GRAPH_API_BASE",
    "MTDESK_GRAPH_API_VERSION",
    "MTDESK_INSTAGRAM_API_BASE",
    "MTDESK_FACEBOOK_DIALOG_BASE",
    "MTDESK_META_APPSECRET_PROOF",
    "MTDESK_CHANNEL_WORKERS",
    "MTDESK_CHANNEL_LEASE_SECS",
    "MTDESK_DELETE_PHRASES",
    "MTDESK_OPENROUTER_API_KEY",
    "MTDESK_OPENROUTER_BASE_URL",
    "MTDESK_FIREWORKS_API_KEY",
    "MTDESK_FIREWORKS_BASE_URL",
    "MTDESK_MINIMAX_API_KEY",
    "MTDESK_MINIMAX_BASE_URL",
    "MTDESK_MOONSHOT_API_KEY",
    "MTDESK_MOONSHOT_BASE_URL",
    "MTDESK_OPENAI_COMPAT_API_KEY",
    "MTDESK_OPENAI_COMPAT_BASE_URL",
    "MTDESK_STRIPE_SECRET_KEY",
    "MTDESK_STRIPE_WEBHOOK_SECRET",
    "MTDESK_STRIPE_API_BASE",
    "MTDESK_DEFAULT_PLAN",
    "MTDESK_SMTP_URL",
    "MTDESK_MAIL_FROM",
    "MTDESK_ALLOW_PRIVATE_URLS",
    "MTDESK_OPERATOR_NAME",
    "MTDESK_PRIVACY_EMAIL",
    "MTDESK_MAX_BODY_BYTES",
    "MTDESK_MODEL_DIR",
    "MTDESK_MAX_UPLOAD_BYTES",
    "MTDESK_MAX_FILES_PER_CHATBOT",
    "MTDESK_CRAWL_DELAY_MS",
    "MTDESK_ARGON2_MEMORY_KIB",
    "MTDESK_ARGON2_ITERATIONS",
    "MTDESK_LOG",
    "MTDESK_TEST_DATABASE_URL",
];

/// All the bad variables found, one line each.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

struct Reader<'a> {
    vars: &'a BTreeMap<String, String>,
    errors: Vec<String>,
}

impl Reader<'_> {
    /// A set, non-blank value (surrounding whitespace removed).
    fn get(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.get(name).map(Secret)
    }

    fn url(&mut self, name: &str, default: Option<&str>) -> Option<String> {
        let v = self.get(name).or_else(|| default.map(str::to_string))?;
        if (v.starts_with("http://") || v.starts_with("https://"))
            && v.len() > "https://".len()
            && !v.contains(' ')
        {
            Some(v.trim_end_matches('/').to_string())
        } else {
            self.errors.push(format!(
                "{name}={v:?} is not a URL: it must start with http:// or https://"
            ));
            None
        }
    }

    fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        name: &str,
        default: T,
        min: T,
        max: T,
    ) -> T {
        let Some(v) = self.get(name) else {
            return default;
        };
        match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => n,
            _ => {
                self.errors.push(format!(
                    "{name}={v:?} must be a whole number from {min} to {max}"
                ));
                default
            }
        }
    }

    fn flag(&mut self, name: &str) -> bool {
        match self
            .get(name)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("0") | Some("false") | Some("no") | Some("off") => false,
            Some("1") | Some("true") | Some("yes") | Some("on") => true,
            Some(other) => {
                self.errors
                    .push(format!("{name}={other:?} must be 1 or 0 (or true/false)"));
                false
            }
        }
    }
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("MTDESK_"))
            .collect();
        Self::from_vars(&vars)
    }

    pub fn from_vars(vars: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut r = Reader {
            vars,
            errors: Vec::new(),
        };
        let data_dir = PathBuf::from(r.get("MTDESK_DATA_DIR").unwrap_or_else(|| "./data".into()));
        let (database_url, database_is_default) = match r.get("MTDESK_DATABASE_URL") {
            Some(u) => match DatabaseUrl::parse(&u) {
                Ok(url) => (url, false),
                Err(e) => {
                    r.errors.push(format!("MTDESK_DATABASE_URL: {e}"));
                    (DatabaseUrl::Sqlite(data_dir.join("mtdesk.sqlite")), false)
                }
            },
            None => (DatabaseUrl::Sqlite(data_dir.join("mtdesk.sqlite")), true),
        };
        let bind_raw = r
            .get("MTDESK_BIND")
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let bind = match bind_raw.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                r.errors.push(format!(
                    "MTDESK_BIND={bind_raw:?} must be an address and port, e.g. 127.0.0.1:8080 or 0.0.0.0:8080"
                ));
                SocketAddr::from(([127, 0, 0, 1], 8080))
            }
        };
        let default_public = format!("http://{bind}");
        let public_url = r
            .url("MTDESK_PUBLIC_URL", Some(&default_public))
            .unwrap_or(default_public);
        let secret_key = r.secret("MTDESK_SECRET_KEY");
        if let Some(k) = &secret_key
            && k.expose().len() < 32
        {
            r.errors.push(
                "MTDESK_SECRET_KEY must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)".into(),
            );
        }
        let meta = MetaSettings {
            app_id: r.get("MTDESK_META_APP_ID"),
            app_secret: r.secret("MTDESK_META_APP_SECRET"),
            verify_token: r.secret("MTDESK_META_VERIFY_TOKEN"),
            graph_api_base: r
                .url("MTDESK_GRAPH_API_BASE", Some("https://graph.facebook.com"))
                .unwrap_or_default(),
            graph_api_version: r
                .get("MTDESK_GRAPH_API_VERSION")
                .unwrap_or_else(|| "v25.0".into()),
            instagram_api_base: r
                .url(
                    "MTDESK_INSTAGRAM_API_BASE",
                    Some("https://graph.instagram.com"),
                )
                .unwrap_or_default(),
            dialog_base: r
                .url(
                    "MTDESK_FACEBOOK_DIALOG_BASE",
                    Some("https://www.facebook.com"),
                )
                .unwrap_or_default(),
            appsecret_proof: r.flag("MTDESK_META_APPSECRET_PROOF"),
            // PostgreSQL round trips dominate a message's processing, so more workers overlap them;
            // SQLite has one writer, where more workers only queue.
            workers: r.number(
                "MTDESK_CHANNEL_WORKERS",
                match database_url {
                    DatabaseUrl::Postgres(_) => 8,
                    DatabaseUrl::Sqlite(_) => 4,
                },
                1,
                64,
            ) as usize,
            lease_secs: r.number("MTDESK_CHANNEL_LEASE_SECS", 120, 2, 3600),
            delete_phrases: r
                .get("MTDESK_DELETE_PHRASES")
                .map(|v| {
                    v.split(',')
                        .map(|p| p.trim().to_string())
                        .filter(|p| !p.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        };
        let providers = PROVIDERS
            .iter()
            .map(|(name, default)| ProviderSettings {
                env_name: name,
                api_key: r.secret(&format!("MTDESK_{name}_API_KEY")),
                base_url: r.url(&format!("MTDESK_{name}_BASE_URL"), *default),
            })
            .collect();
        let stripe = StripeSettings {
            secret_key: r.secret("MTDESK_STRIPE_SECRET_KEY"),
            webhook_secret: r.secret("MTDESK_STRIPE_WEBHOOK_SECRET"),
            api_base: r
                .url("MTDESK_STRIPE_API_BASE", Some("https://api.stripe.com"))
                .unwrap_or_default(),
        };
        let default_plan = r
            .get("MTDESK_DEFAULT_PLAN")
            .unwrap_or_else(|| mtdesk_billing::plans::DEFAULT_SELF_HOSTED_PLAN.to_string());
        let smtp_url = r.secret("MTDESK_SMTP_URL");
        if let Some(s) = &smtp_url
            && !(s.expose().starts_with("smtp://") || s.expose().starts_with("smtps://"))
        {
            r.errors
                .push("MTDESK_SMTP_URL must start with smtp:// or smtps://".into());
        }
        let mail_from = r.get("MTDESK_MAIL_FROM");
        if let Some(f) = &mail_from
            && !(f.contains('@') && f.len() <= 300)
        {
            r.errors.push(format!(
                "MTDESK_MAIL_FROM must be a mailbox such as `Acme Support <no-reply@acme.example>`, not {f:?}"
            ));
        }
        let allow_private_urls = r.flag("MTDESK_ALLOW_PRIVATE_URLS");
        let operator_name = r
            .get("MTDESK_OPERATOR_NAME")
            .unwrap_or_else(|| "the operator of this MT Desk service".into());
        let privacy_email = r.get("MTDESK_PRIVACY_EMAIL");
        if let Some(e) = &privacy_email
            && mtdesk_domain::Email::parse(e).is_err()
        {
            r.errors.push(format!(
                "MTDESK_PRIVACY_EMAIL is not an email address: {e:?}"
            ));
        }
        let max_body_bytes = r.number(
            "MTDESK_MAX_BODY_BYTES",
            2 * 1024 * 1024,
            1024,
            1024 * 1024 * 1024,
        );
        let model_dir = r
            .get("MTDESK_MODEL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("models").join("all-MiniLM-L6-v2"));
        let max_upload_bytes = r.number(
            "MTDESK_MAX_UPLOAD_BYTES",
            20 * 1024 * 1024,
            1024,
            1024 * 1024 * 1024,
        );
        let max_files_per_chatbot = r.number("MTDESK_MAX_FILES_PER_CHATBOT", 500, 1, 1_000_000);
        let crawl_delay_ms = r.number("MTDESK_CRAWL_DELAY_MS", 500, 0, 60_000);
        let defaults = PasswordParams::default();
        let password = PasswordParams {
            memory_kib: r.number(
                "MTDESK_ARGON2_MEMORY_KIB",
                defaults.memory_kib,
                8 * 1024,
                4 * 1024 * 1024,
            ),
            iterations: r.number("MTDESK_ARGON2_ITERATIONS", defaults.iterations, 1, 64),
            parallelism: defaults.parallelism,
        };
        let unknown_vars = vars
            .keys()
            .filter(|k| k.starts_with("MTDESK_") && !KNOWN_VARS.contains(&k.as_str()))
            .cloned()
            .collect();
        if !r.errors.is_empty() {
            return Err(ConfigError(r.errors));
        }
        Ok(Self {
            database_url,
            database_is_default,
            data_dir,
            bind,
            public_url,
            secret_key,
            meta,
            providers,
            stripe,
            default_plan,
            smtp_url,
            mail_from,
            allow_private_urls,
            operator_name,
            privacy_email,
            max_body_bytes,
            model_dir,
            max_upload_bytes,
            max_files_per_chatbot,
            crawl_delay_ms,
            password,
            unknown_vars,
        })
    }

    /// One line per optional feature that is off, with the variable that turns it on.
    pub fn disabled_features(&self) -> Vec<String> {
        let mut off = Vec::new();
        if self.smtp_url.is_none() {
            off.push(
                "email is off (no MTDESK_SMTP_URL): mails wait in the outbox (see `mtdesk admin outbox`)".into(),
            );
        }
        if self.meta.app_id.is_none() || self.meta.app_secret.is_none() {
            off.push(
                "Meta channels are off (MTDESK_META_APP_ID / MTDESK_META_APP_SECRET not set): Messenger, Instagram and WhatsApp cannot be connected".into(),
            );
        }
        if self.privacy_email.is_none() {
            off.push("no MTDESK_PRIVACY_EMAIL: the Privacy Policy and Data Deletion pages show no contact address".into());
        }
        if self.meta.verify_token.is_none() {
            off.push("Meta webhook verification is off (no MTDESK_META_VERIFY_TOKEN)".into());
        }
        for p in &self.providers {
            if p.api_key.is_none() && !(p.env_name == "OPENAI_COMPAT" && p.base_url.is_some()) {
                off.push(format!(
                    "{} is off (no MTDESK_{}_API_KEY); chatbots answer with the offline answerer",
                    p.env_name, p.env_name
                ));
            }
        }
        if self.stripe.secret_key.is_none() || self.stripe.webhook_secret.is_none() {
            off.push(
                "billing is off (MTDESK_STRIPE_SECRET_KEY / MTDESK_STRIPE_WEBHOOK_SECRET not set): every account gets the default plan".into(),
            );
        }
        off
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_variables() {
        let s = Settings::from_vars(&BTreeMap::new()).expect("defaults");
        assert_eq!(
            s.database_url,
            DatabaseUrl::Sqlite(PathBuf::from("./data/mtdesk.sqlite"))
        );
        assert!(s.database_is_default);
        assert_eq!(s.bind, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(s.public_url, "http://127.0.0.1:8080");
        assert!(!s.secure_cookies());
        assert!(s.secret_key.is_none());
        assert!(!s.disabled_features().is_empty());
    }

    #[test]
    fn every_bad_variable_is_named() {
        let err = Settings::from_vars(&vars(&[
            ("MTDESK_BIND", "localhost"),
            ("MTDESK_DATABASE_URL", "mysql://x"),
            ("MTDESK_PUBLIC_URL", "desk.example.com"),
            ("MTDESK_SECRET_KEY", "short"),
            ("MTDESK_MAX_BODY_BYTES", "lots"),
            ("MTDESK_ALLOW_PRIVATE_URLS", "maybe"),
            ("MTDESK_OPENROUTER_BASE_URL", "ftp://x"),
            ("MTDESK_SMTP_URL", "mail.example.com"),
            ("MTDESK_PRIVACY_EMAIL", "nobody"),
        ]))
        .expect_err("bad config");
        let text = err.to_string();
        for name in [
            "MTDESK_BIND",
            "MTDESK_DATABASE_URL",
            "MTDESK_PUBLIC_URL",
            "MTDESK_SECRET_KEY",
            "MTDESK_MAX_BODY_BYTES",
            "MTDESK_ALLOW_PRIVATE_URLS",
            "MTDESK_PRIVACY_EMAIL",
            "MTDESK_OPENROUTER_BASE_URL",
            "MTDESK_SMTP_URL",
        ] {
            assert!(text.contains(name), "{name} missing from: {text}");
        }
    }

    #[test]
    fn https_public_url_makes_cookies_secure_and_typos_are_reported() {
        let s = Settings::from_vars(&vars(&[
            ("MTDESK_PUBLIC_URL", "https://desk.example.com/"),
            ("MTDESK_DATA_DIR", "/var/lib/mtdesk"),
            ("MTDESK_DATABSE_URL", "postgres://x@y/z"),
        ]))
        .expect("valid");
        assert_eq!(s.public_url, "https://desk.example.com");
        assert!(s.secure_cookies());
        assert_eq!(
            s.database_url,
            DatabaseUrl::Sqlite(PathBuf::from("/var/lib/mtdesk/mtdesk.sqlite"))
        );
        assert_eq!(s.unknown_vars, vec!["MTDESK_DATABSE_URL".to_string()]);
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings::from_vars(&vars(&[("MTDESK_STRIPE_SECRET_KEY", "sk_test_abcdef")]))
            .expect("valid");
        assert!(!format!("{s:?}").contains("sk_test_abcdef"));
    }
}
