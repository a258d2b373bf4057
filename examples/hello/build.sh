#!/usr/bin/env bash
# Build examples/hello with rbuild, offline: assemble a tiny base root filesystem from the
# host's dash and coreutils (with the shared libraries they need), build the image, write
# its root filesystem out and run the image's command in it, then rebuild from the cache.
# Runs as root or as any user (a rootless build runs in a user namespace; docs/build.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# The rbuild to run: $RBUILD_BIN, else the one on PATH (`cargo install --locked --path .`),
# else one built here (release; honours CARGO_TARGET_DIR).
if [ -n "${RBUILD_BIN:-}" ]; then
  rbuild=$RBUILD_BIN
elif command -v rbuild >/dev/null; then
  rbuild=$(command -v rbuild)
else
  echo "== no rbuild installed: building it (cargo build --release --locked)"
  cargo build --release --locked --quiet --manifest-path "$repo/Cargo.toml"
  rbuild="${CARGO_TARGET_DIR:-$repo/target}/release/rbuild"
fi
work=$(mktemp -d)
# Everything this script makes lives in $work, removed however the script ends.
trap 'rm -rf "$work"' EXIT
export RBUILD_ROOT="${RBUILD_ROOT:-$work/state}"
# The build context: this example's files, and the base root filesystem assembled below.
ctx=$work/ctx
mkdir -p "$ctx"
cp -r "$here/Dockerfile" "$here/app" "$ctx/"

# The base: /bin/sh and a few tools, each with the libraries ldd lists.
mkdir -p "$ctx/rootfs"/{bin,tmp,etc}
for tool in /bin/sh /bin/dash /bin/cat /bin/echo /usr/bin/id /bin/pwd /bin/ls; do
  real=$(readlink -f "$tool")
  cp -L "$real" "$ctx/rootfs/bin/$(basename "$tool")"
  for lib in $(ldd "$real" | grep -o '/[^ ]*'); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -Ln "$lib" "$ctx/rootfs$lib"
  done
done
mkdir -p "$ctx/rootfs/usr"
ln -sfn ../bin "$ctx/rootfs/usr/bin"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$ctx/rootfs/etc/passwd"
printf 'root:x:0:\n' >"$ctx/rootfs/etc/group"

echo "== rbuild -t hello:1 examples/hello"
"$rbuild" build --progress=plain -t hello:1 "$ctx"
echo "== the image's root filesystem, and its CMD run in it"
"$rbuild" build --progress=quiet -o "type=local,dest=$work/fs" "$ctx" >/dev/null
# (chroot needs root; otherwise the host's sh runs the image's script on its files)
chroot "$work/fs" /usr/local/bin/hello 2>/dev/null ||
  GREETING_FILE="$work/fs/srv/message.txt" sh "$work/fs/usr/local/bin/hello"
echo "== rebuilt with no change: every step from the cache"
"$rbuild" build --progress=plain -t hello:1 "$ctx" 2>&1 | grep -E 'CACHED|built'
