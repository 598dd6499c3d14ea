//! Streaming chat (external-apis.md §7.1 "Streaming", §7.2 mid-stream errors, §7.5 `<think>`).

use crate::helpers::*;
use mtdesk_ai::providers::{ErrorKind, Provider, StreamEvent, Usage};
use mtdesk_testkit::fake_llm::{Behavior, MID_STREAM_ERROR_MESSAGE};
use std::time::{Duration, Instant};

#[tokio::test]
async fn streamed_deltas_concatenate_to_the_full_answer_with_usage_for_every_provider() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        let answer = "Yes, we ship to Canada. Délivery takes 5–7 days.";
        fake.reply_to("Do you ship to Canada?", answer);
        let rx = llm
            .chat_stream(&cfg(&fake), &request("Do you ship to Canada?"))
            .await
            .unwrap_or_else(|e| panic!("{provider:?}: {e}"));
        let (text, items) = collect(rx).await;
        assert_eq!(text, answer, "{provider:?}");
        let deltas = items
            .iter()
            .filter(|i| matches!(i, Ok(StreamEvent::Delta(_))))
            .count();
        assert!(
            deltas > 3,
            "{provider:?}: expected several deltas, got {deltas}"
        );
        assert_eq!(
            items.last(),
            Some(&Ok(StreamEvent::Done {
                usage: Some(Usage {
                    prompt_tokens: words("You are Acme's assistant.")
                        + words("Do you ship to Canada?"),
                    completion_tokens: words(answer),
                }),
                finish_reason: "stop".into()
            })),
            "{provider:?}"
        );
        let dones = items
            .iter()
            .filter(|i| matches!(i, Ok(StreamEvent::Done { .. })))
            .count();
        assert_eq!(dones, 1, "{provider:?}");
    }
}

#[tokio::test]
async fn streaming_request_asks_for_usage_with_stream_options() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        let rx = llm
            .chat_stream(&cfg(&fake), &request("Hi"))
            .await
            .expect("stream");
        collect(rx).await;
        let r = &fake.requests()[0];
        assert_eq!(r.path, "/v1/chat/completions");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(r.header("accept"), Some("text/event-stream"));
        assert_eq!(r.body["stream"], true, "{provider:?}");
        assert_eq!(
            r.body["stream_options"]["include_usage"], true,
            "{provider:?}"
        );
    }
}

#[tokio::test]
async fn minimax_streamed_reasoning_is_never_emitted_as_deltas() {
    let fake = fake(Provider::Minimax).await;
    let rx = client()
        .chat_stream(&cfg(&fake), &request("Can I return shoes?"))
        .await
        .expect("stream");
    let (text, items) = collect(rx).await;
    assert_eq!(text, "Echo: Can I return shoes?");
    for item in &items {
        if let Ok(StreamEvent::Delta(d)) = item {
            assert!(
                !d.contains("think") && !d.contains("customer wrote") && !d.contains('<'),
                "reasoning leaked: {d:?}"
            );
        }
    }
    assert!(matches!(items.last(), Some(Ok(StreamEvent::Done { .. }))));
}

#[tokio::test]
async fn cut_stream_ends_with_stream_cut_and_never_reports_done() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        fake.reply_to(
            "Hi",
            "A long answer that will be cut somewhere in the middle of it.",
        );
        fake.push(Behavior::CutStream);
        let rx = llm
            .chat_stream(&cfg(&fake), &request("Hi"))
            .await
            .expect("stream");
        let (text, items) = collect(rx).await;
        if provider != Provider::Minimax {
            // MiniMax's first chunks are reasoning, which is never shown.
            assert!(
                !text.is_empty(),
                "{provider:?}: some text arrived before the cut"
            );
        }
        assert!(
            !items
                .iter()
                .any(|i| matches!(i, Ok(StreamEvent::Done { .. }))),
            "{provider:?}: a cut stream must not be reported as Done"
        );
        match items.last() {
            Some(Err(e)) => assert_eq!(e.kind, ErrorKind::StreamCut, "{provider:?}: {e}"),
            other => panic!("{provider:?}: last item should be an error, got {other:?}"),
        }
        assert_eq!(
            fake.chat_requests().len(),
            1,
            "no retry once text was shown"
        );
    }
}

#[tokio::test]
async fn openrouter_mid_stream_error_event_ends_with_stream_cut_and_its_message() {
    let fake = fake(Provider::Openrouter).await;
    fake.reply_to(
        "Hi",
        "An answer that the upstream will abandon halfway through.",
    );
    fake.push(Behavior::MidStreamError);
    let rx = client()
        .chat_stream(&cfg(&fake), &request("Hi"))
        .await
        .expect("stream");
    let (_, items) = collect(rx).await;
    assert!(
        !items
            .iter()
            .any(|i| matches!(i, Ok(StreamEvent::Done { .. })))
    );
    match items.last() {
        Some(Err(e)) => {
            assert_eq!(e.kind, ErrorKind::StreamCut);
            assert_eq!(e.message, MID_STREAM_ERROR_MESSAGE);
        }
        other => panic!("expected a StreamCut, got {other:?}"),
    }
}

#[tokio::test]
async fn stalled_first_byte_of_a_stream_times_out() {
    let fake = fake(Provider::Fireworks).await;
    fake.push(Behavior::Stall(Duration::from_secs(3)));
    let mut c = cfg(&fake);
    c.timeouts.first_byte = Duration::from_millis(200);
    let started = Instant::now();
    let err = client()
        .chat_stream(&c, &request("Hi"))
        .await
        .expect_err("should time out");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert_eq!(err.attempts, 1, "a timeout is not retried");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn silence_mid_stream_ends_with_timeout_after_the_partial_text() {
    let fake = fake(Provider::Moonshot).await;
    fake.reply_to(
        "Hi",
        "Part of this arrives, then the provider goes quiet for a long while.",
    );
    fake.push(Behavior::PauseMidStream(Duration::from_secs(3)));
    let mut c = cfg(&fake);
    c.timeouts.idle = Duration::from_millis(200);
    let rx = client()
        .chat_stream(&c, &request("Hi"))
        .await
        .expect("stream");
    let (text, items) = collect(rx).await;
    assert!(!text.is_empty());
    assert!(
        !items
            .iter()
            .any(|i| matches!(i, Ok(StreamEvent::Done { .. })))
    );
    assert!(
        matches!(items.last(), Some(Err(e)) if e.kind == ErrorKind::Timeout),
        "{:?}",
        items.last()
    );
}

#[tokio::test]
async fn pause_shorter_than_the_idle_timeout_still_completes() {
    let fake = fake(Provider::Openrouter).await;
    fake.push(Behavior::PauseMidStream(Duration::from_millis(100)));
    let mut c = cfg(&fake);
    c.timeouts.idle = Duration::from_millis(1000);
    let rx = client()
        .chat_stream(&c, &request("Still here?"))
        .await
        .expect("stream");
    let (text, items) = collect(rx).await;
    assert_eq!(text, "Echo: Still here?");
    assert!(matches!(items.last(), Some(Ok(StreamEvent::Done { .. }))));
}

#[tokio::test]
async fn errors_before_the_first_byte_of_a_stream_are_retried() {
    let fake = fake(Provider::Openrouter).await;
    fake.push(Behavior::Status {
        code: 503,
        retry_after: None,
    });
    let rx = client()
        .chat_stream(&cfg(&fake), &request("Hi"))
        .await
        .expect("stream");
    let (text, items) = collect(rx).await;
    assert_eq!(text, "Echo: Hi");
    assert!(matches!(items.last(), Some(Ok(StreamEvent::Done { .. }))));
    assert_eq!(fake.chat_requests().len(), 2);
}

#[tokio::test]
async fn stream_with_a_chunk_that_is_not_json_ends_with_malformed() {
    let fake = fake(Provider::Fireworks).await;
    fake.push(Behavior::Malformed);
    let rx = client()
        .chat_stream(&cfg(&fake), &request("Hi"))
        .await
        .expect("stream");
    let (_, items) = collect(rx).await;
    assert!(
        !items
            .iter()
            .any(|i| matches!(i, Ok(StreamEvent::Done { .. })))
    );
    assert!(
        matches!(items.last(), Some(Err(e)) if e.kind == ErrorKind::Malformed),
        "{:?}",
        items.last()
    );
}

#[tokio::test]
async fn streaming_with_a_wrong_key_fails_before_returning_a_receiver() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        let mut c = cfg(&fake);
        c.api_key = Some("sk-wrong".into());
        let err = llm
            .chat_stream(&c, &request("Hi"))
            .await
            .expect_err("bad key");
        assert_eq!(err.kind, ErrorKind::BadKey, "{provider:?}: {err}");
        assert_eq!(fake.requests().len(), 1, "{provider:?}");
    }
}

#[tokio::test]
async fn dropping_the_receiver_stops_reading_the_stream() {
    let fake = fake(Provider::Openrouter).await;
    fake.push(Behavior::PauseMidStream(Duration::from_secs(3)));
    let mut rx = client()
        .chat_stream(&cfg(&fake), &request("Hi"))
        .await
        .expect("stream");
    let first = rx.recv().await.expect("an item");
    assert!(matches!(first, Ok(StreamEvent::Delta(_))));
    drop(rx);
    // Nothing to observe but the absence of a hang or panic; the fake's writer stops when the socket closes.
}
