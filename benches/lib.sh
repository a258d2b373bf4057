# Shared by the seed-app benchmarks (benches/build.sh, benches/cache.sh): sourced after
# the script has set REPO (the checkout) and W (its work directory, with logs/ and bin/).

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# Unmount whatever a tool left mounted below these directories.
unmount_under() {
  findmnt -rn -o TARGET | awk -v a="$1" -v b="${2:-$1}" 'index($0, a) == 1 || index($0, b) == 1' \
    | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# script NAME COMMAND...: a shell script $W/bin/NAME running COMMAND.
script() { local f=$W/bin/$1; shift; printf '#!/bin/sh\nset -e\n%s\n' "$*" >"$f"; chmod +x "$f"; }

# The most telling line of a failed build's output ($W/logs/NAME.log).
why() {
  local l
  l=$(grep -iE 'error|fail' "$W/logs/$1.log" 2>/dev/null | tail -n 1)
  [ -n "$l" ] || l=$(tail -n 1 "$W/logs/$1.log" 2>/dev/null)
  echo "${l:-no output}" | cut -c1-300
}

# A loopback docker-registry serving the seed app's base image
# (tests/fixtures/python-base.sh) as docker.io's library/python:3.10-alpine. Sets ADDR
# (host:port) and REG_PID, and writes $W/registries.conf: the registry as docker.io's
# mirror, and as itself over plain HTTP (a build cache ref is read at the registry it
# names, never through a mirror).
serve_python_base() {
  local layout port
  layout=$(bash "$REPO/tests/fixtures/python-base.sh")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ADDR=127.0.0.1:$port
  mkdir -p "$W/registry"
  cat >"$W/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/registry}}
http: {addr: $ADDR, secret: bench}
YAML
  docker-registry serve "$W/registry.yml" >"$W/logs/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://$ADDR/v2/" && break; sleep 0.1; done
  skopeo copy -q --dest-tls-verify=false "oci:$layout:3.10-alpine" \
    "docker://$ADDR/library/python:3.10-alpine"
  cat >"$W/registries.conf" <<CONF
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "$ADDR"
insecure = true
[[registry]]
prefix = "$ADDR"
location = "$ADDR"
insecure = true
CONF
}
