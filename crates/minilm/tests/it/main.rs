//! Correctness of the MiniLM embeddings against sentence-transformers' reference values.
//!
//! The model directory comes from `MTDESK_MODEL_DIR`, else `<workspace>/data/models/all-MiniLM-L6-v2`
//! (put there by `scripts/fetch-model`). Without a model the tests print "skipped: model missing"
//! and pass, unless `MTDESK_REQUIRE_MODEL=1` (CI), where they fail.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use mtdesk_minilm::{DIMS, MAX_TOKENS, MiniLm, ModelError};

fn model_dir() -> PathBuf {
    match std::env::var_os("MTDESK_MODEL_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => MiniLm::default_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data")),
    }
}

/// The model, loaded once for all tests; `None` (test skipped) when it is not installed.
fn model() -> Option<&'static MiniLm> {
    static MODEL: OnceLock<Option<MiniLm>> = OnceLock::new();
    let model = MODEL.get_or_init(|| match MiniLm::load(&model_dir()) {
        Ok(m) => Some(m),
        Err(e @ ModelError::Missing { .. }) => {
            if std::env::var("MTDESK_REQUIRE_MODEL").as_deref() == Ok("1") {
                panic!("MTDESK_REQUIRE_MODEL=1 but the model is missing: {e}");
            }
            None
        }
        Err(e) => panic!("model present but failed to load: {e}"),
    });
    if model.is_none() {
        println!("skipped: model missing (run scripts/fetch-model)");
    }
    model.as_ref()
}

fn embed_one(m: &MiniLm, text: &str) -> Vec<f32> {
    let mut v = m.embed(&[text]).expect("embed");
    assert_eq!(v.len(), 1);
    v.remove(0)
}

fn cos(a: &[f32], b: &[f32]) -> f32 {
    // Vectors are unit length, so the dot product is the cosine.
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

fn assert_first_dims(v: &[f32], expected: [f32; 5], what: &str) {
    assert_eq!(v.len(), DIMS);
    for (i, (got, want)) in v.iter().zip(expected).enumerate() {
        assert!(
            (got - want).abs() < 1e-4,
            "{what}, dim {i}: got {got}, want {want}; first 5 = {:?}",
            &v[..5]
        );
    }
}

#[test]
fn example_sentence_matches_the_published_reference_values() {
    let Some(m) = model() else { return };
    let v = embed_one(m, "This is an example sentence");
    assert_first_dims(
        &v,
        [0.0676568, 0.0634959, 0.0487131, 0.0793050, 0.0374480],
        "example",
    );
}

/// Reference values from sentence-transformers 6.2.0 (torch 2.15, CPU) with the same model
/// directory: `SentenceTransformer(dir).encode([text])[0][:5]`.
#[test]
fn edge_cases_match_sentence_transformers() {
    let Some(m) = model() else { return };
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    let cases: [(&str, &str, [f32; 5]); 3] = [
        (
            "over 256 tokens (truncated)",
            &long,
            [0.0622781, -0.0578629, 0.0723265, -0.0059594, -0.0453872],
        ),
        (
            "empty",
            "",
            [-0.1188384, 0.0482987, -0.0025481, -0.0110112, 0.0519508],
        ),
        (
            "unicode",
            "Ünïcödé — 日本語のテキスト 🙂",
            [-0.016519, 0.1139915, 0.0825017, -0.0319864, -0.0823714],
        ),
    ];
    for (what, text, expected) in cases {
        assert_first_dims(&embed_one(m, text), expected, what);
    }
}

#[test]
fn refund_question_is_closer_to_return_policy_than_to_weather() {
    let Some(m) = model() else { return };
    let vs = m
        .embed(&[
            "How do I get a refund?",
            "What is your return policy?",
            "The weather is sunny today.",
        ])
        .expect("embed");
    let related = cos(&vs[0], &vs[1]);
    let unrelated = cos(&vs[0], &vs[2]);
    assert!(
        (related - 0.452).abs() < 0.01,
        "cos(refund, return policy) = {related}"
    );
    assert!(
        (unrelated - -0.031).abs() < 0.01,
        "cos(refund, weather) = {unrelated}"
    );
    assert!(related > unrelated);
}

#[test]
fn batch_of_mixed_lengths_gives_the_same_vectors_as_one_by_one() {
    let Some(m) = model() else { return };
    let long = "Debian packages are installed with apt, which resolves dependencies and \
                downloads archives from the configured mirrors. "
        .repeat(6);
    let texts = [
        "refund",
        long.as_str(),
        "",
        "How can I keep my Debian system current?",
        "This is an example sentence",
        "a b c d e f g h i j k l m n o p",
    ];
    let batch = m.embed(&texts).expect("embed batch");
    assert_eq!(batch.len(), texts.len());
    for (text, got) in texts.iter().zip(&batch) {
        let alone = embed_one(m, text);
        let diff = max_abs_diff(got, &alone);
        assert!(diff < 1e-4, "{text:?}: batch and single differ by {diff}");
    }
    // Order is preserved: distinct texts give distinct vectors in their own slots.
    assert!(max_abs_diff(&batch[0], &batch[4]) > 1e-2);
}

#[test]
fn text_far_over_the_limit_is_truncated_not_rejected() {
    let Some(m) = model() else { return };
    let long = "The quick brown fox jumps over the lazy dog. ".repeat(200);
    assert!(
        m.count_tokens(&long) > 4 * MAX_TOKENS,
        "count_tokens counts before truncation"
    );
    let v = embed_one(m, &long);
    assert_eq!(v.len(), DIMS);
    assert!((norm(&v) - 1.0).abs() < 1e-4);
    // Everything after the first 254 word pieces is cut, so a different tail changes nothing...
    let other_tail = format!("{long} Completely different words about refunds and invoices.");
    assert!(max_abs_diff(&v, &embed_one(m, &other_tail)) < 1e-5);
    // ...while a short text with the same start is embedded differently (it is not truncated).
    let short = "The quick brown fox jumps over the lazy dog.";
    assert!(max_abs_diff(&v, &embed_one(m, short)) > 1e-3);
}

#[test]
fn empty_string_embeds_to_a_unit_vector() {
    let Some(m) = model() else { return };
    let v = embed_one(m, "");
    assert_eq!(v.len(), DIMS);
    assert!(v.iter().all(|x| x.is_finite()));
    assert!((norm(&v) - 1.0).abs() < 1e-4);
    assert_eq!(m.count_tokens(""), 2, "[CLS] [SEP]");
}

#[test]
fn every_vector_has_unit_norm() {
    let Some(m) = model() else { return };
    let texts = [
        "x",
        "What is your return policy?",
        "Ünïcödé — 日本語のテキスト 🙂",
        "   \n\t  ",
    ];
    for v in m.embed(&texts).expect("embed") {
        assert_eq!(v.len(), DIMS);
        assert!((norm(&v) - 1.0).abs() < 1e-4, "norm {}", norm(&v));
    }
}

#[test]
fn count_tokens_includes_cls_and_sep() {
    let Some(m) = model() else { return };
    // [CLS] this is an example sentence [SEP]
    assert_eq!(m.count_tokens("This is an example sentence"), 7);
}

#[test]
fn empty_input_gives_no_vectors() {
    let Some(m) = model() else { return };
    assert!(m.embed(&[]).expect("embed").is_empty());
}

#[test]
fn concurrent_calls_give_the_same_vectors() {
    let Some(m) = model() else { return };
    let reference = embed_one(m, "How do I cancel my subscription?");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| embed_one(m, "How do I cancel my subscription?")))
            .collect();
        for h in handles {
            let v = h.join().expect("thread panicked");
            assert!(max_abs_diff(&v, &reference) < 1e-6);
        }
    });
}

#[test]
fn missing_model_dir_is_reported_with_the_fetch_script() {
    let dir = std::env::temp_dir().join("mtdesk-minilm-no-such-model");
    let err = MiniLm::load(&dir).expect_err("directory does not exist");
    match &err {
        ModelError::Missing { dir: d, file } => {
            assert_eq!(d, &dir);
            assert!(!file.is_empty());
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(err.to_string().contains("scripts/fetch-model"), "{err}");
}

#[test]
fn weights_missing_from_an_otherwise_complete_dir_are_named() {
    let Some(_) = model() else { return };
    let tmp = std::env::temp_dir().join(format!("mtdesk-minilm-partial-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("mkdir");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model_dir().join(f), tmp.join(f)).expect("copy");
    }
    let err = MiniLm::load(&tmp).expect_err("no weights");
    std::fs::remove_dir_all(&tmp).expect("cleanup");
    assert!(
        matches!(
            err,
            ModelError::Missing {
                file: "model.safetensors",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn other_weights_are_rejected_as_invalid() {
    let Some(_) = model() else { return };
    let tmp = std::env::temp_dir().join(format!("mtdesk-minilm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("mkdir");
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(model_dir().join(f), tmp.join(f)).expect("copy");
    }
    std::fs::write(tmp.join("model.safetensors"), b"not the model").expect("write");
    let err = MiniLm::load(&tmp).expect_err("wrong weights");
    std::fs::remove_dir_all(&tmp).expect("cleanup");
    assert!(matches!(err, ModelError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("sha256"), "{err}");
}
