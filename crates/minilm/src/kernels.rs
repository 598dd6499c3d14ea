//! Fused element-wise kernels for the encoder, as candle custom ops.
//!
//! candle runs `x + bias`, GELU, the residual add and layer norm as separate passes, and its
//! GELU and softmax call a scalar `erf`/`exp` per element; at MiniLM's size those passes cost
//! about a quarter of the forward time next to the matrix products. These kernels fuse each
//! chain into one pass over the rows (in parallel with rayon) and use branch-free polynomial
//! `exp`/`erf` that the compiler vectorises. [`simd`] compiles each loop for the widest
//! instruction set the CPU has (AVX-512 or AVX2+FMA, detected at run time through `pulp`, the
//! same way gemm picks its kernels), without `unsafe` in this crate. Accuracy: `exp` within ~2e-7 relative, `erf` within
//! 6e-7 absolute (Abramowitz & Stegun 7.1.26), far below the 1e-4 the output is checked to.
//!
//! Inputs must be contiguous f32 on the CPU; anything else is an error, never a silent fallback.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, InplaceOp1, Layout, Result, Shape, bail};
use pulp::{Simd, WithSimd};
use rayon::prelude::*;

/// Runs `op` compiled for AVX-512 or AVX2+FMA when the CPU has them (else for the baseline).
///
/// `op.with_simd` and everything it calls must be `#[inline(always)]`, so that they are compiled
/// inside pulp's `#[target_feature]` function and auto-vectorised with the wide registers.
fn simd<Op: WithSimd>(op: Op) -> Op::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if let Some(v4) = pulp::x86::V4::try_new() {
            return Simd::vectorize(v4, op);
        }
        if let Some(v3) = pulp::x86::V3::try_new() {
            return Simd::vectorize(v3, op);
        }
    }
    op.with_simd(pulp::Scalar)
}

/// Implements [`WithSimd`] for a struct by running `$body` on `$self` (no explicit SIMD: the
/// body is plain Rust that the compiler vectorises for the enabled features).
macro_rules! rows_kernel {
    ($name:ident, |$self:ident| $body:block) => {
        impl WithSimd for $name<'_> {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>($self, _simd: S) $body
        }
    };
}

/// Rows per rayon task: enough work per task to amortise scheduling, enough tasks to balance.
const ROWS_PER_TASK: usize = 16;

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32, got {:?}", storage.dtype())
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

fn contiguous_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let dtype = storage.dtype();
    let CpuStorage::F32(data) = storage else {
        bail!("{op}: expected f32, got {dtype:?}")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

fn last_dim(layout: &Layout) -> usize {
    layout.dims().last().copied().unwrap_or(1).max(1)
}

/// `e^x` for `x <= 0` (inputs below -87 return ~1.6e-38 instead of denormals/zero).
///
/// `e^x = 2^n * e^r` with `n = round(x / ln 2)` and `|r| <= ln 2 / 2`; `e^r` by its degree-6
/// Taylor polynomial (truncation error < 1.3e-7 relative on that interval). Branch-free, so
/// loops over it vectorise.
#[inline(always)]
pub(crate) fn exp_nonpositive(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part exact in f32 and the remainder (Cody-Waite), so `x - n ln 2` is exact.
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 * 2^23 rounds to an integer and leaves it in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let shifted = x * LOG2_E + ROUND;
    let n = shifted - ROUND;
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // n is in [-126, 0], so 2^n is a normal float built directly from its exponent bits.
    // Wrapping ops: no overflow-check branches (dev builds), which would stop vectorisation.
    p * f32::from_bits((n_int.wrapping_add(127) as u32).wrapping_shl(23))
}

/// The error function: Abramowitz & Stegun 7.1.26 (1.5e-7 absolute in exact arithmetic; about
/// 5e-7 in f32, the worst near 0 where `1 - poly * exp` cancels, which GELU scales by `x / 2`).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A1: f32 = 0.254_829_6;
    const A2: f32 = -0.284_496_74;
    const A3: f32 = 1.421_413_7;
    const A4: f32 = -1.453_152_1;
    const A5: f32 = 1.061_405_4;
    let a = x.abs();
    let t = 1.0 / (1.0 + P * a);
    let poly = t * (A1 + t * (A2 + t * (A3 + t * (A4 + t * A5))));
    let y = 1.0 - poly * exp_nonpositive(-a * a);
    y.copysign(x)
}

/// Exact (erf-based) GELU, as BERT's `hidden_act: "gelu"`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// In place: `x = gelu(x + bias)`, bias broadcast over the rows.
pub(crate) struct BiasGelu<'a> {
    pub bias: &'a [f32],
}

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "minilm-bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let data = contiguous_mut(storage, layout, self.name())?;
        let cols = self.bias.len();
        if last_dim(layout) != cols {
            bail!(
                "{}: bias has {cols} values for rows of {}",
                self.name(),
                last_dim(layout)
            )
        }
        data.par_chunks_mut(cols * ROWS_PER_TASK).for_each(|rows| {
            simd(GeluRows {
                rows,
                bias: self.bias,
            })
        });
        Ok(())
    }
}

/// In place: `x = x + bias`, bias broadcast over the rows.
pub(crate) struct BiasAdd<'a> {
    pub bias: &'a [f32],
}

impl InplaceOp1 for BiasAdd<'_> {
    fn name(&self) -> &'static str {
        "minilm-bias-add"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let data = contiguous_mut(storage, layout, self.name())?;
        let cols = self.bias.len();
        if last_dim(layout) != cols {
            bail!(
                "{}: bias has {cols} values for rows of {}",
                self.name(),
                last_dim(layout)
            )
        }
        data.par_chunks_mut(cols * ROWS_PER_TASK).for_each(|rows| {
            simd(BiasRows {
                rows,
                bias: self.bias,
            })
        });
        Ok(())
    }
}

/// In place: softmax over the last dimension.
pub(crate) struct Softmax;

impl InplaceOp1 for Softmax {
    fn name(&self) -> &'static str {
        "minilm-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let data = contiguous_mut(storage, layout, self.name())?;
        let cols = last_dim(layout);
        data.par_chunks_mut(cols * ROWS_PER_TASK)
            .for_each(|rows| simd(SoftmaxRows { rows, cols }));
        Ok(())
    }
}

struct GeluRows<'a> {
    rows: &'a mut [f32],
    bias: &'a [f32],
}

rows_kernel!(GeluRows, |self| {
    for row in self.rows.chunks_exact_mut(self.bias.len()) {
        for (x, b) in row.iter_mut().zip(self.bias) {
            *x = gelu(*x + b);
        }
    }
});

struct BiasRows<'a> {
    rows: &'a mut [f32],
    bias: &'a [f32],
}

rows_kernel!(BiasRows, |self| {
    for row in self.rows.chunks_exact_mut(self.bias.len()) {
        for (x, b) in row.iter_mut().zip(self.bias) {
            *x += b;
        }
    }
});

struct SoftmaxRows<'a> {
    rows: &'a mut [f32],
    cols: usize,
}

rows_kernel!(SoftmaxRows, |self| {
    for row in self.rows.chunks_exact_mut(self.cols) {
        softmax_row(row);
    }
});

struct NormRows<'a> {
    out: &'a mut [f32],
    x: &'a [f32],
    residual: &'a [f32],
    op: &'a BiasResidualNorm<'a>,
}

rows_kernel!(NormRows, |self| {
    let cols = self.op.bias.len();
    for ((o, x), r) in self
        .out
        .chunks_exact_mut(cols)
        .zip(self.x.chunks_exact(cols))
        .zip(self.residual.chunks_exact(cols))
    {
        self.op.row(o, x, r);
    }
});

#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    // Eight independent lanes so the reductions vectorise (a single f32 accumulator would
    // force sequential order).
    let mut lanes = [f32::NEG_INFINITY; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (m, x) in lanes.iter_mut().zip(c) {
            *m = m.max(*x);
        }
    }
    let max = chunks.remainder().iter().fold(
        lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        |m, x| m.max(*x),
    );

    for x in row.iter_mut() {
        *x = exp_nonpositive(*x - max);
    }

    let mut sums = [0.0f32; 8];
    let mut chunks = row.chunks_exact(8);
    for c in &mut chunks {
        for (s, x) in sums.iter_mut().zip(c) {
            *s += x;
        }
    }
    let sum = sums.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>();
    // The max element contributes exp(0) = 1, so sum >= 1.
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
}

/// `layer_norm(x + bias + residual)` over rows; `x` is a dense layer's output without bias.
pub(crate) struct BiasResidualNorm<'a> {
    pub bias: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

impl CustomOp2 for BiasResidualNorm<'_> {
    fn name(&self) -> &'static str {
        "minilm-bias-residual-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s1, l1, self.name())?;
        let residual = contiguous(s2, l2, self.name())?;
        let cols = self.bias.len();
        if l1.shape() != l2.shape() || last_dim(l1) != cols {
            bail!(
                "{}: shapes {:?} / {:?} with {cols} columns",
                self.name(),
                l1.shape(),
                l2.shape()
            )
        }
        let mut out = vec![0.0f32; x.len()];
        out.par_chunks_mut(cols * ROWS_PER_TASK)
            .zip(x.par_chunks(cols * ROWS_PER_TASK))
            .zip(residual.par_chunks(cols * ROWS_PER_TASK))
            .for_each(|((out, x), residual)| {
                simd(NormRows {
                    out,
                    x,
                    residual,
                    op: self,
                })
            });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

impl BiasResidualNorm<'_> {
    #[inline(always)]
    fn row(&self, out: &mut [f32], x: &[f32], residual: &[f32]) {
        for (((o, x), r), b) in out.iter_mut().zip(x).zip(residual).zip(self.bias) {
            *o = x + b + r;
        }
        let n = out.len() as f32;
        let mean = sum8(out) / n;
        for o in out.iter_mut() {
            *o -= mean;
        }
        let var = sum_sq8(out) / n;
        let inv_std = 1.0 / (var + self.eps).sqrt();
        for ((o, g), b) in out.iter_mut().zip(self.gamma).zip(self.beta) {
            *o = *o * inv_std * g + b;
        }
    }
}

#[inline(always)]
fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn sum_sq8(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x * x;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().map(|x| x * x).sum::<f32>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Taylor series in f64, as an independent reference. Accurate to ~1e-12 for
    /// |x| <= 3 (beyond that the alternating terms cancel too much).
    fn erf_reference(x: f64) -> f64 {
        assert!(x.abs() <= 3.0);
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=100_000 {
            let x = -87.0 * i as f32 / 100_000.0;
            let want = (x as f64).exp();
            let got = exp_nonpositive(x) as f64;
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(-1000.0) >= 0.0 && exp_nonpositive(-1000.0) < 1e-37);
    }

    #[test]
    fn erf_is_within_6e7_of_the_series() {
        let mut worst = 0.0f64;
        for i in -3000..=3000 {
            let x = i as f32 / 1000.0;
            worst = worst.max((erf(x) as f64 - erf_reference(x as f64)).abs());
        }
        assert!(worst < 6e-7, "worst absolute error {worst}");
        // erf(3) = 0.999977909; beyond it erf is monotone and below 1.
        let mut previous = erf(3.0);
        for i in 3001..=6000 {
            let y = erf(i as f32 / 1000.0);
            assert!(
                y >= previous - 1e-7 && y <= 1.0,
                "erf({}) = {y}",
                i as f32 / 1000.0
            );
            previous = y;
        }
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
    }

    #[test]
    fn gelu_matches_its_definition() {
        for x in [-4.0f32, -3.0, -1.0, -0.1, 0.0, 0.1, 1.0, 3.0, 4.0] {
            let want = 0.5 * x as f64 * (1.0 + erf_reference(x as f64 / 2f64.sqrt()));
            assert!(
                (gelu(x) as f64 - want).abs() < 1e-6,
                "gelu({x}) = {} want {want}",
                gelu(x)
            );
        }
    }

    #[test]
    fn softmax_row_sums_to_one_and_keeps_order() {
        let mut row: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        let original = row.clone();
        softmax_row(&mut row);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        let max = original.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let denom: f64 = original.iter().map(|x| ((x - max) as f64).exp()).sum();
        for (got, x) in row.iter().zip(&original) {
            let want = ((x - max) as f64).exp() / denom;
            assert!((*got as f64 - want).abs() < 1e-6);
        }
    }
}
