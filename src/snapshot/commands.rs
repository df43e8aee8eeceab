//! The `kkrun snapshots`, `diff`, `rollback` and `gc` commands.

use crate::cli::{DiffArgs, GcArgs, RollbackArgs, SnapshotsArgs};
use crate::error::Error;

/// `kkrun snapshots`: lists runs, tasks and their snapshots.
pub fn snapshots(_args: &SnapshotsArgs) -> Result<i32, Error> {
    Err(Error::InvalidInput(
        "kkrun snapshots: not available yet".into(),
    ))
}

/// `kkrun diff`: prints the patch between two snapshots.
pub fn diff(_args: &DiffArgs) -> Result<i32, Error> {
    Err(Error::InvalidInput("kkrun diff: not available yet".into()))
}

/// `kkrun rollback`: restores the work tree to a snapshot.
pub fn rollback(_args: &RollbackArgs) -> Result<i32, Error> {
    Err(Error::InvalidInput(
        "kkrun rollback: not available yet".into(),
    ))
}

/// `kkrun gc`: removes old snapshot refs.
pub fn gc(_args: &GcArgs) -> Result<i32, Error> {
    Err(Error::InvalidInput("kkrun gc: not available yet".into()))
}
