//! Encoding speed of `MiniLm` on the debian-faq-kb bench set.
//!
//! ```text
//! cargo run -p mtdesk-minilm --example encode_speed -- <model dir> <corpus.jsonl> [queries.jsonl]
//! ```
//!
//! In the workspace dev profile this crate's own kernels are unoptimised; to measure what an
//! optimised build does without a 9-minute release build of candle, add
//! `--config 'profile.dev.package.mtdesk-minilm.opt-level=3'` after `cargo`.
//!
//! `queries.jsonl` defaults to the file of that name next to the corpus. Passages are embedded as
//! `title + ". " + text`, all in one `embed` call (the crate batches internally), for three sets:
//! the first 256 passages of the corpus (`first`), the first 256 of 170-200 tokens (the length
//! the product issue's reference figures used), and the first 256 with at least 150 words
//! (`long`, ~186 words, most at the 256-token limit). Then 100 queries are
//! embedded one call each, as at search time. Prints one JSON object.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mtdesk_minilm::MiniLm;

const PASSAGES: usize = 256;
const QUERIES: usize = 100;
const LONG_MIN_WORDS: usize = 150;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model_dir, corpus) = match args.as_slice() {
        [m, c, ..] => (PathBuf::from(m), PathBuf::from(c)),
        _ => {
            eprintln!("usage: encode_speed <model dir> <corpus.jsonl> [queries.jsonl]");
            std::process::exit(2);
        }
    };
    let queries_path = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| corpus.with_file_name("queries.jsonl"));

    let started = Instant::now();
    let model = MiniLm::load(&model_dir)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;

    let passages: Vec<String> = read_jsonl(&corpus)?
        .iter()
        .map(|v| format!("{}. {}", str_field(v, "title"), str_field(v, "text")))
        .collect();
    let queries: Vec<String> = read_jsonl(&queries_path)?
        .iter()
        .take(QUERIES)
        .map(|v| str_field(v, "text").to_owned())
        .collect();

    let first: Vec<&str> = passages.iter().take(PASSAGES).map(String::as_str).collect();
    // Passages of 170-200 tokens: the length the product issue's reference figures were
    // measured at (batches of 184-token chunks).
    let mid: Vec<&str> = passages
        .iter()
        .filter(|p| (170..=200).contains(&model.count_tokens(p)))
        .take(PASSAGES)
        .map(String::as_str)
        .collect();
    let long: Vec<&str> = passages
        .iter()
        .filter(|p| p.split_whitespace().count() >= LONG_MIN_WORDS)
        .take(PASSAGES)
        .map(String::as_str)
        .collect();

    // Warm up (thread pool start, allocator, caches).
    model.embed(&first[..16.min(first.len())])?;

    let first_stats = passage_speed(&model, &first)?;
    let mid_stats = passage_speed(&model, &mid)?;
    let long_stats = passage_speed(&model, &long)?;

    for q in queries.iter().take(5) {
        model.embed(&[q.as_str()])?;
    }
    let mut times = Vec::with_capacity(queries.len());
    for q in &queries {
        let t = Instant::now();
        let v = model.embed(&[q.as_str()])?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(v.len(), 1);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];

    let report = serde_json::json!({
        "model_load_ms": round(load_ms),
        "passages_first": first_stats,
        "passages_170_200_tokens": mid_stats,
        "passages_long": long_stats,
        "queries": times.len(),
        "query_median_ms": round(pct(0.5)),
        "query_p99_ms": round(pct(0.99)),
        "query_max_ms": round(pct(1.0)),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        // Which profile cannot be seen from here; debug assertions are on in the dev profile.
        "debug_assertions": cfg!(debug_assertions),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn passage_speed(
    model: &MiniLm,
    texts: &[&str],
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let tokens: usize = texts
        .iter()
        .map(|t| model.count_tokens(t).min(mtdesk_minilm::MAX_TOKENS))
        .sum();
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let t = Instant::now();
    let vectors = model.embed(texts)?;
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(vectors.len(), texts.len());
    let n = texts.len().max(1) as f64;
    Ok(serde_json::json!({
        "passages": texts.len(),
        "mean_words": round(words as f64 / n),
        "mean_tokens": round(tokens as f64 / n),
        "seconds": round(secs),
        "passages_per_s": round(texts.len() as f64 / secs),
        "tokens_per_s": (tokens as f64 / secs).round(),
    }))
}

fn read_jsonl(path: &Path) -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?)
}

fn str_field<'a>(v: &'a serde_json::Value, key: &str) -> &'a str {
    v.get(key).and_then(|s| s.as_str()).unwrap_or("")
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
