//! Line framing for streamed answers: server-sent events (`data: ...` lines, OpenAI and Mistral) and
//! newline-delimited JSON (Ollama). Lines are cut on bytes, so a character split across two network
//! chunks is never broken.

#[derive(Debug, Default)]
pub(crate) struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// The lines `bytes` completes, without their `\n` or `\r\n`.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let Some(last) = self.pending.iter().rposition(|&b| b == b'\n') else { return Vec::new() };
        let complete: Vec<u8> = self.pending.drain(..=last).collect();
        complete
            .split(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.is_empty())
            .map(|line| String::from_utf8_lossy(line).into_owned())
            .collect()
    }

    /// How many bytes wait for their line's end.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// What is left after the last newline, when the stream has ended.
    pub(crate) fn rest(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let line = String::from_utf8_lossy(&rest).trim().to_string();
        (!line.is_empty()).then_some(line)
    }
}

/// The payload of an SSE `data:` line; `None` for comments (`: ping`), `event:`/`id:` lines.
pub(crate) fn sse_data(line: &str) -> Option<&str> {
    let data = line.strip_prefix("data:")?;
    Some(data.strip_prefix(' ').unwrap_or(data))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn lines_are_cut_across_chunks_and_crlf_is_dropped() {
        let mut lines = Lines::default();
        assert!(lines.push(b"data: {\"a\"").is_empty());
        assert_eq!(lines.push(b":1}\r\n\r\ndata: [DO"), vec!["data: {\"a\":1}"]);
        assert_eq!(lines.push(b"NE]\n"), vec!["data: [DONE]"]);
        assert_eq!(lines.rest(), None);
        lines.push(b"{\"done\":true}");
        assert_eq!(lines.rest().as_deref(), Some("{\"done\":true}"));
    }

    #[test]
    fn sse_data_takes_data_lines_only() {
        assert_eq!(sse_data("data: {}"), Some("{}"));
        assert_eq!(sse_data("data:{}"), Some("{}"));
        assert_eq!(sse_data(": keep-alive"), None);
        assert_eq!(sse_data("event: message"), None);
    }

    proptest! {
        /// However the bytes are split into chunks, the same lines come out, multi-byte text intact.
        #[test]
        fn any_chunking_gives_the_same_lines(
            texts in proptest::collection::vec("[a-zé€😀 ]{0,12}", 1..8),
            cuts in proptest::collection::vec(0usize..200, 0..10),
        ) {
            let stream: String = texts.iter().map(|t| format!("data: {t}\n")).collect();
            let bytes = stream.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut lines = Lines::default();
            let mut got = Vec::new();
            let mut from = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                got.extend(lines.push(&bytes[from..cut]));
                from = cut;
            }
            let want: Vec<String> = texts.iter().map(|t| format!("data: {t}")).collect();
            prop_assert_eq!(got, want);
        }
    }
}
