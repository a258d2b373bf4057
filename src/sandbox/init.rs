//! The two processes rbuild re-executes itself as: the helper (unshares the namespaces,
//! maps the user, spawns PID 1) and PID 1 (builds the filesystem view, drops privileges,
//! execs the command). Both are single-threaded and run before anything else in `main`.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, Stdio};

use rustix::process::Signal;
use rustix::thread::{CapabilitySet, UnshareFlags};

use super::rootfs;
use super::spec::{HELPER_ARG, INIT_ARG, Network, Spec};

/// Exit code for "the sandbox could not start the command" (as `docker run` uses 125).
const SETUP_FAILED: u8 = 125;

/// If this process was started as a sandbox helper, run as one and return its exit code.
pub fn entry() -> Option<ExitCode> {
    let arg = std::env::args_os().nth(1)?;
    if arg == HELPER_ARG {
        Some(report(helper()))
    } else if arg == INIT_ARG {
        Some(report(init()))
    } else {
        None
    }
}

fn report(r: Result<u8, String>) -> ExitCode {
    match r {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rbuild sandbox: {e}");
            ExitCode::from(SETUP_FAILED)
        }
    }
}

fn read_spec() -> Result<Spec, String> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| format!("reading the spec: {e}"))?;
    serde_json::from_slice(&buf).map_err(|e| format!("parsing the spec: {e}"))
}

fn helper() -> Result<u8, String> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    // Line 1: the spec; line 2: "go", once the parent has mapped ids (or at once).
    use std::io::BufRead;
    let mut input = std::io::BufReader::new(std::io::stdin());
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading the spec: {e}"))?;
    let spec: Spec = serde_json::from_str(&line).map_err(|e| format!("parsing the spec: {e}"))?;
    // Not root here: the sandbox needs a user namespace of its own to mount anything. Root
    // of a rootless build's user namespace already has one, and stays in it.
    let rootless = !rustix::process::geteuid().is_root();
    let (uid, gid) = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    let mut flags =
        UnshareFlags::NEWNS | UnshareFlags::NEWPID | UnshareFlags::NEWUTS | UnshareFlags::NEWIPC;
    if spec.network == Network::None {
        flags |= UnshareFlags::NEWNET;
    }
    if rootless {
        flags |= UnshareFlags::NEWUSER;
    }
    crate::sys::unshare_namespaces(flags).map_err(|e| format!("unshare {flags:?}: {e}"))?;
    // The parent maps subordinate ranges from outside (newuidmap) and then says "go".
    let mut go = String::new();
    if spec.external_idmap {
        input
            .read_line(&mut go)
            .map_err(|e| format!("waiting for the id mapping: {e}"))?;
        if go.trim() != "go" {
            return Err("the parent could not map ids into the sandbox".into());
        }
    }
    if rootless && !spec.external_idmap {
        // One mapping: the user is root inside; without ranges only uid/gid 0 exist.
        super::idmap::map_self_alone(uid, gid)
            .map_err(|(file, e)| format!("writing /proc/self/{file}: {e}"))?;
    }
    let exe = std::env::current_exe().map_err(|e| format!("locating rbuild: {e}"))?;
    let mut child = Command::new(exe)
        .arg(INIT_ARG)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting PID 1: {e}"))?;
    let json = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        stdin
            .write_all(&json)
            .map_err(|e| format!("sending the spec to PID 1: {e}"))?;
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for PID 1: {e}"))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(c), _) => c as u8,
        (None, Some(sig)) => 128u8.wrapping_add(sig as u8),
        _ => SETUP_FAILED,
    })
}

/// Docker's default capability set (moby `oci/caps/defaults.go`); every other capability is
/// dropped from the bounding set.
const KEEP: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::MKNOD)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETFCAP)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::AUDIT_WRITE);

fn init() -> Result<u8, String> {
    rustix::process::set_parent_process_death_signal(Some(Signal::KILL))
        .map_err(|e| format!("PR_SET_PDEATHSIG: {e}"))?;
    let spec = read_spec()?;
    match spec.stdin_fd {
        // `rbuild run -i`: the caller's standard input, passed down as this descriptor; it
        // becomes stdin and the inherited number is closed.
        Some(fd) => {
            let input = crate::sys::take_inherited_fd(fd)
                .map_err(|e| format!("the standard input passed as fd {fd}: {e}"))?;
            rustix::stdio::dup2_stdin(&input).map_err(|e| format!("stdin: {e}"))?;
        }
        None => {
            let devnull =
                std::fs::File::open("/dev/null").map_err(|e| format!("opening /dev/null: {e}"))?;
            rustix::stdio::dup2_stdin(&devnull).map_err(|e| format!("stdin: {e}"))?;
        }
    }
    if spec.network == Network::None {
        // The new network namespace has `lo` down; `ip` from the host brings it up.
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status();
        match up {
            Ok(s) if s.success() => {}
            Ok(s) => return Err(format!("bringing up lo with `ip link set lo up`: {s}")),
            Err(e) => {
                return Err(format!(
                    "--network=none needs `ip` (iproute2) on the host: {e}"
                ));
            }
        }
    }
    if spec.probe {
        // What this machine lets a sandbox have, as bits over PROBED (see `probe`).
        let mut refused = 0;
        if rootfs::setup(&spec).is_err() {
            refused |= super::spec::REFUSED_PROC;
        }
        if rustix::system::sethostname(spec.hostname.as_bytes()).is_err() {
            refused |= super::spec::REFUSED_HOSTNAME;
        }
        return Ok(super::spec::PROBED | refused);
    }
    rootfs::setup(&spec)?;
    // A container whose seccomp profile refuses sethostname without CAP_SYS_ADMIN: the
    // step keeps the container's hostname (the probe found out, and the build said so).
    if !spec.keep_hostname {
        rustix::system::sethostname(spec.hostname.as_bytes())
            .map_err(|e| format!("sethostname: {e}"))?;
    }
    // `--ulimit`, while still privileged (a hard limit may be raised only with
    // CAP_SYS_RESOURCE); the command inherits them.
    for u in &spec.ulimits {
        let resource = super::spec::resource(&u.name)
            .ok_or_else(|| format!("--ulimit {}: unknown limit", u.name))?;
        let value = |v: u64| (v != u64::MAX).then_some(v);
        rustix::process::setrlimit(
            resource,
            rustix::process::Rlimit {
                current: value(u.soft),
                maximum: value(u.hard),
            },
        )
        .map_err(|e| format!("--ulimit {}={}:{}: {e}", u.name, u.soft, u.hard))?;
    }
    for cap in CapabilitySet::all().iter() {
        if !spec.privileged && !KEEP.contains(cap) {
            // EINVAL: a capability this kernel does not know; nothing to drop.
            match rustix::thread::remove_capability_from_bounding_set(cap) {
                Ok(()) | Err(rustix::io::Errno::INVAL) => {}
                Err(e) => return Err(format!("dropping {cap:?} from the bounding set: {e}")),
            }
        }
    }
    // A rootless user namespace has setgroups denied (required to map our gid without
    // privileges); then only the primary group can be had.
    let denied = std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if denied {
        if spec.groups.iter().any(|g| *g != spec.gid) {
            return Err(format!(
                "supplementary groups {:?} cannot be set in a rootless sandbox (only the primary group is mapped)",
                spec.groups
            ));
        }
    } else {
        let gids: Vec<rustix::fs::Gid> = spec
            .groups
            .iter()
            .map(|g| rustix::fs::Gid::from_raw(*g))
            .collect();
        rustix::thread::set_thread_groups(&gids)
            .map_err(|e| format!("setgroups {:?}: {e}", spec.groups))?;
    }
    rustix::thread::set_thread_gid(rustix::fs::Gid::from_raw(spec.gid))
        .map_err(|e| id_error("setgid", spec.gid, e))?;
    rustix::thread::set_thread_uid(rustix::fs::Uid::from_raw(spec.uid))
        .map_err(|e| id_error("setuid", spec.uid, e))?;
    rustix::thread::set_no_new_privs(true).map_err(|e| format!("PR_SET_NO_NEW_PRIVS: {e}"))?;
    rustix::process::chdir(spec.cwd.as_str())
        .map_err(|e| format!("working directory {}: {e}", spec.cwd))?;
    // As runc checks since CVE-2024-21626: a working directory reached through a descriptor
    // of the host's is outside the root, and the kernel's getcwd says so ("(unreachable)…"
    // instead of an absolute path). Nothing inherited should allow it; refuse if it did.
    match rustix::process::getcwd(Vec::new()) {
        Ok(cwd) if cwd.to_bytes().starts_with(b"/") => {}
        Ok(cwd) => {
            return Err(format!(
                "working directory {}: outside the container ({})",
                spec.cwd,
                cwd.to_string_lossy()
            ));
        }
        Err(e) => return Err(format!("working directory {}: {e}", spec.cwd)),
    }
    let Some((prog, args)) = spec.args.split_first() else {
        return Err("no command to run".into());
    };
    // Only stdin, stdout and stderr reach the command: nothing rbuild's caller left open.
    crate::sys::close_on_exec_from(3).map_err(|e| format!("closing inherited descriptors: {e}"))?;
    // Last, so that nothing above meets it: Docker's default seccomp refusals, unless the
    // step runs privileged (`RUN --security=insecure`).
    if !spec.privileged {
        super::seccomp::install().map_err(|e| format!("installing the seccomp filter: {e}"))?;
    }
    let mut cmd = Command::new(prog);
    cmd.args(args).env_clear();
    for kv in &spec.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        cmd.env(k, v);
    }
    let err = cmd.exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    eprintln!("rbuild sandbox: exec {prog}: {err}");
    Ok(code)
}

/// EINVAL from setuid/setgid means the id has no mapping in this user namespace.
fn id_error(call: &str, id: u32, e: rustix::io::Errno) -> String {
    if e == rustix::io::Errno::INVAL {
        format!(
            "{call} {id}: the id is not mapped in the sandbox's user namespace (rootless runs map ids beyond root only from the user's ranges in /etc/subuid and /etc/subgid, through newuidmap/newgidmap)"
        )
    } else {
        format!("{call} {id}: {e}")
    }
}
