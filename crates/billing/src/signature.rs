//! `Stripe-Signature` verification for webhook deliveries (external-apis.md §8.4).
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`: pairs split on `,`, each `key=value`.
//! The expected signature is the lowercase hex HMAC-SHA256 keyed with the endpoint secret (`whsec_…`, used
//! as the literal string, not decoded) over `"{t}.{raw body}"`. A delivery is genuine when **any** `v1`
//! matches (several are sent while a secret is being rolled), compared in constant time, and when `t` is
//! within [`TOLERANCE_SECS`] of now in either direction (the Stripe SDKs' default), so a captured delivery
//! cannot be replayed later. Other schemes (`v0`, the test-mode scheme) are ignored, never accepted.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How far `t` may be from now, both ways (§8.4, the SDK default).
pub const TOLERANCE_SECS: i64 = 300;

/// Why a delivery was refused. Every variant is answered 400 and nothing is processed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// No `t=` with an integer, or a pair without `=`.
    #[error("the Stripe-Signature header is malformed (expected t=<timestamp>,v1=<signature>)")]
    Malformed,
    /// Only other schemes (e.g. `v0`) were present.
    #[error("the Stripe-Signature header has no v1 signature")]
    NoV1,
    /// `t` is more than [`TOLERANCE_SECS`] away from now (a replay, or a clock far off).
    #[error("the Stripe-Signature timestamp is outside the {TOLERANCE_SECS} s tolerance")]
    OutsideTolerance,
    /// No `v1` matched the body and the configured secret.
    #[error("no Stripe-Signature v1 signature matches the body")]
    Mismatch,
}

/// The `v1` signature of `body` sent at `t` (lowercase hex): what Stripe computes, and what the fake
/// Stripe server in the testkit sends.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut msg = Vec::with_capacity(body.len() + 12);
    msg.extend_from_slice(t.to_string().as_bytes());
    msg.push(b'.');
    msg.extend_from_slice(body);
    hex_lower(&hmac_sha256(secret.as_bytes(), &msg))
}

/// A whole header value for `body` at `t`: `t=…,v1=…`.
pub fn header_value(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", sign(secret, t, body))
}

/// Checks `header` (the `Stripe-Signature` value, `None` when absent) against the raw `body`, at
/// `now_secs` (unix seconds). Returns the signed timestamp. The signature is checked before the
/// timestamp's age, so a forged header never learns whether its time would have been accepted.
pub fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(SignatureError::Missing)?;
    let mut t: Option<i64> = None;
    let mut v1: Vec<&str> = Vec::new();
    for pair in header.split(',') {
        let (key, value) = pair
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key.trim() {
            "t" => {
                t = Some(
                    value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            "v1" => v1.push(value.trim()),
            // v0 and any future scheme: ignored (§8.4).
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1);
    }
    let expected = sign(secret, t, body);
    // Every candidate is compared (no early exit), each in constant time.
    let mut matched = subtle::Choice::from(0u8);
    for candidate in &v1 {
        matched |= expected.as_bytes().ct_eq(candidate.as_bytes());
    }
    if !bool::from(matched) {
        return Err(SignatureError::Mismatch);
    }
    if now_secs.abs_diff(t) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(t)
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail; an empty result never matches a v1.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_test_1","object":"event","type":"invoice.paid"}"#;
    const T: i64 = 1_700_000_000;
    const V1: &str = "3e3e661992c26c45d9105cbea450acc1a34f8c6dbafbd891f858c6fd9054fe3e";

    #[test]
    fn the_reference_vector_signs_and_verifies() {
        assert_eq!(sign(SECRET, T, BODY), V1);
        let header = format!("t={T},v1={V1}");
        assert_eq!(verify(SECRET, Some(&header), BODY, T), Ok(T));
        assert_eq!(header_value(SECRET, T, BODY), header);
    }

    #[test]
    fn a_missing_or_empty_header_is_refused() {
        assert_eq!(verify(SECRET, None, BODY, T), Err(SignatureError::Missing));
        assert_eq!(
            verify(SECRET, Some("  "), BODY, T),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn the_wrong_secret_is_refused() {
        let header = header_value("whsec_other", T, BODY);
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_altered_body_is_refused() {
        let header = format!("t={T},v1={V1}");
        let altered = br#"{"id":"evt_test_1","object":"event","type":"invoice.paie"}"#;
        assert_eq!(
            verify(SECRET, Some(&header), altered, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_timestamp_is_refused_as_a_mismatch() {
        let header = format!("t={},v1={V1}", T + 1);
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stale_timestamp_is_refused_and_the_edge_is_accepted() {
        let header = format!("t={T},v1={V1}");
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T + 301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(verify(SECRET, Some(&header), BODY, T + 300), Ok(T));
    }

    #[test]
    fn a_future_timestamp_is_refused_and_the_edge_is_accepted() {
        let header = format!("t={T},v1={V1}");
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T - 301),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(verify(SECRET, Some(&header), BODY, T - 300), Ok(T));
    }

    #[test]
    fn any_matching_v1_among_several_is_enough() {
        let wrong = sign("whsec_old", T, BODY);
        let header = format!("t={T},v1={wrong},v1={V1}");
        assert_eq!(verify(SECRET, Some(&header), BODY, T), Ok(T));
        let header = format!("t={T},v1={V1},v1={wrong}");
        assert_eq!(verify(SECRET, Some(&header), BODY, T), Ok(T));
        let header = format!("t={T},v1={wrong},v1={wrong}");
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_v0_signature_is_ignored_even_when_it_would_match() {
        let header = format!("t={T},v0={V1}");
        assert_eq!(
            verify(SECRET, Some(&header), BODY, T),
            Err(SignatureError::NoV1)
        );
        // v0 beside a good v1 does not get in the way.
        let header = format!("t={T},v0=abc,v1={V1}");
        assert_eq!(verify(SECRET, Some(&header), BODY, T), Ok(T));
    }

    #[test]
    fn garbage_headers_are_refused() {
        for header in [
            "garbage",
            "t=,v1=abc",
            "t=abc,v1=abc",
            &format!("v1={V1}"),
            &format!("t={T};v1={V1}"),
            &format!("t={T},v1={}", V1.to_uppercase()),
            &format!("t={T},v1="),
        ] {
            assert!(
                verify(SECRET, Some(header), BODY, T).is_err(),
                "{header:?} must be refused"
            );
        }
    }
}
