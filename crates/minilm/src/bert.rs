//! The BERT encoder of all-MiniLM-L6-v2, with mean pooling and L2 normalisation.
//!
//! Written here rather than taken from `candle_transformers::models::bert` so that a batch runs
//! unpadded: the tokens of all sequences form one `[tokens, hidden]` matrix for every dense
//! layer, and only attention looks at sequence boundaries. candle's BERT pads every sequence to
//! the longest and masks, which wastes work and makes results depend on batch composition.
//! Weights are also pre-arranged at load time: query/key/value fused into one
//! `[hidden, 3 * hidden]` matrix (one matrix product instead of three), stored input-major so no
//! per-call transpose is needed, and the query pre-scaled by `1/sqrt(head_dim)`.
//!
//! Matrix products run on candle (gemm, multi-threaded, AVX-512/AVX2 picked at run time); the
//! element-wise work between them runs as fused kernels ([`crate::kernels`]). Attention runs per
//! sequence, the sequences in parallel: each is two small batched (per head) matrix products on
//! strided views of the fused projection, so nothing is copied to split the heads.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::kernels::{BiasAdd, BiasGelu, BiasResidualNorm, Softmax};
use crate::{DIMS, ModelError};

/// The fields of the Hugging Face `config.json` this encoder depends on.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub(crate) struct BertConfig {
    /// Width of the hidden states (384 for MiniLM-L6).
    pub hidden_size: usize,
    /// Transformer layers (6).
    pub num_hidden_layers: usize,
    /// Attention heads per layer (12).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer (1536).
    pub intermediate_size: usize,
    /// Feed-forward activation; only `gelu` (the exact, erf-based one) is supported.
    pub hidden_act: String,
    /// Epsilon of every layer norm (1e-12).
    pub layer_norm_eps: f64,
    /// Positions the model has embeddings for (512).
    pub max_position_embeddings: usize,
}

impl BertConfig {
    /// Parses `config.json` and checks that it describes a model this crate can run.
    pub(crate) fn from_json(text: &str) -> Result<Self, ModelError> {
        let config: Self = serde_json::from_str(text)
            .map_err(|e| ModelError::Invalid(format!("config.json: {e}")))?;
        if config.hidden_size != DIMS {
            return Err(ModelError::Invalid(format!(
                "config.json: hidden_size {} but this crate produces {DIMS}-d vectors",
                config.hidden_size
            )));
        }
        if config.num_attention_heads == 0
            || !config
                .hidden_size
                .is_multiple_of(config.num_attention_heads)
        {
            return Err(ModelError::Invalid(format!(
                "config.json: {} heads do not divide hidden_size {}",
                config.num_attention_heads, config.hidden_size
            )));
        }
        if config.hidden_act != "gelu" {
            return Err(ModelError::Invalid(format!(
                "config.json: unsupported hidden_act {:?} (only \"gelu\")",
                config.hidden_act
            )));
        }
        if config.max_position_embeddings < crate::MAX_TOKENS {
            return Err(ModelError::Invalid(format!(
                "config.json: max_position_embeddings {} < {}",
                config.max_position_embeddings,
                crate::MAX_TOKENS
            )));
        }
        Ok(config)
    }
}

struct LayerNorm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    eps: f32,
}

/// A dense layer `x @ w + b`: `w` stored `[in, out]` for candle's matmul, the bias as a plain
/// vector for the fused kernels that apply it.
struct Dense {
    w: Tensor,
    b: Vec<f32>,
}

impl Dense {
    /// `x @ w`, without the bias.
    fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.w)
    }

    /// `layer_norm(x @ w + b + residual)`.
    fn forward_residual_norm(
        &self,
        x: &Tensor,
        residual: &Tensor,
        norm: &LayerNorm,
    ) -> candle_core::Result<Tensor> {
        self.matmul(x)?.apply_op2_no_bwd(
            residual,
            &BiasResidualNorm {
                bias: &self.b,
                gamma: &norm.gamma,
                beta: &norm.beta,
                eps: norm.eps,
            },
        )
    }
}

struct Layer {
    qkv: Dense,
    attn_out: Dense,
    attn_norm: LayerNorm,
    ffn_in: Dense,
    ffn_out: Dense,
    ffn_norm: LayerNorm,
}

/// The loaded encoder. Immutable after [`Bert::load`], hence `Send + Sync`.
pub(crate) struct Bert {
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    /// Token type 0 embedding, `[hidden]`: every input is a single segment.
    token_type: Tensor,
    /// Embedding layer norm (gamma, beta) as tensors: candle's fused layer norm is used there.
    embed_norm: (Tensor, Tensor),
    eps: f32,
    layers: Vec<Layer>,
    heads: usize,
    head_dim: usize,
    hidden: usize,
}

struct Weights {
    tensors: HashMap<String, Tensor>,
}

impl Weights {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Tensor, ModelError> {
        let t = self.tensors.remove(name).ok_or_else(|| {
            ModelError::Invalid(format!("model.safetensors has no tensor {name}"))
        })?;
        if t.dims() != shape {
            return Err(ModelError::Invalid(format!(
                "model.safetensors: {name} has shape {:?}, expected {shape:?}",
                t.dims()
            )));
        }
        t.to_dtype(DType::F32).map_err(invalid)
    }

    fn take_vec(&mut self, name: &str, len: usize) -> Result<Vec<f32>, ModelError> {
        self.take(name, &[len])?.to_vec1().map_err(invalid)
    }

    /// A `[rows, cols]` matrix with any (non-zero) number of rows.
    fn take_rows(&mut self, name: &str, cols: usize) -> Result<Tensor, ModelError> {
        let rows = match self.tensors.get(name).map(|t| t.dims()) {
            Some(&[rows, _]) if rows > 0 => rows,
            _ => 1,
        };
        self.take(name, &[rows, cols])
    }
}

fn invalid(e: candle_core::Error) -> ModelError {
    ModelError::Invalid(format!("model.safetensors: {e}"))
}

impl Bert {
    /// Builds the encoder from the bytes of `model.safetensors`.
    pub(crate) fn load(safetensors: &[u8], config: &BertConfig) -> Result<Self, ModelError> {
        let tensors =
            candle_core::safetensors::load_buffer(safetensors, &Device::Cpu).map_err(invalid)?;
        let mut w = Weights { tensors };
        let h = config.hidden_size;
        let inter = config.intermediate_size;
        let eps = config.layer_norm_eps as f32;
        let heads = config.num_attention_heads;
        let head_dim = h / heads;

        let norm = |w: &mut Weights, prefix: &str| -> Result<LayerNorm, ModelError> {
            Ok(LayerNorm {
                gamma: w.take_vec(&format!("{prefix}.weight"), h)?,
                beta: w.take_vec(&format!("{prefix}.bias"), h)?,
                eps,
            })
        };
        // PyTorch Linear stores [out, in]; keep [in, out] contiguous for `x @ w`.
        let dense =
            |w: &mut Weights, prefix: &str, din: usize, dout: usize| -> Result<Dense, ModelError> {
                let weight = w.take(&format!("{prefix}.weight"), &[dout, din])?;
                Ok(Dense {
                    w: weight.t().and_then(|t| t.contiguous()).map_err(invalid)?,
                    b: w.take_vec(&format!("{prefix}.bias"), dout)?,
                })
            };

        // The vocabulary size is the tokenizer's business: accept any number of rows.
        let word_embeddings = w.take_rows("embeddings.word_embeddings.weight", h)?;
        let position_embeddings = w.take(
            "embeddings.position_embeddings.weight",
            &[config.max_position_embeddings, h],
        )?;
        let token_type = w
            .take_rows("embeddings.token_type_embeddings.weight", h)?
            .get(0)
            .map_err(invalid)?;
        let embed_norm = (
            w.take("embeddings.LayerNorm.weight", &[h])?,
            w.take("embeddings.LayerNorm.bias", &[h])?,
        );

        let scale = 1.0 / (head_dim as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let q = dense(&mut w, &format!("{p}.attention.self.query"), h, h)?;
            let k = dense(&mut w, &format!("{p}.attention.self.key"), h, h)?;
            let v = dense(&mut w, &format!("{p}.attention.self.value"), h, h)?;
            let fuse = || -> candle_core::Result<Dense> {
                let b = q.b.iter().map(|x| x * scale as f32);
                Ok(Dense {
                    w: Tensor::cat(&[&(&q.w * scale)?, &k.w, &v.w], 1)?,
                    b: b.chain(k.b.iter().copied())
                        .chain(v.b.iter().copied())
                        .collect(),
                })
            };
            layers.push(Layer {
                qkv: fuse().map_err(invalid)?,
                attn_out: dense(&mut w, &format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: norm(&mut w, &format!("{p}.attention.output.LayerNorm"))?,
                ffn_in: dense(&mut w, &format!("{p}.intermediate.dense"), h, inter)?,
                ffn_out: dense(&mut w, &format!("{p}.output.dense"), inter, h)?,
                ffn_norm: norm(&mut w, &format!("{p}.output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word_embeddings,
            position_embeddings,
            token_type,
            embed_norm,
            eps,
            layers,
            heads,
            head_dim,
            hidden: h,
        })
    }

    /// Mean-pooled, L2-normalised embeddings of token sequences (each already including
    /// `[CLS]`/`[SEP]`, non-empty and at most `max_position_embeddings` long).
    pub(crate) fn embed(&self, sequences: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let total: usize = sequences.iter().map(|s| s.len()).sum();
        let mut ids = Vec::with_capacity(total);
        let mut positions = Vec::with_capacity(total);
        for s in sequences {
            ids.extend_from_slice(s);
            positions.extend(0..s.len() as u32);
        }
        let dev = &Device::Cpu;
        let ids = Tensor::from_vec(ids, total, dev)?;
        let positions = Tensor::from_vec(positions, total, dev)?;
        let x = (self.word_embeddings.index_select(&ids, 0)?
            + self.position_embeddings.index_select(&positions, 0)?)?
        .broadcast_add(&self.token_type)?;
        let mut x =
            candle_nn::ops::layer_norm(&x, &self.embed_norm.0, &self.embed_norm.1, self.eps)?;

        let lens: Vec<usize> = sequences.iter().map(|s| s.len()).collect();
        for layer in &self.layers {
            x = self.layer_forward(layer, &x, &lens)?;
        }

        let mut out = Vec::with_capacity(sequences.len());
        let mut offset = 0;
        for &len in &lens {
            let pooled = x.narrow(0, offset, len)?.mean(0)?;
            let mut v = pooled.to_vec1::<f32>()?;
            let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
            v.iter_mut().for_each(|a| *a /= norm);
            out.push(v);
            offset += len;
        }
        Ok(out)
    }

    fn layer_forward(
        &self,
        layer: &Layer,
        x: &Tensor,
        lens: &[usize],
    ) -> candle_core::Result<Tensor> {
        let qkv = layer.qkv.matmul(x)?;
        qkv.inplace_op1(&BiasAdd { bias: &layer.qkv.b })?;
        let ctx = self.attention(&qkv, lens)?;
        let a = layer
            .attn_out
            .forward_residual_norm(&ctx, x, &layer.attn_norm)?;
        let f = layer.ffn_in.matmul(&a)?;
        f.inplace_op1(&BiasGelu {
            bias: &layer.ffn_in.b,
        })?;
        layer.ffn_out.forward_residual_norm(&f, &a, &layer.ffn_norm)
    }

    /// Multi-head attention per sequence over the fused `[tokens, 3 * hidden]` projections
    /// (query already scaled); returns `[tokens, hidden]`.
    fn attention(&self, qkv: &Tensor, lens: &[usize]) -> candle_core::Result<Tensor> {
        let total: usize = lens.iter().sum();
        // [tokens, 3, heads, head_dim] is a free reshape of the contiguous projection.
        let qkv = qkv.reshape((total, 3, self.heads, self.head_dim))?;
        let offsets: Vec<usize> = lens
            .iter()
            .scan(0, |acc, &len| {
                let start = *acc;
                *acc += len;
                Some(start)
            })
            .collect();
        let contexts = offsets
            .par_iter()
            .zip(lens)
            .map(|(&start, &len)| {
                let s = qkv.narrow(0, start, len)?;
                // [heads, len, head_dim] views with row stride 3 * hidden: no copies.
                let part = |i: usize| s.narrow(1, i, 1)?.squeeze(1)?.transpose(0, 1);
                let (q, k, v) = (part(0)?, part(1)?, part(2)?);
                let scores = q.matmul(&k.t()?)?;
                scores.inplace_op1(&Softmax)?;
                scores.matmul(&v)
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        // [heads, tokens, head_dim] -> [tokens, heads * head_dim]
        Tensor::cat(&contexts, 1)?
            .transpose(0, 1)?
            .contiguous()?
            .reshape((total, self.hidden))
    }
}
