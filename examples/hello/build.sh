#!/usr/bin/env bash
# Build examples/hello with rbuild, offline: assemble a tiny base root filesystem from the
# host's dash and coreutils (with the shared libraries they need), build the image, write
# its root filesystem out and run the image's command in it, then rebuild from the cache.
# Runs as root or as any user (a rootless build runs in a user namespace; docs/build.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# RBUILD_BIN picks an rbuild that is already built (CI uses its debug build).
if [ -z "${RBUILD_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
fi
rbuild="${RBUILD_BIN:-$repo/target/release/rbuild}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export RBUILD_ROOT="${RBUILD_ROOT:-$work/state}"

# The base: /bin/sh and a few tools, each with the libraries ldd lists.
rm -rf "$here/rootfs"
mkdir -p "$here/rootfs"/{bin,tmp,etc}
for tool in /bin/sh /bin/dash /bin/cat /bin/echo /usr/bin/id /bin/pwd /bin/ls; do
  real=$(readlink -f "$tool")
  cp -L "$real" "$here/rootfs/bin/$(basename "$tool")"
  for lib in $(ldd "$real" | grep -o '/[^ ]*'); do
    mkdir -p "$here/rootfs$(dirname "$lib")"
    cp -Ln "$lib" "$here/rootfs$lib"
  done
done
mkdir -p "$here/rootfs/usr"
ln -sfn ../bin "$here/rootfs/usr/bin"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$here/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$here/rootfs/etc/group"

echo "== rbuild -t hello:1 examples/hello"
"$rbuild" build --progress=plain -t hello:1 "$here"
echo "== the image's root filesystem, and its CMD run in it"
"$rbuild" build --progress=quiet -o "type=local,dest=$work/fs" "$here" >/dev/null
# (chroot needs root; otherwise the host's sh runs the image's script on its files)
chroot "$work/fs" /usr/local/bin/hello 2>/dev/null ||
  GREETING_FILE="$work/fs/srv/message.txt" sh "$work/fs/usr/local/bin/hello"
echo "== rebuilt with no change: every step from the cache"
"$rbuild" build --progress=plain -t hello:1 "$here" 2>&1 | grep -E 'CACHED|built'
rm -rf "$here/rootfs"
