"""The `canary` release tool: every traffic step of a canary release is a reviewed Git commit."""
