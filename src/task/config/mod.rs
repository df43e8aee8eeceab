//! The configuration files: `kkrun.yaml` in the task file's directory and
//! its parents up to the root of its git work tree, and the user's
//! `$XDG_CONFIG_HOME/kkrun/config.yaml`. The nearer file wins key by key;
//! task files, flags and the environment override both.
//!
//! `find` locates the files, `parse::config` walks each one (with the
//! task-file errors), `merge` joins them, and [`Config::layer`] puts their
//! `defaults:` under a task's own settings.

mod find;
mod merge;
pub(crate) mod raw;
mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diagnostic::{SourceFile, TaskFileError};
use super::raw::TaskSettings;
use super::resolved::Task;
use crate::provider::{Endpoint, ModelPrice};

pub use find::{CONFIG_FILE_NAME, USER_CONFIG_PATH};
pub use schema::config_schema;

/// A named provider with what the configuration says about its models.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NamedProvider {
    /// How to reach it.
    pub(crate) endpoint: Endpoint,
    /// Prices by model name.
    pub(crate) pricing: BTreeMap<String, ModelPrice>,
    /// Context window of its models.
    pub(crate) context_window: Option<u64>,
}

/// One file's `defaults:`, with the file its positions refer to.
#[derive(Debug)]
pub(crate) struct DefaultsLayer {
    pub(crate) source: Arc<SourceFile>,
    pub(crate) settings: TaskSettings,
}

/// The configuration in effect for one task file: every file found for it,
/// merged.
#[derive(Debug, Default)]
pub(crate) struct Config {
    /// Named providers by name.
    pub(crate) providers: BTreeMap<String, NamedProvider>,
    /// Providers declared with errors (already reported): model specs may
    /// still name them without a second error.
    pub(crate) faulty: std::collections::BTreeSet<String>,
    /// Prices by model spec.
    pub(crate) pricing: BTreeMap<String, ModelPrice>,
    /// `defaults:` of each file, nearest first.
    pub(crate) defaults: Vec<DefaultsLayer>,
}

/// Which file a value that `resolve` checks came from, when not the task
/// file: errors about it then point into that file.
#[derive(Debug, Default)]
pub(crate) struct Origins {
    pub(crate) workspace: Option<Arc<SourceFile>>,
    pub(crate) model: Option<Arc<SourceFile>>,
    pub(crate) models: Option<Arc<SourceFile>>,
    pub(crate) fail_on: Option<Arc<SourceFile>>,
    pub(crate) instructions: Option<Arc<SourceFile>>,
    pub(crate) setup: Option<Arc<SourceFile>>,
}

impl Config {
    /// The names a model spec may use besides the built-in ones.
    pub(crate) fn provider_names(&self) -> Vec<&str> {
        self.providers
            .keys()
            .chain(&self.faulty)
            .map(String::as_str)
            .collect()
    }

    /// `settings` with every file's `defaults:` under them (nearest file
    /// first), and where the values `resolve` checks came from.
    pub(crate) fn layer(&self, mut settings: TaskSettings) -> (TaskSettings, Origins) {
        let mut origins = Origins::default();
        for layer in &self.defaults {
            if settings.workspace.is_none() && layer.settings.workspace.is_some() {
                origins.workspace = Some(layer.source.clone());
            }
            if settings.model.is_none() && settings.models.is_none() {
                if layer.settings.model.is_some() {
                    origins.model = Some(layer.source.clone());
                }
                if layer.settings.models.is_some() {
                    origins.models = Some(layer.source.clone());
                }
            }
            if settings.fail_on.is_none() && layer.settings.fail_on.is_some() {
                origins.fail_on = Some(layer.source.clone());
            }
            if settings.instructions.is_none() && layer.settings.instructions.is_some() {
                origins.instructions = Some(layer.source.clone());
            }
            if settings.setup.is_none() && layer.settings.setup.is_some() {
                origins.setup = Some(layer.source.clone());
            }
            settings = super::resolve::merge(settings, &layer.settings);
        }
        (settings, origins)
    }

    /// Fills in what the configuration knows about the task's model: its
    /// named endpoint, its price and context window (the task's own keys
    /// win).
    pub(crate) fn complete(&self, task: &mut Task) {
        let Some((prefix, model)) = task.model.as_deref().and_then(|m| m.split_once(':')) else {
            return;
        };
        let spec = format!("{prefix}:{model}");
        let named = self.providers.get(prefix);
        if task.pricing.is_none() {
            task.pricing = named
                .and_then(|p| p.pricing.get(model).copied())
                .or_else(|| self.pricing.get(&spec).copied());
        }
        if let Some(named) = named {
            if task.context_window.is_none() {
                task.context_window = named.context_window;
            }
            task.endpoint = Some(named.endpoint.clone());
        }
    }
}

/// Loads each configuration file once per run, whichever task files share
/// it, and reports its errors once.
#[derive(Debug, Default)]
pub(crate) struct ConfigCache {
    /// Parsed files by path; `None` for a file with errors.
    files: BTreeMap<PathBuf, Option<Arc<merge::ParsedFile>>>,
    /// The user's file, when looked up already.
    user: Option<Option<PathBuf>>,
    /// Merged configurations by their list of files.
    merged: BTreeMap<Vec<PathBuf>, Arc<Config>>,
}

impl ConfigCache {
    /// The configuration for the task file at `task_file`; problems of
    /// configuration files go to `errors` (each file's once).
    pub(crate) fn for_task_file(
        &mut self,
        task_file: &Path,
        errors: &mut Vec<TaskFileError>,
    ) -> Arc<Config> {
        let user = self.user.get_or_insert_with(find::user_config_file).clone();
        let mut paths = find::repository_config_files(task_file);
        paths.extend(user);
        if let Some(config) = self.merged.get(&paths) {
            return config.clone();
        }
        let mut parsed = Vec::new();
        for path in &paths {
            let file = self
                .files
                .entry(path.clone())
                .or_insert_with(|| merge::parse(path, errors))
                .clone();
            parsed.extend(file);
        }
        let config = Arc::new(merge::merge(&parsed, errors));
        self.merged.insert(paths, config.clone());
        config
    }
}
