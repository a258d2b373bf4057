#!/usr/bin/env bash
# Build-cache benchmark, the CI shape: the seed app (testdata/flask-watchlist) built by
# rbuild and by BuildKit (dockerd's builder, `docker build`) from EMPTY local state with a
# warm cache in a registry, after a one-line edit of app.py; and rbuild's cost of writing
# its cache to a registry (`--cache-to`) on a rebuild with no change. The table gives
# medians and spread (min–max) and the ratio rbuild/BuildKit, and replaces the part of
# docs/benchmarks.md between <!-- cache-bench:start --> and <!-- cache-bench:end -->
# (--no-docs: print it only).
#
# One loopback docker-registry, started here, serves the base image
# (tests/fixtures/python-base.sh, Debian bookworm + python3) as docker.io's
# library/python:3.10-alpine, through a registries.conf mirror (rbuild) and registry-mirrors
# (dockerd), and holds both caches. Before timing, each tool builds the unedited app once
# and exports its cache there: rbuild with `--cache-to type=registry,ref=REG/bench/cache:rbuild,mode=max`,
# BuildKit (20.10, no buildx: inline cache only) with `--build-arg BUILDKIT_INLINE_CACHE=1`
# and `docker push REG/bench/app:buildkit`. Cache mounts are not exported (BuildKit cannot).
#
# CI shape, timed: both build the same edited copy of the context with `--cache-from`, each
# from empty state made in hyperfine's --prepare (not timed): rbuild gets a new, empty
# RBUILD_ROOT; BuildKit gets a new dockerd (the last one stopped) on a new, empty
# data-root, so it holds no image, no layer and no build cache, not even the base image,
# and nothing can survive as it might after `docker builder prune -af` and
# `docker image rm`. No state is deleted while timing (see below). Both pull the
# base from the same loopback registry inside the timed build. The two tools alternate,
# the one going first swapping every round, and one untimed build of each comes first.
#
# Export overhead, rbuild alone, warm state (the root of the preparation build): a rebuild
# with no change, with and without `--cache-to type=registry,ref=REG/bench/cache:overhead,mode=max`,
# alternating; each round is 10 runs of each after one warm-up.
#
# BuildKit: dockerd (Debian docker.io 20.10) with its own socket, data-root and exec-root,
# no bridge and no iptables, and the 20.10 client /usr/bin/docker with DOCKER_BUILDKIT=1
# (newer clients need buildx). It builds the Dockerfile minus its `# syntax=` line (that
# frontend would come from Docker Hub); rbuild builds it verbatim. BuildKit's RUN steps use
# the host network.
#
# Usage: bash benches/cache.sh [-n RUNS] [--no-docs] [--logs DIR] [RBUILD]
#   RUNS   rounds (default 5)
#   --logs DIR  keep the tools' build outputs (each timed run's too) and hyperfine's reports in DIR
#   RBUILD path to the rbuild binary (default: cargo build --release, then target/release/rbuild)
# Needs: root, hyperfine, jq, python3, docker-registry, skopeo, docker.io (dockerd,
# /usr/bin/docker), mmdebstrap and umoci for the base image's first build.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

RUNS=5
DOCS=1
LOGS=
RBUILD=
while [ $# -gt 0 ]; do
  case $1 in
    -n) RUNS=$2; shift 2 ;;
    --no-docs) DOCS=0; shift ;;
    --logs) LOGS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) RBUILD=$1; shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "benches/cache.sh needs root (dockerd)" >&2; exit 1; }
for t in hyperfine jq python3 docker-registry skopeo; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 1; }
done
if [ -z "$RBUILD" ]; then
  cargo build --release --quiet
  RBUILD=${CARGO_TARGET_DIR:-$REPO/target}/release/rbuild
fi
RBUILD=$(realpath "$RBUILD")

# shellcheck source=benches/lib.sh
source "$REPO/benches/lib.sh"

W=$(mktemp -d /var/tmp/rbuild-bench-cache.XXXX)
EXEC=/run/rbuild-bench-docker.$$   # dockerd's exec-root: short, socket paths live there
REG_PID=''
cleanup() {
  [ -x "$W/bin/dockerd-stop" ] && "$W/bin/dockerd-stop" >/dev/null 2>&1
  [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null
  unmount_under "$W" "$EXEC"
  rm -rf "$W" "$EXEC"
}
trap cleanup EXIT
mkdir -p "$W"/{bin,logs,results}

# --- the registry: the base image as docker.io/library/python:3.10-alpine, and the caches ---
serve_python_base

# The unedited context (preparation) and one edited copy that both tools build when timed.
cp -a "$REPO/testdata/flask-watchlist" "$W/ctx"
cp -a "$REPO/testdata/flask-watchlist" "$W/ctx-edit"
echo '# edited by benches/cache.sh' >>"$W/ctx-edit/app.py"
sed '/^# *syntax=/d' "$REPO/testdata/flask-watchlist/Dockerfile" >"$W/Dockerfile.buildkit"

# Every prepare step ends with `sync`: the writeback of one build (hundreds of MB) must not
# slow the next, timed one down, whichever tool it is.
script sync "sync"

# State is never deleted while timing: this machine's root filesystem is ext4 without a
# journal, where creating files is slow for a minute or more after many were deleted (the
# allocator skips recently deleted inodes, reading inode tables to find them), so deleting
# one run's state would slow the next run's unpacking. Every empty state is a new
# directory; all of them go when the script ends (so start the next run of this script,
# or any timing, five minutes or more after it).
#
# rbuild: the preparation build's root stays for the export-overhead case; each CI-shape
# run gets a new, empty root.
RB_ENV="env CONTAINERS_REGISTRIES_CONF=$W/registries.conf NO_COLOR=1 HOME=$W"
RB_CACHE=$ADDR/bench/cache:rbuild
script rbuild-setup "cd '$W/ctx'; $RB_ENV RBUILD_ROOT='$W/rbuild-root' '$RBUILD' build --progress plain --cache-to type=registry,ref=$RB_CACHE,mode=max -t app:seed . >'$W/logs/rbuild.log' 2>&1"
script rbuild-reset "n=\$(cat '$W/rbuild-ci.n' 2>/dev/null || echo 0); echo \$((n + 1)) >'$W/rbuild-ci.n'; sync"
script rbuild-ci "cd '$W/ctx-edit'; $RB_ENV RBUILD_ROOT='$W/rbuild-ci/'\$(cat '$W/rbuild-ci.n') '$RBUILD' build --progress plain --cache-from type=registry,ref=$RB_CACHE -t app:ci . >'$W/logs/rbuild.log' 2>&1"
script rbuild-nochange "cd '$W/ctx'; $RB_ENV RBUILD_ROOT='$W/rbuild-root' '$RBUILD' build --progress plain -t app:seed . >'$W/logs/rbuild-nochange.log' 2>&1"
script rbuild-export "cd '$W/ctx'; $RB_ENV RBUILD_ROOT='$W/rbuild-root' '$RBUILD' build --progress plain --cache-to type=registry,ref=$ADDR/bench/cache:overhead,mode=max -t app:seed . >'$W/logs/rbuild-export.log' 2>&1"

# BuildKit: a dockerd of our own (see the header), started afresh on a new, empty data-root
# (and exec-root) for every CI-shape run and stopped after it, so that it does not run while
# rbuild is timed.
DOCKER="env DOCKER_HOST=unix://$W/docker.sock DOCKER_BUILDKIT=1 /usr/bin/docker"
NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576
jq -n --arg reg "$ADDR" --argjson nofile "$NOFILE" '{
  "storage-driver": "overlay2",
  "registry-mirrors": ["http://" + $reg], "insecure-registries": [$reg],
  "iptables": false, "ip6tables": false, "ip-masq": false, "bridge": "none",
  "features": {"buildkit": true},
  "default-ulimits": {"nofile": {"Name": "nofile", "Hard": $nofile, "Soft": $nofile}}
}' >"$W/daemon.json"
cat >"$W/bin/dockerd-stop" <<SH
#!/bin/bash
# Stop our dockerd (and its containerd), unmount what it left; its state stays (see above).
pid=\$(cat '$W/dockerd.spid' 2>/dev/null || true)
if [ -n "\$pid" ]; then
  kill "\$pid" 2>/dev/null || true
  for _ in \$(seq 150); do kill -0 "\$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "\$pid" 2>/dev/null || true
  rm -f '$W/dockerd.spid'
fi
findmnt -rn -o TARGET | awk 'index(\$0, "$W/docker") == 1 || index(\$0, "$EXEC") == 1' \\
  | sort -r | while read -r m; do umount -l "\$m" 2>/dev/null || true; done
SH
cat >"$W/bin/dockerd-start" <<SH
#!/bin/bash
# A new dockerd on a new, empty data-root; returns once it answers.
'$W/bin/dockerd-stop'
n=\$(cat '$W/dockerd.n' 2>/dev/null || echo 0); n=\$((n + 1)); echo \$n >'$W/dockerd.n'
mkdir -p '$W/docker/'\$n '$EXEC/'\$n
setsid dockerd --config-file '$W/daemon.json' -H 'unix://$W/docker.sock' \\
  --data-root '$W/docker/'\$n --exec-root '$EXEC/'\$n \\
  --pidfile '$W/dockerd.pid' >>'$W/logs/dockerd.log' 2>&1 </dev/null &
echo \$! >'$W/dockerd.spid'
for _ in \$(seq 150); do
  $DOCKER version >/dev/null 2>&1 && { sync; exit 0; }
  kill -0 \$! 2>/dev/null || break
  sleep 0.2
done
echo "dockerd did not start: \$(tail -n 3 '$W/logs/dockerd.log' | tr '\n' ' ')"
exit 1
SH
chmod +x "$W/bin/dockerd-start" "$W/bin/dockerd-stop"
BK_CACHE=$ADDR/bench/app:buildkit
BK_BUILD="$DOCKER build --progress plain --network host -f '$W/Dockerfile.buildkit'"
script buildkit-setup "'$W/bin/dockerd-start'
cd '$W/ctx'; $BK_BUILD --build-arg BUILDKIT_INLINE_CACHE=1 -t $BK_CACHE . >'$W/logs/buildkit.log' 2>&1
$DOCKER push $BK_CACHE >>'$W/logs/buildkit.log' 2>&1
'$W/bin/dockerd-stop'"
script buildkit-reset "'$W/bin/dockerd-start'"
script buildkit-ci "cd '$W/ctx-edit'; $BK_BUILD --cache-from $BK_CACHE -t app:ci . >'$W/logs/buildkit.log' 2>&1"

# --- measuring ---
fail() { log "$1: $2"; echo "$2" >"$W/results/$1.reason"; }
# The Dockerfile steps (`#N [k/n] …`) of a build's plain progress, and how many were CACHED.
step_ids() { grep -oE '^#[0-9]+ \[([^]]* )?[0-9]+/[0-9]+\]' "$W/logs/$1.log" | cut -d' ' -f1 | sort -u; }
steps() { step_ids "$1" | wc -l; }
cached() { step_ids "$1" | while read -r id; do if grep -qx "$id CACHED" "$W/logs/$1.log"; then echo; fi; done | wc -l; }
hf() {  # NAME ROUND hyperfine-options... COMMAND: one hyperfine call, its times kept
  local name=$1 round=$2; shift 2
  hyperfine -N --style none "$@" --export-json "$W/results/$name-$round.json" \
    >"$W/logs/$name-$round.hyperfine" 2>&1
}

LOAD0=$(cut -d' ' -f1 /proc/loadavg)   # before any timing: what else the machine is doing
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
"$RBUILD" --version 2>/dev/null | head -n1 >"$W/results/rbuild.version" || true
dockerd --version | awk '{print "dockerd", $3}' | tr -d , >"$W/results/buildkit.version" || true

OK=()
for t in rbuild buildkit; do
  log "$t: preparation build, cache to the registry"
  if [ "$t" = buildkit ] && ! { command -v dockerd && [ -x /usr/bin/docker ]; } >/dev/null; then
    fail "$t" "dockerd or /usr/bin/docker missing (apt-get install docker.io)"; continue
  fi
  if ! "$W/bin/$t-setup" >"$W/logs/$t.setup" 2>&1; then
    fail "$t" "the preparation build failed: $( [ -s "$W/logs/$t.setup" ] && tail -n 1 "$W/logs/$t.setup" || why "$t")"
    continue
  fi
  log "$t: CI-shape check run (untimed)"
  if ! { "$W/bin/$t-reset" && "$W/bin/$t-ci"; } >"$W/logs/$t.check" 2>&1; then
    fail "$t" "the CI-shape build failed: $(why "$t")"
  else
    echo "$(cached "$t") of $(steps "$t")" >"$W/results/$t.cached"
    cp "$W/logs/$t.log" "$W/logs/$t-ci-first.log"
    OK+=("$t")
  fi
  if [ "$t" = buildkit ]; then "$W/bin/dockerd-stop"; fi
done

for r in $(seq 1 "$RUNS"); do
  order=("${OK[@]}")
  if [ $((r % 2)) = 0 ] && [ "${#OK[@]}" = 2 ]; then order=("${OK[1]}" "${OK[0]}"); fi
  for t in "${order[@]}"; do
    if hf "$t-ci" "$r" --runs 1 --prepare "$W/bin/$t-reset" "$W/bin/$t-ci"; then
      log "round $r: $t CI shape $(jq -r '.results[0].times[0] | . * 100 | round / 100' "$W/results/$t-ci-$r.json") s"
      cp "$W/logs/$t.log" "$W/logs/$t-ci-$r.log"
    else
      rm -f "$W/results/$t-ci-$r.json"
      fail "$t-ci" "a CI-shape run failed: $(why "$t")"
    fi
    if [ "$t" = buildkit ]; then "$W/bin/dockerd-stop"; fi
  done
done

if [[ " ${OK[*]} " == *" rbuild "* ]]; then
  for r in $(seq 1 "$RUNS"); do
    cases=(nochange export)
    if [ $((r % 2)) = 0 ]; then cases=(export nochange); fi
    for c in "${cases[@]}"; do
      hf "rbuild-$c" "$r" --warmup 1 --runs 10 --prepare "$W/bin/sync" "$W/bin/rbuild-$c" \
        || { rm -f "$W/results/rbuild-$c-$r.json"; fail "rbuild-$c" "a run failed: $(why "rbuild-$c")"; }
    done
    log "round $r: no-change rebuild with and without --cache-to"
  done
fi
log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

TABLE=$(python3 - "$W/results" "$RUNS" <<'PY'
import glob, json, statistics, sys
res, runs = sys.argv[1], int(sys.argv[2])
def read(name):
    try:
        with open(f"{res}/{name}") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
def times(name):
    if read(f"{name}.reason") is not None:
        return None
    ts = [t for p in sorted(glob.glob(f"{res}/{name}-[0-9]*.json"))
          for t in json.load(open(p))["results"][0]["times"]]
    return ts or None
def cell(ts, unit=1, fmt="{:.2f} s"):
    if ts is None:
        return "n/a"
    m, lo, hi = (x * unit for x in (statistics.median(ts), min(ts), max(ts)))
    return f"{fmt.format(m)} ({fmt.format(lo).split()[0]}–{fmt.format(hi)})"
rb, bk = times("rbuild-ci"), times("buildkit-ci")
ratio = "n/a" if rb is None or bk is None else f"{statistics.median(rb) / statistics.median(bk):.2f}×"
print(f"CI shape: median of {runs} runs (min–max), the tools alternating; empty local state, "
      "cache in a loopback registry, one-line `app.py` edit.\n")
print("| case | rbuild | BuildKit | rbuild/BuildKit |")
print("|---|---|---|---|")
print(f"| empty state, `--cache-from` a registry, after a one-line edit | {cell(rb)} | {cell(bk)} | {ratio} |")
print()
names = {"rbuild": "rbuild", "buildkit": "BuildKit"}
for t in ("rbuild", "buildkit"):
    v = read(f"{t}.version") or ""
    why = read(f"{t}.reason") or read(f"{t}-ci.reason")
    c = read(f"{t}.cached")
    line = f"- {names[t]}{' (' + v + ')' if v else ''}: "
    line += why if why else f"measured; {c} steps CACHED in its first CI-shape build"
    print(line.replace("|", "\\|"))
print()
no, ex = times("rbuild-nochange"), times("rbuild-export")
print(f"Export overhead, rbuild: no-change rebuild on warm local state, {runs} rounds of 10 "
      "runs each case, alternating; median (min–max) of all runs.\n")
print("| rebuild, no change | time |")
print("|---|---|")
print(f"| without `--cache-to` | {cell(no, 1000, '{:.1f} ms')} |")
print(f"| with `--cache-to type=registry,…,mode=max` | {cell(ex, 1000, '{:.1f} ms')} |")
if no is not None and ex is not None:
    d = statistics.median(ex) - statistics.median(no)
    print(f"\n`--cache-to` adds **{d * 1000:.1f} ms** (difference of the medians; target: at most 0.2 s).")
else:
    print(f"\nn/a: {read('rbuild-export.reason') or read('rbuild-nochange.reason') or read('rbuild.reason')}")
PY
)
echo "$TABLE"
if [ -n "$LOGS" ]; then mkdir -p "$LOGS" && cp -a "$W/logs/." "$LOGS/"; fi

if [ "$DOCS" = 1 ]; then
  write_section cache-bench "Run on $(date -u +%F) with \`bash benches/cache.sh -n $RUNS\`; $(nproc) cores, load average $LOAD0 before it started." "$TABLE" || exit 1
fi
