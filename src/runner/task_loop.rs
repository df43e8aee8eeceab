//! The run's task loop: one task after another, or with `--jobs N` up to N
//! at once, each on its own thread.
//!
//! A task's pipeline does blocking work between its awaits (git2 snapshots,
//! file tools, waiting on check processes). Polled together on one tokio
//! task, concurrent pipelines would stall each other on every such call, so
//! each of the N workers is an OS thread that drives its task with
//! [`tokio::runtime::Handle::block_on`]: the runtime's timers, sockets and
//! child processes serve all of them, and a blocking call holds up only its
//! own task.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;

use super::announce::{display_path, finished_by_runner};
use super::isolation::Isolation;
use super::providers::TaskProvider;
use super::{Continuation, RestorePolicy, RunOptions};
use crate::events::{EventKind, EventSink, TaskOutcome};
use crate::pipeline::{self, Interrupt, TaskEnv};
use crate::store::RunDir;
use crate::task::Task;

/// With `--jobs N`, the k-th of the first N tasks starts k × this after the
/// first, so N tasks do not send their first requests in the same instant.
/// Short: the endpoint gate already caps what is in flight, and the last
/// worker starting (N − 1) × this late can add as much to the run's time.
pub(super) const STAGGER: Duration = Duration::from_millis(50);

/// What every task of the run shares.
pub(super) struct TaskLoop<'a> {
    pub(super) tasks: &'a [Task],
    pub(super) providers: &'a [TaskProvider],
    pub(super) continuation: Option<&'a Continuation>,
    pub(super) options: &'a RunOptions,
    pub(super) run_id: &'a str,
    pub(super) run_dir: &'a RunDir,
    pub(super) events: &'a EventSink,
    pub(super) interrupt: &'a Interrupt,
    /// Tasks create and remove their worktrees at the same time: each
    /// operation opens the repositories it needs and touches only its own
    /// worktree's files and registration.
    pub(super) isolation: Option<&'a Isolation>,
    pub(super) cwd: &'a Path,
}

/// How one task ended, and the line saying where its worktree was kept
/// (`--keep-worktrees`).
pub(super) struct Ended {
    pub(super) outcome: TaskOutcome,
    pub(super) kept_worktree: Option<String>,
}

impl TaskLoop<'_> {
    /// Runs every task, at most `jobs` at once, and returns how each ended,
    /// in task order whatever order they finished in.
    pub(super) async fn run_all(&self, jobs: usize) -> Vec<Ended> {
        if jobs <= 1 || self.tasks.len() <= 1 {
            let mut ended = Vec::with_capacity(self.tasks.len());
            for index in 0..self.tasks.len() {
                ended.push(self.run_one(index).await);
            }
            return ended;
        }
        let handle = tokio::runtime::Handle::current();
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Ended>>> =
            (0..self.tasks.len()).map(|_| Mutex::new(None)).collect();
        let workers = jobs.min(self.tasks.len());
        // The calling thread only waits for the workers; `block_in_place`
        // tells the runtime so.
        tokio::task::block_in_place(|| {
            std::thread::scope(|scope| {
                for worker in 0..workers {
                    let (handle, next, slots) = (&handle, &next, &slots);
                    scope.spawn(move || {
                        let delay = STAGGER * u32::try_from(worker).unwrap_or(u32::MAX);
                        handle.block_on(async {
                            tokio::select! {
                                () = tokio::time::sleep(delay) => {},
                                () = self.interrupt.wait() => {},
                            }
                        });
                        loop {
                            let index = next.fetch_add(1, Ordering::SeqCst);
                            if index >= self.tasks.len() {
                                break;
                            }
                            let ended = handle.block_on(self.run_one(index));
                            *slots[index].lock().unwrap_or_else(|e| e.into_inner()) = Some(ended);
                        }
                    });
                }
            });
        });
        slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    // A worker only stops early by panicking, which
                    // `run_one` catches; a slot left empty is an error all
                    // the same, never a pass.
                    .unwrap_or(Ended {
                        outcome: TaskOutcome::Error,
                        kept_worktree: None,
                    })
            })
            .collect()
    }

    fn restore_after(&self, index: usize) -> bool {
        match self.options.restore {
            // An isolated task's worktree is thrown away after it: nothing
            // to restore.
            _ if self.isolation.is_some() => false,
            RestorePolicy::Always => true,
            RestorePolicy::Never => false,
            RestorePolicy::Auto => index + 1 < self.tasks.len(),
        }
    }

    /// Runs the task at `index`: in its worktree when isolated, with a panic
    /// turned into its `error` outcome.
    async fn run_one(&self, index: usize) -> Ended {
        let task = &self.tasks[index];
        let ended = |outcome| Ended {
            outcome,
            kept_worktree: None,
        };
        let task_events = self.events.for_task(&task.name);
        let finished = self.continuation.and_then(|c| c.finished(&task.name));
        let (Some((spec, provider)), None) = (&self.providers[index], finished) else {
            // Finished before the run was resumed: its record stands.
            return ended(finished.unwrap_or(TaskOutcome::Error));
        };
        if self.interrupt.is_triggered() {
            task_events.emit(finished_by_runner(
                TaskOutcome::Interrupted,
                "not started: the run was interrupted".to_string(),
            ));
            return ended(TaskOutcome::Interrupted);
        }
        let isolated = match self.isolation.map(|isolation| {
            let resumed = self.continuation.and_then(|c| c.history(&task.name));
            isolation.enter(index, task, resumed, &task_events)
        }) {
            None => None,
            Some(Ok(isolated)) => Some(isolated),
            Some(Err(e)) => {
                let reason = e.to_string();
                task_events.emit(EventKind::Error {
                    message: reason.clone(),
                });
                task_events.emit(finished_by_runner(TaskOutcome::Error, reason));
                return ended(TaskOutcome::Error);
            }
        };
        let task = isolated.as_ref().map_or(task, |(task, _)| task);
        let env = TaskEnv {
            run_id: self.run_id,
            run_dir: self.run_dir,
            provider,
            model_spec: spec,
            file_display: display_path(&task.file, self.cwd),
            events: self.events,
            interrupt: self.interrupt,
            restore_after: self.restore_after(index),
            require_sandbox: self.options.require_sandbox,
            baseline_findings: self.options.baseline_findings.as_ref(),
            resume: self.continuation.and_then(|c| c.history(&task.name)),
            project_instructions: self.options.project_instructions,
            worktree: isolated
                .as_ref()
                .map(|(_, worktree)| worktree.root.as_path()),
        };
        // A panic inside a task must not lose the run's record: it becomes
        // the task's `error` outcome.
        let outcome = match AssertUnwindSafe(pipeline::run_task(&env, task))
            .catch_unwind()
            .await
        {
            Ok(outcome) => outcome,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".to_string());
                let reason = format!("internal error (please report it): {message}");
                task_events.emit(EventKind::Error {
                    message: reason.clone(),
                });
                task_events.emit(finished_by_runner(TaskOutcome::Error, reason));
                TaskOutcome::Error
            }
        };
        let mut kept_worktree = None;
        if let (Some(isolation), Some((_, worktree))) = (self.isolation, &isolated) {
            match isolation.leave(&task.name, worktree) {
                Ok(kept) => kept_worktree = kept,
                Err(message) => task_events.emit(EventKind::Warning { message }),
            }
        }
        Ended {
            outcome,
            kept_worktree,
        }
    }
}
