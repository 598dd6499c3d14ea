//! BM25 over an in-memory inverted index, derived from the chunks in the database.
//!
//! Okapi BM25 with Lucene's idf `ln(1 + (N − df + 0.5) / (df + 0.5))`, k1 = 1.5, b = 0.75 (bm25s's
//! defaults). Each posting stores its precomputed term-frequency weight, so a query is a sum of
//! `idf × weight` over the postings of its terms into a dense score array: no allocation per document.

use crate::analyze;
use std::collections::HashMap;

const K1: f32 = 1.5;
const B: f32 = 0.75;

#[derive(Debug, Default)]
pub struct Bm25 {
    /// term → (document, tf weight)
    postings: HashMap<String, (f32, Vec<(u32, f32)>)>,
    n: usize,
}

impl Bm25 {
    /// Builds the index over `docs` (already the indexed text of each document).
    pub fn build<'a>(docs: impl IntoIterator<Item = &'a str>) -> Self {
        let mut raw: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lens: Vec<u32> = Vec::new();
        for (i, text) in docs.into_iter().enumerate() {
            let terms = analyze::terms(text);
            lens.push(terms.len() as u32);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for t in terms {
                *tf.entry(t).or_default() += 1;
            }
            for (t, f) in tf {
                raw.entry(t).or_default().push((i as u32, f));
            }
        }
        let n = lens.len();
        let avgdl = if n == 0 {
            1.0
        } else {
            (lens.iter().map(|&l| f64::from(l)).sum::<f64>() / n as f64).max(1.0) as f32
        };
        let postings = raw
            .into_iter()
            .map(|(term, mut list)| {
                list.sort_unstable_by_key(|&(d, _)| d);
                let df = list.len() as f32;
                let idf = (1.0 + (n as f32 - df + 0.5) / (df + 0.5)).ln();
                let weighted = list
                    .into_iter()
                    .map(|(d, f)| {
                        let tf = f as f32;
                        let dl = lens[d as usize] as f32;
                        (d, tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * dl / avgdl)))
                    })
                    .collect();
                (term, (idf, weighted))
            })
            .collect();
        Self { postings, n }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Adds each document's BM25 score for `query` into `scores` (length = number of documents). Returns
    /// how many distinct query terms the index knows (0 means the lexical leg has nothing to say).
    pub fn score_into(&self, query: &str, scores: &mut [f32]) -> usize {
        let mut terms = analyze::terms(query);
        terms.sort_unstable();
        terms.dedup();
        let mut known = 0;
        for t in &terms {
            if let Some((idf, list)) = self.postings.get(t) {
                known += 1;
                for &(d, w) in list {
                    if let Some(s) = scores.get_mut(d as usize) {
                        *s += idf * w;
                    }
                }
            }
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rarer_terms_and_shorter_documents_rank_higher() {
        let docs = [
            "The refund policy: refunds within 30 days.",
            "Shipping takes five days. Shipping is free over 50 euros. Shipping to islands costs more.",
            "Opening hours are nine to five, and refunds are handled by the shop.",
        ];
        let idx = Bm25::build(docs.iter().copied());
        let mut s = vec![0.0; 3];
        // "refunds" is known; "work" is in no document.
        assert_eq!(idx.score_into("How do refunds work?", &mut s), 1);
        assert!(s[0] > s[2], "{s:?}");
        assert!(s[2] > 0.0);
        assert_eq!(s[1], 0.0);
        let mut s = vec![0.0; 3];
        assert_eq!(idx.score_into("zzz qqq", &mut s), 0);
        assert!(s.iter().all(|&x| x == 0.0));
    }
}
