//! The last few kilobytes a server wrote to stderr, kept for the report
//! when it fails to start or dies.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

/// Bytes of stderr kept per server.
pub const STDERR_TAIL_BYTES: usize = 4 * 1024;

/// Reads a child's stderr to its end in the background, keeping the tail.
#[derive(Debug)]
pub(crate) struct StderrTail {
    buffer: Arc<Mutex<VecDeque<u8>>>,
    reader: Option<JoinHandle<()>>,
}

impl StderrTail {
    /// Starts reading `stream`.
    pub(crate) fn spawn(mut stream: impl AsyncRead + Unpin + Send + 'static) -> StderrTail {
        let buffer = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_BYTES)));
        let sink = buffer.clone();
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 2048];
            loop {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut tail = sink.lock().unwrap_or_else(|e| e.into_inner());
                        tail.extend(&chunk[..n]);
                        let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                        tail.drain(..excess);
                    }
                }
            }
        });
        StderrTail {
            buffer,
            reader: Some(reader),
        }
    }

    /// A tail that stays empty (HTTP servers have no stderr of ours).
    pub(crate) fn none() -> StderrTail {
        StderrTail {
            buffer: Arc::new(Mutex::new(VecDeque::new())),
            reader: None,
        }
    }

    /// Waits up to `grace` for the stream to end (the process exited and its
    /// last words are in), then returns the tail.
    pub(crate) async fn settle(&mut self, grace: std::time::Duration) -> String {
        if let Some(reader) = self.reader.as_mut()
            && tokio::time::timeout(grace, reader).await.is_ok()
        {
            self.reader = None;
        }
        self.text()
    }

    /// The tail as text, trimmed, starting at a line boundary when it was
    /// cut.
    pub(crate) fn text(&self) -> String {
        let tail = self.buffer.lock().unwrap_or_else(|e| e.into_inner());
        let bytes: Vec<u8> = tail.iter().copied().collect();
        let full = tail.len() < STDERR_TAIL_BYTES;
        drop(tail);
        let text = String::from_utf8_lossy(&bytes);
        let text = if full {
            &text[..]
        } else {
            text.split_once('\n').map_or(&text[..], |(_, rest)| rest)
        };
        text.trim().to_string()
    }
}

impl Drop for StderrTail {
    fn drop(&mut self) {
        if let Some(reader) = self.reader.take() {
            reader.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_tail_from_a_line_boundary() {
        let mut text = String::new();
        for i in 0..1000 {
            text.push_str(&format!("line {i}\n"));
        }
        let mut tail = StderrTail::spawn(std::io::Cursor::new(text.into_bytes()));
        let kept = tail.settle(std::time::Duration::from_secs(5)).await;
        assert!(kept.ends_with("line 999"), "{kept}");
        assert!(kept.starts_with("line "), "{kept}");
        assert!(kept.len() <= STDERR_TAIL_BYTES);
    }

    #[tokio::test]
    async fn short_output_is_kept_whole() {
        let mut tail = StderrTail::spawn(std::io::Cursor::new(b"  only this\n".to_vec()));
        assert_eq!(
            tail.settle(std::time::Duration::from_secs(5)).await,
            "only this"
        );
        assert_eq!(StderrTail::none().text(), "");
    }
}
