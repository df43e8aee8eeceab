//! `--partition hash:K/N | slice:K/N`: which of a run's tasks this CI job
//! runs, as in cargo-nextest. Shards count from 1.
//!
//! - `hash:K/N` puts a task in shard `fnv1a64(name) % N + 1`. The shard
//!   depends on the task's name only, so adding, removing or reordering
//!   tasks moves no other task; shards can be uneven.
//! - `slice:K/N` deals the tasks out round-robin in run order (the order
//!   kkrun runs them without `--partition`): the i-th task (from 0) goes to
//!   shard `i % N + 1`. Shards are even, but adding a task moves others.

use std::fmt;
use std::str::FromStr;

use crate::events::PartitionRecord;

/// How tasks are dealt to shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionKind {
    /// By a stable hash of the task's name.
    Hash,
    /// Round-robin in run order.
    Slice,
}

impl PartitionKind {
    /// The kind as written in `--partition` and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            PartitionKind::Hash => "hash",
            PartitionKind::Slice => "slice",
        }
    }
}

/// One shard of a run: `--partition KIND:K/N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    /// How tasks are dealt.
    pub kind: PartitionKind,
    /// This shard, from 1.
    pub shard: u32,
    /// How many shards there are.
    pub shards: u32,
}

/// Why a `--partition` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionError {
    /// No `KIND:` before the numbers.
    #[error("`{value}` names no kind (hint: write hash:K/N or slice:K/N, e.g. hash:1/2)")]
    MissingKind {
        /// The value given.
        value: String,
    },
    /// A kind other than hash and slice.
    #[error("unknown partition kind `{kind}` (choose from: hash, slice)")]
    UnknownKind {
        /// The kind given.
        kind: String,
    },
    /// Not `K/N` with whole numbers.
    #[error(
        "`{numbers}` is not K/N with whole numbers (hint: e.g. hash:1/4 for the first of four shards)"
    )]
    NotNumbers {
        /// The part after the kind.
        numbers: String,
    },
    /// `N` is 0.
    #[error("the number of shards must be at least 1, not 0")]
    NoShards,
    /// `K` is 0 or greater than `N`.
    #[error("shard {shard} of {shards} does not exist (hint: shards count from 1 to {shards})")]
    ShardOutOfRange {
        /// `K`.
        shard: u32,
        /// `N`.
        shards: u32,
    },
}

impl FromStr for Partition {
    type Err = PartitionError;

    fn from_str(value: &str) -> Result<Partition, PartitionError> {
        let value = value.trim();
        let Some((kind, numbers)) = value.split_once(':') else {
            return Err(PartitionError::MissingKind {
                value: value.to_string(),
            });
        };
        let kind = match kind {
            "hash" => PartitionKind::Hash,
            "slice" => PartitionKind::Slice,
            other => {
                return Err(PartitionError::UnknownKind {
                    kind: other.to_string(),
                });
            }
        };
        let not_numbers = || PartitionError::NotNumbers {
            numbers: numbers.to_string(),
        };
        let (shard, shards) = numbers.split_once('/').ok_or_else(not_numbers)?;
        let number = |text: &str| {
            // `+1` and ` 1` parse as u32 but are not what anyone writes.
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(not_numbers());
            }
            text.parse::<u32>().map_err(|_| not_numbers())
        };
        let (shard, shards) = (number(shard)?, number(shards)?);
        if shards == 0 {
            return Err(PartitionError::NoShards);
        }
        if shard == 0 || shard > shards {
            return Err(PartitionError::ShardOutOfRange { shard, shards });
        }
        Ok(Partition {
            kind,
            shard,
            shards,
        })
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}/{}", self.kind.as_str(), self.shard, self.shards)
    }
}

impl Partition {
    /// Whether the task named `name`, the `index`-th (from 0) in run order,
    /// belongs to this shard.
    pub fn selects(&self, index: usize, name: &str) -> bool {
        let shards = u64::from(self.shards);
        let slot = match self.kind {
            PartitionKind::Hash => fnv1a64(name.as_bytes()) % shards,
            PartitionKind::Slice => index as u64 % shards,
        };
        slot + 1 == u64::from(self.shard)
    }

    /// The items of this shard, in their order; `name` gives an item's task
    /// name.
    pub fn select<T>(&self, items: Vec<T>, name: impl Fn(&T) -> &str) -> Vec<T> {
        items
            .into_iter()
            .enumerate()
            .filter(|(index, item)| self.selects(*index, name(item)))
            .map(|(_, item)| item)
            .collect()
    }

    /// What the run records of this shard, given the full set of tasks in
    /// run order.
    pub fn record(&self, all_tasks: Vec<String>) -> PartitionRecord {
        PartitionRecord {
            spec: self.to_string(),
            kind: self.kind.as_str().to_string(),
            shard: self.shard,
            shards: self.shards,
            total_tasks: all_tasks.len(),
            all_tasks,
        }
    }
}

/// 64-bit FNV-1a: tiny, and fixed by its definition, so a task's shard is
/// the same on every machine and in every kkrun version (std's hashers make
/// no such promise).
fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<Partition, String> {
        value.parse::<Partition>().map_err(|e| e.to_string())
    }

    #[test]
    fn specs_parse_and_print_back() {
        let p = parse("hash:2/3").unwrap();
        assert_eq!((p.kind, p.shard, p.shards), (PartitionKind::Hash, 2, 3));
        assert_eq!(p.to_string(), "hash:2/3");
        assert_eq!(parse("slice:1/1").unwrap().to_string(), "slice:1/1");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(parse("3/2").unwrap_err().contains("names no kind"));
        assert!(parse("0/2").unwrap_err().contains("hash:K/N or slice:K/N"));
        assert_eq!(
            parse("foo:1/2").unwrap_err(),
            "unknown partition kind `foo` (choose from: hash, slice)"
        );
        assert!(
            parse("hash:3/2")
                .unwrap_err()
                .contains("shard 3 of 2 does not exist")
        );
        assert!(parse("hash:0/2").unwrap_err().contains("count from 1 to 2"));
        assert!(parse("slice:1/0").unwrap_err().contains("at least 1"));
        for bad in [
            "hash:1",
            "hash:a/2",
            "hash:1/",
            "hash:+1/2",
            "hash:-1/2",
            "hash:1/2/3",
        ] {
            assert!(parse(bad).unwrap_err().contains("not K/N"), "{bad}");
        }
    }

    #[test]
    fn fnv1a_matches_its_published_test_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_hash_shard_depends_on_the_name_only() {
        let p = |shard| Partition {
            kind: PartitionKind::Hash,
            shard,
            shards: 3,
        };
        let before: Vec<String> = (0..20).map(|i| format!("task-{i}")).collect();
        // More tasks, in another order, some before the old ones.
        let mut after: Vec<String> = (0..40).map(|i| format!("new-{i}")).collect();
        after.extend(before.iter().rev().cloned());
        for shard in 1..=3 {
            let old = p(shard).select(before.clone(), |n| n);
            let new = p(shard).select(after.clone(), |n| n);
            for name in &before {
                assert_eq!(old.contains(name), new.contains(name), "{name} moved");
            }
        }
    }

    #[test]
    fn slices_deal_round_robin_in_run_order() {
        let names = ["e", "a", "d", "b", "c"];
        let slice = |shard| {
            Partition {
                kind: PartitionKind::Slice,
                shard,
                shards: 2,
            }
            .select(names.to_vec(), |n| n)
        };
        assert_eq!(slice(1), ["e", "d", "c"]);
        assert_eq!(slice(2), ["a", "b"]);
    }

    #[test]
    fn every_task_is_in_exactly_one_shard() {
        let names: Vec<String> = (0..50).map(|i| format!("task-{i}")).collect();
        for kind in [PartitionKind::Hash, PartitionKind::Slice] {
            let mut seen = vec![0; names.len()];
            for shard in 1..=4 {
                let p = Partition {
                    kind,
                    shard,
                    shards: 4,
                };
                for (index, name) in names.iter().enumerate() {
                    if p.selects(index, name) {
                        seen[index] += 1;
                    }
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "{kind:?}: {seen:?}");
        }
    }
}
