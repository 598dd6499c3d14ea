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
