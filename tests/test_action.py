"""The composite action (`action.yml`): valid action metadata, the README's one-`uses:` example is
the example workflow and names only inputs the action has, and its shell steps, run as the runner
runs them, review a pull request fetched from a remote as data, from the base checkout.

The fake event: a local bare repository is `origin`, with a base branch and the pull request's head
under refs/pull/7/head; the stub server is the endpoint (ANTHROPIC_BASE_URL, as a job's `env:`
would give it). Steps that `uses:` another action are not run: the test does what they would
(the checkout is a clone of the bare repository at the base commit; setup-python is this Python;
the two uploads are checked by evaluating their `if:` and `with:` against the steps' outputs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from conftest import API_KEY, README_DIFF, git, official_sarif_validator, unsafe_finding, validate_report

from pytest_swarmgate.testing import Reply, Script


class YAML12Loader(yaml.SafeLoader):
    """YAML as GitHub reads it (1.2 core): only true/false are booleans, so `on:` stays a key."""


YAML12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YAML12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=YAML12Loader)  # a SafeLoader: no objects made


ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).with_name("data")
ACTION = load_yaml(ROOT / "action.yml")
EXAMPLE = ROOT / "docs" / "examples" / "swarm-review.yml"
# The flags of the README's recipe that keep the pull request out of the gate's process.
RECIPE_FLAGS = "--swarm-review --swarm-only --noconftest -p no:cacheprovider -o addopts= -o required_plugins="


def schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return loaded


def test_action_yml_is_valid_action_metadata() -> None:
    validator = jsonschema.Draft7Validator(schema("github-action.json"))
    validator.validate(ACTION)
    assert ACTION["runs"]["using"] == "composite"
    broken = json.loads(json.dumps(ACTION))
    del broken["runs"]["steps"][1]["shell"]  # a `run:` step without its shell is no composite step
    assert not validator.is_valid(broken), "the vendored schema checks composite steps"


def test_the_readme_example_is_the_example_workflow_and_uses_only_the_actions_inputs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = readme.split("\n## CI\n")[1]
    first = re.search(r"^```yaml\n(.*?)^```", ci, flags=re.S | re.M)
    assert first is not None and first.group(1) == EXAMPLE.read_text(encoding="utf-8")
    workflow = load_yaml(EXAMPLE)
    jsonschema.Draft7Validator(schema("github-workflow.json")).validate(workflow)
    (step,) = workflow["jobs"]["review"]["steps"]
    assert re.fullmatch(r"[\w-]+/pytest-swarmgate@v\d+\.\d+\.\d+", step["uses"])
    assert set(step["with"]) <= set(ACTION["inputs"])
    assert {name for name, spec in ACTION["inputs"].items() if spec.get("required")} <= set(step["with"])


def test_every_input_reaches_a_script_through_env_never_through_the_shell_text() -> None:
    for step in ACTION["runs"]["steps"]:
        assert "${{" not in step.get("run", ""), step["name"]
    review = step_named("review the diff")
    assert RECIPE_FLAGS in " ".join(review["run"].split())
    install = step_named("install pytest-swarmgate")
    assert install["env"]["SWARMGATE_PACKAGE"] == "${{ inputs.package || github.action_path }}"


def step_named(name: str) -> dict[str, Any]:
    (step,) = (s for s in ACTION["runs"]["steps"] if s.get("name") == name)
    found: dict[str, Any] = step
    return found


# --- the shell steps against a fake event ---------------------------------------------------


class Expressions:
    """The little of GitHub's expression language that action.yml uses: context lookups
    (`inputs.x`, `steps.id.outputs.x`, `github.event...`), `||`, `&&`, `==`, `!=`, `always()`."""

    def __init__(self, contexts: dict[str, Any]) -> None:
        self.contexts = contexts

    def value(self, expr: str) -> Any:
        expr = expr.strip()
        if "||" in expr:
            return next((v for part in expr.split("||") if (v := self.value(part))), "")
        if "&&" in expr:
            return all(self.value(part) for part in expr.split("&&"))
        for op in ("==", "!="):
            if op in expr:
                left, right = (self.value(side) for side in expr.split(op))
                return (str(left) == str(right)) == (op == "==")
        if expr == "always()":
            return True
        if expr.startswith("'") and expr.endswith("'"):
            return expr[1:-1]
        node: Any = self.contexts
        for key in expr.split("."):
            node = node.get(key, "") if isinstance(node, dict) else ""
        return node

    def text(self, template: str) -> str:
        return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(self.value(m.group(1))), template)


def read_outputs(path: Path) -> dict[str, str]:
    """A GITHUB_OUTPUT file: `name=value` lines and `name<<DELIM` blocks."""
    outputs: dict[str, str] = {}
    lines = iter(path.read_text(encoding="utf-8").splitlines())
    for line in lines:
        if "<<" in line and "=" not in line.split("<<")[0]:
            name, delim = line.split("<<", 1)
            outputs[name] = "\n".join(iter(lambda: next(lines), delim))
        elif line:
            name, value = line.split("=", 1)
            outputs[name] = value
    return outputs


def run_action(inputs: dict[str, str], event: dict[str, Any], workspace: Path, tmp: Path, env: dict[str, str]) -> Any:
    """Run every `run:` step of action.yml in order, as the runner does (`bash --noprofile --norc
    -eo pipefail`, the step's `env:` evaluated, a fresh GITHUB_OUTPUT per step), until one fails."""
    defaults = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    contexts: dict[str, Any] = {"github": {"action_path": str(ROOT), "event": event}, "steps": {}}
    expressions = Expressions(contexts)
    contexts["inputs"] = {name: expressions.text(str(value)) for name, value in defaults.items()} | inputs
    summary = tmp / "step-summary.md"
    ran: list[tuple[str, int]] = []
    for number, step in enumerate(ACTION["runs"]["steps"]):
        if "uses" in step:
            continue  # emulated by the set-up and the checks of the caller
        if "if" in step and not expressions.value(step["if"]):
            continue
        output = tmp / f"output-{number}"
        output.touch()
        script = tmp / f"step-{number}.sh"
        script.write_text(step["run"], encoding="utf-8")
        step_env = {
            **env,
            **{k: expressions.text(str(v)) for k, v in step.get("env", {}).items()},
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
        }
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workspace, env=step_env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        ran.append((step["name"], done.returncode))
        contexts["steps"][step.get("id", f"step{number}")] = {"outputs": read_outputs(output)}
        if done.returncode != 0 and step.get("id") != "review":
            pytest.fail(f"step {step['name']!r} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        if done.returncode != 0:
            contexts["review_log"] = done.stdout + done.stderr
    return contexts, expressions, ran, summary


BASE_ORDERS = "import sqlite3\n\ndef open_db(path):\n    return sqlite3.connect(path)\n"
UNSAFE_LINES = (
    "\ndef find_orders(db, customer):\n"
    '    query = "SELECT id, total FROM orders WHERE customer = \'" + customer + "\'"\n'
    "    return db.execute(query).fetchall()\n"
)


@pytest.fixture
def fake_event(tmp_path: Path) -> dict[str, Any]:
    """origin (bare) with `main` and refs/pull/7/head, and the base checkout the action would make."""
    marker = tmp_path / "base-conftest-ran"
    work, origin, workspace = tmp_path / "work", tmp_path / "origin.git", tmp_path / "workspace"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    (work / "app").mkdir()
    (work / "app" / "orders.py").write_text(BASE_ORDERS)
    (work / "docs").mkdir()
    (work / "docs" / "README.md").write_text("# Orders\nOrder service.\n")
    # The base's own settings name an option and a plugin this job has not installed, and its
    # conftest.py would leave a marker: the recipe's flags keep all three out of the gate's run.
    (work / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\naddopts = "--an-option-of-a-plugin-not-installed"\n'
        'required_plugins = ["pytest-not-installed-here"]\n'
    )
    (work / "conftest.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "base")
    base = git(work, "rev-parse", "HEAD").strip()
    git(work, "switch", "-q", "-c", "feature")
    (work / "app" / "orders.py").write_text(BASE_ORDERS + UNSAFE_LINES)
    (work / "docs" / "README.md").write_text("# Orders\nOrder service.\nSee find_orders.\n")
    git(work, "commit", "-q", "-am", "the pull request")
    head = git(work, "rev-parse", "HEAD").strip()
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    git(work, "push", "-q", str(origin), "main", f"{head}:refs/pull/7/head")
    # actions/checkout with ref: the base sha, fetch-depth: 0.
    subprocess.run(["git", "clone", "-q", str(origin), str(workspace)], check=True, capture_output=True)
    git(workspace, "checkout", "-q", "--detach", base)
    return {
        "event": {"pull_request": {"number": 7, "base": {"sha": base}, "head": {"sha": head}}},
        "workspace": workspace,
        "marker": marker,
        "head": head,
    }


def runner_env(tmp_path: Path, base_url: str) -> dict[str, str]:
    """What a runner gives every step: no key in the environment (the action's input brings it)."""
    runner_temp, home = tmp_path / "runner-temp", tmp_path / "home"
    runner_temp.mkdir()
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "PYTEST_", "GITHUB_", "PIP_"))}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        RUNNER_TEMP=str(runner_temp),
        GITHUB_ACTIONS="true",
        CI="true",
        ANTHROPIC_BASE_URL=base_url,
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        PIP_NO_INDEX="1",  # the install step may not reach a package index
    )
    return env


@pytest.mark.parametrize("unsafe", [True, False], ids=["unsafe", "safe"])
def test_the_actions_steps_review_the_pull_request_from_the_base_checkout(
    fake_event: dict[str, Any], serve: Any, tmp_path: Path, unsafe: bool
) -> None:
    script = Script(default=Reply.verdict("SAFE"))
    if unsafe:
        script.on("app/orders.py", reply=Reply.verdict("UNSAFE", findings=[unsafe_finding("app/orders.py", 7)]))
    stub = serve(script, require_key=API_KEY)  # 401 unless the key came through the input
    workspace = fake_event["workspace"]
    env = runner_env(tmp_path, stub.url)
    # `package`: this environment's own install of the gate (pip finds it satisfied, no index).
    inputs = {"anthropic-api-key": API_KEY, "voters": "3", "threshold": "2", "package": "pytest-swarmgate"}
    contexts, expressions, ran, summary = run_action(inputs, fake_event["event"], workspace, tmp_path, env)

    code = 1 if unsafe else 0
    assert ran == [
        ("the pull request's diff, as data", 0),
        ("install pytest-swarmgate", 0),
        ("review the diff", code),
    ], contexts.get("review_log")
    review = contexts["steps"]["review"]["outputs"]
    assert review["exit-code"] == str(code)
    assert review["verdict"] == ("UNSAFE" if unsafe else "SAFE")
    assert {review[k] for k in ("sarif", "json", "junit")} == {
        str(workspace / name) for name in ("swarm.sarif", "swarm.json", "swarm.xml")
    }
    # The diff: the pull request's two files against the base, fetched as data, never checked out.
    patch = Path(contexts["steps"]["diff"]["outputs"]["diff"])
    assert patch.parent == Path(env["RUNNER_TEMP"])
    text = patch.read_text()
    assert '+    query = "SELECT id, total' in text and README_DIFF.splitlines()[-1] in text
    assert git(workspace, "rev-parse", "HEAD").strip() == fake_event["event"]["pull_request"]["base"]["sha"]
    assert (workspace / "app" / "orders.py").read_text() == BASE_ORDERS
    assert not fake_event["marker"].exists(), "--noconftest: the base's conftest.py was not imported"
    # The reports.
    report = json.loads(Path(review["json"]).read_text())
    validate_report(report)
    assert (report["gate"]["outcome"], report["gate"]["n"], report["gate"]["k"]) == (review["verdict"], 3, 2)
    sarif = json.loads(Path(review["sarif"]).read_text())
    official_sarif_validator().validate(sarif)
    flagged = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["runs"][0]["results"]}
    assert ("app/orders.py" in flagged) == unsafe
    assert "<testsuite" in Path(review["junit"]).read_text()
    assert summary.read_text().strip(), "the step summary was written (GITHUB_ACTIONS=true)"
    assert {r.status for r in stub.requests if r.path == "/v1/messages"} == {200}, "the input's key was sent"
    # The uploads the action would make, with what the steps produced.
    upload = step_named("upload the SARIF report to code scanning")
    assert expressions.value(upload["if"]) is True
    assert expressions.text(upload["with"]["sarif_file"]) == review["sarif"]
    artifact = step_named("upload the reports as an artifact")
    assert expressions.value(artifact["if"]) is True
    assert expressions.text(artifact["with"]["path"]).split() == [review["json"], review["sarif"], review["junit"]]


def test_an_endpoint_that_cannot_be_reached_is_exit_75_not_reviewed_with_its_report(
    fake_event: dict[str, Any], tmp_path: Path
) -> None:
    env = runner_env(tmp_path, "http://127.0.0.1:9")  # a closed port
    inputs = {"anthropic-api-key": API_KEY, "package": "pytest-swarmgate"}
    contexts, expressions, ran, _ = run_action(inputs, fake_event["event"], fake_event["workspace"], tmp_path, env)
    assert ran[-1] == ("review the diff", 75), contexts.get("review_log")
    review = contexts["steps"]["review"]["outputs"]
    assert (review["exit-code"], review["verdict"]) == ("75", "NOT_REVIEWED")
    report = json.loads(Path(review["json"]).read_text())
    assert report["gate"]["outcome"] == "NOT_REVIEWED" and report["status"]["completed"] is False
    assert expressions.value(step_named("upload the reports as an artifact")["if"]) is True


def test_a_usage_error_writes_no_report_and_uploads_nothing(fake_event: dict[str, Any], tmp_path: Path) -> None:
    env = runner_env(tmp_path, "http://127.0.0.1:9")
    stale = fake_event["workspace"] / "swarm.json"
    stale.write_text('{"gate": {"outcome": "SAFE"}}')  # an earlier run's report must not speak for this one
    inputs = {"anthropic-api-key": API_KEY, "package": "pytest-swarmgate", "voters": "3", "threshold": "9"}
    contexts, expressions, ran, _ = run_action(inputs, fake_event["event"], fake_event["workspace"], tmp_path, env)
    assert ran[-1] == ("review the diff", 4), contexts.get("review_log")
    review = contexts["steps"]["review"]["outputs"]
    assert (review["exit-code"], review["verdict"], review["json"], review["sarif"]) == ("4", "NOT_REVIEWED", "", "")
    assert not stale.exists()
    for name in ("upload the SARIF report to code scanning", "upload the reports as an artifact"):
        assert expressions.value(step_named(name)["if"]) is False
