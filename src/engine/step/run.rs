//! RUN: the command, environment, user and mounts a step runs with ([`prepare`], which is
//! also what its key is made of), and running it in the sandbox over the step's
//! filesystem, its output streamed to the progress and kept whole in a log.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;

use super::mounts::{BindSource, Mounts, bind_source, cache_mount_identity};
use super::work::{Cx, LayerStep};
use crate::diag::Diagnostic;
use crate::dockerfile::instruction;
use crate::dockerfile::mount::{Mount, MountType};
use crate::engine::cache::KeyEncoder;
use crate::engine::copy;
use crate::engine::error::BuildError;
use crate::engine::interrupt;
use crate::engine::session::Session;
use crate::engine::stage_image::PIPES;
use crate::engine::state::State;
use crate::plan::Step;
use crate::progress::{Event, Stream};
use crate::sandbox::cache_mount::CacheMounts;
use crate::sandbox::{self, Bind, Network, Spec};

/// How many lines of output a failed RUN's error shows (the log has them all).
const TAIL_LINES: usize = 15;

/// A RUN step made concrete: everything that decides its result.
pub(crate) struct RunStep {
    args: Vec<String>,
    env: Vec<String>,
    user: String,
    workdir: String,
    network: Network,
    /// `--security=insecure`, allowed by the build.
    privileged: bool,
    /// A lone `<<NAME` heredoc starting with `#!`: the file NAME, mounted at
    /// `/dev/pipes/NAME` (which `args` runs), and its body.
    script: Option<(String, String)>,
    mounts: Vec<Mount>,
    /// Per mount: what a bind mount reads (a stage or image, or the context), as the key
    /// knows it; the tree is mounted, or the context copied, only when the step runs.
    sources: Vec<Option<BindSource>>,
    /// `--add-host` lines for `/etc/hosts`.
    extra_hosts: Vec<(String, String)>,
    /// `--shm-size`.
    shm_size: Option<u64>,
    /// `--ulimit`.
    ulimits: Vec<crate::sandbox::Ulimit>,
}

pub(crate) fn prepare(
    session: &Session<'_>,
    run: &instruction::Run,
    step: &Step,
    state: &State,
    done: &BTreeMap<usize, State>,
) -> Result<RunStep, BuildError> {
    let instruction = &step.instruction;
    // A stage of another architecture runs through QEMU user emulation, which the engine
    // checked for before the build (`engine/emulation.rs`).
    let args = state
        .image
        .run_args(step)
        .map_err(|e| session.fail_at(instruction, &e))?;
    let env = state.image.run_env(&session.plan().proxy_env);
    let network = match run.network {
        None | Some(instruction::Network::Default) => session.settings().network,
        Some(instruction::Network::None) => Network::None,
        Some(instruction::Network::Host) => Network::Host,
    };
    let privileged = run.security == Some(instruction::Security::Insecure);
    if privileged && !session.settings().allow_insecure {
        return Err(session.err_hint(
            instruction,
            "RUN --security=insecure needs the build to allow it",
            "pass --allow security.insecure to rbuild build (as with docker buildx)",
        ));
    }
    let mut sources = Vec::new();
    for m in &step.mounts {
        sources.push(match m.kind {
            MountType::Bind => Some(bind_source(session, m, state, done, instruction)?),
            // A cache seeded `from=` a stage or image: what it reads is part of the key.
            MountType::Cache if m.from.is_some() => {
                Some(bind_source(session, m, state, done, instruction)?)
            }
            _ => None,
        });
    }
    // The step's cache mounts, whether it runs or is cached: `--cache-to …,mounts=` carries
    // their directories.
    let caches = CacheMounts::new(&session.settings().state_root);
    for (m, src) in step.mounts.iter().zip(&sources) {
        if m.kind == MountType::Cache {
            let identity = cache_mount_identity(m, src.as_ref());
            session
                .travel()
                .mount_used(&identity, &caches.base(&identity));
        }
    }
    Ok(RunStep {
        args,
        env,
        user: state.image.user(),
        workdir: state.image.workdir(),
        network,
        privileged,
        script: state.image.run_script(step),
        mounts: step.mounts.clone(),
        sources,
        extra_hosts: session.settings().extra_hosts.clone(),
        shm_size: session.settings().shm_size,
        ulimits: session.settings().ulimits.clone(),
    })
}

fn mount_type(kind: MountType) -> &'static str {
    match kind {
        MountType::Bind => "bind",
        MountType::Cache => "cache",
        MountType::Tmpfs => "tmpfs",
        MountType::Secret => "secret",
        MountType::Ssh => "ssh",
    }
}

/// A mount's fields that decide what the step sees. `sharing=` is left out: it decides
/// how concurrent steps share a cache, not what one step sees.
fn key_mount(key: &mut KeyEncoder, m: &Mount, source: Option<&BindSource>) {
    key.nested("mount", |f| {
        f.str("type", mount_type(m.kind));
        f.str("target", &m.target);
        f.bool("readonly", m.readonly);
        f.opt_str("from", m.from.as_deref());
        f.opt_str("source", m.source.as_deref());
        f.opt_str("id", m.id.as_deref());
        f.opt_u64("mode", m.mode.map(u64::from));
        f.opt_u64("uid", m.uid.map(u64::from));
        f.opt_u64("gid", m.gid.map(u64::from));
        f.opt_u64("size", m.size);
        f.bool("required", m.required);
        f.opt_str("env", m.env.as_deref());
        match source {
            Some(BindSource::State(from)) => {
                f.bytes("from-key", from.key.as_bytes());
            }
            Some(BindSource::Context(_, digest)) => {
                f.bytes("context", digest);
            }
            None => {}
        }
    });
}

impl LayerStep for RunStep {
    /// The command, its environment (never secrets), user, working directory, network and
    /// mounts, and what bind mounts read.
    fn key(&self, key: &mut KeyEncoder) {
        key.str("step", "run");
        key.strs("args", &self.args);
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
        key.strs("env", &env);
        key.str("user", &self.user);
        key.str("workdir", &self.workdir);
        key.str(
            "network",
            match self.network {
                Network::Host => "host",
                Network::None => "none",
            },
        );
        if self.privileged {
            key.str("security", "insecure");
        }
        // Only when given, so that the keys of every other build stay as they were.
        if !self.extra_hosts.is_empty() {
            let hosts: Vec<String> = self
                .extra_hosts
                .iter()
                .map(|(name, ip)| format!("{name}={ip}"))
                .collect();
            key.strs("extra-hosts", &hosts);
        }
        if let Some(size) = self.shm_size {
            key.u64("shm-size", size);
        }
        if !self.ulimits.is_empty() {
            let limits: Vec<String> = self
                .ulimits
                .iter()
                .map(|u| format!("{}={}:{}", u.name, u.soft, u.hard))
                .collect();
            key.strs("ulimits", &limits);
        }
        if let Some((name, body)) = &self.script {
            key.nested("script", |s| {
                s.str("name", name);
                s.str("body", body);
            });
        }
        key.nested("mounts", |l| {
            for (m, src) in self.mounts.iter().zip(&self.sources) {
                key_mount(l, m, src.as_ref());
            }
        });
    }

    fn execute(self: Box<Self>, cx: &Cx<'_, '_>, root: &Path) -> Result<(), BuildError> {
        let session = cx.session;
        let instruction = &cx.step.instruction;
        let io = |what: String| move |source| BuildError::Files { what, source };
        let user = super::user::resolve_user(session, instruction, root, &self.user)?;
        // Docker creates a missing working directory (BuildKit: owned by root).
        copy::mkdir_in_root(root, &self.workdir, None)
            .map_err(|e| session.fail_at(instruction, &e))?;

        let hostname = "buildkitsandbox";
        let mut binds = sandbox::standard_files(
            &cx.work_dir.join("files"),
            hostname,
            self.network,
            &self.extra_hosts,
        )
        .map_err(io(
            "preparing /etc/hosts, /etc/resolv.conf, /etc/hostname".into()
        ))?;
        let mounts = Mounts::make(cx, &self.mounts, &self.sources, &self.env)?;
        binds.extend(mounts.binds.iter().cloned());
        if let Some((name, body)) = &self.script {
            binds.push(write_script(cx.work_dir, name, body)?);
        }
        let mut env = self.env.clone();
        env.extend(mounts.env.iter().cloned());
        // runc sets HOME from the user's passwd entry (`/` without one) unless the
        // environment has it (libcontainer `setupUser`); nothing of it reaches the image.
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        let isolation = session.isolation()?;
        let spec = Spec {
            env,
            cwd: self.workdir.clone(),
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
            hostname: hostname.into(),
            network: self.network,
            binds,
            tmpfs: mounts.tmpfs.clone(),
            limits: session.settings().limits,
            privileged: self.privileged,
            shm_size: self.shm_size,
            ulimits: self.ulimits.clone(),
            proc: isolation.proc,
            keep_hostname: isolation.keep_hostname,
            ..Spec::new(root, self.args.clone())
        };
        let log = session.log_path(cx.id);
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let log_file =
            std::fs::File::create(&log).map_err(io(format!("creating {}", log.display())))?;
        let output = Output {
            log: Mutex::new(log_file),
            tail: Mutex::new(VecDeque::new()),
        };
        let mut running = sandbox::spawn(&spec, Stdio::piped(), Stdio::piped())
            .map_err(|e| session.fail_at(instruction, &e))?;
        let registered = interrupt::Registered::new(running.id());
        let stdout = running.stdout();
        let stderr = running.stderr();
        std::thread::scope(|s| {
            if let Some(out) = stdout {
                let output = &output;
                s.spawn(move || output.pump(session, cx.id, Stream::Stdout, out));
            }
            if let Some(err) = stderr {
                let output = &output;
                s.spawn(move || output.pump(session, cx.id, Stream::Stderr, err));
            }
        });
        let status = running
            .wait()
            .map_err(|e| session.fail_at(instruction, &e))?;
        drop(registered);
        drop(mounts);
        if interrupt::interrupted() {
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
            self.args.join(" ")
        ))
        .at_lines(
            session.source(),
            instruction.node.start_line,
            instruction.node.end_line,
        )
        .with_hint(format!("the whole output is in {}", log.display()));
        if !tail.is_empty() {
            let lines: Vec<String> = tail.iter().map(|l| format!("    {l}")).collect();
            d = d.with_note(format!("last lines of output:\n{}", lines.join("\n")));
        }
        // A secret mount the build was not given is simply absent in the step (BuildKit's
        // default, `required=false`): that is often why the step failed.
        for m in &self.mounts {
            if m.kind == MountType::Secret
                && let id = m.id.clone().unwrap_or_default()
                && !session.settings().secrets.contains_key(&id)
            {
                d = d.with_note(format!(
                    "the secret {id:?} was not given to this build, so {} was empty or missing in the step: pass it with --secret id={id},src=FILE (or add required=true to the mount to fail before running)",
                    m.env.as_ref().map(|v| format!("${v}")).unwrap_or_else(|| m.target.clone())
                ));
            }
        }
        Err(BuildError::Step(Box::new(d)))
    }
}

/// Write a `#!` heredoc as an executable file (0755) in a directory of the step's own, and
/// the read-only bind that puts that directory at `/dev/pipes`.
fn write_script(work_dir: &Path, name: &str, body: &str) -> Result<Bind, BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = work_dir.join("pipes");
    let io = |what: String| move |source| BuildError::Files { what, source };
    std::fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
    let file = dir.join(name);
    std::fs::write(&file, body).map_err(io(format!("writing {}", file.display())))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
        .map_err(io(format!("making {} executable", file.display())))?;
    Ok(Bind {
        source: dir,
        target: PIPES.to_string(),
        readonly: true,
    })
}

/// A RUN's output: every line to the log and the progress, the last ones kept for errors.
struct Output {
    log: Mutex<std::fs::File>,
    tail: Mutex<VecDeque<String>>,
}

impl Output {
    fn pump(&self, session: &Session<'_>, id: usize, stream: Stream, from: impl Read) {
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
            session.progress().event(Event::Log {
                id,
                stream,
                line: line.clone(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::mount::Sharing;
    use crate::engine::step::work::key_of;

    /// A `--mount` as a Dockerfile spells it.
    fn mount(spec: &str) -> Mount {
        crate::dockerfile::mount::parse(spec, None, 0).unwrap()
    }

    fn step(mounts: Vec<Mount>) -> RunStep {
        let sources = mounts.iter().map(|_| None).collect();
        RunStep {
            args: vec!["/bin/sh".into(), "-c".into(), "pip install -r r.txt".into()],
            env: vec![
                "PATH=/usr/bin:/bin".into(),
                "HTTP_PROXY=http://proxy:3128".into(),
            ],
            user: "app".into(),
            workdir: "/srv".into(),
            network: Network::Host,
            privileged: false,
            script: None,
            mounts,
            sources,
            extra_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
        }
    }

    /// `--add-host` and `--shm-size` reach the key when given, and leave it alone when not.
    #[test]
    fn host_entries_and_shm_size_are_in_the_key_when_given() {
        let plain = key_of(&step(Vec::new()));
        let mut hosts = step(Vec::new());
        hosts.extra_hosts = vec![("db".into(), "10.0.0.2".into())];
        let mut shm = step(Vec::new());
        shm.shm_size = Some(1 << 30);
        let keys = [plain, key_of(&hosts), key_of(&shm)];
        assert_ne!(keys[0], keys[1]);
        assert_ne!(keys[0], keys[2]);
        assert_ne!(keys[1], keys[2]);
    }

    /// The key bytes of representative RUN steps, pinned: changing them is a decision
    /// (docs/build.md, "Cache keys").
    #[test]
    fn keys_are_pinned() {
        assert_eq!(
            key_of(&step(Vec::new())).hex(),
            "1b02ee920325294fec58c83247ac7d440d603e83b92209b56586dfbb5d7171a2"
        );
        let cache = mount("type=cache,target=/root/.cache/pip");
        let secret = mount("type=secret,id=npm,target=/run/secrets/npm,mode=0400,required=true");
        assert_eq!(
            key_of(&step(vec![cache, secret])).hex(),
            "2437dc12c45876f08a987660101975f76bc33364fd3becb1e993a32061f9b9b4"
        );
    }

    /// Every field of a RUN step, and every field of each of its mounts, reaches the key:
    /// one changed at a time gives a new key (moby's CVE-2024-24557 took a cached result
    /// for a build that differed in an input the key left out). The patterns name every
    /// field, so a new one does not compile until this table says what it does to the key.
    #[test]
    fn every_field_reaches_the_key() {
        let RunStep {
            args: _,
            env: _,
            user: _,
            workdir: _,
            network: _,
            privileged: _,
            script: _,
            mounts: _,
            sources: _,
            extra_hosts: _,
            shm_size: _,
            ulimits: _,
        } = step(Vec::new());
        let Mount {
            kind: _,
            from: _,
            source: _,
            target: _,
            readonly: _,
            id: _,
            sharing: _,
            mode: _,
            uid: _,
            gid: _,
            size: _,
            required: _,
            env: _,
        } = mount("type=cache,target=/c");
        let base = || {
            let mut s = step(vec![mount("type=bind,target=/m,source=src,from=build")]);
            s.sources = vec![Some(BindSource::State(crate::engine::state::StateRef {
                layers: Vec::new(),
                diff_ids: Vec::new(),
                key: KeyEncoder::new("stage", None).finish(),
            }))];
            s
        };
        type Change = fn(&mut RunStep);
        let changes: &[(&str, Change)] = &[
            ("args", |s| s.args[2] = "pip install -r other.txt".into()),
            ("env", |s| s.env.push("ARG_USED=1".into())),
            ("user", |s| s.user = "root".into()),
            ("workdir", |s| s.workdir = "/app".into()),
            ("--network", |s| s.network = Network::None),
            ("--security", |s| s.privileged = true),
            ("heredoc script", |s| {
                s.script = Some(("x".into(), "#!/bin/sh\n".into()))
            }),
            ("--add-host", |s| {
                s.extra_hosts = vec![("a".into(), "10.0.0.1".into())]
            }),
            ("--shm-size", |s| s.shm_size = Some(1 << 20)),
            ("--ulimit", |s| {
                s.ulimits = vec![crate::sandbox::Ulimit::parse("nofile=10:20").unwrap()]
            }),
            ("a second mount", |s| {
                s.mounts.push(mount("type=tmpfs,target=/t"));
                s.sources.push(None);
            }),
            ("mount type", |s| s.mounts[0].kind = MountType::Cache),
            ("mount from", |s| s.mounts[0].from = Some("other".into())),
            ("mount source", |s| s.mounts[0].source = Some("lib".into())),
            ("mount target", |s| s.mounts[0].target = "/n".into()),
            ("mount readonly", |s| s.mounts[0].readonly = false),
            ("mount id", |s| s.mounts[0].id = Some("pip".into())),
            ("mount mode", |s| s.mounts[0].mode = Some(0o700)),
            ("mount uid", |s| s.mounts[0].uid = Some(1000)),
            ("mount gid", |s| s.mounts[0].gid = Some(1000)),
            ("mount size", |s| s.mounts[0].size = Some(1 << 20)),
            ("mount required", |s| s.mounts[0].required = true),
            ("mount env", |s| s.mounts[0].env = Some("TOKEN".into())),
            ("what from= holds", |s| {
                s.sources[0] = Some(BindSource::State(crate::engine::state::StateRef {
                    layers: Vec::new(),
                    diff_ids: Vec::new(),
                    key: KeyEncoder::new("other stage", None).finish(),
                }))
            }),
            ("what the context holds", |s| {
                s.sources[0] = Some(BindSource::Context(
                    Box::new(copy::CopyOp::contents_of("src")),
                    [7; 32],
                ))
            }),
        ];
        crate::engine::step::work::assert_each_change_moves_the_key(base, changes);
    }

    /// Proxy variables and a cache mount's sharing mode do not change the result, and stay
    /// out of the key; the rest of the environment is in it.
    #[test]
    fn what_does_not_change_the_result_is_left_out() {
        let base = key_of(&step(vec![mount("type=cache,target=/c")]));
        let mut other = step(vec![mount("type=cache,target=/c")]);
        other.env[1] = "HTTP_PROXY=http://other:8080".into();
        other.mounts[0].sharing = Sharing::Locked;
        assert_eq!(key_of(&other), base);
        other.env[0] = "PATH=/bin".into();
        assert_ne!(key_of(&other), base);
    }
}
