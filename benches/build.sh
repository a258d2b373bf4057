#!/usr/bin/env bash
# Build benchmark: the seed app (testdata/flask-watchlist) built by rbuild, BuildKit (dockerd's
# builder, `docker build`) and Buildah (`buildah bud --layers`) in one session, each with its
# own state: a cold build (base image already local, no build cache, no cache-mount content),
# a rebuild with no change, and a rebuild after a one-line edit of app.py. hyperfine times
# RUNS runs of each; the table gives medians and the ratios rbuild/BuildKit and
# rbuild/Buildah, and replaces the part of docs/benchmarks.md between
# <!-- build-bench:start --> and <!-- build-bench:end --> (--no-docs: print it only).
#
# A tool that cannot build (missing, or failing its first build) gets `n/a` and the reason
# instead of figures; the others are still measured.
#
# Base image: tests/fixtures/python-base.sh (Debian bookworm + python3, cached per machine),
# served as docker.io's library/python:3.10-alpine by a loopback docker-registry that this
# script starts; Buildah and rbuild reach it through a registries.conf mirror, dockerd through
# registry-mirrors. The pip step downloads from PyPI in every cold run (the same for all).
#
# BuildKit: dockerd (Debian docker.io 20.10) started by this script with its own socket,
# data-root and exec-root, no bridge and no iptables, and the 20.10 client /usr/bin/docker
# (newer clients need buildx for BuildKit). That dockerd fetches `# syntax=` frontends from
# Docker Hub, which may be unreachable, so it builds the Dockerfile minus that line; the
# others build it verbatim. Builds use the host network for BuildKit and Buildah.
#
# Usage: bash benches/build.sh [-n RUNS] [-t TOOLS] [--no-docs] [--logs DIR] [RBUILD]
#   RUNS   runs per case (default 5); TOOLS: comma list of rbuild,buildkit,buildah (default all)
#   --logs DIR  keep the tools' last build outputs and hyperfine's reports in DIR
#   RBUILD path to the rbuild binary (default: cargo build --release, then target/release/rbuild)
# Needs: root, hyperfine, jq, python3, docker-registry, skopeo, buildah, runc, docker.io
# (dockerd, /usr/bin/docker), mmdebstrap and umoci for the base image's first build.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

RUNS=5
TOOLS=rbuild,buildkit,buildah
DOCS=1
LOGS=
RBUILD=
while [ $# -gt 0 ]; do
  case $1 in
    -n) RUNS=$2; shift 2 ;;
    -t) TOOLS=$2; shift 2 ;;
    --no-docs) DOCS=0; shift ;;
    --logs) LOGS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) RBUILD=$1; shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "benches/build.sh needs root (buildah, dockerd)" >&2; exit 1; }
for t in hyperfine jq python3 docker-registry skopeo; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 1; }
done
if [[ ,$TOOLS, == *,rbuild,* ]] && [ -z "$RBUILD" ]; then
  cargo build --release --quiet
  RBUILD=${CARGO_TARGET_DIR:-$REPO/target}/release/rbuild
fi
[ -z "$RBUILD" ] || RBUILD=$(realpath "$RBUILD")

# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"

W=$(mktemp -d /var/tmp/rbuild-bench-build.XXXX)
EXEC=/run/rbuild-bench-docker.$$   # dockerd's exec-root: short, socket paths live there
REG_PID='' DOCKERD_PID=''
cleanup() {
  [ -n "$DOCKERD_PID" ] && stop_dockerd
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  if [ -f "$W/containers/storage.conf" ] && command -v buildah >/dev/null; then
    buildah_env buildah rm --all >/dev/null 2>&1 || true
  fi
  unmount_under "$W" "$EXEC"
  rm -rf "$W" "$EXEC"
}
trap cleanup EXIT
mkdir -p "$W"/{bin,logs,results,tmp}

# --- the base image, served by a loopback registry as docker.io/library/python:3.10-alpine ---
serve_python_base

# One copy of the context per tool, so one tool's edits never reach another.
for t in ${TOOLS//,/ }; do cp -a "$REPO/testdata/flask-watchlist" "$W/ctx-$t"; done
sed '/^# *syntax=/d' "$REPO/testdata/flask-watchlist/Dockerfile" >"$W/Dockerfile.buildkit"

# Per-tool scripts: TOOL-setup (once), TOOL-clean (before each cold run), TOOL-build and
# TOOL-edit (before each edit run). A build's output goes to logs/TOOL.log.
# Every prepare step ends with `sync`: the disk's writeback of one run (a cold build writes
# hundreds of MB) must not slow the next, timed one down, whichever tool it is.
for t in ${TOOLS//,/ }; do
  script "$t-edit" "echo '# edited by benches/build.sh' >>'$W/ctx-$t/app.py'
sync"
done
script sync "sync"

# rbuild: its own state root; cold = a new root holding only the pulled base image.
RB_ENV="env CONTAINERS_REGISTRIES_CONF=$W/registries.conf RBUILD_ROOT=$W/rbuild-root NO_COLOR=1 HOME=$W"
script rbuild-setup ":"
script rbuild-clean "rm -rf '$W/rbuild-root'; $RB_ENV '$RBUILD' pull -q python:3.10-alpine >/dev/null; sync"
script rbuild-build "cd '$W/ctx-rbuild'; $RB_ENV '$RBUILD' build -t flask-watchlist:bench . >'$W/logs/rbuild.log' 2>&1"

# Buildah: storage, containers.conf and cache-mount directory ($TMPDIR) of its own.
buildah_config
buildah_env() { $BUILDAH_ENV "$@"; }
script buildah-setup "$BUILDAH_ENV buildah pull -q python:3.10-alpine >/dev/null"
script buildah-clean "$BUILDAH_ENV buildah rm --all >/dev/null
$BUILDAH_ENV buildah rmi -f flask-watchlist:bench >/dev/null 2>&1 || true
$BUILDAH_ENV buildah rmi --prune -f >/dev/null 2>&1 || true
rm -rf '$W'/tmp/buildah-cache-*
sync"
script buildah-build "cd '$W/ctx-buildah'; $BUILDAH_ENV buildah bud --layers --network host -t flask-watchlist:bench . >'$W/logs/buildah.log' 2>&1"

# BuildKit: a dockerd of our own (see the header; start_dockerd in lib.sh), stopped once
# its figures are taken.
DOCKER="env DOCKER_HOST=unix://$W/docker.sock DOCKER_BUILDKIT=1 /usr/bin/docker"
script buildkit-setup "$DOCKER pull -q python:3.10-alpine >/dev/null"
script buildkit-clean "$DOCKER rmi -f flask-watchlist:bench >/dev/null 2>&1 || true
$DOCKER builder prune -af >/dev/null
sync"
script buildkit-build "cd '$W/ctx-buildkit'; $DOCKER build --progress plain --network host -f '$W/Dockerfile.buildkit' -t flask-watchlist:bench . >'$W/logs/buildkit.log' 2>&1"

# --- measuring ---
na() { echo "n/a: $2" >"$W/results/$1.reason"; log "$1: n/a: $2"; }
measure() {  # TOOL CASE hyperfine-options...
  local t=$1 case=$2; shift 2
  log "$t: $case ($RUNS runs)"
  if ! hyperfine -N --style none --runs "$RUNS" "$@" --export-json "$W/results/$t-$case.json" \
         "$W/bin/$t-build" >"$W/logs/$t-$case.hyperfine" 2>&1; then
    rm -f "$W/results/$t-$case.json"
    echo "a $case run failed: $(why "$t")" >"$W/results/$t-$case.reason"
  fi
}
version() {
  case $1 in
    rbuild) "$RBUILD" --version 2>/dev/null | head -n1 ;;
    buildah) buildah --version | awk '{print "Buildah", $3}' ;;
    buildkit) echo "dockerd $($DOCKER version --format '{{.Server.Version}}' 2>/dev/null) (BuildKit)" ;;
  esac
}

LOAD0=$(cut -d' ' -f1 /proc/loadavg)   # before any timing: what else the machine is doing
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for t in ${TOOLS//,/ }; do
  case $t in rbuild|buildah|buildkit) ;; *) echo "unknown tool $t" >&2; exit 2 ;; esac
  if [ "$t" = buildah ] && ! command -v buildah >/dev/null; then na "$t" "buildah is not installed"; continue; fi
  # (not in $(...): start_dockerd sets DOCKERD_PID, which stop_dockerd needs)
  if [ "$t" = buildkit ] && ! start_dockerd >"$W/logs/dockerd.start" 2>&1; then
    na "$t" "$(tail -n 1 "$W/logs/dockerd.start")"; continue
  fi
  version "$t" >"$W/results/$t.version" || true
  if ! "$W/bin/$t-setup" >"$W/logs/$t.log" 2>&1; then
    na "$t" "setup failed: $(why "$t")"
  elif ! { "$W/bin/$t-clean" && "$W/bin/$t-build"; } >>"$W/logs/$t.log" 2>&1; then
    na "$t" "the first build failed: $(why "$t")"
  else
    measure "$t" cold --prepare "$W/bin/$t-clean"
    measure "$t" nochange --warmup 1 --prepare "$W/bin/sync"
    measure "$t" edit --warmup 1 --prepare "$W/bin/$t-edit"
  fi
  [ "$t" = buildkit ] && stop_dockerd
done
log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

TABLE=$(python3 - "$W/results" "$RUNS" "$TOOLS" <<'PY'
import json, os, sys
res, runs, tools = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
names = {"rbuild": "rbuild", "buildkit": "BuildKit", "buildah": "Buildah"}
cases = [("cold", "cold build (base image local)"), ("nochange", "rebuild, no change"),
         ("edit", "rebuild after a one-line app.py edit")]
def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
def median(t, case):
    if read(f"{res}/{t}.reason") is not None or t not in tools:
        return None
    path = f"{res}/{t}-{case}.json"
    if not os.path.exists(path):
        return None
    r = json.load(open(path))["results"][0]
    return r["median"], min(r["times"]), max(r["times"])
def cell(m):
    return "n/a" if m is None else f"{m[0]:.2f} s ({m[1]:.2f}–{m[2]:.2f})"
def ratio(a, b):
    return "n/a" if a is None or b is None else f"{a[0] / b[0]:.2f}×"
order = ["rbuild", "buildkit", "buildah"]
print(f"Median of {runs} runs (min–max), seconds. Seed app `testdata/flask-watchlist`; base image "
      "served by a loopback registry and already local to each tool; BuildKit and Buildah run RUN "
      "steps on the host network.\n")
print("| case | " + " | ".join(names[t] for t in order) + " | rbuild/BuildKit | rbuild/Buildah |")
print("|---|" + "---|" * (len(order) + 2))
for case, label in cases:
    m = {t: median(t, case) for t in order}
    print(f"| {label} | " + " | ".join(cell(m[t]) for t in order)
          + f" | {ratio(m['rbuild'], m['buildkit'])} | {ratio(m['rbuild'], m['buildah'])} |")
print()
for t in order:
    if t not in tools:
        print(f"- {names[t]}: not run (`-t` left it out)")
        continue
    v = read(f"{res}/{t}.version") or ""
    why = read(f"{res}/{t}.reason")
    fails = [read(f"{res}/{t}-{c}.reason") for c, _ in cases]
    fails = [f for f in fails if f]
    line = f"- {names[t]}{' (' + v + ')' if v else ''}: "
    line += why if why else ("; ".join(fails) if fails else "measured")
    print(line.replace("|", "\\|"))
PY
)
echo "$TABLE"
if [ -n "$LOGS" ]; then mkdir -p "$LOGS" && cp -a "$W/logs/." "$LOGS/"; fi

if [ "$DOCS" = 1 ]; then
  write_section build-bench "Run on $(date -u +%F) with \`bash benches/build.sh -n $RUNS\`; $(nproc) cores, load average $LOAD0 before it started." "$TABLE" || exit 1
fi
