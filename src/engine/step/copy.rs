//! COPY and ADD as steps: where they read from (the context, another stage or image, or
//! ADD's downloads), their key (the operation as written, and what the sources hold) and
//! their work (the copy into the step's filesystem, `--chown` resolved there). The
//! filesystem half is `engine::copy`'s.

use std::collections::BTreeMap;
use std::path::Path;

use super::work::{Cx, LayerStep};
use crate::dockerfile::instruction::{self, Instruction};
use crate::engine::cache::KeyEncoder;
use crate::engine::copy::reuse::{Previous, Reuse, Reused};
use crate::engine::copy::{self, CopyOp, OpKind, SourceRoot};
use crate::engine::error::BuildError;
use crate::engine::fs::Tree;
use crate::engine::remote::Remote;
use crate::engine::resolve::state_from;
use crate::engine::session::Session;
use crate::engine::state::{State, StateRef};
use crate::gc::lease::Kind as LeaseKind;
use crate::plan::Step;
use crate::snapshot::snapshotter::Kind as Snapshotter;
use crate::snapshot::workdir::WorkDir;

/// A COPY or ADD to do: the operation (owner not resolved yet), its `--chown` as written,
/// where it reads from, and the digest of what it reads there when no key names it.
pub(crate) struct CopyStep {
    op: CopyOp,
    chown: Option<String>,
    from: CopyFrom,
    inputs: Option<blake3::Hash>,
    /// The local sources of an ADD that also names remote ones: a second copy, from the
    /// context, into the same directory.
    local: Option<Box<CopyStep>>,
}

/// Where COPY/ADD read from.
enum CopyFrom {
    Context,
    /// `--from=` a `--build-context` that is a local directory.
    Dir(std::path::PathBuf),
    /// `--from=` a stage or image.
    State(StateRef),
    /// ADD's downloads.
    Files(Tree),
}

/// With SOURCE_DATE_EPOCH, what COPY/ADD write carries that time in the snapshot as in the
/// layer (which clamps every mtime to it anyway).
fn timestamp(session: &Session<'_>) -> Option<copy::Timespec> {
    session
        .settings()
        .source_date_epoch
        .map(|secs| copy::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        })
}

pub(crate) fn prepare_copy(
    session: &Session<'_>,
    c: &instruction::Copy,
    step: &Step,
    state: &State,
    done: &BTreeMap<usize, State>,
) -> Result<CopyStep, BuildError> {
    let instruction = &step.instruction;
    let from = match &c.from {
        None => CopyFrom::Context,
        Some(name) if session.plan().stage_index(name).is_none() => {
            match session.plan().named_contexts.get(name) {
                Some(crate::plan::NamedContext::Dir(dir)) => CopyFrom::Dir(dir.clone()),
                _ => CopyFrom::State(state_from(session, name, state, done, instruction)?),
            }
        }
        Some(name) => CopyFrom::State(state_from(session, name, state, done, instruction)?),
    };
    let mut op = CopyOp::for_copy(c, &state.image.workdir(), None)
        .map_err(|e| session.fail_at(instruction, &e))?;
    op.timestamp = timestamp(session);
    CopyStep::new(session, instruction, op, c.chown.clone(), from)
}

pub(crate) fn prepare_add(
    session: &Session<'_>,
    a: &instruction::Add,
    step: &Step,
    state: &State,
) -> Result<CopyStep, BuildError> {
    let instruction = &step.instruction;
    let mut op = CopyOp::for_add(a, &state.image.workdir(), None)
        .map_err(|e| session.fail_at(instruction, &e))?;
    op.timestamp = timestamp(session);
    let remotes: Vec<Option<Remote>> = a
        .paths
        .sources
        .iter()
        .map(|s| Remote::parse(&s.value))
        .collect();
    let chown = a.chown.clone();
    if remotes.iter().all(Option::is_none) {
        return CopyStep::new(session, instruction, op, chown, CopyFrom::Context);
    }
    // Local and remote sources together: several sources, so the destination is a
    // directory; the local ones are copied from the context as a plain ADD would.
    let local = if remotes.iter().any(Option::is_none) {
        if !op.dest.ends_with('/') {
            op.dest.push('/');
        }
        let mut local_op = op.clone();
        local_op.sources = op
            .sources
            .iter()
            .zip(&remotes)
            .filter(|(_, r)| r.is_none())
            .map(|(s, _)| s.clone())
            .collect();
        local_op.checksum = None;
        Some(Box::new(CopyStep::new(
            session,
            instruction,
            local_op,
            chown.clone(),
            CopyFrom::Context,
        )?))
    } else {
        None
    };
    // Fetched before the cache lookup: what was downloaded is what the key hashes (a
    // changed file at the same URL is a cache miss).
    let dir = WorkDir::create(&session.settings().state_root)?;
    let mut sources = Vec::new();
    for (n, remote) in remotes.iter().flatten().enumerate() {
        let rel = remote
            .fetch(
                &dir.path().join(n.to_string()),
                a.checksum.as_deref(),
                a.keep_git_dir,
            )
            .map_err(|e| session.fail_at(instruction, &e))?;
        sources.push(format!("/{n}/{rel}"));
    }
    op.sources = sources;
    op.checksum = None;
    // Remote archives are not unpacked unless --unpack=true (BuildKit).
    op.unpack_archives = a.unpack.unwrap_or(false);
    let mut step = CopyStep::new(
        session,
        instruction,
        op,
        chown,
        CopyFrom::Files(Tree::files(dir)),
    )?;
    step.local = local;
    Ok(step)
}

impl CopyStep {
    /// Hash the sources where nothing else names them: a stage's or an image's key already
    /// says what its tree holds.
    fn new(
        session: &Session<'_>,
        instruction: &Instruction,
        op: CopyOp,
        chown: Option<String>,
        from: CopyFrom,
    ) -> Result<CopyStep, BuildError> {
        let root = match &from {
            CopyFrom::Context => Some(SourceRoot::Context {
                dir: &session.settings().context,
                ignore: session.ignore(),
            }),
            CopyFrom::Files(tree) => Some(SourceRoot::Tree(tree.root())),
            // A named context is read as the build context is, without a .dockerignore.
            CopyFrom::Dir(dir) => Some(SourceRoot::Context { dir, ignore: None }),
            CopyFrom::State(_) => None,
        };
        let inputs = match root {
            Some(root) => Some(
                copy::inputs_digest(&root, &op, &mut session.hashes())
                    .map_err(|e| copy_failed(session, instruction, &e))?,
            ),
            None => None,
        };
        Ok(CopyStep {
            op,
            chown,
            from,
            inputs,
            local: None,
        })
    }
}

/// The operation's fields that decide what is written. `--link` is left out (it changes
/// nothing in the copy or its layer), and so is the owner, which `chown` says as written.
fn key_op(key: &mut KeyEncoder, op: &CopyOp) {
    key.str(
        "step",
        match op.kind {
            OpKind::Copy => "copy",
            OpKind::Add => "add",
        },
    );
    key.strs("sources", &op.sources);
    key.nested("inline", |l| {
        for i in &op.inline {
            l.nested("item", |f| {
                f.str("path", &i.path);
                f.str("data", &i.data);
                f.bool("expand", i.expand);
            });
        }
    });
    key.str("dest", &op.dest);
    key.str("workdir", &op.workdir);
    key.opt_str("chmod", op.chmod.as_ref().map(|c| c.as_str()));
    key.strs("exclude", &op.exclude);
    key.bool("parents", op.parents);
    key.bool("unpack", op.unpack_archives);
    key.opt_str("checksum", op.checksum.as_deref());
    key.opt_i64("timestamp", op.timestamp.map(|t| t.tv_sec));
}

impl LayerStep for CopyStep {
    fn key(&self, key: &mut KeyEncoder) {
        key_op(key, &self.op);
        key.opt_str("chown", self.chown.as_deref());
        if let CopyFrom::State(from) = &self.from {
            key.bytes("from", from.key.as_bytes());
        }
        if let Some(inputs) = &self.inputs {
            key.bytes("inputs", inputs.as_bytes());
        }
        if let Some(local) = &self.local {
            key.nested("local", |k| local.key(k));
        }
    }

    fn execute(self: Box<Self>, cx: &Cx<'_, '_>, root: &Path) -> Result<(), BuildError> {
        let session = cx.session;
        let instruction = &cx.step.instruction;
        let CopyStep {
            mut op,
            chown,
            from,
            local,
            ..
        } = *self;
        // `--chown` is resolved against the passwd and group files the step sees now; the
        // key has it as written, with the stage's key, which names those files.
        if let Some(spec) = &chown {
            op.owner = Some(super::user::chown_ids(root, spec)?);
        }
        let mounted = match &from {
            CopyFrom::State(state_ref) => Some(session.open(Some(cx.id), state_ref, false)?),
            _ => None,
        };
        let source = match (&from, &mounted) {
            (CopyFrom::Files(tree), _) | (_, Some(tree)) => SourceRoot::Tree(tree.root()),
            (CopyFrom::Dir(dir), _) => SourceRoot::Context { dir, ignore: None },
            _ => SourceRoot::Context {
                dir: &session.settings().context,
                ignore: session.ignore(),
            },
        };
        // From the context or a directory, on overlays, unchanged files can be taken from
        // the previous run of this COPY (`engine::copy::reuse`).
        let incremental = local.is_none()
            && session.snapshotter() == Snapshotter::Overlay
            && matches!(from, CopyFrom::Context | CopyFrom::Dir(_));
        if incremental {
            let record = result_record(session, &op, chown.as_deref(), &from);
            let previous = Previous::load(&record, |chain| {
                let dir = session.settings().state_root.join("snapshots").join(chain);
                // Held for the rest of the build, so that no collection removes it while
                // its files are linked.
                session
                    .leases()
                    .hold(LeaseKind::Snapshot, chain, &dir)
                    .unwrap_or(false)
                    .then_some(dir)
            });
            let hashes = session.hashes();
            let mut reuse = Reuse {
                previous: previous.as_ref(),
                hashes: &hashes,
                out: Reused::default(),
            };
            let stats = copy::copy_reusing(&source, root, &op, Some(&mut reuse))
                .map_err(|e| copy_failed(session, instruction, &e))?;
            reuse.out.copied = (stats.files, stats.bytes);
            *cx.reused.lock().expect("the step's reuse") = Some((record, reuse.out));
            return Ok(());
        }
        copy::copy(&source, root, &op).map_err(|e| copy_failed(session, instruction, &e))?;
        match local {
            Some(local) => local.execute(cx, root),
            None => Ok(()),
        }
    }
}

/// Where the previous run of this COPY is recorded: by the operation as written, its
/// `--chown`, where it reads from and the platform, not by what the sources hold.
fn result_record(
    session: &Session<'_>,
    op: &CopyOp,
    chown: Option<&str>,
    from: &CopyFrom,
) -> std::path::PathBuf {
    let mut key = KeyEncoder::new("copy-result", None);
    key_op(&mut key, op);
    key.opt_str("chown", chown);
    key.str("platform", &session.plan().target_platform.to_string());
    if let CopyFrom::Dir(dir) = from {
        key.str("dir", &dir.display().to_string());
    }
    let id = key.finish();
    session
        .settings()
        .state_root
        .join("cache")
        .join("copies")
        .join(id.hex())
}

/// A COPY or ADD that failed: a source that is not there is shown under that source's word
/// (not the instruction's), with what to do when `.dockerignore` is why; anything else at
/// the instruction.
fn copy_failed(
    session: &Session<'_>,
    instruction: &crate::dockerfile::instruction::Instruction,
    err: &copy::CopyError,
) -> BuildError {
    let copy::CopyError::SourceNotFound { path, ignored } = err else {
        return session.fail_at(instruction, err);
    };
    let word = instruction
        .node
        .args
        .iter()
        .find(|a| crate::context::clean(&format!("/{}", a.value)) == *path);
    let Some(word) = word else {
        return session.fail_at(instruction, err);
    };
    let hint = if *ignored {
        format!(
            "a .dockerignore pattern excludes {path}: remove that pattern, or add `!{}` after it",
            path.trim_start_matches('/')
        )
    } else {
        "sources are paths in the build context (the directory given to rbuild build), not on the machine".to_string()
    };
    BuildError::Step(Box::new(
        crate::diag::Diagnostic::error(crate::diag::chain(err))
            .at(session.source(), word.span)
            .with_hint(hint),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::instruction::InlineSource;
    use crate::engine::step::work::key_of;

    /// The key bytes of representative COPY and ADD steps, pinned: changing them is a
    /// decision (docs/build.md, "Cache keys").
    #[test]
    fn keys_are_pinned() {
        let mut op = CopyOp::new(OpKind::Copy, "app/");
        op.sources = vec!["src".into(), "*.txt".into()];
        op.workdir = "/srv".into();
        op.chmod = Some(copy::chmod::Chmod::parse("u=rwX,go=rX").unwrap());
        op.exclude = vec!["*.pyc".into()];
        let step = CopyStep {
            op,
            chown: Some("app:app".into()),
            from: CopyFrom::Context,
            inputs: Some(blake3::hash(b"inputs")),
            local: None,
        };
        assert_eq!(
            key_of(&step).hex(),
            "7e165c604e6fa0f893706c12892c0e81f125eecd6c3f1c978ed06878e00ea9e8"
        );

        let mut op = CopyOp::new(OpKind::Add, "/etc/motd");
        op.inline = vec![InlineSource {
            path: "motd".into(),
            data: "hello $NAME\n".into(),
            expand: true,
        }];
        op.checksum = Some("sha256:00".into());
        op.timestamp = Some(copy::Timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 0,
        });
        let step = CopyStep {
            op,
            chown: None,
            from: CopyFrom::Context,
            inputs: None,
            local: None,
        };
        assert_eq!(
            key_of(&step).hex(),
            "c3fe84d57ca8f2be592c334082bb666dcd6c3834a6dc066b1e3eaef2adb8764a"
        );
    }

    /// Every field of a COPY or ADD step reaches the key, one changed at a time (moby's
    /// CVE-2024-24557 took a cached result for a build that differed in an input the key
    /// left out): `--chown`, `--chmod`, `--from`, `--exclude`, `--parents`, ADD's
    /// `--checksum` and `--unpack`, what the sources hold (ADD `--keep-git-dir` changes
    /// the fetched tree, so this digest). `--link` and the resolved owner are left out on
    /// purpose (`link_is_not_in_the_key`; `chown` says the owner as written). The patterns
    /// name every field, so a new one does not compile until this table takes it.
    #[test]
    fn every_field_reaches_the_key() {
        fn base() -> CopyStep {
            let mut op = CopyOp::new(OpKind::Copy, "/app/");
            op.sources = vec!["src".into()];
            CopyStep {
                op,
                chown: None,
                from: CopyFrom::Context,
                inputs: Some(blake3::hash(b"inputs")),
                local: None,
            }
        }
        let CopyStep {
            op:
                CopyOp {
                    kind: _,
                    sources: _,
                    inline: _,
                    dest: _,
                    workdir: _,
                    owner: _,
                    chmod: _,
                    exclude: _,
                    parents: _,
                    unpack_archives: _,
                    checksum: _,
                    link: _,
                    timestamp: _,
                },
            chown: _,
            from: _,
            inputs: _,
            local: _,
        } = base();
        type Change = fn(&mut CopyStep);
        let changes: &[(&str, Change)] = &[
            ("ADD", |s| s.op.kind = OpKind::Add),
            ("sources", |s| s.op.sources.push("more".into())),
            ("heredoc", |s| {
                s.op.inline = vec![InlineSource {
                    path: "f".into(),
                    data: "x".into(),
                    expand: false,
                }]
            }),
            ("dest", |s| s.op.dest = "/srv/".into()),
            ("workdir", |s| s.op.workdir = "/w".into()),
            ("--chmod", |s| {
                s.op.chmod = Some(copy::chmod::Chmod::parse("0600").unwrap())
            }),
            ("--exclude", |s| s.op.exclude = vec!["*.md".into()]),
            ("--parents", |s| s.op.parents = true),
            ("--unpack", |s| s.op.unpack_archives = true),
            ("--checksum", |s| s.op.checksum = Some("sha256:01".into())),
            ("SOURCE_DATE_EPOCH", |s| {
                s.op.timestamp = Some(copy::Timespec {
                    tv_sec: 1,
                    tv_nsec: 0,
                })
            }),
            ("--chown", |s| s.chown = Some("1000:1000".into())),
            ("what the sources hold", |s| {
                s.inputs = Some(blake3::hash(b"other inputs"))
            }),
            ("--from", |s| {
                s.from = CopyFrom::State(crate::engine::state::StateRef {
                    layers: Vec::new(),
                    diff_ids: Vec::new(),
                    key: KeyEncoder::new("stage", None).finish(),
                })
            }),
            ("local sources beside remote ones", |s| {
                let mut local = base();
                local.op.sources = vec!["local".into()];
                s.local = Some(Box::new(local));
            }),
        ];
        crate::engine::step::work::assert_each_change_moves_the_key(base, changes);
    }

    /// What does not change the result stays out of the key.
    #[test]
    fn link_is_not_in_the_key() {
        let key = |link: bool| {
            let mut op = CopyOp::new(OpKind::Copy, ".");
            op.sources = vec!["a".into()];
            op.link = link;
            let step = CopyStep {
                op,
                chown: None,
                from: CopyFrom::Context,
                inputs: None,
                local: None,
            };
            key_of(&step)
        };
        assert_eq!(key(true), key(false));
    }
}
