//! Reading one configuration file, and joining the files of a task file
//! key by key (the nearer file wins).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use serde_saphyr::Spanned;

use super::raw::{ConfigFile, ProviderSettings};
use super::{Config, DefaultsLayer, NamedProvider};
use crate::provider::{Endpoint, ModelPrice};
use crate::task::diagnostic::{Position, SourceFile, TaskFileError};
use crate::task::parse::parse_config;
use crate::task::raw::PricingSettings;

/// One configuration file, parsed.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    source: Arc<SourceFile>,
    file: ConfigFile,
}

/// Reads and walks the file at `path`; `None` when it cannot be read or
/// its structure is unusable (the reasons are in `errors`).
pub(super) fn parse(path: &Path, errors: &mut Vec<TaskFileError>) -> Option<Arc<ParsedFile>> {
    let source = crate::task::load::read(path, "configuration file", errors)?;
    let mut own = Vec::new();
    let parsed = parse_config(&source, &mut own);
    own.sort_by_key(|error| (error.line(), error.column()));
    errors.append(&mut own);
    let mut file = parsed?;
    let dir = crate::task::resolve::base_dir(path);
    if let Some(defaults) = &mut file.defaults {
        // Relative paths of a configuration's defaults are relative to the
        // configuration file, whichever task file inherits them.
        if let Some(workspace) = &mut defaults.workspace
            && Path::new(&workspace.value).is_relative()
        {
            workspace.value = absolute(&dir, &workspace.value);
        }
        for item in defaults
            .instructions
            .iter_mut()
            .flat_map(|list| list.value.iter_mut())
        {
            if Path::new(&item.value).is_relative() {
                item.value = absolute(&dir, &item.value);
            }
        }
        if let Some(model) = &mut defaults.model
            && let Some(cassette) = model.value.strip_prefix("replay:")
            && Path::new(cassette).is_relative()
        {
            model.value = format!("replay:{}", absolute(&dir, cassette));
        }
    }
    Some(Arc::new(ParsedFile {
        source: Arc::new(source),
        file,
    }))
}

fn absolute(dir: &Path, relative: &str) -> String {
    let joined = dir.join(relative);
    joined
        .canonicalize()
        .unwrap_or(joined)
        .display()
        .to_string()
}

/// A provider's keys merged so far, with where it was declared nearest.
struct Merging {
    declared: Position,
    settings: ProviderSettings,
}

/// Joins `files` (nearest first) key by key; providers lacking `api` or
/// `base_url` after the merge are errors.
pub(super) fn merge(files: &[Arc<ParsedFile>], errors: &mut Vec<TaskFileError>) -> Config {
    let mut providers: BTreeMap<String, Merging> = BTreeMap::new();
    let mut pricing = BTreeMap::new();
    let mut defaults = Vec::new();
    for parsed in files {
        for (name, settings) in parsed.file.providers.iter().flatten() {
            match providers.get_mut(&name.value) {
                Some(nearer) => {
                    nearer.settings = merge_provider(nearer.settings.clone(), settings.clone())
                }
                None => {
                    providers.insert(
                        name.value.clone(),
                        Merging {
                            declared: parsed.source.at(name.referenced),
                            settings: settings.clone(),
                        },
                    );
                }
            }
        }
        for (spec, price) in parsed.file.pricing.iter().flatten() {
            pricing
                .entry(spec.value.clone())
                .or_insert_with(|| model_price(price));
        }
        if let Some(settings) = &parsed.file.defaults {
            defaults.push(DefaultsLayer {
                source: parsed.source.clone(),
                settings: settings.clone(),
            });
        }
    }
    let mut faulty = BTreeSet::new();
    let mut finished = BTreeMap::new();
    for (name, merging) in providers {
        if merging.settings.faulty {
            // Its problems are reported already; a missing key would only
            // repeat them.
            faulty.insert(name);
            continue;
        }
        match finish(&name, merging, errors) {
            Some(provider) => {
                finished.insert(name, provider);
            }
            None => {
                faulty.insert(name);
            }
        }
    }
    Config {
        providers: finished,
        faulty,
        pricing,
        defaults,
    }
}

/// The nearer file's keys over the farther one's; `headers` and `query`
/// merge name by name, `pricing` model by model.
fn merge_provider(near: ProviderSettings, far: ProviderSettings) -> ProviderSettings {
    let maps =
        |near: Option<BTreeMap<String, String>>, far: Option<BTreeMap<String, String>>| match (
            near, far,
        ) {
            (Some(near), Some(mut far)) => {
                far.extend(near);
                Some(far)
            }
            (near, far) => near.or(far),
        };
    let pricing = match (near.pricing, far.pricing) {
        (Some(mut near), Some(far)) => {
            for (model, price) in far {
                if !near.iter().any(|(own, _)| own.value == model.value) {
                    near.push((model, price));
                }
            }
            Some(near)
        }
        (near, far) => near.or(far),
    };
    ProviderSettings {
        api: near.api.or(far.api),
        base_url: near.base_url.or(far.base_url),
        api_key_env: near.api_key_env.or(far.api_key_env),
        headers: maps(near.headers, far.headers),
        query: maps(near.query, far.query),
        max_concurrent_requests: near.max_concurrent_requests.or(far.max_concurrent_requests),
        pricing,
        context_window: near.context_window.or(far.context_window),
        idle_timeout: near.idle_timeout.or(far.idle_timeout),
        request_timeout: near.request_timeout.or(far.request_timeout),
        faulty: near.faulty || far.faulty,
    }
}

fn finish(name: &str, merging: Merging, errors: &mut Vec<TaskFileError>) -> Option<NamedProvider> {
    let settings = merging.settings;
    let mut missing = Vec::new();
    if settings.api.is_none() {
        missing.push("api");
    }
    if settings.base_url.is_none() {
        missing.push("base_url");
    }
    if !missing.is_empty() {
        let keys = missing
            .iter()
            .map(|key| format!("`providers.{name}.{key}`"))
            .collect::<Vec<_>>()
            .join(" and ");
        errors.push(
            TaskFileError::new(format!("missing {keys}"), merging.declared).help(format!(
                "a named provider needs `api` ({}) and `base_url`, in this file or in another \
                 configuration file that also declares `{name}`",
                crate::provider::Api::NAMES.join(", ")
            )),
        );
        return None;
    }
    let value = |spanned: Option<Spanned<String>>| spanned.map(|s| s.value);
    Some(NamedProvider {
        endpoint: Endpoint {
            name: name.to_string(),
            api: settings.api?.value,
            base_url: value(settings.base_url)?.trim().to_string(),
            api_key_env: value(settings.api_key_env),
            headers: settings.headers.unwrap_or_default(),
            query: settings.query.unwrap_or_default(),
            max_concurrent_requests: settings.max_concurrent_requests.map(|n| n.value),
            idle_timeout: settings.idle_timeout.map(|d| d.value),
            request_timeout: settings.request_timeout.map(|d| d.value),
        },
        pricing: settings
            .pricing
            .unwrap_or_default()
            .iter()
            .map(|(model, price)| (model.value.clone(), model_price(price)))
            .collect(),
        context_window: settings.context_window.map(|w| w.value),
    })
}

fn model_price(price: &PricingSettings) -> ModelPrice {
    ModelPrice {
        input_per_mtok: price.input.value,
        cached_input_per_mtok: price.cached_input.as_ref().map(|p| p.value),
        output_per_mtok: price.output.value,
        cache_write_input_per_mtok: price.cache_write.as_ref().map(|p| p.value),
    }
}
