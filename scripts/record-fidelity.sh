#!/usr/bin/env bash
# Re-record the fidelity corpus (testdata/fidelity/*/expected.txt) with a real docker 20.10
# and its BuildKit. Works on a fresh Debian bookworm machine: installs what it needs, then
# runs the ignored test `fidelity::record`, which starts a registry with the corpus's base
# image and a dockerd of its own (stopped at the end), builds every case with docker and
# writes what it made. Run as root. `RBUILD_FIDELITY_CASES=a,b` records only those cases.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "record-fidelity: run as root (it starts dockerd)" >&2; exit 1; }

PKGS=(docker.io docker-registry skopeo busybox-static ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The docker.io package starts a system dockerd; the recording runs its own, so the system
# one is left as it is. Debian's 20.10 client is /usr/bin/docker (RBUILD_DOCKER overrides).
/usr/bin/docker --version

cargo test --locked --test tests fidelity::record -- --ignored --exact --nocapture
git status --short testdata/fidelity
