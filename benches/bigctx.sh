#!/usr/bin/env bash
# Big-layer benchmark: `FROM scratch` + `COPY . /ctx` over a generated context of 50,000
# files and 1 GiB, half of the bytes random and half text (benches/gen-context.py), built by
# rbuild, BuildKit (dockerd's builder, `docker build`) and Buildah (`buildah bud --layers`)
# in one session, each with its own state and its own copy of the context:
#   cold      no state: rbuild a new state root; BuildKit the image removed and
#             `docker builder prune -af`; Buildah `rmi` and `rmi --prune`
#   nochange  the same build again
#   edit      after a line is appended to one file of the 50,000
#   push      the image after `edit` pushed to a loopback registry whose storage was
#             emptied first (rbuild push / docker push / buildah push): for rbuild this
#             makes the compressed blob, for the others too
# The tools take turns, the one going first changing every round; each figure is the
# median of ROUNDS (spread in brackets).
#
# With --baseline BIN (an rbuild built from the commit before deferred layers), also the
# commit time of a RUN step that writes 1 GiB (512 MiB random, 512 MiB text) to a `-t`
# build, rbuild against BIN, alternating: the step's time minus the command's own (the
# command prints how long it ran).
#
# The table replaces the part of docs/benchmarks.md between <!-- bigctx-bench:start -->
# and <!-- bigctx-bench:end --> (--no-docs: print it only).
#
# This machine's ext4 is slow to create files for a while after many are deleted (each
# cold run deletes 50,000); every tool's cold runs come right after such deletes, in turn.
#
# Usage: bash benches/bigctx.sh [-n ROUNDS] [-t TOOLS] [--files N] [--size SIZE]
#                               [--baseline BIN] [--no-docs] [--logs DIR] [RBUILD]
#   ROUNDS default 3; TOOLS comma list of rbuild,buildkit,buildah (default all)
#   RBUILD the rbuild binary (default: cargo build --release, then target/release/rbuild)
# Needs: root, jq, python3, docker-registry, buildah, runc, docker.io (dockerd,
# /usr/bin/docker), busybox-static (for --baseline).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

ROUNDS=3
TOOLS=rbuild,buildkit,buildah
FILES=50000
SIZE=1GiB
BASELINE=
DOCS=1
LOGS=
RBUILD=
while [ $# -gt 0 ]; do
  case $1 in
    -n) ROUNDS=$2; shift 2 ;;
    -t) TOOLS=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --baseline) BASELINE=$(realpath "$2"); shift 2 ;;
    --no-docs) DOCS=0; shift ;;
    --logs) LOGS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) RBUILD=$1; shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "benches/bigctx.sh needs root (buildah, dockerd)" >&2; exit 1; }
for t in jq python3 docker-registry; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 1; }
done
if [ -z "$RBUILD" ]; then
  cargo build --release --quiet
  RBUILD=${CARGO_TARGET_DIR:-$REPO/target}/release/rbuild
fi
RBUILD=$(realpath "$RBUILD")

# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"

W=$(mktemp -d /var/tmp/rbuild-bench-bigctx.XXXX)
EXEC=/run/rbuild-bench-docker.$$
REG_PID='' DOCKERD_PID=''
cleanup() {
  [ -n "$DOCKERD_PID" ] && stop_dockerd
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  if [ -n "${BUILDAH_ENV:-}" ]; then $BUILDAH_ENV buildah rm --all >/dev/null 2>&1 || true; fi
  unmount_under "$W" "$EXEC"
  rm -rf "$W" "$EXEC"
}
trap cleanup EXIT
mkdir -p "$W"/{bin,logs,results,tmp}

# --- the context, one copy per tool ---
log "generating the context ($FILES files, $SIZE)"
python3 "$REPO/benches/gen-context.py" "$W/ctx" --files "$FILES" --size "$SIZE"
for t in ${TOOLS//,/ }; do cp -a "$W/ctx" "$W/ctx-$t"; done
rm -rf "$W/ctx"
EDITED=d0007/f000007.txt
sync

# --- a loopback registry for the pushes; restarted empty before each ---
ADDR=''
FRESH=1 start_registry
cat >"$W/registries.conf" <<CONF
[[registry]]
prefix = "$ADDR"
location = "$ADDR"
insecure = true
CONF

# --- the tools ---
RB_ENV="env CONTAINERS_REGISTRIES_CONF=$W/registries.conf RBUILD_ROOT=$W/rbuild-root NO_COLOR=1 HOME=$W"
buildah_config
DOCKER="env DOCKER_HOST=unix://$W/docker.sock DOCKER_BUILDKIT=1 /usr/bin/docker"
for t in ${TOOLS//,/ }; do
  case $t in
    rbuild)
      script rbuild-clean "rm -rf '$W/rbuild-root'"
      script rbuild-build "cd '$W/ctx-rbuild'; $RB_ENV '$RBUILD' build --progress=plain -t big:bench ."
      script rbuild-push "$RB_ENV '$RBUILD' push big:bench $ADDR/bench/rbuild:1" ;;
    buildkit)
      script buildkit-clean "$DOCKER rmi -f big:bench $ADDR/bench/buildkit:1 >/dev/null 2>&1 || true
$DOCKER builder prune -af >/dev/null"
      script buildkit-build "cd '$W/ctx-buildkit'; $DOCKER build --progress plain -t big:bench ."
      script buildkit-push "$DOCKER tag big:bench $ADDR/bench/buildkit:1; $DOCKER push $ADDR/bench/buildkit:1" ;;
    buildah)
      script buildah-clean "$BUILDAH_ENV buildah rm --all >/dev/null
$BUILDAH_ENV buildah rmi -f big:bench >/dev/null 2>&1 || true
$BUILDAH_ENV buildah rmi --prune -f >/dev/null 2>&1 || true"
      script buildah-build "cd '$W/ctx-buildah'; $BUILDAH_ENV buildah bud --layers -t big:bench ."
      script buildah-push "$BUILDAH_ENV buildah push --tls-verify=false big:bench docker://$ADDR/bench/buildah:1" ;;
    *) echo "unknown tool $t" >&2; exit 2 ;;
  esac
done

# timed TOOL CASE ROUND: run bin/TOOL-ACTION, append the seconds to results/TOOL-CASE, or
# note the failure in results/TOOL.reason.
timed() {
  local t=$1 case=$2 action=$3 start end
  start=$(date +%s.%N)
  if "$W/bin/$t-$action" >"$W/logs/$t-$case.log" 2>&1; then
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }' >>"$W/results/$t-$case"
  else
    echo "$case failed: $(why "$t-$case")" >"$W/results/$t.reason"
    return 1
  fi
}

LOAD0=$(cut -d' ' -f1 /proc/loadavg)
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
if [[ ,$TOOLS, == *,buildkit,* ]]; then
  start_dockerd >"$W/logs/dockerd.start" 2>&1 || { echo "buildkit: $(tail -n1 "$W/logs/dockerd.start")" >"$W/results/buildkit.reason"; }
  $DOCKER version --format 'dockerd {{.Server.Version}} (BuildKit)' >"$W/results/buildkit.version" 2>/dev/null || true
fi
"$RBUILD" --version 2>/dev/null | head -n1 >"$W/results/rbuild.version" || true
buildah --version 2>/dev/null | awk '{print "Buildah", $3}' >"$W/results/buildah.version" || true

read -r -a order <<<"${TOOLS//,/ }"
for round in $(seq "$ROUNDS"); do
  log "round $round of $ROUNDS: ${order[*]}"
  for t in "${order[@]}"; do
    [ -f "$W/results/$t.reason" ] && continue
    "$W/bin/$t-clean" >"$W/logs/$t-clean.log" 2>&1 || true
    sync
    timed "$t" cold build || continue
    timed "$t" nochange build || continue
    echo "edit $round" >>"$W/ctx-$t/$EDITED"
    sync
    timed "$t" edit build || continue
    FRESH=1 start_registry
    sync
    timed "$t" push push || continue
  done
  order=("${order[@]:1}" "${order[0]}")
done

# --- a RUN writing 1 GiB, committed to a -t build: rbuild against the baseline ---
if [ -n "$BASELINE" ] && [[ ,$TOOLS, == *,rbuild,* ]]; then
  mkdir -p "$W/runctx/rootfs/bin"
  cp /bin/busybox "$W/runctx/rootfs/bin/busybox"
  cat >"$W/runctx/Dockerfile" <<'DF'
FROM scratch
COPY rootfs/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN t0=$(cut -d' ' -f1 /proc/uptime); head -c 536870912 /dev/urandom > /random \
 && yes 'the quick brown fox jumps over the lazy dog' | head -c 536870912 > /text \
 && echo "command-ms $(awk -v a=$t0 -v b=$(cut -d' ' -f1 /proc/uptime) 'BEGIN { print int((b - a) * 1000) }')"
DF
  for round in $(seq "$ROUNDS"); do
    for which in rbuild baseline; do
      bin=$RBUILD; [ "$which" = baseline ] && bin=$BASELINE
      rm -rf "$W/run-root-$which"; sync
      log "RUN 1 GiB, $which, round $round"
      (cd "$W/runctx" && RBUILD_ROOT="$W/run-root-$which" NO_COLOR=1 "$bin" build --progress=plain -t run:bench . \
        >"$W/logs/run-$which.log" 2>&1) || { echo "failed: $(why "run-$which")" >"$W/results/run-$which.reason"; continue; }
      python3 - "$W/logs/run-$which.log" >>"$W/results/run-$which" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
cmd = int(re.search(r"command-ms (\d+)", text).group(1)) / 1000
step = re.search(r"^#(\d+) \[4/4\]", text, re.M).group(1)
done = float(re.search(rf"^#{step} DONE ([0-9.]+)s", text, re.M).group(1))
print(f"{done - cmd:.3f}")
PY
    done
  done
fi
log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

TABLE=$(python3 - "$W/results" "$ROUNDS" "$TOOLS" "$FILES" "$SIZE" <<'PY'
import os, statistics, sys
res, rounds, tools, files, size = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4], sys.argv[5]
names = {"rbuild": "rbuild", "buildkit": "BuildKit", "buildah": "Buildah"}
order = ["rbuild", "buildkit", "buildah"]
def read(name):
    try:
        return open(os.path.join(res, name)).read().strip()
    except FileNotFoundError:
        return None
def figures(name):
    text = read(name)
    if not text:
        return None
    xs = [float(x) for x in text.split()]
    return statistics.median(xs), min(xs), max(xs), len(xs)
def cell(m):
    return "n/a" if m is None else f"{m[0]:.2f} s ({m[1]:.2f}–{m[2]:.2f})"
def ratio(a, b):
    return "n/a" if a is None or b is None else f"{a[0] / b[0]:.2f}×"
cases = [("cold", "cold (no state)"), ("nochange", "no change"),
         ("edit", f"one file of {int(files):,} edited"), ("push", "push to a loopback registry")]
print(f"`FROM scratch` + `COPY . /ctx`, a generated context of {int(files):,} files and {size} "
      f"(half random, half text). Median of {rounds} rounds (min–max), seconds; the tools take turns.\n")
print("| case | " + " | ".join(names[t] for t in order) + " | rbuild/BuildKit | rbuild/Buildah |")
print("|---|" + "---|" * (len(order) + 2))
for case, label in cases:
    m = {t: (figures(f"{t}-{case}") if t in tools else None) for t in order}
    print(f"| {label} | " + " | ".join(cell(m[t]) for t in order)
          + f" | {ratio(m['rbuild'], m['buildkit'])} | {ratio(m['rbuild'], m['buildah'])} |")
print()
for t in order:
    if t not in tools:
        print(f"- {names[t]}: not run (`-t` left it out)")
        continue
    v = read(f"{t}.version") or ""
    why = read(f"{t}.reason")
    print((f"- {names[t]}{' (' + v + ')' if v else ''}: " + (why or "measured")).replace("|", "\\|"))
new, base = figures("run-rbuild"), figures("run-baseline")
if new or base:
    print()
    print("A RUN step writing 1 GiB (512 MiB random, 512 MiB text) to a `-t` build: the step's "
          "time minus the command's own, rbuild against the commit before deferred layers "
          f"(eager gzip), alternating, {rounds} rounds.\n")
    print("| | rbuild | before | ratio |")
    print("|---|---|---|---|")
    print(f"| commit time | {cell(new)} | {cell(base)} | {ratio(new, base)} |")
PY
)
echo "$TABLE"
if [ -n "$LOGS" ]; then mkdir -p "$LOGS" && cp -a "$W/logs/." "$W/results" "$LOGS/"; fi

if [ "$DOCS" = 1 ]; then
  write_section bigctx-bench "Run on $(date -u +%F) with \`bash benches/bigctx.sh -n $ROUNDS${BASELINE:+ --baseline BIN}\`; $(nproc) cores, load average $LOAD0 before it started." "$TABLE" || exit 1
fi
