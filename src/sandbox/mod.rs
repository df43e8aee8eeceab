//! The sandbox agent commands and checks run in, and the launcher that
//! applies it.
//!
//! kkrun never restricts itself. Each command is started through a small
//! launcher, the kkrun binary itself re-executed with [`LAUNCH_ARG`]: the
//! launcher enters new namespaces, makes `.git/` and `.kkrun/` read-only,
//! restricts itself with Landlock, becomes a child subreaper and only then
//! starts `bash -c`. Everything the command starts, even under `setsid` or
//! after a double fork, stays the launcher's descendant and is killed when
//! the command ends. Doing this in the launcher rather than in a `pre_exec`
//! hook keeps the forked child of a multi-threaded runtime to
//! async-signal-safe work.

mod launch;
mod policy;
mod status;

#[cfg(target_os = "linux")]
mod launcher;
#[cfg(target_os = "linux")]
mod reaper;
// The one module allowed `unsafe`; its safety argument is at its top.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod sys;

pub use launch::{LAUNCH_ARG, Launcher, launcher, probe, set_launcher, use_current_exe};
pub use policy::{CHECK_CACHES, SandboxOptions, SandboxPolicy, resolve_writable};
pub use status::{FilesystemEnforcement, NetworkEnforcement, SandboxStatus};

/// Runs the launcher when this process was started as one, and returns the
/// exit code it ends with; `None` for an ordinary kkrun invocation. `main`
/// calls this before parsing the command line.
pub fn run_launcher_if_requested() -> Option<i32> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != LAUNCH_ARG {
        return None;
    }
    let spec = args.next().unwrap_or_default();
    #[cfg(target_os = "linux")]
    {
        Some(launcher::main(&spec))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = spec;
        eprintln!("kkrun sandbox: the launcher exists on Linux only");
        Some(launch::LAUNCH_FAILED)
    }
}
