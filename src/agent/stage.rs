//! One stage as a bounded conversation: send the conversation and the
//! stage's tools to the model, run the tool calls it makes, feed the results
//! back, until the model calls a finishing tool or a limit runs out.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::budget::{BudgetTracker, Exhausted, StageLimits};
use super::compact::{compact, default_context_window, fixed_tokens, messages_tokens};
use super::guard::{LoopGuard, Repeat, repeat_warning};
use super::request::{AgentError, FinishTool, StageEnd, StageOutcome, StageRequest};
use crate::events::{EventKind, EventSink, ToolOutcome};
use crate::provider::{Message, Provider, StopReason, ToolCall, ToolSpec, TurnRequest, Usage};
use crate::task::Stage;
use crate::tools::process::cap_text;
use crate::tools::{ToolContext, ToolResult, ToolSet, execute};

/// Bytes of a tool call's arguments and output kept in its event.
const EVENT_ARGUMENTS_HEAD: usize = 1536;
const EVENT_ARGUMENTS_TAIL: usize = 512;
const EVENT_OUTPUT_HEAD: usize = 1024;
const EVENT_OUTPUT_TAIL: usize = 3072;

/// The answer to a call that came after the stage ended in the same turn.
const NOT_RUN: &str = "not run: the stage ended";

/// Runs one stage to its end.
///
/// Limits are checked before every model call: time (the stage's and the
/// task's), the task's tokens and cost (`budget`, shared by all stages),
/// and the stage's turns. Tool calls of one reply run in order and are all
/// answered. Within the stage every request extends the previous one
/// byte for byte (system prompt, tools and earlier messages never change) so
/// provider prompt caches apply; compaction, logged as an event, is the only
/// exception.
///
/// Cancel-safe: dropping the future mid-command kills that command's
/// process group; usage of the turns completed so far stays in `budget`.
pub async fn run_stage(
    provider: &Provider,
    ctx: &ToolContext,
    request: StageRequest,
    budget: &mut BudgetTracker,
    events: &EventSink,
) -> Result<StageOutcome, AgentError> {
    let mut run = StageRun::new(provider, ctx, request, events)?;
    let end = run.drive(budget).await?;
    Ok(run.into_outcome(end))
}

struct StageRun<'a> {
    provider: &'a Provider,
    ctx: &'a ToolContext,
    events: &'a EventSink,
    stage: Stage,
    system: String,
    cache_key: Option<String>,
    tool_set: ToolSet,
    tools: Vec<ToolSpec>,
    finish_tools: Vec<FinishTool>,
    /// What the model sees (compacted when needed).
    messages: Vec<Message>,
    /// Everything, never compacted.
    transcript: Vec<Message>,
    protected: usize,
    window: u64,
    limits: StageLimits,
    guard: LoopGuard,
    turns: u32,
    usage: Usage,
    cost_usd: Option<f64>,
    tool_calls: BTreeMap<String, u32>,
    /// The provider's input+output count of the last turn: the next request
    /// is at least this big.
    last_reported_tokens: u64,
    /// Requests refused as too long for the context window so far.
    context_retries: u32,
}

/// How often a stage compacts and retries after the provider refused a
/// request as too long, before the error ends it.
const MAX_CONTEXT_RETRIES: u32 = 3;

impl<'a> StageRun<'a> {
    fn new(
        provider: &'a Provider,
        ctx: &'a ToolContext,
        request: StageRequest,
        events: &'a EventSink,
    ) -> Result<StageRun<'a>, AgentError> {
        if request.finish_tools.is_empty() {
            return Err(AgentError::InvalidRequest(format!(
                "the {} stage has no finishing tool, so it could only end by running out of budget",
                request.stage
            )));
        }
        let mut tools = ctx.tools.specs(request.tool_set);
        tools.extend(ctx.extra_specs());
        for finish in &request.finish_tools {
            if tools.iter().any(|t| t.name == finish.spec.name) {
                return Err(AgentError::InvalidRequest(format!(
                    "the finishing tool `{}` is offered twice or shadows a tool of the stage",
                    finish.spec.name
                )));
            }
            tools.push(finish.spec.clone());
        }
        let window = request
            .context_window
            .unwrap_or_else(|| default_context_window(provider.model_name()));
        Ok(StageRun {
            provider,
            ctx,
            events,
            stage: request.stage,
            system: request.system_prompt,
            cache_key: request.cache_key,
            tool_set: request.tool_set,
            tools,
            finish_tools: request.finish_tools,
            protected: request.messages.len(),
            transcript: request.messages.clone(),
            messages: request.messages,
            window,
            limits: StageLimits {
                max_turns: request.max_turns,
                started: Instant::now(),
                timeout: request.timeout,
            },
            guard: LoopGuard::default(),
            turns: 0,
            usage: Usage::default(),
            cost_usd: Some(0.0),
            tool_calls: BTreeMap::new(),
            last_reported_tokens: 0,
            context_retries: 0,
        })
    }

    async fn drive(&mut self, budget: &mut BudgetTracker) -> Result<StageEnd, AgentError> {
        loop {
            if let Some(exhausted) = self.limits.check(self.turns, budget, Instant::now()) {
                return Ok(self.exhausted(exhausted));
            }
            self.compact_if_needed();

            let request = TurnRequest {
                model: self.provider.model_name().to_string(),
                system: self.system.clone(),
                messages: self.messages.clone(),
                tools: self.tools.clone(),
                max_output_tokens: None,
                temperature: None,
                cache_key: self.cache_key.clone(),
            };
            let turn_started = Instant::now();
            let mut ignore_text = |_: &str| {};
            let turn = self.provider.turn(&request, &mut ignore_text, self.events);
            let Some(response) = until(self.limits.deadline(budget), turn).await else {
                let exhausted = self.limits.timeout_at(budget, Instant::now());
                return Ok(self.exhausted(exhausted));
            };
            let response = match response {
                Ok(response) => response,
                // The server's window is smaller than assumed: shrink the
                // assumption to what was just refused, compact, try again.
                Err(error) if error.is_context_too_long() && self.shrink_window() => continue,
                Err(error) => return Err(error.into()),
            };

            self.turns += 1;
            let cost = self.provider.cost_usd(&response.usage);
            budget.record(response.usage, cost);
            self.usage += response.usage;
            self.cost_usd = match (self.cost_usd, cost) {
                (Some(sum), Some(cost)) => Some(sum + cost),
                _ => None,
            };
            self.last_reported_tokens = response.usage.total();
            self.events.emit(EventKind::ModelTurn {
                turn: self.turns,
                usage: response.usage,
                cost_usd: cost,
                tool_calls: response.tool_calls.len(),
                text_chars: response.text.chars().count(),
                duration_ms: millis(turn_started.elapsed()),
            });
            if budget.take_unknown_price_warning() {
                self.events.emit(EventKind::Warning {
                    message: format!(
                        "the price of `{}` is unknown, so the task's max_cost_usd cannot be enforced; the token and time budgets still apply",
                        self.provider.model_spec()
                    ),
                });
            }

            let empty = response.text.trim().is_empty() && response.tool_calls.is_empty();
            if self.guard.observe_reply(empty) {
                return Ok(self.stuck("the model sent two empty replies in a row".to_string()));
            }
            if empty {
                self.push(Message::User {
                    content: format!(
                        "[kkrun] Your reply was empty. Nobody reads or answers messages during this run: keep working with the tools, and end the stage by calling {}.",
                        self.finish_names()
                    ),
                });
                continue;
            }
            self.push(Message::Assistant {
                content: response.text.clone(),
                tool_calls: response.tool_calls.clone(),
                reasoning: response.reasoning.clone(),
            });
            if response.tool_calls.is_empty() {
                let why = if response.stop_reason == StopReason::MaxTokens {
                    "Your reply was cut off at the output-token limit. Work in smaller steps"
                } else {
                    "You replied without calling a tool. Nobody reads or answers messages during this run"
                };
                self.push(Message::User {
                    content: format!(
                        "[kkrun] {why}: keep working with the tools, and end the stage by calling {}.",
                        self.finish_names()
                    ),
                });
                continue;
            }

            if let Some(end) = self.run_calls(&response.tool_calls, budget).await {
                return Ok(end);
            }
        }
    }

    /// Handles the calls of one reply in order; every call gets an answer.
    /// Returns how the stage ends, when one of them ends it.
    async fn run_calls(&mut self, calls: &[ToolCall], budget: &BudgetTracker) -> Option<StageEnd> {
        let mut ended: Option<StageEnd> = None;
        for call in calls {
            if ended.is_some() {
                self.answer(
                    call,
                    NOT_RUN.to_string(),
                    ToolOutcome::Refused,
                    Duration::ZERO,
                );
                continue;
            }
            let warning = match self.guard.observe_call(call) {
                Repeat::Fine => None,
                Repeat::Warn(repeats) => Some(repeats),
                Repeat::Stuck(repeats) => {
                    let reason = format!(
                        "the model made the same `{}` call with identical arguments {repeats} times in a row",
                        call.name
                    );
                    self.answer(
                        call,
                        format!("{NOT_RUN}: {reason}"),
                        ToolOutcome::Refused,
                        Duration::ZERO,
                    );
                    ended = Some(self.stuck(reason));
                    continue;
                }
            };
            *self.tool_calls.entry(call.name.clone()).or_insert(0) += 1;

            let started = Instant::now();
            let mut result = if let Some(index) = self.finish_index(&call.name) {
                let (result, finished) = self.finish_call(index, call);
                if let Some(arguments) = finished {
                    ended = Some(StageEnd::Finished {
                        tool: call.name.clone(),
                        arguments,
                    });
                }
                result
            } else if !self.ctx.tools.offers(self.tool_set, &call.name)
                && !self.ctx.offers_extra(&call.name)
            {
                self.refuse_unoffered(call)
            } else {
                let run = execute(self.ctx, self.tool_set, call);
                match until(self.limits.deadline(budget), run).await {
                    Some(result) => result,
                    None => {
                        let exhausted = self.limits.timeout_at(budget, Instant::now());
                        ended = Some(self.exhausted(exhausted));
                        ToolResult {
                            content: "interrupted: the time limit ran out while this tool was running (a running command's process group was killed)".to_string(),
                            outcome: ToolOutcome::Error,
                        }
                    }
                }
            };
            if let Some(repeats) = warning {
                result
                    .content
                    .push_str(&repeat_warning(&call.name, repeats));
                self.events.emit(EventKind::LoopWarning {
                    tool: call.name.clone(),
                    repeats,
                });
            }
            self.answer(call, result.content, result.outcome, started.elapsed());
            let violations = self.ctx.take_violations();
            if !violations.is_empty() {
                for violation in &violations {
                    self.events.emit(EventKind::PolicyViolation {
                        command: violation.command.clone(),
                        changes: violation.changes.clone(),
                        reverted: violation.reverted,
                        revert_error: violation.revert_error.clone(),
                        reason: violation.reason.clone(),
                    });
                }
                // A finishing call in the same turn does not outweigh it.
                ended = Some(StageEnd::PolicyViolation { violations });
            }
        }
        ended
    }

    fn finish_index(&self, name: &str) -> Option<usize> {
        self.finish_tools.iter().position(|f| f.spec.name == name)
    }

    /// Validates a finishing call: the result for the model, and the parsed
    /// arguments when the stage ends.
    fn finish_call(&self, index: usize, call: &ToolCall) -> (ToolResult, Option<Value>) {
        let name = &call.name;
        let arguments = match call.parsed_arguments() {
            Ok(arguments) => arguments,
            Err(e) => {
                return (
                    ToolResult {
                        content: format!(
                            "`{name}` was not accepted: its arguments are not valid JSON ({e}). Call `{name}` again with a JSON object matching its schema."
                        ),
                        outcome: ToolOutcome::Error,
                    },
                    None,
                );
            }
        };
        match (self.finish_tools[index].validate)(&arguments) {
            Ok(()) => (
                ToolResult {
                    content: format!("accepted; the {} stage ends here.", self.stage),
                    outcome: ToolOutcome::Ok,
                },
                Some(arguments),
            ),
            Err(problem) => (
                ToolResult {
                    content: format!(
                        "`{name}` was not accepted: {problem}. Fix this and call `{name}` again."
                    ),
                    outcome: ToolOutcome::Error,
                },
                None,
            ),
        }
    }

    fn refuse_unoffered(&self, call: &ToolCall) -> ToolResult {
        let offered: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
        let known = self.ctx.tools.get(&call.name).is_some();
        let content = if known {
            let why = if self.stage.writes() {
                String::new()
            } else {
                " (it may not change files)".to_string()
            };
            format!(
                "`{}` is not available in the {} stage{why}; the tools here are: {}",
                call.name,
                self.stage,
                offered.join(", ")
            )
        } else {
            format!(
                "there is no tool named `{}`; the tools here are: {}",
                call.name,
                offered.join(", ")
            )
        };
        ToolResult {
            content,
            outcome: ToolOutcome::Refused,
        }
    }

    /// Records the answer to `call` in the conversation and as an event.
    fn answer(&mut self, call: &ToolCall, content: String, outcome: ToolOutcome, took: Duration) {
        self.events.emit(EventKind::ToolCall {
            call_id: call.id.clone(),
            tool: call.name.clone(),
            arguments: cap_text(&call.arguments, EVENT_ARGUMENTS_HEAD, EVENT_ARGUMENTS_TAIL),
            outcome,
            output: cap_text(&content, EVENT_OUTPUT_HEAD, EVENT_OUTPUT_TAIL),
            duration_ms: millis(took),
        });
        self.push(Message::Tool {
            call_id: call.id.clone(),
            content,
            is_error: outcome != ToolOutcome::Ok,
        });
    }

    fn push(&mut self, message: Message) {
        self.transcript.push(message.clone());
        self.messages.push(message);
    }

    /// After the provider refused the request as too long for its context
    /// window: assumes a window of 3/4 of the refused request and compacts
    /// to fit it. False when nothing could be compacted (or after
    /// [`MAX_CONTEXT_RETRIES`] tries), so the error ends the stage.
    fn shrink_window(&mut self) -> bool {
        if self.context_retries >= MAX_CONTEXT_RETRIES {
            return false;
        }
        self.context_retries += 1;
        let fixed = fixed_tokens(&self.system, &self.tools);
        let refused = (fixed + messages_tokens(&self.messages)).max(self.last_reported_tokens);
        self.window = self.window.min(refused / 4 * 3).max(1);
        let before = messages_tokens(&self.messages);
        self.compact_if_needed();
        messages_tokens(&self.messages) < before
    }

    fn compact_if_needed(&mut self) {
        let fixed = fixed_tokens(&self.system, &self.tools);
        if let Some(report) = compact(
            &mut self.messages,
            fixed,
            self.last_reported_tokens,
            self.protected,
            self.window,
        ) {
            // The provider's count described the old, longer conversation.
            self.last_reported_tokens = 0;
            self.events.emit(EventKind::ContextCompacted {
                before_tokens: report.before_tokens,
                after_tokens: report.after_tokens,
                elided_outputs: report.elided_outputs,
                summarized_messages: report.summarized_messages,
            });
        }
    }

    fn exhausted(&self, exhausted: Exhausted) -> StageEnd {
        self.events.emit(EventKind::BudgetExhausted {
            budget: exhausted.kind,
            used: exhausted.used,
            limit: exhausted.limit,
        });
        StageEnd::from_budget(exhausted.kind)
    }

    fn stuck(&self, reason: String) -> StageEnd {
        self.events.emit(EventKind::LoopStuck {
            reason: reason.clone(),
        });
        StageEnd::Stuck { reason }
    }

    fn finish_names(&self) -> String {
        let names: Vec<String> = self
            .finish_tools
            .iter()
            .map(|f| format!("`{}`", f.spec.name))
            .collect();
        names.join(" or ")
    }

    fn into_outcome(self, end: StageEnd) -> StageOutcome {
        StageOutcome {
            end,
            turns: self.turns,
            usage: self.usage,
            cost_usd: self.cost_usd,
            tool_calls: self.tool_calls,
            messages: self.transcript,
            duration_ms: millis(self.limits.started.elapsed()),
        }
    }
}

/// Runs `work` until `deadline`; `None` when the deadline came first (the
/// work is dropped, which kills any command it was running).
async fn until<T>(deadline: Option<Instant>, work: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(deadline) => tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work)
            .await
            .ok(),
        None => Some(work.await),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
