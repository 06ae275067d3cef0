"""Throw hostile and careless values at every config key and count what the validator does with them.

`python -m scripts.fuzz_config [N]` prints, per key and in total: tried / refused naming the key /
accepted / refused without naming the key / crashed. The last two must be 0 (tests/unit/test_config_fuzz.py
checks that on a smaller run). Values are a fixed hostile corpus plus N seeded random strings per key.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

from istio_canary.release.settings import PROJECT, ConfigError, parse, schema

GCP = {"project": "acme-canary-dev", "region": "europe-west1"}
BASE = {"clusterMode": "gke", "clusterLocation": "europe-west1"}

CORPUS: tuple[Any, ...] = (
    "",
    " ",
    "\t",
    "\n",
    "0",
    "-1",
    "1e2",
    "0x10",
    "1_0",
    " 10",
    "10 ",
    "9" * 5000,
    "6." + "9" * 5000 + ".0",
    "1.\u0663\u0660.4",
    "6.1\uff16.0",
    "\u0661\u0660",
    "x" * 300,
    "a\x00b",
    "ctx\x1b[31m",
    "line\nbreak",
    "http://[::1",
    "http://127.0.0.1:99999",
    "https://bot:t0k3n@prom.example.com",
    "file:///etc/passwd",
    "glob:latest",
    "semver:x",
    "istio-system",
    "kube-system",
    "monitoring",
    "n1-standard-1",
    "e2-custom-1-1024",
    "e2-custom-micro-1024",
    "latest",
    "v",
    "-",
    "*",
    "../..",
    "'; drop",
    "{{namespace}}",
    "${HOME}",
    "\u202e",
    "null",
    "~",
    "true",
    "yes",
    "NaN",
    "inf",
    "-0",
    "00",
    "100",
    "101",
    "[10, 60]",
    "[]",
    "{}",
    True,
    False,
    0,
    -1,
    10**30,
    1.5,
    float("nan"),
    float("inf"),
    None,
    [],
    [1, 2],
    ["x"],
    {},
    {"secure": "v1:x"},
)
_ALPHABET = "0123456789abcxyzABC.-_:/@*?[]{} \t\n\x00\x7f\u0663\uff16\u00e9"


def cases(extra: int, seed: int = 7) -> Iterator[tuple[str, Any]]:
    """(key, value) pairs: the corpus for every key, then `extra` seeded random strings per key."""
    rng = random.Random(seed)
    for key in sorted(schema()):
        for value in CORPUS:
            yield key, value
        for _ in range(extra):
            yield key, "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 24)))


def classify(key: str, value: Any) -> str:
    """accepted, refused (naming the key), unnamed (refused without naming it) or crashed."""
    try:
        parse({**BASE, key: value}, GCP)
    except ConfigError as exc:
        return "refused" if f"{PROJECT}:{key}" in str(exc) else "unnamed"
    except Exception:  # noqa: BLE001 - a crash is what is being counted
        return "crashed"
    return "accepted"


def run(extra: int) -> tuple[Counter[str], dict[str, Counter[str]], list[tuple[str, Any, str]]]:
    """Totals, per-key counts, and the cases that were unnamed refusals or crashes."""
    total: Counter[str] = Counter()
    per_key: dict[str, Counter[str]] = {}
    bad: list[tuple[str, Any, str]] = []
    for key, value in cases(extra):
        outcome = classify(key, value)
        total[outcome] += 1
        per_key.setdefault(key, Counter())[outcome] += 1
        if outcome in ("unnamed", "crashed"):
            bad.append((key, value, outcome))
    return total, per_key, bad


def main() -> int:
    extra = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    total, per_key, bad = run(extra)
    columns = ("tried", "refused", "accepted", "unnamed", "crashed")
    print(f"{'key':<26}" + "".join(f"{c:>10}" for c in columns))
    for key, counts in sorted(per_key.items()):
        row = [sum(counts.values()), counts["refused"], counts["accepted"], counts["unnamed"], counts["crashed"]]
        print(f"{key:<26}" + "".join(f"{n:>10}" for n in row))
    row = [sum(total.values()), total["refused"], total["accepted"], total["unnamed"], total["crashed"]]
    print(f"{'TOTAL':<26}" + "".join(f"{n:>10}" for n in row))
    for key, value, outcome in bad[:20]:
        print(f"{outcome}: {key} = {str(value)[:60]!r}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
