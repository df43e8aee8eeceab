//! Loading valid task files: both file forms, every default, the defaults
//! merge rule, models, and how paths, directories and globs expand.

mod taskfile_support;

use std::collections::BTreeMap;
use std::time::Duration;

use kkrun::task::{
    Budget, LoadOptions, OnFailure, ShellPolicy, StageSettings, Task, TaskKind, load_tasks,
    load_tasks_with,
};
use taskfile_support::layout;

fn only(tasks: Vec<Task>) -> Task {
    assert_eq!(tasks.len(), 1, "{tasks:#?}");
    tasks.into_iter().next().unwrap()
}

fn by_name<'t>(tasks: &'t [Task], name: &str) -> &'t Task {
    tasks.iter().find(|task| task.name == name).unwrap()
}

#[test]
fn a_minimal_single_task_gets_every_documented_default() {
    let layout = layout();
    let task = only(load_tasks(&[layout.arg("tasks/valid/single.yaml")]).unwrap());
    assert_eq!(task.name, "single");
    assert_eq!(task.description, "");
    assert_eq!(task.prompt, "Make `cargo test` pass.\n");
    assert_eq!(task.kind, TaskKind::Fix);
    assert_eq!(task.file, layout.path("tasks/valid/single.yaml"));
    assert_eq!(task.line, 3, "line of `name:`");
    // No `workspace:`: the root of the work tree holding the task file.
    assert_eq!(task.workspace, layout.path(".").canonicalize().unwrap());
    assert_eq!(task.model, None);
    assert!(task.context.is_empty() && task.checks.is_empty() && task.env.is_empty());
    assert_eq!(task.stages, StageSettings::default());
    assert_eq!(task.stages.blueprint_max_turns, 12);
    assert_eq!(task.stages.code_max_turns, 40);
    assert_eq!(task.stages.debug_max_turns, 20);
    assert_eq!(task.stages.debug_max_rounds, 3);
    assert!(!task.stages.preview_advisory);
    assert_eq!(task.budget, Budget::default());
    assert_eq!(task.budget.max_tokens, Some(400_000));
    assert_eq!(task.budget.max_cost_usd, None);
    assert_eq!(task.budget.timeout, Some(Duration::from_secs(45 * 60)));
    assert_eq!(task.shell, ShellPolicy::default());
    assert!(task.shell.allow.is_empty());
    assert_eq!(task.shell.timeout, Duration::from_secs(5 * 60));
    assert_eq!(task.on_failure, OnFailure::Keep);
}

#[test]
fn every_key_of_a_task_is_read() {
    let layout = layout();
    let task = only(load_tasks(&[layout.arg("tasks/valid/every-key.yaml")]).unwrap());
    assert_eq!(task.description, "Sets every key of a task");
    assert_eq!(task.kind, TaskKind::Refactor);
    assert_eq!(task.model.as_deref(), Some("anthropic:claude-sonnet-4-5"));
    assert_eq!(task.context, ["src/parse/**", "Cargo.toml"]);
    assert_eq!(task.checks.len(), 2);
    assert_eq!(task.checks[0].name, "unit");
    assert_eq!(task.checks[0].run, "cargo test parse::");
    assert_eq!(task.checks[0].timeout, Duration::from_secs(5400));
    assert_eq!(task.checks[0].retries, 2);
    assert_eq!(
        task.checks[1].timeout,
        Duration::from_secs(600),
        "default 10m"
    );
    assert_eq!(task.checks[1].retries, 0);
    assert_eq!(
        task.stages,
        StageSettings {
            blueprint_max_turns: 5,
            code_max_turns: 30,
            debug_max_turns: 10,
            debug_max_rounds: 1,
            preview_max_turns: 4,
            preview_advisory: true,
        }
    );
    assert_eq!(
        task.budget,
        Budget {
            max_tokens: Some(1000),
            max_cost_usd: Some(3.0),
            timeout: Some(Duration::from_secs(90)),
        }
    );
    assert_eq!(task.shell.allow, ["cargo *", "git diff*"]);
    // `deny` holds the task's own patterns, a repeat of a built-in rule
    // included; the built-in rules are not patterns and always apply.
    assert_eq!(task.shell.deny, ["git push*", "make *"]);
    assert_eq!(task.shell.timeout, Duration::from_secs(120));
    assert_eq!(task.on_failure, OnFailure::Rollback);
    let env: BTreeMap<String, String> =
        [("FLAG", "true"), ("LOG", "debug"), ("RUST_BACKTRACE", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    assert_eq!(task.env, env);
}

#[test]
fn list_form_tasks_inherit_defaults_and_merge_maps_key_by_key() {
    let layout = layout();
    let tasks = load_tasks(&[layout.arg("tasks/valid/list.yaml")]).unwrap();
    assert_eq!(
        tasks.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["inherits", "overrides"]
    );

    let inherits = by_name(&tasks, "inherits");
    assert_eq!(inherits.line, 17);
    assert_eq!(inherits.kind, TaskKind::Feature);
    assert_eq!(inherits.model.as_deref(), Some("openai:gpt-4.1"));
    assert_eq!(inherits.checks.len(), 1);
    assert_eq!(inherits.checks[0].name, "unit");
    assert_eq!(inherits.stages.debug_max_turns, 5);
    assert_eq!(inherits.stages.debug_max_rounds, 2);
    assert!(inherits.stages.preview_advisory);
    assert_eq!(
        inherits.stages.code_max_turns, 40,
        "unset keys keep the built-in default"
    );
    assert_eq!(inherits.budget.max_tokens, Some(1000));
    assert_eq!(inherits.budget.timeout, Some(Duration::from_secs(600)));
    assert_eq!(inherits.shell.allow, ["cargo *"]);
    assert_eq!(inherits.shell.timeout, Duration::from_secs(60));
    assert_eq!(inherits.env["A"], "from-defaults");
    assert_eq!(inherits.env["B"], "from-defaults");

    let overrides = by_name(&tasks, "overrides");
    // Scalars and lists replace the default.
    assert_eq!(overrides.kind, TaskKind::BugHunt);
    assert_eq!(overrides.checks.len(), 1);
    assert_eq!(overrides.checks[0].name, "own");
    assert_eq!(overrides.on_failure, OnFailure::Rollback);
    // Maps merge key by key: stages, budget, tools.shell, env.
    assert_eq!(overrides.stages.debug_max_rounds, 4);
    assert_eq!(overrides.stages.debug_max_turns, 5);
    assert!(overrides.stages.preview_advisory);
    assert_eq!(overrides.budget.max_cost_usd, Some(1.5));
    assert_eq!(overrides.budget.max_tokens, Some(1000));
    assert_eq!(overrides.budget.timeout, Some(Duration::from_secs(600)));
    assert_eq!(overrides.shell.allow, ["cargo *"]);
    assert_eq!(overrides.shell.deny, ["rm *"]);
    assert_eq!(overrides.shell.timeout, Duration::from_secs(60));
    assert_eq!(overrides.env["A"], "from-defaults");
    assert_eq!(overrides.env["B"], "from-task");
    assert_eq!(overrides.env["C"], "from-task");
}

#[test]
fn a_run_needs_a_model_from_the_file_the_flag_or_the_environment() {
    let layout = layout();
    let files = [layout.arg("tasks/valid/single.yaml")];
    let required = LoadOptions {
        model_overrides: &[],
        require_model: true,
    };
    let errors = load_tasks_with(&files, &required).unwrap_err();
    assert_eq!(errors.len(), 1);
    let error = &errors.errors()[0];
    assert_eq!(error.message(), "task `single` has no model");
    assert_eq!((error.line(), error.column()), (3, 7));
    let help = error.help_text().unwrap();
    assert!(
        help.contains("--model") && help.contains("KKRUN_MODEL"),
        "{help}"
    );

    let overridden = LoadOptions {
        model_overrides: &["openai:gpt-4.1-mini".to_string()],
        require_model: true,
    };
    let task = only(load_tasks_with(&files, &overridden).unwrap());
    assert_eq!(task.model.as_deref(), Some("openai:gpt-4.1-mini"));

    // The override also replaces a model written in the file.
    let task =
        only(load_tasks_with(&[layout.arg("tasks/valid/every-key.yaml")], &overridden).unwrap());
    assert_eq!(task.model.as_deref(), Some("openai:gpt-4.1-mini"));
}

#[test]
fn a_bad_model_override_is_reported_with_the_file_errors() {
    let layout = layout();
    let options = LoadOptions {
        model_overrides: &["gpt-4.1".to_string()],
        require_model: true,
    };
    let errors = load_tasks_with(&[layout.arg("tasks/valid/single.yaml")], &options).unwrap_err();
    assert_eq!(errors.len(), 1, "{}", errors.render(false));
    let error = &errors.errors()[0];
    assert!(error.file().is_none());
    assert!(
        error
            .message()
            .starts_with("in --model / KKRUN_MODEL `gpt-4.1`: invalid model"),
        "{}",
        error.message()
    );
}

#[test]
fn replay_cassettes_are_relative_to_the_task_file() {
    let layout = layout();
    layout.write("tasks/cassettes/run.jsonl", "");
    layout.write(
        "tasks/replay.yaml",
        "version: 1\nname: replay\nprompt: p\nworkspace: ..\nmodel: replay:cassettes/run.jsonl\n",
    );
    let task = only(load_tasks(&[layout.arg("tasks/replay.yaml")]).unwrap());
    let cassette = layout
        .path("tasks/cassettes/run.jsonl")
        .canonicalize()
        .unwrap();
    assert_eq!(
        task.model.as_deref(),
        Some(format!("replay:{}", cassette.display()).as_str())
    );
    assert_eq!(task.workspace, layout.repo.canonicalize().unwrap());
}

#[test]
fn directories_load_their_yaml_files_sorted_and_globs_expand() {
    let layout = layout();
    layout.write("set/b.yml", "version: 1\nname: b\nprompt: p\n");
    layout.write("set/a.yaml", "version: 1\nname: a\nprompt: p\n");
    layout.write("set/notes.txt", "not a task file");
    layout.write("set/nested/c.yaml", "version: 1\nname: c\nprompt: p\n");
    let names = |patterns: &[String]| -> Vec<String> {
        load_tasks(patterns)
            .unwrap()
            .into_iter()
            .map(|task| task.name)
            .collect()
    };
    assert_eq!(names(&[layout.arg("set")]), ["a", "b"]);
    assert_eq!(names(&[layout.arg("set/*.y*ml")]), ["a", "b"]);
    assert_eq!(names(&[layout.arg("set/**/*.yaml")]), ["a", "c"]);
    // A file named twice is loaded once.
    assert_eq!(
        names(&[
            layout.arg("set/b.yml"),
            layout.arg("set"),
            layout.arg("set/b.yml")
        ]),
        ["b", "a"]
    );
}

#[test]
fn paths_that_match_nothing_are_errors() {
    let layout = layout();
    std::fs::create_dir_all(layout.path("empty")).unwrap();
    let errors = load_tasks(&[
        layout.arg("missing.yaml"),
        layout.arg("empty"),
        layout.arg("tasks/valid/*.toml"),
        layout.arg("tasks/[oops"),
    ])
    .unwrap_err();
    let messages: Vec<&str> = errors.errors().iter().map(|e| e.message()).collect();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    for expected in [
        "holds no *.yaml or *.yml files",
        "no files match",
        "invalid pattern",
        "cannot open task file",
    ] {
        assert!(
            messages.iter().any(|message| message.contains(expected)),
            "{expected}: {messages:#?}"
        );
    }
    let missing = errors
        .errors()
        .iter()
        .find(|e| e.message().starts_with("cannot open"))
        .unwrap();
    assert!(missing.file().unwrap().ends_with("missing.yaml"));
}

#[test]
fn both_forms_load_together_and_names_stay_unique() {
    let layout = layout();
    let tasks = load_tasks(&[layout.arg("tasks/valid")]).unwrap();
    let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["every-key", "inherits", "overrides", "single"]);
}
