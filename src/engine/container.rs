//! `rbuild run`: an image from the local store (pulled when missing) run once in the same
//! sandbox RUN steps use, for smoke tests: its root filesystem an overlay over the image's
//! snapshots (or a copy of its tree) that is thrown away afterwards, its ENTRYPOINT and CMD,
//! environment, user and working directory from the config unless the request overrides
//! them, the host's network (or none), and published ports relayed from the host.
//!
//! Not a container engine: nothing is kept after the process exits (every run is `--rm`)
//! and nothing runs detached. With `-i` the process reads rbuild's standard input; no new
//! terminal is allocated (`-t` uses rbuild's own, when it has one).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use super::error::BuildError;
use super::fs::StepFs;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::registry::client::Client;
use crate::registry::credentials::CredentialStore;
use crate::registry::pull::pull_name;
use crate::registry::registries_conf::RegistriesConf;
use crate::sandbox::{self, Bind, Network, Spec};
use crate::snapshot::snapshotter::Kind as Snapshotter;
use crate::snapshot::workdir::WorkDir;
use crate::snapshot::{Snapshots, overlay, trees::Trees};
use crate::store::Store;

/// What to run, as `docker run` flags say it.
#[derive(Debug)]
pub struct RunRequest {
    pub state_root: PathBuf,
    /// The image, as the user wrote it.
    pub image: String,
    pub platform: Platform,
    /// Arguments after the image: they replace the image's CMD.
    pub args: Vec<String>,
    /// `--entrypoint`: replaces the image's ENTRYPOINT (and drops its CMD).
    pub entrypoint: Option<String>,
    /// `-e KEY=VALUE`: added to (or replacing) the image's ENV.
    pub env: Vec<String>,
    /// `-v SRC:DST[:ro]`.
    pub volumes: Vec<Bind>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    pub network: Network,
    /// `-p HOST:CONTAINER`: TCP ports of the host relayed to the process's ports.
    pub publish: Vec<(u16, u16)>,
    /// `-i`: the process reads this process's standard input (else `/dev/null`).
    pub stdin: bool,
}

/// Run `request`'s image; returns the process's exit status. `say` gets what a pull does.
pub fn run(request: &RunRequest, say: &dyn Fn(String)) -> Result<ExitStatus, BuildError> {
    let root = &request.state_root;
    let store = Store::open(root).map_err(|source| BuildError::OpenStore {
        root: root.clone(),
        source: Box::new(source),
    })?;
    if !request.publish.is_empty() && request.network == Network::None {
        return Err(BuildError::Request(
            "-p publishes ports on the host's network; it cannot go with --network none".into(),
        ));
    }
    let _running = super::builds_lock(root).shared()?;
    let image = local_or_pulled(&store, request, say)?;
    super::emulation::check_platform(&image.config.platform())?;
    let kind = crate::snapshot::snapshotter::detect(root);
    let lowers: Vec<PathBuf> = match kind {
        Snapshotter::Overlay => {
            Snapshots::new(root).ensure(&store, &image, overlay::userxattr())?
        }
        Snapshotter::Native => Trees::new(root)
            .ensure(&store, &image)?
            .into_iter()
            .collect(),
    };
    let work = WorkDir::create(root)?;
    let fs = StepFs::prepare(kind, &lowers, work.path())?;
    let rootfs = fs.root().to_path_buf();

    let cc = image.config.config.clone().unwrap_or_default();
    let mut env = cc.env.clone();
    for e in &request.env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    let args = command(&cc.entrypoint, &cc.cmd, request);
    if args.is_empty() {
        return Err(BuildError::Request(format!(
            "{} has no ENTRYPOINT or CMD: give a command after the image name",
            request.image
        )));
    }
    let user_spec = request.user.clone().unwrap_or(cc.user.clone());
    let passwd = sandbox::user::read_in_root(&rootfs, "/etc/passwd")
        .map_err(files("reading /etc/passwd"))?;
    let group =
        sandbox::user::read_in_root(&rootfs, "/etc/group").map_err(files("reading /etc/group"))?;
    let user = sandbox::user::resolve(&user_spec, &passwd, &group)
        .map_err(|e| BuildError::Request(format!("-u {user_spec:?}: {e}")))?;
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = request
        .workdir
        .clone()
        .or_else(|| (!cc.working_dir.is_empty()).then(|| cc.working_dir.clone()))
        .unwrap_or_else(|| "/".into());
    // As Docker does, a missing working directory is made (by root).
    super::copy::mkdir_in_root(&rootfs, &cwd, None)
        .map_err(|e| BuildError::Request(format!("working directory {cwd}: {e}")))?;
    let mut binds =
        sandbox::standard_files(&work.path().join("files"), "rbuild", request.network, &[])
            .map_err(files("preparing /etc/hosts and /etc/resolv.conf"))?;
    binds.extend(request.volumes.iter().cloned());
    // `-i`: a duplicate of our stdin, not close-on-exec, goes down to the process.
    let input = if request.stdin {
        Some(
            rustix::io::dup(std::io::stdin())
                .map_err(|e| files("passing standard input on")(e.into()))?,
        )
    } else {
        None
    };
    // In a container that refuses part of the isolation, what a build does too (said once).
    let choice = super::isolation::ProcChoice::default();
    let isolation = choice.choice(super::isolation::Isolation::Auto, root)?;
    if let Some(note) = choice.note() {
        say(format!("warning: {note}"));
    }
    let spec = Spec {
        stdin_fd: input.as_ref().map(std::os::fd::AsRawFd::as_raw_fd),
        proc: isolation.proc,
        keep_hostname: isolation.keep_hostname,
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        groups: user.groups.clone(),
        hostname: "rbuild".into(),
        network: request.network,
        binds,
        ..Spec::new(&rootfs, args)
    };
    let relays = request
        .publish
        .iter()
        .filter(|(host, inside)| host != inside)
        .map(|&(host, inside)| relay(host, inside))
        .collect::<Result<Vec<_>, _>>()?;
    let running = sandbox::spawn(&spec, Stdio::inherit(), Stdio::inherit())
        .map_err(|e| BuildError::Request(crate::diag::chain(&e)))?;
    let registered = super::interrupt::Registered::new(running.id());
    let status = running
        .wait()
        .map_err(|e| BuildError::Request(crate::diag::chain(&e)))?;
    drop(registered);
    drop(relays);
    drop(input);
    drop(fs);
    Ok(status)
}

fn files(what: &str) -> impl Fn(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Files {
        what: what.to_string(),
        source,
    }
}

/// The command Docker runs: ENTRYPOINT then CMD, where arguments after the image replace
/// CMD and `--entrypoint` replaces ENTRYPOINT and drops the image's CMD.
fn command(entrypoint: &[String], cmd: &[String], request: &RunRequest) -> Vec<String> {
    let entry: Vec<String> = match &request.entrypoint {
        Some(e) if e.is_empty() => Vec::new(),
        Some(e) => vec![e.clone()],
        None => entrypoint.to_vec(),
    };
    let rest: Vec<String> = if !request.args.is_empty() {
        request.args.clone()
    } else if request.entrypoint.is_some() {
        Vec::new()
    } else {
        cmd.to_vec()
    };
    entry.into_iter().chain(rest).collect()
}

/// The image from the store, or pulled for the request's platform when it is not there.
fn local_or_pulled(
    store: &Store,
    request: &RunRequest,
    say: &dyn Fn(String),
) -> Result<crate::store::Image, BuildError> {
    let reference = Reference::parse(&request.image)
        .map_err(|e| {
            BuildError::Request(format!(
                "invalid image name {:?}: {}",
                request.image,
                crate::diag::chain(&e)
            ))
        })?
        .with_default_tag();
    if let Some(image) = store.local_image(&reference, &request.platform)? {
        return Ok(image);
    }
    let pull_err = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::ResolveBase {
        name: request.image.clone(),
        source: e,
    };
    let conf = RegistriesConf::load_default().map_err(|e| pull_err(Box::new(e)))?;
    let client = Client::new(Box::new(CredentialStore::from_env()));
    say(format!("{} is not in the store: pulling it", request.image));
    let (pulled, _) = pull_name(
        &conf,
        &client,
        store,
        &request.image,
        &request.platform,
        &|_, _| {},
    )
    .map_err(|e| pull_err(Box::new(e)))?;
    Ok(store.image(&pulled, &request.platform)?)
}

/// A relay of the host's TCP port `host` to `inside` on loopback (the process shares the
/// host's network), accepting until dropped.
struct Relay {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    port: u16,
}

fn relay(host: u16, inside: u16) -> Result<Relay, BuildError> {
    let listener = TcpListener::bind(("0.0.0.0", host)).map_err(|e| {
        BuildError::Request(format!("-p {host}:{inside}: listening on port {host}: {e}"))
    })?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let Ok(client) = client else { continue };
            std::thread::spawn(move || {
                if let Ok(server) = TcpStream::connect(("127.0.0.1", inside)) {
                    pipe(client, server);
                }
            });
        }
    });
    Ok(Relay { stop, port: host })
}

/// Copy both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let one = std::thread::spawn(move || {
        let (mut a, mut b) = (a, b2);
        let _ = std::io::copy(&mut a, &mut b);
        let _ = b.shutdown(std::net::Shutdown::Write);
    });
    let (mut b, mut a) = (b, a2);
    let _ = std::io::copy(&mut b, &mut a);
    let _ = a.shutdown(std::net::Shutdown::Write);
    let _ = one.join();
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accepting thread so that it sees the flag and closes the port.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(args: &[&str], entrypoint: Option<&str>) -> RunRequest {
        RunRequest {
            state_root: PathBuf::new(),
            image: "x".into(),
            platform: Platform::host(),
            args: args.iter().map(|s| s.to_string()).collect(),
            entrypoint: entrypoint.map(str::to_string),
            env: Vec::new(),
            volumes: Vec::new(),
            workdir: None,
            user: None,
            network: Network::Host,
            publish: Vec::new(),
            stdin: false,
        }
    }

    #[test]
    fn the_command_is_docker_s() {
        let ep = vec!["/entry".to_string()];
        let cmd = vec!["serve".to_string()];
        assert_eq!(command(&ep, &cmd, &request(&[], None)), ["/entry", "serve"]);
        assert_eq!(
            command(&ep, &cmd, &request(&["ls"], None)),
            ["/entry", "ls"]
        );
        assert_eq!(
            command(&ep, &cmd, &request(&[], Some("/bin/sh"))),
            ["/bin/sh"]
        );
        assert_eq!(
            command(&ep, &cmd, &request(&["-c", "id"], Some("/bin/sh"))),
            ["/bin/sh", "-c", "id"]
        );
        assert_eq!(command(&[], &cmd, &request(&[], None)), ["serve"]);
        assert!(command(&ep, &cmd, &request(&[], Some(""))).is_empty());
    }
}
