//! The tools the agent may call, confined to the workspace, and the check runner.
