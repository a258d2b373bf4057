//! RUN: the command, environment, user and mounts a step runs with ([`prepare`], which is
//! also what its cache key is made of), and running it in the sandbox over the step's
//! overlay ([`execute`]) with its output streamed to the progress and kept whole in a log.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;

use super::SecretSource;
use super::cache::KeyHasher;
use super::copy::{self, CopyOp, SourceRoot};
use super::engine::{BuildError, Engine, State, StateRef};
use super::fs::Tree;
use crate::diag::Diagnostic;
use crate::dockerfile::instruction::{self, Kind};
use crate::dockerfile::mount::{Mount, MountType};
use crate::plan::Step;
use crate::progress::{Event, Stream};
use crate::sandbox::cache_mount::{CacheMounts, write_secret};
use crate::sandbox::ssh::AgentProxy;
use crate::sandbox::{self, Bind, Network, Spec};
use crate::snapshot::workdir::WorkDir;

/// How many lines of output a failed RUN's error shows (the log has them all).
const TAIL_LINES: usize = 15;

/// A RUN step made concrete: everything that decides its result.
pub(super) struct Prepared {
    args: Vec<String>,
    env: Vec<String>,
    user: String,
    workdir: String,
    network: Network,
    mounts: Vec<Mount>,
    /// Per mount: what a bind mount reads (a stage or image, or the context), as the key
    /// knows it; the tree is mounted, or the context copied, only when the step runs.
    sources: Vec<Option<BindSource>>,
}

enum BindSource {
    State(StateRef),
    /// The context's `source=` (`.dockerignore` applied), and its content hash.
    Context(Box<CopyOp>, [u8; 32]),
}

impl Prepared {
    /// Feed the cache key: the command, its environment (never secrets), user, working
    /// directory, network and mounts, and what bind mounts read.
    pub(super) fn key(&self, key: &mut KeyHasher) {
        key.str("args", &serde_json::to_string(&self.args).expect("strings"));
        // Proxy variables reach RUN but not the key: a build behind another proxy still
        // hits the cache (BuildKit leaves them out too).
        let env: Vec<&String> = self
            .env
            .iter()
            .filter(|e| {
                let name = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
                !crate::plan::scope::PROXY_ARGS.contains(&name)
            })
            .collect();
        key.str("env", &serde_json::to_string(&env).expect("strings"));
        key.str("user", &self.user);
        key.str("workdir", &self.workdir);
        key.str("network", &format!("{:?}", self.network));
        for (m, src) in self.mounts.iter().zip(&self.sources) {
            key.str("mount", &format!("{m:?}"));
            match src {
                Some(BindSource::State(from)) => {
                    key.field("mount-from", from.key.as_bytes());
                }
                Some(BindSource::Context(_, h)) => {
                    key.field("mount-context", h);
                }
                None => {}
            }
        }
    }
}

pub(super) fn prepare(
    engine: &Engine<'_>,
    step: &Step,
    state: &State,
    done: &BTreeMap<usize, State>,
) -> Result<Prepared, BuildError> {
    let instruction = &step.instruction;
    let Kind::Run(run) = &instruction.kind else {
        unreachable!("run::prepare takes RUN")
    };
    let host = crate::oci::platform::Platform::host();
    if !host.matches(&state.platform) {
        return Err(engine.err_hint(
            instruction,
            format!(
                "RUN in a {} stage cannot run on this {host} machine: rbuild does not emulate other architectures",
                state.platform
            ),
            "build for this machine's platform, or give stages that only run tools FROM --platform=$BUILDPLATFORM",
        ));
    }
    let args = state
        .image
        .run_args(step)
        .map_err(|e| engine.err_at(instruction, e.to_string()))?;
    let env = state.image.run_env(&engine.plan().proxy_env);
    let network = match run.network {
        None | Some(instruction::Network::Default) => engine.opts().network,
        Some(instruction::Network::None) => Network::None,
        Some(instruction::Network::Host) => Network::Host,
    };
    if run.security == Some(instruction::Security::Insecure) {
        return Err(engine.err_at(
            instruction,
            "RUN --security=insecure is not supported: rbuild always runs steps sandboxed",
        ));
    }
    let mut sources = Vec::new();
    for m in &step.mounts {
        sources.push(match m.kind {
            MountType::Bind => Some(bind_source(engine, m, state, done, instruction)?),
            MountType::Cache if m.from.is_some() => {
                return Err(engine.err_at(
                    instruction,
                    "RUN --mount=type=cache,from=… (seeding a cache from a stage) is not supported yet",
                ));
            }
            _ => None,
        });
    }
    Ok(Prepared {
        args,
        env,
        user: state.image.user(),
        workdir: state.image.workdir(),
        network,
        mounts: step.mounts.clone(),
        sources,
    })
}

/// What a `--mount=type=bind` reads: `from=` a stage or image, else the context.
fn bind_source(
    engine: &Engine<'_>,
    m: &Mount,
    state: &State,
    done: &BTreeMap<usize, State>,
    instruction: &instruction::Instruction,
) -> Result<BindSource, BuildError> {
    if let Some(from) = &m.from {
        return Ok(BindSource::State(engine.state_from(
            from,
            state,
            done,
            instruction,
        )?));
    }
    let op = CopyOp::contents_of(m.source.as_deref().unwrap_or("."));
    let root = SourceRoot::Context {
        dir: &engine.opts().context,
        ignore: engine.ignore(),
    };
    let digest = copy::inputs_digest(&root, &op, &mut engine.hashes())
        .map_err(|e| engine.err_at(instruction, e.to_string()))?;
    Ok(BindSource::Context(Box::new(op), *digest.as_bytes()))
}

/// Make a bind mount's source: mount the stage or image it reads (a read-write bind gets
/// a copy or an overlay whose upper is thrown away, so its writes never reach the stage),
/// or copy the context's files (so the step can neither see ignored files nor write into
/// the user's directory). Returns the directory and what keeps it alive.
fn bind_dir(
    engine: &Engine<'_>,
    src: &BindSource,
    m: &Mount,
    instruction: &instruction::Instruction,
) -> Result<(PathBuf, BindHold), BuildError> {
    match src {
        BindSource::State(from) => {
            let tree = from.open(engine, !m.readonly)?;
            Ok((
                tree.root().to_path_buf(),
                BindHold {
                    _tree: Some(tree),
                    _dir: None,
                },
            ))
        }
        BindSource::Context(op, _) => {
            let dir = WorkDir::create(&engine.opts().state_root)?;
            let files = dir.path().join("context");
            std::fs::create_dir(&files).map_err(|source| BuildError::Files {
                what: format!("creating {}", files.display()),
                source,
            })?;
            let root = SourceRoot::Context {
                dir: &engine.opts().context,
                ignore: engine.ignore(),
            };
            copy::copy(&root, &files, op).map_err(|e| engine.err_at(instruction, e.to_string()))?;
            Ok((
                files,
                BindHold {
                    _tree: None,
                    _dir: Some(dir),
                },
            ))
        }
    }
}

/// What keeps a bind mount's source alive until the run ends (dropping it unmounts the
/// tree or removes the copy).
struct BindHold {
    _tree: Option<Tree>,
    _dir: Option<WorkDir>,
}

/// Run the prepared step in `rootfs` (the step's overlay); its output goes to the progress
/// and to `log`.
pub(super) fn execute(
    engine: &Engine<'_>,
    id: usize,
    step: &Step,
    prepared: &Prepared,
    rootfs: &Path,
    work_dir: &Path,
    log: &Path,
) -> Result<(), BuildError> {
    let instruction = &step.instruction;
    let io = |what: String| move |source| BuildError::Files { what, source };
    let user = resolve_user(engine, instruction, rootfs, &prepared.user)?;
    // Docker creates a missing working directory (BuildKit: owned by root).
    copy::mkdir_in_root(rootfs, &prepared.workdir, None)
        .map_err(|e| engine.err_at(instruction, e.to_string()))?;

    let hostname = "buildkitsandbox";
    let mut binds = sandbox::standard_files(&work_dir.join("files"), hostname, prepared.network)
        .map_err(io(
            "preparing /etc/hosts, /etc/resolv.conf, /etc/hostname".into()
        ))?;
    let mut env = prepared.env.clone();
    let mut tmpfs = Vec::new();
    let mut leases = Vec::new();
    let mut proxies = Vec::new();
    let mut holds = Vec::new();
    let caches = CacheMounts::new(&engine.opts().state_root);
    for (n, (m, src)) in prepared.mounts.iter().zip(&prepared.sources).enumerate() {
        let owner = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
        match m.kind {
            MountType::Bind => {
                let src = src.as_ref().expect("bind mounts have a source");
                let (base, hold) = bind_dir(engine, src, m, instruction)?;
                holds.push(hold);
                let source = match (&m.from, &m.source) {
                    (Some(_), Some(s)) => {
                        resolve_in(&base, s).map_err(|e| engine.err_at(instruction, e))?
                    }
                    _ => base,
                };
                binds.push(Bind {
                    source,
                    target: m.target.clone(),
                    readonly: m.readonly,
                });
            }
            MountType::Cache => {
                let id = m.id.clone().unwrap_or_else(|| m.target.clone());
                let lease = caches
                    .acquire(&id, m.sharing, m.mode.unwrap_or(0o755), owner.0, owner.1)
                    .map_err(|e| engine.err_at(instruction, e.to_string()))?;
                binds.push(Bind {
                    source: lease.path.clone(),
                    target: m.target.clone(),
                    readonly: m.readonly,
                });
                leases.push(lease);
            }
            MountType::Tmpfs => tmpfs.push((m.target.clone(), m.size)),
            MountType::Secret => {
                let id = m.id.clone().unwrap_or_default();
                let data = match engine.opts().secrets.get(&id) {
                    Some(SecretSource::File(path)) => std::fs::read(path)
                        .map_err(io(format!("reading secret {id:?} from {}", path.display())))?,
                    Some(SecretSource::Env(var)) => std::env::var_os(var)
                        .map(|v| v.into_encoded_bytes())
                        .ok_or_else(|| {
                            engine.err_at(
                                instruction,
                                format!("secret {id:?}: environment variable {var} is not set"),
                            )
                        })?,
                    None if m.required => {
                        return Err(engine.err_at(
                            instruction,
                            format!(
                                "secret {id} not found (pass it with --secret id={id},src=FILE)"
                            ),
                        ));
                    }
                    None => continue,
                };
                if let Some(var) = &m.env {
                    env.push(format!("{var}={}", String::from_utf8_lossy(&data)));
                }
                // A secret with env= and no target is only an environment variable.
                if !m.target.is_empty() {
                    let path = write_secret(
                        work_dir,
                        &format!("{n}-{id}"),
                        &data,
                        m.mode.unwrap_or(0o400),
                        owner,
                    )
                    .map_err(io(format!("writing secret {id:?}")))?;
                    binds.push(Bind {
                        source: path,
                        target: m.target.clone(),
                        readonly: true,
                    });
                }
            }
            MountType::Ssh => {
                let id = m.id.clone().unwrap_or_else(|| "default".into());
                let agent = engine
                    .opts()
                    .ssh
                    .agent(&id)
                    .map_err(|e| engine.err_at(instruction, e.to_string()))?;
                let sock = work_dir.join(format!("ssh-{n}.sock"));
                let proxy = AgentProxy::start(agent, &sock, m.mode.unwrap_or(0o600), owner)
                    .map_err(io(format!("forwarding ssh agent {id:?}")))?;
                if !env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
                    env.push(format!("SSH_AUTH_SOCK={}", m.target));
                }
                binds.push(Bind {
                    source: proxy.path().to_path_buf(),
                    target: m.target.clone(),
                    readonly: false,
                });
                proxies.push(proxy);
            }
        }
    }

    let spec = Spec {
        env,
        cwd: prepared.workdir.clone(),
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        hostname: hostname.into(),
        network: prepared.network,
        binds,
        tmpfs,
        limits: engine.opts().limits,
        ..Spec::new(rootfs, prepared.args.clone())
    };
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    }
    let log_file = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
    let output = Output {
        log: Mutex::new(log_file),
        tail: Mutex::new(VecDeque::new()),
    };
    let mut running = sandbox::spawn(&spec, Stdio::piped(), Stdio::piped())
        .map_err(|e| engine.err_at(instruction, e.to_string()))?;
    let registered = super::interrupt::Registered::new(running.id());
    let stdout = running.stdout();
    let stderr = running.stderr();
    std::thread::scope(|s| {
        if let Some(out) = stdout {
            let output = &output;
            s.spawn(move || output.pump(engine, id, Stream::Stdout, out));
        }
        if let Some(err) = stderr {
            let output = &output;
            s.spawn(move || output.pump(engine, id, Stream::Stderr, err));
        }
    });
    let status = running
        .wait()
        .map_err(|e| engine.err_at(instruction, e.to_string()))?;
    drop(registered);
    drop(holds);
    drop(proxies);
    drop(leases);
    if super::interrupt::interrupted() {
        return Err(BuildError::Interrupted);
    }
    if status.success() {
        return Ok(());
    }
    let code = match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".to_string(),
    };
    let tail: Vec<String> = output.tail.into_inner().expect("tail").into();
    let mut d = Diagnostic::error(format!(
        "process \"{}\" did not complete successfully: {code}",
        prepared.args.join(" ")
    ))
    .at_lines(
        engine.source(),
        instruction.node.start_line,
        instruction.node.end_line,
    )
    .with_hint(format!("the whole output is in {}", log.display()));
    if !tail.is_empty() {
        let lines: Vec<String> = tail.iter().map(|l| format!("    {l}")).collect();
        d = d.with_note(format!("last lines of output:\n{}", lines.join("\n")));
    }
    Err(BuildError::Step(Box::new(d)))
}

/// The image's own `/etc/passwd` and `/etc/group` in `rootfs`.
fn passwd_and_group(rootfs: &Path) -> Result<(String, String), BuildError> {
    let read = |p: &str| {
        sandbox::user::read_in_root(rootfs, p).map_err(|source| BuildError::Files {
            what: format!("reading {p} of the image"),
            source,
        })
    };
    Ok((read("/etc/passwd")?, read("/etc/group")?))
}

/// USER resolved against the image's own `/etc/passwd` and `/etc/group`.
fn resolve_user(
    engine: &Engine<'_>,
    instruction: &instruction::Instruction,
    rootfs: &Path,
    spec: &str,
) -> Result<sandbox::user::User, BuildError> {
    let (passwd, group) = passwd_and_group(rootfs)?;
    sandbox::user::resolve(spec, &passwd, &group)
        .map_err(|e| engine.err_at(instruction, e.to_string()))
}

/// `--chown` of COPY/ADD (BuildKit's rules, not USER's) resolved in `rootfs`.
pub(super) fn chown_ids(
    engine: &Engine<'_>,
    instruction: &instruction::Instruction,
    rootfs: &Path,
    spec: &str,
) -> Result<(u32, u32), BuildError> {
    let (passwd, group) = passwd_and_group(rootfs)?;
    copy::resolve_chown(spec, &passwd, &group)
        .map_err(|e| engine.err_at(instruction, e.to_string()))
}

/// USER's uid and gid in `rootfs`.
pub(super) fn user_ids(
    engine: &Engine<'_>,
    instruction: &instruction::Instruction,
    rootfs: &Path,
    spec: &str,
) -> Result<(u32, u32), BuildError> {
    resolve_user(engine, instruction, rootfs, spec).map(|u| (u.uid, u.gid))
}

/// A bind mount's `source=` inside its tree, which it must not leave.
fn resolve_in(base: &Path, source: &str) -> Result<PathBuf, String> {
    let joined = base.join(source.trim_start_matches('/'));
    let real = joined
        .canonicalize()
        .map_err(|e| format!("bind mount source {source:?}: {e}"))?;
    let base = base
        .canonicalize()
        .map_err(|e| format!("bind mount base {}: {e}", base.display()))?;
    if !real.starts_with(&base) {
        return Err(format!("bind mount source {source:?} leaves its tree"));
    }
    Ok(real)
}

/// A RUN's output: every line to the log and the progress, the last ones kept for errors.
struct Output {
    log: Mutex<std::fs::File>,
    tail: Mutex<VecDeque<String>>,
}

impl Output {
    fn pump(&self, engine: &Engine<'_>, id: usize, stream: Stream, from: impl Read) {
        let mut reader = BufReader::new(from);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let _ = self.log.lock().expect("log").write_all(&line);
            {
                let mut tail = self.tail.lock().expect("tail");
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(
                    String::from_utf8_lossy(&line)
                        .trim_end_matches(['\n', '\r'])
                        .to_string(),
                );
            }
            engine.progress().event(Event::Log {
                id,
                stream,
                line: line.clone(),
            });
        }
    }
}
