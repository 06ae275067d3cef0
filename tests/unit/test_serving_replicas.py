"""The pods a rollback must leave GA able to run alone, read from the Deployments the stack runs: GA and the canary,
and the baseline when the stack has one (it served min(w, 100 - w) of the traffic, which GA takes on too)."""

from __future__ import annotations

import pytest
from kubernetes import config

from istio_canary.agent import live
from testkit import servers
from tests.integration.test_agent_live_since import NAMESPACE, Cluster, kubeconfig, rolled_out

PODS = {"podinfo-ga": 3, "podinfo-baseline": 2, "podinfo-canary": 2}


@pytest.mark.parametrize(("baseline", "expected"), [(False, 5), (True, 7)])
def test_the_serving_pods_include_the_baseline_when_the_stack_runs_one(tmp_path, baseline, expected):
    cluster = Cluster()
    for name, pods in PODS.items():
        obj = rolled_out(name, "6.8.0")
        obj["spec"]["replicas"] = obj["status"]["replicas"] = pods
        cluster.put(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}", obj)
    with servers.stub(cluster.answer) as (url, _requests):
        api = config.new_client_from_config(config_file=str(kubeconfig(tmp_path / "kubeconfig", url)))
        assert live.serving_replicas(api, NAMESPACE, "podinfo", baseline=baseline) == expected


def test_a_baseline_not_found_counts_what_is_there(tmp_path):
    """Before the baseline Deployment exists (the first `up` with the key), GA's and the canary's pods count."""
    cluster = Cluster()
    for name in ("podinfo-ga", "podinfo-canary"):
        cluster.put(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}", rolled_out(name, "6.8.0"))
    with servers.stub(cluster.answer) as (url, _requests):
        api = config.new_client_from_config(config_file=str(kubeconfig(tmp_path / "kubeconfig", url)))
        assert live.serving_replicas(api, NAMESPACE, "podinfo", baseline=True) == 4
