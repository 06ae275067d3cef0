"""toolchain/build.sh says what it is doing during a cold build: the step, packages compiled out of those to
compile, and what a cold build took on the reference machine (the figures of toolchain/README.md).

A real cold build takes ~20 minutes and ~12 GB, so the progress logic runs against a stand-in `go` on PATH that
lists six packages and "compiles" them one every 0.3 s (printing each as `go build -v` does) into a private cache
directory. The real caches are never touched.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from testkit.engine import REPO

BUILD = REPO / "toolchain" / "build.sh"
PACKAGES = [f"example.com/dep{i}" for i in range(5)] + ["example.com/cmd/etcd"]
FAKE_GO = r"""#!/bin/bash
# A stand-in for `go`: just what toolchain/build.sh calls for etcd.
case "$1" in
  env) printf 'go1.26.8\nlinux\namd64\n' ;;
  list) printf '%s\n' PACKAGES_HERE ; printf '\n\n' ;;   # blank lines: packages already in the build cache
  build)
    out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
    [ -n "${FAKE_GO_PID_FILE:-}" ] && echo $$ > "$FAKE_GO_PID_FILE"
    if [ -n "${FAKE_GO_FAIL:-}" ]; then
      printf 'example.com/dep0\n# example.com/dep1\ndep1/a.go:3:2: undefined: Thing\n' >&2; exit 1
    fi
    for p in PACKAGES_HERE; do sleep "${FAKE_GO_DELAY:-0.3}"; echo "$p" >&2; done
    printf '#!/bin/sh\necho fake etcd\n' > "$out"; chmod +x "$out" ;;
  *) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
""".replace("PACKAGES_HERE", " ".join(PACKAGES))


def fake_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    go = bin_dir / "go"
    go.write_text(FAKE_GO)
    go.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISTIO_CANARY_", "TOOLCHAIN_", "GO"))}
    env.update(
        {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(tmp_path / "home"),
            "ISTIO_CANARY_TOOLCHAIN": str(tmp_path / "cache"),
            "TOOLCHAIN_PROGRESS_EVERY": "1",
            **extra,
        }
    )
    return env


def test_cold_build_reports_step_progress_and_expected_time(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BUILD), "etcd"], env=fake_env(tmp_path), capture_output=True, text=True, timeout=120, check=False
    )
    log = done.stderr
    assert done.returncode == 0, log
    assert "a first build of all five takes ~20m39s on 2 cores" in log, log
    assert "[1/1] building etcd" in log and "6 packages to compile" in log and "took 59s" in log, log
    counts = [int(n) for n in re.findall(r"\[1/1\] etcd: (\d)/6 packages compiled \(\d+%\)", log)]
    assert len(counts) >= 1 and counts == sorted(counts), log  # at least one progress line, never going back
    assert "[1/1] built etcd in" in log, log
    built = tmp_path / "cache" / "etcd-v3.6.16"
    assert (built / "etcd").is_file() and (built / ".stamp").is_file()
    assert not (built / "go-build.log").exists()  # the -v log goes once the build succeeded


def test_failed_build_shows_the_error_not_the_package_list(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(BUILD), "etcd"],
        env=fake_env(tmp_path, FAKE_GO_FAIL="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "undefined: Thing" in done.stderr and "go build of etcd failed" in done.stderr, done.stderr
    assert "example.com/dep0\n" not in done.stderr  # compiled packages are not errors
    assert not (tmp_path / "cache" / "etcd-v3.6.16").exists()  # never a half build under the real name


def test_interrupted_build_stops_go(tmp_path: Path) -> None:
    pid_file = tmp_path / "go.pid"
    proc = subprocess.Popen(
        [str(BUILD), "etcd"],
        env=fake_env(tmp_path, FAKE_GO_DELAY="5", FAKE_GO_PID_FILE=str(pid_file)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not pid_file.is_file() or not pid_file.read_text().strip():
        assert time.monotonic() < deadline, "the fake go build never started"
        time.sleep(0.1)
    go_pid = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert proc.returncode != 0
    deadline = time.monotonic() + 10
    while Path(f"/proc/{go_pid}").exists() and "Z" not in _state(go_pid):
        assert time.monotonic() < deadline, "go build still running after build.sh was stopped"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_cold_figures_match_the_readme() -> None:
    """build.sh's COLD_S is the 'fully cold' column of toolchain/README.md's Measured times."""
    script = BUILD.read_text()
    declared = re.search(r"declare -A COLD_S=\((.*?)\)\n", script)
    total_s = re.search(r"COLD_TOTAL_S=(\d+)", script)
    assert declared and total_s, "build.sh lost COLD_S or COLD_TOTAL_S"
    cold = dict(re.findall(r"\[([a-z-]+)\]=(\d+)", declared.group(1)))
    table = (REPO / "toolchain" / "README.md").read_text().split("## Measured times", 1)[1]
    readme = {}
    for name in cold:
        row = re.search(rf"^\| {re.escape(name)}(?: v?[\d.]+)? \| (\d+) s \|", table, re.MULTILINE)
        assert row, f"no Measured times row for {name}"
        readme[name] = row.group(1)
    assert cold == readme
    total = re.search(r"\| \*\*total\*\* \| \*\*(\d+) min (\d+) s\*\*", table)
    assert total, "no total row in Measured times"
    assert int(total_s.group(1)) == int(total.group(1)) * 60 + int(total.group(2))
