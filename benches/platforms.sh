#!/usr/bin/env bash
# Multi-platform benchmark: a small cross-compiling app (a build-platform stage that does
# the work once, then a per-target stage with a RUN of its own) built for linux/amd64 and
# linux/arm64 in one build, against the sum of building each platform alone. Every run is
# `--no-cache` on a state root that already holds the base image, so every step runs; the
# two-platform build still builds the shared stage once (the other platform waits for it)
# and runs the platforms at once. arm64 steps run under QEMU user emulation.
#
# The base image is made here, by rbuild itself: Debian's busybox-static for amd64 (the
# host's /bin/busybox) and arm64 (tests/fixtures/busybox-arm64.sh) as one index, pushed to
# a loopback docker-registry this script starts, reached as docker.io's mirror.
#
# The order of the three cases rotates every round; the table gives medians and the spread
# (min–max) of RUNS rounds, and replaces the part of docs/benchmarks.md between
# <!-- platforms-bench:start --> and <!-- platforms-bench:end --> (--no-docs: print only).
#
# Usage: bash benches/platforms.sh [-n RUNS] [--no-docs] [RBUILD]
# Needs: root, docker-registry, qemu-user-static (binfmt_misc handler for aarch64 with F),
# arm64 as a dpkg foreign architecture (for busybox-static:arm64), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
RUNS=7
DOCS=1
RBUILD=
while [ $# -gt 0 ]; do
  case $1 in
    -n) RUNS=$2; shift 2 ;;
    --no-docs) DOCS=0; shift ;;
    -h|--help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) RBUILD=$1; shift ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "benches/platforms.sh needs root" >&2; exit 1; }
for t in docker-registry python3; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done
grep -qs '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
  || { echo "no binfmt_misc handler qemu-aarch64 with F (apt-get install qemu-user-static)" >&2; exit 1; }
if [ -z "$RBUILD" ]; then
  cargo build --release --quiet
  RBUILD=${CARGO_TARGET_DIR:-$REPO/target}/release/rbuild
fi
RBUILD=$(realpath "$RBUILD")
ARM64=$(bash tests/fixtures/busybox-arm64.sh)

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
work=$(mktemp -d /var/tmp/rbuild-platforms-bench.XXXXXX)
reg_pid=
cleanup() { [ -z "$reg_pid" ] || kill "$reg_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# A loopback registry of our own.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$port
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $REG}
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
cat >"$work/registries.conf" <<EOF
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "$REG"
insecure = true
[[registry]]
prefix = "$REG"
location = "$REG"
insecure = true
EOF
export CONTAINERS_REGISTRIES_CONF=$work/registries.conf NO_COLOR=1
unset SOURCE_DATE_EPOCH

# The base: busybox for each architecture, built FROM scratch as one index and pushed.
base=$work/base
for arch in amd64 arm64; do
  root=$base/rootfs-$arch
  mkdir -p "$root"/{bin,etc,tmp,root}
  if [ "$arch" = amd64 ]; then cp /bin/busybox "$root/bin/busybox"; else cp "$ARM64" "$root/bin/busybox"; fi
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
  printf 'root:x:0:\n' >"$root/etc/group"
done
cat >"$base/Dockerfile" <<'EOF'
FROM scratch
ARG TARGETARCH
COPY rootfs-$TARGETARCH/ /
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["sh"]
EOF
log "making the base image index in $REG"
RBUILD_ROOT=$work/base-state "$RBUILD" build -q --platform linux/amd64,linux/arm64 \
  -t "$REG/library/busybox:latest" --push "$base" >/dev/null

# The app: the shared stage does the work once, on the build platform; each target then
# packs it with a RUN of its own (under emulation for arm64).
app=$work/app
mkdir -p "$app/src"
for i in $(seq 1 40); do head -c 200000 /dev/urandom | base64 >"$app/src/part-$i.txt"; done
cat >"$app/Dockerfile" <<'EOF'
FROM --platform=$BUILDPLATFORM busybox AS build
COPY src/ /src/
RUN mkdir /out && for f in /src/*.txt; do \
      for n in 1 2 3 4 5 6; do sha256sum "$f"; md5sum "$f"; done >> /out/sums; \
      gzip -9 -c "$f" > "/out/$(basename "$f").gz"; \
    done
FROM busybox
ARG TARGETARCH
COPY --from=build /out /app
RUN echo "$TARGETARCH $(uname -m)" > /app/arch && sha256sum /app/*.gz > /app/index && \
    for i in 1 2 3 4 5 6 7 8; do gzip -dc /app/part-1.txt.gz | wc -c; done > /app/sizes
EOF

state=$work/state
export RBUILD_ROOT=$state
"$RBUILD" pull --platform linux/amd64 busybox >/dev/null
"$RBUILD" pull --platform linux/arm64 busybox >/dev/null

run_case() {
  local platforms=$1 start end
  start=$(date +%s.%N)
  "$RBUILD" build -q --no-cache --platform "$platforms" "$app" >/dev/null
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.3f}')"
}

cases=("linux/amd64,linux/arm64" "linux/amd64" "linux/arm64")
declare -A times
log "warm-up"
for c in "${cases[@]}"; do run_case "$c" >/dev/null; done
for r in $(seq 1 "$RUNS"); do
  for k in 0 1 2; do
    c=${cases[$(( (r + k) % 3 ))]}
    t=$(run_case "$c")
    times[$c]="${times[$c]:-} $t"
    log "round $r: $c ${t}s"
  done
done

table=$(python3 - "${times[linux/amd64,linux/arm64]}" "${times[linux/amd64]}" "${times[linux/arm64]}" "$RUNS" <<'EOF'
import statistics, sys
both, amd, arm = ([float(x) for x in a.split()] for a in sys.argv[1:4])
runs = sys.argv[4]
med = statistics.median
def row(name, xs): return f"| {name} | {med(xs):.2f} s | {min(xs):.2f}–{max(xs):.2f} s |"
print(f"{runs} rounds, the order of the three builds rotating; each `--no-cache` on a state root holding the base image.\n")
print("| build | median | spread |")
print("|---|---|---|")
print(row("linux/amd64 alone", amd))
print(row("linux/arm64 alone (emulated)", arm))
print(row("both in one build", both))
ratio = med(both) / (med(amd) + med(arm))
print(f"\nBoth in one build: **{ratio:.2f}×** the sum of building each alone (target: at most 0.7×).")
EOF
)
echo "$table"
if [ "$DOCS" = 1 ]; then
  python3 - "$REPO/docs/benchmarks.md" "$table" <<'EOF'
import sys, re
path, table = sys.argv[1], sys.argv[2]
text = open(path).read()
start, end = "<!-- platforms-bench:start -->", "<!-- platforms-bench:end -->"
block = f"{start}\n{table}\n{end}"
text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda m: block, text, flags=re.S)
open(path, "w").write(text)
EOF
  log "updated docs/benchmarks.md"
fi
