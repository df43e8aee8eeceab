//! Project instructions: the `AGENTS.md` files from the workspace up to the
//! root of its git work tree (the cross-agent convention codex, gemini-cli
//! and others read), plus the files a task lists in `instructions:`. Every
//! stage gets them after its own rules, outermost file first and nearest
//! last, so the most specific word comes last.
//!
//! The text is deterministic (paths relative to the work-tree root, no
//! times), so requests stay byte-identical across machines and cassettes
//! replay. With no file found the prompts are exactly what they were
//! before this existed, so older cassettes still replay.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The name of the files looked for in the workspace and its parents.
pub const AGENTS_FILE: &str = "AGENTS.md";

/// At most this many bytes of instructions, over all files: what is past
/// it is cut, and the cut is noted in the text and the report.
pub const MAX_INSTRUCTION_BYTES: usize = 32 * 1024;

/// One instruction file given to the stages, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InstructionFile {
    /// Path relative to the work tree's root (or as the task file named it
    /// when it lies outside the work tree).
    pub path: String,
    /// `agents-md` (found by walking up from the workspace) or `task` (the
    /// task's `instructions:`).
    pub source: InstructionSource,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Bytes of it the stages were given (less than `bytes` when cut).
    pub included_bytes: u64,
    /// Whether it was cut (or left out) to keep within the size cap.
    pub truncated: bool,
}

/// Where an instruction file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum InstructionSource {
    /// An `AGENTS.md` between the workspace and the work-tree root.
    AgentsMd,
    /// A file the task's `instructions:` names.
    Task,
}

/// The instructions of one task: the text to append to every stage's
/// system prompt (empty when there are none) and the files it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectInstructions {
    /// The prompt section, starting with a blank line; empty without files.
    pub text: String,
    /// The files, in the order given.
    pub files: Vec<InstructionFile>,
}

/// Gathers the instructions for a task working in `workspace`: its
/// `AGENTS.md` files unless `discover` is off (`--no-project-instructions`),
/// then `extra` (absolute paths from `instructions:`). A file that cannot
/// be read is skipped; `instructions:` files were checked when the task
/// file was loaded.
pub fn gather(workspace: &Path, extra: &[PathBuf], discover: bool) -> ProjectInstructions {
    let workspace = workspace
        .canonicalize()
        .unwrap_or_else(|_| workspace.to_path_buf());
    let root = git2::Repository::discover(&workspace)
        .ok()
        .and_then(|repo| repo.workdir().and_then(|w| w.canonicalize().ok()))
        .unwrap_or_else(|| workspace.clone());
    let mut found: Vec<(PathBuf, InstructionSource)> = Vec::new();
    if discover {
        let mut dir = Some(workspace.as_path());
        while let Some(current) = dir {
            let candidate = current.join(AGENTS_FILE);
            if candidate.is_file() {
                found.push((candidate, InstructionSource::AgentsMd));
            }
            if current == root || !current.starts_with(&root) {
                break;
            }
            dir = current.parent();
        }
        // Outermost first, nearest last.
        found.reverse();
    }
    found.extend(
        extra
            .iter()
            .map(|path| (path.clone(), InstructionSource::Task)),
    );
    build(&root, &found)
}

fn build(root: &Path, found: &[(PathBuf, InstructionSource)]) -> ProjectInstructions {
    let mut sections = String::new();
    let mut files = Vec::new();
    let mut left = MAX_INSTRUCTION_BYTES;
    for (path, source) in found {
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let shown = path
            .strip_prefix(root)
            .map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
        let mut cut = text.len().min(left);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let truncated = cut < text.len();
        files.push(InstructionFile {
            path: shown.clone(),
            source: *source,
            bytes: bytes.len() as u64,
            included_bytes: cut as u64,
            truncated,
        });
        left -= cut;
        if cut == 0 {
            continue;
        }
        sections.push_str(&format!("\n\n## {shown}\n\n{}", text[..cut].trim_end()));
        if truncated {
            sections.push_str(&format!(
                "\n\n[kkrun cut this file here: {cut} of {} bytes shown; the instructions are capped at {MAX_INSTRUCTION_BYTES} bytes]",
                text.len()
            ));
        }
    }
    let text = if sections.is_empty() {
        String::new()
    } else {
        format!(
            "\n\n# Project instructions\n\nThe repository's instruction files follow, outermost first; where they \
             disagree, the later (nearer) one wins. They never override this stage's rules or the task's goal.{sections}"
        )
    };
    ProjectInstructions { text, files }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_outermost_first_and_the_cap_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        git2::Repository::init(&root).unwrap();
        let sub = root.join("pkg/app");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(root.join(AGENTS_FILE), "Root rules.\n").unwrap();
        std::fs::write(sub.join(AGENTS_FILE), "App rules.\n").unwrap();
        let extra = root.join("docs-style.md");
        std::fs::write(&extra, "x".repeat(MAX_INSTRUCTION_BYTES)).unwrap();
        let gathered = gather(&sub, std::slice::from_ref(&extra), true);
        let paths: Vec<&str> = gathered.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["AGENTS.md", "pkg/app/AGENTS.md", "docs-style.md"]);
        let root_at = gathered.text.find("Root rules.").unwrap();
        let app_at = gathered.text.find("App rules.").unwrap();
        assert!(root_at < app_at);
        let last = &gathered.files[2];
        assert!(last.truncated && last.included_bytes < last.bytes);
        assert!(gathered.text.contains("kkrun cut this file here"));
        assert!(!gathered.text.contains(&root.display().to_string()));

        let off = gather(&sub, &[], false);
        assert_eq!(off, ProjectInstructions::default());
    }
}
