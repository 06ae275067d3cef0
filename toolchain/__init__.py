"""istio-canary's toolchain: Go-module builds of the engine-test binaries (build.sh) and a local control plane."""
