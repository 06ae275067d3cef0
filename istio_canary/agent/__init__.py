"""`canary agent`: the release agent. decide.py is the pure decision; the rest is its I/O."""
