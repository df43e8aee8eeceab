//! Incremental snapshots: after kkrun's own file tools (and nothing else)
//! wrote, the snapshot is the previous one plus the written paths. Each test
//! runs the real tools on a real repository and compares the tree with the
//! one a full scan of the same work tree records.

mod snapshot_support;

use std::collections::BTreeMap;

use git2::Oid;
use kkrun::provider::ToolCall;
use kkrun::snapshot::{ScanKind, SnapshotInfo, SnapshotMeta, SnapshotStore};
use kkrun::task::ShellPolicy;
use kkrun::tools::{ToolContext, ToolSet, execute};
use serde_json::{Value, json};
use snapshot_support::{TestRepo, tree_paths};

const RUN: &str = "20261202T120000Z-incr0";

/// A repository with committed files (one executable, one in a directory
/// of its own), an untracked file and an ignored directory; the tools'
/// context and a store that reads the change log.
struct Fixture {
    repo: TestRepo,
    ctx: ToolContext,
    store: SnapshotStore,
}

impl Fixture {
    fn new() -> Fixture {
        let repo = TestRepo::with_commit(&[
            ("src/lib.rs", "pub fn one() -> i32 {\n    1\n}\n"),
            ("run.sh", "#!/bin/sh\necho run\n"),
            ("old.txt", "old\n"),
            ("alone/only.txt", "the only file here\n"),
            ("docs/guide.md", "# Guide\n"),
            (".gitignore", "build/\n"),
        ]);
        repo.set_executable("run.sh", true);
        repo.commit_all("executable");
        repo.write("untracked.txt", "not committed\n");
        repo.write("build/out.o", "ignored\n");
        Fixture::around(repo)
    }

    /// The tools' context and a tracking store for `repo`.
    fn around(repo: TestRepo) -> Fixture {
        kkrun::sandbox::set_launcher(env!("CARGO_BIN_EXE_kkrun"));
        let ctx = ToolContext::from_parts(
            repo.root(),
            ShellPolicy::default(),
            BTreeMap::new(),
            Vec::new(),
        );
        let store = SnapshotStore::open(repo.root())
            .unwrap()
            .tracking(ctx.changes.clone());
        Fixture { repo, ctx, store }
    }

    async fn call(&self, set: ToolSet, tool: &str, arguments: Value) {
        let call = ToolCall {
            id: "call_1".to_string(),
            name: tool.to_string(),
            arguments: arguments.to_string(),
        };
        let result = execute(&self.ctx, set, &call).await;
        assert_eq!(
            result.outcome,
            kkrun::events::ToolOutcome::Ok,
            "{tool}: {}",
            result.content
        );
    }

    fn take(&self, stage: &str) -> SnapshotInfo {
        self.store
            .take(RUN, "t", &SnapshotMeta::new(stage, "ok"))
            .unwrap()
    }

    /// The tree a full scan records for the work tree as it is now (a store
    /// without a change log, under another task).
    fn full_scan_tree(&self) -> Oid {
        let plain = SnapshotStore::open(self.repo.root()).unwrap();
        let info = plain
            .take(RUN, "full", &SnapshotMeta::new("code", "ok"))
            .unwrap();
        assert_eq!(info.scan, Some(ScanKind::Full));
        self.tree(&info)
    }

    fn tree(&self, info: &SnapshotInfo) -> Oid {
        self.repo
            .repo
            .find_commit(Oid::from_str(&info.commit).unwrap())
            .unwrap()
            .tree_id()
    }
}

#[tokio::test]
async fn tool_edits_give_the_full_scan_tree_without_scanning() {
    let fx = Fixture::new();
    assert_eq!(fx.take("base").scan, Some(ScanKind::Full));

    // Create (in new directories), modify, overwrite an executable.
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "new/deep/dir/a.txt", "content": "new\n"}),
    )
    .await;
    fx.call(
        ToolSet::Code,
        "edit_file",
        json!({"path": "src/lib.rs", "old": "    1\n", "new": "    2\n"}),
    )
    .await;
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "run.sh", "content": "#!/bin/sh\necho changed\n"}),
    )
    .await;
    let code = fx.take("code");
    assert_eq!(code.scan, Some(ScanKind::Incremental));
    assert_eq!(fx.tree(&code), fx.full_scan_tree());
    let paths = tree_paths(&fx.repo.repo, &code.commit);
    assert_eq!(paths.get("run.sh"), Some(&0o100755), "executable bit kept");
    assert!(paths.contains_key("new/deep/dir/a.txt"));
    assert!(paths.contains_key("untracked.txt"));
    assert!(!paths.contains_key("build/out.o"));

    // Delete, rename the only file of a directory, modify an untracked
    // file, in one patch; then create and delete the same file.
    let patch = "\
--- a/old.txt
+++ /dev/null
@@ -1 +0,0 @@
-old
--- a/alone/only.txt
+++ b/moved/here.txt
@@ -1 +1 @@
-the only file here
+moved
--- a/untracked.txt
+++ b/untracked.txt
@@ -1 +1 @@
-not committed
+edited
";
    fx.call(ToolSet::Code, "apply_patch", json!({ "patch": patch }))
        .await;
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "tmp/scratch.txt", "content": "x\n"}),
    )
    .await;
    let gone = "--- a/tmp/scratch.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n";
    fx.call(ToolSet::Code, "apply_patch", json!({ "patch": gone }))
        .await;
    let debug = fx.take("debug");
    assert_eq!(debug.scan, Some(ScanKind::Incremental));
    assert_eq!(fx.tree(&debug), fx.full_scan_tree());
    let paths = tree_paths(&fx.repo.repo, &debug.commit);
    assert!(!paths.contains_key("old.txt"));
    assert!(!paths.keys().any(|path| path.starts_with("alone/")));
    assert!(!paths.keys().any(|path| path.starts_with("tmp/")));
    assert!(paths.contains_key("moved/here.txt"));
    assert_eq!(debug.files_changed, 4);

    // Nothing written: the same tree again, still without a scan.
    let preview = fx.take("preview");
    assert_eq!(preview.scan, Some(ScanKind::Incremental));
    assert_eq!(fx.tree(&preview), fx.tree(&debug));
}

#[tokio::test]
async fn a_shell_command_makes_the_next_snapshot_scan() {
    let fx = Fixture::new();
    fx.take("base");
    fx.call(
        ToolSet::Code,
        "shell",
        json!({"command": "echo from-shell > shell.txt"}),
    )
    .await;
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "tool.txt", "content": "tool\n"}),
    )
    .await;
    let code = fx.take("code");
    assert_eq!(code.scan, Some(ScanKind::Full));
    let paths = tree_paths(&fx.repo.repo, &code.commit);
    assert!(
        paths.contains_key("shell.txt"),
        "the scan saw the command's file"
    );
    assert!(paths.contains_key("tool.txt"));
    // The scan is the new base: the next one is incremental again.
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "tool.txt", "content": "again\n"}),
    )
    .await;
    let debug = fx.take("debug");
    assert_eq!(debug.scan, Some(ScanKind::Incremental));
    assert_eq!(fx.tree(&debug), fx.full_scan_tree());
}

#[tokio::test]
async fn what_the_incremental_path_cannot_be_sure_of_is_scanned() {
    let fx = Fixture::new();
    fx.take("base");
    // A new file under an ignored directory: recorded only if tracked,
    // which the incremental path cannot tell.
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "build/new.o", "content": "o\n"}),
    )
    .await;
    let first = fx.take("code");
    assert_eq!(first.scan, Some(ScanKind::Full));
    assert_eq!(fx.tree(&first), fx.full_scan_tree());

    // A changed .gitignore changes what the other paths are.
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": ".gitignore", "content": "build/\nuntracked.txt\n"}),
    )
    .await;
    let second = fx.take("debug");
    assert_eq!(second.scan, Some(ScanKind::Full));
    assert!(!tree_paths(&fx.repo.repo, &second.commit).contains_key("untracked.txt"));
    assert_eq!(fx.tree(&second), fx.full_scan_tree());
}

#[tokio::test]
async fn a_restore_after_tool_edits_saves_the_scanned_tree_and_then_forgets() {
    let fx = Fixture::new();
    let base = fx.take("base");
    let before = fx.repo.files();
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "src/lib.rs", "content": "changed\n"}),
    )
    .await;
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "added/file.txt", "content": "added\n"}),
    )
    .await;
    fx.take("code");
    fx.call(
        ToolSet::Code,
        "write_file",
        json!({"path": "late.txt", "content": "after the last snapshot\n"}),
    )
    .await;
    let expected_safety = {
        // What a full scan records right now; taken under another task so
        // the tracked store's log is untouched.
        fx.full_scan_tree()
    };
    let safety = fx.store.restore(RUN, "t", &base).unwrap();
    assert_eq!(fx.tree(&safety), expected_safety, "the safety snapshot");
    assert_eq!(fx.repo.files(), before, "the work tree is the base again");
    // The restore wrote the work tree: the next snapshot scans.
    let after = fx.take("code");
    assert_eq!(after.scan, Some(ScanKind::Full));
    assert_eq!(fx.tree(&after), fx.tree(&base));
}

#[tokio::test]
async fn line_ending_attributes_apply_as_in_a_full_scan() {
    let repo = TestRepo::with_commit(&[
        (".gitattributes", "*.txt text\n"),
        ("sub/.gitattributes", "*.dat text\n"),
        ("sub/keep.dat", "kept\n"),
        ("gone/.gitattributes", "*.cfg text\n"),
        ("gone/keep.cfg", "kept\n"),
    ]);
    // A tracked attributes file deleted from the disk, not from the index:
    // a full scan hashes without it, and so must the incremental path.
    std::fs::remove_file(repo.root().join("gone/.gitattributes")).unwrap();
    let fx = Fixture::around(repo);
    assert_eq!(fx.take("base").scan, Some(ScanKind::Full));
    for (path, content) in [
        ("notes.txt", "a\r\nb\r\n"),
        ("sub/new.dat", "1\r\n2\r\n"),
        ("gone/new.cfg", "p\r\nq\r\n"),
        ("plain.bin", "x\r\ny\r\n"),
    ] {
        fx.call(
            ToolSet::Code,
            "write_file",
            json!({"path": path, "content": content}),
        )
        .await;
    }
    let code = fx.take("code");
    assert_eq!(code.scan, Some(ScanKind::Incremental));
    assert_eq!(fx.tree(&code), fx.full_scan_tree());
    // The attributes did apply: `text` files lost their CRs, the others
    // kept them.
    let tree = fx
        .repo
        .repo
        .find_commit(Oid::from_str(&code.commit).unwrap())
        .unwrap()
        .tree()
        .unwrap();
    let content = |path: &str| {
        let id = tree.get_path(std::path::Path::new(path)).unwrap().id();
        fx.repo.repo.find_blob(id).unwrap().content().to_vec()
    };
    assert_eq!(content("notes.txt"), b"a\nb\n");
    assert_eq!(content("sub/new.dat"), b"1\n2\n");
    assert_eq!(content("gone/new.cfg"), b"p\r\nq\r\n");
    assert_eq!(content("plain.bin"), b"x\r\ny\r\n");
}
