//! What a simple command really runs: wrappers that only start another
//! program (`env`, `command`, `exec`, `nice`, `time`, `nohup`, `timeout`,
//! `setsid`, `stdbuf`, `xargs`) are peeled off, the program is reduced to
//! its file name (`/usr/bin/git` is `git`), and git's global options (`-C`,
//! `-c`, `--git-dir`, `--work-tree`, `--no-pager`, ...) are set aside so
//! that the subcommand comes first.

use super::shell_syntax::Word;

/// A program and its arguments as they will run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invocation {
    /// The program as written after unwrapping (`/usr/bin/git`).
    pub program: Word,
    /// The program's file name (`git`).
    pub name: String,
    /// The arguments; for git, after its global options.
    pub args: Vec<Word>,
    /// `name=value` settings given with `git -c` or `--config-env`.
    pub git_config: Vec<String>,
}

impl Invocation {
    /// The invocation as text, with the program's file name: `git push`.
    pub fn effective_text(&self) -> String {
        std::iter::once(self.name.as_str())
            .chain(self.args.iter().map(|w| w.text.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The invocation as text, with the program as written.
    pub fn written_text(&self) -> String {
        std::iter::once(self.program.text.as_str())
            .chain(self.args.iter().map(|w| w.text.as_str()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How many wrappers deep kkrun looks (`env nice env …`).
const MAX_WRAPPERS: usize = 16;

/// Unwraps `words` (a simple command, program first). `None` for a command
/// without words (only assignments or redirections) or when only a wrapper
/// is left (`env` on its own prints the environment).
pub(crate) fn invocation(words: &[Word]) -> Option<Invocation> {
    let mut words: Vec<Word> = words.to_vec();
    for _ in 0..MAX_WRAPPERS {
        let program = words.first()?;
        let name = file_name(&program.text);
        let rest = &words[1..];
        let inner = match name.as_str() {
            "env" => unwrap_env(rest),
            "command" => skip_options(rest, &[]),
            "exec" => skip_options(rest, &["-a"]),
            "nice" => unwrap_nice(rest),
            "time" => skip_options(rest, &["-f", "--format", "-o", "--output"]),
            "nohup" => skip_options(rest, &[]),
            "setsid" => skip_options(rest, &[]),
            "stdbuf" => skip_options(rest, &["-i", "-o", "-e"]),
            "timeout" => unwrap_timeout(rest),
            "xargs" => skip_options(
                rest,
                &[
                    "-I",
                    "-L",
                    "-n",
                    "-P",
                    "-d",
                    "-E",
                    "-s",
                    "-a",
                    "--max-lines",
                    "--max-args",
                    "--max-procs",
                    "--delimiter",
                    "--eof",
                    "--max-chars",
                    "--arg-file",
                    "--replace",
                ],
            ),
            "git" => return Some(git_invocation(program.clone(), rest)),
            _ => {
                return Some(Invocation {
                    program: program.clone(),
                    name,
                    args: rest.to_vec(),
                    git_config: Vec::new(),
                });
            }
        };
        words = inner?;
    }
    // A pathological tower of wrappers: check what is left as it stands.
    let program = words.first()?.clone();
    Some(Invocation {
        name: file_name(&program.text),
        program,
        args: words[1..].to_vec(),
        git_config: Vec::new(),
    })
}

/// The last component of a path: `/usr/bin/git` and `./git` are `git`.
pub(crate) fn file_name(program: &str) -> String {
    program.rsplit('/').next().unwrap_or(program).to_string()
}

/// Skips the wrapper's options and returns the wrapped command, `None`
/// when there is none. `with_value` lists options taking a value (as the
/// next word, or `--opt=value`, or `-xVALUE` for short ones); any other
/// word starting with `-` is taken as an option without a value, since a
/// command name never starts with one.
fn skip_options(rest: &[Word], with_value: &[&str]) -> Option<Vec<Word>> {
    let mut index = 0;
    while let Some(word) = rest.get(index) {
        let text = word.text.as_str();
        if text == "--" {
            index += 1;
            break;
        }
        if !text.starts_with('-') || text == "-" {
            break;
        }
        index += 1;
        if with_value.contains(&text) {
            index += 1;
        }
    }
    let inner = rest.get(index..)?;
    if inner.is_empty() {
        None
    } else {
        Some(inner.to_vec())
    }
}

/// `env [-i] [-u NAME] [-C DIR] [-S STRING] [NAME=VALUE]... COMMAND`.
fn unwrap_env(rest: &[Word]) -> Option<Vec<Word>> {
    let mut index = 0;
    let mut split: Vec<Word> = Vec::new();
    while let Some(word) = rest.get(index) {
        let text = word.text.as_str();
        if text == "--" {
            index += 1;
            break;
        }
        if text == "-S" || text == "--split-string" {
            split.extend(rest.get(index + 1).map(split_words).unwrap_or_default());
            index += 2;
            continue;
        }
        if let Some(value) = text
            .strip_prefix("--split-string=")
            .or_else(|| text.strip_prefix("-S").filter(|v| !v.is_empty()))
        {
            split.extend(split_words(&Word {
                text: value.to_string(),
                ..word.clone()
            }));
            index += 1;
            continue;
        }
        if !text.starts_with('-') || text == "-" {
            break;
        }
        index += 1;
        if matches!(text, "-u" | "--unset" | "-C" | "--chdir" | "-P") {
            index += 1;
        }
    }
    // `env -S` puts its split words before the remaining ones.
    let mut words = split;
    words.extend(rest.get(index..).unwrap_or_default().iter().cloned());
    let first_command = words.iter().position(|w| !is_assignment(&w.text))?;
    Some(words[first_command..].to_vec())
}

fn split_words(word: &Word) -> Vec<Word> {
    word.text
        .split_whitespace()
        .map(|part| Word {
            text: part.to_string(),
            ..word.clone()
        })
        .collect()
}

fn is_assignment(text: &str) -> bool {
    text.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// `nice [-n N | -N | --adjustment=N] COMMAND`.
fn unwrap_nice(rest: &[Word]) -> Option<Vec<Word>> {
    skip_options(rest, &["-n", "--adjustment"])
}

/// `timeout [OPTIONS] DURATION COMMAND`.
fn unwrap_timeout(rest: &[Word]) -> Option<Vec<Word>> {
    let after_options = skip_options(rest, &["-s", "--signal", "-k", "--kill-after"])?;
    let inner = after_options.get(1..)?;
    if inner.is_empty() {
        None
    } else {
        Some(inner.to_vec())
    }
}

/// git's global options that take a value as the next word.
const GIT_OPTIONS_WITH_VALUE: &[&str] = &[
    "-C",
    "-c",
    "--git-dir",
    "--work-tree",
    "--namespace",
    "--config-env",
    "--super-prefix",
    "--exec-path",
    "--list-cmds",
    "--attr-source",
];

fn git_invocation(program: Word, rest: &[Word]) -> Invocation {
    let mut git_config = Vec::new();
    let mut index = 0;
    while let Some(word) = rest.get(index) {
        let text = word.text.as_str();
        if !text.starts_with('-') || text == "-" {
            break;
        }
        index += 1;
        if text == "--" {
            break;
        }
        if let Some(setting) = text.strip_prefix("--config-env=") {
            git_config.push(setting.to_string());
            continue;
        }
        // `--exec-path` alone prints the path; with `=` it sets it.
        if text == "--exec-path" {
            continue;
        }
        if GIT_OPTIONS_WITH_VALUE.contains(&text) {
            if let Some(value) = rest.get(index)
                && matches!(text, "-c" | "--config-env")
            {
                git_config.push(value.text.clone());
            }
            index += 1;
        } else if let Some(setting) = text.strip_prefix("-c").filter(|v| !v.is_empty()) {
            git_config.push(setting.to_string());
        }
    }
    Invocation {
        name: "git".to_string(),
        program,
        args: rest.get(index..).unwrap_or_default().to_vec(),
        git_config,
    }
}

#[cfg(test)]
mod tests {
    use super::super::shell_syntax::simple_commands;
    use super::*;

    fn effective(script: &str) -> String {
        let commands = simple_commands(script).unwrap();
        invocation(&commands[0].words).unwrap().effective_text()
    }

    #[test]
    fn unwraps_wrappers_and_paths() {
        assert_eq!(effective("env git push"), "git push");
        assert_eq!(
            effective("env -i -u HOME FOO=1 /usr/bin/git push"),
            "git push"
        );
        assert_eq!(effective("env -S 'git push' origin"), "git push origin");
        assert_eq!(effective("command -p git push"), "git push");
        assert_eq!(effective("exec -a x git push"), "git push");
        assert_eq!(effective("nice -n 10 git push"), "git push");
        assert_eq!(effective("nice -5 git push"), "git push");
        assert_eq!(effective("time -p nohup git push"), "git push");
        assert_eq!(effective("timeout -s KILL 10 git push"), "git push");
        assert_eq!(effective("xargs -I{} -n 1 git push"), "git push");
        assert_eq!(effective("nohup env nice ./bin/sudo ls"), "sudo ls");
        assert_eq!(effective("time cargo test"), "cargo test");
    }

    #[test]
    fn sets_git_global_options_aside() {
        assert_eq!(effective("git -C . push"), "git push");
        assert_eq!(
            effective("git --no-pager --git-dir=.git --work-tree . -p stash drop"),
            "git stash drop"
        );
        let commands = simple_commands("git -c user.name=x -ccore.pager=less commit").unwrap();
        let invocation = invocation(&commands[0].words).unwrap();
        assert_eq!(invocation.effective_text(), "git commit");
        assert_eq!(invocation.git_config, ["user.name=x", "core.pager=less"]);
    }

    #[test]
    fn a_bare_wrapper_runs_nothing_to_check() {
        let commands = simple_commands("env").unwrap();
        assert_eq!(invocation(&commands[0].words), None);
    }
}
