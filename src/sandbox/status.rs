//! What the sandbox could enforce on this machine, as the report and the
//! console show it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Whether writes were confined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FilesystemEnforcement {
    /// Landlock allows writes only to the workspace, the temporary
    /// directory and the declared paths; `.git/` and `.kkrun/` are
    /// read-only.
    Enforced,
    /// Landlock confines writes, but `.git/` and `.kkrun/` could not be
    /// made read-only (no mount namespace): commands can write there.
    Partial,
    /// Nothing confines writes: commands can write wherever the user
    /// running kkrun can.
    Unavailable,
}

/// Whether network access was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkEnforcement {
    /// Commands run in a network namespace of their own with only a
    /// loopback interface.
    Enforced,
    /// Network was to be off but no network namespace could be made:
    /// commands have the network.
    Unavailable,
    /// The task allows network access.
    Allowed,
}

/// What the sandbox enforces for one kind of command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SandboxStatus {
    /// How writes are confined.
    pub filesystem: FilesystemEnforcement,
    /// How network access is cut off.
    pub network: NetworkEnforcement,
    /// Why something could not be enforced, one reason per entry; empty
    /// when everything asked for is enforced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

impl SandboxStatus {
    /// The status when no launcher could run at all.
    pub fn unavailable(network_wanted_off: bool, reason: String) -> SandboxStatus {
        SandboxStatus {
            filesystem: FilesystemEnforcement::Unavailable,
            network: if network_wanted_off {
                NetworkEnforcement::Unavailable
            } else {
                NetworkEnforcement::Allowed
            },
            reasons: vec![reason],
        }
    }

    /// True when everything asked for is enforced.
    pub fn complete(&self) -> bool {
        self.filesystem == FilesystemEnforcement::Enforced
            && self.network != NetworkEnforcement::Unavailable
    }

    /// One line for the console, e.g. `filesystem enforced, network off`.
    pub fn describe(&self) -> String {
        let filesystem = match self.filesystem {
            FilesystemEnforcement::Enforced => "filesystem enforced",
            FilesystemEnforcement::Partial => "filesystem partly enforced",
            FilesystemEnforcement::Unavailable => "filesystem NOT confined",
        };
        let network = match self.network {
            NetworkEnforcement::Enforced => "network off",
            NetworkEnforcement::Unavailable => "network NOT cut off",
            NetworkEnforcement::Allowed => "network allowed",
        };
        let mut line = format!("{filesystem}, {network}");
        if !self.reasons.is_empty() {
            line.push_str(&format!(" ({})", self.reasons.join("; ")));
        }
        line
    }
}
