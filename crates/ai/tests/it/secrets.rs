//! The API key never leaks into errors, their `Display`/`Debug`, or a config's `Debug`.

use crate::helpers::*;
use mtdesk_ai::providers::{ProviderError, StreamEvent};
use mtdesk_testkit::fake_llm::Behavior;

fn assert_no_key(e: &ProviderError, key: &str, what: &str) {
    for shown in [e.message.clone(), format!("{e}"), format!("{e:?}")] {
        assert!(!shown.contains(key), "{what}: key leaked in {shown:?}");
    }
}

#[tokio::test]
async fn api_key_never_appears_in_any_error_or_debug_output() {
    let llm = client();
    for provider in HTTP_PROVIDERS {
        let fake = fake(provider).await;
        let c = cfg(&fake);
        let debug = format!("{c:?}");
        assert!(
            !debug.contains(KEY),
            "{provider:?}: config Debug leaks the key: {debug}"
        );
        assert!(debug.contains("[redacted]"));

        // The fake echoes a wrong key back in its message, as some providers do.
        let mut wrong = cfg(&fake);
        let wrong_key = "sk-wrong-echoed-back-42";
        wrong.api_key = Some(wrong_key.into());
        let e = llm.chat(&wrong, &request("Hi")).await.expect_err("bad key");
        assert_no_key(&e, wrong_key, "echoed key");
        assert!(
            e.message.contains("[redacted]"),
            "{provider:?}: {}",
            e.message
        );
        assert!(!format!("{wrong:?}").contains(wrong_key));

        for b in [
            Behavior::Status {
                code: 429,
                retry_after: None,
            },
            Behavior::Status {
                code: 500,
                retry_after: None,
            },
            Behavior::Status {
                code: 400,
                retry_after: None,
            },
            Behavior::Malformed,
        ] {
            for _ in 0..3 {
                fake.push(b.clone());
            }
            let e = llm
                .chat(&c, &request("Hi"))
                .await
                .expect_err("scripted failure");
            assert_no_key(&e, KEY, &format!("{provider:?} {b:?}"));
            // Drop leftovers of the script by answering until it is empty.
            for _ in 0..5 {
                if llm.chat(&c, &request("Hi")).await.is_ok() {
                    break;
                }
            }
        }

        fake.push(Behavior::CutStream);
        let rx = llm.chat_stream(&c, &request("Hi")).await.expect("stream");
        let (_, items) = collect(rx).await;
        for item in items {
            if let Err(e) = item {
                assert_no_key(&e, KEY, "stream cut");
            } else if let Ok(StreamEvent::Delta(d)) = item {
                assert!(!d.contains(KEY));
            }
        }
    }
}

#[tokio::test]
async fn a_network_error_to_a_url_with_the_key_in_it_is_redacted() {
    // Some proxies take the key in the URL; whatever the address, the key must not leak.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let fake = fake(mtdesk_ai::providers::Provider::OpenaiCompat).await;
    let mut c = cfg(&fake);
    c.base_url = format!("http://127.0.0.1:{port}/{KEY}/v1");
    c.retry.max_attempts = 1;
    let e = client()
        .chat(&c, &request("Hi"))
        .await
        .expect_err("refused");
    assert_no_key(&e, KEY, "network error");
}
