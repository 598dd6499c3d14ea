//! Embeddings behind one interface with two real implementations: all-MiniLM-L6-v2 in process (candle,
//! the `local-embeddings` feature) and OpenRouter's `/embeddings` (external-apis.md §7.1–7.2), the way to a
//! multilingual model. With neither, retrieval runs on the lexical leg alone and says why.

use mtdesk_domain::EmbeddingChoice;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The id recorded with each vector for the in-process model.
pub const LOCAL_MODEL_ID: &str = "local:all-MiniLM-L6-v2";

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model failed: {0}")]
    Model(String),
    /// 401/403: the key is wrong or lacks access. Not retried.
    #[error("the embedding provider refused the API key (HTTP {0})")]
    Unauthorized(u16),
    #[error("the embedding provider answered HTTP {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("the embedding provider could not be reached: {0}")]
    Unreachable(String),
    #[error("the embedding provider sent an unusable response: {0}")]
    BadResponse(String),
}

/// Where remote embeddings go (OpenRouter or any OpenAI-compatible `/embeddings`).
#[derive(Clone)]
pub struct RemoteConfig {
    pub base_url: String,
    pub api_key: String,
    pub site_url: Option<String>,
    pub app_name: String,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .finish()
    }
}

#[cfg(feature = "local-embeddings")]
type LocalModel = mtdesk_minilm::MiniLm;
#[cfg(not(feature = "local-embeddings"))]
#[derive(Debug)]
struct LocalModel;

/// The embedders this node can use, loaded once at start-up.
#[derive(Clone)]
pub struct Embedders {
    local: Option<Arc<LocalModel>>,
    /// Why there is no local model (shown on the dashboard and logged at start-up).
    local_missing: Option<String>,
    remote: Option<RemoteConfig>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Embedders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedders")
            .field("local", &self.local.is_some())
            .field("remote", &self.remote)
            .finish()
    }
}

impl Embedders {
    /// Loads the local model from `model_dir` when this build has it; a missing model is not an error
    /// (the product still works, lexical-only, and says so).
    pub fn load(model_dir: Option<PathBuf>, remote: Option<RemoteConfig>) -> Self {
        // The HTTP client needs a TLS provider: ring, as everywhere in MT Desk (a no-op when the binary
        // installed it already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (local, local_missing) = load_local(model_dir);
        Self {
            local,
            local_missing,
            remote,
            client: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap_or_default(),
        }
    }

    /// No embedder at all: lexical retrieval only.
    pub fn none() -> Self {
        Self::load(None, None)
    }

    /// Why the local model is unavailable, if it is.
    pub fn local_missing(&self) -> Option<&str> {
        self.local_missing.as_deref()
    }

    pub fn has_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// The embedder for a chatbot's choice, or why there is none (retrieval is then lexical only).
    pub fn for_choice(&self, choice: &EmbeddingChoice) -> Result<Embedder, String> {
        match choice {
            EmbeddingChoice::None => Err("vector search is off for this chatbot".into()),
            EmbeddingChoice::Local => match &self.local {
                Some(m) => Ok(Embedder::Local(m.clone())),
                None => Err(self
                    .local_missing
                    .clone()
                    .unwrap_or_else(|| "the local embedding model is not available".into())),
            },
            EmbeddingChoice::OpenRouter(model) => match &self.remote {
                Some(cfg) => Ok(Embedder::Remote {
                    cfg: cfg.clone(),
                    model: model.clone(),
                    client: self.client.clone(),
                }),
                None => {
                    Err("OpenRouter embeddings need MTDESK_OPENROUTER_API_KEY on the server".into())
                }
            },
        }
    }
}

#[cfg(feature = "local-embeddings")]
fn load_local(dir: Option<PathBuf>) -> (Option<Arc<LocalModel>>, Option<String>) {
    let Some(dir) = dir else {
        return (None, Some("no local model directory configured".into()));
    };
    match mtdesk_minilm::MiniLm::load(&dir) {
        Ok(m) => (Some(Arc::new(m)), None),
        Err(e) => (None, Some(e.to_string())),
    }
}

#[cfg(not(feature = "local-embeddings"))]
fn load_local(_dir: Option<PathBuf>) -> (Option<Arc<LocalModel>>, Option<String>) {
    (
        None,
        Some("this build has no local embedding model (feature local-embeddings is off)".into()),
    )
}

/// One usable embedder.
#[derive(Clone)]
pub enum Embedder {
    #[allow(private_interfaces)]
    Local(Arc<LocalModel>),
    Remote {
        cfg: RemoteConfig,
        model: String,
        client: reqwest::Client,
    },
}

/// Texts per remote request.
const REMOTE_BATCH: usize = 64;

impl Embedder {
    /// The id stored with each vector; a chatbot whose vectors carry another id is re-embedded.
    pub fn model_id(&self) -> String {
        match self {
            Self::Local(_) => LOCAL_MODEL_ID.to_string(),
            Self::Remote { model, .. } => format!("openrouter:{model}"),
        }
    }

    /// Embeds texts; every vector is unit length.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            #[cfg(feature = "local-embeddings")]
            Self::Local(m) => {
                let m = m.clone();
                tokio::task::spawn_blocking(move || {
                    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                    m.embed(&refs).map_err(|e| EmbedError::Model(e.to_string()))
                })
                .await
                .map_err(|e| EmbedError::Model(format!("the embedding task failed: {e}")))?
            }
            #[cfg(not(feature = "local-embeddings"))]
            Self::Local(_) => Err(EmbedError::Model("no local model in this build".into())),
            Self::Remote { cfg, model, client } => {
                let mut out = Vec::with_capacity(texts.len());
                for batch in texts.chunks(REMOTE_BATCH) {
                    out.extend(remote_batch(client, cfg, model, batch).await?);
                }
                Ok(out)
            }
        }
    }

    pub async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(vec![text.to_string()])
            .await?
            .pop()
            .ok_or_else(|| EmbedError::BadResponse("no vector returned".into()))
    }
}

/// `POST {base}/embeddings` (external-apis.md §7.1): order by `index`; 401/403 are final; 408/429/5xx are
/// retried with backoff, honouring `Retry-After`.
async fn remote_batch(
    client: &reqwest::Client,
    cfg: &RemoteConfig,
    model: &str,
    batch: &[String],
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let url = format!("{}/embeddings", cfg.base_url.trim_end_matches('/'));
    let body = serde_json::json!({"model": model, "input": batch, "encoding_format": "float"});
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req = client
            .post(&url)
            .bearer_auth(&cfg.api_key)
            .header("X-Title", &cfg.app_name)
            .json(&body);
        if let Some(site) = &cfg.site_url {
            req = req.header("HTTP-Referer", site);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) if attempt < 3 => {
                tracing::warn!(error = %e, "embedding request failed; retrying");
                tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
                continue;
            }
            Err(e) => return Err(EmbedError::Unreachable(e.without_url().to_string())),
        };
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(EmbedError::Unauthorized(status));
        }
        if (status == 408 || status == 429 || status >= 500) && attempt < 3 {
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(30)))
                .unwrap_or(Duration::from_millis(500 * attempt));
            tokio::time::sleep(wait).await;
            continue;
        }
        let text = resp
            .text()
            .await
            .map_err(|e| EmbedError::Unreachable(e.without_url().to_string()))?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_else(|| "no error message".into());
            return Err(EmbedError::Upstream { status, message });
        }
        return parse_embeddings(&text, batch.len());
    }
}

fn parse_embeddings(text: &str, expected: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
    #[derive(serde::Deserialize)]
    struct Item {
        index: usize,
        embedding: Vec<f32>,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        data: Vec<Item>,
    }
    let mut body: Body =
        serde_json::from_str(text).map_err(|e| EmbedError::BadResponse(e.to_string()))?;
    if body.data.len() != expected {
        return Err(EmbedError::BadResponse(format!(
            "{} vectors for {expected} texts",
            body.data.len()
        )));
    }
    body.data.sort_by_key(|i| i.index);
    let dims = body.data.first().map(|i| i.embedding.len()).unwrap_or(0);
    if dims == 0 || body.data.iter().any(|i| i.embedding.len() != dims) {
        return Err(EmbedError::BadResponse(
            "vectors of different lengths".into(),
        ));
    }
    Ok(body
        .data
        .into_iter()
        .map(|i| normalize(i.embedding))
        .collect())
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_vectors_are_ordered_by_index_and_normalised() {
        let body = r#"{"object":"list","data":[
            {"object":"embedding","index":1,"embedding":[0.0,2.0]},
            {"object":"embedding","index":0,"embedding":[3.0,4.0]}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        let v = parse_embeddings(body, 2).expect("parses");
        assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
        assert!(parse_embeddings(body, 3).is_err());
        assert!(parse_embeddings("{", 1).is_err());
    }

    #[test]
    fn choices_without_an_embedder_say_why() {
        let e = Embedders::none();
        let why = e
            .for_choice(&EmbeddingChoice::OpenRouter("m".into()))
            .err()
            .expect("no remote");
        assert!(why.contains("MTDESK_OPENROUTER_API_KEY"));
        assert!(e.for_choice(&EmbeddingChoice::None).is_err());
        assert!(e.for_choice(&EmbeddingChoice::Local).is_err());
    }
}
