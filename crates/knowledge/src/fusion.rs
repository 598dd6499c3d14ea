//! Ranking: each leg alone, and the hybrid that fuses them.
//!
//! Plain reciprocal-rank fusion throws the scores away and, on a labeled set, lost 0.10 nDCG@10 against the
//! dense leg alone. We fuse the scores instead: each leg's score is standardised for this query (a z-score
//! against the mean and spread of that leg's own top 100), then combined as `α·vector + (1 − α)·lexical`.
//! A z-score says how clearly a document stands out in its leg, which is comparable across legs whose raw
//! scales (BM25 sums, cosines) are not; min–max scaling, tried first, lets one lucky outlier squash the rest
//! (see BENCHMARKS.md for both). A query whose words the index does not know has no lexical candidates and
//! adds nothing from that leg, so the hybrid then ranks exactly like the vector leg; a chatbot without
//! vectors ranks exactly like BM25.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Which retriever(s) rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Bm25,
    Vector,
    Hybrid,
}

impl Mode {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Bm25 => "bm25",
            Self::Vector => "vector",
            Self::Hybrid => "hybrid",
        }
    }
}

/// Which leg found a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Leg {
    Lexical,
    Vector,
    Both,
}

/// The weight of the vector leg in the hybrid. Tuned on the shared debian-faq-kb set (0.6–0.8 within 0.01
/// nDCG@10 of each other; 0.8 the only weight with Recall@10 ≥ 0.75) and checked on the second set,
/// bench/python-faq-kb, where every weight from 0.6 to 0.8 beats the better leg by 0.03–0.04 nDCG@10
/// (see BENCHMARKS.md).
pub const DEFAULT_ALPHA: f32 = 0.8;
/// How deep each leg's own ranking counts as "found by this leg", and the floor rank for scaling cosines.
const DEPTH: usize = 100;

/// One ranked document (an index into the caller's documents).
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub doc: usize,
    /// The ranking score: BM25, cosine, or the fused score (a weighted sum of per-leg z-scores).
    pub score: f32,
    pub lexical: Option<f32>,
    pub vector: Option<f32>,
    pub leg: Leg,
}

#[derive(PartialEq)]
struct Entry(f32, usize);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // Reversed, so the heap's top is the smallest kept score; ties by lower index first.
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0).then(self.1.cmp(&other.1))
    }
}

/// Indices of the `k` best scores above `min`, best first (ties: lower index first).
pub fn top_k(scores: &[f32], k: usize, min: f32) -> Vec<usize> {
    if k == 0 {
        return Vec::new();
    }
    let mut heap: BinaryHeap<Entry> = BinaryHeap::with_capacity(k + 1);
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() || s <= min {
            continue;
        }
        if heap.len() < k {
            heap.push(Entry(s, i));
        } else if let Some(worst) = heap.peek()
            && s > worst.0
        {
            heap.pop();
            heap.push(Entry(s, i));
        }
    }
    let mut v: Vec<Entry> = heap.into_vec();
    v.sort();
    v.into_iter().map(|e| e.1).collect()
}

/// Ranks documents for one query. `lexical` and `vector` are full score arrays (one entry per document;
/// vector rows without a vector hold −1). Returns at most `k` hits.
pub fn rank(
    lexical: Option<&[f32]>,
    vector: Option<&[f32]>,
    mode: Mode,
    k: usize,
    alpha: f32,
) -> Vec<Ranked> {
    let lex_top = lexical.map(|l| top_k(l, DEPTH, 0.0)).unwrap_or_default();
    let vec_top = vector.map(|v| top_k(v, DEPTH, -1.0)).unwrap_or_default();
    let leg_of = |d: usize| match (lex_top.contains(&d), vec_top.contains(&d)) {
        (true, true) => Leg::Both,
        (false, true) => Leg::Vector,
        _ => Leg::Lexical,
    };
    let lex_of = |d: usize| lexical.and_then(|l| l.get(d).copied()).filter(|&s| s > 0.0);
    let vec_of = |d: usize| vector.and_then(|v| v.get(d).copied()).filter(|&s| s > -1.0);
    let hit = |d: usize, score: f32| Ranked {
        doc: d,
        score,
        lexical: lex_of(d),
        vector: vec_of(d),
        leg: leg_of(d),
    };
    let mode = match (mode, lexical.is_some(), vector.is_some()) {
        (Mode::Hybrid, true, false) => Mode::Bm25,
        (Mode::Hybrid, false, true) => Mode::Vector,
        (m, _, _) => m,
    };
    match mode {
        Mode::Bm25 => lex_top
            .iter()
            .take(k)
            .filter_map(|&d| lex_of(d).map(|s| hit(d, s)))
            .collect(),
        Mode::Vector => vec_top
            .iter()
            .take(k)
            .filter_map(|&d| vec_of(d).map(|s| hit(d, s)))
            .collect(),
        Mode::Hybrid => {
            let (Some(l), Some(v)) = (lexical, vector) else {
                return Vec::new();
            };
            // z-scores over each leg's own top candidates: how far above that leg's typical candidate
            // a document scores, in that leg's spread.
            let stats = |top: &[usize], a: &[f32]| {
                let n = top.len().max(1) as f32;
                let mean = top.iter().map(|&d| a[d]).sum::<f32>() / n;
                let var = top.iter().map(|&d| (a[d] - mean).powi(2)).sum::<f32>() / n;
                (mean, var.sqrt().max(1e-6))
            };
            let (lm, ls) = stats(&lex_top, l);
            let (vm, vs) = stats(&vec_top, v);
            let mut cands: Vec<usize> = lex_top.iter().chain(&vec_top).copied().collect();
            cands.sort_unstable();
            cands.dedup();
            let fused: Vec<(usize, f32)> = cands
                .into_iter()
                .map(|d| {
                    let ln = if lex_top.is_empty() {
                        0.0
                    } else {
                        (l[d] - lm) / ls
                    };
                    // A chunk without a vector (still being embedded) counts as far below average.
                    let vn = if v[d] > -1.0 { (v[d] - vm) / vs } else { -3.0 };
                    (d, alpha * vn + (1.0 - alpha) * ln)
                })
                .collect();
            let scores: Vec<f32> = fused.iter().map(|&(_, s)| s).collect();
            top_k(&scores, k, f32::NEG_INFINITY)
                .into_iter()
                .map(|i| hit(fused[i].0, fused[i].1))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_best_first_and_breaks_ties_by_index() {
        assert_eq!(top_k(&[0.1, 0.9, 0.5, 0.9, 0.0], 3, 0.0), vec![1, 3, 2]);
        assert_eq!(top_k(&[0.0, -1.0], 3, 0.0), Vec::<usize>::new());
        assert!(top_k(&[1.0], 0, 0.0).is_empty());
    }

    #[test]
    fn hybrid_without_lexical_signal_ranks_like_the_vector_leg() {
        let lex = vec![0.0; 4];
        let vec = vec![0.2, 0.9, -1.0, 0.5];
        let h: Vec<usize> = rank(Some(&lex), Some(&vec), Mode::Hybrid, 3, 0.7)
            .iter()
            .map(|r| r.doc)
            .collect();
        let v: Vec<usize> = rank(None, Some(&vec), Mode::Vector, 3, 0.7)
            .iter()
            .map(|r| r.doc)
            .collect();
        assert_eq!(h, v);
        assert_eq!(v, vec![1, 3, 0]);
    }

    #[test]
    fn a_document_strong_in_both_legs_wins_and_is_marked_both() {
        let lex = vec![5.0, 0.0, 4.0];
        let vec = vec![0.3, 0.6, 0.59];
        let r = rank(Some(&lex), Some(&vec), Mode::Hybrid, 3, 0.5);
        assert_eq!(r[0].doc, 2);
        assert_eq!(r[0].leg, Leg::Both);
        assert_eq!(r[0].lexical, Some(4.0));
        assert!(r[0].score > r[1].score && r[1].score > r[2].score, "{r:?}");
    }

    #[test]
    fn hybrid_falls_back_to_the_leg_that_exists() {
        let lex = vec![1.0, 3.0];
        let r = rank(Some(&lex), None, Mode::Hybrid, 5, 0.7);
        assert_eq!(r.iter().map(|r| r.doc).collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(r[0].score, 3.0);
    }
}
