#!/usr/bin/env python3
"""Write the fuzz targets' seed corpora, fuzz/corpus/<target>/<name>: small hand-written
inputs, and tiny tars and compressed streams made here (python3's standard library and the
`zstd` program). The output is deterministic (fixed times, no gzip timestamp), so running
this again changes nothing; the seeds are committed, and the fuzzer's grown corpus is kept
elsewhere (scripts/fuzz.sh).

Usage: python3 fuzz/seeds.py
"""

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import subprocess
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def tar(entries, fmt=tarfile.PAX_FORMAT):
    """entries: (name, kind, payload, extra) with kind file|dir|symlink|link|fifo|chr."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for e in entries:
            name, kind = e[0], e[1]
            payload = e[2] if len(e) > 2 else b""
            extra = e[3] if len(e) > 3 else {}
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            info.mode = extra.get("mode", 0o755 if kind == "dir" else 0o644)
            info.uid = extra.get("uid", 0)
            info.gid = extra.get("gid", 0)
            if "pax" in extra:
                info.pax_headers = extra["pax"]
            data = None
            if kind == "file":
                info.type = tarfile.REGTYPE
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = payload
            elif kind == "link":
                info.type = tarfile.LNKTYPE
                info.linkname = payload
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "chr":
                info.type = tarfile.CHRTYPE
                info.devmajor, info.devminor = payload
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    # tarfile pads to 10 KiB records; two zero blocks end an archive.
    data = buf.getvalue().rstrip(b"\0")
    data += b"\0" * (-len(data) % 512)
    return data + b"\0" * 1024


def gz(data):
    return gzip.compress(data, mtime=0)


def zst(data):
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, stdout=subprocess.PIPE, check=True).stdout


def dockerfile():
    seeds = {
        "minimal": "FROM scratch\n",
        "multistage": (
            "# syntax=docker/dockerfile:1\n"
            "ARG BASE=alpine:3.19\n"
            "FROM ${BASE} AS build\n"
            "WORKDIR /src\n"
            "COPY --chown=1000:1000 --chmod=644 a.txt b/ ./\n"
            "RUN --mount=type=cache,target=/root/.cache \\\n"
            "    --mount=type=secret,id=npm \\\n"
            "    make && \\\n"
            "    # a comment inside\n"
            "    make install\n"
            "\n"
            "FROM scratch\n"
            "COPY --from=build /out /\n"
            'ENTRYPOINT ["/app", "--flag"]\n'
            "CMD serve\n"
        ),
        "heredoc": (
            "FROM busybox\n"
            "RUN <<EOF\n"
            "echo hello\n"
            "echo $HOME\n"
            "EOF\n"
            "COPY <<-'A' <<B /dest/\n"
            "\tliteral $x\n"
            "\tA\n"
            "expanded ${y:-z}\n"
            "B\n"
        ),
        "escape_backtick": "# escape=`\nFROM windows\nRUN dir c:\\ `\n  && echo done\nWORKDIR c:\\app\n",
        "env_label_arg": (
            "FROM alpine AS base\n"
            "ARG V=1 W\n"
            'ENV A=1 B="two words" C=${A}x\n'
            "ENV legacy value here\n"
            'LABEL "k"="v" other=x\n'
            "EXPOSE 80/tcp 443\n"
            "USER 1000:1000\n"
            "STOPSIGNAL SIGTERM\n"
            "VOLUME /data /cache\n"
            'SHELL ["/bin/sh", "-c"]\n'
            "HEALTHCHECK --interval=5s --timeout=3s CMD curl -f http://localhost/ || exit 1\n"
            "ONBUILD RUN echo triggered\n"
            "MAINTAINER someone\n"
        ),
        "add_forms": (
            "FROM alpine\n"
            "ADD --checksum=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef https://example.com/a.tar.gz /\n"
            "ADD --keep-git-dir=true https://github.com/a/b.git#main /src\n"
            'ADD ["a b", "c", "/d/"]\n'
            "COPY --parents --exclude=*.md ./x/**/y /z/\n"
            "COPY --link a /\n"
        ),
        "run_mounts": (
            "FROM alpine\n"
            "RUN --network=none --security=insecure echo\n"
            "RUN --mount=type=bind,from=ctx,source=/a,target=/b,rw \\\n"
            "    --mount=type=tmpfs,target=/tmp,size=64m \\\n"
            "    --mount=type=ssh,id=default,required=true ls\n"
        ),
        "continuation_edges": "FROM a\nRUN a \\\n\n  b \\\n# c\n  d\nRUN x\\\\\nRUN \\\n",
        "crlf_bom": "\ufeffFROM scratch\r\nCOPY a b\r\n",
        "errors_unknown": "FROM scratch\nRUNN x\n",
        "errors_no_from": "ARG x\nRUN y\n",
        "lint_casing": "from Alpine as Build\nFROM build AS final\nCMD echo\nCMD [\"x\"]\n",
        "platforms": "FROM --platform=$BUILDPLATFORM golang AS b\nARG TARGETOS TARGETARCH\nRUN echo $TARGETOS/$TARGETARCH\nFROM --platform=linux/arm64 scratch\n",
        "check_directive": "# check=skip=all;error=true\nFROM scratch\n",
    }
    for name, text in seeds.items():
        put("dockerfile", name, text)


def shell():
    words = [
        "plain text words",
        "$A ${A} ${E:-default} ${U-unset}",
        "${A:+alt} ${U:+alt} ${W}",
        "'$A single' \"$A double\" \\$A",
        "${P#a*} ${P##*b} ${S%/*} ${S%%y*}",
        "${S/x/X} ${S//\\//_} ${A:1:2}",
        "${U:?must be set}",
        "a\\ b \\\\ \"in\\\"side\"",
        "$ ${ } ${A",
        "\ufeffbom $A",
        "unicode \u00e9 \u3042 $N",
    ]
    for i, w in enumerate(words):
        put("shell", f"word{i:02}", b"\x00" + w.encode())
    put("shell", "backtick", b"\x01" + "C:\\path `$A `` ${A}".encode())


def dockerignore():
    seeds = {
        "basic": "# comment\n*.md\n!README.md\nnode_modules\n/build/\n\0README.md\nx.md\nnode_modules/a\nbuild/x",
        "globs": "**/*.go\na/**/b\n[a-c]?.txt\n\\*literal\nx[!y]z\n\0cmd/main.go\na/x/y/b\nb1.txt\n*literal",
        "exceptions": "a\n!a/b\na/b/c\n! spaced\n\0a/b\na/b/c\na/x\nspaced",
        "cleaning": "./a/../b\n//c//\n!./d\n.\n..\n\0b\nc\nd\n.",
        "crlf_bom": "\ufeff*.tmp\r\n!keep.tmp\r\n\0x.tmp\nkeep.tmp",
        "errors": "[\n!\na\\\n\0a",
    }
    for name, text in seeds.items():
        put("dockerignore", name, text)


# The layer-apply selector byte: compression (value % 5) and mode (value // 5 % 3).
RAW, GZ_GIVEN, ZST_GIVEN, GZ_MADE, ZST_MADE = range(5)
APPLY, OVERLAY, OVERLAY_USER = 0, 5, 10


def layer_tars():
    return {
        "files": tar([("etc", "dir"), ("etc/hosts", "file", "127.0.0.1 localhost\n"), ("bin/sh", "file", "#!", {"mode": 0o4755})]),
        "links": tar([("a", "file", "x"), ("b", "link", "a"), ("c", "symlink", "a"), ("d", "symlink", "/etc/passwd"), ("d2/x", "file", "y")]),
        "whiteouts": tar([("dir", "dir"), ("dir/.wh..wh..opq", "file"), ("gone/.wh.x", "file"), (".wh.up", "file")]),
        "traversal": tar([("../escape", "file", "no")]),
        "through_symlink": tar([("up/x", "file", "out"), ("abs/y", "file", "out"), ("dotdot/root/z", "file", "out")]),
        "symlink_then_write": tar([("l", "symlink", "../../.."), ("l/tmp/x", "file", "out")]),
        "hardlink_out": tar([("h", "link", "file"), ("h2", "link", "../sentinel")]),
        "pax_xattr": tar([("f", "file", "x", {"pax": {"SCHILY.xattr.user.k": "v", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "mtime": "1.5"}})]),
        "gnu_longname": tar([("d/" + "n" * 150, "file", "long"), ("s", "symlink", "t" * 120)], fmt=tarfile.GNU_FORMAT),
        "devices": tar([("dev", "dir"), ("dev/null", "chr", (1, 3)), ("dev/p", "fifo")]),
        "owners_modes": tar([("o", "dir", b"", {"mode": 0o500, "uid": 70000, "gid": 5}), ("o/f", "file", "x", {"mode": 0o000})]),
        "replace_kinds": tar([("x", "dir"), ("x", "file", "now a file"), ("y", "file", "z"), ("y", "dir")]),
    }


def layer_apply():
    tars = layer_tars()
    for name, data in tars.items():
        put("layer_apply", name, bytes([RAW]) + data)
    put("layer_apply", "files.gz", bytes([GZ_GIVEN]) + gz(tars["files"]))
    put("layer_apply", "links.zst", bytes([ZST_GIVEN]) + zst(tars["links"]))
    put("layer_apply", "whiteouts.overlay", bytes([RAW + OVERLAY]) + tars["whiteouts"])
    put("layer_apply", "whiteouts.overlay_user", bytes([RAW + OVERLAY_USER]) + tars["whiteouts"])
    put("layer_apply", "pax_xattr.overlay", bytes([GZ_MADE + OVERLAY]) + tars["pax_xattr"])
    put("layer_apply", "through_symlink.zst_made", bytes([ZST_MADE]) + tars["through_symlink"])
    put("layer_apply", "trailing_bytes", bytes([RAW]) + tars["files"] + b"trailing garbage")


def add_archive():
    base = tar([("dir", "dir"), ("dir/f", "file", "content"), ("dir/l", "symlink", "f"), ("dir/h", "link", "dir/f")])
    put("add_archive", "plain.tar", base)
    put("add_archive", "tar.gz", gz(base))
    put("add_archive", "tar.bz2", bz2.compress(base))
    put("add_archive", "tar.xz", lzma.compress(base))
    put("add_archive", "tar.zst", zst(base))
    put("add_archive", "multi_member.gz", gz(base[:512]) + gz(base[512:]))
    put("add_archive", "not_an_archive", "just some text\n")
    put("add_archive", "traversal.tar", tar([("../../x", "file", "clamped"), ("/abs", "file", "clamped")]))
    put("add_archive", "through_symlink.tar", tar([("up/x", "file", "in"), ("abs/y", "file", "in"), ("dotdot/z", "file", "in"), ("file", "file", "replaces the link")]))
    put("add_archive", "symlink_then_write.tar", tar([("esc", "symlink", "/"), ("esc/etc/x", "file", "in"), ("rel", "symlink", "../../.."), ("rel/y", "file", "in")]))
    put("add_archive", "hardlinks.tar", tar([("a", "file", "x"), ("b", "link", "a"), ("c", "link", "../sentinel"), ("d", "link", "")]))
    put("add_archive", "fifo.tar", tar([("p", "fifo")]))
    put("add_archive", "pax_global.tar", tar([("f", "file", "x", {"pax": {"comment": "git archive"}})]))
    put("add_archive", "replace_kinds.tar", tar([("x", "dir"), ("x/y", "file", "a"), ("x", "file", "b"), ("up", "dir")]))


def oci_json():
    d = "sha256:" + "a" * 64
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 7023},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": 32654, "annotations": {"b": "2", "a": "1"}}],
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
    }
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 7143,
             "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1", "os.features": ["win32k"]}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 7682,
             "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        ],
    }
    docker = dict(manifest, mediaType="application/vnd.docker.distribution.manifest.v2+json")
    docker_list = dict(index, mediaType="application/vnd.docker.distribution.manifest.list.v2+json")
    no_media_type = {k: v for k, v in manifest.items() if k != "mediaType"}
    config = {
        "created": "2024-01-01T00:00:00.123456789Z",
        "architecture": "arm64",
        "variant": "v8",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}}, "Labels": {"a": "b"},
                   "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000}, "User": "1000", "ArgsEscaped": True},
        "rootfs": {"type": "layers", "diff_ids": [d]},
        "history": [{"created_by": "RUN x", "empty_layer": True}],
        "unknown_field": {"nested": [1, 2.5, -0.0, 1e300, None, "x"]},
    }
    for name, sel, doc in [
        ("manifest", 1, manifest), ("index", 2, index), ("docker_manifest", 3, docker),
        ("docker_list", 4, docker_list), ("no_media_type", 0, no_media_type), ("config", 0, config),
    ]:
        put("oci_json", name, bytes([sel]) + json.dumps(doc, indent=1).encode())
    put("oci_json", "schema1", bytes([5]) + b'{"schemaVersion": 1, "name": "x", "fsLayers": []}')
    put("oci_json", "floats", bytes([6]) + b'{"architecture":"amd64","os":"linux","x":[0.1,1.7976931348623157e308,5e-324,123456789012345678901234567890]}')


def registry_auth():
    seeds = {
        "bearer": 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
        "basic": 'Basic realm="Registry Realm"',
        "both": 'Basic realm="x", Bearer realm="https://a/t",service=s',
        "escapes": 'Bearer realm="https://a/t?x=\\"q\\"",service="a\\\\b", scope=unquoted',
        "unterminated": 'Bearer realm="https://a',
        "other_scheme": 'Negotiate abc, NTLM',
        "token": '{"token":"abc","expires_in":300,"issued_at":"2024-01-01T00:00:00Z"}',
        "access_token": '{"access_token":"xyz","expires_in":10}',
        "empty_token": '{"token":"","access_token":"z"}',
        "token_array": '["t", null, 61]',
    }
    for name, text in seeds.items():
        put("registry_auth", name, text)


def registries_conf():
    refs = "\0docker.io/library/busybox:1\nexample.com/team/app@sha256:" + "b" * 64 + "\nregistry.internal/x"
    seeds = {
        "mirrors": (
            'unqualified-search-registries = ["docker.io", "quay.io"]\n'
            'short-name-mode = "enforcing"\n'
            "[[registry]]\n"
            'prefix = "docker.io"\n'
            'location = "registry-1.docker.io"\n'
            "[[registry.mirror]]\n"
            'location = "mirror.example:5000"\n'
            "insecure = true\n"
            "[[registry.mirror]]\n"
            'location = "other.example/cache"\n'
            'pull-from-mirror = "digest-only"\n'
        ),
        "blocked": '[[registry]]\nlocation = "example.com"\nblocked = true\n',
        "rewrite": '[[registry]]\nprefix = "example.com/team"\nlocation = "registry.internal/mirror/team"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = "m.example"\n',
        "wildcard": '[[registry]]\nprefix = "*.example.com"\nlocation = "proxy.local"\ninsecure = true\n',
        "aliases": '[aliases]\n"app" = "quay.io/team/app"\n',
        "v1": '[registries.search]\nregistries = ["docker.io"]\n[registries.insecure]\nregistries = ["localhost:5000"]\n[registries.block]\nregistries = ["bad.example"]\n',
        "bad_location": '[[registry]]\nprefix = "docker.io/library"\nlocation = "docker.io"\n',
        "syntax_error": '[[registry]\nlocation = \n',
    }
    for name, text in seeds.items():
        put("registries_conf", name, text + refs)


def auth_json():
    import base64
    b = lambda s: base64.b64encode(s.encode()).decode()
    seeds = {
        "docker_config": {"auths": {"https://index.docker.io/v1/": {"auth": b("u:p")}, "quay.io/org": {"auth": b("o:q")}}, "psFormat": "table"},
        "spellings": {"auths": {"fuzz.example:5000": {"auth": b("old:x")}, "https://fuzz.example:5000": {"identitytoken": "t"}, "http://fuzz.example:5000/v1/": {}}},
        "tokens": {"auths": {"quay.io": {"registrytoken": "rt"}, "docker.io": {"username": "u", "password": "p"}}},
        "helpers": {"credHelpers": {"gcr.io": "gcloud"}, "credsStore": "", "auths": {}},
        "creds_store": {"credsStore": "desktop", "auths": {"fuzz.example:5000": {}}},
        "bad_auth": {"auths": {"docker.io": {"auth": "!!!"}}},
    }
    for name, doc in seeds.items():
        put("auth_json", name, json.dumps(doc, indent="\t"))
    put("auth_json", "empty", "")
    put("auth_json", "duplicate_keys", '{"auths":{"fuzz.example:5000":{"auth":"%s"},"fuzz.example:5000":{"auth":"%s"}},"x":1,"x":2}' % (b("a:b"), b("c:d")))
    put("auth_json", "not_object", "[1, 2]")


def archive_load():
    import hashlib
    digest = lambda data: "sha256:" + hashlib.sha256(data).hexdigest()
    layer = tar([("hello", "file", "world\n")])
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest(layer)]}, "config": {}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest(layer), "size": len(layer)}],
    }).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": "example.com/app:1", "org.opencontainers.image.ref.name": "1"}}]}).encode()
    blob = lambda data: ("blobs/sha256/" + digest(data)[7:], "file", data)
    put("archive_load", "oci_archive", tar([
        ("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", "file", index),
        blob(config), blob(layer), blob(manifest)]))
    put("archive_load", "oci_archive_missing_manifest", tar([
        ("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", "file", index), blob(config), blob(layer)]))
    put("archive_load", "oci_archive_bad_blob", tar([
        ("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", "file", index),
        ("blobs/sha256/" + digest(config)[7:], "file", config + b" "), blob(layer), blob(manifest)]))
    config2 = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [digest(layer)] * 2}}).encode()
    docker_manifest = json.dumps([{"Config": digest(config2)[7:] + ".json", "RepoTags": ["app:1", "example.com/x:latest"],
                                   "Layers": ["abc/layer.tar", "def/layer.tar"]}]).encode()
    put("archive_load", "docker_archive", tar([
        ("manifest.json", "file", docker_manifest), (digest(config2)[7:] + ".json", "file", config2),
        ("abc", "dir"), ("abc/layer.tar", "file", layer), ("def", "dir"), ("def/layer.tar", "symlink", "../abc/layer.tar"),
        ("repositories", "file", b'{"app":{"1":"abc"}}')]))
    put("archive_load", "docker_archive_gz_layer", tar([
        ("manifest.json", "file", json.dumps([{"Config": "c.json", "RepoTags": ["gz:1"], "Layers": ["l.tar.gz"]}]).encode()),
        ("c.json", "file", config), ("l.tar.gz", "file", gz(layer))]))
    put("archive_load", "unknown_format", tar([("x", "file", "y")]))


def main():
    if os.path.isdir(CORPUS):
        shutil.rmtree(CORPUS)
    for seeds in [dockerfile, shell, dockerignore, layer_apply, add_archive, oci_json, registry_auth,
                  registries_conf, auth_json, archive_load]:
        seeds()


if __name__ == "__main__":
    main()
