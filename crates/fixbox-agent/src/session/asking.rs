//! One streamed model call: its request (sampling, grammar, room), its patch lines as events as they
//! arrive, and what it gave.

use std::time::{Duration, Instant};

use fixbox_llm::{CallEvent, ChatRequest, ErrorKind, FinishReason, LlmError};
use fixbox_patch::{EditFormat, PatchParser};
use fixbox_sandbox::Sandbox;
use futures::StreamExt;

use super::{Run, ms};
use crate::AgentError;
use crate::event::Event;
use crate::outcome::Outcome;
use crate::prompt::Prompt;

/// What one model call gave.
pub(super) enum Answer {
    /// `prompt_tokens`: the prompt as the engine counted it (0 when it did not say).
    Text {
        text: String,
        parser: Box<PatchParser>,
        prompt_tokens: u64,
    },
    Stop(Outcome),
}

/// How much a repeated failure raises the temperature, and the most it gets.
const TEMPERATURE_STEP: f32 = 0.3;
const MAX_TEMPERATURE: f32 = 1.0;

impl<S: Sandbox> Run<'_, S> {
    /// One streamed model call; its patch lines become events as they arrive. `grammar` constrains
    /// the answer where the routes take one.
    /// `repeats`: how many iterations in a row ended with the same failure. Each raises the temperature
    /// a step: at a low temperature a small model given the same prompt gives the same answer.
    /// `max_tokens`: the answer's room where less than the settings'.
    pub(super) async fn ask(
        &mut self,
        prompt: Prompt,
        grammar: Option<&str>,
        repeats: u32,
        max_tokens: Option<u64>,
    ) -> Result<Answer, AgentError> {
        if self.cancel.is_cancelled() {
            return Ok(Answer::Stop(Outcome::Cancelled));
        }
        self.log.record(Event::ModelStarted {
            iteration: self.iteration,
            prompt_tokens_estimate: prompt.tokens_estimate,
            trimmed_turns: prompt.trimmed_turns,
        })?;
        let settings = &self.request.model;
        let mut request = ChatRequest::new(prompt.messages);
        let bumped = settings.temperature + TEMPERATURE_STEP * repeats.saturating_sub(1) as f32;
        request.sampling.temperature = Some(bumped.min(MAX_TEMPERATURE).max(settings.temperature));
        request.sampling.top_p = Some(settings.top_p);
        let room = max_tokens.map_or(settings.max_tokens, |room| room.min(u64::from(settings.max_tokens)) as u32);
        request.sampling.max_tokens = Some(room);
        request.sampling.seed = settings.seed;
        // A search/replace answer is one block: the server stops at its end instead of the model
        // going on to explain itself.
        let block_end = (self.format == EditFormat::SearchReplace).then(|| ">>>>>>> REPLACE".to_string());
        request.sampling.stop = block_end.into_iter().chain(settings.stop.iter().cloned()).collect();
        let local = self.router.routes(&settings.task).is_ok_and(|routes| routes.iter().all(|r| r.local));
        if let Some(grammar) = grammar.filter(|_| settings.grammar && local) {
            request.sampling.extra.insert("grammar".into(), grammar.into());
        }

        let started = Instant::now();
        let mut stream = self.router.call(&settings.task, request, self.meter.clone());
        let mut parser = PatchParser::new(self.format);
        let mut answer = None;
        // Parsing the stream and writing its events is our work, not the model's: it is timed apart
        // and left out of the model's time.
        let mut handling = Duration::ZERO;
        let outcome = loop {
            let next = tokio::select! {
                next = stream.next() => next,
                () = self.cancel.cancelled() => break Some(Outcome::Cancelled),
                () = tokio::time::sleep_until(self.deadline.into()) => break Some(Outcome::WallTime),
            };
            let handled = Instant::now();
            match next {
                Some(Ok(CallEvent::Delta { text })) => {
                    for delta in parser.push(&text) {
                        self.log.record(Event::PatchDelta { iteration: self.iteration, delta })?;
                    }
                }
                Some(Ok(CallEvent::Discard { reason, .. })) => {
                    parser = PatchParser::new(self.format);
                    self.log.record(Event::ModelDiscard { iteration: self.iteration, reason })?;
                }
                Some(Ok(CallEvent::Attempt(attempt))) => {
                    self.log.record(Event::ModelAttempt { iteration: self.iteration, attempt })?;
                }
                Some(Ok(CallEvent::Done(record))) => {
                    answer = Some((record.text.clone(), record.finish_reason, record.usage.prompt));
                    self.log.record(Event::ModelCall { iteration: self.iteration, record })?;
                }
                Some(Err(err)) => break Some(model_failed(err)),
                None => break None,
            }
            handling += handled.elapsed();
        };
        // Dropping the stream cancels the call.
        drop(stream);
        self.timings.model_ms += ms(started.elapsed().saturating_sub(handling));
        if let Some(outcome) = outcome {
            return Ok(Answer::Stop(outcome));
        }
        let Some((mut text, finish, prompt_tokens)) = answer else {
            return Ok(Answer::Stop(Outcome::Error { message: "the model's answer ended without its end".into() }));
        };
        if finish == FinishReason::Stop && self.format == EditFormat::SearchReplace && parser.in_replace() {
            // The server stopped at the block's end marker, which it leaves out: put it back.
            let marker = if text.ends_with('\n') { ">>>>>>> REPLACE\n" } else { "\n>>>>>>> REPLACE\n" };
            text.push_str(marker);
            for delta in parser.push(marker) {
                self.log.record(Event::PatchDelta { iteration: self.iteration, delta })?;
            }
        }
        // The last line may have no newline (a diff that ends there): its deltas come only now.
        for delta in parser.close() {
            self.log.record(Event::PatchDelta { iteration: self.iteration, delta })?;
        }
        Ok(Answer::Text { text, parser: Box::new(parser), prompt_tokens })
    }
}

fn model_failed(err: LlmError) -> Outcome {
    match err.kind() {
        ErrorKind::Budget => Outcome::Budget { message: err.to_string() },
        _ => Outcome::Error { message: format!("the model call failed: {err}") },
    }
}
