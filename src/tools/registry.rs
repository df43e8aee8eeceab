//! The table of tools: each tool's name, whether it writes, the JSON Schema
//! of its arguments and its handler, written once. The per-stage tool sets,
//! the specs the model is offered and dispatch all come from the table.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::changes::Writer;
use super::{ToolContext, ToolError, edit, findings, fs, patch, search, shell};
use crate::events::ToolOutcome;
use crate::json_schema::forbid_null;
use crate::provider::{ToolCall, ToolSpec};

/// The built-in tools, in the order they are offered (a stable prompt
/// prefix depends on it).
fn builtin_tools() -> Vec<Tool> {
    use Access::{ReadOnly, Writes};
    vec![
        Tool::blocking(
            "read_file",
            format!(
                "Read a text file of the workspace. Returns a header with the line range shown and the file's total line count, \
                 then the lines, each prefixed by its line number and a tab (the prefix is not part of the file). \
                 Without a range, reads from the start; a page holds at most {} lines or {} KiB, and the header says \
                 which start_line to use for the next page. Lines longer than {} characters are cut. \
                 Binary files are refused.",
                fs::PAGE_LINES,
                fs::PAGE_BYTES / 1024,
                fs::MAX_LINE_CHARS,
            ),
            ReadOnly,
            fs::read_file,
        ),
        Tool::blocking(
            "list_dir",
            format!(
                "List the entries of one directory of the workspace (not recursive), sorted by name. \
                 Directories end with `/`, files show their size, symlinks show their target. `.git` is never listed. \
                 At most {} entries. Use glob to find files by pattern across the tree.",
                fs::MAX_DIR_ENTRIES,
            ),
            ReadOnly,
            fs::list_dir,
        ),
        Tool::blocking(
            "glob",
            format!(
                "Find files by glob pattern. Files ignored by .gitignore are skipped, and `.git` is never searched. \
                 A pattern without `/` matches file names at any depth (`*.rs`, `Cargo.toml`); a pattern with `/` matches \
                 the path relative to `path` (`src/**/*.rs`, `tests/*.py`); `**` crosses directories, `*` does not. \
                 Returns workspace-relative paths sorted by name, at most {}.",
                search::MAX_GLOB_RESULTS,
            ),
            ReadOnly,
            search::glob,
        ),
        Tool::blocking(
            "grep",
            format!(
                "Search file contents with a regular expression (Rust regex syntax, as in ripgrep). \
                 Files ignored by .gitignore and binary files are skipped. Returns `path:line: text` for each matching line, \
                 in path order, at most max_matches (default {}). Narrow with `path` (a directory or a file) \
                 and `glob` (a file-name pattern such as `*.rs`, or a path pattern such as `src/**/*.rs`).",
                search::DEFAULT_MAX_MATCHES,
            ),
            ReadOnly,
            search::grep,
        ),
        Tool::file_writer(
            "write_file",
            "Create a file, or overwrite an existing one, with exactly the given content. \
             Missing parent directories are created. For a small change to an existing file, \
             prefer edit_file or apply_patch, which do not need the whole file.",
            fs::write_file,
        ),
        Tool::file_writer(
            "edit_file",
            "Replace an exact piece of text in a file. `old` must match the file's text exactly, \
             whitespace and indentation included (do not include read_file's line-number prefixes), \
             and must occur exactly once unless `replace_all` is true; include a few surrounding lines \
             to make it unique. When it does not match, the answer shows the closest lines of the file.",
            edit::edit_file,
        ),
        Tool::file_writer(
            "apply_patch",
            "Apply a unified diff (as produced by `git diff` or `diff -u`) to the workspace. Each file starts \
             with `--- a/path` and `+++ b/path` lines (use `/dev/null` to create or delete a file), followed by \
             `@@ -start,count +start,count @@` hunks whose lines start with ' ' (context), '-' (removed) or \
             '+' (added). Context and removed lines must match the file exactly; a hunk is found near its \
             stated line even if earlier edits moved it. All or nothing: if any hunk does not apply, no file is \
             changed and the answer says which hunk failed and why.",
            patch::apply_patch,
        ),
        Tool::typed(
            "shell",
            format!(
                "Run a command with `bash -c` in the workspace root and return its exit code and output (stdout and \
                 stderr interleaved). No input is available: interactive commands fail. The output keeps the first {} KiB \
                 and the last {} KiB with a marker where the middle was cut. The command runs in its own process group, \
                 which is killed when the command ends (background processes do not survive it) or when it times out. \
                 The task's shell policy may refuse commands; the refusal names the rule. Never commit, push, reset, \
                 check out or stash with git: kkrun records the work itself.",
                shell::SHELL_HEAD_BYTES / 1024,
                shell::SHELL_TAIL_BYTES / 1024,
            ),
            // A command can change anything the sandbox lets it.
            Writes,
            |ctx, args| Box::pin(shell::shell(ctx, args)),
        ),
        Tool::typed(
            "run_checks",
            "Run the task's checks (the commands that decide whether the task passes), in order, and return \
             pass/fail for each with the last lines of output of the failing ones. The same checks run again \
             after this stage and decide the outcome, so use this to see what still fails.",
            // Checks are commands too (builds write their output).
            Writes,
            |ctx, args| Box::pin(shell::run_checks_tool(ctx, args)),
        )
        // Running the checks is the debug stage's job; the code stage
        // carries out the plan.
        .only_in(ToolSet::Debug),
    ]
}

/// What a tool handler returns: the text for the model, or why not.
pub type ToolFuture<'c> = Pin<Box<dyn Future<Output = Result<String, ToolError>> + Send + 'c>>;

type Handler = Arc<dyn for<'c> Fn(&'c ToolContext, Value) -> ToolFuture<'c> + Send + Sync>;

/// Whether a tool may change the workspace. Read-only stages are offered
/// only [`Access::ReadOnly`] tools; a tool that might write is
/// [`Access::Writes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: offered in every stage.
    ReadOnly,
    /// May change files (or run commands that could): never offered in a
    /// read-only stage.
    Writes,
}

/// One tool: its name, description, access, argument schema and handler.
#[derive(Clone)]
pub struct Tool {
    name: String,
    description: String,
    access: Access,
    only_in: Option<ToolSet>,
    /// Records every path it writes in the task's [`super::ChangeLog`]; a
    /// writing tool that does not makes the next snapshot scan the tree.
    records_writes: bool,
    schema: Value,
    handler: Handler,
}

impl fmt::Debug for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .field("access", &self.access)
            .field("only_in", &self.only_in)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool whose arguments are `A`: the schema the model is offered is
    /// derived from `A`, and the handler gets the arguments parsed into that
    /// same type, so the two cannot disagree.
    pub fn typed<A, F>(
        name: &str,
        description: impl Into<String>,
        access: Access,
        handler: F,
    ) -> Tool
    where
        A: JsonSchema + DeserializeOwned,
        F: for<'c> Fn(&'c ToolContext, A) -> ToolFuture<'c> + Send + Sync + 'static,
    {
        let tool = name.to_string();
        Tool::with_schema(
            name,
            description,
            access,
            argument_schema::<A>(),
            move |ctx, arguments| match parse_arguments::<A>(&tool, arguments) {
                Ok(args) => handler(ctx, args),
                Err(error) => Box::pin(std::future::ready(Err(error))),
            },
        )
    }

    /// A tool whose schema is known only at run time (such as one an MCP
    /// server lists): the handler gets the arguments as a JSON object and
    /// checks them itself.
    pub fn with_schema<F>(
        name: &str,
        description: impl Into<String>,
        access: Access,
        schema: Value,
        handler: F,
    ) -> Tool
    where
        F: for<'c> Fn(&'c ToolContext, Value) -> ToolFuture<'c> + Send + Sync + 'static,
    {
        Tool {
            name: name.to_string(),
            description: description.into(),
            access,
            only_in: None,
            records_writes: false,
            schema,
            handler: Arc::new(handler),
        }
    }

    /// A file-system tool with arguments `A`, run on the blocking pool:
    /// walking or reading a large tree must not stall the runtime.
    fn blocking<A>(
        name: &str,
        description: impl Into<String>,
        access: Access,
        run: fn(&Path, A) -> Result<String, ToolError>,
    ) -> Tool
    where
        A: JsonSchema + DeserializeOwned + Send + 'static,
    {
        let tool = name.to_string();
        Tool::typed(name, description, access, move |ctx, args: A| {
            let tool = tool.clone();
            Box::pin(async move { on_blocking_pool(ctx, &tool, args, run).await })
        })
    }

    /// One of kkrun's file tools, run on the blocking pool like
    /// [`Tool::blocking`]: it writes, and records each path in the task's
    /// change log before touching it.
    fn file_writer<A>(
        name: &str,
        description: impl Into<String>,
        run: fn(&Path, A, &Writer) -> Result<String, ToolError>,
    ) -> Tool
    where
        A: JsonSchema + DeserializeOwned + Send + 'static,
    {
        let tool = name.to_string();
        let mut built = Tool::typed(name, description, Access::Writes, move |ctx, args: A| {
            let tool = tool.clone();
            // Counted as running from now: a snapshot taken after this
            // future is dropped, while the blocking pool still writes,
            // must not trust the log.
            let writer = ctx.changes.writer();
            let write = move |workspace: &Path, args: A| run(workspace, args, &writer);
            Box::pin(async move { on_blocking_pool(ctx, &tool, args, write).await })
        });
        built.records_writes = true;
        built
    }

    /// Offers the tool only in `set` (and there only if its access allows).
    #[must_use]
    pub fn only_in(mut self, set: ToolSet) -> Tool {
        self.only_in = Some(set);
        self
    }

    /// The name the model calls the tool by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the tool may write.
    pub fn access(&self) -> Access {
        self.access
    }

    /// What the model is offered: name, description and argument schema.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.schema.clone(),
        }
    }
}

/// Why a tool cannot join a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolTableError {
    /// Another tool already has the name.
    #[error("a tool named `{0}` already exists (hint: tool names must be unique; rename one)")]
    Duplicate(String),
    /// Providers accept only short names of letters, digits, `_` and `-`.
    #[error(
        "invalid tool name `{0}` (hint: use 1 to 64 ASCII letters, digits, `_` or `-`, as providers require)"
    )]
    InvalidName(String),
}

/// The tools a task's stages choose from, in the order they are offered.
#[derive(Debug, Clone)]
pub struct ToolTable {
    tools: Vec<Tool>,
}

static BUILTIN: LazyLock<Arc<ToolTable>> = LazyLock::new(|| {
    Arc::new(ToolTable {
        tools: builtin_tools(),
    })
});

impl ToolTable {
    /// The built-in tools.
    pub fn builtin() -> Arc<ToolTable> {
        Arc::clone(&BUILTIN)
    }

    /// Adds `tool` after the tools already in the table, so that adding
    /// one leaves the order (and the prompt prefix) of the others intact.
    pub fn add(&mut self, tool: Tool) -> Result<(), ToolTableError> {
        let valid_name = (1..=64).contains(&tool.name.len())
            && tool
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_name {
            return Err(ToolTableError::InvalidName(tool.name));
        }
        if self.get(&tool.name).is_some() {
            return Err(ToolTableError::Duplicate(tool.name));
        }
        self.tools.push(tool);
        Ok(())
    }

    /// The tool called `name`, offered in some set or not.
    pub fn get(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|tool| tool.name == name)
    }

    /// Whether `set` offers the tool called `name`.
    pub fn offers(&self, set: ToolSet, name: &str) -> bool {
        self.get(name).is_some_and(|tool| set.offers(tool))
    }

    /// The tools `set` offers, in table order.
    pub fn offered(&self, set: ToolSet) -> impl Iterator<Item = &Tool> {
        self.tools.iter().filter(move |tool| set.offers(tool))
    }

    /// The specs of the tools `set` offers, in table order.
    pub fn specs(&self, set: ToolSet) -> Vec<ToolSpec> {
        self.offered(set).map(Tool::spec).collect()
    }
}

/// Which tools a stage gets. Read-only is enforced here, by what is offered
/// and what [`execute`] accepts, not by the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ToolSet {
    /// Blueprint and preview: only the tools that do not write.
    ReadOnly,
    /// Code: every tool but those kept for the debug stage.
    Code,
    /// Debug: every tool, `run_checks` included.
    Debug,
}

impl ToolSet {
    /// The tool set of `stage`.
    pub fn for_stage(stage: crate::task::Stage) -> ToolSet {
        match stage {
            crate::task::Stage::Blueprint | crate::task::Stage::Preview => ToolSet::ReadOnly,
            crate::task::Stage::Code => ToolSet::Code,
            crate::task::Stage::Debug => ToolSet::Debug,
        }
    }

    /// Whether the set offers `tool`: a read-only set offers no tool that
    /// writes, and a tool kept for one set is offered only there.
    pub fn offers(self, tool: &Tool) -> bool {
        let access_allowed = tool.access == Access::ReadOnly || self != ToolSet::ReadOnly;
        access_allowed && tool.only_in.is_none_or(|only| only == self)
    }

    fn describe(self) -> &'static str {
        match self {
            ToolSet::ReadOnly => "a read-only stage: it may not change files",
            ToolSet::Code => "the code stage",
            ToolSet::Debug => "the debug stage",
        }
    }
}

/// What a tool call gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolResult {
    /// The text for the model.
    pub content: String,
    /// How the call ended.
    pub outcome: ToolOutcome,
}

impl ToolResult {
    fn from_result(result: Result<String, ToolError>) -> ToolResult {
        match result {
            Ok(content) => ToolResult {
                content,
                outcome: ToolOutcome::Ok,
            },
            Err(ToolError::Refused(content)) => ToolResult {
                content,
                outcome: ToolOutcome::Refused,
            },
            Err(ToolError::Failed(content)) => ToolResult {
                content,
                outcome: ToolOutcome::Error,
            },
        }
    }
}

/// Runs `call` with the context's tools if `set` offers its tool, and
/// refuses it otherwise. Never fails: every problem is a [`ToolResult`] for
/// the model. Dropping the future kills a running shell command's process
/// group.
pub async fn execute(ctx: &ToolContext, set: ToolSet, call: &ToolCall) -> ToolResult {
    ToolResult::from_result(dispatch(ctx, set, call).await)
}

async fn dispatch(ctx: &ToolContext, set: ToolSet, call: &ToolCall) -> Result<String, ToolError> {
    let name = call.name.as_str();
    if let Some(desk) = ctx.findings.as_ref().filter(|desk| desk.offers(name)) {
        let arguments = call.parsed_arguments().map_err(|e| {
            ToolError::Failed(format!(
                "the arguments of `{name}` are not valid JSON ({e}); send a JSON object matching the tool's schema"
            ))
        })?;
        return match name {
            "report_finding" => {
                findings::report_finding(ctx, desk, parse_arguments(name, arguments)?)
            }
            _ => findings::withdraw_finding(desk, parse_arguments(name, arguments)?),
        };
    }
    let tool = ctx.tools.get(name);
    let Some(tool) = tool.filter(|tool| set.offers(tool)) else {
        let offered: Vec<&str> = ctx.tools.offered(set).map(Tool::name).collect();
        let offered = offered.join(", ");
        let known = tool.is_some() || findings::all_specs().iter().any(|s| s.name == name);
        return Err(ToolError::Refused(if known {
            format!(
                "`{name}` is not available in {}; the tools here are: {offered}",
                set.describe()
            )
        } else {
            format!("there is no tool named `{name}`; the tools here are: {offered}")
        }));
    };
    let arguments = call.parsed_arguments().map_err(|e| {
        ToolError::Failed(format!(
            "the arguments of `{name}` are not valid JSON ({e}); send a JSON object matching the tool's schema"
        ))
    })?;
    if tool.access == Access::Writes && !tool.records_writes {
        // A command or another program may write anywhere: the next
        // snapshot must look at the whole tree.
        ctx.changes.forget();
    }
    (tool.handler)(ctx, arguments).await
}

/// Deserializes a tool's arguments, turning serde's complaint into a
/// message that names the tool.
pub(crate) fn parse_arguments<T: DeserializeOwned>(
    tool: &str,
    arguments: Value,
) -> Result<T, ToolError> {
    serde_json::from_value(arguments).map_err(|e| {
        ToolError::Failed(format!(
            "invalid arguments for `{tool}`: {e}; see the tool's schema"
        ))
    })
}

/// The JSON Schema of a tool's arguments `A`, as the model is offered it:
/// self-contained, without the meta-schema, titles, defaults (each
/// argument's description states its default) or schemars' integer formats,
/// which providers do not need.
fn argument_schema<A: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.meta_schema = None;
            settings.inline_subschemas = true;
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<A>().to_value();
    forbid_null(&mut schema);
    drop_defaults_and_integer_formats(&mut schema);
    if let Some(object) = schema.as_object_mut() {
        object.remove("title");
        // The tool's description says what it does; the struct's doc is
        // for readers of the code.
        object.remove("description");
        // Some providers want `properties` even when there are none.
        object
            .entry("properties")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    schema
}

/// Removes `default`s and schemars' `uint`, `int64`, ... formats (not JSON
/// Schema formats; the `minimum` beside them already says what matters).
fn drop_defaults_and_integer_formats(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::Object(properties)) = object.get_mut("properties") {
                for property in properties.values_mut() {
                    if let Value::Object(property) = property {
                        property.remove("default");
                    }
                }
            }
            let integer_format = object
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|format| format.starts_with("int") || format.starts_with("uint"));
            if integer_format {
                object.remove("format");
            }
            object
                .values_mut()
                .for_each(drop_defaults_and_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_defaults_and_integer_formats),
        _ => {}
    }
}

/// Runs a file-system tool on the blocking pool.
async fn on_blocking_pool<A>(
    ctx: &ToolContext,
    tool: &str,
    args: A,
    run: impl FnOnce(&Path, A) -> Result<String, ToolError> + Send + 'static,
) -> Result<String, ToolError>
where
    A: Send + 'static,
{
    // Confinement compares canonical paths; a context built by hand with a
    // non-canonical root would otherwise refuse everything.
    let workspace = ctx
        .workspace
        .canonicalize()
        .unwrap_or_else(|_| ctx.workspace.clone());
    tokio::task::spawn_blocking(move || run(&workspace, args))
        .await
        .unwrap_or_else(|e| {
            Err(ToolError::Failed(format!(
                "`{tool}` failed internally: {e}"
            )))
        })
}
