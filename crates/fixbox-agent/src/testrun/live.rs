//! A test run's output as it arrives, for the event log: whole characters, in batches, up to a limit.

use std::time::Duration;

use fixbox_sandbox::OutputChunk;
use tokio::sync::mpsc;

/// The output a test run streams to the event log, at most: enough to watch it run. The run's summary
/// keeps the end of anything longer.
const LIVE_OUTPUT_BYTES: usize = 64 * 1024;

/// Output that arrives within this long of the first piece is recorded as one event.
const LIVE_BATCH: Duration = Duration::from_millis(50);

/// A test run's output as it arrives, as text in batches: a character split between two pieces waits
/// for its other half, and past [`LIVE_OUTPUT_BYTES`] the rest is left to the summary (said once).
pub(crate) struct LiveOutput {
    chunks: mpsc::UnboundedReceiver<OutputChunk>,
    /// Bytes of a character not yet complete.
    partial: Vec<u8>,
    /// Text of the batch being gathered; kept here so a batch cut short by the run's end is not lost.
    text: String,
    sent: usize,
    ended: bool,
}

impl LiveOutput {
    /// The live output, and where the run sends it.
    pub(crate) fn new() -> (Self, mpsc::UnboundedSender<OutputChunk>) {
        let (sender, chunks) = mpsc::unbounded_channel();
        (Self { chunks, partial: Vec::new(), text: String::new(), sent: 0, ended: false }, sender)
    }

    /// The next batch of text; `None` once the run has ended and all of it was given. Cancel-safe.
    pub(crate) async fn next(&mut self) -> Option<String> {
        if self.text.is_empty() {
            match self.chunks.recv().await {
                Some(chunk) => self.push(&chunk),
                None => self.end(),
            }
        }
        if !self.ended {
            let until = tokio::time::sleep(LIVE_BATCH);
            tokio::pin!(until);
            loop {
                tokio::select! {
                    () = &mut until => break,
                    chunk = self.chunks.recv() => match chunk {
                        Some(chunk) => self.push(&chunk),
                        None => {
                            self.end();
                            break;
                        }
                    },
                }
            }
        }
        (!self.text.is_empty()).then(|| std::mem::take(&mut self.text))
    }

    fn push(&mut self, chunk: &OutputChunk) {
        let (OutputChunk::Stdout(bytes) | OutputChunk::Stderr(bytes)) = chunk;
        self.partial.extend_from_slice(bytes);
        let complete = complete_prefix(&self.partial);
        let text = String::from_utf8_lossy(&self.partial[..complete]).into_owned();
        self.partial.drain(..complete);
        self.take(&text);
    }

    fn end(&mut self) {
        let rest = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
        self.take(&rest);
        self.ended = true;
    }

    fn take(&mut self, text: &str) {
        if self.sent >= LIVE_OUTPUT_BYTES {
            return;
        }
        let room = LIVE_OUTPUT_BYTES - self.sent;
        if text.len() <= room {
            self.text.push_str(text);
            self.sent += text.len();
            return;
        }
        let cut = text.floor_char_boundary(room);
        self.text.push_str(&text[..cut]);
        self.text.push_str("\n… (the output goes on; the end of it is in the run's summary)\n");
        self.sent = LIVE_OUTPUT_BYTES;
    }
}

/// How much of `bytes` ends on a whole UTF-8 character: a character is at most 4 bytes, so an
/// unfinished one starts within the last 3.
fn complete_prefix(bytes: &[u8]) -> usize {
    for back in 1..=bytes.len().min(3) {
        let byte = bytes[bytes.len() - back];
        if byte & 0xC0 != 0x80 {
            let width = match byte {
                0xC0..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF7 => 4,
                _ => 1,
            };
            return if width > back { bytes.len() - back } else { bytes.len() };
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdout(bytes: &[u8]) -> OutputChunk {
        OutputChunk::Stdout(bytes.to_vec().into())
    }

    #[tokio::test]
    async fn live_output_joins_a_character_split_between_pieces_and_ends_with_the_run() {
        let (mut live, sender) = LiveOutput::new();
        let snowman = "☃".as_bytes();
        sender.send(stdout(b"collected 3 items ")).unwrap();
        sender.send(stdout(&snowman[..1])).unwrap();
        sender.send(OutputChunk::Stderr(snowman[1..].to_vec().into())).unwrap();
        let first = live.next().await.unwrap();
        assert_eq!(first, "collected 3 items ☃");
        sender.send(stdout(b"\n1 failed")).unwrap();
        sender.send(stdout(&snowman[..2])).unwrap();
        drop(sender);
        // A character the run never finished is shown as what it is, and the output ends.
        assert_eq!(live.next().await.unwrap(), "\n1 failed\u{FFFD}");
        assert_eq!(live.next().await, None);
    }

    #[tokio::test]
    async fn live_output_stops_at_its_limit_and_says_so_once() {
        let (mut live, sender) = LiveOutput::new();
        let line = "x".repeat(999) + "\n";
        for _ in 0..100 {
            sender.send(stdout(line.as_bytes())).unwrap();
        }
        drop(sender);
        let mut all = String::new();
        while let Some(text) = live.next().await {
            all.push_str(&text);
        }
        let (head, note) = all.split_at(LIVE_OUTPUT_BYTES);
        assert!(head.bytes().all(|b| b == b'x' || b == b'\n'));
        assert_eq!(note, "\n… (the output goes on; the end of it is in the run's summary)\n");
    }

    #[test]
    fn a_complete_prefix_ends_before_an_unfinished_character() {
        let euro = "€".as_bytes();
        assert_eq!(complete_prefix(b"abc"), 3);
        assert_eq!(complete_prefix(euro), 3);
        assert_eq!(complete_prefix(&euro[..2]), 0);
        assert_eq!(complete_prefix(&[b'a', euro[0]]), 1);
        assert_eq!(complete_prefix("a😀".as_bytes()), 5);
    }
}
