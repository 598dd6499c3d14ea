//! Storage conformance: the same assertions against SQLite (always) and PostgreSQL (when
//! MTDESK_TEST_DATABASE_URL is set), each on a fresh database.

use mtdesk_domain::{AccountUpdate, ChatbotDraft, ChatbotSettings, NewAccount, QaPairInput};
use mtdesk_storage::{DatabaseUrl, StorageError, Store, catalogue};

struct Db {
    store: Store,
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

/// A fresh, migrated database of each configured kind.
async fn databases() -> Vec<Db> {
    sqlx::any::install_default_drivers();
    let mut out = Vec::new();
    let dir =
        std::env::temp_dir().join(format!("mtdesk-storage-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("dir");
    let store = Store::open(&DatabaseUrl::Sqlite(dir.join("db.sqlite")))
        .await
        .expect("sqlite");
    out.push(Db {
        store,
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
        let store = Store::open(&DatabaseUrl::parse(&url).expect("url"))
            .await
            .expect("open postgres");
        out.push(Db {
            store,
            label: "postgres",
            cleanup: Cleanup::Postgres { admin, name },
        });
    }
    out
}

fn account(email: &str) -> NewAccount {
    NewAccount::parse("Ann", email, "Shop", "correct horse battery", true).expect("valid")
}

fn bot(name: &str) -> ChatbotSettings {
    ChatbotDraft {
        name: Some(name),
        ..Default::default()
    }
    .apply(&ChatbotSettings::defaults())
    .expect("valid")
}

#[tokio::test]
async fn migrations_are_idempotent_and_every_table_is_classified() {
    for db in databases().await {
        assert!(
            db.store.migrate().await.expect("migrate").is_empty(),
            "{}: second run applies nothing",
            db.label
        );
        assert!(
            catalogue::unclassified_tables(&db.store)
                .await
                .expect("catalogue")
                .is_empty(),
            "{}",
            db.label
        );
        db.store.ping().await.expect("ping");
    }
}

#[tokio::test]
async fn accounts_are_unique_by_email_in_any_case() {
    for db in databases().await {
        let s = &db.store;
        let a = s
            .insert_account(&account("Ann@Example.com"), "hash")
            .await
            .expect("insert");
        let found = s
            .find_account_by_email("ann@example.COM")
            .await
            .expect("find");
        assert_eq!(found.id, a.id, "{}", db.label);
        assert_eq!(
            found.email, "Ann@Example.com",
            "{}: shown as typed",
            db.label
        );
        let err = s
            .insert_account(&account("ANN@example.com"), "hash")
            .await
            .expect_err("dup");
        assert!(
            matches!(err, StorageError::Conflict { field: "email" }),
            "{}: {err:?}",
            db.label
        );

        let b = s
            .insert_account(&account("bob@example.com"), "hash")
            .await
            .expect("insert");
        let upd = AccountUpdate::parse(None, Some("ann@example.com"), None).expect("valid");
        let err = s.update_account(&b.id, &upd).await.expect_err("taken");
        assert!(
            matches!(err, StorageError::Conflict { field: "email" }),
            "{}: {err:?}",
            db.label
        );
        let upd = AccountUpdate::parse(Some("Bob B"), None, Some("Bob Ltd")).expect("valid");
        let b2 = s.update_account(&b.id, &upd).await.expect("update");
        assert_eq!(
            (b2.name.as_str(), b2.company.as_str(), b2.email.as_str()),
            ("Bob B", "Bob Ltd", "bob@example.com")
        );
        assert!(matches!(
            s.find_account_by_email("nobody@example.com").await,
            Err(StorageError::NotFound)
        ));
    }
}

#[tokio::test]
async fn sessions_expire_and_can_be_ended_except_the_current_one() {
    for db in databases().await {
        let s = &db.store;
        let a = s
            .insert_account(&account("s@example.com"), "hash")
            .await
            .expect("insert");
        let future = mtdesk_domain::now_ms() + 60_000;
        s.insert_session("h1", &a.id, future).await.expect("s1");
        s.insert_session("h2", &a.id, future).await.expect("s2");
        s.insert_session("old", &a.id, mtdesk_domain::now_ms() - 1)
            .await
            .expect("s3");
        assert_eq!(s.find_session_account("h1").await.expect("live"), a.id);
        assert!(
            matches!(
                s.find_session_account("old").await,
                Err(StorageError::NotFound)
            ),
            "{}",
            db.label
        );
        assert_eq!(s.delete_expired_sessions().await.expect("sweep"), 1);
        assert_eq!(
            s.delete_other_sessions(&a.id, Some("h1"))
                .await
                .expect("others"),
            1
        );
        assert!(s.find_session_account("h1").await.is_ok());
        assert!(s.find_session_account("h2").await.is_err());
    }
}

#[tokio::test]
async fn chatbots_and_qa_are_scoped_by_account() {
    for db in databases().await {
        let s = &db.store;
        let a = s
            .insert_account(&account("a@example.com"), "hash")
            .await
            .expect("a");
        let b = s
            .insert_account(&account("b@example.com"), "hash")
            .await
            .expect("b");
        let bot_a = s.insert_chatbot(&a.id, &bot("A bot")).await.expect("bot");
        assert!(
            matches!(
                s.find_chatbot(&b.id, &bot_a.id).await,
                Err(StorageError::NotFound)
            ),
            "{}",
            db.label
        );
        assert!(matches!(
            s.delete_chatbot(&b.id, &bot_a.id).await,
            Err(StorageError::NotFound)
        ));
        let pair = QaPairInput::parse("q?", "a.").expect("valid");
        assert!(matches!(
            s.insert_qa_pairs(&b.id, &bot_a.id, std::slice::from_ref(&pair))
                .await,
            Err(StorageError::NotFound)
        ));
        assert!(s.list_chatbots(&b.id).await.expect("list").is_empty());
        let stored = s
            .insert_qa_pairs(&a.id, &bot_a.id, &[pair])
            .await
            .expect("insert");
        assert!(matches!(
            s.find_qa_pair(&b.id, &bot_a.id, &stored[0].id).await,
            Err(StorageError::NotFound)
        ));
        // Settings round-trip exactly, booleans and floats included.
        let mut settings = bot("Renamed");
        settings.temperature = 1.25;
        settings.knowledge_only = false;
        let updated = s
            .update_chatbot(&a.id, &bot_a.id, &settings)
            .await
            .expect("update");
        assert_eq!(updated.settings, settings, "{}", db.label);
        assert_eq!(
            s.find_chatbot(&a.id, &bot_a.id)
                .await
                .expect("find")
                .settings,
            settings
        );
    }
}

#[tokio::test]
async fn full_text_search_ranks_the_matching_pair_first_and_follows_edits() {
    for db in databases().await {
        let s = &db.store;
        let a = s
            .insert_account(&account("fts@example.com"), "hash")
            .await
            .expect("a");
        let other = s
            .insert_account(&account("other@example.com"), "hash")
            .await
            .expect("o");
        let bot_a = s.insert_chatbot(&a.id, &bot("A")).await.expect("bot");
        let bot_o = s.insert_chatbot(&other.id, &bot("O")).await.expect("bot");
        let pairs: Vec<QaPairInput> = [
            (
                "What are your opening hours?",
                "We open at 9 and close at 5.",
            ),
            ("Can I get a refund?", "Refunds within 30 days."),
            ("Do you ship abroad?", "We ship to 40 countries."),
        ]
        .iter()
        .map(|(q, a)| QaPairInput::parse(q, a).expect("valid"))
        .collect();
        let stored = s
            .insert_qa_pairs(&a.id, &bot_a.id, &pairs)
            .await
            .expect("insert");
        s.insert_qa_pairs(
            &other.id,
            &bot_o.id,
            &[QaPairInput::parse("refund refund refund?", "other").expect("v")],
        )
        .await
        .expect("other");
        let terms = |q: &str| mtdesk_domain::text::query_words(q);
        let hits = s
            .search_qa_pairs(&a.id, &bot_a.id, &terms("refunds please"), 5)
            .await
            .expect("search");
        assert_eq!(hits.len(), 1, "{}: only this chatbot's pairs", db.label);
        assert_eq!(hits[0].pair.id, stored[1].id);
        let hits = s
            .search_qa_pairs(&a.id, &bot_a.id, &terms("opening hours shipping"), 5)
            .await
            .expect("search");
        assert_eq!(hits.len(), 2, "{}", db.label);
        assert!(hits[0].score >= hits[1].score);
        // Operators and quotes in user text cannot break the query.
        let hits = s
            .search_qa_pairs(
                &a.id,
                &bot_a.id,
                &terms("\"refund\" OR NEAR(* AND -x) ' ; --"),
                5,
            )
            .await
            .expect("sanitised");
        assert_eq!(hits[0].pair.id, stored[1].id);
        assert!(
            s.search_qa_pairs(&a.id, &bot_a.id, &[], 5)
                .await
                .expect("empty")
                .is_empty()
        );

        // The index follows edits and deletes in the same transaction.
        let edited =
            QaPairInput::parse("Can I return an item?", "Returns within 30 days.").expect("v");
        s.update_qa_pair(&a.id, &bot_a.id, &stored[1].id, &edited)
            .await
            .expect("edit");
        assert!(
            s.search_qa_pairs(&a.id, &bot_a.id, &terms("refund"), 5)
                .await
                .expect("s")
                .is_empty(),
            "{}",
            db.label
        );
        assert_eq!(
            s.search_qa_pairs(&a.id, &bot_a.id, &terms("return"), 5)
                .await
                .expect("s")
                .len(),
            1
        );
        s.delete_qa_pair(&a.id, &bot_a.id, &stored[1].id)
            .await
            .expect("delete");
        assert!(
            s.search_qa_pairs(&a.id, &bot_a.id, &terms("return"), 5)
                .await
                .expect("s")
                .is_empty()
        );
    }
}

#[tokio::test]
async fn deleting_an_account_removes_its_rows_and_keeps_others() {
    for db in databases().await {
        let s = &db.store;
        let a = s
            .insert_account(&account("del@example.com"), "hash")
            .await
            .expect("a");
        let b = s
            .insert_account(&account("keep@example.com"), "hash")
            .await
            .expect("b");
        for acct in [&a, &b] {
            let bot = s.insert_chatbot(&acct.id, &bot("bot")).await.expect("bot");
            s.insert_qa_pairs(
                &acct.id,
                &bot.id,
                &[QaPairInput::parse("uniquewordq?", "answer").expect("v")],
            )
            .await
            .expect("qa");
            s.insert_token(&acct.id, "t", &format!("hash-{}", acct.id), "mtd_x")
                .await
                .expect("token");
            s.insert_session(
                &format!("sess-{}", acct.id),
                &acct.id,
                mtdesk_domain::now_ms() + 1000,
            )
            .await
            .expect("session");
        }
        let deleted = s.delete_account(&a.id).await.expect("delete");
        for t in ["accounts", "chatbots", "qa_pairs", "api_tokens", "sessions"] {
            assert_eq!(deleted.count(t), 1, "{}: {t}", db.label);
        }
        let left = catalogue::rows_referencing_account(s, a.id.as_str())
            .await
            .expect("scan");
        assert!(left.iter().all(|(_, n)| *n == 0), "{}: {left:?}", db.label);
        assert!(
            catalogue::find_traces(s, &[a.id.as_str(), "del@example.com"])
                .await
                .expect("scan")
                .is_empty()
        );
        let kept = catalogue::rows_referencing_account(s, b.id.as_str())
            .await
            .expect("scan");
        for table in ["accounts", "chatbots", "qa_pairs", "api_tokens", "sessions"] {
            let n = kept.iter().find(|(t, _)| t == table).map(|(_, n)| *n);
            assert_eq!(n, Some(1), "{}: {table} of the other account", db.label);
        }
        assert!(matches!(
            s.delete_account(&a.id).await,
            Err(StorageError::NotFound)
        ));
    }
}

#[tokio::test]
async fn a_refused_database_url_is_a_clear_error() {
    let dir =
        std::env::temp_dir().join(format!("mtdesk-storage-{}", uuid::Uuid::new_v4().simple()));
    let err = Store::open(&DatabaseUrl::Sqlite(dir.join("missing").join("db.sqlite")))
        .await
        .expect_err("no dir");
    assert!(err.to_string().contains("does not exist"), "{err}");
    assert!(!dir.exists());
    let err = Store::open(&DatabaseUrl::parse("postgres://nobody@127.0.0.1:1/none").expect("url"))
        .await
        .expect_err("down");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

#[tokio::test]
async fn conversations_answers_usage_and_keys_round_trip() {
    use mtdesk_domain::Provider;
    use mtdesk_storage::NewAnswer;
    for db in databases().await {
        let s = &db.store;
        let a = s
            .insert_account(&account("conv@example.com"), "hash")
            .await
            .expect("a");
        let b = s
            .insert_account(&account("conv2@example.com"), "hash")
            .await
            .expect("b");
        let bot_a = s.insert_chatbot(&a.id, &bot("A")).await.expect("bot");
        assert!(
            matches!(
                s.create_conversation(&b.id, &bot_a.id, "api").await,
                Err(StorageError::NotFound)
            ),
            "{}",
            db.label
        );
        let conv = s
            .create_conversation(&a.id, &bot_a.id, "api")
            .await
            .expect("conv");
        assert!(s.find_conversation(&b.id, &bot_a.id, &conv).await.is_err());
        let record = |q: &str, answered: bool, score: Option<f64>| NewAnswer {
            question: q.into(),
            answer: "reply".into(),
            provider: if answered {
                "openrouter".into()
            } else {
                "offline".into()
            },
            model: if answered { "m".into() } else { String::new() },
            latency_ms: 12,
            prompt_tokens: 100,
            completion_tokens: 20,
            from_knowledge: score.is_some(),
            answered,
            top_score: score,
            retrieval: "[]".into(),
            fallbacks: "[]".into(),
            inbound: None,
            sources: None,
        };
        let first = s
            .record_exchange(&a.id, &bot_a.id, &conv, &record("q1", true, Some(0.9)))
            .await
            .expect("rec");
        let second = s
            .record_exchange(&a.id, &bot_a.id, &conv, &record("q2", false, None))
            .await
            .expect("rec");
        let msgs = s.recent_messages(&a.id, &conv, 10).await.expect("msgs");
        let roles: Vec<&str> = msgs.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            vec!["user", "assistant", "user", "assistant"],
            "{}",
            db.label
        );
        assert_eq!(msgs[2].content, "q2");
        assert_eq!(
            s.recent_messages(&a.id, &conv, 2).await.expect("msgs")[0].content,
            "q2",
            "the newest, oldest first"
        );
        assert!(
            s.recent_messages(&b.id, &conv, 10)
                .await
                .expect("msgs")
                .is_empty()
        );

        let usage = s.usage(&a.id, 0, i64::MAX).await.expect("usage");
        assert_eq!(usage.len(), 2, "{}: {usage:?}", db.label);
        let or = usage
            .iter()
            .find(|u| u.provider == "openrouter")
            .expect("or");
        assert_eq!(
            (
                or.answers,
                or.prompt_tokens,
                or.completion_tokens,
                or.unanswered
            ),
            (1, 100, 20, 0)
        );
        assert!(s.usage(&b.id, 0, i64::MAX).await.expect("usage").is_empty());

        let open = s
            .list_unanswered(&a.id, &bot_a.id, 0.5, 10)
            .await
            .expect("list");
        assert_eq!(open.len(), 1, "{}", db.label);
        assert_eq!(open[0].answer_id, second);
        assert!(matches!(
            s.resolve_answer(&b.id, &bot_a.id, &second).await,
            Err(StorageError::NotFound)
        ));
        s.resolve_answer(&a.id, &bot_a.id, &second)
            .await
            .expect("resolve");
        assert!(
            s.list_unanswered(&a.id, &bot_a.id, 0.5, 10)
                .await
                .expect("list")
                .is_empty()
        );
        assert_eq!(
            s.find_answer(&a.id, &first).await.expect("find").top_score,
            Some(0.9)
        );
        assert!(s.find_answer(&b.id, &first).await.is_err());

        s.upsert_provider_key(&a.id, Provider::Openrouter, "sealed-1", "abcd")
            .await
            .expect("key");
        s.upsert_provider_key(&a.id, Provider::Openrouter, "sealed-2", "wxyz")
            .await
            .expect("replace");
        let keys = s.list_provider_keys(&a.id).await.expect("keys");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].hint, "wxyz");
        assert_eq!(
            s.find_sealed_provider_key(&a.id, Provider::Openrouter)
                .await
                .expect("k")
                .as_deref(),
            Some("sealed-2")
        );
        assert_eq!(
            s.find_sealed_provider_key(&b.id, Provider::Openrouter)
                .await
                .expect("k"),
            None
        );

        // Deleting the chatbot takes its conversations, messages and answers along.
        s.delete_chatbot(&a.id, &bot_a.id).await.expect("delete");
        let left = catalogue::rows_referencing_account(s, a.id.as_str())
            .await
            .expect("scan");
        for (table, n) in left {
            if table == "daily_stats" {
                // The account's anonymized aggregates stay (its totals), without the chatbot's id.
                assert!(n > 0, "{}: the aggregates stay with the account", db.label);
                continue;
            }
            let expected = i64::from(matches!(table.as_str(), "accounts" | "provider_keys"));
            assert_eq!(n, expected, "{}: {table}", db.label);
        }
        let traces = catalogue::find_traces(s, &[bot_a.id.as_str()])
            .await
            .expect("scan");
        assert!(traces.is_empty(), "{}: {traces:?}", db.label);
    }
}
