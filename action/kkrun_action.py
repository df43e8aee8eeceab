#!/usr/bin/env python3
"""The steps of kkrun's GitHub Action (action.yml) that are more than a line.

    kkrun_action.py mask     print ::add-mask:: for every value kkrun redacts
    kkrun_action.py run      run kkrun, write outputs and the step summary
    kkrun_action.py finish   end the action with kkrun's exit code, per fail-on

Inputs come as KKRUN_INPUT_* environment variables (set by action.yml), never
spliced into the script, so no input can inject shell or Python. Standard
library only: it runs on any runner with python3 (every GitHub-hosted one).
"""

import json
import os
import re
import shlex
import subprocess
import sys
import time

# GitHub rejects a step summary over 1 MiB; leave room for the note.
SUMMARY_LIMIT = 1024 * 1024
SUMMARY_BUDGET = SUMMARY_LIMIT - 16 * 1024

# The names kkrun treats as secret (docs/tools.md, "Redaction"): a value of
# 8 characters or more of a variable whose name contains one of these.
SECRET_NAME_PARTS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
SECRET_MIN_LEN = 8

OUTCOMES = {
    0: "passed",
    1: "failed",
    2: "invalid",
    3: "error",
    4: "budget_exhausted",
    130: "interrupted",
}

FAIL_ON = ("failure", "error", "never")


class InputError(Exception):
    """An action input that cannot be used; the message says which and why."""


def env(name, default=""):
    return os.environ.get(name, default)


def annotate_error(title, message):
    print("::error title=%s::%s" % (escape_property(title), escape_data(message)), flush=True)


def escape_data(text):
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text):
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def split_words(text, what):
    try:
        return shlex.split(text, comments=False, posix=True)
    except ValueError as error:
        raise InputError("input %s: %s (quote a value with spaces as in a shell)" % (what, error))


def redact_values(args):
    """The values of every `--redact VALUE` and `--redact=VALUE` in args."""
    values = []
    for position, arg in enumerate(args):
        if arg == "--redact" and position + 1 < len(args):
            values.append(args[position + 1])
        elif arg.startswith("--redact="):
            values.append(arg[len("--redact="):])
    return values


def secret_values(environ, args):
    """Every value kkrun redacts, one line each, sorted, without repeats."""
    lines = set()
    for name, value in environ.items():
        upper = name.upper()
        if any(part in upper for part in SECRET_NAME_PARTS) and len(value) >= SECRET_MIN_LEN:
            # GitHub masks line by line: a multi-line secret needs each of
            # its lines (short ones, such as a lone brace, carry no secret).
            lines.update(line for line in value.splitlines() if len(line.strip()) >= SECRET_MIN_LEN)
    for value in redact_values(args):
        # kkrun redacts a --redact value whatever its length.
        lines.update(line for line in value.splitlines() if line.strip())
    return sorted(lines)


def cmd_mask():
    try:
        args = split_words(env("KKRUN_INPUT_ARGS"), "args")
    except InputError:
        args = []  # reported by `run`; masking what can be found still helps
    for value in secret_values(os.environ, args):
        print("::add-mask::%s" % value, flush=True)
    return 0


def artifact_name(partition):
    """Unique per workflow run, attempt, job, step and shard: names are
    immutable, so a re-run attempt or a second shard must not reuse one."""
    parts = ["kkrun", env("GITHUB_RUN_ID", "local"), env("GITHUB_RUN_ATTEMPT", "1")]
    for part in (env("GITHUB_JOB"), env("GITHUB_ACTION")):
        if part:
            parts.append(part)
    if partition:
        parts.append(partition)
    name = "-".join(parts)
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")


def build_command(inputs):
    tasks = split_words(inputs["tasks"], "tasks")
    if not tasks:
        raise InputError("input tasks is empty (name task files, directories or globs)")
    command = [inputs["kkrun"], "run"]
    # Several models (space- or newline-separated) run every task once per
    # model: kkrun's model matrix.
    for model in split_words(inputs["model"], "model"):
        command += ["--model", model]
    if inputs["jobs"]:
        if not inputs["jobs"].isdigit() or int(inputs["jobs"]) < 1:
            raise InputError("input jobs: %r is not a positive whole number" % inputs["jobs"])
        command += ["--jobs", inputs["jobs"]]
    if inputs["partition"]:
        command += ["--partition", inputs["partition"]]
    command += split_words(inputs["args"], "args")
    # `--` keeps a task file named like a flag a file.
    return command + ["--"] + tasks


def out_dir(args, cwd):
    """The run directory an explicit `--out DIR` in args names, if any."""
    found = None
    for position, arg in enumerate(args):
        if arg == "--out" and position + 1 < len(args):
            found = args[position + 1]
        elif arg.startswith("--out="):
            found = arg[len("--out="):]
    return os.path.join(cwd, found) if found else None


def latest_target(cwd):
    latest = os.path.join(cwd, ".kkrun", "runs", "latest")
    return os.path.realpath(latest) if os.path.lexists(latest) else None


def cut_summary(text, pointer):
    """text, cut at a line below GitHub's limit, with a note saying where the
    whole of it is."""
    data = text.encode("utf-8")
    if len(data) <= SUMMARY_BUDGET:
        return text
    cut = data[:SUMMARY_BUDGET]
    newline = cut.rfind(b"\n")
    if newline > 0:
        cut = cut[:newline]
    kept = cut.decode("utf-8", errors="ignore")
    return "%s\n\n---\n\n**kkrun: the summary was cut at %d of %d KiB** (GitHub shows at most " \
        "1 MiB per step). %s\n" % (kept, len(cut) // 1024, len(data) // 1024, pointer)


def write_outputs(path, outputs):
    if not path:
        return
    with open(path, "a", encoding="utf-8") as file:
        for key, value in outputs.items():
            value = str(value)
            if "\n" in value:
                raise RuntimeError("output %s has a newline" % key)
            file.write("%s=%s\n" % (key, value))


def append(path, text):
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(text)


def read_inputs():
    inputs = {
        "kkrun": env("KKRUN_BIN") or "kkrun",
        "tasks": env("KKRUN_INPUT_TASKS"),
        "model": env("KKRUN_INPUT_MODEL").strip(),
        "jobs": env("KKRUN_INPUT_JOBS").strip(),
        "partition": env("KKRUN_INPUT_PARTITION").strip(),
        "args": env("KKRUN_INPUT_ARGS"),
        "working_directory": env("KKRUN_INPUT_WORKING_DIRECTORY").strip() or ".",
        "upload": env("KKRUN_INPUT_UPLOAD_ARTIFACT", "true").strip().lower(),
        "fail_on": env("KKRUN_INPUT_FAIL_ON", "failure").strip().lower() or "failure",
    }
    if inputs["upload"] not in ("true", "false"):
        raise InputError("input upload-artifact: %r is not true or false" % inputs["upload"])
    if inputs["fail_on"] not in FAIL_ON:
        raise InputError("input fail-on: %r is not one of %s" % (inputs["fail_on"], ", ".join(FAIL_ON)))
    return inputs


def cmd_run():
    outputs_file = env("GITHUB_OUTPUT")
    summary_file = env("GITHUB_STEP_SUMMARY")
    try:
        inputs = read_inputs()
        command = build_command(inputs)
    except InputError as error:
        annotate_error("kkrun action", str(error))
        write_outputs(outputs_file, {"exit-code": 2, "outcome": "invalid"})
        return 0
    cwd = os.path.abspath(inputs["working_directory"])
    if not os.path.isdir(cwd):
        annotate_error("kkrun action", "input working-directory: %s is not a directory" % cwd)
        write_outputs(outputs_file, {"exit-code": 2, "outcome": "invalid"})
        return 0
    explicit_out = out_dir(command, cwd)
    latest_before = latest_target(cwd)
    started = time.time()

    child_env = dict(os.environ)
    # The action writes the step summary itself, cut to GitHub's limit.
    child_env.pop("GITHUB_STEP_SUMMARY", None)
    print("kkrun action: %s (in %s)" % (shlex.join(command), cwd), flush=True)
    try:
        code = subprocess.call(command, cwd=cwd, env=child_env)
    except OSError as error:
        annotate_error("kkrun action", "cannot start %s: %s" % (command[0], error))
        write_outputs(outputs_file, {"exit-code": 3, "outcome": "error"})
        return 0
    if code < 0:
        code = 128 - code  # killed by a signal: the shell's convention

    run_dir = None
    if explicit_out:
        if os.path.isfile(os.path.join(explicit_out, "report.json")) and \
                os.path.getmtime(os.path.join(explicit_out, "report.json")) >= started - 1:
            run_dir = explicit_out
    else:
        target = latest_target(cwd)
        if target and target != latest_before and os.path.isdir(target):
            run_dir = target

    partition = inputs["partition"].replace(":", "-").replace("/", "of")
    name = artifact_name(partition)
    outputs = {
        "exit-code": code,
        "outcome": OUTCOMES.get(code, "error"),
        "passed": 0,
        "failed": 0,
        "run-id": "",
        "run-dir": "",
        "report": "",
        "junit": "",
        "sarif": "",
        "summary": "",
        "artifact-name": name if inputs["upload"] == "true" else "",
    }
    summary = None
    if run_dir:
        outputs["run-dir"] = run_dir
        report_path = os.path.join(run_dir, "report.json")
        try:
            with open(report_path, encoding="utf-8") as file:
                report = json.load(file)
            tasks = report.get("tasks", [])
            passed = sum(1 for task in tasks if task.get("outcome") == "passed")
            outputs["run-id"] = report.get("run_id", os.path.basename(run_dir))
            outputs["passed"] = passed
            outputs["failed"] = len(tasks) - passed
            outputs["report"] = report_path
        except (OSError, ValueError) as error:
            annotate_error("kkrun action", "cannot read %s: %s" % (report_path, error))
        for key, file in (("junit", "junit.xml"), ("sarif", "findings.sarif"), ("summary", "summary.md")):
            path = os.path.join(run_dir, file)
            if os.path.isfile(path):
                outputs[key] = path
        if outputs["summary"]:
            with open(outputs["summary"], encoding="utf-8", errors="replace") as file:
                summary = file.read()
    if inputs["upload"] == "true" and run_dir:
        pointer = "The whole summary is `summary.md` in the artifact `%s`." % name
    elif run_dir:
        pointer = "The whole summary is `%s` on the runner." % outputs["summary"]
    else:
        pointer = ""
    if summary is not None:
        append(summary_file, cut_summary(summary, pointer).rstrip("\n") + "\n")
    else:
        append(summary_file, "### kkrun\n\nkkrun exited %d (%s) before writing a report; its "
               "log says why.\n" % (code, outputs["outcome"]))
    write_outputs(outputs_file, outputs)
    return 0


def cmd_finish():
    code_text = env("KKRUN_EXIT_CODE", "3").strip() or "3"
    fail_on = env("KKRUN_INPUT_FAIL_ON", "failure").strip().lower() or "failure"
    code = int(code_text) if code_text.isdigit() else 3
    link = env("KKRUN_ARTIFACT_URL").strip()
    if link:
        append(env("GITHUB_STEP_SUMMARY"), "kkrun's run directory: [artifact %s](%s)\n"
               % (env("KKRUN_ARTIFACT_NAME"), link))
    if code == 0 or fail_on == "never":
        return 0
    # `error`: only a run that could not do its job (bad input,
    # infrastructure, interrupted) fails; failed or over-budget tasks do not.
    if fail_on == "error" and code in (1, 4):
        print("kkrun exited %d (%s); fail-on: error lets the job go on" % (code, OUTCOMES[code]))
        return 0
    print("kkrun exited %d (%s)" % (code, OUTCOMES.get(code, "error")))
    return code if 0 < code < 256 else 1


def main(argv):
    commands = {"mask": cmd_mask, "run": cmd_run, "finish": cmd_finish}
    if len(argv) != 2 or argv[1] not in commands:
        print("usage: kkrun_action.py mask|run|finish", file=sys.stderr)
        return 2
    return commands[argv[1]]()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
