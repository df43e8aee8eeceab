//! `kkrun validate` in GitHub Actions: an `::error file=…,line=…,col=…`
//! annotation for every task-file error (up to GitHub's 10 a step, then a
//! notice), on stderr, with stdout empty.

use std::path::Path;

use assert_cmd::Command;

/// A temporary git repository, so the default workspace is valid and only
/// the errors a test writes are reported.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    git2::Repository::init(dir.path()).unwrap();
    dir
}

fn validate(dir: &Path, files: &[&str], github: bool) -> (i32, String, String) {
    let mut command = Command::new(assert_cmd::cargo::cargo_bin!("kkrun"));
    command
        .current_dir(dir)
        .arg("validate")
        .args(files)
        .env_remove("KKRUN_MODEL")
        .env_remove("GITHUB_WORKSPACE")
        .env_remove("GITHUB_ACTIONS");
    if github {
        command.env("GITHUB_ACTIONS", "true");
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_task_file_error_is_an_annotation_at_its_line_and_column() {
    let dir = repo();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "version: 1\nname: Bad Name\nprompt: x\nmodel: openai:gpt-4.1\nchecksx: []\n",
    )
    .unwrap();
    let (code, stdout, stderr) = validate(dir.path(), &["bad.yaml"], true);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let annotations: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert_eq!(annotations.len(), 2, "{stderr}");
    assert!(
        annotations[0]
            .starts_with("::error file=bad.yaml,line=2,col=7,title=kkrun%3A invalid task file::"),
        "{annotations:#?}"
    );
    assert!(
        annotations[1].starts_with("::error file=bad.yaml,line=5,col=1,"),
        "{annotations:#?}"
    );
    assert!(
        annotations[1].contains("checks"),
        "did you mean: {annotations:#?}"
    );

    // Outside GitHub Actions: the same errors, no workflow commands.
    let (code, _, stderr) = validate(dir.path(), &["bad.yaml"], false);
    assert_eq!(code, 2);
    assert!(!stderr.contains("::error"), "{stderr}");
}

#[test]
fn more_than_ten_errors_end_with_a_notice() {
    let dir = repo();
    let mut files = Vec::new();
    for n in 0..12 {
        let name = format!("t{n}.yaml");
        std::fs::write(
            dir.path().join(&name),
            format!("version: 1\nname: ok-{n}\nprompt: x\nmodel: openai:gpt-4.1\nbogus: 1\n"),
        )
        .unwrap();
        files.push(name);
    }
    let files: Vec<&str> = files.iter().map(String::as_str).collect();
    let (code, _, stderr) = validate(dir.path(), &files, true);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("::error ")).count(),
        10
    );
    assert!(
        stderr.contains("::notice title=kkrun::2 more task-file errors in the log"),
        "{stderr}"
    );
}
