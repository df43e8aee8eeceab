//! From raw task entries to resolved [`Task`]s: merge `defaults:`, fill in
//! documented defaults, and check what needs the file system (workspace,
//! cassettes).
//!
//! The merge works on the raw `Option` fields, so a value keeps the position
//! it was written at, whether in the task or in `defaults:`.
//!
//! `pricing` is replaced whole rather than merged: its three numbers
//! describe one model, so a task's `pricing` without `cached_input` must not
//! pick up the cached price of whatever model `defaults:` was priced for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::config::Origins;
use super::diagnostic::{Position, SourceFile, TaskFileError};
use super::matrix::MatrixModel;
use super::parse::{check_model_form, check_provider_known};
use super::raw::{
    BudgetSettings, DebugLimits, OutputSchemaSetting, PreviewLimits, ShellSettings, StageLimits,
    StagesSettings, TaskEntry, TaskSettings, ToolsSettings,
};
use super::resolved::{Budget, Check, ShellPolicy, StageSettings, Task, TaskKind};
use crate::output_schema::OutputSchema;
use crate::provider::ModelPrice;

/// Default check timeout.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// Merges `defaults` under `task`: the task's key wins, except that the maps
/// `stages`, `budget`, `tools.shell`, `env` and `mcp` merge key by key (`pricing`
/// is one price, so it is replaced whole).
pub(crate) fn merge(task: TaskSettings, defaults: &TaskSettings) -> TaskSettings {
    let defaults = defaults.clone();
    // `model` and `models` are one choice: a task that makes it takes
    // neither from the defaults.
    let (model, models) = if task.model.is_some() || task.models.is_some() {
        (task.model, task.models)
    } else {
        (defaults.model, defaults.models)
    };
    TaskSettings {
        kind: task.kind.or(defaults.kind),
        workspace: task.workspace.or(defaults.workspace),
        model,
        models,
        context: task.context.or(defaults.context),
        checks: task.checks.or(defaults.checks),
        stages: merge_maps(task.stages, defaults.stages, |task, defaults| {
            StagesSettings {
                blueprint: merge_maps(task.blueprint, defaults.blueprint, |task, defaults| {
                    StageLimits {
                        max_turns: task.max_turns.or(defaults.max_turns),
                    }
                }),
                code: merge_maps(task.code, defaults.code, |task, defaults| StageLimits {
                    max_turns: task.max_turns.or(defaults.max_turns),
                }),
                debug: merge_maps(task.debug, defaults.debug, |task, defaults| DebugLimits {
                    max_turns: task.max_turns.or(defaults.max_turns),
                    max_rounds: task.max_rounds.or(defaults.max_rounds),
                }),
                preview: merge_maps(task.preview, defaults.preview, |task, defaults| {
                    PreviewLimits {
                        max_turns: task.max_turns.or(defaults.max_turns),
                        advisory: task.advisory.or(defaults.advisory),
                    }
                }),
            }
        }),
        budget: merge_maps(task.budget, defaults.budget, |task, defaults| {
            BudgetSettings {
                max_tokens: task.max_tokens.or(defaults.max_tokens),
                max_cost_usd: task.max_cost_usd.or(defaults.max_cost_usd),
                timeout: task.timeout.or(defaults.timeout),
            }
        }),
        tools: merge_maps(task.tools, defaults.tools, |task, defaults| ToolsSettings {
            shell: merge_maps(task.shell, defaults.shell, |task, defaults| ShellSettings {
                allow: task.allow.or(defaults.allow),
                deny: task.deny.or(defaults.deny),
                timeout: task.timeout.or(defaults.timeout),
                writable: task.writable.or(defaults.writable),
                network: task.network.or(defaults.network),
            }),
        }),
        on_failure: task.on_failure.or(defaults.on_failure),
        fail_on: task.fail_on.or(defaults.fail_on),
        env: merge_maps(task.env, defaults.env, |task, defaults| {
            let mut merged: Vec<_> = defaults
                .into_iter()
                .filter(|(name, _)| !task.iter().any(|(own, _)| own.value == name.value))
                .collect();
            merged.extend(task);
            merged
        }),
        pricing: task.pricing.or(defaults.pricing),
        context_window: task.context_window.or(defaults.context_window),
        output_schema: task.output_schema.or(defaults.output_schema),
        instructions: task.instructions.or(defaults.instructions),
        setup: task.setup.or(defaults.setup),
        copy_ignored: task.copy_ignored.or(defaults.copy_ignored),
        mcp: merge_maps(task.mcp, defaults.mcp, |task, defaults| {
            let mut merged: Vec<_> = defaults
                .into_iter()
                .filter(|(name, _)| !task.iter().any(|(own, _)| own.value == name.value))
                .collect();
            merged.extend(task);
            merged
        }),
    }
}

fn merge_maps<T>(task: Option<T>, defaults: Option<T>, both: impl FnOnce(T, T) -> T) -> Option<T> {
    match (task, defaults) {
        (Some(task), Some(defaults)) => Some(both(task, defaults)),
        (task, defaults) => task.or(defaults),
    }
}

/// The files a merged task's values come from, and the providers its
/// model may name.
pub(crate) struct Sources<'a> {
    /// The task file.
    pub(crate) task: &'a SourceFile,
    /// Configuration files that supplied checked values.
    pub(crate) origins: &'a Origins,
    /// Named providers of the task's configuration.
    pub(crate) providers: &'a [&'a str],
}

/// A resolved task and its model matrix (`models:`), empty without one.
pub(crate) struct Resolved {
    pub(crate) task: Task,
    pub(crate) models: Vec<MatrixModel>,
}

/// Resolves one merged task; filesystem problems go to `errors`.
pub(crate) fn resolve(
    sources: &Sources<'_>,
    entry: TaskEntry,
    settings: TaskSettings,
    errors: &mut Vec<TaskFileError>,
) -> Option<Resolved> {
    let source = sources.task;
    let dir = base_dir(&source.path);
    let name_location = entry.name.referenced;
    if let Some(fail_on) = &settings.fail_on
        && settings.kind.as_ref().map(|k| k.value) != Some(TaskKind::BugHunt)
    {
        errors.push(
            Problem::new(
                format!(
                    "`fail_on` applies only to `kind: bug-hunt`, and task `{}` is not a bug hunt",
                    entry.name.value
                ),
                "remove `fail_on`, or set `kind: bug-hunt` (in `defaults:`, give `fail_on` to the bug hunts themselves)",
            )
            .at(origin(&sources.origins.fail_on, source).at(fail_on.referenced)),
        );
    }
    let workspace = check_workspace(
        source,
        origin(&sources.origins.workspace, source),
        &dir,
        settings.workspace.as_ref(),
        name_location,
    );
    let model = match &settings.model {
        Some(spec) => match resolve_model(&spec.value, &dir, Some(sources.providers)) {
            Ok(resolved) => Some(resolved),
            Err(problem) => {
                errors.push(problem.at(origin(&sources.origins.model, source).at(spec.referenced)));
                None
            }
        },
        None => None,
    };
    let models_source = origin(&sources.origins.models, source);
    let mut models = Vec::new();
    for spec in settings.models.iter().flat_map(|list| &list.value) {
        let position = models_source.at(spec.referenced);
        match resolve_model(&spec.value, &dir, Some(sources.providers)) {
            Ok(resolved) => models.push(MatrixModel {
                written: spec.value.clone(),
                resolved,
                position,
            }),
            Err(problem) => errors.push(problem.at(position)),
        }
    }
    let instructions = check_instructions(
        origin(&sources.origins.instructions, source),
        &dir,
        settings.instructions.as_ref(),
        errors,
    );
    let workspace = match workspace {
        Ok(path) => path,
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    let matrix_failed = settings
        .models
        .as_ref()
        .is_some_and(|list| list.value.len() != models.len());
    if settings.model.is_some() && model.is_none() || matrix_failed {
        return None;
    }
    let output_schema = match settings.output_schema {
        Some(setting) => match resolve_output_schema(&setting.value, &dir) {
            Ok(schema) => Some(schema),
            Err(problem) => {
                errors.push(problem.at(source.at(setting.referenced)));
                return None;
            }
        },
        None => None,
    };

    let stages = settings.stages.unwrap_or_default();
    let mut stage_settings = StageSettings::default();
    let turns = |limits: Option<Spanned<u32>>, fallback: u32| limits.map_or(fallback, |s| s.value);
    if let Some(blueprint) = stages.blueprint {
        stage_settings.blueprint_max_turns =
            turns(blueprint.max_turns, stage_settings.blueprint_max_turns);
    }
    if let Some(code) = stages.code {
        stage_settings.code_max_turns = turns(code.max_turns, stage_settings.code_max_turns);
    }
    if let Some(debug) = stages.debug {
        stage_settings.debug_max_turns = turns(debug.max_turns, stage_settings.debug_max_turns);
        stage_settings.debug_max_rounds = turns(debug.max_rounds, stage_settings.debug_max_rounds);
    }
    if let Some(preview) = stages.preview {
        stage_settings.preview_max_turns =
            turns(preview.max_turns, stage_settings.preview_max_turns);
        stage_settings.preview_advisory = preview
            .advisory
            .map_or(stage_settings.preview_advisory, |s| s.value);
    }

    let mut budget = Budget::default();
    if let Some(raw) = settings.budget {
        if let Some(tokens) = raw.max_tokens {
            budget.max_tokens = Some(tokens.value);
        }
        if let Some(cost) = raw.max_cost_usd {
            budget.max_cost_usd = Some(cost.value);
        }
        if let Some(timeout) = raw.timeout {
            budget.timeout = Some(timeout.value);
        }
    }

    let mut shell = ShellPolicy::default();
    if let Some(raw) = settings.tools.and_then(|tools| tools.shell) {
        if let Some(allow) = raw.allow {
            shell.allow = values(allow);
        }
        for pattern in raw.deny.map(values).unwrap_or_default() {
            if !shell.deny.contains(&pattern) {
                shell.deny.push(pattern);
            }
        }
        if let Some(timeout) = raw.timeout {
            shell.timeout = timeout.value;
        }
        if let Some(writable) = raw.writable {
            shell.writable = values(writable);
        }
        if let Some(network) = raw.network {
            shell.network = network.value;
        }
    }

    let setup = super::setup_check::resolve_setup(
        origin(&sources.origins.setup, source),
        settings.setup.as_ref(),
        &shell,
        errors,
    )?;
    let copy_ignored = settings.copy_ignored.map(values).unwrap_or_default();

    let checks = settings
        .checks
        .map(|checks| {
            checks
                .value
                .into_iter()
                .map(|check| Check {
                    line: check.name.referenced.line(),
                    name: check.name.value,
                    run: check.run.value,
                    timeout: check.timeout.map_or(CHECK_TIMEOUT, |t| t.value),
                    retries: check.retries.map_or(0, |r| r.value),
                    network: check.network.is_none_or(|n| n.value),
                })
                .collect()
        })
        .unwrap_or_default();

    let task = Task {
        name: entry.name.value,
        description: entry.description.map(|d| d.value).unwrap_or_default(),
        prompt: entry.prompt.value,
        kind: settings.kind.map(|k| k.value).unwrap_or_default(),
        file: source.path.clone(),
        line: name_location.line(),
        workspace,
        model,
        context: settings.context.map(values).unwrap_or_default(),
        checks,
        stages: stage_settings,
        budget,
        shell,
        on_failure: settings.on_failure.map(|o| o.value).unwrap_or_default(),
        fail_on: settings.fail_on.map(|f| f.value).unwrap_or_default(),
        env: settings
            .env
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.value, value.value))
            .collect::<BTreeMap<_, _>>(),
        pricing: settings.pricing.map(|pricing| ModelPrice {
            input_per_mtok: pricing.input.value,
            cached_input_per_mtok: pricing.cached_input.map(|price| price.value),
            output_per_mtok: pricing.output.value,
            cache_write_input_per_mtok: pricing.cache_write.map(|price| price.value),
        }),
        context_window: settings.context_window.map(|window| window.value),
        mcp: settings
            .mcp
            .unwrap_or_default()
            .into_iter()
            .map(|(_, server)| server)
            .collect(),
        output_schema,
        endpoint: None,
        instructions: instructions?,
        setup,
        copy_ignored,
        matrix: None,
    };
    Some(Resolved { task, models })
}

/// The schema of `output_schema:`: inline as written, or read from a JSON
/// file relative to `dir`; either way a schema that compiles.
fn resolve_output_schema(setting: &OutputSchemaSetting, dir: &Path) -> Result<Value, Problem> {
    let path = match setting {
        // Compiled while parsing.
        OutputSchemaSetting::Inline(schema) => return Ok(schema.clone()),
        OutputSchemaSetting::File(path) => tidy(&dir.join(path)),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Problem::new(
            format!("cannot read output schema `{}`: {e}", path.display()),
            "`output_schema:` names a JSON Schema file relative to the task file's directory; \
             fix the path, or give the schema inline",
        )
    })?;
    let schema: Value = serde_json::from_str(&text).map_err(|e| {
        Problem::new(
            format!("output schema `{}` is not valid JSON: {e}", path.display()),
            "an `output_schema:` file holds one JSON Schema as JSON",
        )
    })?;
    OutputSchema::compile(&schema).map_err(|problem| {
        Problem::new(
            format!("output schema `{}` is {problem}", path.display()),
            "fix the schema (kkrun checks it with the JSON Schema meta-schema; `$ref`s must point inside it)",
        )
    })?;
    Ok(schema)
}

/// Checks that every `instructions:` file exists; returns their absolute
/// paths (`None` after an error).
fn check_instructions(
    source: &SourceFile,
    dir: &Path,
    list: Option<&Spanned<Vec<Spanned<String>>>>,
    errors: &mut Vec<TaskFileError>,
) -> Option<Vec<PathBuf>> {
    let mut paths = Vec::new();
    let mut sound = true;
    for item in list.map(|l| l.value.as_slice()).unwrap_or_default() {
        let joined = tidy(&dir.join(&item.value));
        match joined.canonicalize() {
            Ok(path) if path.is_file() => paths.push(path),
            _ => {
                sound = false;
                errors.push(
                    Problem::new(
                        format!("instruction file `{}` does not exist or is not a file", joined.display()),
                        "`instructions` paths are relative to the task file; fix the path or remove the entry",
                    )
                    .at(source.at(item.referenced)),
                );
            }
        }
    }
    sound.then_some(paths)
}

/// The file a checked value came from: a configuration file, else the
/// task file.
fn origin<'a>(file: &'a Option<Arc<SourceFile>>, task: &'a SourceFile) -> &'a SourceFile {
    file.as_deref().unwrap_or(task)
}

fn values(list: Spanned<Vec<Spanned<String>>>) -> Vec<String> {
    list.value.into_iter().map(|item| item.value).collect()
}

/// `path` without its `.` components (`././nope` is `nope`), for messages
/// that show it; `..` stays, so the meaning never changes. An empty result
/// is `.`.
pub(crate) fn tidy(path: &Path) -> PathBuf {
    let tidied: PathBuf = path
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if tidied.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        tidied
    }
}

/// The directory relative paths in a task file are resolved against.
pub(crate) fn base_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A problem without a position yet.
pub(crate) struct Problem {
    message: String,
    help: String,
}

impl Problem {
    fn new(message: String, help: impl Into<String>) -> Problem {
        Problem {
            message,
            help: help.into(),
        }
    }

    /// The error at `position`.
    pub(crate) fn at(self, position: Position) -> TaskFileError {
        TaskFileError::new(self.message, position).help(self.help)
    }
}

/// Checks a model spec and makes a `replay:` cassette path absolute
/// (relative paths are taken from `dir`). With `providers`, the spec must
/// name a built-in provider or one of them.
pub(crate) fn resolve_model(
    spec: &str,
    dir: &Path,
    providers: Option<&[&str]>,
) -> Result<String, Problem> {
    let help = "write `provider:model`, such as `openai:gpt-4.1` or `replay:cassettes/run.jsonl`, \
                or name a provider declared under `providers:` in kkrun.yaml";
    let (provider, rest) = check_model_form(spec).map_err(|message| Problem::new(message, help))?;
    if let Some(providers) = providers {
        check_provider_known(provider, spec, providers)
            .map_err(|message| Problem::new(message, help))?;
    }
    if provider != "replay" {
        return Ok(spec.to_owned());
    }
    let path = tidy(&dir.join(rest));
    match path.canonicalize() {
        Ok(absolute) if absolute.is_file() => Ok(format!("replay:{}", absolute.display())),
        Ok(_) => Err(Problem::new(
            format!("cassette `{}` is not a file", path.display()),
            "point `replay:` at a recorded cassette file",
        )),
        Err(_) => Err(Problem::new(
            format!("cassette `{}` does not exist", path.display()),
            "a `replay:` path is relative to the task file's directory; \
             record the cassette with `--record`, or fix the path",
        )),
    }
}

/// Checks that the workspace exists and is inside a git work tree; returns
/// its absolute path. Without `workspace:` it is the root of the git work
/// tree holding the task file, so a task file kept in `tasks/` works on the
/// whole repository.
fn check_workspace(
    source: &SourceFile,
    workspace_source: &SourceFile,
    dir: &Path,
    workspace: Option<&Spanned<String>>,
    name_location: Location,
) -> Result<PathBuf, TaskFileError> {
    let (joined, position, shown) = match workspace {
        Some(value) => (
            tidy(&dir.join(&value.value)),
            workspace_source.at(value.referenced),
            format!("workspace `{}`", value.value),
        ),
        None => {
            let root = git2::Repository::discover(dir)
                .ok()
                .and_then(|repo| repo.workdir().map(Path::to_path_buf));
            let Some(root) = root else {
                return Err(Problem::new(
                    format!(
                        "the task file is not inside a git work tree (`{}`), so it has no default workspace",
                        dir.display()
                    ),
                    "set `workspace:` to a directory inside a git checkout (relative to the task file), \
                     or keep the task file in the repository it works on",
                )
                .at(source.at(name_location)));
            };
            (
                root,
                source.at(name_location),
                "the default workspace (the root of the git work tree holding the task file)"
                    .to_owned(),
            )
        }
    };
    let problem = |message: String, help: &str| Problem::new(message, help).at(position.clone());
    let relative_help = "`workspace` is relative to the task file's directory and must be \
                         inside a git work tree";
    let absolute = match joined.canonicalize() {
        Ok(path) => path,
        Err(_) => {
            return Err(problem(
                format!("{shown} does not exist (looked for `{}`)", joined.display()),
                relative_help,
            ));
        }
    };
    if !absolute.is_dir() {
        return Err(problem(
            format!("{shown} is not a directory (`{}`)", joined.display()),
            relative_help,
        ));
    }
    let not_a_work_tree = || {
        problem(
            format!(
                "{shown} is not inside a git work tree (`{}`)",
                joined.display()
            ),
            "run `git init` there, or point `workspace` at a directory inside a git checkout",
        )
    };
    let repository = git2::Repository::discover(&absolute).map_err(|_| not_a_work_tree())?;
    if repository.is_bare() {
        return Err(problem(
            format!("{shown} is a bare git repository (`{}`)", joined.display()),
            "point `workspace` at a checkout with a work tree, not at a bare repository",
        ));
    }
    let Some(workdir) = repository.workdir().and_then(|w| w.canonicalize().ok()) else {
        return Err(not_a_work_tree());
    };
    let git_dir = repository.path().canonicalize().ok();
    let inside_git_dir = git_dir.is_some_and(|git_dir| absolute.starts_with(git_dir));
    if !absolute.starts_with(&workdir) || inside_git_dir {
        return Err(problem(
            format!(
                "{shown} is inside the repository's `.git` directory, not its work tree (`{}`)",
                joined.display()
            ),
            "point `workspace` at a directory of the checkout",
        ));
    }
    Ok(absolute)
}
