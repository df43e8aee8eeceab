//! End to end with `openai-responses:`: the real binary runs a task against
//! a loopback server speaking the Responses API stream; every request
//! carries the task's and stage's `prompt_cache_key`, `store: false`, and
//! the function calls and outputs of the stage so far.

mod e2e_support;

use std::io::{BufRead, BufReader, Read, Write};

use e2e_support::{Fixture, TaskFile, finish, fix_add, plan, read_calc, review};
use kkrun::provider::script::encode_responses_sse;
use serde_json::Value;

/// Serves one scripted stream per request (one connection each) and
/// returns the request bodies.
fn serve(listener: std::net::TcpListener, bodies: Vec<String>) -> Vec<Value> {
    let mut requests = Vec::new();
    for body in bodies {
        let Ok((stream, _)) = listener.accept() else {
            break;
        };
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut request = vec![0u8; length];
        reader.read_exact(&mut request).unwrap();
        requests.push(serde_json::from_slice(&request).unwrap());
        let mut stream = reader.into_inner();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }
    requests
}

#[test]
fn every_request_carries_the_cache_key_of_its_task_and_stage() {
    let turns = [
        read_calc(),
        plan(),
        fix_add(),
        finish("done"),
        review("approve"),
    ];
    let bodies: Vec<String> = turns.iter().map(encode_responses_sse).collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || serve(listener, bodies));
    let fx = Fixture::new();
    let task = fx.add_task(&TaskFile::new("cache-keys", &[]).model("openai-responses:gpt-5-codex"));
    let output = fx.run_live(address, &task);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests = server.join().unwrap();
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r["prompt_cache_key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "kkrun/cache-keys/blueprint",
            "kkrun/cache-keys/blueprint",
            "kkrun/cache-keys/code",
            "kkrun/cache-keys/code",
            "kkrun/cache-keys/preview",
        ]
    );
    for request in &requests {
        assert_eq!(request["store"], false);
        assert_eq!(request["model"], "gpt-5-codex");
    }
    // The blueprint's second request answers its first call.
    let input = requests[1]["input"].as_array().unwrap();
    let kinds: Vec<&str> = input
        .iter()
        .map(|item| item["type"].as_str().unwrap_or("user"))
        .collect();
    assert_eq!(kinds, ["user", "function_call", "function_call_output"]);
    assert_eq!(input[1]["call_id"], input[2]["call_id"]);
}
