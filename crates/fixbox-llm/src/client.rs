//! The seam every provider implements, and what all of them share: timeouts and collecting a stream.

use std::fmt;
use std::pin::Pin;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{Stream, StreamExt};

use crate::chat::{ChatRequest, Chunk, Finish};
use crate::error::LlmError;

/// A provider's answer as it arrives: [`Chunk::Delta`]s, then exactly one [`Chunk::Done`], or an error
/// as the last item. A stream that breaks off ends with [`LlmError::StreamBroken`], never quietly.
/// Dropping it cancels the request: the connection closes and the server stops generating.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<Chunk, LlmError>> + Send>>;

/// A chat model behind some server.
pub trait ModelClient: fmt::Debug + Send + Sync {
    /// The model's name as the server knows it.
    fn model(&self) -> &str;

    /// Streams the answer to `request`.
    fn stream(&self, request: &ChatRequest) -> ChunkStream;

    /// `text`'s length in tokens by the model's own tokenizer, where the server offers one.
    fn count_tokens<'a>(&'a self, _text: &'a str) -> BoxFuture<'a, Option<u64>> {
        Box::pin(async { None })
    }

    /// Whether the server is up: any HTTP answer counts (a busy engine is up) but "still loading"; a
    /// refused or unanswered connection does not. For telling "the engine is gone" from a failed call.
    fn reachable(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { true })
    }
}

/// How long a call may wait, and for what.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending the request to the first piece of text: the prompt is processed in this time, so
    /// on a CPU with a long prompt it must be generous.
    pub first_token: Duration,
    /// Between two pieces of the stream after the first.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self { connect: Duration::from_secs(10), first_token: Duration::from_secs(300), idle: Duration::from_secs(60) }
    }
}

/// Reads a stream to its end: the whole text and how it finished.
pub async fn collect(mut stream: ChunkStream) -> Result<(String, Finish), LlmError> {
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        match chunk? {
            Chunk::Delta(delta) => text.push_str(&delta),
            Chunk::Done(finish) => return Ok((text, finish)),
        }
    }
    Err(LlmError::Protocol { provider: "client".into(), reason: "the stream ended without its end marker".into() })
}
