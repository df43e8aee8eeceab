//! Confirming findings by reproduction: real `bash` processes on a scratch
//! copy of a real `00-base` snapshot, so the user's work tree never changes.

mod e2e_support;

use std::path::Path;
use std::time::Duration;

use e2e_support::{CALC, commit_all, git};
use kkrun::findings::reproduce::{ReproduceEnv, reproduce, status_of};
use kkrun::findings::{FindingStatus, ReproductionResult};
use kkrun::snapshot::{SnapshotMeta, SnapshotStore};
use kkrun::task::ShellPolicy;

/// Exits 1 while `add` subtracts (the planted bug), 0 once it adds.
const REPRO: &str =
    "python3 -c 'import sys; from calc import add; sys.exit(0 if add(2, 3) == 5 else 1)'";

struct Repo {
    dir: tempfile::TempDir,
    store: SnapshotStore,
}

fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("calc.py"), CALC).unwrap();
    std::fs::write(dir.path().join(".gitignore"), "__pycache__/\n").unwrap();
    git(dir.path(), &["init", "-q", "-b", "main"]);
    commit_all(dir.path(), "base");
    let store = SnapshotStore::open(dir.path()).unwrap();
    Repo { dir, store }
}

fn env(repo: &Repo, timeout: Duration) -> ReproduceEnv {
    let base = repo
        .store
        .take("run1", "hunt", &SnapshotMeta::new("base", "ok"))
        .unwrap();
    ReproduceEnv {
        store: repo.store.clone(),
        base,
        latest: None,
        shell: ShellPolicy::default(),
        env: [("PYTHONDONTWRITEBYTECODE".to_string(), "1".to_string())].into(),
        timeout,
    }
}

fn tree_listing(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap_or_default(),
            )
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_failing_reproducer_confirms_and_runs_on_the_base_not_the_live_tree() {
    let repo = repo();
    let env = env(&repo, Duration::from_secs(60));
    // The user fixes the bug after the base snapshot: the reproducer must
    // still see the base, and the live tree must stay as the user left it.
    std::fs::write(
        repo.dir.path().join("calc.py"),
        CALC.replace("a - b", "a + b"),
    )
    .unwrap();
    let before = tree_listing(repo.dir.path());
    let run = reproduce(&env, REPRO).await;
    assert_eq!(run.result, ReproductionResult::Failed, "{run:?}");
    assert_eq!(run.exit_code, Some(1));
    assert_eq!(status_of(Some(&run)), FindingStatus::Confirmed);
    assert!(
        run.output_tail.contains("exit code 1"),
        "{}",
        run.output_tail
    );
    assert_eq!(tree_listing(repo.dir.path()), before);
    assert_eq!(
        git(repo.dir.path(), &["status", "--porcelain"]),
        " M calc.py\n"
    );
}

#[tokio::test]
async fn a_passing_reproducer_leaves_the_finding_unconfirmed_with_its_output() {
    let repo = repo();
    let env = env(&repo, Duration::from_secs(60));
    let run = reproduce(&env, "echo the bug did not show; exit 0").await;
    assert_eq!(run.result, ReproductionResult::Passed);
    assert_eq!(status_of(Some(&run)), FindingStatus::Unconfirmed);
    assert!(run.output_tail.contains("the bug did not show"));
    assert_eq!(status_of(None), FindingStatus::Unconfirmed);
}

#[tokio::test]
async fn a_reproducer_that_hangs_is_killed_at_the_timeout_and_does_not_confirm() {
    let repo = repo();
    let env = env(&repo, Duration::from_secs(1));
    let run = reproduce(&env, "echo started; sleep 60").await;
    assert_eq!(run.result, ReproductionResult::TimedOut, "{run:?}");
    assert_eq!(status_of(Some(&run)), FindingStatus::Unconfirmed);
    assert!(run.duration_ms < 30_000, "took {} ms", run.duration_ms);
    assert!(run.output_tail.contains("started"));
}

#[tokio::test]
async fn a_reproducer_the_shell_policy_denies_never_runs() {
    let repo = repo();
    let mut env = env(&repo, Duration::from_secs(60));
    let marker = repo.dir.path().join("ran");
    let run = reproduce(
        &env,
        &format!("touch {} && git push origin main", marker.display()),
    )
    .await;
    assert_eq!(run.result, ReproductionResult::Refused, "{run:?}");
    assert!(run.output_tail.contains("git push"), "{}", run.output_tail);
    assert_eq!(status_of(Some(&run)), FindingStatus::Unconfirmed);
    env.shell.allow = vec!["python3 *".to_string()];
    let run = reproduce(&env, "make test").await;
    assert_eq!(run.result, ReproductionResult::Refused, "{run:?}");
    assert!(!marker.exists());
}

#[tokio::test]
async fn a_reproducer_that_cannot_be_found_does_not_confirm() {
    let repo = repo();
    let env = env(&repo, Duration::from_secs(60));
    let run = reproduce(&env, "no-such-command-kkrun-test").await;
    assert_eq!(run.result, ReproductionResult::Error, "{run:?}");
    assert_eq!(run.exit_code, Some(127));
    assert_eq!(status_of(Some(&run)), FindingStatus::Unconfirmed);
}

#[tokio::test]
async fn files_the_agent_added_are_there_but_its_changes_are_not() {
    let repo = repo();
    let mut env = env(&repo, Duration::from_secs(60));
    // The agent writes a reproduction test, and also "fixes" the code.
    std::fs::write(
        repo.dir.path().join("test_repro.py"),
        "import sys\nfrom calc import add\nsys.exit(0 if add(2, 3) == 5 else 1)\n",
    )
    .unwrap();
    std::fs::write(
        repo.dir.path().join("calc.py"),
        CALC.replace("a - b", "a + b"),
    )
    .unwrap();
    env.latest = Some(
        repo.store
            .take("run1", "hunt", &SnapshotMeta::new("code", "ok"))
            .unwrap(),
    );
    let run = reproduce(&env, "python3 test_repro.py").await;
    assert_eq!(run.result, ReproductionResult::Failed, "{run:?}");
    // Without the later snapshot the base alone has no such file.
    env.latest = None;
    let run = reproduce(&env, "test -f test_repro.py").await;
    assert_eq!(run.result, ReproductionResult::Failed);
}

#[tokio::test]
async fn the_scratch_copy_keeps_modes_and_symlinks_and_is_removed() {
    let repo = repo();
    let script = repo.dir.path().join("check.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("calc.py", repo.dir.path().join("link.py")).unwrap();
    }
    let env = env(&repo, Duration::from_secs(60));
    let run = reproduce(&env, "pwd > /dev/stderr; test -L link.py && ./check.sh").await;
    assert_eq!(run.exit_code, Some(3), "{run:?}");
    let scratch = run
        .output_tail
        .lines()
        .find(|l| l.contains("kkrun-reproduce-"))
        .unwrap()
        .trim()
        .to_string();
    assert!(!Path::new(&scratch).exists(), "{scratch} was left behind");
}
