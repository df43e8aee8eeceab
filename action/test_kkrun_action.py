"""Unit tests of kkrun_action.py: run by `cargo test --test action_script`."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kkrun_action  # noqa: E402


class SummaryCap(unittest.TestCase):
    def test_a_small_summary_is_kept_whole(self):
        self.assertEqual(kkrun_action.cut_summary("# ok\n", "pointer"), "# ok\n")

    def test_a_big_summary_is_cut_at_a_line_below_1_mib_with_a_pointer(self):
        line = "| `check` | fail | pass | é |\n"
        text = line * (2 * 1024 * 1024 // len(line.encode()))
        cut = kkrun_action.cut_summary(text, "The whole summary is `summary.md` in the artifact `a`.")
        size = len(cut.encode("utf-8"))
        self.assertLess(size, kkrun_action.SUMMARY_LIMIT)
        self.assertGreater(size, kkrun_action.SUMMARY_LIMIT - 32 * 1024)
        kept = cut.split("\n\n---\n\n")[0]
        self.assertTrue(text.startswith(kept + "\n"))
        self.assertIn("the summary was cut at", cut)
        self.assertTrue(cut.rstrip().endswith("in the artifact `a`."))


class Masks(unittest.TestCase):
    def test_secret_looking_names_redact_values_and_multi_line_secrets(self):
        environ = {
            "OPENAI_API_KEY": "sk-live-0123456789",
            "GH_TOKEN": "ghp_abcdefghijkl",
            "DB_PASSWORD": "short",  # under 8 characters: kkrun leaves it
            "MY_AUTH_HEADER": "line-one-secret\n}\nline-three-secret",
            "PATH": "/usr/bin:/bin/with/a/long/path",
        }
        args = ["--redact", "tiny", "--redact=another-value", "--model", "x"]
        self.assertEqual(
            kkrun_action.secret_values(environ, args),
            sorted(["sk-live-0123456789", "ghp_abcdefghijkl", "line-one-secret",
                    "line-three-secret", "tiny", "another-value"]),
        )

    def test_mask_prints_one_add_mask_line_per_value(self):
        env = dict(os.environ, SERVICE_SECRET="a-secret-of-length", KKRUN_INPUT_ARGS="--redact 'two words'")
        out = subprocess.run([sys.executable, kkrun_action.__file__, "mask"], env=env,
                             capture_output=True, text=True, check=True).stdout
        self.assertIn("::add-mask::a-secret-of-length\n", out)
        self.assertIn("::add-mask::two words\n", out)


class Inputs(unittest.TestCase):
    def inputs(self, **overrides):
        base = {"kkrun": "kkrun", "tasks": "tasks/a.yaml 'tasks/with space.yaml'", "model": "",
                "jobs": "", "partition": "", "args": ""}
        base.update(overrides)
        return base

    def test_the_command_line(self):
        self.assertEqual(
            kkrun_action.build_command(self.inputs(model="openai:gpt-4.1", jobs="2",
                                                   partition="hash:1/4", args="--restore always")),
            ["kkrun", "run", "--model", "openai:gpt-4.1", "--jobs", "2", "--partition", "hash:1/4",
             "--restore", "always", "--", "tasks/a.yaml", "tasks/with space.yaml"],
        )

    def test_several_models_make_a_matrix(self):
        self.assertEqual(
            kkrun_action.build_command(self.inputs(model="openai:gpt-4.1\n anthropic:claude-sonnet-4-5\n")),
            ["kkrun", "run", "--model", "openai:gpt-4.1", "--model", "anthropic:claude-sonnet-4-5",
             "--", "tasks/a.yaml", "tasks/with space.yaml"],
        )

    def test_bad_inputs_say_which_input(self):
        for overrides, expected in [({"jobs": "two"}, "input jobs"), ({"args": "'open"}, "input args"),
                                    ({"tasks": "  "}, "input tasks is empty")]:
            with self.assertRaises(kkrun_action.InputError) as caught:
                kkrun_action.build_command(self.inputs(**overrides))
            self.assertIn(expected, str(caught.exception))

    def test_artifact_names_differ_per_attempt_job_step_and_shard(self):
        env = {"GITHUB_RUN_ID": "99", "GITHUB_RUN_ATTEMPT": "2", "GITHUB_JOB": "shard",
               "GITHUB_ACTION": "__OWNER_kkrun"}
        old = dict(os.environ)
        try:
            os.environ.update(env)
            first = kkrun_action.artifact_name("hash-1of4")
            second = kkrun_action.artifact_name("hash-2of4")
            os.environ["GITHUB_RUN_ATTEMPT"] = "3"
            third = kkrun_action.artifact_name("hash-1of4")
        finally:
            os.environ.clear()
            os.environ.update(old)
        self.assertEqual(first, "kkrun-99-2-shard-__OWNER_kkrun-hash-1of4")
        self.assertEqual(len({first, second, third}), 3)


class FailOn(unittest.TestCase):
    def finish(self, code, fail_on):
        env = dict(os.environ, KKRUN_EXIT_CODE=str(code), KKRUN_INPUT_FAIL_ON=fail_on)
        env.pop("GITHUB_STEP_SUMMARY", None)
        return subprocess.run([sys.executable, kkrun_action.__file__, "finish"], env=env,
                              capture_output=True, text=True).returncode

    def test_fail_on_decides_the_step(self):
        self.assertEqual(self.finish(0, "failure"), 0)
        self.assertEqual(self.finish(1, "failure"), 1)
        self.assertEqual(self.finish(4, "failure"), 4)
        self.assertEqual(self.finish(1, "error"), 0)
        self.assertEqual(self.finish(4, "error"), 0)
        self.assertEqual(self.finish(2, "error"), 2)
        self.assertEqual(self.finish(3, "error"), 3)
        self.assertEqual(self.finish(3, "never"), 0)


class RunStep(unittest.TestCase):
    """The run step with real GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files and
    the real kkrun (KKRUN_BIN) on a task file that does not validate."""

    def test_bad_task_file_gives_exit_2_outputs_and_a_summary_note(self):
        kkrun = os.environ.get("KKRUN_BIN")
        if not kkrun:
            self.skipTest("KKRUN_BIN is not set")
        with tempfile.TemporaryDirectory() as tmp:
            with open(os.path.join(tmp, "bad.yaml"), "w") as file:
                file.write("version: 1\nname: Bad Name\n")
            outputs = os.path.join(tmp, "out")
            summary = os.path.join(tmp, "summary")
            env = dict(os.environ, GITHUB_OUTPUT=outputs, GITHUB_STEP_SUMMARY=summary,
                       KKRUN_INPUT_TASKS="bad.yaml", KKRUN_INPUT_WORKING_DIRECTORY=tmp)
            subprocess.run([sys.executable, kkrun_action.__file__, "run"], env=env, check=True,
                           capture_output=True)
            with open(outputs) as file:
                lines = dict(line.rstrip("\n").split("=", 1) for line in file)
            self.assertEqual(lines["exit-code"], "2")
            self.assertEqual(lines["outcome"], "invalid")
            self.assertEqual(lines["run-dir"], "")
            with open(summary) as file:
                self.assertIn("kkrun exited 2 (invalid) before writing a report", file.read())

    def test_the_partition_input_reaches_kkrun(self):
        kkrun = os.environ.get("KKRUN_BIN")
        if not kkrun:
            self.skipTest("KKRUN_BIN is not set")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with tempfile.TemporaryDirectory() as tmp:
            repo = os.path.join(tmp, "repo")
            for sub in ("tasks", "examples"):
                shutil.copytree(os.path.join(root, sub), os.path.join(repo, sub),
                                ignore=shutil.ignore_patterns("__pycache__"))
            git = ["git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t"]
            subprocess.run(git + ["init", "-q", "-b", "main"], check=True)
            subprocess.run(git + ["add", "-A"], check=True)
            subprocess.run(git + ["commit", "-q", "-m", "clone"], check=True)
            outputs = os.path.join(tmp, "out")
            summary = os.path.join(tmp, "summary")
            env = dict(os.environ, GITHUB_OUTPUT=outputs, GITHUB_STEP_SUMMARY=summary,
                       KKRUN_BIN=kkrun, KKRUN_INPUT_TASKS="tasks/",
                       KKRUN_INPUT_PARTITION="slice:2/2", KKRUN_INPUT_ARGS="--restore always",
                       KKRUN_INPUT_WORKING_DIRECTORY=repo, KKRUN_INPUT_UPLOAD_ARTIFACT="true")
            subprocess.run([sys.executable, kkrun_action.__file__, "run"], env=env, check=True,
                           capture_output=True)
            with open(outputs) as file:
                lines = dict(line.rstrip("\n").split("=", 1) for line in file)
            self.assertEqual(lines["exit-code"], "0")
            self.assertTrue(lines["artifact-name"].endswith("-slice-2of2"), lines["artifact-name"])
            with open(lines["report"]) as file:
                report = json.load(file)
            self.assertEqual(report["partition"]["spec"], "slice:2/2")
            self.assertEqual(report["partition"]["total_tasks"], 3)
            self.assertEqual([t["name"] for t in report["tasks"]], ["fix-iso-weeks"])


if __name__ == "__main__":
    unittest.main()
