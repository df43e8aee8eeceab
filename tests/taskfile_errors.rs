//! Every kind of task-file error is reported with its message, file, line
//! and column; all errors of all files are reported together.

mod taskfile_support;

use kkrun::task::{TaskFileError, TaskFileErrors, load_tasks};
use taskfile_support::{Layout, layout};

fn errors(layout: &Layout, paths: &[&str]) -> TaskFileErrors {
    let args: Vec<String> = paths.iter().map(|path| layout.arg(path)).collect();
    match load_tasks(&args) {
        Ok(tasks) => panic!("expected errors, loaded {tasks:#?}"),
        Err(errors) => errors,
    }
}

/// Finds the error at `file:line:column` and checks that its message
/// contains `message`.
fn expect<'e>(
    errors: &'e TaskFileErrors,
    file: &str,
    line: u64,
    column: u64,
    message: &str,
) -> &'e TaskFileError {
    let found = errors.errors().iter().find(|error| {
        error.file().is_some_and(|path| path.ends_with(file))
            && error.line() == line
            && error.column() == column
            && error.message().contains(message)
    });
    found.unwrap_or_else(|| {
        panic!(
            "no error `{message}` at {file}:{line}:{column} in:\n{}",
            errors.render(false)
        )
    })
}

#[test]
fn unknown_keys_suggest_the_closest_valid_key() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/unknown-keys.yaml"]);
    assert_eq!(errors.len(), 3, "{}", errors.render(false));
    let typo = expect(&errors, "unknown-keys.yaml", 4, 1, "unknown key `chekcs`");
    assert_eq!(
        typo.message(),
        "unknown key `chekcs` (hint: did you mean `checks`?)"
    );
    assert!(
        typo.help_text()
            .unwrap()
            .starts_with("valid keys here: version, name,")
    );
    expect(
        &errors,
        "unknown-keys.yaml",
        8,
        27,
        "unknown key `stages.debug.max_roundz` (hint: did you mean `max_rounds`?)",
    );
    let far = expect(&errors, "unknown-keys.yaml", 9, 1, "unknown key `colour`");
    assert!(!far.message().contains("did you mean"));
}

#[test]
fn type_errors_say_what_was_expected_and_found() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/type-errors.yaml"]);
    assert_eq!(errors.len(), 4, "{}", errors.render(false));
    expect(
        &errors,
        "type-errors.yaml",
        5,
        15,
        "`budget.max_tokens` must be a whole number, found `lots`",
    );
    expect(
        &errors,
        "type-errors.yaml",
        7,
        24,
        "`stages.preview.advisory` must be true or false, found `yes`",
    );
    let list = expect(
        &errors,
        "type-errors.yaml",
        8,
        10,
        "`context` must be a list, found a string",
    );
    assert!(list.help_text().unwrap().contains("[\"src/**\"]"));
    let kind = expect(
        &errors,
        "type-errors.yaml",
        9,
        7,
        "unknown `kind` value `bugfix`",
    );
    assert_eq!(
        kind.help_text(),
        Some("valid values: fix, refactor, feature, bug-hunt")
    );
}

#[test]
fn bad_durations_show_the_accepted_form() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/bad-durations.yaml"]);
    assert_eq!(errors.len(), 3, "{}", errors.render(false));
    let order = expect(
        &errors,
        "bad-durations.yaml",
        5,
        12,
        "invalid duration `1m30h` in `budget.timeout`",
    );
    assert!(order.help_text().unwrap().contains("`90s`, `10m`, `1h30m`"));
    let bare = expect(
        &errors,
        "bad-durations.yaml",
        9,
        14,
        "`checks[0].timeout` needs a unit",
    );
    assert_eq!(
        bare.help_text(),
        Some("write `90s` for seconds or `90m` for minutes")
    );
    expect(
        &errors,
        "bad-durations.yaml",
        12,
        14,
        "invalid duration `5 minutes` in `tools.shell.timeout`",
    );
}

#[test]
fn empty_check_commands_and_repeated_check_names_are_errors() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/empty-run.yaml"]);
    assert_eq!(errors.len(), 3, "{}", errors.render(false));
    let empty = expect(&errors, "empty-run.yaml", 6, 10, "`checks[0].run` is empty");
    assert!(empty.help_text().unwrap().contains("shell command"));
    expect(
        &errors,
        "empty-run.yaml",
        7,
        5,
        "missing key `checks[1].run`",
    );
    let duplicate = expect(
        &errors,
        "empty-run.yaml",
        8,
        11,
        "duplicate check name `unit`",
    );
    assert!(
        duplicate
            .related_position()
            .unwrap()
            .ends_with("empty-run.yaml:5:11")
    );
}

#[test]
fn max_rounds_must_be_at_least_one() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/max-rounds-zero.yaml"]);
    assert_eq!(errors.len(), 1, "{}", errors.render(false));
    let error = expect(
        &errors,
        "max-rounds-zero.yaml",
        6,
        17,
        "`stages.debug.max_rounds` must be at least 1, found 0",
    );
    assert!(
        error
            .help_text()
            .unwrap()
            .contains("use 1 for a single round")
    );
}

#[test]
fn globs_that_do_not_parse_are_errors() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/bad-globs.yaml"]);
    assert_eq!(errors.len(), 2, "{}", errors.render(false));
    expect(
        &errors,
        "bad-globs.yaml",
        4,
        21,
        "invalid glob `src/[unclosed` in `context`: unclosed character class",
    );
    expect(
        &errors,
        "bad-globs.yaml",
        7,
        12,
        "invalid glob `rm {a,b` in `tools.shell.deny`",
    );
}

#[test]
fn a_workspace_must_be_inside_a_git_work_tree() {
    let layout = layout();
    let errors = errors(
        &layout,
        &[
            "tasks/broken/not-a-work-tree.yaml",
            "tasks/broken/bare-repository.yaml",
        ],
    );
    assert_eq!(errors.len(), 2, "{}", errors.render(false));
    let plain = expect(
        &errors,
        "not-a-work-tree.yaml",
        4,
        12,
        "workspace `../../../outside` is not inside a git work tree",
    );
    assert!(plain.help_text().unwrap().contains("git init"));
    expect(
        &errors,
        "bare-repository.yaml",
        4,
        12,
        "workspace `../../../bare.git` is a bare git repository",
    );
}

#[test]
fn workspaces_that_do_not_exist_or_sit_in_the_git_directory_are_errors() {
    let layout = layout();
    layout.write(
        "tasks/ws.yaml",
        "version: 1\ntasks:\n  - name: gone\n    prompt: p\n    workspace: missing\n  \
         - name: git-dir\n    prompt: p\n    workspace: ../.git\n  - name: file\n    prompt: p\n    \
         workspace: ws.yaml\n",
    );
    let errors = errors(&layout, &["tasks/ws.yaml"]);
    assert_eq!(errors.len(), 3, "{}", errors.render(false));
    expect(
        &errors,
        "ws.yaml",
        5,
        16,
        "workspace `missing` does not exist",
    );
    expect(
        &errors,
        "ws.yaml",
        8,
        16,
        "workspace `../.git` is inside the repository's `.git` directory",
    );
    expect(
        &errors,
        "ws.yaml",
        11,
        16,
        "workspace `ws.yaml` is not a directory",
    );
}

#[test]
fn models_need_a_known_provider_and_an_existing_cassette() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/models.yaml"]);
    // The bad default is reported once, not once per task inheriting it.
    assert_eq!(errors.len(), 2, "{}", errors.render(false));
    let provider = expect(
        &errors,
        "models.yaml",
        3,
        10,
        "unknown provider `opneai` in model `opneai:gpt-4.1` (hint: did you mean `openai`?)",
    );
    assert!(
        provider
            .message()
            .contains("valid providers: openai, openai-responses, anthropic, replay")
    );
    let cassette = expect(&errors, "models.yaml", 9, 12, "cassette `");
    assert!(
        cassette
            .message()
            .contains("cassettes/nowhere.jsonl` does not exist"),
        "{}",
        cassette.message()
    );
}

#[test]
fn required_keys_and_name_rules() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/missing-keys.yaml"]);
    assert_eq!(errors.len(), 3, "{}", errors.render(false));
    let version = expect(&errors, "missing-keys.yaml", 1, 1, "missing key `version`");
    assert_eq!(
        version.help_text(),
        Some("add `version: 1` as the first line")
    );
    expect(&errors, "missing-keys.yaml", 1, 1, "missing key `prompt`");
    let name = expect(
        &errors,
        "missing-keys.yaml",
        1,
        7,
        "invalid task name `Fix_Dates`: only lowercase letters, digits and `-` are allowed",
    );
    assert!(name.help_text().unwrap().contains("`fix-dates`"));
}

#[test]
fn list_form_errors_point_into_defaults_and_tasks() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/list-form.yaml"]);
    assert_eq!(errors.len(), 6, "{}", errors.render(false));
    expect(
        &errors,
        "list-form.yaml",
        1,
        10,
        "unsupported task file version `2`",
    );
    let name = expect(
        &errors,
        "list-form.yaml",
        3,
        3,
        "unknown key `defaults.name`",
    );
    assert!(
        name.help_text()
            .unwrap()
            .contains("each task sets its own `name`")
    );
    expect(
        &errors,
        "list-form.yaml",
        4,
        27,
        "`defaults.budget.max_cost_usd` must be a positive amount",
    );
    expect(
        &errors,
        "list-form.yaml",
        6,
        5,
        "missing key `tasks[0].prompt`",
    );
    expect(
        &errors,
        "list-form.yaml",
        7,
        5,
        "unknown key `tasks[0].promt` (hint: did you mean `prompt`?)",
    );
    expect(
        &errors,
        "list-form.yaml",
        10,
        5,
        "unknown key `tasks[1].version`",
    );
}

#[test]
fn yaml_syntax_errors_have_a_position() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/syntax.yaml"]);
    assert_eq!(errors.len(), 1, "{}", errors.render(false));
    expect(
        &errors,
        "syntax.yaml",
        4,
        10,
        "invalid YAML: unclosed bracket",
    );
}

#[test]
fn duplicate_task_names_across_files_point_at_both_places() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/duplicates"]);
    assert_eq!(errors.len(), 1, "{}", errors.render(false));
    let duplicate = expect(&errors, "b.yaml", 5, 11, "duplicate task name `fix-dates`");
    assert!(
        duplicate
            .related_position()
            .unwrap()
            .ends_with("duplicates/a.yaml:2:7")
    );
    let text = errors.render(false);
    assert!(text.contains("first defined here"), "{text}");
    assert!(text.contains("rename one of them"), "{text}");
}

#[test]
fn every_error_of_every_file_is_reported() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken", "tasks/duplicates"]);
    let mut files: Vec<String> = errors
        .errors()
        .iter()
        .filter_map(|error| error.file())
        .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    files.dedup();
    let mut broken: Vec<String> = std::fs::read_dir(layout.path("tasks/broken"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    broken.sort();
    broken.push("b.yaml".into());
    assert_eq!(
        files, broken,
        "files are reported in order, each with its errors"
    );
    assert_eq!(errors.len(), 48, "{}", errors.render(false));
    for error in errors.errors() {
        assert!(error.line() > 0 && error.column() > 0, "{error:?}");
        assert!(error.help_text().is_some(), "{error:?} says what to do");
    }
    let text = errors.render(false);
    assert!(
        text.ends_with(
            "error: 48 errors in 15 task files; fix them, then check again with `kkrun validate FILES`\n"
        ),
        "{text}"
    );
}

#[test]
fn rendering_quotes_the_line_and_underlines_the_key() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/unknown-keys.yaml"]);
    let text = errors.render(false);
    let file = layout.path("tasks/broken/unknown-keys.yaml");
    let expected = format!(
        "error: unknown key `chekcs` (hint: did you mean `checks`?)\n  --> {}:4:1\n   |\n 4 | chekcs:\n   | ^^^^^^\n   = help: valid keys here: version, name, description, prompt, kind, workspace, model, models, context, checks, stages, budget, tools, on_failure, fail_on, env, pricing, context_window, mcp, output_schema, instructions, setup, copy_ignored\n",
        file.display()
    );
    assert!(text.starts_with(&expected), "{text}");
    let colored = errors.render(true);
    assert!(colored.contains("\x1b[1;31merror\x1b[0m"), "{colored}");
}

#[test]
fn setup_and_copy_ignored_mistakes_are_reported_at_their_positions() {
    let layout = layout();
    let errors = errors(&layout, &["tasks/broken/prepare.yaml"]);
    assert_eq!(errors.len(), 11, "{}", errors.render(false));
    expect(
        &errors,
        "prepare.yaml",
        6,
        9,
        "`tasks[0].setup[0]` is empty",
    );
    expect(
        &errors,
        "prepare.yaml",
        7,
        35,
        "invalid duration `soon` in `tasks[0].setup[1].timeout`",
    );
    expect(
        &errors,
        "prepare.yaml",
        8,
        9,
        "missing key `tasks[0].setup[2].run`",
    );
    let unknown = expect(
        &errors,
        "prepare.yaml",
        8,
        11,
        "unknown key `tasks[0].setup[2].command`",
    );
    assert_eq!(unknown.help_text(), Some("valid keys here: run, timeout"));
    expect(
        &errors,
        "prepare.yaml",
        9,
        9,
        "`tasks[0].setup[3]` must be a command string or a mapping",
    );
    expect(
        &errors,
        "prepare.yaml",
        12,
        12,
        "`tasks[1].setup` must be a list, found a string",
    );
    for (column, problem) in [
        (20, "`../secrets/**` points outside the workspace"),
        (37, "`/etc/**` is absolute"),
        (48, "`.git/config` names the repository's `.git`"),
    ] {
        let error = expect(
            &errors,
            "prepare.yaml",
            15,
            column,
            &format!("`tasks[2].copy_ignored` pattern {problem}"),
        );
        assert!(
            error
                .help_text()
                .unwrap()
                .contains("relative to the workspace")
        );
    }
    expect(
        &errors,
        "prepare.yaml",
        15,
        63,
        "invalid glob `src/[unclosed` in `tasks[2].copy_ignored`",
    );
    let denied = expect(
        &errors,
        "prepare.yaml",
        18,
        13,
        "setup command `git push origin main` is refused by the shell policy",
    );
    // A built-in rule cannot be allowed away.
    assert!(
        denied
            .help_text()
            .unwrap()
            .contains("built-in rules always apply"),
        "{:?}",
        denied.help_text()
    );
}
