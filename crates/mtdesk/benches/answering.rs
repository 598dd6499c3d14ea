//! Answering overhead (a bench binary: `cargo bench -p mtdesk --bench answering`).
//!
//! Our overhead per answer — retrieval over the knowledge base, prompt assembly, provider resolution
//! (sealed-key lookup), the provider call and recording the exchange — next to a bare reqwest call to the
//! same fake provider (external-apis.md §7.6, answering at once) in the same run. The knowledge base holds
//! 10,000 Q&A pairs (document chunks arrive with the knowledge-base issue; this measures the same path).
//! Reported: p50/p99 of both, the difference, and answers/s at concurrency 8. Loopback only, bounded.

use mtdesk::settings::Settings;
use mtdesk_domain::{ChatbotDraft, ChatbotSettings, NewAccount, Provider, QaPairInput};
use mtdesk_testkit::fake_llm::{FakeConfig, FakeLlm};
use std::collections::BTreeMap;
use std::time::Instant;

const PAIRS: usize = 10_000;
const SAMPLES: usize = 400;
const THROUGHPUT_ANSWERS: usize = 800;
const CONCURRENCY: usize = 8;
const KEY: &str = "sk-or-v1-bench-0000000000";

const TOPICS: &[&str] = &[
    "refund",
    "shipping",
    "delivery",
    "warranty",
    "exchange",
    "invoice",
    "discount",
    "membership",
    "pickup",
    "repair",
    "sizes",
    "colours",
    "payment",
    "gift",
    "order",
    "tracking",
    "return",
    "account",
    "password",
    "newsletter",
];

const CHUNKS: usize = 10_000;

/// The same answers over 10,000 document chunks (no Q&A pairs): hybrid retrieval, passages in the prompt.
/// Vectors are random unit vectors stored as the local model's (ranking quality is not measured here, only
/// time); the query encode is timed on its own and subtracted.
async fn documents(
    state: &mtdesk_http::AppState,
    account: &mtdesk_domain::AccountId,
    questions: &[String],
    bare_p50: f64,
) -> anyhow::Result<()> {
    let bot_settings = ChatbotDraft {
        name: Some("Docs bot"),
        provider: Some("openrouter"),
        model: Some("fake-model"),
        knowledge_only: Some(false),
        ..Default::default()
    }
    .apply(&ChatbotSettings::defaults())
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bot = state.store.insert_chatbot(account, &bot_settings).await?;
    let source = state
        .store
        .insert_source(
            account,
            &bot.id,
            &mtdesk_storage::NewSource {
                id: mtdesk_domain::SourceId::new(),
                kind: mtdesk_domain::SourceKind::File,
                name: "handbook.txt".into(),
                doc_type: Some("txt".into()),
                byte_size: 0,
                sha256: None,
                max_pages: 0,
                max_depth: 0,
                sync_schedule: mtdesk_domain::SyncSchedule::Manual,
            },
        )
        .await?;
    let mut x: u64 = 42;
    let chunks: Vec<mtdesk_storage::NewChunk> = (0..CHUNKS)
        .map(|n| {
            let t = TOPICS[n % TOPICS.len()];
            let u = TOPICS[(n / TOPICS.len()) % TOPICS.len()];
            let v: Vec<f32> = (0..384)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
                })
                .collect();
            let v = mtdesk_knowledge::embed::normalize(v);
            mtdesk_storage::NewChunk {
                title: "Handbook".into(),
                heading: format!("{t} > {u}"),
                url: None,
                page: Some((n / 3) as i64 + 1),
                text: format!(
                    "Our {t} policy for {u} case {n}: customers contact us within {} days and we answer by email.",
                    n % 60 + 1
                ),
                text_hash: format!("{n}"),
                embedding: Some(mtdesk_knowledge::vectors::to_bytes(&v)),
                embed_model: Some(mtdesk_knowledge::embed::LOCAL_MODEL_ID.into()),
            }
        })
        .collect();
    state
        .store
        .replace_source_content(&source.id, &chunks, None)
        .await?;
    let knowledge = &state.knowledge.knowledge;
    let embedder = knowledge
        .embedders()
        .for_choice(&mtdesk_domain::EmbeddingChoice::Local);
    let mut encode = Vec::new();
    if let Ok(e) = &embedder {
        for q in questions {
            let t = Instant::now();
            e.embed_one(q).await?;
            encode.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    // Warm the index (built once per knowledge version).
    knowledge.retrieve(&bot.id, "warm up", None, 3).await?;
    let mut ours = Vec::with_capacity(questions.len());
    let mut with_passages = 0;
    for q in questions {
        let t = Instant::now();
        let a = state
            .answerer
            .answer(
                &bot,
                mtdesk_ai::AnswerRequest {
                    message: q,
                    conversation: None,
                    channel: "api",
                    inbound: None,
                },
                None,
            )
            .await?;
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            a.answered_by == "openrouter",
            "fell back: {:?}",
            a.fallbacks
        );
        if a.sources.iter().any(|s| s.kind == "chunk") {
            with_passages += 1;
        }
    }
    let (o50, o99) = summary(ours);
    let (e50, e99) = if encode.is_empty() {
        (0.0, 0.0)
    } else {
        summary(encode)
    };
    println!(
        "documents: {CHUNKS} chunks, {} embedder; {with_passages} of {} answers had passages in the prompt",
        if embedder.is_ok() {
            "local MiniLM"
        } else {
            "no (lexical only)"
        },
        questions.len()
    );
    println!("full answer (10k chunks): p50 {o50:.2} ms, p99 {o99:.2} ms");
    println!("query encode (counted separately): p50 {e50:.2} ms, p99 {e99:.2} ms");
    println!(
        "our overhead (10k chunks, without the query encode): p50 {:.2} ms",
        o50 - bare_p50 - e50
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (percentile(&v, 0.5), percentile(&v, 0.99))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fake = FakeLlm::start(FakeConfig::new(Provider::Openrouter, Some(KEY))).await;
    let dir = std::env::temp_dir().join(format!("mtdesk-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut vars = BTreeMap::new();
    vars.insert("MTDESK_DATA_DIR".to_string(), dir.display().to_string());
    vars.insert(
        "MTDESK_SECRET_KEY".to_string(),
        "bench-secret-key-0123456789abcdef0123456789".to_string(),
    );
    vars.insert("MTDESK_OPENROUTER_BASE_URL".to_string(), fake.base_url());
    vars.insert("MTDESK_OPENROUTER_API_KEY".to_string(), KEY.to_string());
    // The offline embedder, when fetched (scripts/fetch-model): document questions then include a query
    // encode, reported on its own line.
    let model =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/models/all-MiniLM-L6-v2");
    vars.insert("MTDESK_MODEL_DIR".to_string(), model.display().to_string());
    let settings = Settings::from_vars(&vars).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state = mtdesk::build_state(&settings).await?;

    let new = NewAccount::parse(
        "Bench",
        "bench@example.com",
        "Bench Co",
        "correct horse battery",
        true,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let account = mtdesk_http::services::sign_up(&state, new)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bot_settings = ChatbotDraft {
        name: Some("Bench bot"),
        provider: Some("openrouter"),
        model: Some("fake-model"),
        knowledge_only: Some(false),
        ..Default::default()
    }
    .apply(&ChatbotSettings::defaults())
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bot = state
        .store
        .insert_chatbot(&account.id, &bot_settings)
        .await?;
    let started = Instant::now();
    for batch in 0..PAIRS / 500 {
        let pairs: Vec<QaPairInput> = (0..500)
            .map(|i| {
                let n = batch * 500 + i;
                let t = TOPICS[n % TOPICS.len()];
                let u = TOPICS[(n / TOPICS.len()) % TOPICS.len()];
                QaPairInput::parse(
                    &format!("How does {t} work for {u} number {n}?"),
                    &format!(
                        "For {t} and {u} case {n}: contact us within {} days.",
                        n % 60 + 1
                    ),
                )
                .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        state
            .store
            .insert_qa_pairs(&account.id, &bot.id, &pairs)
            .await?;
    }
    println!(
        "knowledge base: {PAIRS} Q&A pairs inserted in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let questions: Vec<String> = (0..SAMPLES)
        .map(|i| {
            format!(
                "What about {} for {}?",
                TOPICS[i % TOPICS.len()],
                TOPICS[(i * 7) % TOPICS.len()]
            )
        })
        .collect();

    // Baseline: the same provider call without us.
    let client = reqwest::Client::new();
    let url = format!("{}/chat/completions", fake.base_url());
    let mut bare = Vec::with_capacity(SAMPLES);
    for q in &questions {
        let body = serde_json::json!({"model": "fake-model", "messages": [{"role": "user", "content": q}], "temperature": 0.3, "max_tokens": 512, "stream": false});
        let t = Instant::now();
        let resp = client
            .post(&url)
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            resp.status().is_success(),
            "fake answered {}",
            resp.status()
        );
        resp.bytes().await?;
        bare.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    // Retrieval alone, to show where our time goes.
    let mut retrieval = Vec::with_capacity(SAMPLES);
    for q in &questions {
        let t = Instant::now();
        let found = mtdesk_ai::offline::retrieve(&state.store, &bot, q).await?;
        anyhow::ensure!(!found.is_empty(), "retrieval found nothing for {q}");
        retrieval.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    // The whole answer path.
    let mut ours = Vec::with_capacity(SAMPLES);
    for q in &questions {
        let t = Instant::now();
        let a = state
            .answerer
            .answer(
                &bot,
                mtdesk_ai::AnswerRequest {
                    message: q,
                    conversation: None,
                    channel: "api",
                    inbound: None,
                },
                None,
            )
            .await?;
        anyhow::ensure!(
            a.answered_by == "openrouter",
            "fell back: {:?}",
            a.fallbacks
        );
        ours.push(t.elapsed().as_secs_f64() * 1000.0);
    }

    let (b50, b99) = summary(bare);
    let (r50, r99) = summary(retrieval);
    let (o50, o99) = summary(ours);
    println!("bare provider call:   p50 {b50:.2} ms, p99 {b99:.2} ms ({SAMPLES} calls)");
    println!("retrieval (10k pairs): p50 {r50:.2} ms, p99 {r99:.2} ms");
    println!("full answer:          p50 {o50:.2} ms, p99 {o99:.2} ms");
    println!(
        "our overhead:         p50 {:.2} ms, p99 {:.2} ms",
        o50 - b50,
        o99 - b99
    );

    documents(&state, &account.id, &questions, b50).await?;

    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..CONCURRENCY {
        let (answerer, bot, questions) = (state.answerer.clone(), bot.clone(), questions.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..THROUGHPUT_ANSWERS / CONCURRENCY {
                let q = &questions[(w * 31 + i) % questions.len()];
                answerer
                    .answer(
                        &bot,
                        mtdesk_ai::AnswerRequest {
                            message: q,
                            conversation: None,
                            channel: "api",
                            inbound: None,
                        },
                        None,
                    )
                    .await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!(
        "throughput: {:.0} answers/s ({THROUGHPUT_ANSWERS} answers, concurrency {CONCURRENCY}, SQLite)",
        THROUGHPUT_ANSWERS as f64 / t.elapsed().as_secs_f64()
    );
    state.store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
