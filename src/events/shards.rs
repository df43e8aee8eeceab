//! What `run.started` says of a run that is one shard of a larger run
//! (`--partition`), or that `kkrun report merge` joined from shards. The
//! report carries the same records.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The shard a run is: its `--partition` and the full task set it was cut
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PartitionRecord {
    /// The `--partition` value, e.g. `hash:1/4`.
    pub spec: String,
    /// `hash` or `slice`.
    pub kind: String,
    /// This shard, from 1.
    pub shard: u32,
    /// How many shards there are.
    pub shards: u32,
    /// Tasks in the full set, before partitioning.
    pub total_tasks: usize,
    /// Every task of the full set, in run order; `kkrun report merge`
    /// checks that its shards share it.
    pub all_tasks: Vec<String>,
}

/// How a merged run was put together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRecord {
    /// The run directories merged, in the order their events were read
    /// (by shard, then run id).
    pub shards: Vec<MergedShard>,
    /// Tasks of the full set that no shard ran; each is reported as an
    /// `error` task.
    pub missing_tasks: Vec<String>,
}

/// One run directory of a merge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergedShard {
    /// The directory, as given to `kkrun report merge`.
    pub dir: String,
    /// The shard's run id.
    pub run_id: String,
    /// Its `--partition` value; `null` for a run without one.
    pub partition: Option<String>,
    /// The exit code the shard's run returned; `null` when its event stream
    /// ends without `run.finished`.
    pub exit_code: Option<i32>,
    /// The tasks it ran, in its run order.
    pub tasks: Vec<String>,
}
