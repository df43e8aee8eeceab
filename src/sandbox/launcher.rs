//! The launcher process: applies the sandbox to itself, runs `bash -c`,
//! and kills whatever the command leaves behind.
//!
//! Signals from kkrun: SIGTERM ends the command gracefully (SIGTERM to every
//! descendant, then SIGKILL after a grace period); SIGINT and SIGHUP end it
//! at once with SIGKILL. The launcher gets SIGHUP itself when kkrun dies.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use landlock::{
    ABI, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    path_beneath_rules,
};
use rustix::process::{Pid, Signal, WaitStatus};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::launch::{LAUNCH_FAILED, LaunchSpec};
use super::reaper;
use super::sys::{self, Namespaces};
use super::{FilesystemEnforcement, NetworkEnforcement, SandboxPolicy, SandboxStatus};

/// How long descendants get to exit after SIGTERM before SIGKILL; kkrun
/// waits a little longer than this for the launcher.
pub(super) const TERM_GRACE: Duration = Duration::from_secs(2);

/// The launcher's `main`: `spec` is its second argument.
pub(super) fn main(spec: &std::ffi::OsStr) -> i32 {
    let spec: LaunchSpec = match spec.to_str().map(serde_json::from_str) {
        Some(Ok(spec)) => spec,
        Some(Err(e)) => return fail(&format!("the launch spec is not valid: {e}")),
        None => return fail("the launch spec is not UTF-8"),
    };
    // kkrun dying must end the command too. The kernel sends this when the
    // thread that started the launcher ends; kkrun starts commands from its
    // runtime's worker threads, which live as long as the run. If kkrun
    // died before this line, the parent is already someone else and there
    // is nobody to run for.
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::HUP));
    if rustix::process::getppid().is_none_or(|ppid| ppid.as_raw_nonzero().get() == 1) {
        return fail("kkrun ended before the command started");
    }
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        return fail(&format!("cannot become a child subreaper: {e}"));
    }
    let status = apply(&spec.policy);
    if spec.probe {
        println!("{}", serde_json::to_string(&status).unwrap_or_default());
        return 0;
    }
    if spec.strict && !status.complete() {
        return fail(&format!(
            "the sandbox is required but could not be enforced: {}",
            status.describe()
        ));
    }
    supervise(&spec.script)
}

fn fail(message: &str) -> i32 {
    eprintln!("kkrun sandbox: {message}");
    LAUNCH_FAILED
}

/// Applies `policy` to this process as far as the kernel allows, and says
/// how far that was.
fn apply(policy: &SandboxPolicy) -> SandboxStatus {
    let mut reasons = Vec::new();
    let wanted = Namespaces {
        user: false,
        mount: !policy.read_only.is_empty(),
        network: !policy.network,
    };
    let entered = if !wanted.mount && !wanted.network {
        Some(wanted)
    } else {
        enter_namespaces(wanted, &mut reasons)
    };

    let mut read_only_done = policy.read_only.is_empty();
    if let Some(entered) = entered
        && entered.mount
    {
        match make_read_only(&policy.read_only) {
            Ok(()) => read_only_done = true,
            Err(e) => reasons.push(e),
        }
    }
    let network = if policy.network {
        NetworkEnforcement::Allowed
    } else if entered.is_some_and(|entered| entered.network) {
        if let Err(e) = sys::loopback_up() {
            // Still cut off from the outside; only loopback is missing.
            reasons.push(format!("the loopback interface stayed down: {e}"));
        }
        NetworkEnforcement::Enforced
    } else {
        NetworkEnforcement::Unavailable
    };

    let filesystem = match restrict_writes(&policy.writable) {
        Ok(()) if read_only_done => FilesystemEnforcement::Enforced,
        Ok(()) => {
            reasons.push(format!(
                "{} stay writable (no mount namespace to make them read-only)",
                list(&policy.read_only)
            ));
            FilesystemEnforcement::Partial
        }
        Err(e) => {
            reasons.push(e);
            FilesystemEnforcement::Unavailable
        }
    };
    SandboxStatus {
        filesystem,
        network,
        reasons,
    }
}

fn list(paths: &[std::path::PathBuf]) -> String {
    paths
        .iter()
        .map(|path| format!("`{}`", path.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Enters the namespaces: directly when privileged (root), else inside a
/// new user namespace that maps the user to itself.
fn enter_namespaces(wanted: Namespaces, reasons: &mut Vec<String>) -> Option<Namespaces> {
    let direct = sys::unshare(wanted);
    if direct.is_ok() {
        return Some(wanted);
    }
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let as_user = Namespaces {
        user: true,
        ..wanted
    };
    match sys::unshare(as_user).and_then(|()| map_user(uid, gid)) {
        Ok(()) => Some(as_user),
        Err(e) => {
            reasons.push(format!(
                "no namespaces could be created ({}; in a user namespace: {e})",
                direct.err().map(|e| e.to_string()).unwrap_or_default()
            ));
            None
        }
    }
}

/// Maps the user and group to themselves in the new user namespace, so that
/// files keep their owner and `id` prints the same.
fn map_user(uid: u32, gid: u32) -> std::io::Result<()> {
    std::fs::write("/proc/self/setgroups", "deny")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

/// Bind-mounts each path onto itself read-only, in the launcher's own mount
/// namespace (so nothing changes for anyone else).
fn make_read_only(paths: &[std::path::PathBuf]) -> Result<(), String> {
    use rustix::mount::{MountFlags, MountPropagationFlags};
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| format!("cannot make the mount namespace private: {e}"))?;
    for path in paths {
        rustix::mount::mount_bind(path, path)
            .and_then(|()| {
                rustix::mount::mount_remount(path, MountFlags::BIND | MountFlags::RDONLY, "")
            })
            .map_err(|e| format!("cannot make `{}` read-only: {e}", path.display()))?;
    }
    Ok(())
}

/// Landlock: reads and execution everywhere, writes only beneath
/// `writable`. A Landlock-restricted process can no longer mount, so the
/// read-only binds made before this stay.
fn restrict_writes(writable: &[std::path::PathBuf]) -> Result<(), String> {
    // ABI 3 covers every write (truncation included); device ioctls (ABI 5)
    // stay unrestricted so terminals and /dev/null behave.
    let abi = ABI::V3;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| {
            ruleset.add_rules(path_beneath_rules(
                [Path::new("/")],
                AccessFs::from_read(abi),
            ))
        })
        .and_then(|ruleset| {
            ruleset.add_rules(path_beneath_rules(writable, AccessFs::from_all(abi)))
        })
        .and_then(|ruleset| ruleset.restrict_self())
        .map_err(|e| format!("Landlock could not be set up: {e}"))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(()),
        RulesetStatus::NotEnforced => {
            Err("this kernel does not enforce Landlock (Linux 5.13 or later with Landlock enabled is needed)".to_string())
        }
    }
}

/// How kkrun asked the command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Graceful,
    Now,
}

/// Runs the script, waits for it or for kkrun's signal, then kills every
/// descendant left and ends the way the script ended.
fn supervise(script: &str) -> i32 {
    let mut signals = match Signals::new([SIGTERM, SIGINT, SIGHUP, SIGCHLD]) {
        Ok(signals) => signals,
        Err(e) => return fail(&format!("cannot watch signals: {e}")),
    };
    // std resets the signal mask and handlers in the child before exec.
    let child = match Command::new("bash").arg("-c").arg(script).spawn() {
        Ok(child) => child,
        Err(e) => return fail(&format!("could not start bash: {e}")),
    };
    let Some(bash) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) else {
        return fail("bash got an impossible process id");
    };
    let mut status = None;
    let mut stop = None;
    while status.is_none() && stop.is_none() {
        for signal in signals.wait() {
            match signal {
                SIGTERM => stop = Some(Stop::Graceful),
                SIGINT | SIGHUP => stop = Some(Stop::Now),
                _ => {}
            }
        }
        status = reaper::reap(bash);
    }
    if stop == Some(Stop::Graceful) {
        reaper::signal_all(Signal::TERM);
        status = reaper::wait_all(bash, TERM_GRACE).or(status);
    }
    status = reaper::kill_all(bash).or(status);
    finish(status)
}

fn finish(status: Option<WaitStatus>) -> i32 {
    match status {
        Some(status) => match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => code,
            (None, Some(signal)) => sys::die_by_signal(signal),
            (None, None) => LAUNCH_FAILED,
        },
        None => sys::die_by_signal(libc::SIGKILL),
    }
}
