//! The outbox end to end: real SMTP (lettre) against the testkit's SMTP sink, on a fresh SQLite database
//! and, when `MTDESK_TEST_DATABASE_URL` is set, a fresh uuid-named PostgreSQL database. `TEST_LOG=1`
//! prints the logs.

use std::collections::BTreeSet;
use std::time::Duration;

use mtdesk_domain::{AccountId, now_ms};
use mtdesk_email::messages::{self, Site};
use mtdesk_email::{DeliveryReport, EmailError, Mailer, Outbox, Rendered, outbox_report};
use mtdesk_storage::{DatabaseUrl, Store};
use mtdesk_testkit::smtp_sink::{Refusal, SmtpSink};

const FROM: &str = "MT Desk <no-reply@example.com>";
const WAIT: Duration = Duration::from_secs(10);

struct Db {
    store: Store,
    url: DatabaseUrl,
    label: &'static str,
    cleanup: Cleanup,
}

enum Cleanup {
    Dir(std::path::PathBuf),
    Postgres { admin: String, name: String },
}

impl Drop for Db {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Dir(d) => {
                let _ = std::fs::remove_dir_all(d);
            }
            Cleanup::Postgres { admin, name } => {
                let (admin, name) = (admin.clone(), name.clone());
                let _ = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("rt");
                    rt.block_on(async move {
                        if let Ok(mut c) =
                            <sqlx::AnyConnection as sqlx::Connection>::connect(&admin).await
                        {
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )))
                            .execute(&mut c)
                            .await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_test_writer()
            .try_init();
    }
}

/// A fresh, migrated database of each configured kind.
async fn databases() -> Vec<Db> {
    init_logs();
    sqlx::any::install_default_drivers();
    let mut out = Vec::new();
    let dir = std::env::temp_dir().join(format!("mtdesk-email-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let url = DatabaseUrl::Sqlite(dir.join("db.sqlite"));
    let store = Store::open(&url).await.expect("sqlite");
    out.push(Db {
        store,
        url,
        label: "sqlite",
        cleanup: Cleanup::Dir(dir),
    });
    if let Ok(admin) = std::env::var("MTDESK_TEST_DATABASE_URL")
        && !admin.is_empty()
    {
        let name = format!("mtdesk_test_{}", uuid::Uuid::new_v4().simple());
        let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .expect("postgres");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut c)
            .await
            .expect("create");
        let url = match admin.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{name}"),
            None => panic!("MTDESK_TEST_DATABASE_URL needs a database path"),
        };
        let url = DatabaseUrl::parse(&url).expect("url");
        let store = Store::open(&url).await.expect("open postgres");
        out.push(Db {
            store,
            url,
            label: "postgres",
            cleanup: Cleanup::Postgres { admin, name },
        });
    }
    out
}

fn site() -> Site {
    Site {
        name: "Acme Support".into(),
        public_url: "https://support.example.com".into(),
    }
}

fn export_mail() -> Rendered {
    messages::export_ready(
        &site(),
        "Zoë",
        "https://support.example.com/export/abc?t=1&u=2",
        now_ms() + 86_400_000,
    )
    .expect("render")
}

fn outbox(db: &Db, sink: &SmtpSink) -> Outbox {
    let mailer =
        Mailer::parse(Some(&sink.url_with_credentials("bob", "hunter2")), FROM).expect("mailer");
    Outbox::new(db.store.clone(), mailer)
}

/// A backoff of zero waits: `attempts` attempts in all, each retry due at once.
fn no_wait(attempts: usize) -> Vec<Duration> {
    vec![Duration::ZERO; attempts - 1]
}

#[tokio::test]
async fn a_queued_mail_is_delivered_with_both_parts_and_its_row_is_gone() {
    for db in databases().await {
        let sink = SmtpSink::start().await;
        let outbox = outbox(&db, &sink);
        let account = AccountId::new();
        let mail = export_mail();
        let subject = mail.subject.clone();
        outbox
            .enqueue(Some(&account), "ann@example.com", mail)
            .await
            .expect("enqueue");
        assert_eq!(db.store.outbox_counts().await.expect("counts"), (1, 0));

        let report = outbox.deliver_due().await.expect("deliver");
        assert_eq!(
            report,
            DeliveryReport {
                claimed: 1,
                sent: 1,
                ..Default::default()
            },
            "{}",
            db.label
        );
        let got = sink.wait_for(1, WAIT).await;
        assert_eq!(got.len(), 1, "{}", db.label);
        let m = &got[0];
        assert_eq!(m.to, vec!["ann@example.com".to_string()]);
        assert_eq!(m.from, "no-reply@example.com");
        assert_eq!(m.header("To").as_deref(), Some("ann@example.com"));
        assert_eq!(m.header("Subject"), Some(subject));
        assert!(
            m.header("From").is_some_and(|f| f.contains("MT Desk")),
            "{}",
            db.label
        );
        assert!(
            m.header("Content-Type")
                .is_some_and(|c| c.starts_with("multipart/alternative")),
            "{}",
            db.label
        );
        let text = m.text_part().expect("text part");
        assert!(text.contains("Hello Zoë,"), "{text}");
        assert!(text.contains("https://support.example.com/export/abc?t=1&u=2"));
        let html = m.html_part().expect("html part");
        assert!(
            html.contains("href=\"https://support.example.com/export/abc?t=1&#38;u=2\""),
            "{html}"
        );
        assert_eq!(sink.auth_users(), vec!["bob".to_string()], "{}", db.label);

        // A sent mail leaves no copy of its address or body.
        assert!(db.store.list_outbox(100).await.expect("list").is_empty());
        assert_eq!(db.store.outbox_counts().await.expect("counts"), (0, 0));
        assert_eq!(
            outbox.deliver_due().await.expect("deliver"),
            DeliveryReport::default()
        );
    }
}

#[tokio::test]
async fn a_transient_refusal_waits_for_the_backoff() {
    for db in databases().await {
        let sink = SmtpSink::start().await;
        let outbox = outbox(&db, &sink);
        sink.refuse_next_data(1, Refusal::Transient);
        outbox
            .enqueue(None, "ann@example.com", export_mail())
            .await
            .expect("enqueue");
        let before = now_ms();
        let report = outbox.deliver_due().await.expect("deliver");
        assert_eq!((report.sent, report.retrying), (0, 1), "{}", db.label);

        let listed = db.store.list_outbox(10).await.expect("list");
        assert_eq!(listed.len(), 1);
        let m = &listed[0];
        assert_eq!(m.status, "pending");
        assert_eq!(m.attempts, 1);
        assert_eq!(m.locked_until, 0, "the lease is released");
        assert!(
            m.next_attempt_at >= before + 60_000,
            "first retry after a minute"
        );
        assert!(
            m.last_error.as_deref().is_some_and(|e| e.contains("451")),
            "{:?}",
            m.last_error
        );
        // Not due yet: nothing is tried.
        assert_eq!(outbox.deliver_due().await.expect("deliver").claimed, 0);
        assert!(sink.messages().is_empty());
    }
}

#[tokio::test]
async fn a_transient_refusal_is_retried_and_then_delivered() {
    for db in databases().await {
        let sink = SmtpSink::start().await;
        let outbox = outbox(&db, &sink).with_backoff(&no_wait(6));
        sink.refuse_next_data(2, Refusal::Transient);
        outbox
            .enqueue(None, "ann@example.com", export_mail())
            .await
            .expect("enqueue");
        for attempt in 1..=2 {
            let r = outbox.deliver_due().await.expect("deliver");
            assert_eq!(
                (r.sent, r.retrying),
                (0, 1),
                "{}: attempt {attempt}",
                db.label
            );
        }
        let r = outbox.deliver_due().await.expect("deliver");
        assert_eq!((r.sent, r.retrying, r.failed), (1, 0, 0), "{}", db.label);
        assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
        assert!(db.store.list_outbox(10).await.expect("list").is_empty());
    }
}

#[tokio::test]
async fn a_permanent_refusal_fails_at_once_and_can_be_retried() {
    for db in databases().await {
        let sink = SmtpSink::start().await;
        let outbox = outbox(&db, &sink);
        sink.refuse_next_data(1, Refusal::Permanent);
        let id = outbox
            .enqueue(None, "ann@example.com", export_mail())
            .await
            .expect("enqueue");
        let r = outbox.deliver_due().await.expect("deliver");
        assert_eq!((r.sent, r.retrying, r.failed), (0, 0, 1), "{}", db.label);

        let listed = db.store.list_outbox(10).await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, id);
        assert_eq!(listed[0].status, "failed");
        assert_eq!(listed[0].attempts, 1);
        let error = listed[0].last_error.clone().unwrap_or_default();
        assert!(error.contains("550"), "{error}");
        assert!(!error.contains("hunter2"), "no SMTP password in {error}");
        assert_eq!(db.store.outbox_counts().await.expect("counts"), (0, 1));

        let report = outbox_report(&db.store, 50).await.expect("report");
        assert!(
            report.starts_with("Outbox: 0 pending, 1 failed"),
            "{report}"
        );
        for expected in [
            id.as_str(),
            "export_ready",
            "ann@example.com",
            "failed",
            "550",
        ] {
            assert!(report.contains(expected), "{expected} in\n{report}");
        }
        assert!(!report.contains("hunter2"));

        // Given up: not tried again until the operator says so.
        assert_eq!(outbox.deliver_due().await.expect("deliver").claimed, 0);
        assert_eq!(db.store.retry_failed_mails().await.expect("retry"), 1);
        let listed = db.store.list_outbox(10).await.expect("list");
        assert_eq!(
            (listed[0].status.as_str(), listed[0].attempts),
            ("pending", 0)
        );
        let r = outbox.deliver_due().await.expect("deliver");
        assert_eq!(r.sent, 1, "{}", db.label);
        assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
        assert_eq!(db.store.outbox_counts().await.expect("counts"), (0, 0));
        assert_eq!(db.store.retry_failed_mails().await.expect("retry"), 0);
    }
}

#[tokio::test]
async fn after_the_last_attempt_a_mail_is_failed() {
    for db in databases().await {
        let sink = SmtpSink::start().await;
        let outbox = outbox(&db, &sink).with_backoff(&no_wait(3));
        sink.refuse_next_data(3, Refusal::Transient);
        outbox
            .enqueue(None, "ann@example.com", export_mail())
            .await
            .expect("enqueue");
        let mut reports = Vec::new();
        for _ in 0..4 {
            reports.push(outbox.deliver_due().await.expect("deliver"));
        }
        let retrying: Vec<_> = reports.iter().map(|r| r.retrying).collect();
        let failed: Vec<_> = reports.iter().map(|r| r.failed).collect();
        assert_eq!(retrying, vec![1, 1, 0, 0], "{}", db.label);
        assert_eq!(failed, vec![0, 0, 1, 0], "{}", db.label);
        let listed = db.store.list_outbox(10).await.expect("list");
        assert_eq!(
            (listed[0].status.as_str(), listed[0].attempts),
            ("failed", 3)
        );
        assert!(sink.messages().is_empty());
    }
}

#[tokio::test]
async fn without_smtp_mails_stay_pending() {
    for db in databases().await {
        let mailer = Mailer::parse(None, FROM).expect("mailer");
        assert!(!mailer.is_configured());
        let outbox = Outbox::new(db.store.clone(), mailer);
        outbox
            .enqueue(None, "ann@example.com", export_mail())
            .await
            .expect("enqueue");
        assert_eq!(
            outbox.deliver_due().await.expect("deliver"),
            DeliveryReport::default()
        );
        let listed = db.store.list_outbox(10).await.expect("list");
        assert_eq!(listed.len(), 1, "{}", db.label);
        assert_eq!(
            (listed[0].status.as_str(), listed[0].attempts),
            ("pending", 0)
        );
        // The worker only waits for shutdown.
        tokio::time::timeout(WAIT, outbox.clone().run(async {}))
            .await
            .expect("run returns on shutdown");
        assert_eq!(db.store.outbox_counts().await.expect("counts"), (1, 0));
    }
}

#[tokio::test]
async fn a_bad_recipient_is_refused_before_it_is_queued() {
    for db in databases().await {
        let outbox = Outbox::new(db.store.clone(), Mailer::parse(None, FROM).expect("mailer"));
        for bad in ["", "ann", "ann@", "<ann@example.com"] {
            assert!(
                matches!(
                    outbox.enqueue(None, bad, export_mail()).await,
                    Err(EmailError::Invalid(_))
                ),
                "{bad:?}"
            );
        }
        assert!(db.store.list_outbox(10).await.expect("list").is_empty());
    }
}

#[tokio::test]
async fn two_outboxes_delivering_at_once_send_each_mail_exactly_once() {
    for db in databases().await {
        let sink = SmtpSink::start().await;
        // Two nodes: separate pools on the same database, separate SMTP connections.
        let other_store = Store::open(&db.url).await.expect("second store");
        let a = outbox(&db, &sink);
        let b = Outbox::new(
            other_store,
            Mailer::parse(Some(&sink.url()), FROM).expect("mailer"),
        );
        const N: usize = 45;
        for i in 0..N {
            a.enqueue(None, &format!("user{i}@example.com"), export_mail())
                .await
                .expect("enqueue");
        }
        let (mut rounds, mut sent_a, mut sent_b) = (0, 0, 0);
        loop {
            let (ra, rb) = tokio::join!(a.deliver_due(), b.deliver_due());
            let (ra, rb) = (ra.expect("a"), rb.expect("b"));
            if ra.claimed + rb.claimed == 0 {
                break;
            }
            sent_a += ra.sent;
            sent_b += rb.sent;
            rounds += 1;
            assert!(rounds < 20, "{}: delivery does not converge", db.label);
        }
        assert_eq!(sent_a + sent_b, N, "{}", db.label);
        let got = sink.wait_for(N, WAIT).await;
        assert_eq!(got.len(), N, "{}: each mail sent exactly once", db.label);
        let recipients: BTreeSet<String> = got.iter().flat_map(|m| m.to.clone()).collect();
        assert_eq!(recipients.len(), N, "{}: no mail sent twice", db.label);
        assert_eq!(db.store.outbox_counts().await.expect("counts"), (0, 0));
    }
}

#[tokio::test]
async fn the_worker_is_woken_by_an_enqueue_and_stops_on_shutdown() {
    for db in databases().await {
        let sink = SmtpSink::start().await;
        // An hour between polls: only the wake-up can deliver within the test.
        let outbox = outbox(&db, &sink).with_interval(Duration::from_secs(3600));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = tokio::spawn(outbox.clone().run(async move {
            let _ = stopped.await;
        }));
        // Let the first (empty) round pass, so the mail below can only go out through the wake-up.
        tokio::time::sleep(Duration::from_millis(100)).await;
        outbox
            .enqueue(None, "ann@example.com", export_mail())
            .await
            .expect("enqueue");
        assert_eq!(sink.wait_for(1, WAIT).await.len(), 1, "{}", db.label);
        let _ = stop.send(());
        tokio::time::timeout(WAIT, worker)
            .await
            .expect("stops on shutdown")
            .expect("no panic");
        assert_eq!(db.store.outbox_counts().await.expect("counts"), (0, 0));
    }
}

#[tokio::test]
async fn claims_are_leased_and_a_sent_mail_is_deleted() {
    for db in databases().await {
        let store = &db.store;
        let outbox = Outbox::new(store.clone(), Mailer::parse(None, FROM).expect("mailer"));
        let id = outbox
            .enqueue(None, "ann@example.com", export_mail())
            .await
            .expect("enqueue");
        let now = now_ms();
        let claimed = store.claim_due_mails(now, 10, 60_000).await.expect("claim");
        assert_eq!(claimed.len(), 1, "{}", db.label);
        assert_eq!(claimed[0].locked_until, now + 60_000);
        assert!(
            store
                .claim_due_mails(now, 10, 60_000)
                .await
                .expect("claim")
                .is_empty(),
            "{}: leased mails are not claimed twice",
            db.label
        );
        // After the lease (a worker died mid-send), the mail is claimed again.
        let later = now + 60_001;
        assert_eq!(
            store
                .claim_due_mails(later, 10, 60_000)
                .await
                .expect("claim")
                .len(),
            1
        );
        let long = "x".repeat(2000);
        store
            .mail_failed(&id, &long, Some(later))
            .await
            .expect("failed");
        let listed = store.list_outbox(10).await.expect("list");
        assert_eq!(listed[0].last_error.as_deref().map(str::len), Some(500));
        store.mail_sent(&id).await.expect("sent");
        assert!(store.list_outbox(10).await.expect("list").is_empty());
        assert!(matches!(
            store.mail_sent(&id).await,
            Err(mtdesk_storage::StorageError::NotFound)
        ));
    }
}
