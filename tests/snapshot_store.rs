//! Taking, listing and resolving snapshots in real repositories.

mod snapshot_support;

use kkrun::exit_codes;
use kkrun::provider::Usage;
use kkrun::snapshot::{SnapshotError, SnapshotInfo, SnapshotMeta, SnapshotStore};
use snapshot_support::{TestRepo, blob_at, tree_paths};

const RUN: &str = "20261124T101500Z-ab12cd";

fn meta(stage: &str) -> SnapshotMeta {
    SnapshotMeta::new(stage, "ok")
}

#[test]
fn first_snapshot_is_base_on_top_of_head_with_untracked_and_modified_files() {
    let repo = TestRepo::with_commit(&[("a.txt", "one\n"), ("gone.txt", "bye\n")]);
    let head = repo.repo.head().unwrap().peel_to_commit().unwrap().id();
    repo.write("a.txt", "two\n");
    repo.write("new/file.txt", "new\n");
    repo.remove("gone.txt");
    repo.write(".gitignore", "*.log\ntarget/\n");
    repo.write("debug.log", "ignored\n");
    repo.write("target/big.bin", "ignored\n");

    let store = SnapshotStore::open(repo.root()).unwrap();
    assert_eq!(store.head_commit().unwrap(), Some(head.to_string()));
    let base = store.take(RUN, "fix", &meta("base")).unwrap();

    assert_eq!(base.index, 0);
    assert_eq!(base.label(), "00-base");
    assert_eq!(base.ref_name, format!("refs/kkrun/{RUN}/fix/00-base"));
    assert_eq!(base.status, "ok");
    // a.txt modified, new/file.txt and .gitignore added, gone.txt deleted.
    assert_eq!(base.files_changed, 4);
    let paths = tree_paths(&repo.repo, &base.commit);
    assert_eq!(
        paths.keys().collect::<Vec<_>>(),
        [".gitignore", "a.txt", "new/file.txt"]
    );
    assert_eq!(blob_at(&repo.repo, &base.commit, "a.txt"), b"two\n");
    let commit = repo
        .repo
        .find_commit(git2::Oid::from_str(&base.commit).unwrap())
        .unwrap();
    assert_eq!(commit.parent_ids().collect::<Vec<_>>(), [head]);
    assert_eq!(commit.author().name().ok(), Some("kkrun"));
    assert_eq!(commit.author().email().ok(), Some("kkrun@localhost"));
    assert!(
        base.time.ends_with('Z') && base.time.len() == 20,
        "{}",
        base.time
    );
}

#[test]
fn snapshots_chain_and_git_log_shows_the_stages() {
    let repo = TestRepo::with_commit(&[("src/lib.rs", "fn a() {}\n")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let before = repo.protected_state();

    let base = store.take(RUN, "fix", &meta("base")).unwrap();
    assert_eq!(base.files_changed, 0);
    let blueprint = store.take(RUN, "fix", &meta("blueprint")).unwrap();
    repo.write("src/lib.rs", "fn a() { b() }\n");
    repo.write("src/b.rs", "fn b() {}\n");
    let code = store
        .take(
            RUN,
            "fix",
            &SnapshotMeta {
                stage: "code".into(),
                status: "ok".into(),
                usage: Some(Usage {
                    input_tokens: 1000,
                    cached_input_tokens: 100,
                    output_tokens: 200,
                    estimated: false,
                    cache_write_input_tokens: 0,
                    reasoning_tokens: 0,
                }),
                cost_usd: Some(0.25),
            },
        )
        .unwrap();
    let debug = store.take(RUN, "fix", &meta("debug")).unwrap();
    let code_again = store.take(RUN, "fix", &meta("code")).unwrap();

    assert_eq!(
        [&base, &blueprint, &code, &debug, &code_again].map(|s| s.label()),
        ["00-base", "01-blueprint", "02-code", "03-debug", "04-code"]
    );
    assert_eq!(code.files_changed, 2);
    assert_eq!(debug.files_changed, 0);

    // A listed snapshot does not know how its tree was read.
    let listed = store.list(RUN, "fix").unwrap();
    assert_eq!(base.scan, Some(kkrun::snapshot::ScanKind::Full));
    let as_listed = |info: &SnapshotInfo| SnapshotInfo {
        scan: None,
        ..info.clone()
    };
    assert_eq!(
        listed,
        [&base, &blueprint, &code, &debug, &code_again].map(as_listed)
    );

    let log = repo.git(&["log", "--format=%s", &code_again.ref_name]);
    assert_eq!(
        log.lines().collect::<Vec<_>>(),
        [
            "kkrun code: fix",
            "kkrun debug: fix",
            "kkrun code: fix",
            "kkrun blueprint: fix",
            "kkrun base: fix",
            "initial"
        ]
    );
    let trailers = repo.git(&[
        "log",
        "-1",
        "--format=%(trailers:only,unfold)",
        &code.ref_name,
    ]);
    for expected in [
        format!("Kkrun-Run: {RUN}"),
        "Kkrun-Stage: code".into(),
        "Kkrun-Status: ok".into(),
        "Kkrun-Input-Tokens: 1000".into(),
        "Kkrun-Output-Tokens: 200".into(),
        "Kkrun-Cost-Usd: 0.250000".into(),
    ] {
        assert!(
            trailers.contains(&expected),
            "{expected} missing in {trailers}"
        );
    }
    repo.git(&["fsck", "--strict", "--no-dangling"]);
    // No reflog for the private refs, and nothing the user owns moved.
    assert!(!repo.repo.path().join("logs/refs/kkrun").exists());
    assert_eq!(repo.protected_state(), before);
    assert_eq!(
        repo.git(&["status", "--porcelain"]),
        " M src/lib.rs\n?? src/b.rs\n"
    );
}

#[test]
fn unborn_head_base_has_no_parent() {
    let repo = TestRepo::new();
    repo.write("README.md", "hello\n");
    let store = SnapshotStore::open(repo.root()).unwrap();
    assert_eq!(store.head_commit().unwrap(), None);
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let commit = repo
        .repo
        .find_commit(git2::Oid::from_str(&base.commit).unwrap())
        .unwrap();
    assert_eq!(commit.parent_count(), 0);
    assert_eq!(base.files_changed, 1);
    assert!(repo.repo.head().is_err(), "HEAD must stay unborn");
    assert!(
        !repo.repo.path().join("index").exists(),
        "no index may appear"
    );
    repo.git(&["fsck", "--strict", "--no-dangling"]);
}

#[test]
fn empty_unborn_repository_snapshots_the_empty_tree() {
    let repo = TestRepo::new();
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    assert_eq!(base.files_changed, 0);
    assert!(tree_paths(&repo.repo, &base.commit).is_empty());
}

#[test]
fn resolve_by_stage_label_index_and_base() {
    let repo = TestRepo::with_commit(&[("a", "1")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    for stage in ["base", "code", "debug", "code"] {
        store.take(RUN, "t", &meta(stage)).unwrap();
    }
    assert_eq!(store.resolve(RUN, "t", "base").unwrap().label(), "00-base");
    assert_eq!(store.resolve(RUN, "t", "code").unwrap().label(), "03-code");
    assert_eq!(
        store.resolve(RUN, "t", "01-code").unwrap().label(),
        "01-code"
    );
    assert_eq!(store.resolve(RUN, "t", "2").unwrap().label(), "02-debug");
    assert_eq!(store.resolve(RUN, "t", "02").unwrap().label(), "02-debug");

    let err = store.resolve(RUN, "t", "preview").unwrap_err();
    assert_eq!(err.exit_code(), exit_codes::INVALID_INPUT);
    assert!(
        err.to_string()
            .contains("snapshots: 00-base, 01-code, 02-debug, 03-code"),
        "{err}"
    );
}

#[test]
fn unknown_run_and_task_list_what_exists() {
    let repo = TestRepo::with_commit(&[("a", "1")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let other_run = "20261125T090000Z-ffffff";
    store.take(RUN, "alpha", &meta("base")).unwrap();
    store.take(RUN, "beta", &meta("base")).unwrap();
    store.take(other_run, "alpha", &meta("base")).unwrap();

    let runs = store.runs().unwrap();
    assert_eq!(
        runs.iter()
            .map(|r| (r.run_id.as_str(), r.tasks.clone()))
            .collect::<Vec<_>>(),
        [
            (RUN, vec!["alpha".to_owned(), "beta".to_owned()]),
            (other_run, vec!["alpha".to_owned()])
        ]
    );

    match store.resolve("20990101T000000Z-000000", "alpha", "base") {
        Err(err @ SnapshotError::UnknownRun { .. }) => {
            assert_eq!(err.exit_code(), 2);
            assert!(
                err.to_string()
                    .contains(&format!("runs: {RUN}, {other_run}")),
                "{err}"
            );
        }
        other => panic!("expected UnknownRun, got {other:?}"),
    }
    match store.resolve(RUN, "gamma", "base") {
        Err(err @ SnapshotError::UnknownTask { .. }) => {
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("tasks: alpha, beta"), "{err}");
        }
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    assert!(store.list(RUN, "gamma").unwrap().is_empty());
}

#[test]
fn invalid_names_are_rejected_before_touching_the_repository() {
    let repo = TestRepo::with_commit(&[("a", "1")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    for (run, task, stage) in [
        ("bad/run", "t", "base"),
        (RUN, "a b", "base"),
        (RUN, "t", "x*"),
    ] {
        let err = store.take(run, task, &meta(stage)).unwrap_err();
        assert!(matches!(err, SnapshotError::InvalidName { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 2);
    }
    assert!(store.runs().unwrap().is_empty());
}

#[test]
fn open_outside_a_repository_or_bare_is_invalid_input() {
    let plain = tempfile::tempdir().unwrap();
    let err = SnapshotStore::open(plain.path()).unwrap_err();
    assert!(
        matches!(err, SnapshotError::NotARepository { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), exit_codes::INVALID_INPUT);

    let missing = plain.path().join("missing");
    assert_eq!(SnapshotStore::open(&missing).unwrap_err().exit_code(), 2);

    let bare = tempfile::tempdir().unwrap();
    git2::Repository::init_bare(bare.path()).unwrap();
    let err = SnapshotStore::open(bare.path()).unwrap_err();
    assert!(
        matches!(err, SnapshotError::BareRepository { .. }),
        "{err:?}"
    );
    assert_eq!(err.exit_code(), exit_codes::INVALID_INPUT);

    let repo = TestRepo::new();
    let err = SnapshotStore::open(&repo.path(".git/objects")).unwrap_err();
    assert_eq!(err.exit_code(), exit_codes::INVALID_INPUT, "{err:?}");
}

#[test]
fn ensure_excluded_is_idempotent_and_hides_the_directory() {
    let repo = TestRepo::with_commit(&[("a", "1")]);
    let exclude = repo.path(".git/info/exclude");
    std::fs::write(&exclude, "# existing\n*.tmp").unwrap();
    let store = SnapshotStore::open(repo.root()).unwrap();
    store.ensure_excluded(".kkrun/").unwrap();
    store.ensure_excluded(".kkrun/").unwrap();
    assert_eq!(
        std::fs::read_to_string(&exclude).unwrap(),
        "# existing\n*.tmp\n.kkrun/\n"
    );
    repo.write(".kkrun/runs/r/report.json", "{}");
    repo.write("x.tmp", "tmp");
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    assert_eq!(
        tree_paths(&repo.repo, &base.commit)
            .keys()
            .collect::<Vec<_>>(),
        ["a"]
    );

    // A repository without info/exclude gets one.
    let fresh = TestRepo::new();
    std::fs::remove_dir_all(fresh.path(".git/info")).ok();
    SnapshotStore::open(fresh.root())
        .unwrap()
        .ensure_excluded(".kkrun/")
        .unwrap();
    assert_eq!(fresh.read(".git/info/exclude"), ".kkrun/\n");
}

#[test]
fn identity_comes_from_the_environment_when_set() {
    // Runs in a child process of this test binary so the variables do not
    // leak into the other tests.
    if std::env::var_os("KKRUN_IDENTITY_CHILD").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "identity_comes_from_the_environment_when_set",
                "--nocapture",
            ])
            .env("KKRUN_IDENTITY_CHILD", "1")
            .env("KKRUN_GIT_NAME", "CI Bot")
            .env("KKRUN_GIT_EMAIL", "ci@example.com")
            .status()
            .unwrap();
        assert!(status.success());
        return;
    }
    let repo = TestRepo::with_commit(&[("a", "1")]);
    let store = SnapshotStore::open(repo.root()).unwrap();
    let base = store.take(RUN, "t", &meta("base")).unwrap();
    let commit = repo
        .repo
        .find_commit(git2::Oid::from_str(&base.commit).unwrap())
        .unwrap();
    assert_eq!(commit.author().name().ok(), Some("CI Bot"));
    assert_eq!(commit.committer().email().ok(), Some("ci@example.com"));
}
