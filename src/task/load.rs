//! Finding task files, reading them safely, and loading every task of a run
//! with all errors of all files collected.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use super::config::ConfigCache;
use super::diagnostic::{Position, SourceFile, TaskFileError, TaskFileErrors};
use super::matrix::{self, MatrixModel};
use super::parse::check_provider_known;
use super::parse::parse_file;
use super::raw::TaskFile;
use super::resolve::{Resolved, Sources, merge, resolve, resolve_model};
use super::resolved::Task;

/// Task files larger than this are refused unread: real ones are a few
/// kilobytes, and parsing megabytes of YAML only wastes a CI minute.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// How [`load_tasks_with`] treats models.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadOptions<'a> {
    /// `provider:model` specs that replace every task's model or models
    /// (from `--model` or `KKRUN_MODEL`): one runs each task once with it,
    /// several run each task once per model (a matrix). A `replay:` path is
    /// relative to the current directory.
    pub model_overrides: &'a [String],
    /// Whether a task that ends up without any model is an error (true when
    /// the tasks are about to run or be planned).
    pub require_model: bool,
}

/// Expands files, directories and globs, loads and validates every file,
/// and returns the tasks in order. A directory means its `*.yaml` and
/// `*.yml` files, sorted by name. Every error of every file is reported,
/// plus duplicate task names across files.
pub fn load_tasks(patterns: &[String]) -> Result<Vec<Task>, TaskFileErrors> {
    load_tasks_with(patterns, &LoadOptions::default())
}

/// [`load_tasks`] with a model override and/or a required model.
pub fn load_tasks_with(
    patterns: &[String],
    options: &LoadOptions<'_>,
) -> Result<Vec<Task>, TaskFileErrors> {
    let mut errors = Vec::new();
    let overridden = !options.model_overrides.is_empty();
    let override_models = override_models(options.model_overrides, &mut errors);
    let files = expand(patterns, &mut errors);
    let mut configs = ConfigCache::default();
    let mut tasks = Vec::new();
    let mut first_seen: HashMap<String, Position> = HashMap::new();
    for path in files {
        let mut file_errors = Vec::new();
        let Some(source) = read(&path, "task file", &mut file_errors) else {
            errors.append(&mut file_errors);
            continue;
        };
        let entries = match parse_file(&source, &mut file_errors) {
            Some(TaskFile::Single(file)) => vec![(file.task, None)],
            Some(TaskFile::List(file)) => {
                let defaults = file.defaults;
                file.tasks
                    .into_iter()
                    .map(|task| (task, defaults.clone()))
                    .collect()
            }
            None => Vec::new(),
        };
        let config = configs.for_task_file(&path, &mut errors);
        let providers = config.provider_names();
        for (entry, defaults) in entries {
            let name_position = source.at(entry.name.referenced);
            let task_name = entry.name.value.clone();
            let duplicate = first_seen.get(&entry.name.value).cloned();
            match &duplicate {
                Some(first) => file_errors.push(
                    TaskFileError::new(
                        format!("duplicate task name `{}`", entry.name.value),
                        name_position.clone(),
                    )
                    .related(first.clone(), "first defined here")
                    .help(
                        "task names must be unique across all files of a run; rename one of them",
                    ),
                ),
                None => {
                    first_seen.insert(entry.name.value.clone(), name_position.clone());
                }
            }
            let settings = match &defaults {
                Some(defaults) => merge(entry.settings.clone(), defaults),
                None => entry.settings.clone(),
            };
            let (mut settings, origins) = config.layer(settings);
            if overridden {
                // The override replaces the file's model or models, so they
                // (say, a cassette not recorded yet) are not checked.
                settings.model = None;
                settings.models = None;
            }
            let sources = Sources {
                task: &source,
                origins: &origins,
                providers: &providers,
            };
            let Some(Resolved { mut task, models }) =
                resolve(&sources, entry, settings, &mut file_errors)
            else {
                continue;
            };
            let models = match override_models.as_slice() {
                [] => models,
                [only] => {
                    task.model = Some(only.resolved.clone());
                    Vec::new()
                }
                several => several.to_vec(),
            };
            if let Some(problem) = override_models
                .iter()
                .find_map(|model| override_problem(&model.resolved, &providers))
            {
                errors.push(problem);
                continue;
            }
            let mut instances = match models.as_slice() {
                [] => vec![task],
                models => match matrix::instances(&task, models) {
                    Ok(instances) => instances,
                    Err((clash, message)) => {
                        file_errors.push(TaskFileError::new(message, models[clash].position.clone()).help(
                            "give the models distinct names, or drop one of them: instance names \
                             are made of the model's name, or of the whole spec when names repeat",
                        ));
                        continue;
                    }
                },
            };
            for instance in &mut instances {
                config.complete(instance);
            }
            if options.require_model && instances.iter().any(|t| t.model.is_none()) && !overridden {
                file_errors.push(
                    TaskFileError::new(format!("task `{task_name}` has no model"), name_position)
                        .help(
                            "add `model: openai:gpt-4.1` (or anthropic:..., replay:PATH) to the task \
                             or to `defaults:`, or pass `--model PROVIDER:MODEL`, or set KKRUN_MODEL",
                        ),
                );
                continue;
            }
            if duplicate.is_none() {
                tasks.extend(instances);
            }
        }
        file_errors.sort_by_key(|error| (error.line(), error.column()));
        errors.append(&mut file_errors);
    }
    match TaskFileErrors::from_errors(errors) {
        Some(errors) => Err(errors),
        None => Ok(tasks),
    }
}

/// `--model` / `KKRUN_MODEL` specs, checked and resolved once for the run
/// (a `replay:` path against the current directory).
fn override_models(specs: &[String], errors: &mut Vec<TaskFileError>) -> Vec<MatrixModel> {
    let mut models: Vec<MatrixModel> = Vec::new();
    for spec in specs {
        if models.iter().any(|m| &m.written == spec) {
            errors.push(
                TaskFileError::new(format!("--model `{spec}` is given twice"), Position::none())
                    .help("each --model runs every task once; drop the repeated one"),
            );
            continue;
        }
        match resolve_model(spec, Path::new("."), None) {
            Ok(resolved) => models.push(MatrixModel {
                written: spec.clone(),
                resolved,
                position: Position::none(),
            }),
            Err(problem) => errors.push(
                problem
                    .at(Position::none())
                    .prefixed(&format!("in --model / KKRUN_MODEL `{spec}`: ")),
            ),
        }
    }
    models
}

/// The error of a `--model` / `KKRUN_MODEL` naming a provider that the
/// task's configuration does not declare.
fn override_problem(spec: &str, providers: &[&str]) -> Option<TaskFileError> {
    let (provider, _) = spec.split_once(':')?;
    check_provider_known(provider, spec, providers)
        .err()
        .map(|message| {
            TaskFileError::new(
                format!("in --model / KKRUN_MODEL `{spec}`: {message}"),
                Position::none(),
            )
            .help("declare the provider under `providers:` in kkrun.yaml, or use a built-in one")
        })
}

/// Reads a task file (or, as `what` says, a configuration file):
/// size-limited, UTF-8 only.
pub(crate) fn read(path: &Path, what: &str, errors: &mut Vec<TaskFileError>) -> Option<SourceFile> {
    let file_error =
        |message: String, help: &str| TaskFileError::new(message, Position::file(path)).help(help);
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) => {
            errors.push(file_error(
                format!("cannot open {what}: {error}"),
                "check the path and its permissions",
            ));
            return None;
        }
    };
    let mut bytes = Vec::new();
    // Read one byte past the limit so a file that grows (or a device that
    // never ends) is caught without trusting its metadata.
    if let Err(error) = file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes) {
        errors.push(file_error(
            format!("cannot read {what}: {error}"),
            "check that the path is a readable file, not a directory",
        ));
        return None;
    }
    if bytes.len() as u64 > MAX_FILE_BYTES {
        errors.push(file_error(
            format!("{what} is larger than {} KiB", MAX_FILE_BYTES / 1024),
            "task and configuration files hold a few keys and prompts; is this the right file?",
        ));
        return None;
    }
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => {
            let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            let column = valid.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
            errors.push(
                TaskFileError::new(
                    format!(
                        "{what} is not UTF-8 text (invalid byte at line {line}, column {column})"
                    ),
                    Position::file(path),
                )
                .help("save the file as UTF-8; is this the right file?"),
            );
            return None;
        }
    };
    let text = text
        .strip_prefix('\u{feff}')
        .map(str::to_owned)
        .unwrap_or(text);
    Some(SourceFile {
        path: path.to_owned(),
        text,
    })
}

/// Expands the command-line patterns into task files, in order, each once.
fn expand(patterns: &[String], errors: &mut Vec<TaskFileError>) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for pattern in patterns {
        let path = Path::new(pattern);
        let found = if path.is_dir() {
            directory(path, pattern, errors)
        } else if path.exists() || !has_glob_chars(pattern) {
            vec![path.to_owned()]
        } else {
            glob(pattern, errors)
        };
        for file in found {
            // Shown in every message about the file: `./t.yaml` is `t.yaml`.
            let file = super::resolve::tidy(&file);
            let key = file.canonicalize().unwrap_or_else(|_| file.clone());
            if seen.insert(key) {
                files.push(file);
            }
        }
    }
    files
}

fn directory(path: &Path, pattern: &str, errors: &mut Vec<TaskFileError>) -> Vec<PathBuf> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(error) => {
            errors.push(
                TaskFileError::new(
                    format!("cannot read directory: {error}"),
                    Position::file(path),
                )
                .help("check the directory's permissions"),
            );
            return Vec::new();
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|file| file.is_file() && is_yaml(file))
        .collect();
    files.sort();
    if files.is_empty() {
        errors.push(
            TaskFileError::new(
                format!("directory `{pattern}` holds no *.yaml or *.yml files"),
                Position::none(),
            )
            .help("name the task files explicitly, or point at the directory that holds them"),
        );
    }
    files
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    )
}

fn has_glob_chars(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// Files matching a glob such as `tasks/*.yaml` or `ci/**/*.yml`, sorted.
fn glob(pattern: &str, errors: &mut Vec<TaskFileError>) -> Vec<PathBuf> {
    let matcher = match globset::GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
    {
        Ok(glob) => glob.compile_matcher(),
        Err(error) => {
            errors.push(
                TaskFileError::new(
                    format!("invalid pattern `{pattern}`: {}", error.kind()),
                    Position::none(),
                )
                .help("quote the pattern, or let the shell expand it"),
            );
            return Vec::new();
        }
    };
    // Walk only below the pattern's literal prefix, and only as deep as it
    // can match.
    let mut base = PathBuf::new();
    let mut depth = 0usize;
    let mut unbounded = false;
    let mut in_literal_prefix = true;
    for component in Path::new(pattern).components() {
        let text = component.as_os_str().to_string_lossy();
        if in_literal_prefix && !has_glob_chars(&text) {
            base.push(component);
            continue;
        }
        in_literal_prefix = false;
        depth += 1;
        unbounded |= matches!(component, Component::Normal(_)) && text.contains("**");
    }
    if base.as_os_str().is_empty() {
        base.push(".");
    }
    let mut walker = ignore::WalkBuilder::new(&base);
    walker
        .standard_filters(false)
        .hidden(false)
        .follow_links(true);
    if !unbounded {
        walker.max_depth(Some(depth));
    }
    let strip_dot = !pattern.starts_with("./");
    let mut files: Vec<PathBuf> = walker
        .build()
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_type()
                .is_some_and(|t| t.is_file() || t.is_symlink())
        })
        .map(|entry| {
            let path = entry.into_path();
            match path.strip_prefix("./") {
                Ok(stripped) if strip_dot => stripped.to_owned(),
                _ => path,
            }
        })
        .filter(|path| path.is_file() && matcher.is_match(path))
        .collect();
    files.sort();
    if files.is_empty() {
        errors.push(
            TaskFileError::new(format!("no files match `{pattern}`"), Position::none())
                .help("check the pattern; a directory name loads its *.yaml and *.yml files"),
        );
    }
    files
}
