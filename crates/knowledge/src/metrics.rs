//! Retrieval quality metrics with trec_eval semantics (binary relevance): nDCG@k and Recall@k.

use std::collections::HashSet;

/// nDCG@k: DCG of the ranking over the ideal DCG for this query's relevant set.
pub fn ndcg_at(ranked: &[String], relevant: &HashSet<String>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .filter(|(_, d)| relevant.contains(*d))
        .map(|(i, _)| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..relevant.len().min(k))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    dcg / ideal
}

/// Recall@k: the share of the relevant documents found in the first k.
pub fn recall_at(ranked: &[String], relevant: &HashSet<String>, k: usize) -> f64 {
    if relevant.is_empty() {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|d| relevant.contains(*d))
        .count();
    found as f64 / relevant.len() as f64
}

/// Percentile (nearest rank) of a sample, in the sample's unit.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> HashSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }
    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn ndcg_is_one_for_a_perfect_ranking_and_discounts_lower_ranks() {
        assert!((ndcg_at(&list(&["a", "b", "x"]), &set(&["a", "b"]), 10) - 1.0).abs() < 1e-12);
        let second = ndcg_at(&list(&["x", "a"]), &set(&["a"]), 10);
        assert!((second - 1.0 / 3f64.log2()).abs() < 1e-12);
        assert_eq!(ndcg_at(&list(&["x"]), &set(&["a"]), 10), 0.0);
    }

    #[test]
    fn recall_counts_only_the_first_k() {
        let r = list(&["a", "x", "b"]);
        assert_eq!(recall_at(&r, &set(&["a", "b"]), 2), 0.5);
        assert_eq!(recall_at(&r, &set(&["a", "b"]), 3), 1.0);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&s, 50.0), 50.0);
        assert_eq!(percentile(&s, 99.0), 99.0);
        assert_eq!(percentile(&[], 50.0), 0.0);
    }
}
