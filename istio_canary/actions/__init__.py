"""The actions a person (through the `canary` CLI) or the release agent takes on a stack: analyze, promote, roll
back, watch images. Each is a function of typed options that returns a typed result and raises an ActionError
(istio_canary/actions/errors.py) carrying its exit code; none parses arguments or prints JSON (the CLI does)."""
