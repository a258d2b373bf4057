#!/usr/bin/env bash
# Pull benchmark: `rbuild pull` against `skopeo copy … oci:` of the same 200 MiB image from a
# loopback registry, in the same session, plus peak RSS of each. Prints a markdown table.
# Needs: docker-registry, skopeo, umoci, hyperfine, GNU time (apt), a release build.
# Usage: bash benches/pull.sh [MiB]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
MIB=${1:-200}
cargo build --release --quiet
RBUILD=$PWD/target/release/rbuild
W=$(mktemp -d /tmp/rbuild-bench-pull.XXXX)
trap 'kill $REG_PID 2>/dev/null || true; rm -rf "$W"' EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ADDR=127.0.0.1:$PORT
mkdir -p "$W/reg"
cat >"$W/reg.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/reg}}
http: {addr: $ADDR, secret: bench}
YAML
docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
REG_PID=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://$ADDR/v2/" && break; sleep 0.1; done

# Four layers of MIB/4 each: half random (incompressible), half text (compressible).
L=$W/layout
umoci init --layout "$L" >/dev/null
umoci new --image "$L:1" >/dev/null
for i in 1 2 3 4; do
  umoci unpack --rootless --image "$L:1" "$W/b" >/dev/null
  head -c $((MIB * 1024 * 1024 / 8)) /dev/urandom >"$W/b/rootfs/random$i"
  python3 -c "import sys; n=int(sys.argv[1]); line=b'layer $i of the rbuild pull benchmark, compressible text\n'; sys.stdout.buffer.write((line*(n//len(line)+1))[:n])" $((MIB * 1024 * 1024 / 8)) >"$W/b/rootfs/text$i"
  umoci repack --image "$L:1" "$W/b" >/dev/null
  rm -rf "$W/b"
done
skopeo copy -q --dest-tls-verify=false "oci:$L:1" "docker://$ADDR/bench/big:1"
SIZE=$(skopeo inspect --raw --tls-verify=false "docker://$ADDR/bench/big:1" | python3 -c 'import json,sys; print(sum(l["size"] for l in json.load(sys.stdin)["layers"]))')

cat >"$W/registries.conf" <<CONF
[[registry]]
prefix = "$ADDR"
location = "$ADDR"
insecure = true
CONF
export CONTAINERS_REGISTRIES_CONF=$W/registries.conf

SKOPEO="skopeo copy -q --src-tls-verify=false docker://$ADDR/bench/big:1 oci:$W/out:1"
RB="$RBUILD --root $W/rb pull -q $ADDR/bench/big:1"
hyperfine --style none --warmup 1 --runs 5 --export-json "$W/h.json" \
  --prepare "rm -rf $W/out $W/rb" -n skopeo "$SKOPEO" -n rbuild "$RB" >/dev/null

rss() { rm -rf "$W/out" "$W/rb"; /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
SK_RSS=$(rss $SKOPEO)
RB_RSS=$(rss $RB)

python3 - "$W/h.json" "$SIZE" "$SK_RSS" "$RB_RSS" "$MIB" <<'PY'
import json, sys
h = json.load(open(sys.argv[1]))["results"]
size, sk_rss, rb_rss, mib = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
t = {r["command"]: r for r in h}
sk, rb = t["skopeo"], t["rbuild"]
print(f"Image: {mib} MiB of files in 4 layers, {size/1e6:.1f} MB compressed; loopback docker-registry; 5 runs after 1 warm-up, each starting from an empty destination.\n")
print("| tool | mean | ± | peak RSS | ratio to skopeo |")
print("|---|---|---|---|---|")
for name, r, rss in (("skopeo copy → oci dir", sk, sk_rss), ("rbuild pull → store", rb, rb_rss)):
    print(f"| {name} | {r['mean']:.3f} s | {r['stddev']:.3f} | {rss/1024:.0f} MiB | {r['mean']/sk['mean']:.2f}× |")
PY
