//! Exact vector search: one contiguous row-major f32 matrix per chatbot, scanned with a dot product.
//!
//! Vectors are unit length, so the dot product is the cosine. The inner loop keeps eight independent
//! accumulators so the compiler can use SIMD lanes (a single running sum is a dependency chain it may not
//! reorder). No ANN index: an exact scan finds every vector, and a deleted chunk is gone from the next
//! rebuilt matrix — there is nothing like an HNSW tombstone that keeps a deleted text findable.

#[derive(Debug, Default)]
pub struct Vectors {
    dims: usize,
    data: Vec<f32>,
    /// Rows without a vector (not embedded yet, or by another model) are all-zero and flagged here.
    present: Vec<bool>,
}

impl Vectors {
    pub fn new(dims: usize, rows: usize) -> Self {
        Self {
            dims,
            data: vec![0.0; dims * rows],
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
            self.data[row * self.dims..(row + 1) * self.dims].copy_from_slice(v);
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
        for ((row, s), present) in self
            .data
            .chunks_exact(self.dims)
            .zip(scores.iter_mut())
            .zip(&self.present)
        {
            *s = if *present { dot(row, query) } else { -1.0 };
        }
    }
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
        assert_eq!(s, vec![0.6, -1.0, 0.8]);
        assert_eq!(v.count_present(), 2);
    }

    #[test]
    fn bytes_round_trip() {
        let v = vec![0.25f32, -1.5, 3.0];
        assert_eq!(from_bytes(&to_bytes(&v)), Some(v));
        assert_eq!(from_bytes(&[1, 2, 3]), None);
    }
}
