//! The action's helper script (action/kkrun_action.py) through its own unit
//! tests: the step-summary cap, masks, inputs, artifact names, fail-on, and
//! the run step with the real kkrun and real GITHUB_OUTPUT and
//! GITHUB_STEP_SUMMARY files.

use std::process::Command;

#[test]
fn the_action_script_passes_its_unit_tests() {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let output = Command::new("python3")
        .args(["-m", "unittest", "-v", "action/test_kkrun_action.py"])
        .current_dir(manifest)
        .env("KKRUN_BIN", assert_cmd::cargo::cargo_bin!("kkrun"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("GITHUB_OUTPUT")
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains("skipped"), "{stderr}");
}
