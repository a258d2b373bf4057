#!/usr/bin/env bash
# The README's test command: on a fresh Debian bookworm machine, install what the tests need
# (Debian packages, cargo-nextest, arm64 emulation), then run every test: as root, the
# rootless subset again as nobody, then the whole suite. Run as root (it installs packages
# and drops to nobody). A test whose prerequisite is missing fails; with RBUILD_ALLOW_SKIP=1
# it is skipped instead, and the skips are counted apart from the passes at the end.
# Arguments are passed to `cargo nextest run` (a filter, say).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "scripts/test.sh: run as root (it installs packages and drops to nobody)" >&2; exit 1; }

# Debian packages the integration tests use as real peers: the CNCF distribution registry,
# skopeo and umoci (independent producers/readers of images), htpasswd (a registry with Basic
# auth), busybox-static (the files of test images), podman with runc (loads and runs what
# rbuild saves; crun fails on this kernel's hybrid cgroups), openssh-client (a real ssh-agent
# behind the RUN --mount=type=ssh relay), mmdebstrap (bootstraps the Python base image of the
# Flask build test: tests/fixtures/python-base.sh), slirp4netns (podman run -p in that test).
# Multi-platform builds (tests/build_platforms.rs) add qemu-user-static (QEMU user emulation,
# its binfmt_misc handlers registered with the F flag, which binfmt-support does) and arm64
# as a dpkg foreign architecture, for tests/fixtures/busybox-arm64.sh to fetch Debian's
# busybox-static:arm64. binfmt_misc is mounted first, so that installing registers them.
# gcc and libc6-dev build tests/fixtures/syscalls.c, the static probe of the seccomp filter.
PKGS=(docker-registry skopeo umoci apache2-utils busybox-static curl ca-certificates
      podman runc conmon catatonit iproute2 pigz uidmap openssh-client mmdebstrap slirp4netns
      qemu-user-static binfmt-support gcc libc6-dev)
[ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
  || echo "!! cannot mount binfmt_misc: the multi-platform build tests will fail"
missing=()
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  missing+=(busybox-static)  # forces the apt-get update that fetches the arm64 lists
fi
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "== apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
# The arm64 handler for foreign RUN steps (installing registers every handler once
# binfmt_misc is mounted; a machine that had qemu-user-static before may need enabling).
update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true

# Cargo tools.
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "== installing cargo-nextest"
  cargo install cargo-nextest --locked
fi

# The conformance vectors are read from ../shared (beside the checkout, or $RBUILD_SHARED);
# without them the conformance tests fail, unless RBUILD_ALLOW_SKIP=1.
[ -d "${RBUILD_SHARED:-../shared}/conformance" ] \
  || echo "!! ${RBUILD_SHARED:-../shared}/conformance not found: the conformance tests will fail"

# Tests that need root skip as nobody and tests that need another user skip as root: each
# run covers what the other skips, so that kind of skip is allowed (RBUILD_ALLOW_SKIP=user);
# a missing tool or file still fails. Each skip is written to a log
# (tests/common/require.rs): the rootless pass's apart from the main run's.
[ "${RBUILD_ALLOW_SKIP:-}" = 1 ] || export RBUILD_ALLOW_SKIP=user
skips_nobody=$(mktemp /tmp/rbuild-skips.XXXXXX)
chmod 666 "$skips_nobody"
export RBUILD_SKIP_LOG=$skips_nobody

# The rootless path: test modules whose subject changes without root run again as nobody:
# the build-context walk (permission cases need an unprivileged user), layer unpacking,
# the store and pulling (no chown, no device nodes, user xattrs only), and rootless builds
# (rbuild re-running itself in a user namespace, with nobody's subordinate range), among them
# the fidelity corpus's `rootless` cases compared with docker's recordings, and the hardening
# tests' escapes tried from a rootless build, the fuzz targets' seeds and regressions
# (layers and archives unpacked without root); and the CLI
# runs as nobody with no state root configured. Everything runs as root below too.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  echo "== rootless: tests and rbuild check as nobody"
  # Subordinate id ranges for nobody, so rootless USER switching is exercised (subuid(5)).
  for f in /etc/subuid /etc/subgid; do
    grep -q '^nobody:' "$f" 2>/dev/null || echo "nobody:200000:65536" >>"$f"
  done
  cargo build --locked --quiet
  # Temporary files (the tests' state roots among them) go to a directory of nobody's, on a
  # filesystem with user xattrs (overlayfs in a user namespace needs them); no HOME, so the
  # tests pass --root themselves.
  nobody_tmp=$(mktemp -d /tmp/rbuild-nobody.XXXXXX)
  chown nobody "$nobody_tmp"
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups env -u RBUILD_ROOT HOME=/nonexistent TMPDIR="$nobody_tmp" "$@"; }
  rootless_modules=(conformance_dockerignore layer_apply layer_write store registry_pull sandbox snapshotter build_rootless fidelity hardening fuzz_regressions)
  # The one integration-test binary (tests/tests.rs), run with a libtest filter per module:
  # `module::` matches the tests of that module (names are `module::test`).
  bin=$(cargo test --locked --no-run --test tests --message-format=json 2>/dev/null \
    | sed -n 's/.*"executable":"\([^"]*\/tests-[0-9a-f]*\)".*/\1/p' | tail -n1)
  [ -n "$bin" ] || { echo "!! could not find the tests binary"; exit 1; }
  filters=()
  for m in "${rootless_modules[@]}"; do filters+=("$m::"); done
  # --show-output prints what passing tests printed (the walk count, SKIPPED lines) after
  # the results, so the `test ... ok` lines stay whole.
  out=$(as_nobody "$bin" "${filters[@]}" --show-output 2>&1) || { echo "$out"; echo "!! tests failed as nobody"; exit 1; }
  # One line per module; a module none of whose tests ran is an error, not a pass.
  for m in "${rootless_modules[@]}"; do
    passed=$(grep -cE "^test $m::[^ ]+ \.\.\. ok\$" <<<"$out" || true)
    echo "   $m as nobody: $passed passed"
    [ "$passed" -gt 0 ] || { echo "$out"; echo "!! no test of $m ran as nobody (filter $m:: matched none)"; exit 1; }
  done
  grep -E "^test result" <<<"$out" | sed "s/^/   all as nobody: /"
  grep -q "walk_cases.json: 34/34 passed" <<<"$out" || { echo "$out"; echo "!! walk cases did not all run as nobody"; exit 1; }
  grep -E "^fidelity corpus: " <<<"$out" | sed "s/^/   /"
  grep -qE "^fidelity corpus: ([0-9]+)/\1 cases match docker, as an unprivileged user" <<<"$out" \
    || { echo "$out"; echo "!! the fidelity corpus's rootless cases did not run as nobody"; exit 1; }
  as_nobody ./target/debug/rbuild check testdata/flask-watchlist
  # check needs no state directory, so no HOME either.
  as_nobody env -u HOME ./target/debug/rbuild check testdata/flask-watchlist
  rm -rf "$nobody_tmp"
else
  echo "!! SKIPPED: rootless checks need root (to drop to nobody) and setpriv"
fi

n=$(sort -u "$skips_nobody" | grep -c . || true)
echo "   as nobody, $n test(s) that need root skipped (they run as root below)"
rm -f "$skips_nobody"

skips=$(mktemp /tmp/rbuild-skips.XXXXXX)
export RBUILD_SKIP_LOG=$skips
echo "== cargo nextest run"
status=0
cargo nextest run --locked --no-fail-fast "$@" || status=$?
# Skipped tests end as passes to nextest: say how many there were, and which.
n=$(sort -u "$skips" | grep -c . || true)
if [ "$n" -gt 0 ]; then
  echo "== $n skip(s) (whole tests, or cases within one; each test is also counted as passed above):"
  sort -u "$skips" | sed 's/^/   /'
else
  echo "== no test skipped"
fi
rm -f "$skips"
exit "$status"
