//! The `mtdesk` binary: operator commands, configuration errors, no stray database files.

use crate::helpers::{PASSWORD, TestApp, temp_dir};
use reqwest::StatusCode;
use std::io::Write;
use std::process::{Command, Stdio};

fn mtdesk(
    dir: &std::path::Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mtdesk"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("MTDESK_DATABASE_URL")
        .env("MTDESK_DATA_DIR", dir.join("data"))
        .env("MTDESK_ARGON2_MEMORY_KIB", "8192")
        .env("MTDESK_ARGON2_ITERATIONS", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn mtdesk");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

#[tokio::test]
async fn admin_commands_create_an_account_and_a_token_the_server_accepts() {
    let dir = temp_dir();
    let out = mtdesk(&dir, &["migrate"], None, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mtdesk(
        &dir,
        &[
            "admin",
            "account",
            "create",
            "--email",
            "op@example.com",
            "--name",
            "Op",
            "--company",
            "Ops Ltd",
        ],
        Some(&format!("{PASSWORD}\n")),
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = mtdesk(
        &dir,
        &["admin", "token", "create", "--email", "OP@example.com"],
        None,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string();
    assert!(token.starts_with("mtd_"), "{token}");

    // The server started on the same data directory (and its generated secret key) accepts the token.
    let data = dir.join("data");
    assert!(data.join("secret_key").exists());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.join("secret_key"))
            .expect("meta")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let app = TestApp::spawn_with(|v| {
        v.insert("MTDESK_DATA_DIR".into(), data.display().to_string());
        v.insert(
            "MTDESK_DATABASE_URL".into(),
            format!("sqlite://{}", data.join("mtdesk.sqlite").display()),
        );
    })
    .await;
    let (status, me) = app.get("/api/v1/account", &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["company"], "Ops Ltd");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_errors_exit_non_zero_with_a_message() {
    let dir = temp_dir();
    let out = mtdesk(
        &dir,
        &["admin", "token", "create", "--email", "nobody@example.com"],
        None,
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no account with email"));
    let out = mtdesk(
        &dir,
        &[
            "admin",
            "account",
            "create",
            "--email",
            "bad",
            "--name",
            "X",
            "--company",
            "Y",
        ],
        Some(PASSWORD),
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("email"));
    let out = mtdesk(
        &dir,
        &[
            "admin",
            "account",
            "create",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--company",
            "Y",
        ],
        Some("short"),
        &[],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("password"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_stops_start_up_naming_the_variable() {
    let dir = temp_dir();
    let out = mtdesk(
        &dir,
        &["serve"],
        None,
        &[
            ("MTDESK_BIND", "not-an-address"),
            ("MTDESK_DATABASE_URL", "mysql://x"),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MTDESK_BIND") && err.contains("MTDESK_DATABASE_URL"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_typo_in_the_sqlite_path_creates_no_file() {
    let dir = temp_dir();
    let typo = dir.join("no-such-dir").join("mtdesk.sqlite");
    let url = format!("sqlite://{}", typo.display());
    let out = mtdesk(&dir, &["migrate"], None, &[("MTDESK_DATABASE_URL", &url)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(!typo.exists() && !dir.join("no-such-dir").exists());
    let out = mtdesk(
        &dir,
        &["migrate"],
        None,
        &[("MTDESK_DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect to PostgreSQL"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A labeled set small enough for a test: six passages, three questions.
fn tiny_dataset(dir: &std::path::Path) {
    std::fs::create_dir_all(dir).expect("dir");
    let docs = [
        (
            "d1",
            "Returns",
            "Refunds are paid to the original card within 14 days.",
        ),
        (
            "d2",
            "Returns",
            "Exchanges for another size are free of charge.",
        ),
        (
            "d3",
            "Shop",
            "The Lyon shop opens Monday to Saturday from nine to six.",
        ),
        (
            "d4",
            "Shipping",
            "Parcels to Belgium arrive within three working days.",
        ),
        (
            "d5",
            "Shipping",
            "International shipping costs twelve euros per parcel.",
        ),
        (
            "d6",
            "Care",
            "Wash ceramic teapots by hand with warm water.",
        ),
    ];
    let corpus: String = docs
        .iter()
        .map(|(id, t, x)| format!("{}\n", serde_json::json!({"id": id, "title": t, "text": x})))
        .collect();
    std::fs::write(dir.join("corpus.jsonl"), corpus).expect("corpus");
    std::fs::write(
        dir.join("queries.jsonl"),
        "{\"id\":\"q1\",\"text\":\"How long do refunds take?\"}\n{\"id\":\"q2\",\"text\":\"When is the Lyon shop open?\"}\n{\"id\":\"q3\",\"text\":\"How should I clean a teapot?\"}\n",
    )
    .expect("queries");
    std::fs::write(
        dir.join("qrels.tsv"),
        "query_id\tdoc_id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td6\t1\n",
    )
    .expect("qrels");
}

#[test]
fn eval_retrieval_prints_metrics_per_mode_as_json() {
    let dir = temp_dir();
    let set = dir.join("set");
    tiny_dataset(&set);
    let out = mtdesk(
        &dir,
        &[
            "admin",
            "eval",
            "retrieval",
            set.to_str().expect("utf-8"),
            "--sweep",
            "0.5,0.9",
        ],
        None,
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["documents"], 6);
    assert_eq!(report["queries"], 3);
    for mode in ["bm25", "vector", "hybrid"] {
        let m = &report["modes"][mode];
        for key in ["ndcg@10", "recall@5", "recall@10"] {
            assert!(m[key].is_number(), "{mode} {key}: {report}");
        }
        assert!(m["latency_ms"]["p50"].is_number() && m["latency_ms"]["p99"].is_number());
    }
    // Each question shares its key word with its one passage: BM25 finds all three first.
    assert_eq!(report["modes"]["bm25"]["recall@5"], 1.0, "{report}");
    assert!(
        report["modes"]["bm25"]["ndcg@10"].as_f64().unwrap_or(0.0) > 0.9,
        "{report}"
    );
    assert_eq!(report["alpha_sweep"].as_array().map(Vec::len), Some(2));
    assert!(report["ingest"]["seconds"].is_number());
    // Nothing is left in the data directory: the evaluation used a throwaway database.
    assert!(!dir.join("data").join("mtdesk.sqlite").exists());

    // Bad input: a missing directory, a malformed line, a weight out of range.
    let out = mtdesk(
        &dir,
        &["admin", "eval", "retrieval", "/nonexistent/set"],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("corpus.jsonl"));
    std::fs::write(set.join("queries.jsonl"), "{not json\n").expect("write");
    let out = mtdesk(
        &dir,
        &["admin", "eval", "retrieval", set.to_str().expect("utf-8")],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("queries.jsonl line 1"));
    let out = mtdesk(
        &dir,
        &[
            "admin",
            "eval",
            "retrieval",
            set.to_str().expect("utf-8"),
            "--alpha",
            "2",
        ],
        None,
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn admin_reindex_processes_every_source_of_a_chatbot_again() {
    let app = TestApp::spawn().await;
    let a = app.sign_up(&crate::helpers::email("reindex")).await;
    let bot = app.create_chatbot(&a.token, "Shop").await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"Our shop opens at nine.".to_vec()).file_name("hours.txt"),
    );
    let resp = app
        .client
        .post(app.url(&format!("/api/v1/chatbots/{bot}/sources")))
        .bearer_auth(&a.token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    app.drain_jobs().await;
    if app.is_postgres() {
        return; // the binary below opens the test's SQLite file
    }
    let db = format!("sqlite://{}", app.data_dir.join("mtdesk.sqlite").display());
    let data = app.data_dir.display().to_string();
    let env = [
        ("MTDESK_DATABASE_URL", db.as_str()),
        ("MTDESK_DATA_DIR", data.as_str()),
        (
            "MTDESK_SECRET_KEY",
            "test-secret-key-0123456789abcdef0123456789",
        ),
    ];
    let out = mtdesk(
        &app.data_dir,
        &["admin", "reindex", "--chatbot", &bot],
        None,
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("reindexed 1 of 1 sources"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = mtdesk(
        &app.data_dir,
        &[
            "admin",
            "reindex",
            "--chatbot",
            "00000000-0000-4000-8000-000000000000",
        ],
        None,
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no chatbot"));
    let out = mtdesk(
        &app.data_dir,
        &["admin", "reindex", "--chatbot", "nope"],
        None,
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
}
