//! The failure policy against a misbehaving server over loopback: retries,
//! Retry-After, timeouts, broken and garbage streams, error messages.
//! Timeouts and backoff are shortened through `ProviderOptions`, so every
//! test finishes in a few seconds at most.

mod support;

use std::time::{Duration, Instant};

use kkrun::events::EventKind;
use kkrun::provider::script::{ScriptedTurn, encode_openai_sse};
use kkrun::provider::{Provider, ProviderError, ProviderOptions, RetryPolicy};
use serde_json::json;
use support::turns::{TEST_KEY, TurnRun, fast_options, run_turn, sample_request};
use support::{Part, Reply, TestServer, fixture, refused_url};

fn openai(options: &ProviderOptions) -> Provider {
    Provider::from_model_spec("openai:gpt-4.1", options).unwrap()
}

fn ok_stream() -> Reply {
    Reply::sse(fixture("sse/openai/text_only.sse"))
}

/// `(attempt, wait_ms, reason)` of every retry event.
fn retries(run: &TurnRun) -> Vec<(u32, u64, String)> {
    run.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ProviderRetry {
                attempt,
                wait_ms,
                reason,
            } => Some((*attempt, *wait_ms, reason.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn retry_after_seconds_is_honoured_then_success() {
    let server = TestServer::start(vec![
        Reply::json(
            429,
            &json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
        )
        .header("retry-after", "1"),
        ok_stream(),
    ])
    .await;
    let started = Instant::now();
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    assert_eq!(run.response().text, "The parser rejects ISO weeks.");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    let retries = retries(&run);
    assert_eq!(retries.len(), 1);
    assert_eq!(retries[0].0, 1);
    assert_eq!(retries[0].1, 1000);
    assert!(retries[0].2.contains("HTTP 429"), "{}", retries[0].2);
}

#[tokio::test]
async fn retry_after_is_capped() {
    let server = TestServer::start(vec![
        Reply::json(503, &json!({"error": "maintenance"})).header("retry-after", "3600"),
        ok_stream(),
    ])
    .await;
    let mut options = fast_options(&server.url());
    options.retry.max_retry_after = Duration::from_millis(150);
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    run.response();
    assert_eq!(retries(&run)[0].1, 150);
}

#[tokio::test]
async fn three_server_errors_then_success() {
    let server = TestServer::start(vec![
        Reply::status(500, "text/plain", "internal error"),
        Reply::status(502, "text/plain", "bad gateway"),
        Reply::status(503, "text/plain", "unavailable"),
        ok_stream(),
    ])
    .await;
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    assert_eq!(run.response().text, "The parser rejects ISO weeks.");
    assert_eq!(server.requests().len(), 4);
    let attempts: Vec<u32> = retries(&run).iter().map(|r| r.0).collect();
    assert_eq!(attempts, [1, 2, 3]);
    for (_, wait_ms, _) in retries(&run) {
        assert!(
            wait_ms <= 40,
            "backoff capped by the test policy: {wait_ms}"
        );
    }
}

#[tokio::test]
async fn persistent_server_errors_give_up_after_max_attempts() {
    let replies = (0..6)
        .map(|_| {
            Reply::status(
                502,
                "text/html",
                "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr><center>nginx</center></body></html>",
            )
            .header("x-request-id", "req_proxy_1")
        })
        .collect();
    let server = TestServer::start(replies).await;
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    let error = run.error();
    assert_eq!(error.exit_code(), 3);
    assert_eq!(server.requests().len(), 5);
    let message = error.to_string();
    assert!(message.contains("gave up after 5 attempts"), "{message}");
    assert!(message.contains("openai: HTTP 502"), "{message}");
    assert!(message.contains("request id req_proxy_1"), "{message}");
    assert!(message.contains("<h1>502 Bad Gateway</h1>"), "{message}");
    assert_eq!(retries(&run).len(), 4);
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_says_check_the_key() {
    let server = TestServer::start(vec![
        Reply::json(
            401,
            &json!({"error": {"message": format!("Incorrect API key provided: {TEST_KEY}. You can find your API key at https://platform.openai.com/account/api-keys."), "type": "invalid_request_error", "code": "invalid_api_key"}}),
        )
        .header("x-request-id", "req_abc123"),
    ])
    .await;
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    let error = run.error();
    assert_eq!(error.exit_code(), 3);
    assert_eq!(server.requests().len(), 1);
    assert!(retries(&run).is_empty());
    let message = error.to_string();
    assert!(
        message.starts_with("openai: HTTP 401 (request id req_abc123): "),
        "{message}"
    );
    assert!(message.contains("check OPENAI_API_KEY"), "{message}");
    assert!(message.contains("Incorrect API key provided"), "{message}");
    assert!(!message.contains(TEST_KEY), "{message}");
    assert!(!format!("{error:?}").contains(TEST_KEY));
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    for status in [400u16, 403, 404] {
        let server = TestServer::start(vec![Reply::json(
            status,
            &json!({"error": {"message": "nope", "type": "invalid_request_error"}}),
        )])
        .await;
        let run = run_turn(
            &openai(&fast_options(&server.url())),
            &sample_request("gpt-4.1"),
        )
        .await;
        let error = run.error();
        assert!(matches!(error, ProviderError::Http { status: s, .. } if *s == status));
        assert_eq!(
            server.requests().len(),
            1,
            "HTTP {status} must not be retried"
        );
        if status == 404 {
            assert!(error.to_string().contains("check the model name `gpt-4.1`"));
        }
    }
}

#[tokio::test]
async fn error_bodies_are_cut_to_500_bytes() {
    let long = format!("{{\"error\": \"{}\"}}", "x".repeat(5000));
    let server = TestServer::start(vec![Reply::status(400, "application/json", long)]).await;
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    match run.error() {
        ProviderError::Http { body, .. } => {
            assert!(body.len() <= 504, "{}", body.len());
            assert!(body.ends_with('…'));
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn connection_reset_after_content_retries_the_whole_turn_once() {
    let partial = encode_openai_sse(&ScriptedTurn::text("a partial reply that is never used"));
    let cut = partial.len() / 2;
    let broken = Reply::sse(partial.as_bytes()[..cut].to_vec())
        .then(Part::Delay(Duration::from_millis(20)))
        .then(Part::Reset);
    let server = TestServer::start(vec![broken, ok_stream()]).await;
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    // Only the second attempt's output is the result.
    assert_eq!(run.response().text, "The parser rejects ISO weeks.");
    assert!(run.deltas.concat().starts_with("a partial reply"));
    let retries = retries(&run);
    assert_eq!(retries.len(), 1);
    assert!(
        retries[0].2.contains("after the reply had started"),
        "{}",
        retries[0].2
    );
    assert!(retries[0].2.contains("whole turn once"), "{}", retries[0].2);
}

#[tokio::test]
async fn a_second_break_after_content_fails() {
    let partial = encode_openai_sse(&ScriptedTurn::text("a partial reply that breaks"));
    let broken = || {
        Reply::sse(partial.as_bytes()[..partial.len() / 2].to_vec())
            .then(Part::Delay(Duration::from_millis(20)))
            .then(Part::Reset)
    };
    let server = TestServer::start(vec![broken(), broken(), ok_stream()]).await;
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    let error = run.error();
    assert_eq!(error.exit_code(), 3);
    assert!(
        error.to_string().contains("gave up after 2 attempts"),
        "{error}"
    );
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn reset_before_the_first_event_is_retried_normally() {
    let server = TestServer::start(vec![
        Reply::sse(Vec::new()).then(Part::Reset),
        Reply::sse(b"data: {\"choi".to_vec())
            .then(Part::Delay(Duration::from_millis(20)))
            .then(Part::Reset),
        ok_stream(),
    ])
    .await;
    let run = run_turn(
        &openai(&fast_options(&server.url())),
        &sample_request("gpt-4.1"),
    )
    .await;
    assert_eq!(run.response().text, "The parser rejects ISO weeks.");
    let retries = retries(&run);
    assert_eq!(retries.len(), 2);
    // Reset before the headers: the request itself failed.
    assert!(
        retries[0].2.contains("connection closed"),
        "{}",
        retries[0].2
    );
    // Reset inside the first event.
    assert!(
        retries[1].2.contains("before the first event"),
        "{}",
        retries[1].2
    );
}

#[tokio::test]
async fn stalled_stream_hits_the_idle_timeout_and_is_retried() {
    let text = fixture("sse/openai/text_only.sse");
    let first_event = text.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let stalled = Reply::sse(text[..first_event].to_vec()).then(Part::Stall);
    let server = TestServer::start(vec![stalled, ok_stream()]).await;
    let mut options = fast_options(&server.url());
    options.idle_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    assert_eq!(run.response().text, "The parser rejects ISO weeks.");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let retries = retries(&run);
    assert!(retries[0].2.contains("idle timeout"), "{}", retries[0].2);
}

#[tokio::test]
async fn stalled_stream_every_time_fails_within_bounded_time() {
    let stalled = || Reply::sse(Vec::new()).then(Part::Stall);
    let server = TestServer::start((0..3).map(|_| stalled()).collect()).await;
    let mut options = fast_options(&server.url());
    options.idle_timeout = Duration::from_millis(200);
    options.retry.max_attempts = 3;
    let started = Instant::now();
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    let error = run.error();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(error.exit_code(), 3);
    let message = error.to_string();
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(
        message.contains("no data for 200ms (idle timeout)"),
        "{message}"
    );
}

#[tokio::test]
async fn headers_that_never_come_hit_the_idle_timeout() {
    let server = TestServer::start(vec![
        ok_stream().delay_head(Duration::from_secs(30)),
        ok_stream(),
    ])
    .await;
    let mut options = fast_options(&server.url());
    options.idle_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    assert_eq!(run.response().text, "The parser rejects ISO weeks.");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(retries(&run)[0].2.contains("no response from"));
}

#[tokio::test]
async fn overall_request_timeout_bounds_a_trickling_stream() {
    // A byte every 50 ms never trips the idle timeout; the overall one ends it.
    let body = fixture("sse/openai/text_only.sse");
    let trickle = Reply::sse_every(&body, 1, Duration::from_millis(50));
    let server = TestServer::start(vec![trickle.clone(), trickle]).await;
    let mut options = fast_options(&server.url());
    options.request_timeout = Duration::from_millis(400);
    options.retry.max_attempts = 2;
    let started = Instant::now();
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    let error = run.error();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        error.to_string().contains("request timeout (400ms)"),
        "{error}"
    );
}

#[tokio::test]
async fn garbage_bytes_fail_after_retries() {
    let garbage: Vec<u8> = (0..2048u32).map(|i| (i * 7919 % 251) as u8).collect();
    let server = TestServer::start(
        (0..3)
            .map(|_| Reply::status(200, "application/octet-stream", garbage.clone()))
            .collect(),
    )
    .await;
    let mut options = fast_options(&server.url());
    options.retry.max_attempts = 3;
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    let error = run.error();
    assert_eq!(error.exit_code(), 3);
    assert_eq!(server.requests().len(), 3);
    assert!(
        error.to_string().contains("gave up after 3 attempts"),
        "{error}"
    );
}

#[tokio::test]
async fn html_page_with_status_200_is_not_taken_for_a_reply() {
    let page = "<!DOCTYPE html><html><body><h1>Access denied by corporate proxy</h1></body></html>";
    let server = TestServer::start(
        (0..2)
            .map(|_| Reply::status(200, "text/html; charset=utf-8", page))
            .collect(),
    )
    .await;
    let mut options = fast_options(&server.url());
    options.retry.max_attempts = 2;
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    let message = run.error().to_string();
    assert!(message.contains("not a model event stream"), "{message}");
    assert!(message.contains("content-type text/html"), "{message}");
    assert!(
        message.contains("Access denied by corporate proxy"),
        "{message}"
    );
}

#[tokio::test]
async fn invalid_json_event_is_a_clear_stream_error() {
    let body = "data: {\"choices\": [oops\n\n";
    let server = TestServer::start(vec![Reply::sse(body), Reply::sse(body)]).await;
    let mut options = fast_options(&server.url());
    options.retry.max_attempts = 2;
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    let message = run.error().to_string();
    assert!(message.contains("not valid JSON"), "{message}");
    assert!(message.contains("{\"choices\": [oops"), "{message}");
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    let url = refused_url();
    let options = ProviderOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(10),
            max_retry_after: Duration::from_millis(10),
        },
        ..fast_options(&url)
    };
    let run = run_turn(&openai(&options), &sample_request("gpt-4.1")).await;
    let error = run.error();
    assert_eq!(error.exit_code(), 3);
    let message = error.to_string();
    assert!(message.contains("gave up after 3 attempts"), "{message}");
    assert!(
        message.contains(&format!("{url}/v1/chat/completions")),
        "{message}"
    );
    assert_eq!(retries(&run).len(), 2);
}
