"""The judges' simulation harness: whole canary releases on simulated Istio counts, judged by the agent's own code.

Pure and fast: no processes, no HTTP, no Prometheus. Each release draws its traffic from known distributions and
keeps it as Prometheus keeps Istio's metrics: cumulative counters per version (requests, 5xx, and the duration
histogram's buckets in istio's default bounds), so every window's counts are differences of counters. The walker
then does what the agent does every analysisInterval: read the verdict history back from those counters
(istio_canary/agent/history.py's reading: newest first, one interval apart, as deep as `history.depths` says),
build decide.State as istio_canary/agent/judge.py `_state()` does, and call `decide.decide`. PROPOSE moves to the
next step once the proposal is merged and applied; ROLLBACK ends the release; a release neither finished nor
rolled back by the horizon is blocked. Each past instant is judged by either judge as istio_canary/analysis.py
judges it: the threshold judge (analysis.judge) on that instant's one-interval slice, the statistical judge
(statistical.judge) on the step so far (looks.judged_window). bench/bench_judges.py reports the figures.

The model, and what it leaves out:
- Time runs in ticks of the greatest common divisor of the interval, the judged window and the apply delay
  (60 s by default). Looks, applies and window edges fall on ticks; the agent looks on the interval grid
  from the moment the first step went live (t = 0); the counters start at 0 then, so a window reaching
  back before t = 0 sees no traffic (the canary had none).
- Per tick and version: requests ~ Poisson(rate x share x tick), errors ~ Binomial(requests, error rate), the
  requests' latencies ~ lognormal, binned into the buckets by a multinomial -- drawn as one Poisson count per
  bucket, which is the same joint law (a Poisson number of multinomial draws splits into independent Poisson
  counts) at a fraction of the cost. Total traffic is constant: the canary's rate at the first step over that
  step's share. Counts are exact: Prometheus' `increase()` extrapolation, scrape timing and staleness are out
  (tests/integration covers those against a real Prometheus).
- Samplers are exact (no normal approximation): inversion for small means, Hormann's transformed rejection
  (BTRS for the binomial, PTRS for Poisson; Hormann 1993) from EXACT_BELOW up. A bucket whose probability is
  below NEGLIGIBLE is left empty.
- Git and the cluster never drift, no pull request is refused, and Prometheus always answers: only the judges'
  statistics are under test.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import accumulate
from operator import add, sub
from typing import Any, NamedTuple, Protocol

from istio_canary import analysis
from istio_canary.agent import history
from istio_canary.release import decide, looks, statistical, steps
from istio_canary.release.model import STATISTICAL_JUDGE, THRESHOLD_JUDGE, ReleaseSettings
from istio_canary.release.names import duration_seconds
from istio_canary.release.settings import parse
from istio_canary.release.verdict import Verdict

# Istio's default request-duration buckets (istio_request_duration_milliseconds_bucket's `le`), in ms.
BUCKETS_MS: tuple[float, ...] = (
    *(0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000),
    *(300000, 600000, 1800000, 3600000, math.inf),
)
EXACT_BELOW = 10.0  # a sampler's mean below which inversion (exact, O(mean)) beats transformed rejection
RARE_BELOW = 1.0  # a bucket expecting fewer requests a tick is drawn with the other rare ones at once
NEGLIGIBLE = 1e-9  # a bucket this unlikely per request is left empty: < 0.01 requests in a 3 h release at 1000 rps
GA, CANARY = "ga", "canary"
GA_VERSION, CANARY_VERSION = "6.14.0", "6.15.0"
FINISHED, ROLLED_BACK, BLOCKED = "finished", "rolled back", "blocked"
APPLY_DELAY_S = 120  # a proposal's review, merge and `pulumi up`
HORIZON_S = 3 * 3600  # a release not finished by then is blocked


# --- samplers ------------------------------------------------------------------------------------------------


def poisson(rng: random.Random, mean: float) -> int:
    """One Poisson(mean) draw: inversion below EXACT_BELOW, PTRS (Hormann 1993) above; both exact."""
    if mean < 0 or not math.isfinite(mean):
        raise ValueError(f"a Poisson mean must be finite and >= 0, not {mean!r}")
    if mean == 0:
        return 0
    if mean < EXACT_BELOW:
        while True:  # restarts only when rounding leaves u above the whole pmf (vanishingly rare)
            u, k, pk = rng.random(), 0, math.exp(-mean)
            while u > pk > 0:
                u -= pk
                k += 1
                pk *= mean / k
            if pk > 0:
                return k
    log_mean, a, b, log_inv_alpha, v_r = _ptrs(mean)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= v_r:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + log_inv_alpha - math.log(a / (us * us) + b) <= -mean + k * log_mean - math.lgamma(k + 1):
            return k


@lru_cache(maxsize=4096)
def _ptrs(mean: float) -> tuple[float, float, float, float, float]:
    """PTRS' constants for one mean (a release draws the same few means every tick)."""
    b = 0.931 + 2.53 * math.sqrt(mean)
    return math.log(mean), -0.059 + 0.02483 * b, b, math.log(1.1239 + 1.1328 / (b - 3.4)), 0.9277 - 3.6224 / (b - 2)


def binomial(rng: random.Random, n: int, p: float) -> int:
    """One Binomial(n, p) draw: inversion while n x min(p, 1-p) < EXACT_BELOW, BTRS (Hormann 1993) above; exact."""
    if n < 0 or not 0 <= p <= 1:
        raise ValueError(f"a binomial needs n >= 0 and 0 <= p <= 1, not n={n!r}, p={p!r}")
    if n == 0 or p == 0:
        return 0
    if p == 1:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1 - p)
    q = 1 - p
    if n * p < EXACT_BELOW:
        ratio, first = p / q, math.exp(n * math.log1p(-p))
        while True:
            u, k, pk = rng.random(), 0, first
            while u > pk and k < n:
                u -= pk
                k += 1
                pk *= (n - k + 1) / k * ratio
            if u <= pk:
                return k
    spq = math.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    log_odds = math.log(p / q)
    m = math.floor((n + 1) * p)
    h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        k = math.floor((2 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        if us >= 0.07 and v <= v_r:
            return k
        v = math.log(v * alpha / (a / (us * us) + b))
        if v <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * log_odds:
            return k


def lognormal_buckets(median_ms: float, sigma: float, bounds: Sequence[float] = BUCKETS_MS) -> tuple[float, ...]:
    """Each bucket's probability (not cumulative) for a lognormal latency; those under NEGLIGIBLE are 0."""
    if median_ms <= 0 or sigma <= 0:
        raise ValueError(f"a lognormal needs a median and a sigma > 0, not {median_ms!r}, {sigma!r}")
    below = [0.5 * math.erfc(-(math.log(le) - math.log(median_ms)) / (sigma * math.sqrt(2))) for le in bounds[:-1]]
    shares = [hi - lo for lo, hi in zip([0.0, *below], [*below, 1.0], strict=True)]
    return tuple(share if share >= NEGLIGIBLE else 0.0 for share in shares)


# --- Prometheus ---------------------------------------------------------------------------------------------


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' histogram_quantile over classic buckets (le, cumulative count; distinct bounds): linear
    interpolation inside the bucket holding rank q x observations (from 0 in the lowest bucket, or that bucket's
    bound when it is <= 0), the second-highest bound when the rank falls in the +Inf bucket, NaN without
    observations, without a +Inf bucket or with fewer than two buckets. Counts that decrease with `le` are
    raised to the largest below them, as Prometheus does."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = sorted(buckets)
    if len(ordered) < 2 or ordered[-1][0] != math.inf:
        return math.nan
    bounds, counts = zip(*ordered, strict=True)
    return _interpolated(q, bounds, list(accumulate(counts, max)))  # made monotone, as Prometheus does


def _interpolated(q: float, bounds: Sequence[float], counts: Sequence[float]) -> float:
    """histogram_quantile() for 0 <= q <= 1 over ascending bounds ending at +Inf and monotone counts."""
    observations = counts[-1]
    if observations <= 0:
        return math.nan
    rank = q * observations
    b = bisect_left(counts, rank, 0, len(counts) - 1)  # the first bucket reaching the rank; the last if none
    if b == len(counts) - 1:
        return bounds[-2]
    if b == 0 and bounds[0] <= 0:
        return bounds[0]
    start, below = (bounds[b - 1], counts[b - 1]) if b else (0.0, 0.0)
    inside = counts[b] - below
    return start + (bounds[b] - start) * (rank - below) / inside if inside else math.nan


# --- the traffic ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """One kind of canary against GA. `canary_rps`: the canary's requests per second at the first weight step
    (total traffic is that over the step's share, constant for the release)."""

    name: str
    canary_rps: float = 10.0
    ga_error_rate: float = 0.005
    canary_error_rate: float = 0.005
    median_ms: float = 60.0  # GA's latency median; the canary's is this x canary_latency_factor
    sigma: float = 0.6  # of log latency, both versions
    canary_latency_factor: float = 1.0

    def __post_init__(self) -> None:
        if not (self.canary_rps > 0 and self.median_ms > 0 and self.sigma > 0 and self.canary_latency_factor > 0):
            raise ValueError(f"scenario {self.name}: rates, median, sigma and latency factor must be > 0")
        if not (0 <= self.ga_error_rate <= 1 and 0 <= self.canary_error_rate <= 1):
            raise ValueError(f"scenario {self.name}: error rates are proportions in [0, 1]")

    @property
    def bad(self) -> bool:
        """Is the canary worse than GA (should the release be rolled back)?"""
        return self.canary_error_rate > self.ga_error_rate or self.canary_latency_factor > 1

    def at(self, canary_rps: float) -> Scenario:
        return replace(self, canary_rps=canary_rps)


def scenarios() -> tuple[Scenario, ...]:
    """The issue's scenarios (at the default 10 rps; `.at(rps)` for another level)."""
    return (
        Scenario("A/A"),
        Scenario("A/A, GA 0.1 %", ga_error_rate=0.001, canary_error_rate=0.001),
        Scenario("A/A, GA 1.2 %", ga_error_rate=0.012, canary_error_rate=0.012),
        Scenario("2x errors", canary_error_rate=0.01),
        Scenario("+30 % latency", canary_latency_factor=1.3),
        Scenario("+100 % latency", canary_latency_factor=2.0),
        Scenario("errors on 5 % of requests", canary_error_rate=0.005 + 0.05),
    )


class Counts(NamedTuple):
    """One version's counts in a window: requests, 5xx, and the duration histogram's count per bucket of
    BUCKETS_MS, cumulative in `le` as Prometheus exposes them."""

    requests: int
    errors: int
    cumulative: tuple[int, ...]

    @property
    def buckets(self) -> tuple[tuple[float, int], ...]:
        """The histogram as (le ms, cumulative count) pairs, ascending, the last le +Inf."""
        return tuple(zip(BUCKETS_MS, self.cumulative, strict=True))


class _Draws(NamedTuple):
    """One tick's draws for one version at one weight: a Poisson per common bucket (index, mean), and one for
    the rare buckets together (each expecting fewer than RARE_BELOW), split by inversion over `rare_edges`."""

    common: tuple[tuple[int, float], ...]
    rare: tuple[int, ...]
    rare_edges: tuple[float, ...]
    rare_mean: float


class Traffic:
    """Both versions' cumulative counters at every tick of one release, drawn tick by tick as the release goes.
    Counters are 0 at t = 0 (the first step goes live) and before."""

    def __init__(self, scenario: Scenario, first_weight: int, tick_s: int, rng: random.Random) -> None:
        if not 0 < first_weight <= 100 or tick_s <= 0:
            raise ValueError(f"traffic needs a first weight in 1..100 and a tick > 0, not {first_weight}, {tick_s}")
        self.tick_s = tick_s
        self.rng = rng
        self.total_rps = scenario.canary_rps * 100 / first_weight
        self._error_rate = {GA: scenario.ga_error_rate, CANARY: scenario.canary_error_rate}
        canary_median = scenario.median_ms * scenario.canary_latency_factor
        self._latency = {
            GA: lognormal_buckets(scenario.median_ms, scenario.sigma),
            CANARY: lognormal_buckets(canary_median, scenario.sigma),
        }
        # Per version, one row per tick: the counters' values then, [requests, errors, bucket 1, ..., +Inf]
        # (buckets cumulative in `le` as Prometheus exposes them).
        self._plans: dict[tuple[str, int], _Draws] = {}
        self._rows: dict[str, list[list[int]]] = {version: [[0] * (2 + len(BUCKETS_MS))] for version in (GA, CANARY)}

    @property
    def now(self) -> int:
        """The time (s since the first step went live) up to which traffic has been drawn."""
        return (len(self._rows[GA]) - 1) * self.tick_s

    def advance(self, canary_weight: int) -> None:
        """Draw one more tick of traffic with `canary_weight` % of it going to the canary."""
        for version, share in ((GA, 100 - canary_weight), (CANARY, canary_weight)):
            rows = self._rows[version]
            # Poisson requests spread over the buckets by a multinomial are independent Poisson counts per
            # bucket (the splitting property): the same law, drawn with one cheap draw per bucket, and one draw
            # for all the rare buckets together (a sum of Poissons), split among them only when not 0.
            common, rare, rare_edges, rare_mean = self._plan(version, share)
            served = [0] * len(BUCKETS_MS)
            for i, mean in common:
                served[i] = poisson(self.rng, mean)
            for _ in range(poisson(self.rng, rare_mean) if rare_mean else 0):
                served[rare[bisect_right(rare_edges, self.rng.random())]] += 1
            requests = sum(served)
            if not requests:
                rows.append(rows[-1])
                continue
            errors = binomial(self.rng, requests, self._error_rate[version])
            rows.append(list(map(add, rows[-1], (requests, errors, *accumulate(served)))))

    def _plan(self, version: str, share: int) -> _Draws:
        """How to draw `version`'s buckets for a tick at `share` % of the traffic (worked out once per step)."""
        key = (version, share)
        if key not in self._plans:
            expected = self.total_rps * share / 100 * self.tick_s
            means = [(i, expected * p) for i, p in enumerate(self._latency[version]) if expected * p > 0]
            rare = [(i, mean) for i, mean in means if mean < RARE_BELOW]
            rare_mean = sum(mean for _, mean in rare)
            edges = [*accumulate(mean / rare_mean for _, mean in rare[:-1]), 1.0] if rare else []
            common = tuple((i, mean) for i, mean in means if mean >= RARE_BELOW)
            self._plans[key] = _Draws(common, tuple(i for i, _ in rare), tuple(edges), rare_mean)
        return self._plans[key]

    def window(self, version: str, start: float, end: float) -> Counts:
        """`version`'s counts in (start, end]: the counters at `end` minus those at `start` (0 before t = 0)."""
        rows = self._rows[version]
        first, last = self._tick(max(0.0, start)), self._tick(max(0.0, end))
        if last >= len(rows):
            raise ValueError(f"no traffic drawn up to t={end:g} s yet (drawn up to {self.now} s)")
        requests, errors, *buckets = map(sub, rows[last], rows[min(first, last)])
        return Counts(requests, errors, tuple(buckets))

    def _tick(self, at: float) -> int:
        tick, rest = divmod(at, self.tick_s)
        if rest:
            raise ValueError(f"t={at:g} s is not on the traffic's {self.tick_s} s ticks")
        return int(tick)


# --- the judges -----------------------------------------------------------------------------------------------


class Judged(NamedTuple):
    """A verdict and the canary requests it was based on."""

    verdict: Verdict
    canary_requests: int


class Judge(Protocol):
    """What the walker asks at one history instant. `window_s`: how much traffic decide.State says each
    analysis judged (its `window_s`, which decides which instants count as live)."""

    name: str
    window_s: int

    def verdict(self, traffic: Traffic, at: int, seconds_live: int, weight: int) -> Judged: ...


class ThresholdJudge:
    """Today's judge: analysis.judge() on each instant's window min(analysisWindow, analysisInterval), with the
    values the stack's built-in checks' queries would return (requests, success_rate, p99_ms)."""

    name = THRESHOLD_JUDGE

    def __init__(self, release: ReleaseSettings) -> None:
        if release.judge != THRESHOLD_JUDGE:
            raise ValueError(f"the threshold judge needs analysisJudge: {THRESHOLD_JUDGE}, not {release.judge}")
        builtin = {"requests", "success_rate", "p99_ms"}
        if {check.name for check in release.checks} != builtin:
            raise ValueError(f"the simulation answers only the built-in checks {sorted(builtin)}")
        self.checks = release.checks
        self.window_s = duration_seconds(history.window(release))

    def verdict(self, traffic: Traffic, at: int, seconds_live: int, weight: int) -> Judged:
        canary = traffic.window(CANARY, at - self.window_s, at)
        ga = traffic.window(GA, at - self.window_s, at)
        verdict, _ = analysis.judge(self.checks, measurement(CANARY, canary), measurement(GA, ga))
        return Judged(verdict, canary.requests)


def measurement(version: str, counts: Counts) -> analysis.Measurement:
    """What the built-in checks' queries answer over the window (analysis.measure's reading: no traffic gives
    0 requests and no ratio or quantile)."""
    served = counts.requests
    p99 = _interpolated(0.99, BUCKETS_MS, counts.cumulative)  # Counts are ordered and monotone already
    return analysis.Measurement(
        workload=version,
        values={
            "requests": float(served),
            "success_rate": 100 * (1 - counts.errors / served) if served else None,
            "p99_ms": None if math.isnan(p99) else p99,
        },
    )


class StatisticalJudge:
    """The statistical judge (istio_canary/release/statistical.py) on the step so far, as the agent asks it
    (istio_canary/analysis.py): the instant at `seconds_live` judges looks.judged_window()'s window ending there
    with that look's number, INCONCLUSIVE before the step has been live one interval."""

    name = STATISTICAL_JUDGE

    def __init__(self, release: ReleaseSettings) -> None:
        if release.judge != STATISTICAL_JUDGE:
            raise ValueError(f"the statistical judge needs analysisJudge: {STATISTICAL_JUDGE}, not {release.judge}")
        self.release = release
        self.window_s = duration_seconds(history.window(release))

    def verdict(self, traffic: Traffic, at: int, seconds_live: int, weight: int) -> Judged:
        window = looks.judged_window(self.release, seconds_live)
        if window is None:
            return Judged(Verdict.INCONCLUSIVE, 0)
        canary = traffic.window(CANARY, at - window.seconds, at)
        ga = traffic.window(GA, at - window.seconds, at)
        before = None
        if ga.requests <= 0:  # the canary at 100 %: GA's own traffic just before the step, as analysis.py asks
            earlier = traffic.window(GA, at - 2 * window.seconds, at - window.seconds)
            before = statistical.Counts(earlier.requests, earlier.errors, earlier.buckets)
        judgement = statistical.judge(
            statistical.Counts(canary.requests, canary.errors, canary.buckets),
            statistical.Counts(ga.requests, ga.errors, ga.buckets),
            self.release.statistical,
            look=window.look,
            weight=weight,
            ga_before=before,
        )
        return Judged(judgement.verdict, canary.requests)


def release_settings(judge: str = THRESHOLD_JUDGE, **config: str) -> ReleaseSettings:
    """The documented defaults (Pulumi.yaml) for a release of CANARY_VERSION over GA_VERSION, with `config` on
    top (raw keys, e.g. analysisThreshold="4"); `judge` other than threshold sets analysisJudge."""
    raw = {"gaVersion": GA_VERSION, "canaryVersion": CANARY_VERSION, **config}
    if judge != THRESHOLD_JUDGE:
        raw["analysisJudge"] = judge
    return parse(raw, check_environment=False).release


def make_judge(name: str, release: ReleaseSettings) -> Judge:
    """The judge called `name` (analysisJudge's values) for `release`."""
    judges: dict[str, Callable[[ReleaseSettings], Judge]] = {
        THRESHOLD_JUDGE: ThresholdJudge,
        STATISTICAL_JUDGE: StatisticalJudge,
    }
    if name not in judges:
        raise ValueError(f"no judge {name!r}: {' or '.join(judges)}")
    return judges[name](release)


# --- the release walker -------------------------------------------------------------------------------------


def read_history(
    verdict_at: Callable[[float], str], now: float, interval_s: float, depths: Mapping[str, int]
) -> tuple[str, ...]:
    """history.history()'s reading over any source of verdicts: newest first, while they continue the newest
    one's run (history.RUNS), at most `depths[newest]` of them."""
    first = verdict_at(now)
    run = next((kinds for kinds in history.RUNS if first in kinds), (first,))
    found = [first]
    for k in range(1, depths.get(first, 1)):
        found.append(verdict_at(now - k * interval_s))
        if found[-1] not in run:
            break
    return tuple(found)


@dataclass(frozen=True)
class Release:
    """How one release ended: FINISHED, ROLLED_BACK or BLOCKED, when (s from the first step live; the horizon
    for a blocked one), at which weight, after how many looks, and the fewest canary requests any PASS that
    moved a step judged (None: no step moved)."""

    outcome: str
    seconds: int
    weight: int
    looks: int
    fewest_pass_requests: int | None


def walk(
    scenario: Scenario,
    judge: Judge,
    release: ReleaseSettings,
    rng: random.Random,
    *,
    apply_delay_s: int = APPLY_DELAY_S,
    horizon_s: int = HORIZON_S,
) -> Release:
    """One whole release from its first step going live at t = 0, the agent looking every interval."""
    agent = _Agent.of(release, judge)
    interval_s = release.interval_s
    tick_s = math.gcd(interval_s, judge.window_s, apply_delay_s)
    weight, live_since = release.steps[0], 0
    pending: tuple[int, int] | None = None  # a proposal: (its weight, when it is applied)
    traffic = Traffic(scenario, weight, tick_s, rng)
    judged: dict[tuple[float, int], Judged] = {}
    fewest: int | None = None
    looks = 0

    def at(instant: float) -> Judged:
        key = (instant, live_since)
        if key not in judged:
            judged[key] = judge.verdict(traffic, int(instant), int(instant) - live_since, weight)
        return judged[key]

    for now in range(0, horizon_s + 1, tick_s):
        if pending and pending[1] <= now:
            (weight, _), live_since, pending = pending, now, None
        if now and now % interval_s == 0:
            looks += 1
            state = _state(agent, release, weight, now - live_since, now, pending is not None, at)
            decision = decide.decide(state)
            if decision.action == decide.ROLLBACK:
                return Release(ROLLED_BACK, now, weight, looks, fewest)
            if decision.action == decide.PROPOSE:
                behind = min(at(now - k * interval_s).canary_requests for k in range(release.iterations))
                fewest = behind if fewest is None else min(fewest, behind)
                if decide.plan(state).action == steps.FINISH:
                    return Release(FINISHED, now, weight, looks, fewest)
                assert decision.to is not None, decision  # a promotion always names its weight
                pending = (decision.to, now + apply_delay_s)
        traffic.advance(weight)
    return Release(BLOCKED, horizon_s, weight, looks, fewest)


@dataclass(frozen=True)
class _Agent:
    """What every look's decide.State shares: the release's rules as the agent reads them
    (decide.release_rules), converted once per walk."""

    rules: dict[str, Any]
    interval_s: int
    window_s: int
    lives: dict[int, decide.Live]  # the cluster at each weight: the weight Git holds, both versions rolled out

    @classmethod
    def of(cls, release: ReleaseSettings, judge: Judge) -> _Agent:
        lives = {weight: decide.Live(weight, GA_VERSION, True, CANARY_VERSION) for weight in release.steps}
        return cls(decide.release_rules(release), release.interval_s, judge.window_s, lives)


def _state(
    agent: _Agent,
    release: ReleaseSettings,
    weight: int,
    seconds_live: int,
    now: int,
    proposal_open: bool,
    at: Callable[[float], Judged],
) -> decide.State:
    """decide.State as istio_canary/agent/judge.py `_state()` builds it, Git and the cluster agreeing: the verdict
    history read back as the agent reads it (history.depths from the instants judged live)."""
    interval_s = agent.interval_s
    depths = history.depths(release, decide.live_instants(seconds_live, interval_s, agent.window_s))
    return decide.State(
        weight=weight,
        shape="",
        ga_version=GA_VERSION,
        canary_version=CANARY_VERSION,
        rolled_back=False,
        live=agent.lives[weight],
        history=read_history(lambda instant: at(instant).verdict, now, interval_s, depths),
        seconds_since_step=seconds_live,
        proposal_open=proposal_open,
        seconds_live=seconds_live,
        window_s=agent.window_s,
        **agent.rules,
    )


# --- the report ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """What `releases` releases of one scenario at one traffic level did under one judge (shares in [0, 1],
    times in seconds; None where no release ended that way)."""

    scenario: str
    canary_rps: float
    judge: str
    releases: int
    rolled_back: float
    blocked: float
    finished: float
    rolled_back_in_10m: float
    rollback_p50_s: float | None
    rollback_p95_s: float | None
    finish_p50_s: float | None
    fewest_pass_requests: int | None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank q-quantile (0 < q <= 1) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarize(scenario: Scenario, judge: str, outcomes: Sequence[Release]) -> Cell:
    if not outcomes:
        raise ValueError("a cell needs at least one release")
    n = len(outcomes)
    rollbacks = [r.seconds for r in outcomes if r.outcome == ROLLED_BACK]
    finishes = [r.seconds for r in outcomes if r.outcome == FINISHED]
    behind = [r.fewest_pass_requests for r in outcomes if r.fewest_pass_requests is not None]
    return Cell(
        scenario=scenario.name,
        canary_rps=scenario.canary_rps,
        judge=judge,
        releases=n,
        rolled_back=len(rollbacks) / n,
        blocked=sum(r.outcome == BLOCKED for r in outcomes) / n,
        finished=len(finishes) / n,
        rolled_back_in_10m=sum(s <= 600 for s in rollbacks) / n,
        rollback_p50_s=percentile(rollbacks, 0.5),
        rollback_p95_s=percentile(rollbacks, 0.95),
        finish_p50_s=percentile(finishes, 0.5),
        fewest_pass_requests=min(behind) if behind else None,
    )


def release_rng(seed: int, scenario: Scenario, index: int) -> random.Random:
    """Release `index`'s own stream: the same for every judge (so the judges meet the same traffic until their
    decisions part) and independent of how cells are spread over processes."""
    return random.Random(f"{seed}/{scenario.name}/{scenario.canary_rps:g}/{index}")


def run_cell(scenario: Scenario, judge: Judge, release: ReleaseSettings, releases: int, seed: int) -> Cell:
    outcomes = [walk(scenario, judge, release, release_rng(seed, scenario, i)) for i in range(releases)]
    return summarize(scenario, judge.name, outcomes)
