//! Meta's `signed_request` (external-apis.md §6.1): `<base64url(signature)>.<base64url(payload JSON)>`,
//! HMAC-SHA256 with the app secret over the **encoded** payload, compared in constant time.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The verified payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The app-scoped Facebook user id (a string of digits).
    pub user_id: String,
    pub issued_at: Option<i64>,
    pub expires: Option<i64>,
}

/// Why a `signed_request` was refused. The messages never echo the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignedRequestError {
    #[error("signed_request is missing")]
    Missing,
    #[error("signed_request is not `<signature>.<payload>` in base64url")]
    Malformed,
    #[error("signed_request payload is not the expected JSON")]
    BadPayload,
    #[error("signed_request uses an unsupported algorithm (HMAC-SHA256 expected)")]
    Algorithm,
    #[error("signed_request signature does not match")]
    Mismatch,
    #[error("signed_request has no user_id")]
    NoUser,
}

/// Decodes base64url with or without `=` padding (also accepts the standard alphabet's `+` and `/`).
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover sextet cannot encode a byte.
    if bits >= 6 {
        return None;
    }
    Some(out)
}

/// Encodes base64url without padding (used by tests and the fake callback sender).
pub fn base64url_encode(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = match chunk.len() {
            3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
            2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
            _ => u32::from(chunk[0]) << 16,
        };
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn mac(app_secret: &[u8], msg: &[u8]) -> Option<Hmac<Sha256>> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret).ok()?;
    m.update(msg);
    Some(m)
}

/// Builds a `signed_request` for `payload` (tests and fakes).
pub fn sign(app_secret: &[u8], payload: &serde_json::Value) -> String {
    let encoded = base64url_encode(payload.to_string().as_bytes());
    let sig = mac(app_secret, encoded.as_bytes())
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!("{}.{encoded}", base64url_encode(&sig))
}

/// Verifies and reads a `signed_request` (§6.1). An empty app secret verifies nothing.
pub fn verify(
    app_secret: &[u8],
    signed_request: &str,
) -> Result<SignedRequest, SignedRequestError> {
    let raw = signed_request.trim();
    if raw.is_empty() {
        return Err(SignedRequestError::Missing);
    }
    if app_secret.is_empty() {
        return Err(SignedRequestError::Mismatch);
    }
    let (sig, payload) = raw.split_once('.').ok_or(SignedRequestError::Malformed)?;
    let sig = base64url_decode(sig).ok_or(SignedRequestError::Malformed)?;
    let json = base64url_decode(payload).ok_or(SignedRequestError::Malformed)?;
    let value: serde_json::Value =
        serde_json::from_slice(&json).map_err(|_| SignedRequestError::BadPayload)?;
    let obj = value.as_object().ok_or(SignedRequestError::BadPayload)?;
    let algorithm = obj.get("algorithm").and_then(|a| a.as_str()).unwrap_or("");
    if !algorithm.eq_ignore_ascii_case("HMAC-SHA256") {
        return Err(SignedRequestError::Algorithm);
    }
    // The HMAC is over the encoded payload as sent; a sender that padded it after signing is accepted
    // too (§6.1: "accept both"). Either way it is keyed with the app secret.
    let matches = |p: &str| {
        mac(app_secret, p.as_bytes())
            .map(|m| m.verify_slice(&sig).is_ok())
            .unwrap_or(false)
    };
    if !matches(payload) && !matches(payload.trim_end_matches('=')) {
        return Err(SignedRequestError::Mismatch);
    }
    let user_id = match obj.get("user_id") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => return Err(SignedRequestError::NoUser),
    };
    if user_id.len() > 64 || !user_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SignedRequestError::NoUser);
    }
    Ok(SignedRequest {
        user_id,
        issued_at: obj.get("issued_at").and_then(|v| v.as_i64()),
        expires: obj.get("expires").and_then(|v| v.as_i64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "C0jiTaghBV7o9u-9UxjufV0EbA8KTlf4xJJlzPwqNIU.eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiIsImV4cGlyZXMiOjE3MDAwMDM2MDAsImlzc3VlZF9hdCI6MTcwMDAwMDAwMCwidXNlcl9pZCI6IjEyMzQ1Njc4OTAifQ";

    #[test]
    fn the_reference_vector_verifies() {
        let r = verify(b"app_secret_123", VECTOR).expect("valid");
        assert_eq!(r.user_id, "1234567890");
        assert_eq!(r.issued_at, Some(1_700_000_000));
        assert_eq!(r.expires, Some(1_700_003_600));
    }

    #[test]
    fn padding_and_algorithm_case_are_accepted() {
        let padded = format!("{VECTOR}=");
        assert!(verify(b"app_secret_123", &padded).is_ok());
        let payload =
            serde_json::json!({"algorithm": "hmac-sha256", "issued_at": 1, "user_id": "42"});
        let sr = sign(b"s3cret", &payload);
        assert_eq!(verify(b"s3cret", &sr).map(|r| r.user_id), Ok("42".into()));
    }

    #[test]
    fn every_bad_request_is_refused_with_its_reason() {
        let sha1 = sign(
            b"k",
            &serde_json::json!({"algorithm": "HMAC-SHA1", "user_id": "1"}),
        );
        let no_user = sign(b"k", &serde_json::json!({"algorithm": "HMAC-SHA256"}));
        let bad_user = sign(
            b"k",
            &serde_json::json!({"algorithm": "HMAC-SHA256", "user_id": "1; drop"}),
        );
        let not_json = format!(
            "{}.{}",
            base64url_encode(b"sig"),
            base64url_encode(b"not json")
        );
        let cases: Vec<(&[u8], String, SignedRequestError)> = vec![
            (
                b"app_secret_123",
                String::new(),
                SignedRequestError::Missing,
            ),
            (
                b"app_secret_123",
                "no-dot".into(),
                SignedRequestError::Malformed,
            ),
            (
                b"app_secret_123",
                "!!.??".into(),
                SignedRequestError::Malformed,
            ),
            (b"wrong_secret", VECTOR.into(), SignedRequestError::Mismatch),
            (b"", VECTOR.into(), SignedRequestError::Mismatch),
            (b"k", sha1, SignedRequestError::Algorithm),
            (b"k", no_user, SignedRequestError::NoUser),
            (b"k", bad_user, SignedRequestError::NoUser),
            (b"k", not_json, SignedRequestError::BadPayload),
        ];
        for (secret, sr, want) in cases {
            assert_eq!(verify(secret, &sr), Err(want.clone()), "{sr:?}");
        }
    }

    #[test]
    fn base64url_round_trips() {
        for s in ["", "a", "ab", "abc", "abcd", "\u{e4}\u{f6}\u{e5}"] {
            assert_eq!(
                base64url_decode(&base64url_encode(s.as_bytes())).as_deref(),
                Some(s.as_bytes())
            );
        }
        assert_eq!(base64url_decode("A"), None);
    }
}
