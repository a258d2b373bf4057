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

# start_registry: a loopback docker-registry storing in $W/registry (emptied first when
# FRESH=1), on a free port chosen at its first start. Sets ADDR (host:port) and REG_PID;
# stops the one it started before, if any.
start_registry() {
  if [ -z "${ADDR:-}" ]; then
    ADDR=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$W/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/registry}}
http: {addr: $ADDR, secret: bench}
YAML
  fi
  if [ -n "${REG_PID:-}" ]; then kill "$REG_PID" 2>/dev/null; wait "$REG_PID" 2>/dev/null || true; fi
  [ "${FRESH:-0}" = 1 ] && rm -rf "$W/registry"
  mkdir -p "$W/registry"
  docker-registry serve "$W/registry.yml" >>"$W/logs/registry.log" 2>&1 &
  REG_PID=$!
  for _ in $(seq 100); do curl -s -o /dev/null "http://$ADDR/v2/" && return 0; sleep 0.1; done
  echo "the registry did not start" >&2; return 1
}

# A loopback docker-registry serving the seed app's base image
# (tests/fixtures/python-base.sh) as docker.io's library/python:3.10-alpine. Sets ADDR
# (host:port) and REG_PID, and writes $W/registries.conf: the registry as docker.io's
# mirror, and as itself over plain HTTP (a build cache ref is read at the registry it
# names, never through a mirror).
serve_python_base() {
  local layout
  layout=$(bash "$REPO/tests/fixtures/python-base.sh")
  start_registry
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

# A dockerd of the benchmark's own (Debian docker.io 20.10): socket, data-root and exec-root
# under $W and $EXEC, no bridge and no iptables, $ADDR (a loopback registry, if any) as
# docker.io's mirror. Uses $DOCKER (the client command) and $NOFILE; sets DOCKERD_PID.
start_dockerd() {
  command -v dockerd >/dev/null && [ -x /usr/bin/docker ] \
    || { echo "dockerd or /usr/bin/docker missing (apt-get install docker.io)"; return 1; }
  mkdir -p "$W/docker" "$EXEC"
  jq -n --arg reg "$ADDR" --arg root "$W/docker" --arg exec "$EXEC" \
        --argjson nofile "$NOFILE" '{
    "data-root": $root, "exec-root": $exec, "storage-driver": "overlay2",
    "registry-mirrors": ["http://" + $reg], "insecure-registries": [$reg],
    "iptables": false, "ip6tables": false, "ip-masq": false, "bridge": "none",
    "features": {"buildkit": true},
    "default-ulimits": {"nofile": {"Name": "nofile", "Hard": $nofile, "Soft": $nofile}}
  }' >"$W/daemon.json"
  setsid dockerd --config-file "$W/daemon.json" -H "unix://$W/docker.sock" \
    --pidfile "$W/dockerd.pid" >"$W/logs/dockerd.log" 2>&1 </dev/null &
  DOCKERD_PID=$!
  for _ in $(seq 150); do
    $DOCKER version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "dockerd did not start: $(tail -n 3 "$W/logs/dockerd.log" | tr '\n' ' ')"
  return 1
}
stop_dockerd() {
  kill "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$DOCKERD_PID" 2>/dev/null || true
  DOCKERD_PID=
  unmount_under "$W/docker" "$EXEC"
}

# Buildah's storage.conf and containers.conf under $W/containers (overlay storage, runc,
# cgroupfs), and its cache-mount directory ($TMPDIR=$W/tmp); sets NOFILE, NPROC and
# BUILDAH_ENV (the environment to run buildah in).
buildah_config() {
  mkdir -p "$W/containers"
  cat >"$W/containers/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$W/containers/graph"
runroot = "$W/containers/run"
[storage.options.overlay]
mountopt = "nodev"
CONF
  # runc: crun 1.8 refuses hybrid cgroups; rlimits no higher than ours (root may lack
  # CAP_SYS_RESOURCE); cgroupfs and file events since there may be no systemd.
  NOFILE=$(ulimit -Hn); [ "$NOFILE" = unlimited ] && NOFILE=1048576
  NPROC=$(ulimit -Hu); { [ "$NPROC" = unlimited ] || [ "$NPROC" -gt 32768 ]; } && NPROC=32768
  cat >"$W/containers/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$NOFILE:$NOFILE", "nproc=$NPROC:$NPROC"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
  BUILDAH_ENV="env CONTAINERS_CONF=$W/containers/containers.conf CONTAINERS_STORAGE_CONF=$W/containers/storage.conf CONTAINERS_REGISTRIES_CONF=$W/registries.conf TMPDIR=$W/tmp"
}

# write_section NAME LINE TABLE: replace the part of docs/benchmarks.md between
# <!-- NAME:start --> and <!-- NAME:end --> with LINE (how and when it ran), a blank line
# and TABLE; fails when the markers are missing.
write_section() {
  local name=$1 line=$2 table=$3 doc=$REPO/docs/benchmarks.md
  grep -q "<!-- $name:start -->" "$doc" && grep -q "<!-- $name:end -->" "$doc" \
    || { echo "no $name markers in $doc; table not written" >&2; return 1; }
  printf '<!-- %s:start -->\n%s\n\n%s\n<!-- %s:end -->\n' "$name" "$line" "$table" "$name" >"$W/section.md"
  python3 - "$doc" "$W/section.md" "$name" <<'PY'
import sys
doc, section, name = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
text = open(doc).read()
start = text.index(f"<!-- {name}:start -->")
end = text.index(f"<!-- {name}:end -->") + len(f"<!-- {name}:end -->")
end += text[end:].startswith("\n")
open(doc, "w").write(text[:start] + section + text[end:])
PY
  log "wrote the table into docs/benchmarks.md"
}
