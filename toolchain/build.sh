#!/usr/bin/env bash
# Build (or reuse) the engine-test toolchain from Go modules:
#   pulumi, pulumi-language-python (+ pulumi-language-python-exec),
#   pulumi-resource-kubernetes, kube-apiserver, etcd.
#
# Binaries go to a cache OUTSIDE the repo, one directory per <name>-<version>:
#   ${ISTIO_CANARY_TOOLCHAIN:-$HOME/.cache/istio-canary/toolchain}/<name>-<version>/
# A directory is reused when its .stamp matches the wrapper module's inputs
# (go.mod, go.sum, *.go, flags), so a warm run takes seconds.
# At the end <cache>/env.sh is written; `. <cache>/env.sh` puts everything on PATH.
#
# Usage: toolchain/build.sh [name...]     (default: all five)
# Env:   ISTIO_CANARY_TOOLCHAIN  cache root
#        TOOLCHAIN_JOBS          go build -p (default 2)
#        TOOLCHAIN_USE_PATH_PULUMI=0  always build pulumi even if a compatible one is on PATH
#        TOOLCHAIN_PROGRESS_EVERY  seconds between progress lines of a build (default 30)
#
# A build says which step it is ([2/5] kube-apiserver), what a cold build of it took on the reference machine
# (COLD_S below), and every TOOLCHAIN_PROGRESS_EVERY seconds how far it is: packages compiled so far
# (`go build -v` prints each one it compiles) out of those the build cache lacks (`go list -deps`, .Stale).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="${ISTIO_CANARY_TOOLCHAIN:-$HOME/.cache/istio-canary/toolchain}"
JOBS="${TOOLCHAIN_JOBS:-2}"
# Oldest CLI we accept from PATH: the Python SDK pinned in requirements.txt.
MIN_PULUMI="3.272.0"

export GOTOOLCHAIN=local           # every wrapper module says go <= 1.26.x
export CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"

PROGRESS_EVERY="${TOOLCHAIN_PROGRESS_EVERY:-30}"
# Seconds a fully cold build of each binary took on the 2-core reference machine: the "fully cold" column of
# the Measured times table in toolchain/README.md (tests/engine/test_toolchain_build.py keeps them equal).
declare -A COLD_S=([etcd]=59 [kube-apiserver]=327 [pulumi]=253 [pulumi-language-python]=17 [pulumi-resource-kubernetes]=583)
COLD_TOTAL_S=1239  # all five in sequence: 20 min 39 s

log() { printf '[toolchain %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# dur SECONDS: 75 -> 1m15s, 9 -> 9s
dur() { if [ "$1" -ge 60 ]; then printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); else printf '%ds' "$1"; fi; }
BUILD_PID=""  # a running `go build`: stopped with us, also on Ctrl-C or SIGTERM
trap '[ -z "$BUILD_PID" ] || kill "$BUILD_PID" 2>/dev/null || true' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v go >/dev/null || die "go not found on PATH (need Go >= 1.26)"
mkdir -p "$CACHE"
# One build at a time per cache (e.g. two `make test` at once); the second then finds everything fresh.
if command -v flock >/dev/null; then
    exec 9>"$CACHE/.lock"
    flock -n 9 || { log "another toolchain build holds $CACHE/.lock; waiting for it"; flock 9; }
fi

# modver <wrapper-dir> <module-path>: the version that wrapper's go.mod pins.
modver() {
    awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$HERE/$1/go.mod"
}

# stamp <wrapper-dir> <extra...>: hash of everything that determines the output.
stamp() {
    local dir="$HERE/$1"; shift
    { go env GOVERSION GOOS GOARCH; printf '%s\n' "$@"; cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go 2>/dev/null; } | sha256sum | cut -c1-16
}

# fresh <outdir> <stamp>: is a finished build with this stamp present?
fresh() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }

# progress <binary> <build log> <packages to compile> <start time>: one line saying how far the build is.
progress() {
    local bin="$1" blog="$2" total="$3" t0="$4" n pct
    # `go build -v` prints each package it compiles, one import path a line; errors have spaces or a '#'.
    n=$(grep -c -E '^[^[:space:]#]+$' "$blog" 2>/dev/null || true)
    [ "$total" -gt 0 ] && [ "$n" -gt "$total" ] && n="$total"
    pct=$(( total > 0 ? 100 * n / total : 100 ))
    log "$STEP $bin: $n/$total packages compiled ($pct%), $(dur $(( $(date +%s) - t0 ))) so far; a cold build took $(dur "${COLD_S[$bin]:-0}") on the reference machine"
}

COLD_NOTICE=""
# gobuild <wrapper-dir> <outdir> <binary> <package> <ldflags> <stamp>: build into <outdir>.tmp, then swap in.
gobuild() {
    local wdir="$1" out="$2" bin="$3" pkg="$4" ld="$5" st="$6" t0 total blog last now
    if [ -z "$COLD_NOTICE" ]; then
        COLD_NOTICE=1
        log "building from Go modules: a first build of all five takes ~$(dur "$COLD_TOTAL_S") on 2 cores and ~12 GB of Go caches (toolchain/README.md); progress every ${PROGRESS_EVERY}s"
    fi
    rm -rf "$out.tmp"; mkdir -p "$out.tmp"
    t0=$(date +%s)
    log "$STEP $bin: listing packages (go list -deps; on a machine without the modules it downloads them first)"
    total=$(cd "$wdir" && go list -deps -f '{{if .Stale}}{{.ImportPath}}{{end}}' "$pkg" | grep -c . || true)
    log "$STEP building $bin -> $out: $total packages to compile (go build -p $JOBS; a cold build took $(dur "${COLD_S[$bin]:-0}") on the reference machine)"
    blog="$out.tmp/go-build.log"
    (cd "$wdir" && exec go build -v -p "$JOBS" -ldflags "-s -w $ld" -o "$out.tmp/$bin" "$pkg") 2>"$blog" &
    BUILD_PID=$!
    last=$t0
    while kill -0 "$BUILD_PID" 2>/dev/null; do
        sleep 1
        now=$(date +%s)
        if [ $(( now - last )) -ge "$PROGRESS_EVERY" ]; then last=$now; progress "$bin" "$blog" "$total" "$t0"; fi
    done
    if ! wait "$BUILD_PID"; then
        BUILD_PID=""
        grep -v -E '^[^[:space:]#]+$' "$blog" | tail -n 40 >&2 || true
        die "go build of $bin failed (whole log: $blog)"
    fi
    BUILD_PID=""
    rm -f "$blog"
    echo "$st" > "$out.tmp/.stamp"
    rm -rf "$out"; mv "$out.tmp" "$out"
    log "$STEP built $bin in $(dur $(( $(date +%s) - t0 )))"
}

PATH_DIRS=()

# --- etcd ---------------------------------------------------------------------
build_etcd() {
    local v out st
    v="$(modver etcd go.etcd.io/etcd/server/v3)"
    out="$CACHE/etcd-$v"; st="$(stamp etcd "$v")"
    if fresh "$out" "$st"; then log "etcd $v: cached ($out)"; elif [ -n "$CHECK_ONLY" ]; then return 0; else
        gobuild "$HERE/etcd" "$out" etcd . "" "$st"
    fi
    PATH_DIRS+=("$out"); ETCD_BIN="$out/etcd"
}

# --- kube-apiserver -------------------------------------------------------------
build_kube_apiserver() {
    local v out st ld="" minor p
    v="$(modver kube-apiserver k8s.io/kubernetes)"
    minor="${v#v1.}"; minor="${minor%%.*}"
    # Without these the server reports v0.0.0 and clients (pulumi-kubernetes) refuse it.
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
        ld+=" -X $p.gitCommit=0000000000000000000000000000000000000000 -X $p.buildDate=1970-01-01T00:00:00Z"
    done
    out="$CACHE/kube-apiserver-$v"; st="$(stamp kube-apiserver "$v" "$ld")"
    if fresh "$out" "$st"; then log "kube-apiserver $v: cached ($out)"; elif [ -n "$CHECK_ONLY" ]; then return 0; else
        gobuild "$HERE/kube-apiserver" "$out" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$ld" "$st"
    fi
    PATH_DIRS+=("$out"); KUBE_APISERVER_BIN="$out/kube-apiserver"
}

# --- pulumi CLI -----------------------------------------------------------------
# verge A B: is semver A >= B?
verge() { [ "$(printf '%s\n%s\n' "${1#v}" "${2#v}" | sort -V | head -n1)" = "${2#v}" ]; }

PULUMI_FROM_PATH=""
build_pulumi() {
    local v out st have
    v="$(modver pulumi github.com/pulumi/pulumi/pkg/v3)"
    out="$CACHE/pulumi-$v"
    if [ "${TOOLCHAIN_USE_PATH_PULUMI:-1}" = 1 ] && command -v pulumi >/dev/null \
        && [[ "$(command -v pulumi)" != "$CACHE"/* ]]; then
        have="$(pulumi version 2>/dev/null || true)"
        if [ -n "$have" ] && verge "$have" "$MIN_PULUMI" && command -v pulumi-language-python >/dev/null; then
            log "pulumi: using installed $(command -v pulumi) ($have >= $MIN_PULUMI, language host on PATH)"
            PULUMI_FROM_PATH=1
            return
        fi
        log "pulumi on PATH ($have) is older than $MIN_PULUMI or lacks pulumi-language-python: building $v"
    fi
    st="$(stamp pulumi "$v")"
    if fresh "$out" "$st"; then log "pulumi $v: cached ($out)"; elif [ -n "$CHECK_ONLY" ]; then return 0; else
        gobuild "$HERE/pulumi" "$out" pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
            "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" "$st"
    fi
    PATH_DIRS+=("$out")
}

# --- Python language host ---------------------------------------------------------
build_language_python() {
    [ -n "$PULUMI_FROM_PATH" ] && { log "pulumi-language-python: using installed $(command -v pulumi-language-python)"; return; }
    local v out st sdkdir
    v="$(modver pulumi-language-python github.com/pulumi/pulumi/sdk/v3)"
    out="$CACHE/pulumi-language-python-$v"; st="$(stamp pulumi-language-python "$v")"
    if fresh "$out" "$st"; then log "pulumi-language-python $v: cached ($out)"; elif [ -n "$CHECK_ONLY" ]; then return 0; else
        gobuild "$HERE/pulumi-language-python" "$out" pulumi-language-python . \
            "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$v" "$st"
        # The exec shim ships in the sdk/v3 module zip (python/cmd/); it must sit next to the host.
        sdkdir="$(cd "$HERE/pulumi-language-python" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
        [ -n "$sdkdir" ] || (cd "$HERE/pulumi-language-python" && go mod download github.com/pulumi/pulumi/sdk/v3)
        sdkdir="$(cd "$HERE/pulumi-language-python" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
        install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
    fi
    PATH_DIRS+=("$out")
    # The engine treats language hosts as "bundled" plugins: one found on PATH but not next to the
    # `pulumi` binary draws a warning on every run. Link it next to our pulumi (the host finds the
    # exec shim next to its resolved executable).
    local pdir="$CACHE/pulumi-$v"
    if [ -x "$pdir/pulumi" ]; then
        ln -sfn "$out/pulumi-language-python" "$pdir/pulumi-language-python"
        ln -sfn "$out/pulumi-language-python-exec" "$pdir/pulumi-language-python-exec"
    fi
}

# --- pulumi-kubernetes provider --------------------------------------------------
build_provider() {
    local v pv out st scratch mdir
    pv="$(modver pulumi-resource-kubernetes github.com/pulumi/pulumi-kubernetes/provider/v4)"
    v="$(cat "$HERE/pulumi-resource-kubernetes/VERSION")"     # release the pinned commit belongs to
    out="$CACHE/pulumi-resource-kubernetes-v$v"; st="$(stamp pulumi-resource-kubernetes "$v" "$pv")"
    if grep -Eq '^pulumi-kubernetes==' "$REPO/requirements.txt" 2>/dev/null \
        && ! grep -Eq "^pulumi-kubernetes==$v\$" "$REPO/requirements.txt"; then
        log "WARNING: requirements.txt pins $(grep -E '^pulumi-kubernetes==' "$REPO/requirements.txt") but the provider built here is $v"
    fi
    if fresh "$out" "$st"; then log "pulumi-resource-kubernetes $v: cached ($out)"; elif [ -n "$CHECK_ONLY" ]; then return 0; else
        # Generate the two embedded files (not in the module zip) in a scratch copy of the wrapper.
        scratch="$(mktemp -d "${TMPDIR:-/tmp}/istio-canary-provider.XXXXXX")"
        cp "$HERE/pulumi-resource-kubernetes"/go.mod "$HERE/pulumi-resource-kubernetes"/go.sum \
           "$HERE/pulumi-resource-kubernetes"/*.go "$scratch/"
        (cd "$scratch" && go mod download github.com/pulumi/pulumi-kubernetes/provider/v4)
        mdir="$(cd "$scratch" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)"
        log "generating schema-embed.json (version $v) and terraform-mapping-embed.json from $mdir"
        python3 "$HERE/gen_provider_embeds.py" "$mdir/cmd/pulumi-resource-kubernetes" "$scratch" "$v"
        gobuild "$scratch" "$out" pulumi-resource-kubernetes . \
            "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$v" "$st"
        rm -rf "$scratch"
    fi
    PATH_DIRS+=("$out")
}

ALL=(etcd kube-apiserver pulumi pulumi-language-python pulumi-resource-kubernetes)
WANT=("$@"); [ ${#WANT[@]} -eq 0 ] && WANT=("${ALL[@]}")
T0=$(date +%s)
run_one() {
    case "$1" in
        etcd) build_etcd ;;
        kube-apiserver) build_kube_apiserver ;;
        pulumi) build_pulumi ;;
        pulumi-language-python) build_language_python ;;
        pulumi-resource-kubernetes) build_provider ;;
        *) die "unknown binary '$1' (known: ${ALL[*]})" ;;
    esac
}
CHECK_ONLY=""
STEP=""
i=0
for n in "${WANT[@]}"; do i=$((i + 1)); STEP="[$i/${#WANT[@]}]"; run_one "$n"; done
STEP=""
# env.sh lists every up-to-date binary, also those not asked for in this run.
CHECK_ONLY=1
for n in "${ALL[@]}"; do
    case " ${WANT[*]} " in *" $n "*) ;; *) run_one "$n" ;; esac
done

ENV_DIRS=()
for n in pulumi pulumi-language-python pulumi-resource-kubernetes kube-apiserver etcd; do
    for d in "${PATH_DIRS[@]}"; do case "$d" in "$CACHE/$n-"v*) ENV_DIRS+=("$d");; esac; done
done
{
    echo "# Generated by toolchain/build.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ). Source me: . $CACHE/env.sh"
    p=""; for d in "${ENV_DIRS[@]}"; do p+="$d:"; done
    echo "export PATH=\"$p\$PATH\""
    echo "export ISTIO_CANARY_TOOLCHAIN=\"$CACHE\""
    [ -n "${KUBE_APISERVER_BIN:-}" ] && echo "export ISTIO_CANARY_KUBE_APISERVER=\"$KUBE_APISERVER_BIN\""
    [ -n "${ETCD_BIN:-}" ] && echo "export ISTIO_CANARY_ETCD=\"$ETCD_BIN\""
    echo "export PULUMI_SKIP_UPDATE_CHECK=true"
} > "$CACHE/env.sh.tmp"
mv "$CACHE/env.sh.tmp" "$CACHE/env.sh"
log "done in $(( $(date +%s) - T0 ))s; wrote $CACHE/env.sh"
p=""; for d in "${ENV_DIRS[@]}"; do p+="$d:"; done
echo "export PATH=\"$p\$PATH\""
