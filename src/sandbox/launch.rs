//! kkrun's side of the launcher: where it is, how a command is handed to
//! it, and the probe that finds out what this kernel lets it enforce.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{SandboxPolicy, SandboxStatus};

/// The first argument that turns the kkrun binary into the launcher.
pub const LAUNCH_ARG: &str = "__kkrun-sandbox-launcher";

/// The launcher's exit code when it could not start the command (a bad
/// spec, or a sandbox that `strict` required and could not be made).
pub const LAUNCH_FAILED: i32 = 125;

static LAUNCHER: OnceLock<PathBuf> = OnceLock::new();

/// The binary that runs commands through the sandbox launcher.
#[derive(Debug, Clone, Copy)]
pub struct Launcher {
    path: &'static Path,
}

impl Launcher {
    /// The launcher binary.
    pub fn path(&self) -> &'static Path {
        self.path
    }

    /// Arguments that run `script` under `policy`. With `strict`, the
    /// launcher refuses to start the command when any part of the policy
    /// cannot be enforced.
    pub fn args(&self, script: &str, policy: &SandboxPolicy, strict: bool) -> Vec<OsString> {
        let spec = LaunchSpec {
            script: script.to_string(),
            policy: policy.clone(),
            strict,
            probe: false,
        };
        vec![LAUNCH_ARG.into(), spec.encode().into()]
    }
}

/// Uses `path` (a kkrun binary) as the launcher. Only the first call has an
/// effect; tests that drive the library point it at the built binary.
pub fn set_launcher(path: impl Into<PathBuf>) {
    let _ = LAUNCHER.set(path.into());
}

/// Uses the running executable as the launcher: `main` calls this, since
/// the running kkrun binary is the launcher.
pub fn use_current_exe() {
    if let Ok(path) = std::env::current_exe() {
        set_launcher(path);
    }
}

/// The launcher, once one was set. Without one (the library used on its
/// own) commands run directly with `bash -c`, unsandboxed, in a process
/// group of their own.
pub fn launcher() -> Option<Launcher> {
    LAUNCHER.get().map(|path| Launcher {
        path: path.as_path(),
    })
}

/// What the launcher is asked to do, passed as its second argument.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LaunchSpec {
    /// The script for `bash -c`.
    pub(crate) script: String,
    /// What it may write, and whether it has the network.
    pub(crate) policy: SandboxPolicy,
    /// Refuse to run when the policy cannot be fully enforced.
    pub(crate) strict: bool,
    /// Apply the policy, print the resulting [`SandboxStatus`] as JSON on
    /// stdout and exit without running anything.
    pub(crate) probe: bool,
}

impl LaunchSpec {
    fn encode(&self) -> String {
        // Serializing plain strings, paths and booleans cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Finds out what the sandbox enforces for commands run under `policy` on
/// this machine, by running the launcher once in probe mode: the same code
/// path every command takes. Takes a few milliseconds.
pub fn probe(policy: &SandboxPolicy) -> SandboxStatus {
    let wanted_off = !policy.network;
    let Some(launcher) = launcher() else {
        return SandboxStatus::unavailable(
            wanted_off,
            "no sandbox launcher: kkrun is used as a library, not run as its binary".to_string(),
        );
    };
    let spec = LaunchSpec {
        script: String::new(),
        policy: policy.clone(),
        strict: false,
        probe: true,
    };
    let output = std::process::Command::new(launcher.path())
        .arg(LAUNCH_ARG)
        .arg(spec.encode())
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output();
    match output {
        Ok(output) if output.status.success() => serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| {
                SandboxStatus::unavailable(
                    wanted_off,
                    format!("the sandbox launcher answered the probe with something else: {e}"),
                )
            }),
        Ok(output) => SandboxStatus::unavailable(
            wanted_off,
            format!(
                "the sandbox launcher failed its probe ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ),
        Err(e) => SandboxStatus::unavailable(
            wanted_off,
            format!(
                "the sandbox launcher `{}` could not start: {e}",
                launcher.path().display()
            ),
        ),
    }
}
