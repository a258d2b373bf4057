//! What a build reads from outside the context stays inside what it names: a Git
//! repository's `#ref:subdir` with `..` or through the repository's symlinks (BuildKit
//! CVE-2026-33748), a repository whose tree holds symlinks to host paths, and archives,
//! local or downloaded, with entries that climb out (`../x`, absolute names, a symlink
//! then a write through it, a hard link to a path outside; Buildah CVE-2026-44517). A real
//! `git daemon` and HTTP server on loopback serve them.

use std::path::{Path, PathBuf};

use super::{Ctx, shows_sentinel};
use crate::common::{describe, require, servers};

/// A repository whose tree holds a Dockerfile copying the whole context, a directory
/// `sub/`, and symlinks to `/`, by `..`, to the host directory holding the sentinel and to
/// the host's `/etc/passwd`; served by `git daemon`. Returns the server and the URL.
fn hostile_repository(ctx: &Ctx) -> (crate::common::process::Process, String) {
    let work = ctx.home.join("repo-work");
    std::fs::create_dir_all(work.join("sub")).unwrap();
    std::fs::write(work.join("Dockerfile"), "FROM scratch\nCOPY . /ctx/\n").unwrap();
    std::fs::write(
        work.join("Dockerfile.escape"),
        "FROM scratch\nCOPY hostlink/sentinel /got/\n",
    )
    .unwrap();
    std::fs::write(work.join("sub/marker"), "from the repository\n").unwrap();
    let links: [(&str, PathBuf); 4] = [
        ("rootlink", "/".into()),
        ("up", "../../../..".into()),
        ("hostlink", ctx.home.clone()),
        ("passwd", "/etc/passwd".into()),
    ];
    for (name, target) in links {
        std::os::unix::fs::symlink(target, work.join(name)).unwrap();
    }
    let (daemon, port) = servers::git_daemon(&work, &ctx.home.join("repos"));
    (daemon, format!("git://127.0.0.1:{port}/repo.git"))
}

const OUTPUTS: &[&str] = &["repo-work", "repos", "out", "fs", "www"];

/// The Git context `url#main:subdir`: with `..` or through the repository's links to `/`
/// it is the checkout's root (its Dockerfile and files), never a directory of the host.
#[test]
fn git_subdir_stays_in_the_checkout() {
    if !require::tools(&["git"]) {
        return;
    }
    let Some(ctx) = Ctx::new("git-subdir", "") else {
        return;
    };
    let (_daemon, url) = hostile_repository(&ctx);
    let out = ctx.home.join("out");
    for subdir in [
        "rootlink",
        "up",
        "../../..",
        "sub/../../..",
        "rootlink/sub/..",
        "/",
    ] {
        let _ = std::fs::remove_dir_all(&out);
        let dest = format!("type=local,dest={}", out.display());
        let context = format!("{url}#main:{subdir}");
        let args = ["build", "--progress=plain", "-o", &dest, &context];
        let o = ctx.rbuild(&args);
        assert!(o.status.success(), "{}", describe(&args, &o));
        assert_eq!(
            std::fs::read_to_string(out.join("ctx/sub/marker")).unwrap(),
            "from the repository\n",
            "#main:{subdir} is the checkout's root"
        );
        assert!(out.join("ctx/rootlink").is_symlink());
        assert!(!out.join("ctx/sentinel").exists() && !out.join("ctx/state").exists());
    }
    // A link to a host path names a path of the checkout, which it does not have.
    let context = format!("{url}#main:hostlink");
    let o = ctx.rbuild(&["build", "--progress=plain", &context]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("subdirectory \"hostlink\""), "{stderr}");
    // COPY through the repository's link to the host: not found in the context.
    let context = format!("{url}#main");
    let o = ctx.rbuild(&[
        "build",
        "--progress=plain",
        "-f",
        "Dockerfile.escape",
        &context,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not found") && !shows_sentinel(&stderr),
        "{stderr}"
    );
    ctx.assert_host_untouched(OUTPUTS);
}

/// ADD of a Git URL: `#main:subdir` through links resolves in the checkout, the
/// repository's symlinks to host paths are copied as links (never followed on the host),
/// and `--keep-git-dir` changes what is added (and so the step's key).
#[test]
fn git_add_keeps_the_repository_inside_the_destination() {
    if !require::tools(&["git"]) {
        return;
    }
    let Some(ctx) = Ctx::new("git-add", "") else {
        return;
    };
    let (_daemon, url) = hostile_repository(&ctx);
    ctx.dockerfile(&format!(
        "FROM scratch\nADD {url}#main:rootlink /r/\nADD {url}#main:up /u/\nADD {url}#main:sub/../.. /s/\nADD {url}#main /all/\nADD --keep-git-dir=true {url}#main /kept/\n"
    ));
    let fs = ctx.files("fs");
    for d in ["r", "u", "s", "all", "kept"] {
        assert_eq!(
            std::fs::read_to_string(fs.join(d).join("sub/marker")).unwrap(),
            "from the repository\n",
            "/{d} holds the repository's root"
        );
        assert!(!fs.join(d).join("lock").exists() && !fs.join(d).join("0").exists());
    }
    assert_eq!(
        std::fs::read_link(fs.join("all/passwd")).unwrap(),
        Path::new("/etc/passwd"),
        "a link out is added as the link"
    );
    assert_eq!(
        std::fs::read_link(fs.join("all/hostlink")).unwrap(),
        ctx.home.as_path()
    );
    assert!(!fs.join("all/.git").exists() && fs.join("kept/.git").is_dir());
    ctx.assert_host_untouched(OUTPUTS);
}

/// A tar entry with `name` written as is (the tar crate's path setters refuse `..` and
/// absolute names, which is what is being tested).
fn raw_entry(kind: tar::EntryType, name: &str, link: Option<&str>, data: &[u8]) -> tar::Header {
    let mut h = tar::Header::new_old();
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    let old = h.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    h
}

/// A tar whose entries try every way out of the directory it is unpacked into.
fn hostile_tar(home: &Path) -> Vec<u8> {
    use tar::EntryType as T;
    let host = home.display().to_string();
    let entries: Vec<(T, &str, Option<&str>, &[u8])> = vec![
        (T::Directory, ".", None, b""),
        (T::Directory, "..", None, b""),
        (T::Regular, "normal", None, b"normal\n"),
        (T::Regular, "../escape-dotdot", None, b"x\n"),
        (T::Regular, "a/../../../escape-deep", None, b"x\n"),
        (T::Regular, "/escape-absolute", None, b"x\n"),
        (T::Symlink, "rootlink", Some("/"), b""),
        (T::Regular, "rootlink/through-rootlink", None, b"x\n"),
        (T::Symlink, "uplink", Some("../../../../../../.."), b""),
        (T::Regular, "uplink/through-uplink", None, b"x\n"),
        (T::Symlink, "hostlink", Some(&host), b""),
        (T::Regular, "hostlink/through-hostlink", None, b"x\n"),
        (T::Regular, "hostlink/sentinel", None, b"overwritten\n"),
        (T::Link, "hard-out", Some("../../sentinel"), b""),
        (T::Link, "hard-abs", Some(&host), b""),
    ];
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, link, data) in entries {
        let h = raw_entry(kind, name, link, data);
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Names [`hostile_tar`] writes through its ways out.
const ESCAPES: &[&str] = &[
    "escape-dotdot",
    "escape-deep",
    "escape-absolute",
    "through-rootlink",
    "through-uplink",
    "through-hostlink",
];

/// Where the escaping names landed below `dir`.
fn landed(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if ESCAPES.contains(&name.as_str()) {
                out.push(path.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", &mut out);
    out.sort();
    out
}

/// Local `ADD evil.tar /dst/` (unpacked, as ADD does with a local archive) and remote ADD
/// of the same tar over HTTP, as is and with `--unpack=true`: nothing reaches the host,
/// and whatever the archive's ways out write lands below the destination, as BuildKit
/// keeps escaping names inside the destination root.
#[test]
fn archives_write_nothing_outside_the_destination() {
    if !require::tools(&["python3"]) {
        return;
    }
    let Some(ctx) = Ctx::new("archives", "") else {
        return;
    };
    let tar = hostile_tar(&ctx.home);
    std::fs::write(ctx.dir.join("evil.tar"), &tar).unwrap();
    let www = ctx.home.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("evil.tar"), &tar).unwrap();
    let (_server, port) = servers::http(&www);
    let url = format!("http://127.0.0.1:{port}/evil.tar");
    let cases = [
        ("local", "ADD evil.tar /dst/".to_string()),
        ("remote", format!("ADD {url} /dst/")),
        ("remote-unpacked", format!("ADD --unpack=true {url} /dst/")),
    ];
    for (name, add) in cases {
        ctx.dockerfile(&format!("FROM base\n{add}\n"));
        let out = ctx.home.join("fs");
        let _ = std::fs::remove_dir_all(&out);
        let dest = format!("type=local,dest={}", out.display());
        let (args, o) = ctx.build(&["-o", &dest]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!shows_sentinel(&stderr), "{name}: {stderr}");
        if !o.status.success() {
            // Refusing the archive is as good as confining it, said at the ADD.
            assert_eq!(o.status.code(), Some(1), "{name}: {stderr}");
            assert!(stderr.contains("--> Dockerfile:5:"), "{name}: {stderr}");
        } else {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let outside: Vec<String> = landed(&out)
                .into_iter()
                .filter(|p| !p.starts_with("dst/"))
                .collect();
            assert!(
                outside.is_empty(),
                "{name}: written outside /dst: {outside:?}\n{}",
                describe(&args, &o)
            );
            if name == "remote" {
                assert!(
                    out.join("dst/evil.tar").is_file(),
                    "a download is not unpacked"
                );
            } else {
                assert_eq!(
                    std::fs::read_to_string(out.join("dst/normal")).unwrap(),
                    "normal\n"
                );
            }
            eprintln!("{name}: landed {:?}", landed(&out));
        }
        ctx.assert_host_untouched(OUTPUTS);
    }
}
