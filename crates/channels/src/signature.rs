//! Webhook authenticity: the GET verification handshake (external-apis.md §1.1), the
//! `X-Hub-Signature-256` check of each POST (§1.2) and the `appsecret_proof` of Graph calls (§2.3).
//!
//! Every comparison of a secret-derived value is constant-time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a webhook POST is refused. The handler answers 401/403 for all three and processes nothing
/// (external-apis.md §1.2); Meta then retries, which is what we want if our secret was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header (a legacy `sha1=` signature alone does not count).
    #[error("the request has no X-Hub-Signature-256 header")]
    Missing,
    /// The header is not `sha256=` followed by 64 hexadecimal digits.
    #[error("the X-Hub-Signature-256 header is not \"sha256=\" followed by 64 hex digits")]
    Malformed,
    /// Well-formed, but not the HMAC of this body with our app secret: a wrong app secret, an altered
    /// body, or a request that did not come from Meta.
    #[error("the X-Hub-Signature-256 signature does not match the body and our app secret")]
    Mismatch,
}

/// The prefix of the SHA-256 signature header value (external-apis.md §1.2).
const PREFIX: &str = "sha256=";

/// Checks `X-Hub-Signature-256` over the **raw** body bytes (external-apis.md §1.2): call it before
/// parsing, with the bytes exactly as received (never re-serialised JSON).
///
/// - `None`, an empty value, or a legacy `sha1=…` value → [`SignatureError::Missing`];
/// - anything but `sha256=` + 64 hex digits (either case) → [`SignatureError::Malformed`];
/// - otherwise the HMAC-SHA256 is compared in constant time → `Ok` or [`SignatureError::Mismatch`].
///
/// An empty `app_secret` is a configuration bug: it yields `Mismatch` for every request and no HMAC is
/// computed with an empty key (that would let anyone who guesses the mistake forge webhooks).
pub fn verify_signature(
    app_secret: &[u8],
    body: &[u8],
    header: Option<&str>,
) -> Result<(), SignatureError> {
    let value = header.map(str::trim).unwrap_or_default();
    if value.is_empty() || value.starts_with("sha1=") {
        return Err(SignatureError::Missing);
    }
    let hex = value
        .strip_prefix(PREFIX)
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex_32(hex).ok_or(SignatureError::Malformed)?;
    if app_secret.is_empty() {
        tracing::error!("webhook signature check with an empty app secret: refusing the request");
        return Err(SignatureError::Mismatch);
    }
    let mut mac = HmacSha256::new_from_slice(app_secret).map_err(|_| SignatureError::Mismatch)?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// The `X-Hub-Signature-256` value Meta would send for `body`: `sha256=` + lowercase hex
/// HMAC-SHA256(key = app secret, message = body) (external-apis.md §1.2). For fakes and tests.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    format!("{PREFIX}{}", hex_lower(&hmac_sha256(app_secret, body)))
}

/// The `appsecret_proof` query parameter: lowercase hex HMAC-SHA256(key = app secret, message = access
/// token) (external-apis.md §2.3).
pub fn appsecret_proof(app_secret: &[u8], access_token: &str) -> String {
    hex_lower(&hmac_sha256(app_secret, access_token.as_bytes()))
}

/// The GET verification handshake (external-apis.md §1.1). Returns the challenge to echo
/// byte-for-byte with `200 text/plain`, or `None` → answer `403`.
///
/// `Some` only when a verify token is configured (non-empty), `hub.mode` is `subscribe`,
/// `hub.verify_token` equals it (constant-time compare) and a non-empty `hub.challenge` is present.
pub fn verify_handshake(
    expected_token: Option<&str>,
    mode: Option<&str>,
    token: Option<&str>,
    challenge: Option<&str>,
) -> Option<String> {
    let expected = expected_token.filter(|t| !t.is_empty())?;
    if mode != Some("subscribe") {
        return None;
    }
    let token = token?;
    if !bool::from(expected.as_bytes().ct_eq(token.as_bytes())) {
        return None;
    }
    challenge.filter(|c| !c.is_empty()).map(str::to_string)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail; an empty result would never match anything.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Exactly 64 hex digits (either case) → 32 bytes.
fn decode_hex_32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test_app_secret";

    /// external-apis.md §1.2, the whole table.
    const VECTORS: [(&str, &str); 4] = [
        (
            r#"{"object":"page","entry":[]}"#,
            "sha256=5da47c9c7409e70d7a1851f0cfd9bc27786bd99587a9bf1dd5b51e23a2de03cf",
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[]}"#,
            "sha256=dec6a680679a968e7e0319355b23599cbfc54502c0784668e9618baa0c633756",
        ),
        (
            r#"{"object": "whatsapp_business_account", "entry": []}"#,
            "sha256=56cbbaf4961c6cfdae48b7f116c047e5eb513d2c931baae63a2bc1afd26f803a",
        ),
        (
            r#"{"text":"\u00e4"}"#,
            "sha256=b57f4327e59118e07d95bdd54d114131251f3537026f50a5d4df2ce74c1baf7e",
        ),
    ];

    #[test]
    fn reference_vectors_are_signed_and_verified() {
        for (body, header) in VECTORS {
            assert_eq!(sign(SECRET, body.as_bytes()), header, "sign {body}");
            assert_eq!(
                verify_signature(SECRET, body.as_bytes(), Some(header)),
                Ok(()),
                "verify {body}"
            );
            let upper = format!("sha256={}", header[7..].to_uppercase());
            assert_eq!(
                verify_signature(SECRET, body.as_bytes(), Some(&upper)),
                Ok(()),
                "uppercase hex {body}"
            );
        }
    }

    #[test]
    fn the_escaped_body_is_not_the_same_as_its_decoded_form() {
        // Re-serialising `{"text":"\u00e4"}` as UTF-8 `ä` changes the bytes, so the signature fails.
        let (_, header) = VECTORS[3];
        assert_eq!(
            verify_signature(SECRET, r#"{"text":"ä"}"#.as_bytes(), Some(header)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn bad_headers_are_rejected_with_the_right_reason() {
        let (body, good) = VECTORS[0];
        let hex = &good[7..];
        let cases: Vec<(&str, Option<String>, SignatureError)> = vec![
            ("no header", None, SignatureError::Missing),
            ("empty header", Some(String::new()), SignatureError::Missing),
            (
                "sha1 only",
                Some("sha1=0123456789abcdef0123456789abcdef01234567".into()),
                SignatureError::Missing,
            ),
            (
                "no prefix",
                Some(hex.to_string()),
                SignatureError::Malformed,
            ),
            (
                "wrong prefix",
                Some(format!("sha512={hex}")),
                SignatureError::Malformed,
            ),
            (
                "uppercase prefix",
                Some(format!("SHA256={hex}")),
                SignatureError::Malformed,
            ),
            (
                "non-hex digit",
                Some(format!("sha256=g{}", &hex[1..])),
                SignatureError::Malformed,
            ),
            (
                "too short",
                Some(format!("sha256={}", &hex[..62])),
                SignatureError::Malformed,
            ),
            (
                "too long",
                Some(format!("sha256={hex}00")),
                SignatureError::Malformed,
            ),
            (
                "multibyte inside",
                Some(format!("sha256=é{}", &hex[2..])),
                SignatureError::Malformed,
            ),
            (
                "one digit off",
                Some(format!("sha256={}0", &hex[..63])),
                SignatureError::Mismatch,
            ),
            (
                "other body's signature",
                Some(VECTORS[1].1.to_string()),
                SignatureError::Mismatch,
            ),
        ];
        for (name, header, want) in cases {
            assert_eq!(
                verify_signature(SECRET, body.as_bytes(), header.as_deref()),
                Err(want),
                "{name}"
            );
        }
    }

    #[test]
    fn a_wrong_or_empty_app_secret_never_verifies() {
        let (body, header) = VECTORS[0];
        assert_eq!(
            verify_signature(b"other_secret", body.as_bytes(), Some(header)),
            Err(SignatureError::Mismatch)
        );
        let empty_sig = sign(b"", body.as_bytes());
        assert_eq!(
            verify_signature(b"", body.as_bytes(), Some(&empty_sig)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn appsecret_proof_matches_the_reference_vector() {
        // external-apis.md §2.3
        assert_eq!(
            appsecret_proof(b"app_secret_123", "EAAB-page-token"),
            "91312d49d7c78d346071ff17c3f35fa67aa17f13bf91c41d343bf0656be8c463"
        );
    }

    #[test]
    fn handshake_echoes_the_challenge_only_when_everything_matches() {
        let ok = Some("1158201444".to_string());
        // (name, configured token, hub.mode, hub.verify_token, hub.challenge, expected)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<String>,
        );
        let cases: [Case; 9] = [
            (
                "all good",
                Some("tok"),
                Some("subscribe"),
                Some("tok"),
                Some("1158201444"),
                ok.clone(),
            ),
            (
                "no token configured",
                None,
                Some("subscribe"),
                Some("tok"),
                Some("1"),
                None,
            ),
            (
                "empty token configured",
                Some(""),
                Some("subscribe"),
                Some(""),
                Some("1"),
                None,
            ),
            (
                "wrong mode",
                Some("tok"),
                Some("unsubscribe"),
                Some("tok"),
                Some("1"),
                None,
            ),
            ("no mode", Some("tok"), None, Some("tok"), Some("1"), None),
            (
                "wrong token",
                Some("tok"),
                Some("subscribe"),
                Some("tok2"),
                Some("1"),
                None,
            ),
            (
                "no token sent",
                Some("tok"),
                Some("subscribe"),
                None,
                Some("1"),
                None,
            ),
            (
                "no challenge",
                Some("tok"),
                Some("subscribe"),
                Some("tok"),
                None,
                None,
            ),
            (
                "empty challenge",
                Some("tok"),
                Some("subscribe"),
                Some("tok"),
                Some(""),
                None,
            ),
        ];
        for (name, expected, mode, token, challenge, want) in cases {
            assert_eq!(
                verify_handshake(expected, mode, token, challenge),
                want,
                "{name}"
            );
        }
        // Opaque challenges are echoed byte-for-byte.
        assert_eq!(
            verify_handshake(Some("t"), Some("subscribe"), Some("t"), Some("a b+c%20")),
            Some("a b+c%20".to_string())
        );
    }
}
