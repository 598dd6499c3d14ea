//! Retrieval benchmark (a bench binary: `cargo bench -p mtdesk --bench knowledge`).
//!
//! One command measures our retrieval next to its anchors, in the same run on the same machine:
//!
//! a. Quality: `mtdesk admin eval retrieval` in process (the real pipeline: sources, jobs, extraction,
//!    chunking, MiniLM embedding, SQLite, index) on the shared labelled set → nDCG@10, Recall@5/@10 per
//!    mode, ingest time and chunks/s.
//! b. Anchors: `bench/.venv/bin/python bench/anchors.py DATASET MODEL` — bm25s and sentence-transformers
//!    with the same MiniLM weights (see that script for exactly what it times). Without the venv
//!    (`bench/setup-anchors` creates it) the run goes on with our numbers only.
//! c. Speed on our side, timed the way the anchors are: the lexical leg's queries/s on one thread over
//!    (a)'s index; query encode median/p99 (one query at a time); passage encode passages/s on the same
//!    first 512 passages in batches of 32; an exact scan of 100,000 × 384 unit vectors per query on one
//!    thread; and the p99 of a hybrid query at 100,000 chunks including its embedding.
//! d. A table: ours, the anchor, the ratio, and whether the goal is met; then the machine and
//!    the date. The report is also written to `bench/last-run.txt`.
//!
//! Environment: `MTDESK_BENCH_DATASET` (default `../shared/bench-data/debian-faq-kb` from the workspace
//! root) and `MTDESK_MODEL_DIR` (default `data/models/all-MiniLM-L6-v2` in the workspace); relative paths
//! are taken from the workspace root. Bounded: 3–5 minutes on the 2-core reference machine (after the
//! build), most of it encoding the corpus once on each side.

use anyhow::Context;
use mtdesk_domain::EmbeddingChoice;
use mtdesk_knowledge::embed::{Embedder, LOCAL_MODEL_ID};
use mtdesk_knowledge::fusion::{self, Mode};
use mtdesk_knowledge::index::ChatbotIndex;
use mtdesk_knowledge::metrics::percentile;
use mtdesk_knowledge::{DEFAULT_ALPHA, rank_index, vectors};
use mtdesk_storage::IndexChunk;
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Passages timed for encode throughput, and the batch size: the same as `bench/anchors.py`.
const PASSAGE_ENCODE_N: usize = 512;
const BATCH_SIZE: usize = 32;
/// Queries encoded one at a time for the latency figures (after a few warm-up calls).
const QUERY_ENCODE_N: usize = 100;
const WARM_UP: usize = 5;
/// The lexical leg runs all queries again until this much time has passed.
const QPS_MIN: Duration = Duration::from_secs(1);
/// The synthetic large index: rows, and the width of all-MiniLM-L6-v2's vectors.
const BIG_ROWS: usize = 100_000;
const DIMS: usize = 384;
const SCAN_QUERIES: usize = 200;
const HYBRID_QUERIES: usize = 200;
const TOP_K: usize = 10;

/// The goals.
const GOAL_HYBRID_NDCG: f64 = 0.52;
const GOAL_HYBRID_RECALL10: f64 = 0.75;
const GOAL_QUERY_ENCODE_MS: f64 = 20.0;
const GOAL_SCAN_MS: f64 = 10.0;
const GOAL_P99_MS: f64 = 50.0;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    // As the binary does: one process-wide TLS provider (the embedders build an HTTP client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let started = Instant::now();
    let load_start = loadavg();
    let ws = workspace_root()?;
    let data_dir = resolve(
        &ws,
        std::env::var("MTDESK_BENCH_DATASET").ok(),
        "../shared/bench-data/debian-faq-kb",
    );
    let model_dir = resolve(
        &ws,
        std::env::var("MTDESK_MODEL_DIR").ok(),
        "data/models/all-MiniLM-L6-v2",
    );
    let texts = Texts::load(&data_dir)?;
    eprintln!(
        "knowledge bench: {} passages, {} judged queries from {}; model {}",
        texts.passages.len(),
        texts.queries.len(),
        data_dir.display(),
        model_dir.display()
    );

    // a. Our evaluation, exactly as `mtdesk admin eval retrieval`.
    eprintln!("(a) our evaluation: ingesting through the real pipeline (encodes the corpus) ...");
    let ours = our_eval(&data_dir, &model_dir).await?;
    eprintln!(
        "(a) done: {} chunks in {:.1} s",
        ours.index.docs.len(),
        ours.report["ingest"]["seconds"]
            .as_f64()
            .unwrap_or(f64::NAN)
    );

    // b. The anchors, in the same run.
    let anchors = run_anchors(&ws, &data_dir, &model_dir);

    // c. Speed on our side.
    eprintln!("(c) lexical leg queries/s on one thread ...");
    let lexical = lexical_qps(&ours.index, &texts.queries);
    let encode = match &ours.embedder {
        Some(e) => {
            eprintln!("(c) query encode ...");
            let q = query_encode(e, &texts.queries).await?;
            eprintln!("(c) passage encode of the first {PASSAGE_ENCODE_N} passages ...");
            let p = passage_encode(e, &texts.passages).await?;
            Some((q, p))
        }
        None => None,
    };
    eprintln!("(c) building the synthetic {BIG_ROWS}-chunk index ...");
    let big = big_index(&texts.passages)?;
    eprintln!("(c) exact vector scan ...");
    let scan = exact_scan(&big.index)?;
    let hybrid = match &ours.embedder {
        Some(e) => {
            eprintln!("(c) hybrid queries at {BIG_ROWS} chunks including the query embedding ...");
            Some(hybrid_latency(e, &big.index, &texts.queries).await?)
        }
        None => None,
    };

    // d. The report.
    let report = Report {
        ours: &ours,
        anchors: &anchors,
        lexical: &lexical,
        encode: encode.as_ref(),
        big: &big,
        scan: &scan,
        hybrid: hybrid.as_ref(),
        load_start,
        load_end: loadavg(),
        elapsed: started.elapsed(),
        data_dir: &data_dir,
        model_dir: &model_dir,
    }
    .render();
    println!("{report}");
    let out = ws.join("bench").join("last-run.txt");
    std::fs::create_dir_all(ws.join("bench")).context("creating bench/")?;
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("report written to {}", out.display());
    Ok(())
}

/// The workspace root: two levels above this crate's manifest.
fn workspace_root() -> anyhow::Result<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    dir.canonicalize()
        .with_context(|| format!("resolving the workspace root {}", dir.display()))
}

fn resolve(ws: &Path, var: Option<String>, default: &str) -> PathBuf {
    let p = PathBuf::from(var.unwrap_or_else(|| default.to_string()));
    let p = if p.is_absolute() { p } else { ws.join(p) };
    p.canonicalize().unwrap_or(p)
}

/// The set's texts, as both sides embed and query them.
struct Texts {
    /// title + ". " + text (text alone without a title), in corpus order.
    passages: Vec<String>,
    /// The judged queries' texts, in file order.
    queries: Vec<String>,
}

impl Texts {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .with_context(|| format!("reading {}", dir.join(name).display()))
        };
        let judged: HashSet<String> = read("qrels.tsv")?
            .lines()
            .filter_map(|l| {
                let cols: Vec<&str> = l.split('\t').map(str::trim).collect();
                (cols.len() >= 3 && cols[2].parse::<f64>().is_ok_and(|s| s > 0.0))
                    .then(|| cols[0].to_string())
            })
            .collect();
        let mut passages = Vec::new();
        for (i, line) in read("corpus.jsonl")?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("corpus.jsonl line {}", i + 1))?;
            let title = v["title"].as_str().unwrap_or("").trim();
            let text = v["text"].as_str().unwrap_or("");
            passages.push(if title.is_empty() {
                text.to_string()
            } else {
                format!("{title}. {text}")
            });
        }
        let mut queries = Vec::new();
        for (i, line) in read("queries.jsonl")?.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("queries.jsonl line {}", i + 1))?;
            let id = v["id"].as_str().or(v["_id"].as_str()).unwrap_or("");
            if judged.contains(id) {
                queries.push(v["text"].as_str().unwrap_or("").to_string());
            }
        }
        anyhow::ensure!(
            !passages.is_empty() && !queries.is_empty(),
            "{} has no passages or no judged queries",
            dir.display()
        );
        Ok(Self { passages, queries })
    }
}

struct OurEval {
    report: Value,
    /// The evaluation chatbot's index (the lexical queries/s run over it).
    index: Arc<ChatbotIndex>,
    embedder: Option<Embedder>,
}

/// `mtdesk admin eval retrieval` (crates/mtdesk/src/main.rs, `eval_retrieval`) in process: a throwaway
/// SQLite database and data directory, the settings' embedders, the real ingest pipeline.
async fn our_eval(data_dir: &Path, model_dir: &Path) -> anyhow::Result<OurEval> {
    let data = mtdesk_knowledge::eval::Dataset::load(data_dir)?;
    let tmp = std::env::temp_dir().join(format!("mtdesk-bench-knowledge-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = async {
        let mut vars = BTreeMap::new();
        vars.insert("MTDESK_DATA_DIR".to_string(), tmp.display().to_string());
        vars.insert("MTDESK_MODEL_DIR".to_string(), model_dir.display().to_string());
        let settings =
            mtdesk::settings::Settings::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
        let store = mtdesk_storage::Store::open(&mtdesk_storage::DatabaseUrl::Sqlite(
            tmp.join("eval.sqlite"),
        ))
        .await?;
        let embedders = mtdesk::embedders(&settings);
        if let Some(why) = embedders.local_missing() {
            eprintln!(
                "knowledge bench: note: no local embedding model ({why}); the vector leg and the encode \
                 timings are skipped. Run scripts/fetch-model."
            );
        }
        let embedder = embedders.for_choice(&EmbeddingChoice::Local).ok();
        let knowledge = mtdesk_knowledge::Knowledge::new(store.clone(), embedders.clone());
        let ingestor = mtdesk_knowledge::ingest::Ingestor {
            store: store.clone(),
            files: mtdesk_storage::FileStore::new(&tmp),
            embedders,
            crawl: mtdesk::crawl_config(&settings),
            limits: mtdesk_extract::Limits::default(),
            progress: None,
            // A throwaway evaluation account: no plan applies.
            storage_budget: None,
        };
        let report =
            mtdesk_knowledge::eval::run(&data, &ingestor, &knowledge, DEFAULT_ALPHA).await;
        // The evaluation's chatbot is the only one in this store.
        let index = async {
            let account = store.find_account_by_email("eval@example.invalid").await?;
            let bot = store
                .list_chatbots(&account.id)
                .await?
                .into_iter()
                .next()
                .context("the evaluation chatbot is missing")?;
            anyhow::Ok(knowledge.index(&bot.id).await?)
        }
        .await;
        store.close().await;
        anyhow::Ok(OurEval {
            report: report?,
            index: index?,
            embedder,
        })
    }
    .await;
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// Runs `bench/anchors.py`; `Err` says why there are no anchor numbers (the run goes on without them).
fn run_anchors(ws: &Path, data_dir: &Path, model_dir: &Path) -> Result<Value, String> {
    let python = ws.join("bench/.venv/bin/python");
    let script = ws.join("bench/anchors.py");
    if !python.exists() {
        let why = format!(
            "{} is missing: create it with `bench/setup-anchors` (python3 -m venv bench/.venv && \
             bench/.venv/bin/pip install -r bench/requirements.txt); reporting our numbers only",
            python.display()
        );
        eprintln!("(b) anchors skipped: {why}");
        return Err(why);
    }
    eprintln!("(b) anchors: {} {} ...", python.display(), script.display());
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(data_dir)
        .arg(model_dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", python.display()))?;
    if !out.status.success() {
        let why = format!("bench/anchors.py failed ({})", out.status);
        eprintln!("(b) {why}");
        return Err(why);
    }
    serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("bench/anchors.py printed no JSON: {e}"))
}

struct Qps {
    queries: usize,
    seconds: f64,
    chunks: usize,
}

impl Qps {
    fn per_second(&self) -> f64 {
        self.queries as f64 / self.seconds.max(1e-9)
    }
}

/// The lexical leg alone (analysis, BM25, top 10) on this thread, over every judged query, repeated
/// until [`QPS_MIN`] has passed — bm25s is timed the same way.
fn lexical_qps(index: &ChatbotIndex, queries: &[String]) -> Qps {
    for q in queries.iter().take(10) {
        black_box(rank_index(index, q, None, Mode::Bm25, TOP_K, DEFAULT_ALPHA));
    }
    let t = Instant::now();
    let mut done = 0;
    loop {
        for q in queries {
            black_box(rank_index(index, q, None, Mode::Bm25, TOP_K, DEFAULT_ALPHA));
        }
        done += queries.len();
        if t.elapsed() >= QPS_MIN {
            break;
        }
    }
    Qps {
        queries: done,
        seconds: t.elapsed().as_secs_f64(),
        chunks: index.docs.len(),
    }
}

/// Sorted latencies in milliseconds.
struct Latency(Vec<f64>);

impl Latency {
    fn new(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self(v)
    }
    fn p50(&self) -> f64 {
        percentile(&self.0, 50.0)
    }
    fn p99(&self) -> f64 {
        percentile(&self.0, 99.0)
    }
    fn n(&self) -> usize {
        self.0.len()
    }
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// One query at a time through the product's path (`Embedder::embed_one`).
async fn query_encode(e: &Embedder, queries: &[String]) -> anyhow::Result<Latency> {
    for q in queries.iter().take(WARM_UP) {
        e.embed_one(q).await?;
    }
    let mut lat = Vec::with_capacity(QUERY_ENCODE_N);
    for q in queries.iter().cycle().take(QUERY_ENCODE_N) {
        let t = Instant::now();
        black_box(e.embed_one(q).await?);
        lat.push(ms(t));
    }
    Ok(Latency::new(lat))
}

struct Throughput {
    passages: usize,
    seconds: f64,
}

impl Throughput {
    fn per_second(&self) -> f64 {
        self.passages as f64 / self.seconds.max(1e-9)
    }
}

/// The first [`PASSAGE_ENCODE_N`] passages in batches of [`BATCH_SIZE`] (as ingestion embeds), after one
/// warm-up batch.
async fn passage_encode(e: &Embedder, passages: &[String]) -> anyhow::Result<Throughput> {
    let first = &passages[..passages.len().min(PASSAGE_ENCODE_N)];
    e.embed(first.iter().take(BATCH_SIZE).cloned().collect())
        .await?;
    let t = Instant::now();
    for batch in first.chunks(BATCH_SIZE) {
        black_box(e.embed(batch.to_vec()).await?);
    }
    Ok(Throughput {
        passages: first.len(),
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// splitmix64: a tiny deterministic generator, so every run scans the same synthetic data.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
    /// A random direction (normalised Gaussian), unit length like MiniLM's vectors.
    fn unit_vector(&mut self, dims: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dims)
            .map(|_| {
                let (a, b) = (self.unit(), self.unit());
                ((-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()) as f32
            })
            .collect();
        mtdesk_knowledge::embed::normalize(v)
    }
}

struct BigIndex {
    index: ChatbotIndex,
    build_seconds: f64,
    words: usize,
}

/// [`BIG_ROWS`] synthetic chunks: lengths drawn from the real passages, words drawn from the corpus's
/// running text (so term frequencies — and BM25's posting lists — follow the corpus's), titles from the
/// corpus, and random unit vectors as if embedded by the local model.
fn big_index(passages: &[String]) -> anyhow::Result<BigIndex> {
    let words: Vec<&str> = passages.iter().flat_map(|p| p.split_whitespace()).collect();
    let lengths: Vec<usize> = passages
        .iter()
        .map(|p| p.split_whitespace().count().max(1))
        .collect();
    anyhow::ensure!(!words.is_empty(), "the corpus has no words");
    let mut rng = Rng(0x5EED_0FB1_61DE);
    let sources: Vec<mtdesk_domain::SourceId> = (0..BIG_ROWS / 50)
        .map(|_| mtdesk_domain::SourceId::new())
        .collect();
    let mut total_words = 0;
    let chunks: Vec<IndexChunk> = (0..BIG_ROWS)
        .map(|i| {
            let len = lengths[rng.below(lengths.len())];
            total_words += len;
            let mut text = String::with_capacity(len * 8);
            for w in 0..len {
                if w > 0 {
                    text.push(' ');
                }
                text.push_str(words[rng.below(words.len())]);
            }
            IndexChunk {
                id: mtdesk_domain::ChunkId::new(),
                source_id: sources[i % sources.len()].clone(),
                source_name: format!("synthetic-{}.html", i % sources.len()),
                title: String::new(),
                heading: String::new(),
                url: None,
                page: None,
                text,
                embedding: Some(vectors::to_bytes(&rng.unit_vector(DIMS))),
                embed_model: Some(LOCAL_MODEL_ID.to_string()),
            }
        })
        .collect();
    let t = Instant::now();
    let index = ChatbotIndex::build(
        1,
        chunks,
        mtdesk_domain::EmbeddingChoice::Local,
        Some(LOCAL_MODEL_ID),
    );
    Ok(BigIndex {
        index,
        build_seconds: t.elapsed().as_secs_f64(),
        words: total_words,
    })
}

/// Cosine of a random unit query with every row, then the top 10: one query at a time on this thread.
fn exact_scan(index: &ChatbotIndex) -> anyhow::Result<Latency> {
    let v = index
        .vectors
        .as_ref()
        .context("the synthetic index has no vectors")?;
    let mut rng = Rng(42);
    let queries: Vec<Vec<f32>> = (0..SCAN_QUERIES + WARM_UP)
        .map(|_| rng.unit_vector(v.dims()))
        .collect();
    let mut scores = vec![0.0f32; v.rows()];
    let mut lat = Vec::with_capacity(SCAN_QUERIES);
    for (i, q) in queries.iter().enumerate() {
        let t = Instant::now();
        v.score_into(q, &mut scores);
        black_box(fusion::top_k(&scores, TOP_K, -1.0));
        if i >= WARM_UP {
            lat.push(ms(t));
        }
    }
    Ok(Latency::new(lat))
}

struct HybridLatency {
    total: Latency,
    embed: Latency,
    rank: Latency,
}

/// What a chatbot with 100k chunks does per question: embed it, then rank both legs and fuse.
async fn hybrid_latency(
    e: &Embedder,
    index: &ChatbotIndex,
    queries: &[String],
) -> anyhow::Result<HybridLatency> {
    let (mut total, mut embed, mut rank) = (Vec::new(), Vec::new(), Vec::new());
    for (i, q) in queries
        .iter()
        .cycle()
        .take(HYBRID_QUERIES + WARM_UP)
        .enumerate()
    {
        let t = Instant::now();
        let v = e.embed_one(q).await?;
        let embedded = ms(t);
        let r = Instant::now();
        let (hits, used) = rank_index(index, q, Some(&v), Mode::Hybrid, TOP_K, DEFAULT_ALPHA);
        let ranked = ms(r);
        let all = ms(t);
        anyhow::ensure!(
            used == Mode::Hybrid,
            "the synthetic index ranked in {used:?}"
        );
        black_box(hits);
        if i >= WARM_UP {
            total.push(all);
            embed.push(embedded);
            rank.push(ranked);
        }
    }
    Ok(HybridLatency {
        total: Latency::new(total),
        embed: Latency::new(embed),
        rank: Latency::new(rank),
    })
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// UTC date and time, without a date crate (days-to-civil, proleptic Gregorian).
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

/// One line of the table.
struct Row {
    what: String,
    ours: Option<f64>,
    anchor: Option<f64>,
    decimals: usize,
    /// The figure for the anchor, printed for reference only (never used in a verdict).
    reference: &'static str,
    goal: String,
    met: Option<bool>,
}

struct Report<'a> {
    ours: &'a OurEval,
    anchors: &'a Result<Value, String>,
    lexical: &'a Qps,
    encode: Option<&'a (Latency, Throughput)>,
    big: &'a BigIndex,
    scan: &'a Latency,
    hybrid: Option<&'a HybridLatency>,
    load_start: String,
    load_end: String,
    elapsed: Duration,
    data_dir: &'a Path,
    model_dir: &'a Path,
}

impl Report<'_> {
    fn render(&self) -> String {
        let m = &self.ours.report["modes"];
        let our = |mode: &str, metric: &str| m[mode][metric].as_f64();
        let a = self.anchors.as_ref().ok();
        let anchor = |path: &[&str]| {
            a.and_then(|v| path.iter().try_fold(v, |v, k| v.get(*k)))
                .and_then(Value::as_f64)
        };
        let at_least = |x: Option<f64>, y: Option<f64>| match (x, y) {
            (Some(x), Some(y)) => Some(x >= y),
            _ => None,
        };
        let at_most = |x: Option<f64>, limit: f64| x.map(|x| x <= limit);

        let (h_ndcg, b_ndcg, v_ndcg) = (
            our("hybrid", "ndcg@10"),
            our("bm25", "ndcg@10"),
            our("vector", "ndcg@10"),
        );
        let best_leg = match (b_ndcg, v_ndcg) {
            (Some(b), Some(v)) => Some(b.max(v)),
            (b, v) => b.or(v),
        };
        let hybrid_used = m["hybrid"]["mode_used"].as_str().unwrap_or("?");
        let mut rows = vec![
            Row {
                what: format!("hybrid nDCG@10 (ranked as {hybrid_used}; anchor: RRF)"),
                ours: h_ndcg,
                anchor: anchor(&["rrf", "ndcg@10"]),
                decimals: 4,
                reference: "0.509",
                goal: format!(
                    "≥ best own leg ({}) and ≥ {GOAL_HYBRID_NDCG}",
                    fmt(best_leg, 4)
                ),
                met: match (h_ndcg, best_leg) {
                    (Some(h), Some(b)) => Some(h >= b && h >= GOAL_HYBRID_NDCG),
                    _ => None,
                },
            },
            Row {
                what: "hybrid Recall@10 (anchor: RRF)".into(),
                ours: our("hybrid", "recall@10"),
                anchor: anchor(&["rrf", "recall@10"]),
                decimals: 4,
                reference: "0.674",
                goal: format!("≥ {GOAL_HYBRID_RECALL10}"),
                met: our("hybrid", "recall@10").map(|r| r >= GOAL_HYBRID_RECALL10),
            },
            Row {
                what: "hybrid Recall@5 (anchor: RRF)".into(),
                ours: our("hybrid", "recall@5"),
                anchor: anchor(&["rrf", "recall@5"]),
                decimals: 4,
                reference: "",
                goal: String::new(),
                met: None,
            },
            Row {
                what: "lexical nDCG@10 (anchor: bm25s)".into(),
                ours: b_ndcg,
                anchor: anchor(&["bm25s", "ndcg@10"]),
                decimals: 4,
                reference: "0.376",
                goal: "≥ 1× bm25s".into(),
                met: at_least(b_ndcg, anchor(&["bm25s", "ndcg@10"])),
            },
            Row {
                what: "lexical Recall@10 (anchor: bm25s)".into(),
                ours: our("bm25", "recall@10"),
                anchor: anchor(&["bm25s", "recall@10"]),
                decimals: 4,
                reference: "0.537",
                goal: String::new(),
                met: None,
            },
            Row {
                what: "vector nDCG@10 (anchor: sentence-transformers)".into(),
                ours: v_ndcg,
                anchor: anchor(&["dense", "ndcg@10"]),
                decimals: 4,
                reference: "0.506",
                goal: String::new(),
                met: None,
            },
            Row {
                what: "vector Recall@10 (anchor: sentence-transformers)".into(),
                ours: our("vector", "recall@10"),
                anchor: anchor(&["dense", "recall@10"]),
                decimals: 4,
                reference: "0.727",
                goal: String::new(),
                met: None,
            },
            Row {
                what: format!(
                    "lexical queries/s, 1 thread ({} chunks; anchor: bm25s batch)",
                    self.lexical.chunks
                ),
                ours: Some(self.lexical.per_second()),
                anchor: anchor(&["bm25s", "queries_per_second"]),
                decimals: 0,
                reference: "4000–6000",
                goal: "≥ 1× bm25s".into(),
                met: at_least(
                    Some(self.lexical.per_second()),
                    anchor(&["bm25s", "queries_per_second"]),
                ),
            },
            Row {
                what: "  same, anchor: bm25s retrieval alone (queries pre-tokenised)".into(),
                ours: Some(self.lexical.per_second()),
                anchor: anchor(&["bm25s", "retrieve_only_queries_per_second"]),
                decimals: 0,
                reference: "",
                goal: "(stricter) ≥ 1× bm25s".into(),
                met: at_least(
                    Some(self.lexical.per_second()),
                    anchor(&["bm25s", "retrieve_only_queries_per_second"]),
                ),
            },
            Row {
                what: "  same, anchor: bm25s one query per call".into(),
                ours: Some(self.lexical.per_second()),
                anchor: anchor(&["bm25s", "one_query_per_call_queries_per_second"]),
                decimals: 0,
                reference: "",
                goal: String::new(),
                met: None,
            },
        ];
        let (q_enc, p_enc) = match self.encode {
            Some((q, p)) => (Some(q), Some(p)),
            None => (None, None),
        };
        let pps = p_enc.map(Throughput::per_second);
        rows.push(Row {
            what: format!(
                "passage encode passages/s (first {} passages, batch {BATCH_SIZE})",
                p_enc.map(|p| p.passages).unwrap_or(PASSAGE_ENCODE_N)
            ),
            ours: pps,
            anchor: anchor(&["dense", "passage_encode", "passages_per_second"]),
            decimals: 1,
            reference: "14–22",
            goal: "≥ 1× sentence-transformers".into(),
            met: at_least(
                pps,
                anchor(&["dense", "passage_encode", "passages_per_second"]),
            ),
        });
        let q50 = q_enc.map(Latency::p50);
        rows.push(Row {
            what: format!(
                "query encode median ms ({} queries, one at a time)",
                q_enc.map(Latency::n).unwrap_or(QUERY_ENCODE_N)
            ),
            ours: q50,
            anchor: anchor(&["dense", "query_encode_ms", "median"]),
            decimals: 2,
            reference: "~15",
            goal: format!("≤ {GOAL_QUERY_ENCODE_MS} ms"),
            met: at_most(q50, GOAL_QUERY_ENCODE_MS),
        });
        rows.push(Row {
            what: "query encode p99 ms".into(),
            ours: q_enc.map(Latency::p99),
            anchor: anchor(&["dense", "query_encode_ms", "p99"]),
            decimals: 2,
            reference: "",
            goal: String::new(),
            met: None,
        });
        rows.push(Row {
            what: format!(
                "exact scan {BIG_ROWS} × {DIMS} + top {TOP_K}, median ms (1 thread, {} queries)",
                self.scan.n()
            ),
            ours: Some(self.scan.p50()),
            anchor: None,
            decimals: 2,
            reference: "",
            goal: format!("≤ {GOAL_SCAN_MS} ms"),
            met: Some(self.scan.p50() <= GOAL_SCAN_MS),
        });
        rows.push(Row {
            what: "exact scan p99 ms".into(),
            ours: Some(self.scan.p99()),
            anchor: None,
            decimals: 2,
            reference: "",
            goal: String::new(),
            met: None,
        });
        let h99 = self.hybrid.map(|h| h.total.p99());
        rows.push(Row {
            what: format!(
                "hybrid query p99 ms at {BIG_ROWS} chunks incl. embedding ({} queries)",
                self.hybrid.map(|h| h.total.n()).unwrap_or(HYBRID_QUERIES)
            ),
            ours: h99,
            anchor: None,
            decimals: 2,
            reference: "",
            goal: format!("≤ {GOAL_P99_MS} ms"),
            met: at_most(h99, GOAL_P99_MS),
        });

        let mut s = String::new();
        let _ = writeln!(
            s,
            "MT Desk retrieval benchmark — `cargo bench -p mtdesk --bench knowledge`"
        );
        let _ = writeln!(
            s,
            "date {}; machine: {} cores, {}; load average {} at start, {} at end; run took {:.1} min",
            utc_now(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            cpu_model(),
            self.load_start,
            self.load_end,
            self.elapsed.as_secs_f64() / 60.0
        );
        let _ = writeln!(
            s,
            "dataset {} ({} documents, {} judged queries, {} chunks); model {}",
            self.data_dir.display(),
            self.ours.report["documents"],
            self.ours.report["queries"],
            self.ours.report["chunks"],
            self.model_dir.display()
        );
        match self.anchors {
            Ok(v) => {
                let _ = writeln!(s, "anchors measured in this run: {}", v["versions"]);
            }
            Err(why) => {
                let _ = writeln!(s, "anchors NOT measured: {why}");
            }
        }
        let _ = writeln!(
            s,
            "ratio = ours / anchor (higher is better for scores and rates, lower for ms); \
             'issue ref' = the issue's anchor figure, for reference only"
        );
        let _ = writeln!(s);
        let w = rows
            .iter()
            .map(|r| r.what.chars().count())
            .max()
            .unwrap_or(10);
        let _ = writeln!(
            s,
            "{:<w$}  {:>9}  {:>9}  {:>6}  {:>9}  {:<40} verdict",
            "measure", "ours", "anchor", "ratio", "issue ref", "goal"
        );
        for r in &rows {
            let ratio = match (r.ours, r.anchor) {
                (Some(o), Some(a)) if a != 0.0 => format!("{:.2}", o / a),
                _ => "—".into(),
            };
            let verdict = match (r.goal.is_empty(), r.met) {
                (true, _) => "",
                (false, Some(true)) => "met",
                (false, Some(false)) => "NOT MET",
                (false, None) => "unknown (no anchor)",
            };
            let _ = writeln!(
                s,
                "{:<w$}  {:>9}  {:>9}  {:>6}  {:>9}  {:<40} {}",
                r.what,
                fmt(r.ours, r.decimals),
                fmt(r.anchor, r.decimals),
                ratio,
                r.reference,
                pad(&r.goal, 40),
                verdict
            );
        }
        let _ = writeln!(s);
        let ingest = &self.ours.report["ingest"];
        let _ = writeln!(
            s,
            "ingest (extract, chunk, embed, store): {} documents → {} chunks in {} s, {} chunks/s, {} jobs",
            self.ours.report["documents"],
            self.ours.report["chunks"],
            ingest["seconds"],
            ingest["chunks_per_second"],
            ingest["jobs"]
        );
        if let Some(v) = a {
            let _ = writeln!(
                s,
                "sentence-transformers encoded the whole corpus in {} s; bm25s indexed it in {} s",
                v["dense"]["corpus_encode_seconds"], v["bm25s"]["index_seconds"]
            );
        }
        for mode in ["bm25", "vector", "hybrid"] {
            let _ = writeln!(
                s,
                "eval {mode:<6}: {} (latency through Knowledge::retrieve, depth 50)",
                m[mode]
            );
        }
        let _ = writeln!(
            s,
            "lexical leg: {} queries in {:.2} s over {} chunks",
            self.lexical.queries, self.lexical.seconds, self.lexical.chunks
        );
        if let Some((q, p)) = self.encode {
            let _ = writeln!(
                s,
                "query encode: p50 {:.2} ms, p99 {:.2} ms; passage encode: {} passages in {:.2} s",
                q.p50(),
                q.p99(),
                p.passages,
                p.seconds
            );
        }
        let _ = writeln!(
            s,
            "synthetic index: {BIG_ROWS} chunks, {} words, {} × {} vectors, built in {:.1} s",
            self.big.words,
            self.big
                .index
                .vectors
                .as_ref()
                .map(|v| v.rows())
                .unwrap_or(0),
            self.big
                .index
                .vectors
                .as_ref()
                .map(|v| v.dims())
                .unwrap_or(0),
            self.big.build_seconds
        );
        let _ = writeln!(
            s,
            "exact scan: p50 {:.2} ms, p99 {:.2} ms",
            self.scan.p50(),
            self.scan.p99()
        );
        if let Some(h) = self.hybrid {
            let _ = writeln!(
                s,
                "hybrid at {BIG_ROWS}: total p50 {:.2} / p99 {:.2} ms = embed p50 {:.2} / p99 {:.2} ms + rank p50 {:.2} / p99 {:.2} ms",
                h.total.p50(),
                h.total.p99(),
                h.embed.p50(),
                h.embed.p99(),
                h.rank.p50(),
                h.rank.p99()
            );
        }
        let _ = writeln!(s, "our eval JSON: {}", self.ours.report);
        if let Some(v) = a {
            let _ = writeln!(s, "anchors JSON: {v}");
        }
        s
    }
}

fn fmt(x: Option<f64>, decimals: usize) -> String {
    x.map(|x| format!("{x:.decimals$}"))
        .unwrap_or_else(|| "—".into())
}

/// Pads by characters (the goals contain multi-byte symbols like ≥).
fn pad(s: &str, width: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(n)))
}
