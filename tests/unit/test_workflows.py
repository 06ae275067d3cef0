"""The GitHub workflows: valid against GitHub's schema (offline), doing what the release flow needs, and hardened.

preview.yml posts the diff of a pull request (one group per PR) and `canary plan`'s account of it as one comment
edited in place, failing the check on an unexpected change only after posting (its steps run here with stand-ins for
pulumi and gh); up.yml applies every program commit of main, one `pulumi up` each and in order, queued on one group
per stack, so GitHub's collapsing of pending runs loses none, and tells Slack each in words when a webhook is set (its
script runs here against real Git repositories); promote.yml is by hand only, on the in-cluster runner, and no job
waits for an approval inside a concurrency group. Read as an attacker would: preview runs a pull request's code, so
it has a read-only identity of its own and never sees up's; every job asks for its own token permissions; secrets
reach only the step that reads them; third-party actions are pinned to a commit. Every credential a job needs is
checked first and named when missing, never replaced by one that silently does nothing. README.md, *CI set-up*, says
which roles each identity gets and why.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from istio_canary import credentials, plan_markdown
from istio_canary.agent import images
from istio_canary.exits import EXIT_OK, EXIT_UNEXPECTED
from testkit.stackfiles import stack_text

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
PULUMI_ACTION = "pulumi/actions@"
GOOGLE_AUTH = "google-github-actions/auth@"
# `uses: owner/repo[/path]@<full commit sha> # v1.2.3`: a tag can be moved to other code, a commit cannot; the
# comment says which release the commit is (GitHub's hardening guide, OpenSSF Scorecard's Pinned-Dependencies).
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>\S+)(?P<rest>.*)$")
SHA_PINNED = re.compile(r"(?P<action>[\w.-]+/[\w.-]+(?:/[^@\s]+)?)@(?P<sha>[0-9a-f]{40})")
VERSION_COMMENT = re.compile(r"\s+#\s*(?P<version>v\d+(?:\.\d+){0,2})\s*")
EXPRESSION = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)
# A script that pushes with git itself (`git push`, `canary rollback --push`) needs the checkout's credentials.
PUSH = re.compile(r"\bgit push\b|\s--push\b")

# Two identities. up deploys: its Google service account and backend token belong to the `dev` environment, which
# only main may use. preview runs any branch's code: its own read-only account and token, never up's.
DEPLOY_IDENTITY = {"service_account": "vars.GCP_SERVICE_ACCOUNT", "token": "secrets.PULUMI_ACCESS_TOKEN"}
PREVIEW_IDENTITY = {
    "service_account": "vars.GCP_PREVIEW_SERVICE_ACCOUNT",
    "token": "secrets.PULUMI_PREVIEW_ACCESS_TOKEN",
}
IDENTITY = {"preview.yml": PREVIEW_IDENTITY, "up.yml": DEPLOY_IDENTITY}
DEPLOY_ENVIRONMENT = "dev"
# Can push to main (rollback does), and a push to main runs `pulumi up`: only in environments main alone may use.
BOT_TOKEN = "secrets.CANARY_BOT_TOKEN"
# What a job cannot work without. A job that uses one checks it first, in its "Required credentials" step, which
# fails with an ::error:: naming it and what to do; none has a fallback: `secrets.CANARY_BOT_TOKEN || github.token`
# pushed a rollback that started no workflow (GITHUB_TOKEN's pushes start none), so it was never applied, silently.
CREDENTIALS = (
    "secrets.CANARY_BOT_TOKEN",
    "secrets.PULUMI_ACCESS_TOKEN",
    "secrets.PULUMI_PREVIEW_ACCESS_TOKEN",
    "secrets.PULUMI_CONFIG_PASSPHRASE",
    "vars.GCP_WORKLOAD_IDENTITY_PROVIDER",
    "vars.GCP_SERVICE_ACCOUNT",
    "vars.GCP_PREVIEW_SERVICE_ACCOUNT",
)
CHECK_STEP = "Required credentials"
# Environments with required reviewers (README, CI set-up): a job in one waits for a person, holding any concurrency
# group it is in for as long; GitHub keeps one pending run per group and a newer one cancels it.
APPROVAL_ENVIRONMENTS = {"production-approval"}
# The self-hosted runner inside the cluster network, for the jobs that read an in-cluster Prometheus.
IN_CLUSTER_RUNNER = """${{ fromJSON(vars.CANARY_RUNNER || '["self-hosted", "canary"]') }}"""
# What needs the cluster's metrics; GitHub-hosted runners (and so a schedule of them) cannot reach them.
READS_PROMETHEUS = re.compile(r"\bcanary\s+(?:analyze|status|promote)\b")
# An expression that reads a secret, the job's token or a credential variable is that one reference and nothing else.
SECRET_READ = re.compile(r"(?<![\w.])(?:secrets\.\w+|github\.token|vars\.GCP_\w+)")
SINGLE_READ = re.compile(r"\s*(?:secrets\.\w+|github\.token|vars\.\w+)\s*")
SHELLCHECK = Path(sys.executable).with_name("shellcheck")
# A script running pulumi on a stack (login, history and the CLI install change nothing).
PULUMI_COMMAND = re.compile(r"^\s*pulumi\s+(up|preview|destroy|refresh|import)\b", re.MULTILINE)
PROGRAM_FILES = [
    "__main__.py",
    "Pulumi.yaml",
    "Pulumi.dev.yaml",
    "requirements.txt",
    "requirements.lock",
    "istio_canary/release/settings.py",
    "components/canary_app.py",
]


def program_modules() -> list[str]:
    """The files of the release package the Pulumi program imports (its closure, as Python resolves it)."""
    code = (
        "import sys, stacks.settings, stacks.wiring\n"
        "for name, module in sorted(sys.modules.items()):\n"
        "    if name.split('.')[0] == 'istio_canary': print(module.__file__)"
    )
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True)
    return sorted(str(Path(line).relative_to(ROOT)) for line in found.stdout.split())


NOT_PROGRAM_FILES = ["README.md", "tests/unit/test_settings.py", "istio_canary/cli.py"]


def workflow_files() -> list[Path]:
    return sorted([*WORKFLOWS.glob("*.yml"), *WORKFLOWS.glob("*.yaml")])


def load(path: Path) -> dict[str, Any]:
    workflow = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in workflow:
        workflow["on"] = workflow.pop(True)
    return workflow


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def uses_lines(path: Path) -> list[tuple[str, str]]:
    """Every `uses:` line as (reference, rest of the line): the pin's comment is lost to the YAML parser."""
    found = []
    for line in path.read_text().splitlines():
        match = USES_LINE.match(line)
        if match:
            found.append((match.group("ref").strip("'\""), match.group("rest")))
    return found


def strings(node: Any) -> list[str]:
    """Every string value (and key) under a YAML node."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in [*strings(key), *strings(value)]]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def references(node: Any, name: str) -> bool:
    """Whether an expression under the node reads `name` (e.g. `secrets.PULUMI_ACCESS_TOKEN`), exactly."""
    pattern = re.compile(rf"(?<![\w.]){re.escape(name)}(?!\w)")
    return any(pattern.search(expr) for text in strings(node) for expr in EXPRESSION.findall(text))


def environment_name(job: dict[str, Any]) -> str | None:
    environment = job.get("environment")
    return environment.get("name") if isinstance(environment, dict) else environment


def pushes(job: dict[str, Any]) -> bool:
    """Whether a script of the job pushes with git itself (`git push`, `canary ... --push`); comments aside."""
    scripts = [step.get("run", "") for step in job.get("steps", [])]
    lines = [line.split("#", 1)[0] for script in scripts for line in script.splitlines()]
    return any(PUSH.search(line) for line in lines)


def pulumi_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in steps(workflow) if step.get("uses", "").startswith(PULUMI_ACTION)]


def the_pulumi_step(workflow: dict[str, Any]) -> dict[str, Any]:
    found = pulumi_steps(workflow)
    assert len(found) == 1, f"expected one {PULUMI_ACTION} step, found {len(found)}"
    return found[0]["with"]


def stack_commands(workflow: dict[str, Any]) -> list[tuple[dict[str, Any], str, str]]:
    """(step, command, stack) of every step that runs pulumi on a stack: the action with a command, or a script."""
    found = []
    for job in workflow["jobs"].values():
        for step in job.get("steps", []):
            with_ = step.get("with", {})
            if step.get("uses", "").startswith(PULUMI_ACTION) and "command" in with_:
                found.append((step, with_["command"], with_["stack-name"]))
            for command in PULUMI_COMMAND.findall(step.get("run", "")):
                # Scripts name the stack as "$STACK", set on the job.
                assert re.search(rf'pulumi {command} --stack "\$STACK"', step["run"]), step["run"]
                found.append((step, command, job["env"]["STACK"]))
    return found


def stack_steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Each step that runs pulumi on a stack, once (up.yml's apply step previews and updates)."""
    found: list[dict[str, Any]] = []
    for step, _, _ in stack_commands(workflow):
        if not any(step is seen for seen in found):
            found.append(step)
    return found


def index_of(workflow: dict[str, Any], predicate: Any) -> int:
    matches = [i for i, step in enumerate(steps(workflow)) if predicate(step)]
    assert matches, "step not found"
    return matches[0]


def github_glob(pattern: str) -> re.Pattern[str]:
    """GitHub's path filter: `**` crosses directories, `*` does not."""
    parts = [re.escape(part).replace(r"\*", "[^/]*") for part in pattern.split("**")]
    return re.compile(".*".join(parts))


def triggered(paths: list[str], changed: str) -> bool:
    return any(github_glob(pattern).fullmatch(changed) for pattern in paths)


def check_schema(*files: Path) -> subprocess.CompletedProcess[str]:
    command = [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, files)]
    return subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)


def fallbacks(node: Any) -> list[str]:
    """Expressions that read a credential and do anything else with it (`secrets.X || github.token`, `|| ''`)."""
    found = []
    for text in strings(node):
        for expr in EXPRESSION.findall(text):
            if SECRET_READ.search(expr) and not SINGLE_READ.fullmatch(expr):
                found.append(expr.strip())
    return found


def credentials_used(job: dict[str, Any]) -> set[str]:
    """The credentials a job's steps other than its check use."""
    used = [step for step in job.get("steps", []) if step.get("name") != CHECK_STEP]
    return {credential for credential in CREDENTIALS if references(used, credential)}


def concurrency_groups(workflow: dict[str, Any], job: dict[str, Any]) -> list[str]:
    """The concurrency groups a job runs in: its workflow's and its own."""
    declared = [workflow.get("concurrency"), job.get("concurrency")]
    return [group if isinstance(group, str) else group["group"] for group in declared if group]


def scripts_of(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def check_step(job: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    found = [(i, step) for i, step in enumerate(job.get("steps", [])) if step.get("name") == CHECK_STEP]
    assert len(found) == 1, f"expected one {CHECK_STEP!r} step, found {len(found)}"
    return found[0]


def checked_jobs() -> list[tuple[str, str]]:
    """(workflow, job) of every job that uses a credential."""
    return [
        (path.name, name)
        for path in workflow_files()
        for name, job in load(path)["jobs"].items()
        if credentials_used(job)
    ]


def env_name_of(step: dict[str, Any], credential: str) -> str:
    """The environment variable a check step reads `credential` through."""
    names = [name for name, value in step.get("env", {}).items() if value == f"${{{{ {credential} }}}}"]
    assert names, f"{credential} is not in the check's env"
    return names[0]


def literal_env(*scopes: dict[str, Any]) -> dict[str, str]:
    """The env a step sees from its job and itself, without the values GitHub fills in (`${{ }}`)."""
    merged = {k: str(v) for scope in scopes for k, v in scope.get("env", {}).items()}
    return {k: v for k, v in merged.items() if not EXPRESSION.search(v)}


def run_check(
    job: dict[str, Any], step: dict[str, Any], tmp_path: Path, values: dict[str, str], stack_file: str = ""
) -> subprocess.CompletedProcess[str]:
    """The check step's script as the runner runs it (bash -e), in a checkout holding `stack_file` as Pulumi.dev.yaml."""
    (tmp_path / "Pulumi.dev.yaml").write_text(stack_file or "config: {}\n")
    script = tmp_path / "check.sh"
    script.write_text(step["run"])
    literal = literal_env(job, step)
    env = {"PATH": os.environ["PATH"], **literal, **values}
    return subprocess.run(
        ["bash", "-e", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=30
    )


def run_scripts(path: Path) -> list[tuple[str, str]]:
    """(job and step, script) of every `run:` step."""
    return [
        (f"{name}: {step.get('name', step['run'].splitlines()[0])}", step["run"])
        for name, job in load(path)["jobs"].items()
        for step in job.get("steps", [])
        if "run" in step
    ]


@pytest.fixture(scope="module")
def preview() -> dict[str, Any]:
    return load(WORKFLOWS / "preview.yml")


@pytest.fixture(scope="module")
def up() -> dict[str, Any]:
    return load(WORKFLOWS / "up.yml")


# --- every workflow in the folder ---------------------------------------------------------------------


def test_the_release_workflows_exist() -> None:
    assert {"preview.yml", "up.yml"} <= {path.name for path in workflow_files()}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_workflow_matches_github_schema(path: Path) -> None:
    result = check_schema(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    # `runs-on` misspelled and a step with neither `run` nor `uses`.
    broken.write_text("on: push\njobs:\n  x:\n    runs_on: ubuntu-latest\n    steps:\n      - name: nothing\n")
    result = check_schema(broken)
    assert result.returncode == 1
    assert "'runs-on' is a required property" in result.stdout


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_third_party_actions_are_pinned_to_a_commit_named_by_its_version(path: Path) -> None:
    lines = uses_lines(path)
    # The line scan sees every `uses:` the parser sees (steps, and reusable workflows at job level).
    parsed = [step["uses"] for step in steps(load(path)) if "uses" in step]
    parsed += [job["uses"] for job in load(path)["jobs"].values() if "uses" in job]
    assert sorted(ref for ref, _ in lines) == sorted(parsed), path.name
    for ref, rest in lines:
        if ref.startswith("./"):
            continue  # an action of this repository: pinned by the commit being run
        assert SHA_PINNED.fullmatch(ref), f"{path.name}: {ref} is not pinned to a full commit sha"
        assert VERSION_COMMENT.match(rest), f"{path.name}: {ref} lacks its `# vX.Y.Z` comment"


def test_each_action_is_pinned_to_one_commit_and_one_version_everywhere() -> None:
    pins: dict[str, set[tuple[str, str]]] = {}
    for path in workflow_files():
        for ref, rest in uses_lines(path):
            pinned, comment = SHA_PINNED.fullmatch(ref), VERSION_COMMENT.match(rest)
            if pinned and comment:
                pins.setdefault(pinned.group("action"), set()).add((pinned.group("sha"), comment.group("version")))
    assert pins, "no pinned actions found"
    assert {action: pin for action, pin in pins.items() if len(pin) > 1} == {}


def test_pin_rule_rejects_tags_and_unnamed_commits(tmp_path: Path) -> None:
    sha = "3d3c42e5aac5ba805825da76410c181273ba90b1"
    assert not SHA_PINNED.fullmatch("actions/checkout@v7")
    assert not SHA_PINNED.fullmatch(f"actions/checkout@{sha[:7]}")
    assert SHA_PINNED.fullmatch(f"actions/checkout@{sha}")
    workflow = tmp_path / "w.yml"
    workflow.write_text(
        f"jobs:\n  x:\n    steps:\n      - uses: actions/checkout@{sha}\n      - uses: a/b@{sha} # v1.2.3\n"
    )
    (_, bare), (_, named) = uses_lines(workflow)
    assert not VERSION_COMMENT.match(bare)
    assert VERSION_COMMENT.match(named)


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_token_permissions_are_granted_per_job_only(path: Path) -> None:
    workflow = load(path)
    # Top level: nothing, or read only; a job that needs more says so itself.
    assert "permissions" in workflow, f"{path.name}: no top-level permissions (the repository default applies)"
    top = workflow["permissions"]
    assert top == "read-all" or (isinstance(top, dict) and set(top.values()) <= {"read", "none"}), path.name
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("permissions"), dict), f"{path.name}: job {name} must list its permissions"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_secrets_reach_only_the_step_that_reads_them(path: Path) -> None:
    workflow = load(path)
    assert not references(workflow.get("env", {}), "secrets"), f"{path.name}: secret in the workflow's env"
    for name, job in workflow["jobs"].items():
        assert not references(job.get("env", {}), "secrets"), f"{path.name}: secret in job {name}'s env"
        assert "secrets" not in job, f"{path.name}: job {name} passes secrets on to a reusable workflow"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_run_scripts_take_secrets_and_outside_text_through_env(path: Path) -> None:
    # `${{ }}` in a script is pasted into the shell before it runs: a secret lands in the script's text, a branch
    # name or commit message becomes code. Through `env:` the shell sees a variable.
    risky = ("secrets", "github.event", "github.head_ref", "inputs")
    for step in steps(load(path)):
        for name in risky:
            assert not references(step.get("run", ""), name), f"{path.name}: ${{{{ {name}... }}}} in {step['run']!r}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_only_a_job_that_pushes_keeps_git_credentials(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                keeps = step.get("with", {}).get("persist-credentials", True) is not False
                assert keeps == pushes(job), f"{path.name}: job {name} (pushes: {pushes(job)})"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_deploy_credentials_only_in_the_main_only_environment(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        for ref in DEPLOY_IDENTITY.values():
            if references(job, ref):
                assert environment_name(job) == DEPLOY_ENVIRONMENT, f"{path.name}: job {name} reads {ref}"
        if references(job, BOT_TOKEN):
            assert environment_name(job) not in (None, "preview"), f"{path.name}: job {name} reads {BOT_TOKEN}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_no_credential_falls_back_to_another(path: Path) -> None:
    assert fallbacks(load(path)) == [], path.name


def test_the_fallback_rule_catches_what_it_is_for() -> None:
    assert fallbacks({"token": "${{ secrets.CANARY_BOT_TOKEN || github.token }}"})
    assert fallbacks({"env": {"X": "${{ secrets.PULUMI_ACCESS_TOKEN || '' }}"}})
    assert fallbacks({"with": {"service_account": "${{ vars.GCP_SERVICE_ACCOUNT || 'deploy@p.iam' }}"}})
    assert fallbacks(["${{ format('{0}', secrets.X) }}"])
    assert not fallbacks({"token": "${{ secrets.CANARY_BOT_TOKEN }}", "password": "${{ secrets.GITHUB_TOKEN }}"})
    assert not fallbacks({"runs-on": "${{ fromJSON(vars.CANARY_RUNNER || '[\"self-hosted\"]') }}"})


@pytest.mark.parametrize(("workflow", "job_name"), checked_jobs())
def test_a_job_checks_its_credentials_before_it_uses_them(workflow: str, job_name: str) -> None:
    job = load(WORKFLOWS / workflow)["jobs"][job_name]
    index, check = check_step(job)
    for credential in credentials_used(job):
        name = env_name_of(check, credential)
        assert name in check["run"], f"the check never reads {name}"
        users = [i for i, step in enumerate(job["steps"]) if i != index and references(step, credential)]
        assert index < min(users), f"{credential} is used before it is checked"
    assert "::error" in check["run"]


@pytest.mark.parametrize(("workflow", "job_name"), checked_jobs())
def test_a_missing_credential_fails_the_job_naming_it(workflow: str, job_name: str, tmp_path: Path) -> None:
    job = load(WORKFLOWS / workflow)["jobs"][job_name]
    _, check = check_step(job)
    names = [env_name_of(check, credential) for credential in sorted(credentials_used(job))]
    given = {name: f"value-of-{name}" for name in names}
    # Pulumi Cloud and a passphrase-encrypted stack: here every one of them is required.
    salted = "encryptionsalt: v1:abc\nconfig: {}\n"
    passed = run_check(job, check, tmp_path, {**given, "PULUMI_CLOUD_URL": ""}, salted)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "::error" not in passed.stdout
    for name in names:
        failed = run_check(job, check, tmp_path, {**given, name: "", "PULUMI_CLOUD_URL": ""}, salted)
        assert failed.returncode != 0, f"{workflow} {job_name}: passes without {name}"
        errors = [line for line in failed.stdout.splitlines() if line.startswith("::error")]
        assert len(errors) == 1 and name in errors[0], failed.stdout
        assert "README" in errors[0], "the error says where to read what to do"
    # All missing: every one is named in one run, not one per attempt.
    nothing = run_check(job, check, tmp_path, {name: "" for name in names} | {"PULUMI_CLOUD_URL": ""}, salted)
    assert nothing.returncode != 0
    assert all(any(name in line for line in nothing.stdout.splitlines()) for name in names), nothing.stdout


@pytest.mark.parametrize("workflow", ["preview.yml", "up.yml"])
@pytest.mark.parametrize(
    ("backend", "stack_file", "given", "missing"),
    [
        # Pulumi Cloud encrypts a stack without a salt itself: no passphrase.
        ("", "config: {}\n", {"token"}, None),
        # A self-managed backend needs no token; its default secrets provider is the passphrase.
        ("gs://state", "config: {}\n", {"passphrase"}, None),
        ("gs://state", "config: {}\n", set(), "PULUMI_CONFIG_PASSPHRASE"),
        # A stack file naming a key manager needs neither passphrase nor (on gs://) a token.
        ("gs://state", "secretsprovider: gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k\n", set(), None),
        # A passphrase provider named, on Pulumi Cloud: both.
        ("https://api.pulumi.com", "secretsprovider: passphrase\n", {"token"}, "PULUMI_CONFIG_PASSPHRASE"),
        ("https://api.pulumi.com", "encryptionsalt: v1:abc\n", {"passphrase"}, "ACCESS_TOKEN"),
    ],
)
def test_the_backend_decides_which_pulumi_credentials_are_required(
    workflow: str, backend: str, stack_file: str, given: set[str], missing: str | None, tmp_path: Path
) -> None:
    (job,) = load(WORKFLOWS / workflow)["jobs"].values()
    _, check = check_step(job)
    values = {name: "set" for name in check["env"] if "GCP_" in name}
    values["PULUMI_CLOUD_URL"] = backend
    for name in check["env"]:
        if ("token" in given and "ACCESS_TOKEN" in name) or ("passphrase" in given and "PASSPHRASE" in name):
            values[name] = "set"
        elif "ACCESS_TOKEN" in name or "PASSPHRASE" in name:
            values[name] = ""
    result = run_check(job, check, tmp_path, values, stack_file)
    if missing is None:
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert result.returncode != 0
        errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
        assert len(errors) == 1 and missing in errors[0], result.stdout


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_run_scripts_pass_shellcheck(path: Path, tmp_path: Path) -> None:
    for where, script in run_scripts(path):
        # An expression left in a script is pasted in before bash runs; a placeholder word stands in for it.
        text = "#!/bin/bash\n" + EXPRESSION.sub("EXPRESSION", script)
        file = tmp_path / "script.sh"
        file.write_text(text)
        result = subprocess.run([str(SHELLCHECK), "-s", "bash", str(file)], capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{path.name} {where}:\n{result.stdout}"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_a_workflow_changing_a_stack_queues_on_its_stack_and_previews_never_do(path: Path) -> None:
    workflow = load(path)
    commands = stack_commands(workflow)
    groups = [workflow.get("concurrency")] + [job.get("concurrency") for job in workflow["jobs"].values()]
    declared = [group for group in groups if group]
    for stack in {stack for _, _, stack in commands}:
        stack_group = {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        if {command for _, command, on in commands if on == stack} == {"preview"}:
            # GitHub keeps one pending run per group: a preview run there would cancel a pending `up`.
            assert stack_group not in declared, f"{path.name}: {declared}"
            assert any(g["group"].startswith(f"pulumi-{stack}-preview-") for g in declared), path.name
        else:
            # A run that changes the stack queues on it, previews it makes on the way included (up.yml's, for Slack).
            assert stack_group in declared, f"{path.name}: {declared}"


# --- preview on pull requests -------------------------------------------------------------------------


def test_preview_runs_on_pull_requests_to_main_only(preview: dict[str, Any]) -> None:
    assert set(preview["on"]) == {"pull_request"}
    assert preview["on"]["pull_request"]["branches"] == ["main"]


@pytest.mark.parametrize("changed", PROGRAM_FILES)
def test_preview_runs_when_the_program_changes(preview: dict[str, Any], changed: str) -> None:
    assert triggered(preview["on"]["pull_request"]["paths"], changed)


@pytest.mark.parametrize("changed", NOT_PROGRAM_FILES)
def test_preview_skips_changes_outside_the_program(preview: dict[str, Any], changed: str) -> None:
    assert not triggered(preview["on"]["pull_request"]["paths"], changed)


def test_preview_comments_the_diff_on_the_pull_request(preview: dict[str, Any]) -> None:
    pulumi = the_pulumi_step(preview)
    assert pulumi["command"] == "preview"
    assert pulumi["stack-name"] == "dev"
    assert pulumi["comment-on-pr"] is True
    assert pulumi["diff"] is True
    (job,) = preview["jobs"].values()
    assert job["permissions"] == {"contents": "read", "id-token": "write", "pull-requests": "write"}


def test_preview_never_sees_the_deploy_identity(preview: dict[str, Any]) -> None:
    # The preview runs the pull request's code: whatever it can read, anyone who can push a branch can.
    for ref in DEPLOY_IDENTITY.values():
        assert not references(preview, ref), ref
    (job,) = preview["jobs"].values()
    assert environment_name(job) == "preview"
    assert job["environment"]["deployment"] is False  # no deployment record per pull request


# --- preview: canary plan's comment ------------------------------------------------------------------
#
# The plan's steps as the runner runs them, in order, each with bash -e and its job's and own env, every
# `${{ }}` filled in from GITHUB_CONTEXT (an expression it does not know fails the test), GITHUB_OUTPUT carried to
# `steps.<id>.outputs`, stopping at the first failing step. `pulumi` and `gh` are stand-ins, jq is real, and
# `canary` is a stand-in or this repository's own, on previews a real `pulumi preview --json` printed.

PLAN_STEPS = (
    "pulumi preview as JSON, for canary plan",
    "canary plan (what merging does to traffic, in words)",
    "Post the plan (one comment, edited in place; and the job summary)",
    "An unexpected change fails the check",
)
HEAD_SHA = "0123456789abcdef0123456789abcdef01234567"
GITHUB_CONTEXT = {
    "github.token": "ghs_job_token",
    "github.repository": "acme/istio-canary",
    "github.server_url": "https://github.com",
    "github.run_id": "42",
    "github.event.pull_request.number": "5",
    "github.event.pull_request.head.sha": HEAD_SHA,
    "vars.CANARY_DASHBOARD_URL": "",
    "vars.PULUMI_CLOUD_URL": "",
    "secrets.PULUMI_PREVIEW_ACCESS_TOKEN": "preview-token",
    "secrets.PULUMI_CONFIG_PASSPHRASE": "passphrase",
}
RUN_URL = "https://github.com/acme/istio-canary/actions/runs/42"
COMMENTS_PATH = "repos/acme/istio-canary/issues/5/comments"
BOT = {"login": "github-actions[bot]"}
PLAN = (
    f"{plan_markdown.MARKER}\n### canary plan: `dev`\n\n"
    "**Moves podinfo from 10 % to 60 % canary (6.15.0); GA 6.14.0 keeps 40 %.**\n"
)
FAKE_PREVIEW_PULUMI = """#!/bin/bash
echo "pulumi $*" >> "$FAKE_STATE/events"
case "$1" in
  login) ;;
  preview) cat "$FAKE_STATE/preview.json" ;;
  *) exit 64 ;;
esac
"""
# `canary plan`: the Markdown in FAKE_STATE/plan.md and exit FAKE_EXIT (no Markdown, an error, for 4); it notes its
# arguments, the preview it read, and whether it could see the job's token.
FAKE_PLAN_CANARY = """#!{python}
import json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_STATE"])
args = sys.argv[1:]
preview = Path(args[args.index("--preview") + 1]).read_text()
seen = {{"args": args, "preview": json.loads(preview), "token": "GH_TOKEN" in os.environ}}
with (state / "events").open("a") as events:
    events.write("canary " + json.dumps(seen) + "\\n")
code = int(os.environ["FAKE_EXIT"])
if code in (0, 7):
    sys.stdout.write((state / "plan.md").read_text())
else:
    print("canary: error: Pulumi.dev.yaml: canaryWeight 120 is not within 0..100", file=sys.stderr)
sys.exit(code)
"""
# `gh api`: the pull request's comments from FAKE_STATE/comments.json (a list of pages, printed back to back as
# `--paginate` does), and each PATCH or POST recorded with its body.
FAKE_GH = """#!{python}
import json, os, sys
from pathlib import Path

state = Path(os.environ["FAKE_STATE"])
args = sys.argv[1:]
assert os.environ.get("GH_TOKEN") == "ghs_job_token", "gh without the job's token"
if args[:2] == ["api", "--paginate"]:
    assert args[2] == "{comments}", args
    pages = json.loads((state / "comments.json").read_text())
    sys.stdout.write("".join(json.dumps(page) for page in pages))
    sys.exit(0)
if args[:2] == ["api", "--method"] and "--input" in args:
    body = json.loads(Path(args[args.index("--input") + 1]).read_text())
    assert set(body) == {{"body"}}, body
    with (state / "events").open("a") as events:
        events.write("gh " + json.dumps({{"method": args[2], "path": args[3], "body": body["body"]}}) + "\\n")
    print("{{}}")
    sys.exit(0)
sys.exit(f"fake gh: unexpected {{args}}")
"""


def evaluate(value: Any, context: dict[str, str]) -> str:
    """A value with each `${{ expression }}` filled in as GitHub would; an unknown expression fails the test."""

    def one(match: re.Match[str]) -> str:
        expression = match.group(1).strip()
        assert expression in context, f"no value for ${{{{ {expression} }}}}"
        return context[expression]

    return EXPRESSION.sub(one, str(value))


def plan_steps(preview: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (job,) = preview["jobs"].values()
    return job, [step for step in job["steps"] if step.get("name") in PLAN_STEPS]


def run_plan(
    tmp_path: Path,
    code: int = 0,
    comments: list[list[dict[str, Any]]] | None = None,
    plan: str = PLAN,
    real: tuple[str, str] | None = None,
    **context: str,
) -> tuple[list[subprocess.CompletedProcess[str]], list[dict[str, Any]], Path]:
    """The plan's steps of preview.yml, in order; their results, the comment requests made, and the runner dir.

    `real` is (captured preview in tests/golden/plan, stack file): this repository's `canary` plans it."""
    job, found = plan_steps(load(WORKFLOWS / "preview.yml"))
    work, runner, bin_dir, state = (tmp_path / name for name in ("work", "runner", "bin", "state"))
    for folder in (work, runner, bin_dir, state):
        folder.mkdir(parents=True)
    (state / "plan.md").write_text(plan)
    (state / "comments.json").write_text(json.dumps(comments if comments is not None else [[]]))
    (state / "preview.json").write_text(json.dumps({"steps": [], "changeSummary": {"update": 1}}))
    tools = {"pulumi": FAKE_PREVIEW_PULUMI, "gh": FAKE_GH.format(python=sys.executable, comments=COMMENTS_PATH)}
    if real:
        case, stack = real
        (state / "preview.json").write_text((ROOT / "tests" / "golden" / "plan" / f"{case}.preview.json").read_text())
        (work / "Pulumi.dev.yaml").write_text(stack)
        (work / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
        bin_dir.with_name("canary-bin").mkdir()
        (bin_dir.with_name("canary-bin") / "canary").symlink_to(Path(sys.executable).with_name("canary"))
    else:
        tools["canary"] = FAKE_PLAN_CANARY.format(python=sys.executable)
    for name, text in tools.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    filled = {**GITHUB_CONTEXT, **{key.replace("__", "."): value for key, value in context.items()}}
    results = []
    for index, step in enumerate(found):
        output = runner / f"output-{index}"
        output.touch()
        env = {
            "PATH": f"{bin_dir}:{bin_dir.with_name('canary-bin')}:{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "RUNNER_TEMP": str(runner),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(runner / "summary.md"),
            "FAKE_STATE": str(state),
            "FAKE_EXIT": str(code),
            **{name: evaluate(value, filled) for name, value in {**job["env"], **step.get("env", {})}.items()},
        }
        script = runner / f"step-{index}.sh"
        script.write_text(step["run"])
        result = subprocess.run(
            ["bash", "-e", str(script)], cwd=work, env=env, capture_output=True, text=True, check=False, timeout=60
        )
        results.append(result)
        for line in output.read_text().splitlines():
            key, value = line.split("=", 1)
            filled[f"steps.{step['id']}.outputs.{key}"] = value
        if result.returncode != 0:
            break
    lines = (state / "events").read_text().splitlines()
    requests = [json.loads(line[3:]) for line in lines if line.startswith("gh ")]
    return results, requests, runner


def canary_calls(runner: Path) -> list[dict[str, Any]]:
    lines = (runner.parent / "state" / "events").read_text().splitlines()
    return [json.loads(line[7:]) for line in lines if line.startswith("canary ")]


def test_the_plan_marker_is_canary_plan_s(preview: dict[str, Any]) -> None:
    (job,) = preview["jobs"].values()
    assert job["env"]["MARKER"] == plan_markdown.MARKER
    assert job["env"]["STACK"] == the_pulumi_step(preview)["stack-name"]


def test_the_plan_comes_after_pulumi_s_diff_and_fails_the_check_last(preview: dict[str, Any]) -> None:
    job, found = plan_steps(preview)
    assert [step["name"] for step in found] == list(PLAN_STEPS)
    names = [step.get("name", step.get("uses", "")) for step in job["steps"]]
    at = [names.index(name) for name in PLAN_STEPS]
    # After Pulumi's own comment (kept), one after the other, and the failing step is the job's last.
    pulumi = index_of(preview, lambda s: s.get("uses", "").startswith(PULUMI_ACTION))
    assert pulumi < at[0] and at == sorted(at) and at[-1] == len(job["steps"]) - 1
    # The canary command, the pull request's own code, is installed before any Google credential, like the program.
    install = names.index("Install the canary command")
    auth = index_of(preview, lambda s: s.get("uses", "").startswith(GOOGLE_AUTH))
    assert install < auth
    assert "--no-deps --require-hashes -r requirements-canary.lock" in job["steps"][install]["run"]
    assert "pip check" in job["steps"][install]["run"]
    plan_step = found[1]
    assert 'canary plan --stack "$STACK" --preview "$RUNNER_TEMP/preview.json" --strict' in plan_step["run"]
    assert found[-1]["env"] == {"CODE": "${{ steps.plan.outputs.code }}"}


def test_the_plan_adds_no_secret_and_only_the_posting_step_holds_the_token(preview: dict[str, Any]) -> None:
    job, (json_preview, plan_step, post, fail) = plan_steps(preview)
    # The job reads the secrets it read before the plan existed, and no other (no Prometheus, no Slack).
    read = {match for text in strings(preview) for match in re.findall(r"secrets\.\w+", text)}
    assert read == {"secrets.PULUMI_PREVIEW_ACCESS_TOKEN", "secrets.PULUMI_CONFIG_PASSPHRASE"}
    # The second preview: the preview identity, as the action's (test_pulumi_logs_in_to_the_configured_backend).
    assert json_preview["env"] == {
        "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_PREVIEW_ACCESS_TOKEN }}",
        "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
        "PULUMI_CLOUD_URL": "${{ vars.PULUMI_CLOUD_URL }}",
    }
    # canary plan (the pull request's code) gets no credential; the job's token is the posting step's alone.
    for step in (plan_step, fail):
        assert not references(step, "secrets") and not references(step, "github.token"), step["name"]
    holders = [step.get("name") for step in job["steps"] if references(step, "github.token")]
    assert holders == [post["name"]]
    assert post["env"]["GH_TOKEN"] == "${{ github.token }}"
    assert not references(post, "secrets")
    (job,) = preview["jobs"].values()
    assert job["permissions"]["pull-requests"] == "write"  # list, edit and create its comment; nothing more


def test_preview_scripts_hold_no_expression(preview: dict[str, Any]) -> None:
    # The job runs a pull request's code: every value, the pull request's number and head included, reaches a
    # script through env.
    for where, script in run_scripts(WORKFLOWS / "preview.yml"):
        assert not EXPRESSION.search(script), where


def test_the_plan_is_posted_as_a_new_comment_when_there_is_none(tmp_path: Path) -> None:
    pulumis = [{"id": 11, "user": BOT, "body": "#### :tropical_drink: `preview` on dev\n..."}]
    results, requests, runner = run_plan(tmp_path, comments=[pulumis, []])
    assert [result.returncode for result in results] == [0, 0, 0, 0], [r.stdout + r.stderr for r in results]
    footer = f"<sub>For {HEAD_SHA[:7]}, [run]({RUN_URL}).</sub>\n"
    assert requests == [{"method": "POST", "path": COMMENTS_PATH, "body": f"{PLAN}\n{footer}"}]
    assert (runner / "summary.md").read_text() == f"{PLAN}\n{footer}"
    (call,) = canary_calls(runner)
    # The JSON the second preview wrote, read by canary plan; no dashboard link unless one is configured.
    assert call["args"] == ["plan", "--stack", "dev", "--preview", f"{runner}/preview.json", "--strict"]
    assert call["preview"] == {"steps": [], "changeSummary": {"update": 1}}
    assert call["token"] is False
    pulumi = (runner.parent / "state" / "events").read_text().splitlines()[:2]
    assert pulumi == ["pulumi login", "pulumi preview --stack dev --json --non-interactive"]


def test_the_plan_comment_is_edited_in_place(tmp_path: Path) -> None:
    pages = [
        [
            {"id": 11, "user": BOT, "body": "#### :tropical_drink: `preview` on dev"},
            {"id": 13, "user": BOT, "body": f"quoting\n{plan_markdown.MARKER}"},
        ],
        [
            {"id": 30, "user": BOT, "body": f"{plan_markdown.MARKER}\n### canary plan: `dev`\nthe last push's plan"},
            # Someone else's comment holding the marker, newer: never the one edited.
            {"id": 41, "user": {"login": "mallory"}, "body": f"{plan_markdown.MARKER}\nlooks fine"},
        ],
    ]
    results, requests, _ = run_plan(tmp_path, comments=pages)
    assert [result.returncode for result in results] == [0, 0, 0, 0]
    assert [(request["method"], request["path"]) for request in requests] == [
        ("PATCH", "repos/acme/istio-canary/issues/comments/30")
    ]
    assert requests[0]["body"].startswith(PLAN)


def test_an_unexpected_change_fails_the_job_after_the_comment_is_posted(tmp_path: Path) -> None:
    results, requests, runner = run_plan(tmp_path, code=7)
    # Every step before the last succeeded: the comment and the summary are there for the reviewer.
    assert [result.returncode for result in results] == [0, 0, 0, 7]
    assert [request["method"] for request in requests] == ["POST"]
    assert requests[0]["body"].startswith(PLAN)
    assert (runner / "summary.md").read_text().startswith(PLAN)
    assert "::error title=Unexpected change::" in results[-1].stdout


def test_a_plan_that_fails_says_so_in_the_comment_and_fails_the_job(tmp_path: Path) -> None:
    stale = [[{"id": 30, "user": BOT, "body": f"{plan_markdown.MARKER}\nthe last push's plan"}]]
    results, requests, _ = run_plan(tmp_path, code=4, comments=stale)
    assert [result.returncode for result in results] == [0, 0, 0, 4]
    (request,) = requests
    # The last push's plan is replaced: it must not stand for this push.
    assert request["method"] == "PATCH" and request["path"].endswith("/comments/30")
    body = request["body"]
    assert body.startswith(f"{plan_markdown.MARKER}\n### canary plan: `dev`")
    assert "canary plan failed (exit 4)" in body and "canaryWeight 120 is not within 0..100" in body
    assert "::error title=canary plan failed::exit 4" in results[-1].stdout


def test_the_dashboard_link_is_passed_when_configured(tmp_path: Path) -> None:
    url = "https://grafana.example.com/d/canary?orgId=1&var-x=a b"
    results, _, runner = run_plan(tmp_path, vars__CANARY_DASHBOARD_URL=url)
    assert [result.returncode for result in results] == [0, 0, 0, 0]
    (call,) = canary_calls(runner)
    assert call["args"][-2:] == ["--dashboard-url", url]


def test_a_plan_too_long_for_a_comment_points_to_the_summary(tmp_path: Path) -> None:
    huge = PLAN + "> - **update** `ConfigMap` `x`\n" * 3000
    results, requests, runner = run_plan(tmp_path, plan=huge)
    assert [result.returncode for result in results] == [0, 0, 0, 0]
    (request,) = requests
    assert request["body"].startswith(plan_markdown.MARKER) and len(request["body"]) < 1000
    assert RUN_URL in request["body"]
    assert (runner / "summary.md").read_text().startswith(huge)


@pytest.mark.parametrize(
    ("case", "weight", "code"),
    [("weight-step", 10, EXIT_OK), ("step-with-replicas", 100, EXIT_UNEXPECTED)],
)
def test_the_real_canary_plan_on_a_real_preview(tmp_path: Path, case: str, weight: int, code: int) -> None:
    # The step's command line as this repository's canary reads it; the analysis part says why there is none.
    stack = stack_text(namespace="plan", weight=weight)
    results, requests, _ = run_plan(tmp_path, real=(case, stack))
    assert [result.returncode for result in results] == [0, 0, 0, code], [r.stdout + r.stderr for r in results]
    (request,) = requests
    golden = (ROOT / "tests" / "golden" / "plan" / f"{case}.md").read_text().replace("`local`", "`dev`")
    assert request["body"].startswith(golden.rstrip("\n"))
    assert "Latest analysis: no Prometheus URL given" in request["body"]
    assert ("> [!WARNING]" in request["body"]) == (code == EXIT_UNEXPECTED)


# --- up on main ---------------------------------------------------------------------------------------


def test_up_runs_on_push_to_main(up: dict[str, Any]) -> None:
    assert set(up["on"]) <= {"push", "workflow_dispatch"}
    assert up["on"]["push"]["branches"] == ["main"]
    # The preview is the Slack notice's, of the commit about to be applied, in the same step.
    commands = stack_commands(up)
    assert [(command, stack) for _, command, stack in commands] == [("preview", "dev"), ("up", "dev")]
    assert len({id(step) for step, _, _ in commands}) == 1


@pytest.mark.parametrize("changed", PROGRAM_FILES)
def test_up_runs_when_the_program_changes_on_main(up: dict[str, Any], changed: str) -> None:
    assert triggered(up["on"]["push"]["paths"], changed)


def test_every_release_module_the_program_imports_triggers_preview_and_up(
    preview: dict[str, Any], up: dict[str, Any]
) -> None:
    # The program imports the release core from the tool's package: a change there changes what `up` deploys.
    modules = program_modules()
    assert "istio_canary/release/settings.py" in modules
    for changed in modules:
        assert triggered(preview["on"]["pull_request"]["paths"], changed), changed
        assert triggered(up["on"]["push"]["paths"], changed), changed


def test_up_deploys_through_the_dev_environment_without_pr_rights(up: dict[str, Any]) -> None:
    (job,) = up["jobs"].values()
    assert job["environment"] == DEPLOY_ENVIRONMENT
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    for ref in PREVIEW_IDENTITY.values():
        assert not references(up, ref), ref


# --- up applies every merge, in order ------------------------------------------------------------------
#
# The apply step's own script, run with bash in real Git repositories: a bare origin stands for GitHub, each run
# is a fresh clone of its main (what actions/checkout with `ref: main` gives), and a stand-in `pulumi` keeps the
# stack's update history as pulumi 3.274's `stack history --json` prints it (newest first; kind, result and
# environment["git.head"], the checkout's HEAD, are the fields the script reads). Its `up` records the commit
# checked out and fails while the tree holds a file named BROKEN; its `preview --json` (Slack notices only) prints
# the commit it previewed, and fails while the tree holds PREVIEW_BROKEN. Every tool notes it if it sees the webhook.

FAKE_PULUMI = """#!{python}
import json, os, subprocess, sys
from pathlib import Path

state = Path(os.environ["FAKE_PULUMI_STATE"])
history = state / "history.json"
args = sys.argv[1:]
entries = json.loads(history.read_text()) if history.exists() else []
if os.environ.get("SLACK_WEBHOOK_URL"):
    with (state / "leaks").open("a") as leaks:
        leaks.write("pulumi " + args[0] + "\\n")
if args[:1] == ["login"]:
    sys.exit(0)
if args[:1] == ["preview"]:
    assert args[args.index("--stack") + 1] == "dev" and "--json" in args, args
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    with (state / "events").open("a") as events:
        events.write("preview " + head + "\\n")
    if Path("PREVIEW_BROKEN").exists():
        print(json.dumps({{"steps": [], "diagnostics": [{{"severity": "error", "message": "provider: quota exceeded"}}]}}))
        sys.exit(255)
    print(json.dumps({{"steps": [], "head": head}}))
    sys.exit(0)
if args[:2] == ["stack", "history"]:
    assert "--json" in args and args[args.index("--stack") + 1] == "dev", args
    print(json.dumps(entries[: int(args[args.index("--page-size") + 1])]))
    sys.exit(0)
if args[:1] == ["up"]:
    assert args[args.index("--stack") + 1] == "dev" and "--yes" in args, args
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    ok = not Path("BROKEN").exists()
    message = args[args.index("--message") + 1]
    entries.insert(0, dict(kind="update", message=message, environment={{"git.head": head}},
                           result="succeeded" if ok else "failed"))
    history.write_text(json.dumps(entries))
    with (state / "applied").open("a") as applied:
        applied.write(head + ("" if ok else " failed") + "\\n")
    with (state / "events").open("a") as events:
        events.write("up " + head + "\\n")
    hook = state / "during-up"
    if hook.exists():  # main moves on while this update runs
        hook.rename(state / "during-up.done")
        subprocess.run(["bash", str(state / "during-up.done")], check=True)
    print("Resources: 1 changed")
    sys.exit(0 if ok else 1)
sys.exit(f"fake pulumi: unexpected {{args}}")
"""
# `python -m venv .venv` makes a venv whose python counts the installs.
FAKE_PYTHON = """#!/bin/bash
set -e
[ -z "${SLACK_WEBHOOK_URL:-}" ] || echo "python $*" >> "$FAKE_PULUMI_STATE/leaks"
[ "$1 $2" = "-m venv" ] || exit 64
mkdir -p "$3/bin"
cat > "$3/bin/python" <<'VENV'
#!/bin/bash
[ -z "${SLACK_WEBHOOK_URL:-}" ] || echo "pip $*" >> "$FAKE_PULUMI_STATE/leaks"
echo "$*" >> "$FAKE_PULUMI_STATE/installs"
VENV
chmod +x "$3/bin/python"
"""
# `canary plan --json` of the preview just made (it must be of the commit checked out): a headline from the stack
# file's weight, and an unexpected change while the tree holds UNEXPECTED; `canary notify` records what it posts
# and with which webhook, or fails while the state holds notify-fails.
FAKE_UP_CANARY = """#!{python}
import json, os, re, subprocess, sys
from pathlib import Path

state = Path(os.environ["FAKE_PULUMI_STATE"])
args = sys.argv[1:]
head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
with (state / "events").open("a") as events:
    events.write(args[0] + " " + head + "\\n")
if os.environ.get("SLACK_WEBHOOK_URL") and args[:1] != ["notify"]:
    with (state / "leaks").open("a") as leaks:
        leaks.write("canary " + args[0] + "\\n")
if args[:1] == ["plan"]:
    assert args[args.index("--stack") + 1] == "dev" and "--json" in args and "--strict" not in args, args
    preview = json.loads(Path(args[args.index("--preview") + 1]).read_text())
    assert preview["head"] == head, "the preview is of another commit"
    weight = re.search(r"canaryWeight: (\\d+)", Path("Pulumi.dev.yaml").read_text()).group(1)
    unexpected = ["update Deployment podinfo-ga"] if Path("UNEXPECTED").exists() else []
    headline = f"Moves podinfo to {{weight}} % canary."
    print(json.dumps({{"headline": headline, "kind": "move", "unexpected": unexpected, "markdown": "# plan"}}))
    sys.exit(0)
if args[:1] == ["notify"]:
    assert args[args.index("--stack") + 1] == "dev", args
    if (state / "notify-fails").exists():
        sys.exit("canary notify: the webhook did not answer")
    with (state / "notices").open("a") as notices:
        notice = {{"text": args[args.index("--text") + 1], "webhook": os.environ.get("SLACK_WEBHOOK_URL")}}
        notices.write(json.dumps(notice) + "\\n")
    sys.exit(0)
sys.exit(f"fake canary: unexpected {{args}}")
"""
WEBHOOK = "https://hooks.slack.com/services/T0/B0/secret"


class Origin:
    """A bare repository standing in for GitHub, and a work tree that merges into its main."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bare = root / "origin.git"
        self.work = root / "work"
        git(root, "init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        git(root, "clone", "--quiet", str(self.bare), str(self.work))
        git(self.work, "checkout", "--quiet", "-B", "main")
        self.commit("the program", {"requirements.lock": "a==1\n", "__main__.py": "import stacks\n"})

    def commit(self, subject: str, files: dict[str, str | None], branch: str = "main") -> str:
        if git(self.work, "symbolic-ref", "--short", "HEAD") != branch:
            git(self.work, "checkout", "--quiet", branch)
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        git(self.work, "add", "--all")
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", subject)
        git(self.work, "push", "--quiet", "origin", branch)
        return git(self.work, "rev-parse", "HEAD")

    def merge(self, branch: str) -> str:
        git(self.work, "checkout", "--quiet", "main")
        git(self.work, "merge", "--quiet", "--no-ff", "-m", f"Merge {branch}", branch)
        git(self.work, "push", "--quiet", "origin", "main")
        return git(self.work, "rev-parse", "HEAD")


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]
    result = subprocess.run(["git", *identity, *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def stack_file(weight: int, ga: str = "6.14.0", canary: str = "6.15.0") -> str:
    return (
        f"config:\n  istio-canary:gaVersion: {ga}\n  istio-canary:canaryVersion: {canary}\n"
        f"  istio-canary:canaryWeight: {weight}\n"
    )


@pytest.fixture
def origin(tmp_path: Path) -> Origin:
    return Origin(tmp_path)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    state = tmp_path / "pulumi-state"
    bin_dir = state / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "pulumi").write_text(FAKE_PULUMI.format(python=sys.executable))
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "canary").write_text(FAKE_UP_CANARY.format(python=sys.executable))
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    return state


def the_apply_step(workflow: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    (step,) = [step for step, command, _ in stack_commands(workflow) if command == "up"]
    (job,) = workflow["jobs"].values()
    return job, step


def run_up(
    origin: Origin, state: Path, event: str = "push", head_only: str = "", webhook: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """One run of up.yml's apply step in a fresh clone of main; the run's result and the commits it applied."""
    job, step = the_apply_step(load(WORKFLOWS / "up.yml"))
    runs = sorted(state.glob("run-*"))
    checkout = state / f"run-{len(runs)}"
    git(state, "clone", "--quiet", "--branch", "main", str(origin.bare), str(checkout))
    script = state / "apply.sh"
    script.write_text(step["run"])
    applied = state / "applied"
    before = applied.read_text().splitlines() if applied.exists() else []
    env = {
        "PATH": f"{state / 'bin'}:{os.environ['PATH']}",
        "HOME": str(state),
        "FAKE_PULUMI_STATE": str(state),
        "GITHUB_STEP_SUMMARY": str(state / "summary.md"),
        **literal_env(job, step),
        # What GitHub fills in.
        "PULUMI_CLOUD_URL": "",
        "PULUMI_ACCESS_TOKEN": "token",
        "PULUMI_CONFIG_PASSPHRASE": "passphrase",
        "EVENT_NAME": event,
        "HEAD_ONLY": head_only,
        "SLACK_WEBHOOK_URL": webhook,
    }
    result = subprocess.run(
        ["bash", "-e", str(script)], cwd=checkout, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    after = applied.read_text().splitlines() if applied.exists() else []
    return result, after[len(before) :]


def stack_applied(state: Path, commit: str) -> None:
    """The stack's history says `commit` was applied (the state a previous run left)."""
    entry = {"kind": "update", "message": "earlier", "environment": {"git.head": commit}, "result": "succeeded"}
    (state / "history.json").write_text(json.dumps([entry]))


def test_up_checks_out_main_with_its_history_and_queues_without_cancelling(up: dict[str, Any]) -> None:
    assert up["concurrency"] == {"group": "pulumi-dev", "cancel-in-progress": False}
    (job,) = up["jobs"].values()
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["ref"] == "main"  # main's head when the job starts, not the pushed commit
    assert checkout["with"]["fetch-depth"] == 0
    assert environment_name(job) not in APPROVAL_ENVIRONMENTS


def test_up_counts_as_program_what_triggers_it(up: dict[str, Any]) -> None:
    (job,) = up["jobs"].values()
    triggers = [path for path in up["on"]["push"]["paths"] if path != ".github/workflows/up.yml"]
    assert job["env"]["PROGRAM_PATHS"].split() == triggers


def test_up_applies_each_merge_in_order_when_github_collapsed_their_runs(origin: Origin, state: Path) -> None:
    start = origin.commit("canary: 60%", {"Pulumi.dev.yaml": stack_file(60), "requirements.lock": "a==1\n"})
    stack_applied(state, start)
    # Four merges while an earlier update ran: GitHub left one pending run, the last one's.
    to_100 = origin.commit("canary: 100%", {"Pulumi.dev.yaml": stack_file(100)})
    finish_1 = origin.commit("canary: finish (1/2)", {"Pulumi.dev.yaml": stack_file(100, ga="6.15.0")})
    origin.commit("docs", {"README.md": "words\n"})
    finish_2 = origin.commit("canary: finish (2/2)", {"Pulumi.dev.yaml": stack_file(0, ga="6.15.0")})
    result, applied = run_up(origin, state)
    assert result.returncode == 0, result.stdout + result.stderr
    # Each its own `pulumi up`, oldest first; the GA version is never applied together with the weight back to 0.
    assert applied == [to_100, finish_1, finish_2]
    summary = (state / "summary.md").read_text()
    assert summary.count(": applied") == 3 and "canary: finish (1/2)" in summary
    # The next run finds the stack up to date and changes nothing.
    again, applied = run_up(origin, state)
    assert again.returncode == 0 and applied == []
    assert "Up to date" in again.stdout


def test_a_run_cancelled_while_pending_loses_nothing(origin: Origin, state: Path) -> None:
    # A push starts run 1. While its update runs, B then C are pushed: B's pending run is cancelled by C's (GitHub
    # keeps one pending run per group). C's run starts after both and must apply B, then C.
    stack_applied(state, origin.commit("start", {"Pulumi.dev.yaml": stack_file(0)}))
    first_push = origin.commit("canary: 10%", {"Pulumi.dev.yaml": stack_file(10)})
    (state / "b.yaml").write_text(stack_file(100, ga="6.15.0"))
    (state / "c.yaml").write_text(stack_file(0, ga="6.15.0"))
    push = "git -c user.name=t -c user.email=t@example.com commit --quiet -am {0} && git push --quiet origin main\n"
    (state / "during-up").write_text(
        f"set -e\ncd {origin.work}\n"
        f"cp {state / 'b.yaml'} Pulumi.dev.yaml\n{push.format('B')}"
        f"cp {state / 'c.yaml'} Pulumi.dev.yaml\n{push.format('C')}"
    )
    first, applied = run_up(origin, state)
    assert first.returncode == 0, first.stdout + first.stderr
    assert applied == [first_push]
    c = git(origin.work, "rev-parse", "HEAD")
    b = git(origin.work, "rev-parse", "HEAD^")
    second, applied = run_up(origin, state)  # C's run
    assert second.returncode == 0, second.stdout + second.stderr
    assert applied == [b, c]


def test_a_failed_update_stops_the_run_and_the_next_run_starts_again_there(origin: Origin, state: Path) -> None:
    stack_applied(state, origin.commit("start", {"Pulumi.dev.yaml": stack_file(0)}))
    good = origin.commit("canary: 10%", {"Pulumi.dev.yaml": stack_file(10)})
    broken = origin.commit("a change that cannot apply", {"BROKEN": "x\n", "stacks/x.py": "1\n"})
    origin.commit("canary: 60%", {"Pulumi.dev.yaml": stack_file(60)})
    result, applied = run_up(origin, state)
    assert result.returncode != 0
    assert applied == [good, f"{broken} failed"], "nothing after the failed commit"
    assert any(line.startswith("::error") and broken[:7] in line for line in result.stdout.splitlines())
    # The next run (after a transient error, say) starts at the failed commit, not after it.
    _, applied = run_up(origin, state)
    assert applied == [f"{broken} failed"]
    # It can never apply: the fix is a later commit, and a person runs up by hand with head_only.
    fix = origin.commit("fix", {"BROKEN": None})
    dispatched, applied = run_up(origin, state, event="workflow_dispatch", head_only="true")
    assert dispatched.returncode == 0, dispatched.stdout + dispatched.stderr
    assert applied == [fix]
    assert "::warning" in dispatched.stdout  # it says what it skipped
    _, applied = run_up(origin, state)
    assert applied == []


def test_up_follows_main_first_parent_line(origin: Origin, state: Path) -> None:
    stack_applied(state, origin.commit("start", {"Pulumi.dev.yaml": stack_file(0)}))
    git(origin.work, "checkout", "--quiet", "-b", "feature")
    origin.commit("wip 1", {"stacks/a.py": "1\n"}, branch="feature")
    origin.commit("wip 2", {"stacks/a.py": "2\n"}, branch="feature")
    merge = origin.merge("feature")
    _, applied = run_up(origin, state)
    assert applied == [merge], "a pull request's own commits were never on main"


@pytest.mark.parametrize(
    ("history", "warns"),
    [
        ("none", False),  # a new stack: nothing applied yet
        ("branch", True),  # the last update came from a branch, by hand
        ("destroyed", False),  # destroyed since: nothing applied
    ],
)
def test_without_a_known_starting_point_up_applies_main_s_head(
    origin: Origin, state: Path, history: str, warns: bool
) -> None:
    origin.commit("one", {"Pulumi.dev.yaml": stack_file(0)})
    git(origin.work, "checkout", "--quiet", "-b", "experiment")
    side = origin.commit("experiment", {"stacks/a.py": "1\n"}, branch="experiment")
    head = origin.commit("two", {"Pulumi.dev.yaml": stack_file(10)})
    if history == "branch":
        stack_applied(state, side)
    elif history == "destroyed":
        stack_applied(state, head)
        entries = json.loads((state / "history.json").read_text())
        entries.insert(0, {"kind": "destroy", "environment": {}, "result": "succeeded"})
        (state / "history.json").write_text(json.dumps(entries))
    result, applied = run_up(origin, state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert applied == [head]
    assert ("::warning" in result.stdout) == warns


def test_by_hand_up_applies_main_again_even_when_up_to_date(origin: Origin, state: Path) -> None:
    head = origin.commit("one", {"Pulumi.dev.yaml": stack_file(0)})
    stack_applied(state, head)
    _, applied = run_up(origin, state)
    assert applied == []
    _, applied = run_up(origin, state, event="workflow_dispatch", head_only="false")
    assert applied == [head]  # e.g. after the cluster drifted


def test_each_commit_gets_its_own_dependencies(origin: Origin, state: Path) -> None:
    stack_applied(state, origin.commit("start", {"Pulumi.dev.yaml": stack_file(0), "requirements.lock": "a==1\n"}))
    origin.commit("10", {"Pulumi.dev.yaml": stack_file(10)})
    origin.commit("deps", {"requirements.lock": "a==2\n"})
    origin.commit("60", {"Pulumi.dev.yaml": stack_file(60)})
    result, applied = run_up(origin, state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(applied) == 3
    installs = (state / "installs").read_text().splitlines()
    assert installs == ["-m pip install --disable-pip-version-check --require-hashes -r requirements.lock"] * 2


# --- up tells Slack what each applied commit did, in words ----------------------------------------------


def events(state: Path) -> list[str]:
    path = state / "events"
    return path.read_text().splitlines() if path.exists() else []


def notices(state: Path) -> list[dict[str, str]]:
    path = state / "notices"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_up_reads_the_webhook_in_its_apply_step_alone(up: dict[str, Any]) -> None:
    job, apply = the_apply_step(up)
    assert apply["env"]["SLACK_WEBHOOK_URL"] == "${{ secrets.SLACK_WEBHOOK_URL }}"
    others = [step for step in job["steps"] if step is not apply]
    assert not references([job.get("env", {}), others], "secrets.SLACK_WEBHOOK_URL")
    # The canary command is installed (from main's head) before the step that runs it.
    install = index_of(up, lambda s: s.get("name") == "Install the canary command")
    assert install < index_of(up, lambda s: s is apply)
    assert "--require-hashes -r requirements-canary.lock" in steps(up)[install]["run"]


def test_with_a_webhook_each_applied_commit_is_told_to_slack_in_words(origin: Origin, state: Path) -> None:
    stack_applied(state, origin.commit("start", {"Pulumi.dev.yaml": stack_file(0)}))
    ten = origin.commit("canary: 10%", {"Pulumi.dev.yaml": stack_file(10)})
    origin.commit("docs", {"README.md": "words\n"})
    sixty = origin.commit("canary: 60%", {"Pulumi.dev.yaml": stack_file(60), "UNEXPECTED": "x\n"})
    result, applied = run_up(origin, state, webhook=WEBHOOK)
    assert result.returncode == 0, result.stdout + result.stderr
    assert applied == [ten, sixty]
    # Each commit: previewed (that commit, just before its update), read by canary plan, applied, then told.
    assert events(state) == [
        f"{event} {commit}" for commit in (ten, sixty) for event in ("preview", "plan", "up", "notify")
    ]
    short_ten, short_sixty = (git(origin.work, "log", "-1", "--format=%h %s", c) for c in (ten, sixty))
    assert notices(state) == [
        {"text": f"Moves podinfo to 10 % canary. (dev: {short_ten})", "webhook": WEBHOOK},
        {
            "text": f"Moves podinfo to 60 % canary. (dev: {short_sixty}) Not expected for this step: "
            "update Deployment podinfo-ga.",
            "webhook": WEBHOOK,
        },
    ]
    # Only canary notify had the webhook: not pip, the program's venv, pulumi or canary plan.
    assert not (state / "leaks").exists(), (state / "leaks").read_text()
    summary = (state / "summary.md").read_text()
    assert f"`{short_ten}`: applied. Moves podinfo to 10 % canary." in summary


def test_without_a_webhook_up_neither_previews_nor_notifies(origin: Origin, state: Path) -> None:
    stack_applied(state, origin.commit("start", {"Pulumi.dev.yaml": stack_file(0)}))
    ten = origin.commit("canary: 10%", {"Pulumi.dev.yaml": stack_file(10)})
    result, applied = run_up(origin, state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert applied == [ten]
    assert events(state) == [f"up {ten}"]
    assert notices(state) == []


def test_a_failed_update_is_not_told_and_a_notice_never_stops_an_update(origin: Origin, state: Path) -> None:
    stack_applied(state, origin.commit("start", {"Pulumi.dev.yaml": stack_file(0)}))
    # A commit whose preview fails: applied all the same, without a notice, and said so.
    unpreviewable = origin.commit("canary: 10%", {"Pulumi.dev.yaml": stack_file(10), "PREVIEW_BROKEN": "x\n"})
    ten_again = origin.commit("canary: 20%", {"Pulumi.dev.yaml": stack_file(20), "PREVIEW_BROKEN": None})
    broken = origin.commit("cannot apply", {"Pulumi.dev.yaml": stack_file(60), "BROKEN": "x\n"})
    result, applied = run_up(origin, state, webhook=WEBHOOK)
    assert result.returncode != 0
    assert applied == [unpreviewable, ten_again, f"{broken} failed"]
    assert [notice["text"].split(" (")[0] for notice in notices(state)] == ["Moves podinfo to 20 % canary."]
    warnings = [line for line in result.stdout.splitlines() if line.startswith("::warning title=No Slack notice")]
    assert len(warnings) == 1 and unpreviewable[:7] in warnings[0]
    assert "provider: quota exceeded" in result.stdout  # the preview's own error, in the log
    # The failed update was previewed and planned, but is not told.
    assert f"notify {broken}" not in events(state)
    # Slack down: the updates go on, green, each with a warning.
    fixed = origin.commit("fix", {"BROKEN": None})
    hundred = origin.commit("canary: 100%", {"Pulumi.dev.yaml": stack_file(100)})
    (state / "notify-fails").write_text("")
    again, applied = run_up(origin, state, event="workflow_dispatch", head_only="true", webhook=WEBHOOK)
    assert again.returncode == 0, again.stdout + again.stderr
    assert applied == [hundred]
    warnings = [line for line in again.stdout.splitlines() if line.startswith("::warning title=Slack notice not sent")]
    assert len(warnings) == 1 and hundred[:7] in warnings[0]
    assert fixed not in "".join(events(state))  # skipped by head_only, as without Slack


# --- the release workflows ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promote() -> dict[str, Any]:
    return load(WORKFLOWS / "promote.yml")


def test_analysis_only_reads(promote: dict[str, Any]) -> None:
    assert promote["jobs"]["analyze"]["permissions"] == {"contents": "read"}


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_nothing_scheduled_reads_the_in_cluster_prometheus(path: Path) -> None:
    # The release agent analyses in the cluster every interval; a GitHub-hosted cron cannot reach Prometheus there.
    workflow = load(path)
    if "schedule" in workflow["on"]:
        for name, job in workflow["jobs"].items():
            assert not READS_PROMETHEUS.search(scripts_of(job)), f"{path.name}: scheduled job {name} reads Prometheus"


def test_promote_runs_by_hand_only(promote: dict[str, Any]) -> None:
    assert set(promote["on"]) == {"workflow_dispatch"}
    inputs = promote["on"]["workflow_dispatch"]["inputs"]
    assert inputs["stack"]["default"] == "dev"
    assert inputs["action"]["options"] == ["promote", "rollback"]
    assert inputs["action"]["default"] == "promote"


def test_the_jobs_that_read_prometheus_run_on_the_in_cluster_runner(promote: dict[str, Any]) -> None:
    for name, job in promote["jobs"].items():
        if READS_PROMETHEUS.search(scripts_of(job)):
            assert job["runs-on"] == IN_CLUSTER_RUNNER, name
    # The default is a list of labels GitHub can match: a self-hosted runner labelled `canary`.
    default = re.search(r"\|\|\s*'(.*)'", IN_CLUSTER_RUNNER)
    assert default and json.loads(default.group(1)) == ["self-hosted", "canary"]


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_no_job_waits_for_approval_inside_a_concurrency_group(path: Path) -> None:
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        if environment_name(job) in APPROVAL_ENVIRONMENTS:
            assert concurrency_groups(workflow, job) == [], f"{path.name}: job {name} waits for approval in a group"


def test_a_rollback_waits_for_no_reviewer_no_runner_and_no_other_run(promote: dict[str, Any]) -> None:
    rollback = promote["jobs"]["rollback"]
    assert "canary rollback" in scripts_of(rollback)
    assert environment_name(rollback) not in APPROVAL_ENVIRONMENTS
    assert rollback["runs-on"] == "ubuntu-latest"  # never queued for a self-hosted runner that may be down
    # A group of its own, that no other job or workflow joins, and that never cancels a rollback.
    (group,) = concurrency_groups(promote, rollback)
    assert group == "release-${{ inputs.stack }}-rollback"
    assert rollback["concurrency"]["cancel-in-progress"] is False
    others = [
        other_group
        for path in workflow_files()
        for name, job in load(path)["jobs"].items()
        if (path.name, name) != ("promote.yml", "rollback")
        for other_group in concurrency_groups(load(path), job)
    ]
    assert group not in others
    # action rollback does not wait for the analysis either: analyze runs for promote only, rollback regardless.
    assert promote["jobs"]["analyze"]["if"] == "inputs.action == 'promote'"
    assert rollback["if"].startswith("always() &&")
    assert "inputs.action == 'rollback'" in rollback["if"]


def test_a_promote_waits_for_approval_and_proposes_a_pull_request(promote: dict[str, Any]) -> None:
    job = promote["jobs"]["promote"]
    assert environment_name(job) in APPROVAL_ENVIRONMENTS
    assert "inputs.action == 'promote'" in job["if"]
    assert not pushes(job), "a step reaches main only through its pull request"
    assert any(step.get("uses", "").startswith("peter-evans/create-pull-request@") for step in job["steps"])


@pytest.mark.parametrize("path", workflow_files(), ids=lambda path: path.name)
def test_what_the_bot_pushes_or_opens_starts_workflows(path: Path) -> None:
    # Pushes and pull requests made with GITHUB_TOKEN start no workflow: a rollback nobody applies, a pull request
    # without its preview. The bot's token does it, and the job's own token keeps read access only.
    for name, job in load(path)["jobs"].items():
        opens = [step for step in job.get("steps", []) if "create-pull-request@" in step.get("uses", "")]
        checkouts = [step for step in job.get("steps", []) if step.get("uses", "").startswith("actions/checkout@")]
        writers = opens + (checkouts if pushes(job) else [])
        for step in writers:
            assert step.get("with", {}).get("token") == f"${{{{ {BOT_TOKEN} }}}}", f"{path.name}: job {name}"
        if writers:
            # An OIDC token is no access to the repository: a job may ask for one to trade with Google, nothing else.
            permissions = dict(job["permissions"])
            if any(step.get("uses", "").startswith(GOOGLE_AUTH) for step in job["steps"]):
                assert permissions.pop("id-token", "write") == "write", f"{path.name}: job {name}"
            assert permissions == {"contents": "read"}, f"{path.name}: job {name}"


# --- what both need to reach Google and the backend ---------------------------------------------------


@pytest.mark.parametrize("name", ["preview.yml", "up.yml"])
def test_pulumi_runs_with_its_own_google_identity_and_its_own_venv(name: str) -> None:
    workflow = load(WORKFLOWS / name)
    auth = index_of(workflow, lambda s: s.get("uses", "").startswith("google-github-actions/auth@"))
    gcloud = index_of(workflow, lambda s: s.get("uses", "").startswith("google-github-actions/setup-gcloud@"))
    deps = index_of(
        workflow, lambda s: "--require-hashes -r requirements.lock" in s.get("run", "") and ".venv" in s.get("run", "")
    )
    for stack_step in stack_steps(workflow):
        pulumi = index_of(workflow, lambda s, stack_step=stack_step: s is stack_step)
        # up installs each commit's dependencies in the step that applies it.
        assert max(auth, gcloud) < pulumi and deps <= pulumi
    auth_with = steps(workflow)[auth]["with"]
    # Workload identity federation: no long-lived key in the repo's secrets.
    assert auth_with == {
        "workload_identity_provider": "${{ vars.GCP_WORKLOAD_IDENTITY_PROVIDER }}",
        "service_account": f"${{{{ {IDENTITY[name]['service_account']} }}}}",
    }
    assert steps(workflow)[gcloud]["with"]["install_components"] == "gke-gcloud-auth-plugin"


@pytest.mark.parametrize("name", ["preview.yml", "up.yml"])
def test_pulumi_logs_in_to_the_configured_backend(name: str) -> None:
    for step in stack_steps(load(WORKFLOWS / name)):
        logs_in(name, step)


def logs_in(name: str, step: dict[str, Any]) -> None:
    credentials = {
        "PULUMI_ACCESS_TOKEN": f"${{{{ {IDENTITY[name]['token']} }}}}",
        # One passphrase per stack: a preview must decrypt the stack's secrets to diff them (README, CI set-up).
        "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
    }
    if "uses" in step:
        assert step["with"]["cloud-url"] == "${{ vars.PULUMI_CLOUD_URL }}"
        assert step["env"] == credentials
    else:
        assert {k: v for k, v in step["env"].items() if k in credentials} == credentials
        assert step["env"]["PULUMI_CLOUD_URL"] == "${{ vars.PULUMI_CLOUD_URL }}"
        # Empty: Pulumi Cloud with the token; else that backend (gs://bucket).
        assert 'pulumi login ${PULUMI_CLOUD_URL:+"$PULUMI_CLOUD_URL"}' in step["run"]


@pytest.mark.parametrize("name", ["preview.yml", "up.yml"])
def test_ci_uses_the_pulumi_cli_the_toolchain_builds(name: str) -> None:
    go_mod = (ROOT / "toolchain" / "pulumi" / "go.mod").read_text()
    pinned = re.search(r"github\.com/pulumi/pulumi/pkg/v3 v(\S+)", go_mod)
    assert pinned, "toolchain/pulumi/go.mod no longer pins the CLI"
    assert str(the_pulumi_step(load(WORKFLOWS / name))["pulumi-version"]) == pinned.group(1)


def test_the_readme_says_what_the_workflows_do() -> None:
    section = (ROOT / "README.md").read_text().split("## CI set-up", 1)[1].split("\n## ", 1)[0]
    default = re.search(r"\|\|\s*'(.*)'", IN_CLUSTER_RUNNER)
    assert default and f"`CANARY_RUNNER`: a JSON list of runner labels (default `{default.group(1)}`)" in section
    for environment in APPROVAL_ENVIRONMENTS:
        assert f"`{environment}` (required reviewers" in section
    assert "`dev`, deployment branches: `main` only, no reviewers" in section
    assert "`release-<stack>-rollback`" in section and "`pulumi-dev` without `cancel-in-progress`" in section
    assert "docs/release.md#the-release-agent-canary-agent" in section
    # The plan comment: how it is found again, that it is strict, and where it is documented.
    assert f"`{plan_markdown.MARKER}`" in section and "`canary plan --strict`" in section
    assert "docs/release.md#the-pull-request-in-plain-words-canary-plan" in section


# --- CI entry point -----------------------------------------------------------------------------------


def test_ci_entry_point_runs_make_test() -> None:
    script = ROOT / ".ci" / "run"
    assert os.access(script, os.X_OK), ".ci/run must be executable"
    lines = [line.strip() for line in script.read_text().splitlines()]
    assert lines[0].startswith("#!")
    assert "set -euo pipefail" in lines
    assert "make test" in [line for line in lines if not line.startswith("#")]


# --- watch-images: registry credentials and one pull request per line ---------------------------------


# Optional: empty means anonymous, so no "Required credentials" check names them, and none is one of CREDENTIALS
# (those are required wherever they are used). The workload identity provider and service account are the
# registry reader's, not the deploy identity's (`vars.GCP_SERVICE_ACCOUNT` lives on `dev`, which only up.yml uses).
REGISTRY_CREDENTIALS = {
    credentials.USERNAME_ENV: "${{ vars.CANARY_REGISTRY_USERNAME }}",
    credentials.PASSWORD_ENV: "${{ secrets.CANARY_REGISTRY_PASSWORD }}",
}
REGISTRY_GOOGLE_AUTH = {
    "workload_identity_provider": "${{ vars.CANARY_REGISTRY_WORKLOAD_IDENTITY_PROVIDER }}",
    "service_account": "${{ vars.CANARY_REGISTRY_SERVICE_ACCOUNT }}",
}
FAKE_CANARY = """#!/bin/bash
# `canary watch-images --stack S --json` as the workflow runs it: a commit and the JSON result, or nothing newer.
[ "$*" = "watch-images --stack $STACK --json" ] || exit 64
[ "$FAKE_EXIT" = 0 ] || { echo '{"action": "none", "current": "6.15.0", "newest": null}'; exit "$FAKE_EXIT"; }
echo "canaryVersion: 6.16.0" > "Pulumi.$STACK.yaml"
git add "Pulumi.$STACK.yaml"
git commit --quiet -m "canary: new canary image podinfo 6.16.0 (was 6.15.0, policy semver:*)" \\
  -m "Image: ghcr.io/acme/podinfo:6.16.0
Digest: sha256:$FAKE_DIGEST"
echo "{\\"action\\": \\"bump\\", \\"current\\": \\"6.15.0\\", \\"newest\\": \\"6.16.0\\", \\"digest\\": \\"sha256:$FAKE_DIGEST\\"}"
"""


@pytest.fixture(scope="module")
def watch() -> dict[str, Any]:
    return load(WORKFLOWS / "watch-images.yml")


def watch_step(job: dict[str, Any], prefix: str) -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(job["steps"]) if s.get("uses", s.get("name", "")).startswith(prefix)]
    assert len(found) == 1, prefix
    return found[0]


def test_watch_images_passes_optional_registry_credentials_to_the_watch_only(watch: dict[str, Any]) -> None:
    (job,) = watch["jobs"].values()
    _, step = watch_step(job, "Look for a newer tag")
    assert {name: step["env"][name] for name in REGISTRY_CREDENTIALS} == REGISTRY_CREDENTIALS
    others = [s for s in job["steps"] if s is not step]
    for value in REGISTRY_CREDENTIALS.values():
        assert not references([job.get("env", {}), others], value.strip("${} "))
    assert not set(REGISTRY_CREDENTIALS.values()) & {f"${{{{ {c} }}}}" for c in CREDENTIALS}
    # Only the bot's token is required: a public image needs nothing more.
    assert credentials_used(job) == {BOT_TOKEN}


def test_watch_images_trades_its_oidc_token_for_google_credentials_only_when_configured(
    watch: dict[str, Any],
) -> None:
    (job,) = watch["jobs"].values()
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    auth_index, auth = watch_step(job, GOOGLE_AUTH)
    assert auth["if"] == "vars.CANARY_REGISTRY_WORKLOAD_IDENTITY_PROVIDER != ''"
    assert auth["with"] == REGISTRY_GOOGLE_AUTH
    assert not {ref.strip("${} ") for ref in REGISTRY_GOOGLE_AUTH.values()} & set(CREDENTIALS)
    checkout, _ = watch_step(job, "actions/checkout@")
    watch_index, _ = watch_step(job, "Look for a newer tag")
    # After the checkout (it would delete the credentials file in the workspace), before the watch that reads it.
    assert checkout < auth_index < watch_index


def test_watch_images_keeps_one_pull_request_per_line(watch: dict[str, Any]) -> None:
    (job,) = watch["jobs"].values()
    _, opens = watch_step(job, "peter-evans/create-pull-request@")
    settings = opens["with"]
    # The release agent's branch for the line, so the agent and the workflow update the same pull request.
    assert (
        settings["branch"] == images.branch_for("${{ env.STACK }}", "canary") == "canary/${{ env.STACK }}-image-canary"
    )
    assert "${{ steps.watch.outputs.version }}" in settings["title"]
    assert settings["body-path"] == "${{ runner.temp }}/pull-request.md"
    # What watch-images committed and nothing else in the workspace (watch.json, a credentials file).
    assert settings["add-paths"] == "Pulumi.${{ env.STACK }}.yaml"
    assert opens["if"] == "steps.watch.outputs.bumped == 'true'"


def run_watch(tmp_path: Path, code: int, creds: bool = True) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The watch step's script in a checkout, with a stand-in `canary` that exits `code`."""
    (job,) = load(WORKFLOWS / "watch-images.yml")["jobs"].values()
    _, step = watch_step(job, "Look for a newer tag")
    work, runner, bin_dir = tmp_path / "work", tmp_path / "runner", tmp_path / "bin"
    for folder in (work, runner, bin_dir):
        folder.mkdir(parents=True)
    git(work, "init", "--quiet")
    git(work, "commit", "--quiet", "--allow-empty", "-m", "main")
    (bin_dir / "canary").write_text(FAKE_CANARY)
    (bin_dir / "canary").chmod(0o755)
    google = work / "gha-creds-0123456789abcdef.json"
    if creds:
        google.write_text('{"credential_source": {"headers": {"Authorization": "Bearer oidc-request-token"}}}')
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        **literal_env(job, step),
        # What GitHub and the auth step fill in.
        "STACK": "dev",
        "GITHUB_OUTPUT": str(runner / "output"),
        "RUNNER_TEMP": str(runner),
        "FAKE_EXIT": str(code),
        "FAKE_DIGEST": "ab" * 32,
        **({"GOOGLE_GHA_CREDS_PATH": str(google)} if creds else {}),
    }
    script = runner / "watch.sh"
    script.write_text(step["run"])
    result = subprocess.run(
        ["bash", "-e", str(script)], cwd=work, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    return result, work


def test_a_bump_gives_the_pull_request_its_version_digest_and_commit_message(tmp_path: Path) -> None:
    result, work = run_watch(tmp_path, 0)
    assert result.returncode == 0, result.stdout + result.stderr
    runner = tmp_path / "runner"
    assert (runner / "output").read_text().splitlines() == ["bumped=true", "version=6.16.0"]
    body = (runner / "pull-request.md").read_text()
    assert f"Digest: `sha256:{'ab' * 32}`" in body
    assert "canary: new canary image podinfo 6.16.0 (was 6.15.0, policy semver:*)" in body
    assert "Image: ghcr.io/acme/podinfo:6.16.0" in body
    # Nothing is left in the workspace for the pull request step to pick up: no result, no Google credentials.
    assert sorted(path.name for path in work.iterdir()) == [".git", "Pulumi.dev.yaml"]


@pytest.mark.parametrize("creds", [True, False])
def test_nothing_newer_opens_nothing_and_an_error_fails_the_job(tmp_path: Path, creds: bool) -> None:
    result, work = run_watch(tmp_path / "none", 2, creds)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "none" / "runner" / "output").read_text().splitlines() == ["bumped=false", "version=6.15.0"]
    assert not (tmp_path / "none" / "runner" / "pull-request.md").exists()
    assert sorted(path.name for path in work.iterdir()) == [".git"]
    failed, work = run_watch(tmp_path / "error", 4, creds)
    assert failed.returncode == 4
    assert sorted(path.name for path in work.iterdir()) == [".git"]
