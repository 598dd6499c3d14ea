//! Meta's side of the webhook (external-apis.md §1.1, §1.2, §1.5): signed POSTs over the exact bytes
//! sent, Meta's `\uXXXX` escaping, the GET handshake, and "would retry" bookkeeping.

use super::{FakeMeta, Shared, lock};
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;
use std::io;
use std::sync::{Arc, Mutex};

/// `sha256=` + lowercase hex HMAC-SHA256(key = app secret, message = the raw body bytes) — the
/// `X-Hub-Signature-256` header (§1.2).
pub fn meta_signature(app_secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex_lower(&hmac_sha256(app_secret, body)))
}

/// Hex HMAC-SHA256(key = app secret, msg = access token): the `appsecret_proof` parameter (§2.3).
pub fn appsecret_proof(app_secret: &[u8], access_token: &str) -> String {
    hex_lower(&hmac_sha256(app_secret, access_token.as_bytes()))
}

/// Lowercase hex HMAC-SHA1: the legacy `X-Hub-Signature: sha1=…` value (§1.2, to be ignored by
/// receivers). SHA-1 is written out here because no workspace crate provides it.
pub fn hmac_sha1_hex(key: &[u8], msg: &[u8]) -> String {
    let mut k = if key.len() > 64 {
        sha1(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(64, 0);
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&sha1(&inner));
    hex_lower(&sha1(&outer))
}

/// JSON as Meta sends it (§1.2): compact, every non-ASCII character escaped as `\uXXXX` with
/// lowercase hex (UTF-16 surrogate pairs above U+FFFF). `{"text":"ä"}` → `{"text":"\u00e4"}`.
pub fn meta_json(value: &Value) -> String {
    serialize(value, false)
}

/// Like [`meta_json`], also escaping `/` as `\/` the way PHP's `json_encode` does (not in §1.2; for
/// testing that receivers never re-serialise before checking the signature).
pub fn meta_json_escaped_slashes(value: &Value) -> String {
    serialize(value, true)
}

fn serialize(value: &Value, escape_slashes: bool) -> String {
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, MetaFormatter { escape_slashes });
    if value.serialize(&mut ser).is_err() {
        return value.to_string();
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct MetaFormatter {
    escape_slashes: bool,
}

impl serde_json::ser::Formatter for MetaFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c == '/' && self.escape_slashes {
                writer.write_all(b"\\/")?;
            } else if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                for u in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{u:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// How [`WebhookSender::post_raw`] signs a body (§1.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureMode {
    /// `X-Hub-Signature-256` over the exact bytes with the right secret, plus the legacy
    /// `X-Hub-Signature: sha1=…`, as Meta sends both.
    Valid,
    /// A well-formed `sha256=` signature made with a different secret.
    Wrong,
    /// No signature header at all.
    Missing,
    /// Only the legacy `X-Hub-Signature: sha1=…` (correct for SHA-1) — must be rejected.
    Sha1Only,
    /// This exact `X-Hub-Signature-256` value.
    Custom(String),
}

/// Plays Meta delivering webhooks to our callback (§1.5).
pub struct WebhookSender {
    target_url: String,
    app_secret: String,
    client: reqwest::Client,
    retries: Mutex<Vec<u16>>,
    last: Mutex<Option<Vec<u8>>>,
    fake: Option<Arc<Shared>>,
}

impl WebhookSender {
    /// A sender to `target_url` (e.g. `http://127.0.0.1:8080/webhooks/meta`) signing with
    /// `app_secret`. Installs rustls' ring provider if none is (reqwest is built without one).
    pub fn new(target_url: &str, app_secret: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent("facebookexternalua")
            .build()
            .expect("build the webhook sender's HTTP client");
        WebhookSender {
            target_url: target_url.to_string(),
            app_secret: app_secret.to_string(),
            client,
            retries: Mutex::new(Vec::new()),
            last: Mutex::new(None),
            fake: None,
        }
    }

    /// Every body this sender posts (signed or not) first updates `fake`'s 24 h windows
    /// ([`FakeMeta::note_inbound_from`]), so replies to the messages it delivers are in-window.
    pub fn tracking(mut self, fake: &FakeMeta) -> Self {
        self.fake = Some(fake.shared());
        self
    }

    pub fn target_url(&self) -> &str {
        &self.target_url
    }

    /// POSTs `body` as is (`Content-Type: application/json`), signed per `signature`. A non-200
    /// answer is recorded in [`WebhookSender::would_retry`]. Panics if the target is unreachable.
    pub async fn post_raw(&self, body: &[u8], signature: SignatureMode) -> reqwest::Response {
        if let Some(fake) = &self.fake
            && let Ok(v) = serde_json::from_slice::<Value>(body)
        {
            fake.note_inbound(&v);
        }
        *lock(&self.last) = Some(body.to_vec());
        let secret = self.app_secret.as_bytes();
        let mut req = self
            .client
            .post(&self.target_url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        match signature {
            SignatureMode::Valid => {
                req = req
                    .header(
                        "x-hub-signature",
                        format!("sha1={}", hmac_sha1_hex(secret, body)),
                    )
                    .header("x-hub-signature-256", meta_signature(secret, body));
            }
            SignatureMode::Wrong => {
                let wrong = format!("{}-wrong", self.app_secret);
                req = req.header(
                    "x-hub-signature-256",
                    meta_signature(wrong.as_bytes(), body),
                );
            }
            SignatureMode::Missing => {}
            SignatureMode::Sha1Only => {
                req = req.header(
                    "x-hub-signature",
                    format!("sha1={}", hmac_sha1_hex(secret, body)),
                );
            }
            SignatureMode::Custom(v) => {
                req = req.header("x-hub-signature-256", v);
            }
        }
        let resp = req.send().await.expect("POST the webhook to the target");
        if resp.status().as_u16() != 200 {
            lock(&self.retries).push(resp.status().as_u16());
        }
        resp
    }

    /// POSTs `body` serialised like Meta ([`meta_json`]: non-ASCII as `\uXXXX`), validly signed over
    /// exactly those bytes.
    pub async fn post(&self, body: &Value) -> reqwest::Response {
        self.post_raw(meta_json(body).as_bytes(), SignatureMode::Valid)
            .await
    }

    /// Like [`WebhookSender::post`] with another signature mode.
    pub async fn post_with(&self, body: &Value, signature: SignatureMode) -> reqwest::Response {
        self.post_raw(meta_json(body).as_bytes(), signature).await
    }

    /// Sends the last body again, byte for byte and validly signed: an identical redelivery (§1.4:
    /// "duplicates happen"). `None` if nothing was sent yet.
    pub async fn redeliver_last(&self) -> Option<reqwest::Response> {
        let last = lock(&self.last).clone()?;
        Some(self.post_raw(&last, SignatureMode::Valid).await)
    }

    /// The verification GET (§1.1): `?hub.mode=…&hub.challenge=…&hub.verify_token=…`, leaving out
    /// `hub.mode` / `hub.verify_token` when `None`.
    pub async fn handshake(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: &str,
    ) -> reqwest::Response {
        let mut url = url::Url::parse(&self.target_url).expect("a valid webhook target URL");
        {
            let mut q = url.query_pairs_mut();
            if let Some(m) = mode {
                q.append_pair("hub.mode", m);
            }
            q.append_pair("hub.challenge", challenge);
            if let Some(t) = token {
                q.append_pair("hub.verify_token", t);
            }
        }
        self.client
            .get(url)
            .send()
            .await
            .expect("GET the webhook handshake")
    }

    /// Statuses of the non-200 answers to POSTs, in order: Meta would redeliver those (§1.4, §1.5).
    pub fn would_retry(&self) -> Vec<u16> {
        lock(&self.retries).clone()
    }
}

fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    match Hmac::<Sha256>::new_from_slice(key) {
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

/// SHA-1 (FIPS 180-4), only for the legacy header.
fn sha1(msg: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut data = msg.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&((msg.len() as u64).wrapping_mul(8)).to_be_bytes());
    for block in data.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (wi, word) in w.iter_mut().zip(block.chunks_exact(4)) {
            *wi = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hi, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hi = hi.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_matches_the_known_vector() {
        assert_eq!(
            hmac_sha1_hex(b"key", b"The quick brown fox jumps over the lazy dog"),
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
        assert_eq!(
            hex_lower(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn appsecret_proof_matches_the_reference_vector() {
        assert_eq!(
            appsecret_proof(b"app_secret_123", "EAAB-page-token"),
            "91312d49d7c78d346071ff17c3f35fa67aa17f13bf91c41d343bf0656be8c463"
        );
    }
}
