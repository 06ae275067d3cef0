"""What the tests share with bench/ and scripts/: helpers, not tests (no pytest in here).

- servers.py: real Prometheus with generated Istio metrics, an OCI registry, HTTP stubs (integration tests,
  bench/bench_release.py)
- stackfiles.py: the commented test stack file (integration tests, bench/bench_release.py)
- mocks.py: Pulumi mocks (set on import) and run_program/config (tests/unit, bench/bench_program.py)
- manifests.py: the registered Kubernetes objects as manifests (tests/unit, scripts/dump_manifests.py)
- engine.py: the engine-test harness: toolchain lookup, a project copy driven through the real Pulumi CLI,
  reading objects back from the API server (tests/engine, bench/bench_engine.py)
- exporter.py, livemetrics.py: a live Istio metrics exporter and a real Prometheus scraping it every second
  (the agent's tests, bench/bench_agent.py)
- githost.py: a stand-in for GitHub's pull-request API that holds requests to GitHub's schema
- agentkit.py: a bare origin holding a stack, the agent as a process, the app's Kubernetes objects
- judgesim.py: whole canary releases simulated on Istio-shaped counts, judged by the real judges and decided by
  the agent's real decision (tests/unit/test_judgesim.py, bench/bench_judges.py, docs/judge.md's table)
"""
