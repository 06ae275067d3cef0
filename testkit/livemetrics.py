"""A real Prometheus scraping live targets (testkit/exporter.py) every second: not a backfill, so whoever queries
it meets real scrape timing, staleness and rate windows.

    with live_istio(tmp_path, namespace="demo") as (exporter, prom):
        prom.url                                  # http://127.0.0.1:<port>, ready, target up, >= 2 scrapes in
        exporter.set("canary", error_share=0.2)
        prom.wait_until(query, lambda v: v is not None and v < 99, timeout=20)
        prom.stop(); prom.start()                 # Prometheus down, and back with the same port and TSDB

What to know when writing a test against it (measured in tests/integration/test_testbed_prometheus.py, 2 cores):
- Start-up takes ~7 s: the process is ready in 0.1 s, but Prometheus 2.42 hands new targets to the scrapers
  only every 5 s (its discovery manager; no flag changes that), then two 1 s scrapes. A restart costs the
  same, so a stop()/start() leaves a gap of ~6 s plus the downtime in the samples.
- rate()/increase() need two samples inside the window: with 1 s scrapes use a window of 10-15 s. A series
  that appears (a workload's first 503) counts from its second sample on: rate() ignores the first value.
- A change in the exporter shows after a scrape or two and settles after the window: with a 10 s window, 20 %
  errors read as < 99 % success after ~2 s and as ~80 % after ~9 s; p99 moves to a slower bucket within ~1 s
  (1 % slow requests is enough); back to 100 % only once the errors have left the window.
- A workload that disappears, or a target that goes down, gets staleness markers at the next scrape: an instant
  selector is empty after ~0.6 s, `up` is 0 after ~0.8 s, but rate()/increase() over a window keep answering
  from the samples before the marker until the window has passed them (~8 s more for 10 s).
- Queries at `time.time()` see data up to one scrape old.

Every wait is bounded; the process is always stopped (SIGTERM, then SIGKILL after 10 s).
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Self

from testkit.exporter import IstioExporter, Traffic
from testkit.servers import binary, free_port, running

JOB = "istio"
READY_TIMEOUT_S = 60.0
QUERY_TIMEOUT_S = 5.0
POLL_S = 0.2


class LivePrometheus:
    """A Prometheus process on 127.0.0.1 scraping `targets` (host:port) every `scrape_interval_s` seconds."""

    def __init__(
        self,
        workdir: Path,
        targets: Sequence[str],
        *,
        scrape_interval_s: float = 1,
        retention: str = "2h",
        job: str = JOB,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.targets = list(targets)
        self.scrape_interval_s = scrape_interval_s
        self.retention = retention
        self.job = job
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.storage = workdir / "tsdb"
        self.log = workdir / "prometheus.log"
        self.started_in_s = 0.0  # the last start(): process start until ready, target up and scraped twice
        self._stack: ExitStack | None = None
        workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()

    def _write_config(self) -> None:
        interval = f"{round(self.scrape_interval_s * 1000)}ms"  # Prometheus durations are whole numbers
        targets = ", ".join(f"'{target}'" for target in self.targets)
        self.config.write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  scrape_timeout: {interval}\n"  # at most the interval, or Prometheus refuses the config
            f"  evaluation_interval: {interval}\n"
            "scrape_configs:\n"
            f"  - job_name: {self.job}\n"
            "    static_configs:\n"
            f"      - targets: [{targets}]\n"
        )

    @property
    def running(self) -> bool:
        """Is the process running (started and not stopped)?"""
        return self._stack is not None

    def start(self, *, min_scrapes: int = 2, timeout: float = READY_TIMEOUT_S) -> float:
        """Start Prometheus (same port and TSDB as before, if it ran already) and wait until it is ready and has
        scraped every target successfully `min_scrapes` times since this start; return the seconds it took."""
        if self._stack is not None:
            return 0.0
        began = time.monotonic()
        command = [
            binary("prometheus"),
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.storage}",
            f"--storage.tsdb.retention.time={self.retention}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        stack = ExitStack()
        stack.enter_context(running(command, f"{self.url}/-/ready", self.log))
        self._stack = stack
        try:
            if self.targets and min_scrapes:
                self._wait_scraped(began, min_scrapes, max(0.0, timeout - (time.monotonic() - began)))
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        return self.started_in_s

    def wait_scraped(self, targets: Sequence[str], *, min_scrapes: int = 2, timeout: float = READY_TIMEOUT_S) -> float:
        """Wait until each of `targets` (some of this Prometheus's) was scraped successfully `min_scrapes` times
        from now on, e.g. after an exporter came back up; return the seconds it took."""
        began = time.monotonic()
        self._wait_scraped(began, min_scrapes, timeout, targets)
        return time.monotonic() - began

    def _wait_scraped(
        self, since: float, min_scrapes: int, timeout: float, targets: Sequence[str] | None = None
    ) -> None:
        """Wait until every target (or each of `targets`) was scraped successfully `min_scrapes` times after `since`
        (monotonic)."""
        wanted = list(self.targets if targets is None else targets)
        instances = "|".join(t.replace(".", "\\\\.") for t in wanted)
        since_wall = time.time() - (time.monotonic() - since)
        deadline = time.monotonic() + timeout
        while True:
            # The window holds only this run's samples: floor, never reaching back before the start.
            window = math.floor((time.time() - since_wall) * 1000)
            if window >= 1:
                selected = f'up{{job="{self.job}",instance=~"{instances}"}}[{window}ms]'
                scraped = f"count(sum_over_time({selected}) >= {min_scrapes})"
                try:
                    if (self.value(scraped) or 0) >= len(wanted):
                        return
                except (OSError, RuntimeError):
                    pass
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Prometheus did not scrape {wanted} {min_scrapes} times within {timeout:g}s:\n{self.tail()}"
                )
            time.sleep(POLL_S)

    def stop(self) -> None:
        """Stop the process (Prometheus down); `start()` brings it back with the same data."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    def close(self) -> None:
        """Stop; idempotent."""
        self.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def tail(self) -> str:
        """The end of the server log, for failure messages."""
        return self.log.read_text()[-3000:] if self.log.exists() else ""

    # --- queries (plain HTTP: the test bed does not lean on the code under test) -----------------------

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        """The result list of an instant query (vector results; a scalar comes back as one unlabelled item)."""
        params = {"query": promql}
        if at is not None:
            params["time"] = f"{at:.3f}"
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=QUERY_TIMEOUT_S) as response:
                data = json.load(response)
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"query {promql!r}: HTTP {exc.code}: {exc.read()[:300]!r}") from None
        result = data["data"]
        if result["resultType"] == "scalar":
            return [{"metric": {}, "value": result["result"]}]
        return list(result["result"])

    def value(self, promql: str, at: float | None = None) -> float | None:
        """The one value of an instant query, None when empty; more than one series is an error."""
        result = self.query(promql, at)
        if not result:
            return None
        if len(result) > 1:
            raise RuntimeError(f"query {promql!r} returned {len(result)} series, expected one")
        return float(result[0]["value"][1])

    def wait_until(
        self,
        promql: str,
        predicate: Callable[[float | None], bool],
        *,
        timeout: float,
        what: str = "",
    ) -> tuple[float | None, float]:
        """Poll `promql` until `predicate(value)` holds; return (value, seconds waited). TimeoutError otherwise,
        with the last value seen. A connection error while polling counts as "not yet"."""
        began = time.monotonic()
        deadline = began + max(0.0, timeout)
        last: object = "no answer"
        while True:
            try:
                value = self.value(promql)
            except (OSError, RuntimeError) as exc:
                last = exc
            else:
                last = value
                if predicate(value):
                    return value, time.monotonic() - began
            if time.monotonic() >= deadline:
                label = what or promql
                raise TimeoutError(f"{label}: not within {timeout:g}s (last: {last!r})")
            time.sleep(POLL_S)

    def targets_health(self) -> list[str]:
        """The health of each active target as Prometheus sees it (`up`, `down`, `unknown`)."""
        with urllib.request.urlopen(f"{self.url}/api/v1/targets?state=active", timeout=QUERY_TIMEOUT_S) as response:
            data = json.load(response)
        return [target["health"] for target in data["data"]["activeTargets"]]


@contextmanager
def live_prometheus(
    workdir: Path, targets: Sequence[str], *, scrape_interval_s: int = 1, min_scrapes: int = 2
) -> Iterator[LivePrometheus]:
    """A started LivePrometheus scraping `targets`, always stopped afterwards."""
    with LivePrometheus(workdir, targets, scrape_interval_s=scrape_interval_s) as prom:
        prom.start(min_scrapes=min_scrapes)
        yield prom


@contextmanager
def live_istio(
    workdir: Path,
    namespace: str = "live",
    *,
    ga: Traffic | None = None,
    canary: Traffic | None = None,
    scrape_interval_s: int = 1,
    **exporter_options: Any,
) -> Iterator[tuple[IstioExporter, LivePrometheus]]:
    """An IstioExporter for `namespace` (more IstioExporter arguments in `exporter_options`) and a Prometheus
    scraping it every `scrape_interval_s`, started and scraped twice; both stopped afterwards."""
    with (
        IstioExporter(namespace, ga=ga, canary=canary, **exporter_options) as exporter,
        live_prometheus(workdir, [exporter.target], scrape_interval_s=scrape_interval_s) as prom,
    ):
        yield exporter, prom
