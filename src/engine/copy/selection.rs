//! Which files a COPY or ADD takes: its sources resolved into items, and each item's entries
//! after `--exclude` and `--parents` patterns. Copying and cache hashing both go through
//! here, so the cache key covers exactly what is copied.
//!
//! Owns: cleaning a source (`/` + source, Go `path.Clean`), wildcard expansion (BuildKit
//! `ResolveWildcards`: the literal directory before the first wildcard must exist, the rest
//! matches component by component, real directories only, lexical order, a wildcard that
//! matches nothing is no error), symlinks resolved inside the root (continuity
//! `fs.RootPath`: the last component too, as BuildKit's `FollowSymlinks` asks, `..` stopping
//! at the root), the `--parents` pivot (`a/./b`), and the walk of a directory item with
//! fsutil's copier rules: `--exclude` and `--parents` patterns are matched against paths
//! relative to the item, and a directory that is not itself selected is created only when
//! something below it is (tonistiigi/fsutil `copy.go` `createParentDirs`). Must not write.

use crate::rootpath;
use std::fs::Metadata;

use super::error::CopyError;
use super::op::{CopyOp, OpKind};
use super::source::{Entry, View};
use super::wildcard;
use crate::context::{EntryKind, Matcher, ParentMatches, clean};

/// One thing to copy.
pub(super) struct Item {
    /// The source as written, for messages.
    pub(crate) source: String,
    pub(crate) what: What,
}

pub(super) enum What {
    /// A path in the source root.
    Path {
        /// Where it really is: every symlink resolved, relative to the root (`""` is the root).
        real: String,
        /// The name it was matched by (a symlink keeps its own name), used when the
        /// destination is a directory.
        name: String,
        /// `lstat` of `real`.
        meta: Metadata,
        /// `--parents` pattern, relative to the item.
        include: Option<Matcher>,
    },
    /// A heredoc: written as a file named `name`, mode 0644.
    Inline { name: String, data: String },
}

/// Resolve every source of `op` in order, then its heredocs (BuildKit adds them after).
pub(super) fn select(view: &View, op: &CopyOp) -> Result<Vec<Item>, CopyError> {
    let mut items = Vec::new();
    for source in &op.sources {
        check_remote(source, op.kind)?;
        if op.parents {
            select_parents(view, source, &mut items)?;
        } else {
            select_path(view, source, source, None, &mut items)?;
        }
    }
    for inline in &op.inline {
        let name = inline.path.rsplit('/').next().unwrap_or_default();
        items.push(Item {
            source: format!("<<{}", inline.path),
            what: What::Inline {
                name: name.to_string(),
                data: inline.data.clone(),
            },
        });
    }
    Ok(items)
}

/// URLs and Git repositories are for ADD, and not handled by this module yet.
fn check_remote(source: &str, kind: OpKind) -> Result<(), CopyError> {
    let http = source.starts_with("http://") || source.starts_with("https://");
    let git = is_git(source);
    match (kind, git, http) {
        (_, false, false) => Ok(()),
        (OpKind::Copy, true, _) => Err(CopyError::GitSourceForCopy {
            url: source.to_string(),
        }),
        (OpKind::Copy, false, true) => Err(CopyError::UrlSourceForCopy {
            url: source.to_string(),
        }),
        (OpKind::Add, true, _) => Err(CopyError::Unsupported {
            what: format!("ADD from a Git repository ({source})"),
        }),
        (OpKind::Add, false, true) => Err(CopyError::Unsupported {
            what: format!("ADD from a URL ({source})"),
        }),
    }
}

/// BuildKit's `dfgitutil.ParseGitRef` shapes that cannot be a local path: `git@host:repo`,
/// `git://` and `ssh://` URLs, and HTTP(S) URLs whose path ends in `.git` (before any
/// `#ref:subdir` fragment).
pub(crate) fn is_git(source: &str) -> bool {
    if ["git@", "git://", "ssh://"]
        .iter()
        .any(|p| source.starts_with(p))
    {
        return true;
    }
    let Some(rest) = source
        .strip_prefix("https://")
        .or_else(|| source.strip_prefix("http://"))
    else {
        return false;
    };
    let path = rest.split(['#', '?']).next().unwrap_or_default();
    path.trim_end_matches('/').ends_with(".git")
}

/// `COPY --parents pivot/./pattern`: copy the pivot's contents, keeping only `pattern` and
/// the directories leading to it. Without a pivot the pivot is the root. The path must exist
/// only when neither half has a wildcard (moby/buildkit#4900).
fn select_parents(view: &View, source: &str, items: &mut Vec<Item>) -> Result<(), CopyError> {
    let (pivot, pattern) = source.split_once("/./").unwrap_or(("/", source));
    let pattern = clean(&format!("/{pattern}"));
    let pattern = pattern.trim_start_matches('/');
    if !wildcard::contains_wildcards(pivot) && !wildcard::contains_wildcards(pattern) {
        let required = clean(&format!("/{pivot}/{pattern}"));
        let required = required.trim_start_matches('/');
        if resolve(view, required, true)?.is_none() {
            return Err(not_found(view, required)?);
        }
    }
    let include = if pattern.is_empty() {
        None
    } else {
        Some(
            Matcher::new(&[pattern]).map_err(|source| CopyError::Pattern {
                patterns: vec![pattern.to_string()],
                source,
            })?,
        )
    };
    select_path(view, source, pivot, include, items)
}

/// Resolve one source path (wildcards expanded) into items.
fn select_path(
    view: &View,
    source: &str,
    path: &str,
    include: Option<Matcher>,
    items: &mut Vec<Item>,
) -> Result<(), CopyError> {
    let cleaned = clean(&format!("/{path}"));
    let rel = cleaned.trim_start_matches('/');
    let mut push = |real: String, name: &str, meta: Metadata| {
        items.push(Item {
            source: source.to_string(),
            what: What::Path {
                real,
                name: name.to_string(),
                meta,
                include: include.clone(),
            },
        })
    };
    if !wildcard::contains_wildcards(rel) {
        let Some((real, meta)) = resolve(view, rel, true)? else {
            return Err(not_found(view, rel)?);
        };
        push(real, rel.rsplit('/').next().unwrap_or_default(), meta);
        return Ok(());
    }
    let (literal, pattern) = wildcard::split(rel);
    let literal = literal.join("/");
    let Some((base, base_meta)) = resolve(view, &literal, true)? else {
        return Err(not_found(view, &literal)?);
    };
    if !base_meta.is_dir() {
        return Ok(());
    }
    let mut found = Vec::new();
    find(view, &base, &pattern, &mut found)?;
    for (matched, meta) in found {
        let name = matched.rsplit('/').next().unwrap_or_default().to_string();
        if meta.is_symlink() {
            let Some((real, meta)) = resolve(view, &matched, true)? else {
                return Err(not_found(view, &matched)?);
            };
            push(real, &name, meta);
        } else {
            push(matched, &name, meta);
        }
    }
    Ok(())
}

/// Paths below directory `dir` matching `pattern` (one component each), in lexical order.
fn find(
    view: &View,
    dir: &str,
    pattern: &[&str],
    found: &mut Vec<(String, Metadata)>,
) -> Result<(), CopyError> {
    let Some((first, rest)) = pattern.split_first() else {
        return Ok(());
    };
    for name in view.list(dir)? {
        if !wildcard::matches(first, &name) {
            continue;
        }
        let path = join(dir, &name);
        if rest.is_empty() {
            if let Some(meta) = view.lstat(&path)? {
                found.push((path, meta));
            }
        } else if view.lstat_raw(&path)?.is_some_and(|m| m.is_dir()) {
            find(view, &path, rest, found)?;
        }
    }
    Ok(())
}

/// The error for a source that is not there, saying so when `.dockerignore` is the reason.
fn not_found(view: &View, rel: &str) -> Result<CopyError, CopyError> {
    let ignored = view.is_context() && !rel.is_empty() && view.lstat_raw(rel)?.is_some();
    Ok(CopyError::SourceNotFound {
        path: format!("/{rel}"),
        ignored,
    })
}

/// Resolve `path` inside the source root, following symlinks (the last one too when
/// `follow_last`) with the root as `/`. `None` when a component does not exist, is hidden
/// by `.dockerignore`, or is not a directory where one is needed.
pub(super) fn resolve(
    view: &View,
    path: &str,
    follow_last: bool,
) -> Result<Option<(String, Metadata)>, CopyError> {
    let mut walk = rootpath::Walk::new(path).with_max_links(rootpath::FSUTIL_MAX_LINKS);
    let mut last_meta: Option<Metadata> = None;
    while let Some(name) = walk.next_name() {
        let candidate = walk.child(&name);
        let last = walk.is_last();
        // Directories on the way exist for COPY when what lies below them does, so only
        // the last component, and each symlink followed, need the ignore-aware look-up.
        let meta = if last {
            view.lstat(&candidate)?
        } else {
            view.lstat_raw(&candidate)?
        };
        let Some(meta) = meta else {
            return Ok(None);
        };
        if meta.is_symlink() && (!last || follow_last) {
            if !last && view.is_context() && view.lstat(&candidate)?.is_none() {
                return Ok(None);
            }
            let target = view.read_link(&candidate)?;
            let target = target
                .to_str()
                .ok_or_else(|| CopyError::NonUtf8Link {
                    path: view.host_path(&candidate),
                })?
                .to_string();
            walk.follow(&target)
                .map_err(|_| CopyError::TooManySymlinks {
                    path: format!("/{path}"),
                })?;
            last_meta = None;
            continue;
        }
        if !last && !meta.is_dir() {
            return Ok(None);
        }
        walk.push(name);
        last_meta = Some(meta);
    }
    let real = walk.real();
    let meta = match last_meta {
        Some(meta) => meta,
        None => match view.lstat(&real)? {
            Some(meta) => meta,
            None => return Ok(None),
        },
    };
    Ok(Some((real, meta)))
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// What a walk of a directory item reports to its visitor.
pub(super) enum Event<'e> {
    /// A directory to create or merge; what follows, up to the matching
    /// [`Event::LeaveDir`], is inside it.
    EnterDir(&'e Entry),
    LeaveDir,
    /// Anything that is not a directory.
    Leaf(&'e Entry),
}

/// A directory on the current branch of [`walk_item`].
struct Level {
    prefix: String,
    entry: Entry,
    include: ParentMatches,
    exclude: ParentMatches,
    /// Reported with [`Event::EnterDir`] already.
    entered: bool,
}

/// Walk directory item `real` (its own entry excluded), keeping what `include` selects (all
/// when `None`) and `exclude` does not; both are matched relative to the item. Directories
/// are reported only when they are selected or something below them is.
pub(super) fn walk_item(
    view: &View,
    real: &str,
    include: Option<&Matcher>,
    exclude: Option<&Matcher>,
    visit: &mut dyn FnMut(Event) -> Result<(), CopyError>,
) -> Result<(), CopyError> {
    let mut branch: Vec<Level> = Vec::new();
    let none = ParentMatches::default();
    let pattern_error = |path: &str, source| CopyError::MatchPattern {
        path: path.to_string(),
        source,
    };
    for entry in view.entries(real)? {
        let entry = entry?;
        while branch
            .last()
            .is_some_and(|top| !entry.rel.starts_with(&top.prefix))
        {
            if branch.pop().is_some_and(|l| l.entered) {
                visit(Event::LeaveDir)?;
            }
        }
        let parent = branch.last();
        let (included, include_results) = match include {
            Some(m) => m
                .matches_with_parents(&entry.rel, parent.map_or(&none, |p| &p.include))
                .map_err(|e| pattern_error(&entry.rel, e))?,
            None => (true, ParentMatches::default()),
        };
        let (excluded, exclude_results) = match exclude {
            Some(m) => m
                .matches_with_parents(&entry.rel, parent.map_or(&none, |p| &p.exclude))
                .map_err(|e| pattern_error(&entry.rel, e))?,
            None => (false, ParentMatches::default()),
        };
        let take = included && !excluded;
        if take {
            for level in branch.iter_mut().filter(|l| !l.entered) {
                visit(Event::EnterDir(&level.entry))?;
                level.entered = true;
            }
        }
        if entry.kind == EntryKind::Dir {
            branch.push(Level {
                prefix: format!("{}/", entry.rel),
                entry,
                include: include_results,
                exclude: exclude_results,
                entered: take,
            });
            if take {
                let top = branch.last().expect("just pushed");
                visit(Event::EnterDir(&top.entry))?;
            }
        } else if take {
            visit(Event::Leaf(&entry))?;
        }
    }
    while let Some(level) = branch.pop() {
        if level.entered {
            visit(Event::LeaveDir)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Event, What, is_git, select, walk_item};
    use crate::context::Matcher;
    use crate::engine::copy::source::{View, tests::make};
    use crate::engine::copy::{CopyError, CopyOp, OpKind, SourceRoot};

    /// Items selected by `sources` from a fresh tree, as `name=real` strings.
    fn selected(tree: &[&str], sources: &[&str], parents: bool) -> Result<Vec<String>, String> {
        let tmp = tempfile::tempdir().unwrap();
        make(tmp.path(), tree);
        let view = View::open(&SourceRoot::Tree(tmp.path())).unwrap();
        let mut op = CopyOp::new(OpKind::Copy, "/dest/");
        op.sources = sources.iter().map(|s| s.to_string()).collect();
        op.parents = parents;
        let items = select(&view, &op).map_err(|e| e.to_string())?;
        Ok(items
            .into_iter()
            .map(|i| match i.what {
                What::Path { real, name, .. } => format!("{name}={real}"),
                What::Inline { name, .. } => format!("<<{name}"),
            })
            .collect())
    }

    /// `selects!(tree; sources => items)`.
    macro_rules! selects {
        ($($tree:expr; $sources:expr => $want:expr;)*) => {$(
            assert_eq!(selected(&$tree, &$sources, false), $want, "{:?}", $sources);
        )*};
    }

    #[test]
    fn sources_resolve_like_buildkit() {
        let tree = [
            "a/",
            "a/x.txt",
            "a/y.md",
            "b/",
            "b/x.txt",
            "f",
            "link -> a",
            "abs -> /a/x.txt",
            "up -> ../../f",
            "dangling -> nowhere",
            "star*",
        ];
        let ok = |v: &[&str]| Ok(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        selects! {
            tree; ["f"] => ok(&["f=f"]);
            tree; ["/a/../f"] => ok(&["f=f"]);
            tree; ["."] => ok(&["="]);
            tree; ["link"] => ok(&["link=a"]);
            tree; ["abs"] => ok(&["abs=a/x.txt"]);
            tree; ["up"] => ok(&["up=f"]);
            tree; ["link/x.txt"] => ok(&["x.txt=a/x.txt"]);
            tree; ["*/x.txt"] => ok(&["x.txt=a/x.txt", "x.txt=b/x.txt"]);
            tree; ["a/*.txt", "a/*.none"] => ok(&["x.txt=a/x.txt"]);
            tree; ["l*"] => ok(&["link=a"]);
            tree; ["star\\*"] => Err("failed to compute cache key: \"/star\\\\*\": not found".into());
            tree; ["star[*]"] => ok(&["star*=star*"]);
            tree; ["missing"] => Err("failed to compute cache key: \"/missing\": not found".into());
            tree; ["nodir/*"] => Err("failed to compute cache key: \"/nodir\": not found".into());
            tree; ["dangling"] => Err("failed to compute cache key: \"/dangling\": not found".into());
            tree; ["d*"] => Err("failed to compute cache key: \"/dangling\": not found".into());
        }
    }

    #[test]
    fn parents_pivot_and_required_paths() {
        let tree = ["a/", "a/b/", "a/b/c.txt"];
        let got = selected(&tree, &["a/./b/c.txt", "a/b/c.txt"], true).unwrap();
        assert_eq!(got, ["a=a", "="]);
        let err = selected(&tree, &["a/./b/nope.txt"], true).unwrap_err();
        assert!(err.contains("\"/a/b/nope.txt\": not found"), "{err}");
        assert_eq!(
            selected(&tree, &["a/./*/nope.txt"], true),
            Ok(vec!["a=a".to_string()])
        );
    }

    #[test]
    fn remote_sources() {
        assert!(is_git("git@github.com:moby/buildkit.git"));
        assert!(is_git("https://github.com/moby/buildkit.git#v0.10.1:docs"));
        assert!(!is_git("https://example.com/file.tar.gz"));
        let tmp = tempfile::tempdir().unwrap();
        let view = View::open(&SourceRoot::Tree(tmp.path())).unwrap();
        for (kind, source, want) in [
            (
                OpKind::Add,
                "https://example.com/a.tgz",
                "not supported yet",
            ),
            (OpKind::Add, "git@github.com:a/b.git", "not supported yet"),
            (
                OpKind::Copy,
                "https://example.com/a",
                "source can't be a URL for COPY",
            ),
            (
                OpKind::Copy,
                "git://example.com/a",
                "source can't be a git ref for COPY",
            ),
        ] {
            let mut op = CopyOp::new(kind, "/");
            op.sources = vec![source.to_string()];
            let err = select(&view, &op).err().unwrap();
            assert!(err.to_string().contains(want), "{err}");
            assert!(
                matches!(err, CopyError::Unsupported { .. }) == (kind == OpKind::Add),
                "{err:?}"
            );
        }
    }

    /// The events of [`walk_item`] over `tree`, as `+dir`, `-`, and leaf paths.
    fn events(tree: &[&str], include: &[&str], exclude: &[&str]) -> Vec<String> {
        let tmp = tempfile::tempdir().unwrap();
        make(tmp.path(), tree);
        let view = View::open(&SourceRoot::Tree(tmp.path())).unwrap();
        let include = (!include.is_empty()).then(|| Matcher::new(include).unwrap());
        let exclude = (!exclude.is_empty()).then(|| Matcher::new(exclude).unwrap());
        let mut out = Vec::new();
        walk_item(&view, "", include.as_ref(), exclude.as_ref(), &mut |e| {
            out.push(match e {
                Event::EnterDir(e) => format!("+{}", e.rel),
                Event::LeaveDir => "-".to_string(),
                Event::Leaf(e) => e.rel.clone(),
            });
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn item_walks_hold_back_unselected_directories() {
        let tree = ["d/", "d/a.txt", "d/b.png", "d/e/", "d/e/c.png", "top.png"];
        assert_eq!(
            events(&tree, &[], &["**/*.png"]),
            ["+d", "d/a.txt", "+d/e", "-", "-"]
        );
        assert_eq!(
            events(&tree, &["d/e/*.png"], &[]),
            ["+d", "+d/e", "d/e/c.png", "-", "-"]
        );
        assert_eq!(events(&tree, &["nothing"], &[]), Vec::<String>::new());
        assert_eq!(
            events(&tree, &[], &["d", "!d/e/c.png"]),
            ["+d", "+d/e", "d/e/c.png", "-", "-", "top.png"]
        );
    }
}
