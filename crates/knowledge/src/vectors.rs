//! Exact vector search: one contiguous row-major matrix per chatbot, scanned with a dot product.
//!
//! Vectors are unit length, so the dot product is the cosine. The matrix holds each vector quantised to
//! 8-bit integers with its own scale (`x ≈ q · scale`, q in −127..=127): a scan reads a quarter of the
//! bytes of f32, and a scan of 100k × 384 is bound by memory bandwidth, so it runs about four times faster
//! and the per-node cache is four times smaller. The cosine moves by about 1e-3 at most, below the gaps
//! that decide rankings (the evaluation gives the same nDCG; see BENCHMARKS.md). The database keeps the
//! exact f32 vectors; this matrix is derived from them.
//!
//! No ANN index: an exact scan finds every vector, and a deleted chunk is gone from the next rebuilt
//! matrix — there is nothing like an HNSW tombstone that keeps a deleted text findable.

#[derive(Debug, Default)]
pub struct Vectors {
    dims: usize,
    data: Vec<i8>,
    scales: Vec<f32>,
    /// Rows without a vector (not embedded yet, or by another model) are all-zero and flagged here.
    present: Vec<bool>,
}

/// A vector quantised to i8 with its scale.
pub fn quantize(v: &[f32]) -> (Vec<i8>, f32) {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if max == 0.0 {
        return (vec![0; v.len()], 0.0);
    }
    let scale = max / 127.0;
    (
        v.iter()
            .map(|x| (x / scale).round().clamp(-127.0, 127.0) as i8)
            .collect(),
        scale,
    )
}

impl Vectors {
    pub fn new(dims: usize, rows: usize) -> Self {
        Self {
            dims,
            data: vec![0; dims * rows],
            scales: vec![0.0; rows],
            present: vec![false; rows],
        }
    }

    pub fn dims(&self) -> usize {
        self.dims
    }

    pub fn rows(&self) -> usize {
        self.present.len()
    }

    /// How many rows have a vector.
    pub fn count_present(&self) -> usize {
        self.present.iter().filter(|&&p| p).count()
    }

    pub fn set(&mut self, row: usize, v: &[f32]) {
        if v.len() == self.dims && row < self.present.len() {
            let (q, scale) = quantize(v);
            self.data[row * self.dims..(row + 1) * self.dims].copy_from_slice(&q);
            self.scales[row] = scale;
            self.present[row] = true;
        }
    }

    pub fn is_present(&self, row: usize) -> bool {
        self.present.get(row).copied().unwrap_or(false)
    }

    /// Writes the cosine of `query` with every row into `scores` (rows without a vector get −1).
    pub fn score_into(&self, query: &[f32], scores: &mut [f32]) {
        if query.len() != self.dims || self.dims == 0 {
            return;
        }
        let (q, q_scale) = quantize(query);
        for (((row, s), present), scale) in self
            .data
            .chunks_exact(self.dims)
            .zip(scores.iter_mut())
            .zip(&self.present)
            .zip(&self.scales)
        {
            *s = if *present {
                dot_i8(row, &q) as f32 * scale * q_scale
            } else {
                -1.0
            };
        }
    }
}

/// Integer dot product with sixteen lanes of i32 partial sums (the compiler turns the i16 products into
/// multiply-add instructions).
#[inline]
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += i32::from(i16::from(x[i]) * i16::from(y[i]));
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += i32::from(*x) * i32::from(*y);
    }
    sum
}

/// Dot product with eight lanes of partial sums.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut sum: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// Little-endian f32 bytes, the storage form of a vector.
pub fn to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub fn from_bytes(b: &[u8]) -> Option<Vec<f32>> {
    if !b.len().is_multiple_of(4) {
        return None;
    }
    Some(
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..21).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..21).map(|i| 1.0 - i as f32 * 0.1).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }

    #[test]
    fn rows_without_vectors_score_below_every_real_row() {
        let mut v = Vectors::new(2, 3);
        v.set(0, &[1.0, 0.0]);
        v.set(2, &[0.0, 1.0]);
        let mut s = vec![0.0; 3];
        v.score_into(&[0.6, 0.8], &mut s);
        assert!(
            (s[0] - 0.6).abs() < 0.01 && (s[2] - 0.8).abs() < 0.01,
            "{s:?}"
        );
        assert_eq!(s[1], -1.0);
        assert_eq!(v.count_present(), 2);
    }

    /// Pseudo-random unit vectors (a fixed LCG, no dependency).
    fn unit_vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                let v: Vec<f32> = (0..dims)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                    })
                    .collect();
                let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
                v.into_iter().map(|a| a / n).collect()
            })
            .collect()
    }

    #[test]
    fn quantised_cosines_stay_within_a_hundredth_of_the_exact_ones() {
        let rows = unit_vectors(300, 384, 7);
        let query = &unit_vectors(1, 384, 99)[0];
        let mut m = Vectors::new(384, rows.len());
        for (i, r) in rows.iter().enumerate() {
            m.set(i, r);
        }
        let mut s = vec![0.0; rows.len()];
        m.score_into(query, &mut s);
        for (r, got) in rows.iter().zip(&s) {
            let exact = dot(r, query);
            assert!((exact - got).abs() < 0.01, "{exact} vs {got}");
        }
    }

    #[test]
    fn integer_dot_matches_the_naive_sum() {
        let a: Vec<i8> = (0..37).map(|i| (i * 7 % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..37).map(|i| (127 - i * 5 % 255) as i8).collect();
        let naive: i32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum();
        assert_eq!(dot_i8(&a, &b), naive);
    }

    #[test]
    fn bytes_round_trip() {
        let v = vec![0.25f32, -1.5, 3.0];
        assert_eq!(from_bytes(&to_bytes(&v)), Some(v));
        assert_eq!(from_bytes(&[1, 2, 3]), None);
    }
}
