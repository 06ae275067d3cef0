"""istio-canary: GKE + Istio + podinfo GA/canary, with the traffic split as stack config."""

from stacks import release, settings

release.export(release.build(settings.load()))
