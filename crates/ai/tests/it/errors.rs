//! Error mapping and retries (external-apis.md §7.1 "Errors", §7.2–§7.5 provider specifics).

use crate::helpers::*;
use mtdesk_ai::providers::{ErrorKind, Provider, ProviderConfig};
use mtdesk_testkit::fake_llm::Behavior;
use std::time::{Duration, Instant};

fn status(code: u16) -> Behavior {
    Behavior::Status {
        code,
        retry_after: None,
    }
}

#[tokio::test]
async fn rate_limit_429_with_retry_after_is_waited_out_then_succeeds_for_every_provider() {
    let mut tasks = tokio::task::JoinSet::new();
    for provider in HTTP_PROVIDERS {
        tasks.spawn(async move {
            let fake = fake(provider).await;
            fake.push(Behavior::Status {
                code: 429,
                retry_after: Some(1),
            });
            let started = Instant::now();
            let r = client()
                .chat(&cfg(&fake), &request("Hi"))
                .await
                .unwrap_or_else(|e| panic!("{provider:?}: {e}"));
            assert_eq!(r.attempts, 2, "{provider:?}");
            assert_eq!(r.content, "Echo: Hi", "{provider:?}");
            assert_eq!(fake.chat_requests().len(), 2, "{provider:?}");
            assert!(
                started.elapsed() >= Duration::from_millis(900),
                "{provider:?}: Retry-After: 1 was not honoured ({:?})",
                started.elapsed()
            );
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("provider task");
    }
}

#[tokio::test]
async fn server_errors_are_retried_up_to_max_attempts_then_unavailable() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        for _ in 0..3 {
            fake.push(status(500));
        }
        let err = llm
            .chat(&cfg(&fake), &request("Hi"))
            .await
            .expect_err("500s");
        assert_eq!(err.kind, ErrorKind::Unavailable, "{provider:?}: {err}");
        assert_eq!(err.status, Some(500));
        assert_eq!(err.attempts, 3, "{provider:?}");
        assert_eq!(fake.chat_requests().len(), 3, "{provider:?}");
        assert!(!err.message.is_empty());
    }
}

#[tokio::test]
async fn request_timeout_408_and_502_are_retried_like_server_errors() {
    let fake = fake(Provider::Openrouter).await;
    fake.push(status(408));
    fake.push(status(502));
    let r = client()
        .chat(&cfg(&fake), &request("Hi"))
        .await
        .expect("third try works");
    assert_eq!(r.attempts, 3);
}

#[tokio::test]
async fn wrong_key_is_bad_key_without_retry_for_every_provider() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        let mut c = cfg(&fake);
        c.api_key = Some("sk-not-the-right-one".into());
        let err = llm.chat(&c, &request("Hi")).await.expect_err("bad key");
        assert_eq!(err.kind, ErrorKind::BadKey, "{provider:?}: {err}");
        assert_eq!(err.attempts, 1, "{provider:?}");
        assert_eq!(
            fake.requests().len(),
            1,
            "{provider:?}: exactly one request"
        );
    }
}

#[tokio::test]
async fn scripted_401_is_bad_key_and_never_retried() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        fake.push(status(401));
        let err = llm
            .chat(&cfg(&fake), &request("Hi"))
            .await
            .expect_err("401");
        assert_eq!(err.kind, ErrorKind::BadKey, "{provider:?}");
        assert_eq!(err.status, Some(401));
        assert_eq!(fake.requests().len(), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn unknown_model_is_invalid_request_naming_the_model() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        let mut req = request("Hi");
        req.model = "vendor/no-such-model".into();
        let err = llm
            .chat(&cfg(&fake), &req)
            .await
            .expect_err("unknown model");
        assert_eq!(err.kind, ErrorKind::InvalidRequest, "{provider:?}: {err}");
        let expected = if provider == Provider::Openrouter {
            400
        } else {
            404
        };
        assert_eq!(err.status, Some(expected), "{provider:?}");
        assert!(
            err.message.contains("vendor/no-such-model"),
            "{provider:?}: {}",
            err.message
        );
        assert_eq!(fake.requests().len(), 1, "{provider:?}: 4xx is not retried");
    }
}

#[tokio::test]
async fn payment_required_402_is_no_credits() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        fake.push(status(402));
        let err = llm
            .chat(&cfg(&fake), &request("Hi"))
            .await
            .expect_err("402");
        assert_eq!(err.kind, ErrorKind::NoCredits, "{provider:?}");
        assert_eq!(err.attempts, 1);
    }
}

#[tokio::test]
async fn moonshot_403_means_insufficient_balance_not_a_bad_key() {
    let fake = fake(Provider::Moonshot).await;
    fake.push(status(403));
    let err = client()
        .chat(&cfg(&fake), &request("Hi"))
        .await
        .expect_err("403");
    assert_eq!(err.kind, ErrorKind::NoCredits);
    assert!(err.message.contains("balance"), "{}", err.message);
}

#[tokio::test]
async fn forbidden_403_is_a_bad_key_for_fireworks() {
    let fake = fake(Provider::Fireworks).await;
    fake.push(status(403));
    let err = client()
        .chat(&cfg(&fake), &request("Hi"))
        .await
        .expect_err("403");
    assert_eq!(err.kind, ErrorKind::BadKey);
}

#[tokio::test]
async fn persistent_429_without_retry_after_ends_rate_limited_after_max_attempts() {
    let fake = fake(Provider::Moonshot).await;
    for _ in 0..3 {
        fake.push(status(429));
    }
    let err = client()
        .chat(&cfg(&fake), &request("Hi"))
        .await
        .expect_err("429s");
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.attempts, 3);
    assert_eq!(fake.chat_requests().len(), 3);
}

#[tokio::test]
async fn retry_after_beyond_the_total_budget_gives_up_at_once() {
    let fake = fake(Provider::Openrouter).await;
    fake.push(Behavior::Status {
        code: 429,
        retry_after: Some(1),
    });
    let mut c = cfg(&fake);
    c.timeouts.total = Duration::from_millis(500);
    let started = Instant::now();
    let err = client().chat(&c, &request("Hi")).await.expect_err("429");
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.attempts, 1);
    assert!(started.elapsed() < Duration::from_millis(400));
}

#[tokio::test]
async fn stalled_non_streaming_answer_times_out_within_the_total_budget() {
    let fake = fake(Provider::Openrouter).await;
    fake.push(Behavior::Stall(Duration::from_secs(3)));
    let mut c = cfg(&fake);
    c.timeouts.total = Duration::from_millis(300);
    let started = Instant::now();
    let err = client().chat(&c, &request("Hi")).await.expect_err("stall");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert_eq!(err.attempts, 1);
    assert!(started.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn malformed_json_body_is_malformed_for_every_provider() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        fake.push(Behavior::Malformed);
        let err = llm
            .chat(&cfg(&fake), &request("Hi"))
            .await
            .expect_err("malformed");
        assert_eq!(err.kind, ErrorKind::Malformed, "{provider:?}: {err}");
        assert_eq!(err.attempts, 1, "{provider:?}");
    }
}

#[tokio::test]
async fn minimax_http_200_base_resp_1004_is_bad_key() {
    let fake = fake(Provider::Minimax).await;
    fake.push(status(1004));
    let err = client()
        .chat(&cfg(&fake), &request("Hi"))
        .await
        .expect_err("1004");
    assert_eq!(err.kind, ErrorKind::BadKey, "{err}");
    assert_eq!(err.status, Some(200));
    assert!(err.message.contains("1004"), "{}", err.message);
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn minimax_base_resp_1002_rate_limit_is_retried_and_1008_is_no_credits() {
    let llm = client();
    let fake = fake(Provider::Minimax).await;
    fake.push(status(1002));
    let r = llm
        .chat(&cfg(&fake), &request("Hi"))
        .await
        .expect("retried");
    assert_eq!(r.attempts, 2);

    fake.push(status(1008));
    let err = llm
        .chat(&cfg(&fake), &request("Hi"))
        .await
        .expect_err("1008");
    assert_eq!(err.kind, ErrorKind::NoCredits);
}

#[tokio::test]
async fn minimax_base_resp_error_on_a_streaming_request_is_mapped_before_any_delta() {
    let fake = fake(Provider::Minimax).await;
    fake.push(status(1004));
    let err = client()
        .chat_stream(&cfg(&fake), &request("Hi"))
        .await
        .expect_err("1004");
    assert_eq!(err.kind, ErrorKind::BadKey);
}

#[tokio::test]
async fn unreachable_server_is_a_network_error_after_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut c = ProviderConfig::new(
        Provider::Fireworks,
        format!("http://127.0.0.1:{port}/v1"),
        Some(KEY.into()),
    );
    c.retry.base_delay = Duration::from_millis(5);
    let err = client()
        .chat(&c, &request("Hi"))
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Network, "{err}");
    assert_eq!(err.attempts, 3);
    assert_eq!(err.status, None);
}

#[tokio::test]
async fn offline_or_missing_key_or_url_is_not_configured_without_any_request() {
    let llm = client();
    let fake = fake(Provider::Openrouter).await;

    let mut c = cfg(&fake);
    c.api_key = None;
    let err = llm.chat(&c, &request("Hi")).await.expect_err("no key");
    assert_eq!(err.kind, ErrorKind::NotConfigured);

    let mut c = cfg(&fake);
    c.api_key = Some("   ".into());
    assert_eq!(
        llm.list_models(&c).await.expect_err("blank key").kind,
        ErrorKind::NotConfigured
    );

    let mut c = cfg(&fake);
    c.base_url = String::new();
    assert_eq!(
        llm.chat_stream(&c, &request("Hi"))
            .await
            .expect_err("no url")
            .kind,
        ErrorKind::NotConfigured
    );

    let mut c = cfg(&fake);
    c.provider = Provider::Offline;
    assert_eq!(
        llm.test_key(&c, None).await.expect_err("offline").kind,
        ErrorKind::NotConfigured
    );
    assert!(fake.requests().is_empty());
}

#[test]
fn only_transient_kinds_are_retryable_and_every_kind_has_an_owner_message() {
    use ErrorKind::*;
    for kind in [
        BadKey,
        NoCredits,
        InvalidRequest,
        RateLimited,
        Unavailable,
        Timeout,
        Network,
        Malformed,
        StreamCut,
        NotConfigured,
    ] {
        assert_eq!(
            kind.is_retryable(),
            matches!(kind, RateLimited | Unavailable | Network),
            "{kind:?}"
        );
        assert!(kind.owner_message().ends_with('.'), "{kind:?}");
    }
    assert_eq!(
        BadKey.owner_message(),
        "The API key was refused by the provider."
    );
}
