//! Authentication: password hashing, API tokens, dashboard sessions, CSRF tokens and login throttling.

use crate::AppState;
use crate::error::ApiError;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use hmac::{Hmac, KeyInit, Mac};
use mtdesk_domain::AccountId;
use rand::RngExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "mtdesk_session";
pub const CSRF_COOKIE: &str = "mtdesk_csrf";
/// Prefix of every API token, so leaked tokens are easy to recognise (and to scan for).
pub const TOKEN_PREFIX: &str = "mtd_";

/// Argon2id cost. Production picks it so one login takes 50–250 ms on the target machine (see
/// BENCHMARKS.md); tests use a cheap setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordParams {
    /// 64 MiB, 3 passes, 1 lane: a login takes a median 134 ms on the 2-core reference machine (BENCHMARKS.md),
    /// above OWASP's minimum (19 MiB, t=2).
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl PasswordParams {
    fn hasher(&self) -> anyhow::Result<Argon2<'static>> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes a password into a PHC string (salt and parameters included). CPU-heavy: call it from
    /// `spawn_blocking` (see [`hash_password`]).
    pub fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let hash = self
            .hasher()?
            .hash_password(password.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?;
        Ok(hash.to_string())
    }
}

/// Verifies against a stored PHC string, using the parameters recorded in it.
pub fn verify_blocking(hash: &str, password: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Hashes on the blocking pool so a login never stalls the async workers.
pub async fn hash_password(params: PasswordParams, password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || params.hash_blocking(&password)).await?
}

pub async fn verify_password(hash: String, password: String) -> bool {
    tokio::task::spawn_blocking(move || verify_blocking(&hash, &password))
        .await
        .unwrap_or(false)
}

/// Random bytes as lower-case hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    hex(&buf)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a secret, hex. What we store for session cookies and API tokens: the secrets are 256-bit
/// random, so a fast hash is enough (no dictionary to attack).
pub fn sha256_hex(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

/// A new API token: `mtd_` + 64 hex characters.
pub fn new_api_token() -> String {
    format!("{TOKEN_PREFIX}{}", random_hex(32))
}

/// The value of cookie `name` in the request, if any.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 256)
}

/// A `Set-Cookie` value with our attributes: HttpOnly, SameSite=Lax, Path=/, Secure when the public URL
/// is https.
pub fn set_cookie(state: &AppState, name: &str, value: &str, max_age: Option<Duration>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if state.config.secure_cookies {
        c.push_str("; Secure");
    }
    c
}

pub fn clear_cookie(state: &AppState, name: &str) -> String {
    set_cookie(state, name, "", Some(Duration::ZERO))
}

/// The account and session hash of a live dashboard session, if the request has one.
pub async fn session_account(state: &AppState, headers: &HeaderMap) -> Option<(AccountId, String)> {
    let raw = cookie(headers, SESSION_COOKIE)?;
    let hash = sha256_hex(&raw);
    state
        .store
        .find_session_account(&hash)
        .await
        .ok()
        .map(|a| (a, hash))
}

/// Starts a session for `account` and returns the cookie value. The old session of this browser (if any)
/// is ended first: a new id at every login, so a planted session id is worthless.
pub async fn start_session(
    state: &AppState,
    account: &AccountId,
    old_cookie: Option<&str>,
) -> Result<String, ApiError> {
    if let Some(old) = old_cookie {
        state.store.delete_session(&sha256_hex(old)).await?;
    }
    let value = random_hex(32);
    let expires = mtdesk_domain::now_ms() + state.config.session_ttl.as_millis() as i64;
    state
        .store
        .insert_session(&sha256_hex(&value), account, expires)
        .await?;
    Ok(value)
}

/// The CSRF token for forms of a browser: HMAC(secret key, the browser's `mtdesk_csrf` cookie). The
/// attacker's page can neither read the cookie nor compute the HMAC. Returns the token and, when the
/// browser has no CSRF cookie yet, the `Set-Cookie` to send.
pub fn csrf_token(state: &AppState, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, CSRF_COOKIE) {
        Some(c) => (csrf_for(state, &c), None),
        None => {
            let c = random_hex(16);
            let set = set_cookie(
                state,
                CSRF_COOKIE,
                &c,
                Some(Duration::from_secs(365 * 24 * 3600)),
            );
            (csrf_for(state, &c), Some(set))
        }
    }
}

fn csrf_for(state: &AppState, cookie_value: &str) -> String {
    keyed_hex(&state.config.secret_key, &format!("csrf:{cookie_value}"))
}

/// Lowercase hex HMAC-SHA256 of `message` under `key` (the instance secret): how the web layer derives
/// CSRF tokens, device ids, signed form stamps and keyed hashes of addresses.
pub fn keyed_hex(key: &[u8], message: &str) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    hex(&mac.finalize().into_bytes())
}

/// Checks a submitted form token against the browser's cookie, in constant time. Also refuses a request
/// whose `Origin` names another host than the one it was sent to.
pub fn csrf_ok(state: &AppState, headers: &HeaderMap, submitted: &str) -> bool {
    if let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        let host = headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let origin_host = origin.split("://").nth(1).unwrap_or("");
        if origin != "null" && !origin_host.eq_ignore_ascii_case(host) {
            return false;
        }
    }
    let Some(c) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    let expected = csrf_for(state, &c);
    !expected.is_empty()
        && subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), submitted.as_bytes()).into()
}

/// The account behind `Authorization: Bearer <token>`. 401 without a valid token.
#[derive(Debug, Clone)]
pub struct ApiAccount(pub AccountId);

impl FromRequestParts<AppState> for ApiAccount {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with(TOKEN_PREFIX) && t.len() <= 128)
            .ok_or(ApiError::Unauthorized)?;
        match state.store.authenticate_token(&sha256_hex(token)).await {
            Ok(account) => Ok(ApiAccount(account)),
            Err(mtdesk_storage::StorageError::NotFound) => Err(ApiError::Unauthorized),
            Err(e) => Err(e.into()),
        }
    }
}

/// Failed-login throttling, per account (email) and per client IP, in a sliding window.
///
/// In memory: each node limits on its own, which still caps guessing at (nodes × limit) per window. A
/// successful login clears the account's counter.
#[derive(Debug)]
pub struct LoginThrottle {
    window: Duration,
    per_account: usize,
    per_ip: usize,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginThrottle {
    pub fn new(window: Duration, per_account: usize, per_ip: usize) -> Self {
        Self {
            window,
            per_account,
            per_ip,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(email: &str, ip: &str) -> [(String, bool); 2] {
        [
            (format!("account:{}", email.trim().to_lowercase()), true),
            (format!("ip:{ip}"), false),
        ]
    }

    /// `Err(seconds)` when either key has reached its limit within the window.
    pub fn check(&self, email: &str, ip: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for (key, is_account) in Self::keys(email, ip) {
            if let Some(v) = map.get_mut(&key) {
                v.retain(|t| now.duration_since(*t) < self.window);
                let limit = if is_account {
                    self.per_account
                } else {
                    self.per_ip
                };
                if v.len() >= limit
                    && let Some(oldest) = v.first()
                {
                    let wait = self.window.saturating_sub(now.duration_since(*oldest));
                    return Err(wait.as_secs().max(1));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, email: &str, ip: &str) {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a flood of distinct keys: drop entries with no recent failure.
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < window));
        }
        for (key, _) in Self::keys(email, ip) {
            map.entry(key).or_default().push(now);
        }
    }

    pub fn record_success(&self, email: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("account:{}", email.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_the_account_limit_and_success_clears_it() {
        let t = LoginThrottle::new(Duration::from_secs(60), 3, 100);
        for _ in 0..3 {
            assert!(t.check("Ann@x.com", "1.1.1.1").is_ok());
            t.record_failure("Ann@x.com", "1.1.1.1");
        }
        assert!(
            t.check("ann@X.com", "2.2.2.2").is_err(),
            "same account from another IP"
        );
        assert!(t.check("bob@x.com", "2.2.2.2").is_ok());
        t.record_success("ann@x.com");
        assert!(t.check("ann@x.com", "2.2.2.2").is_ok());
    }

    #[test]
    fn throttle_blocks_an_ip_trying_many_accounts() {
        let t = LoginThrottle::new(Duration::from_secs(60), 100, 3);
        for i in 0..3 {
            t.record_failure(&format!("user{i}@x.com"), "9.9.9.9");
        }
        assert!(t.check("other@x.com", "9.9.9.9").is_err());
        assert!(t.check("other@x.com", "8.8.8.8").is_ok());
    }

    #[test]
    fn password_hashes_verify_and_reject() {
        let p = PasswordParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let h = p.hash_blocking("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_blocking(&h, "correct horse battery"));
        assert!(!verify_blocking(&h, "wrong horse battery"));
        assert!(!verify_blocking("not a hash", "x"));
    }

    #[test]
    fn cookies_are_parsed_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; mtdesk_session=abc; mtdesk_session_x=zzz"
                .parse()
                .expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
