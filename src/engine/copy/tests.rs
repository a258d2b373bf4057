//! End-to-end tests of [`super::copy`] and [`super::inputs_digest`] on temporary trees (they
//! run as root: owners are checked).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::chmod::Chmod;
use super::source::tests::make;
use super::{CopyError, CopyOp, HashCache, OpKind, SourceRoot, copy, inputs_digest};
use crate::context::{Matcher, read_ignore_file};
use crate::dockerfile::instruction::InlineSource;

/// Everything under `dir`, sorted: `path mode uid:gid`, then ` -> target` for symlinks and
/// ` =content` for files.
fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_str().unwrap().to_string();
            let mut line = format!("{rel} {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid());
            if m.is_symlink() {
                line += &format!(" -> {}", std::fs::read_link(&p).unwrap().display());
            } else if m.is_file() {
                line += &format!(" ={}", String::from_utf8_lossy(&std::fs::read(&p).unwrap()));
            } else {
                todo.push(p);
            }
            out.push(line);
        }
    }
    out.sort();
    out
}

/// A context from `tree` (see `make`), files 0644 owned by 1234:1234 so that the reset to
/// root shows, plus `.dockerignore` text.
struct Context {
    dir: tempfile::TempDir,
    ignore: Option<Matcher>,
}

impl Context {
    fn new(tree: &[&str], dockerignore: &str) -> Context {
        let dir = tempfile::tempdir().unwrap();
        make(dir.path(), tree);
        for item in tree {
            let p = dir
                .path()
                .join(item.split(" -> ").next().unwrap().trim_end_matches('/'));
            std::os::unix::fs::lchown(&p, Some(1234), Some(1234)).unwrap();
        }
        let patterns = read_ignore_file(dockerignore);
        let ignore = (!patterns.is_empty()).then(|| Matcher::new(&patterns).unwrap());
        Context { dir, ignore }
    }

    fn root(&self) -> SourceRoot<'_> {
        SourceRoot::Context {
            dir: self.dir.path(),
            ignore: self.ignore.as_ref(),
        }
    }
}

fn op(kind: OpKind, sources: &[&str], dest: &str) -> CopyOp {
    let mut op = CopyOp::new(kind, dest);
    op.sources = sources.iter().map(|s| s.to_string()).collect();
    op
}

/// Run `op` from `src` into a fresh root prepared with `image` (see `make`); the listing of
/// the root, or the error message.
fn run(src: &SourceRoot, image: &[&str], op: &CopyOp) -> Result<Vec<String>, String> {
    let root = tempfile::tempdir().unwrap();
    make(root.path(), image);
    copy(src, root.path(), op).map_err(|e| e.to_string())?;
    Ok(listing(root.path()))
}

fn lines(v: &[&str]) -> Result<Vec<String>, String> {
    Ok(v.iter().map(|s| s.to_string()).collect())
}

/// `copies!(context tree, .dockerignore, image tree; op => listing or error)`.
macro_rules! copies {
    ($($name:ident: $tree:expr, $ignore:expr, $image:expr; $op:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            let ctx = Context::new(&$tree, $ignore);
            assert_eq!(run(&ctx.root(), &$image, &$op), $want);
        }
    )*};
}

const TREE: [&str; 7] = [
    "a/",
    "a/x",
    "a/y.md",
    "f",
    "link -> a/x",
    "sub/",
    "sub/deep/",
];

fn with(mut op: CopyOp, f: impl FnOnce(&mut CopyOp)) -> CopyOp {
    f(&mut op);
    op
}

copies! {
    dot_copies_the_context_minus_ignored: TREE, "**/*.md\nsub", [];
        with(op(OpKind::Copy, &["."], "."), |o| o.workdir = "/app".into()) => lines(&[
            "app 755 0:0", "app/a 755 0:0", "app/a/x 644 0:0 =a/x", "app/f 644 0:0 =f",
            "app/link 777 0:0 -> a/x",
        ]);
    file_to_a_new_name: TREE, "", [];
        op(OpKind::Copy, &["f"], "/etc/conf") => lines(&["etc 755 0:0", "etc/conf 644 0:0 =f"]);
    file_into_an_existing_directory: TREE, "", ["etc/"];
        op(OpKind::Copy, &["f"], "/etc") => lines(&["etc 755 0:0", "etc/f 644 0:0 =f"]);
    file_into_a_slash_destination: TREE, "", [];
        op(OpKind::Copy, &["/f"], "new/") => lines(&["new 755 0:0", "new/f 644 0:0 =f"]);
    several_sources_each_land_on_the_path: TREE, "", [];
        op(OpKind::Copy, &["f", "a/x"], "/d") => lines(&["d 644 0:0 =a/x"]);
    several_sources_into_an_existing_directory: TREE, "", ["d/"];
        op(OpKind::Copy, &["f", "a/x"], "/d") => lines(&[
            "d 755 0:0", "d/f 644 0:0 =f", "d/x 644 0:0 =a/x",
        ]);
    directory_contents_merge: TREE, "", ["a/", "a/old"];
        op(OpKind::Copy, &["a"], "/a/") => lines(&[
            "a 755 0:0", "a/old 644 0:0 =a/old", "a/x 644 0:0 =a/x", "a/y.md 644 0:0 =a/y.md",
        ]);
    a_directory_never_replaces_a_file: TREE, "", ["d"];
        op(OpKind::Copy, &["a"], "/d") => Err("cannot copy to non-directory: /d".into());
    a_file_never_replaces_a_directory: TREE, "", ["x/", "x/x/"];
        op(OpKind::Copy, &["a"], "/x") => Err("cannot replace to directory /x/x with file".into());
    named_symlinks_are_followed: TREE, "", [];
        op(OpKind::Copy, &["link"], "/") => lines(&["link 644 0:0 =a/x"]);
    wildcards_follow_matches_and_skip_empty_ones: TREE, "", [];
        op(OpKind::Copy, &["l*", "*.none", "a/*.md"], "/w/") => lines(&[
            "w 755 0:0", "w/link 644 0:0 =a/x", "w/y.md 644 0:0 =a/y.md",
        ]);
    missing_sources_fail_like_buildkit: TREE, "", [];
        op(OpKind::Copy, &["f", "nope"], "/") => Err("failed to compute cache key: \"/nope\": not found".into());
    ignored_sources_do_not_exist: TREE, "f", [];
        op(OpKind::Copy, &["f"], "/") =>
            Err("failed to compute cache key: \"/f\": not found (excluded by .dockerignore)".into());
    chown_covers_created_parents: TREE, "", [];
        with(op(OpKind::Copy, &["a"], "/p/q/"), |o| o.owner = Some((7, 8))) => lines(&[
            "p 755 7:8", "p/q 755 7:8", "p/q/x 644 7:8 =a/x", "p/q/y.md 644 7:8 =a/y.md",
        ]);
    chmod_octal_and_symbolic: TREE, "", [];
        with(op(OpKind::Copy, &["a", "sub"], "/m/"), |o| o.chmod = Some(Chmod::parse("u+x,g+w").unwrap())) => lines(&[
            "m 775 0:0", "m/deep 775 0:0", "m/x 764 0:0 =a/x", "m/y.md 764 0:0 =a/y.md",
        ]);
    chmod_applies_to_created_directories: TREE, "", [];
        with(op(OpKind::Copy, &["f"], "/n/f"), |o| o.chmod = Some(Chmod::parse("600").unwrap())) => lines(&[
            "n 600 0:0", "n/f 600 0:0 =f",
        ]);
    exclude_is_relative_to_each_source: TREE, "", [];
        with(op(OpKind::Copy, &["a", "f"], "/e/"), |o| o.exclude = vec!["*.md".into(), "f".into()]) => lines(&[
            "e 755 0:0", "e/f 644 0:0 =f", "e/x 644 0:0 =a/x",
        ]);
    parents_keep_the_path: TREE, "", [];
        with(op(OpKind::Copy, &["a/x", "./sub/./deep"], "/r/"), |o| o.parents = true) => lines(&[
            "r 755 0:0", "r/a 755 0:0", "r/a/x 644 0:0 =a/x", "r/deep 755 0:0",
        ]);
    heredocs_become_files: TREE, "", ["d/"];
        with(op(OpKind::Copy, &[], "/d"), |o| o.inline = vec![InlineSource {
            path: "hello.sh".into(), data: "echo hi\n".into(), expand: false,
        }]) => lines(&["d 755 0:0", "d/hello.sh 644 0:0 =echo hi\n"]);
    checksum_needs_a_url: TREE, "", [];
        with(op(OpKind::Add, &["f"], "/"), |o| o.checksum = Some("sha256:00".into())) =>
            Err("checksum requires HTTP(S) or Git sources".into());
    add_of_a_plain_file_copies: TREE, "", [];
        op(OpKind::Add, &["f"], "/g") => lines(&["g 644 0:0 =f"]);
}

#[test]
fn image_symlinks_never_lead_outside() {
    let ctx = Context::new(&TREE, "");
    let outside = tempfile::tempdir().unwrap();
    let out = outside.path().to_str().unwrap();
    let image = [
        format!("abs -> {out}"),
        "rel -> ../../../../..".to_string(),
        "file -> /etc/hostname".to_string(),
    ];
    let image: Vec<&str> = image.iter().map(String::as_str).collect();
    for dest in ["/abs/", "/rel/x/", "/file"] {
        let root = tempfile::tempdir().unwrap();
        make(root.path(), &image);
        copy(&ctx.root(), root.path(), &op(OpKind::Copy, &["f"], dest)).unwrap();
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    // The symlink `file` was followed inside the root: `/etc/hostname` there was written.
    let root = tempfile::tempdir().unwrap();
    make(root.path(), &image);
    copy(&ctx.root(), root.path(), &op(OpKind::Copy, &["f"], "/file")).unwrap();
    assert_eq!(
        std::fs::read(root.path().join("etc/hostname")).unwrap(),
        b"f"
    );
}

#[test]
fn trees_keep_owners_modes_times_and_hard_links() {
    let stage = tempfile::tempdir().unwrap();
    let s = stage.path();
    make(s, &["bin/", "bin/tool", "lib -> bin"]);
    // Owner first: chown clears set-id bits.
    std::os::unix::fs::lchown(s.join("bin/tool"), Some(5), Some(6)).unwrap();
    std::fs::set_permissions(s.join("bin/tool"), std::fs::Permissions::from_mode(0o4750)).unwrap();
    std::fs::hard_link(s.join("bin/tool"), s.join("bin/alias")).unwrap();
    let when = filetime::FileTime::from_unix_time(1_000_000_000, 123);
    filetime::set_file_mtime(s.join("bin/tool"), when).unwrap();
    let root = tempfile::tempdir().unwrap();
    let stats = copy(
        &SourceRoot::Tree(s),
        root.path(),
        &op(OpKind::Copy, &["/"], "/"),
    )
    .unwrap();
    assert_eq!((stats.files, stats.hardlinks, stats.symlinks), (1, 1, 1));
    let tool = std::fs::metadata(root.path().join("bin/tool")).unwrap();
    assert_eq!(
        (tool.mode() & 0o7777, tool.uid(), tool.gid()),
        (0o4750, 5, 6)
    );
    assert_eq!((tool.mtime(), tool.mtime_nsec()), (1_000_000_000, 123));
    let alias = std::fs::metadata(root.path().join("bin/alias")).unwrap();
    assert_eq!(alias.ino(), tool.ino());
    assert_eq!(
        std::fs::read_link(root.path().join("lib")).unwrap(),
        Path::new("bin")
    );
}

#[test]
fn add_unpacks_archives_of_every_compression() {
    use super::archive::tests::{compressed, tar_bytes};
    for kind in ["tar", "gz", "bz2", "xz", "zst"] {
        let ctx = Context::new(&[], "");
        std::fs::write(
            ctx.dir.path().join("blob.bin"),
            compressed(kind, &tar_bytes()),
        )
        .unwrap();
        let got = run(&ctx.root(), &["out"], &op(OpKind::Add, &["blob.bin"], "/x"));
        assert_eq!(
            got,
            lines(&[
                "out 644 0:0 =out",
                "x 755 0:0",
                "x/d 750 7:8",
                "x/d/f 4755 7:8 =hello",
                "x/d/l 777 7:8 -> f"
            ]),
            "{kind}"
        );
        let chowned = with(op(OpKind::Add, &["blob.bin"], "/x/"), |o| {
            o.owner = Some((1, 2))
        });
        // `--chown` owns the directory the ADD creates; the entries keep the archive's.
        let got = run(&ctx.root(), &[], &chowned).unwrap();
        assert_eq!(
            got,
            [
                "x 755 1:2",
                "x/d 750 7:8",
                "x/d/f 4755 7:8 =hello",
                "x/d/l 777 7:8 -> f"
            ],
            "{kind}"
        );
        let kept = with(op(OpKind::Add, &["blob.bin"], "/y"), |o| {
            o.unpack_archives = false
        });
        assert_eq!(run(&ctx.root(), &[], &kept).unwrap().len(), 1, "{kind}");
    }
}

/// `git archive` opens its tars with a pax global header (`g`) holding the commit id: ADD
/// skips it, as Docker does, and unpacks the rest.
#[test]
fn add_ignores_a_pax_global_header() {
    let mut b = tar::Builder::new(Vec::new());
    let comment = b"52 comment=0123456789abcdef0123456789abcdef01234567\n";
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XGlobalHeader);
    h.set_size(comment.len() as u64);
    h.set_mode(0o666);
    b.append_data(&mut h, "pax_global_header", &comment[..])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(3);
    b.append_data(&mut h, "repo/a.txt", &b"abc"[..]).unwrap();
    let ctx = Context::new(&[], "");
    std::fs::write(ctx.dir.path().join("src.tar"), b.into_inner().unwrap()).unwrap();
    let got = run(&ctx.root(), &["out"], &op(OpKind::Add, &["src.tar"], "/x"));
    assert_eq!(
        got,
        lines(&[
            "out 644 0:0 =out",
            "x 755 0:0",
            "x/repo 755 0:0",
            "x/repo/a.txt 644 0:0 =abc"
        ])
    );
}

#[test]
fn add_refuses_urls() {
    let ctx = Context::new(&[], "");
    let err = copy(
        &ctx.root(),
        ctx.dir.path(),
        &op(OpKind::Add, &["https://x.org/a.tgz"], "/"),
    )
    .unwrap_err();
    assert!(matches!(err, CopyError::Unsupported { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "ADD from a URL (https://x.org/a.tgz) is not supported yet"
    );
}

#[test]
fn fixed_timestamps_cover_created_directories() {
    let ctx = Context::new(&TREE, "");
    let root = tempfile::tempdir().unwrap();
    let t = super::Timespec {
        tv_sec: 42,
        tv_nsec: 0,
    };
    let o = with(op(OpKind::Copy, &["a"], "/p/q/"), |o| o.timestamp = Some(t));
    copy(&ctx.root(), root.path(), &o).unwrap();
    for p in ["p", "p/q", "p/q/x"] {
        assert_eq!(
            std::fs::symlink_metadata(root.path().join(p))
                .unwrap()
                .mtime(),
            42,
            "{p}"
        );
    }
}

/// A context whose files were written long enough ago for their hashes to be trusted.
fn settled(tree: &[&str], ignore: &str) -> Context {
    let ctx = Context::new(tree, ignore);
    std::thread::sleep(std::time::Duration::from_millis(120));
    ctx
}

#[test]
fn digest_reads_each_unchanged_file_once() {
    let ctx = settled(&TREE, "");
    let state = tempfile::tempdir().unwrap();
    let o = op(OpKind::Copy, &["."], "/");
    let mut cache = HashCache::load(state.path()).unwrap();
    let first = inputs_digest(&ctx.root(), &o, &mut cache).unwrap();
    assert_eq!(cache.stats().files_read, 3);
    cache.save().unwrap();
    // A new process: the cache comes from disk.
    let mut cache = HashCache::load(state.path()).unwrap();
    assert_eq!(inputs_digest(&ctx.root(), &o, &mut cache).unwrap(), first);
    assert_eq!((cache.stats().files_read, cache.stats().hits), (0, 3));
}

#[test]
fn digest_follows_content_not_times() {
    let ctx = settled(&TREE, "");
    let o = op(OpKind::Copy, &["a"], "/");
    let mut cache = HashCache::in_memory();
    let first = inputs_digest(&ctx.root(), &o, &mut cache).unwrap();
    let x = ctx.dir.path().join("a/x");
    let old = filetime::FileTime::from_last_modification_time(&std::fs::metadata(&x).unwrap());
    filetime::set_file_mtime(&x, filetime::FileTime::from_unix_time(7, 0)).unwrap();
    assert_eq!(inputs_digest(&ctx.root(), &o, &mut cache).unwrap(), first);
    // Same size, mtime put back: only the ctime tells, and it is enough.
    std::fs::write(&x, b"a/z").unwrap();
    filetime::set_file_mtime(&x, old).unwrap();
    let reads = cache.stats().files_read;
    assert_ne!(inputs_digest(&ctx.root(), &o, &mut cache).unwrap(), first);
    assert_eq!(cache.stats().files_read, reads + 1);
}

#[test]
fn digest_covers_exactly_the_selection() {
    let ctx = settled(&TREE, "**/*.md");
    let mut cache = HashCache::in_memory();
    let o = op(OpKind::Copy, &["."], "/");
    let first = inputs_digest(&ctx.root(), &o, &mut cache).unwrap();
    // An ignored file changes: same key.
    std::fs::write(ctx.dir.path().join("a/y.md"), b"changed").unwrap();
    assert_eq!(inputs_digest(&ctx.root(), &o, &mut cache).unwrap(), first);
    // So does an excluded one.
    let ex = with(op(OpKind::Copy, &["."], "/"), |o| {
        o.exclude = vec!["f".into()]
    });
    let before = inputs_digest(&ctx.root(), &ex, &mut cache).unwrap();
    std::fs::write(ctx.dir.path().join("f"), b"F").unwrap();
    assert_eq!(inputs_digest(&ctx.root(), &ex, &mut cache).unwrap(), before);
    assert_ne!(inputs_digest(&ctx.root(), &o, &mut cache).unwrap(), first);
    // A mode change counts.
    let mode = with(op(OpKind::Copy, &["a"], "/"), |_| {});
    let before = inputs_digest(&ctx.root(), &mode, &mut cache).unwrap();
    std::fs::set_permissions(
        ctx.dir.path().join("a/x"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    assert_ne!(
        inputs_digest(&ctx.root(), &mode, &mut cache).unwrap(),
        before
    );
}

#[test]
fn archives_cannot_write_outside_the_extraction_directory() {
    let outside = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut link = |name: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    };
    link("abs", outside.path().to_str().unwrap());
    link("up", "../../../../..");
    for name in ["abs/a", "up/b"] {
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, name, &b"x"[..]).unwrap();
    }
    let ctx = Context::new(&[], "");
    std::fs::write(ctx.dir.path().join("evil.tar"), b.into_inner().unwrap()).unwrap();
    let got = run(&ctx.root(), &[], &op(OpKind::Add, &["evil.tar"], "/x/")).unwrap();
    assert!(got.contains(&"x/b 644 0:0 =x".to_string()), "{got:?}");
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    // The tar crate refuses to write `..` itself; patch the name in the header.
    h.as_gnu_mut().unwrap().name[..6].copy_from_slice(b"../../");
    h.as_gnu_mut().unwrap().name[6] = b'y';
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    std::fs::write(ctx.dir.path().join("climb.tar"), b.into_inner().unwrap()).unwrap();
    // A name that climbs is taken from the extraction root, as BuildKit's chrooted untar
    // takes it.
    let got = run(&ctx.root(), &[], &op(OpKind::Add, &["climb.tar"], "/x/")).unwrap();
    assert!(got.contains(&"x/y 644 0:0 =x".to_string()), "{got:?}");
}

#[test]
fn an_unmapped_owner_is_explained() {
    let err = |step, errno| CopyError::WriteDestination {
        path: "/f".into(),
        step,
        source: std::io::Error::from_raw_os_error(errno),
    };
    let unmapped = err("chown", libc::EINVAL).to_string();
    assert!(unmapped.contains("/etc/subuid"), "{unmapped}");
    for other in [err("chown", libc::EPERM), err("chmod", libc::EINVAL)] {
        assert!(!other.to_string().contains("subuid"), "{other}");
    }
}

/// A wildcard source that matches exactly one file, to a destination without a trailing
/// slash, writes that file at the destination (BuildKit: one match is a plain copy).
#[test]
fn one_wildcard_match_to_a_file_destination_is_that_file() {
    let ctx = Context::new(&["app/", "app/nope/", "app/nope/file.txt"], "");
    let got = run(
        &ctx.root(),
        &[],
        &op(OpKind::Copy, &["./app/n?pe/file.txt"], "/app4/file.txt"),
    );
    assert_eq!(
        got,
        lines(&["app4 755 0:0", "app4/file.txt 644 0:0 =app/nope/file.txt"])
    );
    let got = run(
        &ctx.root(),
        &[],
        &op(OpKind::Copy, &["app/*/file.txt"], "/one"),
    );
    assert_eq!(got, lines(&["one 644 0:0 =app/nope/file.txt"]));
}
