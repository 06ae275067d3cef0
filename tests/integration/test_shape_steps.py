"""Shape steps before real users on real git repositories and a real Prometheus: `canary promote` walks
mirror -> header -> 10 (each a one-key commit, analysed on what the canary served in the step before),
`git revert` undoes a step byte for byte, `canary rollback` from a shape returns to GA only, and `canary status`
says which shape is live."""

from __future__ import annotations

import json

from istio_canary.cli import EXIT_FAIL, EXIT_OK
from tests.integration.cli import canary
from tests.integration.conftest import git, stack_text

SHAPED = """\
  istio-canary:canaryPreSteps: [mirror, header]
  istio-canary:canaryMatch: header:x-canary=always
"""


def promote(capsys, repo, prom=None):
    args = ["promote", "-C", repo.work, "--no-notify"]
    if prom is not None:
        args += ["--prometheus", prom.url, "--at", prom.end]
    return canary(capsys, *args)


def changed_lines(repo) -> list[str]:
    diff = git(repo.work, "show", "--format=", "-U0", "HEAD", "--", "Pulumi.dev.yaml").splitlines()
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def test_the_walk_mirror_header_weights_one_key_per_step_and_revert(capsys, repo, prom):
    repo.write_stack(stack_text(namespace="healthy") + SHAPED)
    result = promote(capsys, repo)
    assert result.code == EXIT_OK, result.err
    assert repo.message().splitlines()[0] == (
        "canary: promote podinfo-canary 6.9.0 to mirror (first step; no analysis possible at 0%)"
    )
    assert changed_lines(repo) == ["+  istio-canary:canaryShape: mirror"]
    status = canary(capsys, "status", "-C", repo.work)
    assert "shape   mirror: 100% of GA's requests copied to the canary, its answers discarded" in status.out
    assert "steps   0 -> mirror -> header -> 10 -> 60 -> 100; next: header" in status.out

    before_header = repo.stack.read_bytes()
    result = promote(capsys, repo, prom)  # judged on the requests the canary served while mirrored
    assert result.code == EXIT_OK, result.err
    message = repo.message()
    assert message.startswith("canary: promote podinfo-canary 6.9.0 to header (success 100.0%")
    assert "verdict: PASS" in message and "Revert this commit to return to mirror." in message
    assert changed_lines(repo) == ["-  istio-canary:canaryShape: mirror", "+  istio-canary:canaryShape: header"]

    before_weights = repo.stack.read_bytes()
    result = promote(capsys, repo, prom)
    assert result.code == EXIT_OK, result.err
    assert repo.message().startswith("canary: promote podinfo-canary 6.9.0 to 10% (success 100.0%")
    assert sorted(changed_lines(repo)) == sorted(
        [
            "-  istio-canary:canaryWeight: 0",
            '+  istio-canary:canaryWeight: "10"',
            "-  istio-canary:canaryShape: header",
            '+  istio-canary:canaryShape: ""',
        ]
    )
    git(repo.work, "revert", "--no-edit", "HEAD")  # back to the header step, byte for byte
    assert repo.stack.read_bytes() == before_weights
    git(repo.work, "revert", "--no-edit", "HEAD~2")  # and the header step itself: back to the mirror step
    assert repo.stack.read_bytes() == before_header


def test_a_failing_mirror_step_blocks_the_next_step(capsys, repo, prom):
    repo.write_stack(stack_text(namespace="errors") + SHAPED + "  istio-canary:canaryShape: mirror\n")
    head = repo.head()
    result = promote(capsys, repo, prom)
    assert result.code == EXIT_FAIL
    assert repo.head() == head


def test_rollback_from_a_shape_returns_to_ga_only(capsys, repo, prom):
    repo.write_stack(stack_text(namespace="errors") + SHAPED + "  istio-canary:canaryShape: header\n")
    result = canary(capsys, "rollback", "-C", repo.work, "--no-notify", "--prometheus", prom.url, "--at", prom.end)
    assert result.code == EXIT_OK, result.err
    assert repo.message().startswith("canary: roll back podinfo-canary 6.9.0 from the header step to 0%")
    assert changed_lines(repo) == ["-  istio-canary:canaryShape: header", '+  istio-canary:canaryShape: ""']
    status = json.loads(canary(capsys, "status", "-C", repo.work, "--json").out)
    assert status["shape"] == "weights" and status["canary"]["weight"] == 0
    assert status["next"]["action"] == "rolled-back"  # not mirrored again without --force
