"""istio-canary: GKE + Istio + podinfo GA/canary, with the traffic split as stack config."""

from stacks import settings, wiring

wiring.export(wiring.build(settings.load()))
