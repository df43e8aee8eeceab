//! `--require-sandbox`: the sandbox of every command and check is probed
//! before anything runs.

use crate::error::Error;
use crate::task::Task;

/// Probes the sandbox of every task's commands and checks, and refuses the
/// run (exit 2) when any of them cannot be fully enforced here.
pub(super) fn require_sandbox(tasks: &[Task]) -> Result<(), Error> {
    for task in tasks {
        let options = crate::sandbox::SandboxOptions::from_task(&task.shell, &task.env);
        let workspace = task
            .workspace
            .canonicalize()
            .unwrap_or_else(|_| task.workspace.clone());
        let env = crate::tools::process::command_env(&task.env);
        let mut policies = vec![("its commands".to_string(), options.commands(&workspace))];
        for check in &task.checks {
            policies.push((
                format!("check `{}`", check.name),
                options.check(&workspace, check.network, &env),
            ));
        }
        for (what, policy) in policies {
            let status = crate::sandbox::probe(&policy);
            if !status.complete() {
                return Err(Error::InvalidInput(format!(
                    "--require-sandbox: task `{}` ({}): the sandbox of {what} cannot be fully enforced on this \
                     machine: {} (hint: run where Landlock and namespaces are available, or drop --require-sandbox)",
                    task.name,
                    task.file.display(),
                    status.describe()
                )));
            }
        }
    }
    Ok(())
}
