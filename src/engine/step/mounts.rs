//! RUN's `--mount`s: what a bind mount reads, known before the step runs (so its key can
//! name it: [`BindSource`]), and, when the step runs, each mount made concrete for the
//! sandbox ([`Mounts::make`]): binds of stages, images or copies of the context, cache
//! mounts, tmpfs, secrets and ssh-agent sockets. The sandbox gets plain directories and
//! files; which cache a mount means is decided here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::work::Cx;
use crate::dockerfile::instruction::Instruction;
use crate::dockerfile::mount::{Mount, MountType};
use crate::engine::copy::{self, CopyOp, SourceRoot};
use crate::engine::error::BuildError;
use crate::engine::fs::Tree;
use crate::engine::resolve::state_from;
use crate::engine::session::Session;
use crate::engine::settings::SecretSource;
use crate::engine::state::{State, StateRef};
use crate::sandbox::Bind;
use crate::sandbox::cache_mount::{CacheMounts, Lease, Sharing, write_secret};
use crate::sandbox::ssh::AgentProxy;
use crate::snapshot::workdir::WorkDir;

/// What a `--mount=type=bind` reads.
pub(crate) enum BindSource {
    /// `from=` a stage or image.
    State(StateRef),
    /// The context's `source=` (`.dockerignore` applied), and its content hash.
    Context(Box<CopyOp>, [u8; 32]),
}

/// What a `--mount=type=bind` reads: `from=` a stage or image, else the context.
pub(crate) fn bind_source(
    session: &Session<'_>,
    m: &Mount,
    state: &State,
    done: &BTreeMap<usize, State>,
    instruction: &Instruction,
) -> Result<BindSource, BuildError> {
    if let Some(from) = &m.from {
        return Ok(BindSource::State(state_from(
            session,
            from,
            state,
            done,
            instruction,
        )?));
    }
    let op = CopyOp::contents_of(m.source.as_deref().unwrap_or("."));
    let root = SourceRoot::Context {
        dir: &session.settings().context,
        ignore: session.ignore(),
    };
    let digest = copy::inputs_digest(&root, &op, &mut session.hashes())
        .map_err(|e| session.fail_at(instruction, &e))?;
    Ok(BindSource::Context(Box::new(op), *digest.as_bytes()))
}

/// Which cache directory a `--mount=type=cache` gets: its `id` (by default its target,
/// cleaned by the front end: `/x/` and `/x` are one cache); and, when the mount sets
/// `uid`, `gid` or `mode`, those too, since BuildKit seeds such a cache from a directory
/// made with them, which keeps it apart from the same id's other caches
/// (`dockerfile2llb/convert_runmount.go`).
fn cache_identity(m: &Mount) -> String {
    let id = match &m.id {
        Some(id) => id.clone(),
        None => crate::context::clean::clean(&m.target),
    };
    if m.uid.is_none() && m.gid.is_none() && m.mode.is_none() {
        return id;
    }
    let part = |v: Option<u32>| v.map_or_else(|| "-".to_string(), |v| v.to_string());
    format!(
        "{id}\0uid={},gid={},mode={}",
        part(m.uid),
        part(m.gid),
        part(m.mode)
    )
}

/// The identity of a cache mount's directory: [`cache_identity`], and for a cache seeded
/// `from=` a stage or image, that state's key (BuildKit bases the cache on the `from` state,
/// so another seed is another cache).
pub(crate) fn cache_mount_identity(m: &Mount, src: Option<&BindSource>) -> String {
    let mut identity = cache_identity(m);
    if let Some(BindSource::State(from)) = src {
        identity.push_str("\0from=");
        identity.push_str(&crate::engine::cache::CacheKey::hex(&from.key));
    }
    identity
}

/// A cache mount's sharing mode, for the sandbox's cache-mount directories.
fn sharing(s: crate::dockerfile::mount::Sharing) -> Sharing {
    match s {
        crate::dockerfile::mount::Sharing::Shared => Sharing::Shared,
        crate::dockerfile::mount::Sharing::Private => Sharing::Private,
        crate::dockerfile::mount::Sharing::Locked => Sharing::Locked,
    }
}

/// A RUN's mounts made concrete, and what keeps them alive until the step ends (dropping
/// it unmounts trees, removes copies, stops agent relays and releases cache locks).
#[derive(Default)]
pub(crate) struct Mounts {
    pub(crate) binds: Vec<Bind>,
    /// tmpfs targets and their size limits.
    pub(crate) tmpfs: Vec<(String, Option<u64>)>,
    /// Environment the mounts add (a secret's `env=`, `SSH_AUTH_SOCK`).
    pub(crate) env: Vec<String>,
    trees: Vec<Tree>,
    dirs: Vec<WorkDir>,
    leases: Vec<Lease>,
    proxies: Vec<AgentProxy>,
}

impl Mounts {
    /// Make each mount of the step; `env` is the step's environment so far (an ssh mount
    /// sets `SSH_AUTH_SOCK` only when it is not set).
    pub(crate) fn make(
        cx: &Cx<'_, '_>,
        mounts: &[Mount],
        sources: &[Option<BindSource>],
        env: &[String],
    ) -> Result<Mounts, BuildError> {
        let session = cx.session;
        let instruction = &cx.step.instruction;
        let io = |what: String| move |source| BuildError::Files { what, source };
        let caches = CacheMounts::new(&session.settings().state_root);
        let mut out = Mounts::default();
        for (n, (m, src)) in mounts.iter().zip(sources).enumerate() {
            let owner = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
            match m.kind {
                MountType::Bind => {
                    let src = src.as_ref().expect("bind mounts have a source");
                    let base = out.bind_dir(cx, src, m)?;
                    let source = match (&m.from, &m.source) {
                        (Some(_), Some(s)) => {
                            resolve_in(&base, s).map_err(|e| session.err_at(instruction, e))?
                        }
                        _ => base,
                    };
                    out.binds.push(Bind {
                        source,
                        target: m.target.clone(),
                        readonly: m.readonly,
                    });
                }
                MountType::Cache => {
                    let identity = cache_mount_identity(m, src.as_ref());
                    let lease = caches
                        .acquire(
                            &identity,
                            sharing(m.sharing),
                            m.mode.unwrap_or(0o755),
                            owner.0,
                            owner.1,
                        )
                        .map_err(|e| session.fail_at(instruction, &e))?;
                    if let Some(BindSource::State(from)) = src {
                        seed_cache(cx, &caches, &identity, from, m, &lease.path)?;
                    }
                    // Held for the rest of the build: a collection under a size cap leaves it.
                    session
                        .leases()
                        .hold(
                            crate::gc::lease::Kind::Mount,
                            &lease.path.file_name().unwrap_or_default().to_string_lossy(),
                            &lease.path,
                        )
                        .map_err(io(format!("holding {}", lease.path.display())))?;
                    // Empty here, and carried by an imported cache (`mounts=`): restored.
                    crate::engine::caches::restore_mount(
                        session.travel(),
                        session.lazy(),
                        session.store(),
                        &identity,
                        &lease.path,
                        || {
                            caches
                                .seed_lock(&identity)
                                .map_err(|e| session.fail_at(instruction, &e))
                        },
                    )?;

                    out.binds.push(Bind {
                        source: lease.path.clone(),
                        target: m.target.clone(),
                        readonly: m.readonly,
                    });
                    out.leases.push(lease);
                }
                MountType::Tmpfs => out.tmpfs.push((m.target.clone(), m.size)),
                MountType::Secret => {
                    let id = m.id.clone().unwrap_or_default();
                    let data = match session.settings().secrets.get(&id) {
                        Some(SecretSource::File(path)) => std::fs::read(path).map_err(io(
                            format!("reading secret {id:?} from {}", path.display()),
                        ))?,
                        Some(SecretSource::Env(var)) => std::env::var_os(var)
                            .map(|v| v.into_encoded_bytes())
                            .ok_or_else(|| {
                                session.err_at(
                                    instruction,
                                    format!("secret {id:?}: environment variable {var} is not set"),
                                )
                            })?,
                        None if m.required => {
                            return Err(session.err_at(
                                instruction,
                                format!(
                                    "secret {id} not found (pass it with --secret id={id},src=FILE)"
                                ),
                            ));
                        }
                        None => continue,
                    };
                    if let Some(var) = &m.env {
                        out.env
                            .push(format!("{var}={}", String::from_utf8_lossy(&data)));
                    }
                    // A secret with env= and no target is only an environment variable.
                    if !m.target.is_empty() {
                        let path = write_secret(
                            cx.work_dir,
                            &format!("{n}-{id}"),
                            &data,
                            m.mode.unwrap_or(0o400),
                            owner,
                        )
                        .map_err(io(format!("writing secret {id:?}")))?;
                        out.binds.push(Bind {
                            source: path,
                            target: m.target.clone(),
                            readonly: true,
                        });
                    }
                }
                MountType::Ssh => {
                    let id = m.id.clone().unwrap_or_else(|| "default".into());
                    let agent = session
                        .settings()
                        .ssh
                        .agent(&id)
                        .map_err(|e| session.fail_at(instruction, &e))?;
                    let sock = cx.work_dir.join(format!("ssh-{n}.sock"));
                    let proxy = AgentProxy::start(agent, &sock, m.mode.unwrap_or(0o600), owner)
                        .map_err(io(format!("forwarding ssh agent {id:?}")))?;
                    let set = |e: &String| e.starts_with("SSH_AUTH_SOCK=");
                    if !env.iter().any(set) && !out.env.iter().any(set) {
                        out.env.push(format!("SSH_AUTH_SOCK={}", m.target));
                    }
                    out.binds.push(Bind {
                        source: proxy.path().to_path_buf(),
                        target: m.target.clone(),
                        readonly: false,
                    });
                    out.proxies.push(proxy);
                }
            }
        }
        Ok(out)
    }

    /// Make a bind mount's source: mount the stage or image it reads (a read-write bind
    /// gets a copy or an overlay whose upper is thrown away, so its writes never reach the
    /// stage), or copy the context's files (so the step can neither see ignored files nor
    /// write into the user's directory).
    fn bind_dir(
        &mut self,
        cx: &Cx<'_, '_>,
        src: &BindSource,
        m: &Mount,
    ) -> Result<PathBuf, BuildError> {
        let session = cx.session;
        match src {
            BindSource::State(from) => {
                let tree = session.open(Some(cx.id), from, !m.readonly)?;
                let root = tree.root().to_path_buf();
                self.trees.push(tree);
                Ok(root)
            }
            BindSource::Context(op, _) => {
                let dir = WorkDir::create(&session.settings().state_root)?;
                let files = dir.path().join("context");
                std::fs::create_dir(&files).map_err(|source| BuildError::Files {
                    what: format!("creating {}", files.display()),
                    source,
                })?;
                let root = SourceRoot::Context {
                    dir: &session.settings().context,
                    ignore: session.ignore(),
                };
                copy::copy(&root, &files, op)
                    .map_err(|e| session.fail_at(&cx.step.instruction, &e))?;
                self.dirs.push(dir);
                // A single file is mounted as that file, as BuildKit mounts it; its copy
                // is the one entry named after it.
                let source = crate::context::clean::clean(&format!("/{}", op.sources[0]));
                let name = source.rsplit('/').next().unwrap_or_default();
                let single = files.join(name);
                let is_file = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file());
                let context_file = session
                    .settings()
                    .context
                    .join(source.trim_start_matches('/'));
                if !name.is_empty() && is_file(&context_file) && is_file(&single) {
                    return Ok(single);
                }
                Ok(files)
            }
        }
    }
}

/// Fill a new (still empty) cache directory from `source=` (the root by default) of
/// the stage or image it is seeded from, owners and modes kept, as BuildKit starts a
/// cache mount from its `from` state.
fn seed_cache(
    cx: &Cx<'_, '_>,
    caches: &CacheMounts,
    identity: &str,
    from: &StateRef,
    m: &Mount,
    dir: &Path,
) -> Result<(), BuildError> {
    let session = cx.session;
    let instruction = &cx.step.instruction;
    let _seeding = caches
        .seed_lock(identity)
        .map_err(|e| session.fail_at(instruction, &e))?;
    let empty = std::fs::read_dir(dir)
        .map_err(|source| BuildError::Files {
            what: format!("reading cache directory {}", dir.display()),
            source,
        })?
        .next()
        .is_none();
    if !empty {
        return Ok(());
    }
    let tree = session.open(Some(cx.id), from, false)?;
    let op = CopyOp::contents_of(m.source.as_deref().unwrap_or("/"));
    copy::copy(&SourceRoot::Tree(tree.root()), dir, &op)
        .map_err(|e| session.fail_at(instruction, &e))?;
    Ok(())
}

/// A bind mount's `source=` inside its tree, which it must not leave: its symlinks are the
/// tree's, resolved with the tree's root as `/` as BuildKit does (continuity's
/// `fs.RootPath`), so a stage's `evil -> /` or `evil -> ../..` names that stage's root and
/// never the host's (Buildah's CVE-2024-1753). Resolving on the host (`canonicalize`) sent
/// such links out of the tree, to be refused there, and refused an `etc -> /srv/etc` that
/// names a directory of the stage.
fn resolve_in(base: &Path, source: &str) -> Result<PathBuf, String> {
    let real = crate::rootpath::resolve_in_dir(base, source)
        .map_err(|e| format!("bind mount source {source:?}: {e}"))?;
    Ok(base.join(real))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(spec: &str) -> String {
        cache_identity(&crate::dockerfile::mount::parse(spec, None, 0).unwrap())
    }

    #[test]
    fn cache_identity_cleans_the_target_and_keeps_owners_apart() {
        assert_eq!(
            identity("type=cache,target=/x/"),
            identity("type=cache,target=/x")
        );
        assert_eq!(identity("type=cache,target=/x//y/.."), "/x");
        assert_eq!(identity("type=cache,id=pip,target=/a"), "pip");
        assert_eq!(
            identity("type=cache,id=pip,target=/a"),
            identity("type=cache,id=pip,target=/b")
        );
        let plain = identity("type=cache,target=/x");
        let owned = identity("type=cache,target=/x,uid=1000");
        let moded = identity("type=cache,target=/x,mode=0700");
        assert_ne!(plain, owned);
        assert_ne!(plain, moded);
        assert_ne!(owned, moded);
        assert_eq!(owned, identity("type=cache,target=/x/,uid=1000"));
    }
}
