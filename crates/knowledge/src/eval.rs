//! `mtdesk admin eval retrieval DIR`: a labeled set (corpus.jsonl, queries.jsonl, qrels.tsv, as in
//! shared/bench-data/debian-faq-kb) ingested through the real pipeline — sources, job queue, extraction,
//! chunking, embedding, storage, index — into a throwaway chatbot, then every query run in each mode.
//! Documents are ranked by their best chunk.

use crate::fusion::Mode;
use crate::ingest::Ingestor;
use crate::metrics::{ndcg_at, percentile, recall_at};
use crate::{Knowledge, worker};
use anyhow::{Context, bail};
use mtdesk_domain::{ChatbotSettings, NewAccount, SourceId, SourceKind, SyncSchedule};
use mtdesk_storage::NewSource;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// Chunks retrieved per query before collapsing them to documents.
const CHUNK_DEPTH: usize = 50;

#[derive(serde::Deserialize)]
struct CorpusDoc {
    #[serde(alias = "_id")]
    id: String,
    #[serde(default)]
    title: String,
    text: String,
}

#[derive(serde::Deserialize)]
struct Query {
    #[serde(alias = "_id")]
    id: String,
    text: String,
}

/// A labeled set read from a directory.
pub struct Dataset {
    docs: Vec<CorpusDoc>,
    queries: Vec<Query>,
    qrels: HashMap<String, HashSet<String>>,
}

impl Dataset {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        let docs: Vec<CorpusDoc> = read("corpus.jsonl")?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("corpus.jsonl line {}", i + 1))
            })
            .collect::<anyhow::Result<_>>()?;
        let queries: Vec<Query> = read("queries.jsonl")?
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str(l).with_context(|| format!("queries.jsonl line {}", i + 1))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut qrels: HashMap<String, HashSet<String>> = HashMap::new();
        for (i, line) in read("qrels.tsv")?.lines().enumerate() {
            let cols: Vec<&str> = line.split('\t').map(str::trim).collect();
            if cols.len() < 3 || (i == 0 && cols[2].parse::<f64>().is_err()) {
                continue; // header or blank
            }
            let score: f64 = cols[2]
                .parse()
                .with_context(|| format!("qrels.tsv line {}: bad score {:?}", i + 1, cols[2]))?;
            if score > 0.0 {
                qrels
                    .entry(cols[0].to_string())
                    .or_default()
                    .insert(cols[1].to_string());
            }
        }
        if docs.is_empty() {
            bail!("corpus.jsonl has no documents");
        }
        if qrels.is_empty() {
            bail!("qrels.tsv has no relevant pairs");
        }
        Ok(Self {
            docs,
            queries,
            qrels,
        })
    }
}

/// Ingests the set into a new chatbot of a new account in `ingestor`'s store and measures every mode.
/// The store should be a throwaway one: the caller deletes it afterwards.
pub async fn run(
    data: &Dataset,
    ingestor: &Ingestor,
    knowledge: &Knowledge,
    alpha: f32,
) -> anyhow::Result<serde_json::Value> {
    run_with_sweep(data, ingestor, knowledge, alpha, &[]).await
}

/// Quality of one mode over the judged queries.
struct Measured {
    ndcg: f64,
    r5: f64,
    r10: f64,
    latencies: Vec<f64>,
    used: Mode,
}

async fn measure(
    data: &Dataset,
    knowledge: &Knowledge,
    bot: &mtdesk_domain::ChatbotId,
    doc_of: &HashMap<SourceId, String>,
    mode: Mode,
) -> anyhow::Result<Measured> {
    let judged: Vec<&Query> = data
        .queries
        .iter()
        .filter(|q| data.qrels.contains_key(&q.id))
        .collect();
    let (mut ndcg, mut r5, mut r10) = (0.0, 0.0, 0.0);
    let mut latencies = Vec::with_capacity(judged.len());
    let mut used = mode;
    for q in &judged {
        let t = Instant::now();
        let r = knowledge
            .retrieve(bot, &q.text, Some(mode), CHUNK_DEPTH)
            .await?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        used = r.mode;
        let mut seen = HashSet::new();
        let ranked: Vec<String> = r
            .hits
            .iter()
            .filter_map(|h| doc_of.get(&h.source_id).cloned())
            .filter(|d| seen.insert(d.clone()))
            .collect();
        let rel = &data.qrels[&q.id];
        ndcg += ndcg_at(&ranked, rel, 10);
        r5 += recall_at(&ranked, rel, 5);
        r10 += recall_at(&ranked, rel, 10);
    }
    let n = judged.len().max(1) as f64;
    latencies.sort_by(f64::total_cmp);
    Ok(Measured {
        ndcg: ndcg / n,
        r5: r5 / n,
        r10: r10 / n,
        latencies,
        used,
    })
}

/// [`run`], plus the hybrid's quality at each weight in `sweep` (for tuning; same ingest).
pub async fn run_with_sweep(
    data: &Dataset,
    ingestor: &Ingestor,
    knowledge: &Knowledge,
    alpha: f32,
    sweep: &[f32],
) -> anyhow::Result<serde_json::Value> {
    let store = &ingestor.store;
    let account = NewAccount::parse(
        "Evaluation",
        "eval@example.invalid",
        "Evaluation",
        "an evaluation-only password 1",
        true,
    )?;
    let account = store
        .insert_account(&account, "!no-login")
        .await
        .context("creating the evaluation account")?;
    let mut settings = ChatbotSettings::defaults();
    settings.name = "retrieval evaluation".into();
    let bot = store.insert_chatbot(&account.id, &settings).await?;
    let mut doc_of: HashMap<SourceId, String> = HashMap::new();
    let started = Instant::now();
    for d in &data.docs {
        // HTML keeps the title apart from the text whatever the text contains (Markdown would read a
        // passage starting with "# cd /tmp" as a heading).
        let title = escape_html(d.title.trim());
        let body = format!(
            "<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1><p>{}</p></body></html>",
            escape_html(&d.text)
        );
        let name = format!("{}.html", d.id);
        let id = SourceId::new();
        ingestor
            .files
            .write_source(&account.id, &id, body.as_bytes())?;
        let source = store
            .insert_source(
                &account.id,
                &bot.id,
                &NewSource {
                    id: id.clone(),
                    kind: SourceKind::File,
                    name: name.clone(),
                    doc_type: Some("html".into()),
                    byte_size: body.len() as i64,
                    sha256: None,
                    max_pages: 0,
                    max_depth: 0,
                    sync_schedule: SyncSchedule::Manual,
                },
            )
            .await?;
        doc_of.insert(source.id, d.id.clone());
    }
    let jobs = worker::drain(ingestor).await?;
    let ingest_s = started.elapsed().as_secs_f64();
    let failed: Vec<_> = store
        .list_sources(&account.id, &bot.id)
        .await?
        .into_iter()
        .filter(|s| s.status != mtdesk_domain::SourceStatus::Ready)
        .collect();
    if let Some(f) = failed.first() {
        bail!(
            "{} of {} documents failed to ingest; first: {}: {}",
            failed.len(),
            data.docs.len(),
            f.name,
            f.error.as_deref().unwrap_or("?")
        );
    }
    let index = knowledge.index(&bot.id).await?;
    let chunks = index.docs.len();
    let vectors = index
        .vectors
        .as_ref()
        .map(|v| v.count_present())
        .unwrap_or(0);
    let tuned = knowledge.clone().with_alpha(alpha);
    let mut modes = serde_json::Map::new();
    let judged = data
        .queries
        .iter()
        .filter(|q| data.qrels.contains_key(&q.id))
        .count();
    for mode in [Mode::Bm25, Mode::Vector, Mode::Hybrid] {
        let m = measure(data, &tuned, &bot.id, &doc_of, mode).await?;
        modes.insert(
            mode.as_str().into(),
            json!({
                "ndcg@10": round(m.ndcg),
                "recall@5": round(m.r5),
                "recall@10": round(m.r10),
                "mode_used": m.used.as_str(),
                "latency_ms": {"p50": round(percentile(&m.latencies, 50.0)), "p99": round(percentile(&m.latencies, 99.0))},
            }),
        );
    }
    let mut swept = Vec::new();
    for &a in sweep {
        let k = knowledge.clone().with_alpha(a);
        let m = measure(data, &k, &bot.id, &doc_of, Mode::Hybrid).await?;
        swept.push(
            json!({"alpha": round(f64::from(a)), "ndcg@10": round(m.ndcg),
            "recall@5": round(m.r5), "recall@10": round(m.r10)}),
        );
    }
    Ok(json!({
        "documents": data.docs.len(),
        "queries": judged,
        "chunks": chunks,
        "vectors": vectors,
        "embedder": index.model,
        "alpha": round(f64::from(alpha)),
        "ingest": {"seconds": round(ingest_s), "jobs": jobs, "chunks_per_second": round(chunks as f64 / ingest_s.max(1e-9))},
        "modes": modes,
        "alpha_sweep": swept,
    }))
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn round(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
