//! The providers of a run, built before anything runs, and the checks
//! made of them up front: models, secrets and the preflight.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::provider::{Gates, Provider, ProviderOptions};
use crate::redact::{self, Redactor};
use crate::task::Task;

use super::{Continuation, RunOptions};

/// A task's model spec and provider; `None` for a finished task of a
/// resumed run, which needs no model.
pub(super) type TaskProvider = Option<(String, Provider)>;

/// One provider per task, in task order. A bad model spec or a missing API
/// key is an error here, before anything ran.
pub(super) fn build(
    tasks: &[Task],
    options: &RunOptions,
    continuation: Option<&Continuation>,
    secrets: &Redactor,
) -> Result<Vec<TaskProvider>, Error> {
    let mut providers = Vec::with_capacity(tasks.len());
    // One gate per endpoint for the whole run: every task on an endpoint
    // shares its cap and its backoff.
    let gates = Gates::default();
    for task in tasks {
        // A finished task of a resumed run needs no model.
        if continuation.is_some_and(|c| c.finished(&task.name).is_some()) {
            providers.push(None);
            continue;
        }
        let spec = model_spec(task)?;
        let defaults = ProviderOptions::default();
        let endpoint = task.endpoint.as_ref();
        let provider_options = ProviderOptions {
            base_dir: task
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            record: options
                .record
                .as_ref()
                .map(|r| PathBuf::from(r.replace("{task}", &task.name))),
            price: task.pricing,
            redactor: secrets.clone(),
            idle_timeout: endpoint
                .and_then(|e| e.idle_timeout)
                .unwrap_or(defaults.idle_timeout),
            request_timeout: endpoint
                .and_then(|e| e.request_timeout)
                .unwrap_or(defaults.request_timeout),
            gates: gates.clone(),
            max_requests: options.max_requests,
            endpoint: task.endpoint.clone(),
            ..defaults
        };
        let provider =
            Provider::from_model_spec(&spec, &provider_options).map_err(|e| Error::Task {
                task: task.name.clone(),
                file: task.file.clone(),
                source: Box::new(Error::Provider(e)),
            })?;
        providers.push(Some((spec, provider)));
    }
    Ok(providers)
}

/// One cheap request to each distinct endpoint of the run, before any
/// check or stage: an unreachable server or a refused key ends the run
/// here (exit 3) instead of after the baseline checks.
pub(super) async fn preflight(tasks: &[Task], providers: &[TaskProvider]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::new();
    // A resumed run's finished tasks have no provider and need no preflight.
    for (task, (_, provider)) in tasks
        .iter()
        .zip(providers)
        .filter_map(|(task, provider)| Some((task, provider.as_ref()?)))
    {
        let Some(key) = provider.preflight_key() else {
            continue;
        };
        if !seen.insert(key) {
            continue;
        }
        provider.preflight().await.map_err(|e| Error::Task {
            task: task.name.clone(),
            file: task.file.clone(),
            source: Box::new(Error::Provider(e)),
        })?;
    }
    Ok(())
}

/// Every secret of the run but the providers' keys: secret-looking
/// variables of the environment and of the tasks' `env:`, and `--redact`.
pub(super) fn run_secrets(tasks: &[Task], redact: &[String]) -> Redactor {
    let process = std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)));
    let declared = tasks
        .iter()
        .flat_map(|task| task.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut secrets = redact::secret_env_values(process.chain(declared));
    secrets.extend(redact.iter().cloned());
    Redactor::new(secrets)
}

/// The task's `provider:model`; the loader already applied `--model`.
fn model_spec(task: &Task) -> Result<String, Error> {
    task.model.clone().ok_or_else(|| {
        Error::InvalidInput(format!(
            "task `{}` ({}) has no model (hint: set `model:` in the task file, pass --model, or set KKRUN_MODEL)",
            task.name,
            task.file.display()
        ))
    })
}
