//! Whatever a task file holds, loading it returns tasks or errors: it never
//! panics, and every error it reports has a message and says what to do.

use proptest::prelude::*;

fn load(bytes: &[u8]) -> Result<usize, kkrun::task::TaskFileErrors> {
    let dir = tempfile::tempdir().unwrap();
    git2::Repository::init(dir.path()).unwrap();
    let file = dir.path().join("task.yaml");
    std::fs::write(&file, bytes).unwrap();
    kkrun::task::load_tasks(&[file.to_string_lossy().into_owned()]).map(|tasks| tasks.len())
}

fn check(bytes: &[u8]) {
    if let Err(errors) = load(bytes) {
        assert!(!errors.is_empty());
        for error in errors.errors() {
            assert!(!error.message().is_empty());
            assert!(error.help_text().is_some(), "{error:?}");
        }
        // Rendering must cope with any position and any line.
        let _ = errors.render(true);
    }
}

/// Fragments of task files, so that generated input reaches deep into the
/// validation instead of failing at the first byte.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("version: 1\n".to_owned()),
        Just("name: fuzz\n".to_owned()),
        Just("prompt: p\n".to_owned()),
        Just("tasks:\n".to_owned()),
        Just("  - name: t\n    prompt: p\n".to_owned()),
        Just("defaults:\n".to_owned()),
        Just("checks:\n  - name: unit\n    run: true\n".to_owned()),
        Just("stages: { debug: { max_rounds: 0 } }\n".to_owned()),
        Just("budget: { timeout: 1h30m, max_cost_usd: .nan }\n".to_owned()),
        Just("env: { A: 1, 2: b }\n".to_owned()),
        Just("a: &a [1, *a]\n".to_owned()),
        Just("<<: {kind: fix}\n".to_owned()),
        Just("\t".to_owned()),
        Just("---\n".to_owned()),
        Just("é🙂\r\n".to_owned()),
        "[ -~]{0,20}\n",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes);
    }

    #[test]
    fn task_file_like_text_never_panics(parts in proptest::collection::vec(fragment(), 0..12)) {
        check(parts.concat().as_bytes());
    }
}
