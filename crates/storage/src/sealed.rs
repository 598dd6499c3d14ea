//! Secrets at rest: provider API keys (and, later, channel access tokens) are sealed with AES-256-GCM.
//!
//! - The key is derived from the instance secret (`MTDESK_SECRET_KEY` or the generated key file) with
//!   HKDF-SHA256 and a purpose label, so the same secret never keys two different uses.
//! - Each sealed value carries a key id (the first 4 bytes of SHA-256 of the derived key): opening with
//!   another secret is a clear "sealed with a different secret key" error, not garbage, and a later key
//!   rotation can tell old values from new.
//! - The associated data binds a value to its owner and purpose (e.g. account id + provider), so a sealed
//!   value copied into another account's row does not open.
//!
//! Format: `v1.<key id hex>.<nonce hex>.<ciphertext+tag hex>`.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use rand::RngExt;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the value was sealed with a different secret key (was MTDESK_SECRET_KEY changed?)")]
    WrongKey,
    #[error("the sealed value is damaged or belongs to another owner")]
    Corrupt,
}

/// Seals and opens secrets for one purpose. Cheap to clone.
#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    key_id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Sealer {
    /// `purpose` labels the derived key, e.g. `"provider-keys"`.
    pub fn new(instance_secret: &[u8], purpose: &str) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(b"mtdesk sealed v1"), instance_secret);
        let mut key = [0u8; 32];
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(purpose.as_bytes(), &mut key);
        let key_id = hex(&Sha256::digest(key)[..4]);
        let cipher = match Aes256Gcm::new_from_slice(&key) {
            Ok(c) => c,
            Err(_) => unreachable!("a 32-byte key is valid for AES-256"),
        };
        Self { cipher, key_id }
    }

    /// Seals `plaintext`, bound to `owner` (associated data).
    pub fn seal(&self, plaintext: &str, owner: &str) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .unwrap_or_default();
        format!("v1.{}.{}.{}", self.key_id, hex(&nonce), hex(&ct))
    }

    pub fn open(&self, sealed: &str, owner: &str) -> Result<String, SealError> {
        let mut parts = sealed.split('.');
        let (Some("v1"), Some(key_id), Some(nonce), Some(ct), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(SealError::Corrupt);
        };
        if key_id != self.key_id {
            return Err(SealError::WrongKey);
        }
        let nonce: [u8; 12] = unhex(nonce)
            .and_then(|n| n.try_into().ok())
            .ok_or(SealError::Corrupt)?;
        let ct = unhex(ct).ok_or(SealError::Corrupt)?;
        let pt = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &ct,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| SealError::Corrupt)?;
        String::from_utf8(pt).map_err(|_| SealError::Corrupt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_hides_the_plaintext() {
        let s = Sealer::new(b"0123456789abcdef0123456789abcdef", "provider-keys");
        let sealed = s.seal("sk-or-v1-secret", "account-1/openrouter");
        assert!(!sealed.contains("secret"));
        assert_ne!(
            sealed,
            s.seal("sk-or-v1-secret", "account-1/openrouter"),
            "fresh nonce each time"
        );
        assert_eq!(
            s.open(&sealed, "account-1/openrouter").as_deref(),
            Ok("sk-or-v1-secret")
        );
    }

    #[test]
    fn wrong_owner_key_or_damage_is_refused() {
        let s = Sealer::new(b"0123456789abcdef0123456789abcdef", "provider-keys");
        let sealed = s.seal("sk-1", "account-1/openrouter");
        assert_eq!(
            s.open(&sealed, "account-2/openrouter"),
            Err(SealError::Corrupt)
        );
        let other = Sealer::new(b"another secret key, 32 characters!", "provider-keys");
        assert_eq!(
            other.open(&sealed, "account-1/openrouter"),
            Err(SealError::WrongKey)
        );
        let other_purpose = Sealer::new(b"0123456789abcdef0123456789abcdef", "channel-tokens");
        assert_eq!(
            other_purpose.open(&sealed, "account-1/openrouter"),
            Err(SealError::WrongKey)
        );
        let mut damaged = sealed.clone();
        damaged.pop();
        damaged.push(if sealed.ends_with('0') { '1' } else { '0' });
        assert_eq!(
            s.open(&damaged, "account-1/openrouter"),
            Err(SealError::Corrupt)
        );
        assert_eq!(s.open("garbage", "x"), Err(SealError::Corrupt));
    }
}
