//! The RUN sandbox on a busybox root filesystem: output and exit codes, PID 1, hostname,
//! `/proc`, `/dev`, read-only `/sys`, Docker's capability bounding set, no host paths, no
//! host processes, `--network=none`, user switching, cache, secret, tmpfs and ssh-agent mounts,
//! and mount points that never stay in the root. Runs as root in CI and again as `nobody`
//! (the rootless path, a user namespace).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use rbuild::sandbox::{Network, Spec, spawn_with, standard_files};

use crate::common::process::Process;
use crate::common::require;

fn busybox_rootfs(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "id", "hostname", "ls", "kill", "test", "touch", "grep", "ip", "env",
        "pwd", "true", "mkdir", "wc", "head",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

struct Box {
    dir: PathBuf,
}

impl Box {
    fn new(name: &str) -> Box {
        let dir =
            std::env::temp_dir().join(format!("rbuild-sandbox-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        busybox_rootfs(&dir.join("rootfs"));
        Box { dir }
    }

    fn spec(&self, script: &str, network: Network) -> Spec {
        let binds = standard_files(&self.dir.join("files"), "rbuild-test", network, &[]).unwrap();
        Spec {
            env: vec!["PATH=/bin".into(), "HOME=/root".into()],
            hostname: "rbuild-test".into(),
            network,
            binds,
            ..Spec::new(
                self.dir.join("rootfs"),
                vec!["/bin/sh".into(), "-c".into(), script.into()],
            )
        }
    }

    /// Run and return (exit code, stdout, stderr).
    fn run_spec(&self, spec: &Spec) -> (i32, String, String) {
        let exe = Path::new(env!("CARGO_BIN_EXE_rbuild"));
        let mut running = spawn_with(exe, spec, Stdio::piped(), Stdio::piped()).unwrap();
        let mut out = running.stdout().unwrap();
        let mut err = running.stderr().unwrap();
        let t = std::thread::spawn(move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut err, &mut s).unwrap();
            s
        });
        let mut stdout = String::new();
        std::io::Read::read_to_string(&mut out, &mut stdout).unwrap();
        let stderr = t.join().unwrap();
        let status = running.wait().unwrap();
        (status.code().unwrap_or(-1), stdout, stderr)
    }

    fn run(&self, script: &str) -> (i32, String, String) {
        self.run_spec(&self.spec(script, Network::Host))
    }
}

impl Drop for Box {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn output_exit_code_and_pid_1() {
    let b = Box::new("basic");
    assert_eq!(b.run("echo hello"), (0, "hello\n".into(), String::new()));
    assert_eq!(b.run("exit 3").0, 3);
    let (code, out, err) = b.run("echo $$; hostname; id -u");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1\nrbuild-test\n0\n");
}

#[test]
fn proc_dev_and_readonly_sys() {
    let b = Box::new("fs");
    let (code, out, err) = b.run(
        "test -r /proc/self/status && echo proc; echo x > /dev/null && echo devnull; \
         head -c 4 /dev/zero | wc -c; test -c /dev/urandom && echo urandom; \
         touch /sys/x 2>/dev/null || echo sys-ro; touch /proc/sys/x 2>/dev/null || echo procsys-ro; \
         cat /proc/kcore 2>/dev/null | wc -c",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "proc\ndevnull\n4\nurandom\nsys-ro\nprocsys-ro\n0\n");
}

#[test]
fn capability_bounding_set_is_dockers() {
    let b = Box::new("caps");
    let (code, out, err) = b.run("grep CapBnd /proc/self/status");
    assert_eq!(code, 0, "{err}");
    // moby's default set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
    assert_eq!(out.trim(), "CapBnd:\t00000000a80425fb");
}

#[test]
fn host_paths_and_processes_are_invisible() {
    let b = Box::new("isolation");
    let checkout = env!("CARGO_MANIFEST_DIR");
    let me = std::process::id();
    let (code, out, err) = b.run(&format!(
        "test -e {checkout} && echo sees-checkout; test -e /root && echo sees-root-home; \
         kill -0 {me} 2>/dev/null && echo can-signal-host; ls /proc | grep -c '^[0-9]'"
    ));
    assert_eq!(code, 0, "{err}");
    // Only the shell and its children are visible.
    let pids: usize = out.trim().parse().unwrap_or(99);
    assert!(
        !out.contains("sees-") && !out.contains("can-signal") && pids <= 3,
        "{out}"
    );
}

#[test]
fn network_none_has_only_loopback() {
    let b = Box::new("netnone");
    let (code, out, err) = b.run_spec(&b.spec(
        "ip -o link | wc -l; ip -o link show lo | grep -c UP",
        Network::None,
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "1\n1\n");
    // The default network is the host's: the same links as outside.
    let (_, inside, _) = b.run("ip -o link | wc -l");
    let outside = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip (iproute2) on the host");
    let outside = String::from_utf8_lossy(&outside.stdout).lines().count();
    assert_eq!(inside.trim().parse::<usize>().unwrap(), outside);
}

#[test]
fn user_switch_and_unmapped_user() {
    let b = Box::new("user");
    let mut spec = b.spec("id -u; id -g", Network::Host);
    spec.uid = 65534;
    spec.gid = 65534;
    spec.groups = vec![65534];
    let (code, out, err) = b.run_spec(&spec);
    if root() || rbuild::sandbox::idmap::external_mapping().is_some() {
        // Root, or rootless with subordinate id ranges mapped by newuidmap/newgidmap.
        assert_eq!((code, out.as_str()), (0, "65534\n65534\n"), "{err}");
    } else {
        // Rootless without ranges: only root is mapped in the user namespace.
        eprintln!("rootless without /etc/subuid ranges: expecting the unmapped-user error");
        assert_eq!(code, 125, "{out}{err}");
        assert!(err.contains("not mapped"), "{err}");
    }
}

/// `/etc/hosts` and `/etc/resolv.conf` are bound read-only from files outside the rootfs
/// and leave nothing behind; `/etc/hostname` is not bound, so a write to it is the step's.
#[test]
fn mount_points_are_removed_and_files_stay_outside() {
    let b = Box::new("stubs");
    let rootfs = b.dir.join("rootfs");
    assert!(!rootfs.join("proc").exists() && !rootfs.join("etc/hosts").exists());
    let (code, out, err) = b.run(
        "grep -c localhost /etc/hosts; if echo x >> /etc/hosts; then echo writable; fi; echo name > /etc/hostname",
    );
    assert_eq!((code, out.as_str()), (0, "2\n"), "{err}");
    assert!(err.contains("Read-only file system"), "{err}");
    for p in ["etc/hosts", "etc/resolv.conf"] {
        assert!(!rootfs.join(p).exists(), "{p} left in the rootfs");
    }
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/hostname")).unwrap(),
        "name\n"
    );
    // runc leaves these, empty, and so does the sandbox (a scratch RUN has them in its layer).
    for p in ["proc", "dev", "sys"] {
        let entries = std::fs::read_dir(rootfs.join(p)).map(|d| d.count());
        assert_eq!(entries.ok(), Some(0), "{p} is kept, empty");
    }
    let hosts = std::fs::read_to_string(b.dir.join("files/hosts")).unwrap();
    assert!(
        hosts.ends_with("rbuild-test\n"),
        "the bound file is untouched: {hosts}"
    );
}

/// An image's directory symlink to a host path on the way to a mount target: the missing
/// mount points are made inside the root, never on the host, and removed afterwards.
#[test]
fn hostile_symlinked_parent_of_a_mount_point_stays_inside() {
    use rbuild::sandbox::Bind;
    let b = Box::new("symlink-parent");
    let rootfs = b.dir.join("rootfs");
    let outside = b.dir.join("outside-dir");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, rootfs.join("run")).unwrap();
    let secret = b.dir.join("token");
    std::fs::write(&secret, "s3cret").unwrap();
    let before: Vec<_> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut spec = b.spec("cat /run/secrets/token", Network::Host);
    spec.binds.push(Bind {
        source: secret,
        target: "/run/secrets/token".into(),
        readonly: true,
    });
    let (code, out, err) = b.run_spec(&spec);
    assert_eq!((code, out.as_str()), (0, "s3cret"), "{err}");
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "nothing was created on the host through the image's symlink"
    );
    let mut after: Vec<_> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut before = before;
    // `/proc`, `/dev` and `/sys` stay, as runc leaves them.
    for kept in ["dev", "proc", "sys"] {
        if !before.iter().any(|n| n == kept) {
            before.push(kept.into());
        }
    }
    before.sort();
    after.sort();
    assert_eq!(
        before, after,
        "the mount points made inside the root are gone"
    );
}

#[test]
fn hostile_symlinked_mount_point_stays_inside() {
    let b = Box::new("symlink-target");
    let rootfs = b.dir.join("rootfs");
    let outside = b.dir.join("outside-hosts");
    std::fs::write(&outside, "host file\n").unwrap();
    // The image's /etc/hosts points at a host path: the mount must land inside the root.
    std::os::unix::fs::symlink(&outside, rootfs.join("etc/hosts")).unwrap();
    let (code, _, err) = b.run("cat /etc/hosts > /dev/null");
    assert!(code == 0 || code == 125, "{err}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "host file\n");
}

#[test]
fn missing_command_is_127() {
    let b = Box::new("missing");
    let mut spec = b.spec("", Network::Host);
    spec.args = vec!["/bin/nonexistent".into()];
    let (code, _, err) = b.run_spec(&spec);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("/bin/nonexistent"), "{err}");
}

#[test]
fn cache_mount_persists_and_secret_never_reaches_the_rootfs() {
    use rbuild::sandbox::Bind;
    use rbuild::sandbox::cache_mount::{CacheMounts, Sharing, write_secret};
    let b = Box::new("mounts");
    let caches = CacheMounts::new(&b.dir.join("state"));
    let secret = write_secret(&b.dir.join("run"), "token", b"s3cret", 0o400, (0, 0)).unwrap();
    for round in 1..=2 {
        let lease = caches
            .acquire("/root/.cache/pip", Sharing::Locked, 0o755, 0, 0)
            .unwrap();
        let mut spec = b.spec("echo round >> /root/.cache/pip/log; wc -l < /root/.cache/pip/log; cat /run/secrets/token", Network::Host);
        spec.binds.push(Bind {
            source: lease.path.clone(),
            target: "/root/.cache/pip".into(),
            readonly: false,
        });
        spec.binds.push(Bind {
            source: secret.clone(),
            target: "/run/secrets/token".into(),
            readonly: true,
        });
        let (code, out, err) = b.run_spec(&spec);
        assert_eq!(code, 0, "{err}");
        assert_eq!(out, format!("{round}\ns3cret"), "round {round}");
    }
    let rootfs = b.dir.join("rootfs");
    assert!(
        !rootfs.join("run").exists(),
        "the secret's mount point is gone"
    );
    assert!(
        !rootfs.join("root").exists(),
        "the cache's mount point is gone"
    );
}

#[test]
fn killing_the_sandbox_ends_its_processes() {
    let b = Box::new("kill");
    let spec = b.spec("sleep 30 & sleep 30; echo never", Network::Host);
    let exe = Path::new(env!("CARGO_BIN_EXE_rbuild"));
    let mut running = spawn_with(exe, &spec, Stdio::piped(), Stdio::piped()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let start = std::time::Instant::now();
    running.kill();
    let status = running.wait().unwrap();
    assert!(!status.success());
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "killed promptly"
    );
    // PID 1 of the namespace died with its parent, and the kernel killed the rest: no
    // `sleep 30` with our rootfs as its root survives.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let rootfs = b.dir.join("rootfs");
    let survivors = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path().join("root"))
                .map(|r| r == rootfs)
                .unwrap_or(false)
        })
        .count();
    assert_eq!(survivors, 0);
}

#[test]
fn resource_limits_apply_or_fail_clearly() {
    use rbuild::sandbox::cgroup::Limits;
    let b = Box::new("limits");
    let mut spec = b.spec(
        "cat /proc/self/cgroup >/dev/null; sleep 1; echo done",
        Network::Host,
    );
    spec.limits = Limits {
        memory: Some(64 << 20),
        cpus: Some(0.5),
        pids: Some(32),
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_rbuild"));
    if !root() {
        let err = spawn_with(exe, &spec, Stdio::piped(), Stdio::piped())
            .err()
            .expect("limits cannot be applied rootless");
        assert!(err.to_string().contains("need root"), "{err}");
        return;
    }
    let mut running = spawn_with(exe, &spec, Stdio::piped(), Stdio::piped()).unwrap();
    let dirs = running.cgroup_dirs();
    assert!(!dirs.is_empty());
    let read = |name: &str| {
        dirs.iter()
            .map(|d| d.join(name))
            .find(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap())
    };
    // v1 on this host (hybrid), v2 elsewhere: one of each pair exists.
    let mem = read("memory.limit_in_bytes")
        .or_else(|| read("memory.max"))
        .unwrap();
    assert_eq!(mem.trim(), (64u64 << 20).to_string());
    let cpu = read("cpu.cfs_quota_us")
        .or_else(|| read("cpu.max"))
        .unwrap();
    assert!(cpu.trim().starts_with("50000"), "{cpu}");
    assert_eq!(read("pids.max").unwrap().trim(), "32");
    let procs = read("cgroup.procs").unwrap();
    assert!(
        !procs.trim().is_empty(),
        "the run's processes are in the cgroup"
    );
    let mut out = String::new();
    std::io::Read::read_to_string(&mut running.stdout().unwrap(), &mut out).unwrap();
    assert!(running.wait().unwrap().success());
    assert_eq!(out, "done\n");
    for d in dirs {
        assert!(!d.exists(), "{} removed after the run", d.display());
    }
    // The memory limit is enforced: allocating past it kills the step.
    let mut hog = b.spec(
        "awk 'BEGIN { s = sprintf(\"%100000000s\", \"\"); print length(s) }' && echo survived",
        Network::Host,
    );
    hog.limits = Limits {
        memory: Some(32 << 20),
        ..Default::default()
    };
    let (code, out, _) = b.run_spec(&hog);
    assert!(
        code != 0 && !out.contains("survived"),
        "code {code}, out {out:?}"
    );
}

#[test]
fn tmpfs_mount_is_sized_and_leaves_nothing_behind() {
    let b = Box::new("tmpfs");
    let mut spec = b.spec(
        "echo hi > /scratch/a && cat /scratch/a && \
         if dd if=/dev/zero of=/scratch/big bs=1024 count=2048 2>/dev/null; then echo fit; else echo full; fi",
        Network::Host,
    );
    spec.tmpfs.push(("/scratch".into(), Some(1024 * 1024)));
    let (code, out, err) = b.run_spec(&spec);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\nfull\n", "a 1 MiB tmpfs refuses 2 MiB: {err}");
    assert!(
        !b.dir.join("rootfs/scratch").exists(),
        "the tmpfs mount point is gone and its files never reached the rootfs"
    );
}

/// A real `ssh-agent` holding a fresh key, reached through rbuild's relay: `ssh-add -l` on the
/// relay lists the key, and inside the step the relay is a socket at the mount's target.
#[test]
fn ssh_agent_is_forwarded_through_a_relay_socket() {
    use rbuild::engine::ssh::SshAgents;
    use rbuild::sandbox::Bind;
    use rbuild::sandbox::ssh::AgentProxy;
    use std::process::Command;
    if !require::tools(&["ssh-agent", "ssh-add", "ssh-keygen"]) {
        return;
    }
    let b = Box::new("ssh");
    let run = b.dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let agent_sock = run.join("agent.sock");
    let agent = Process::spawn(
        Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&agent_sock)
            .stdout(Stdio::null()),
    );
    let key = run.join("id_ed25519");
    let ok = Command::new("ssh-keygen")
        .args([
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            "rbuild-test-key",
            "-f",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(ok.success());
    for _ in 0..100 {
        if agent_sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let add = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent_sock)
        .output()
        .unwrap();
    assert!(add.status.success(), "{add:?}");

    let agents = SshAgents::parse(&["default".into()], Some(agent_sock.clone().into())).unwrap();
    let proxy = AgentProxy::start(
        agents.agent("default").unwrap(),
        &run.join("ssh_agent.0"),
        0o600,
        (0, 0),
    )
    .unwrap();
    let list = Command::new("ssh-add")
        .arg("-l")
        .env("SSH_AUTH_SOCK", proxy.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success() && listed.contains("rbuild-test-key"),
        "the agent answers through the relay: {list:?}"
    );

    let mut spec = b.spec(
        "test -S \"$SSH_AUTH_SOCK\" && echo socket; stat -c %a \"$SSH_AUTH_SOCK\"",
        Network::Host,
    );
    spec.env
        .push("SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0".into());
    spec.binds.push(Bind {
        source: proxy.path().to_path_buf(),
        target: "/run/buildkit/ssh_agent.0".into(),
        readonly: false,
    });
    let (code, out, err) = b.run_spec(&spec);
    assert_eq!((code, out.as_str()), (0, "socket\n600\n"), "{err}");
    assert!(
        !b.dir.join("rootfs/run").exists(),
        "the agent's mount point is gone from the rootfs"
    );
    drop(proxy);
    drop(agent);
}

/// One owner policy for every mount rbuild prepares: root gives any owner; rootless can
/// only give the sandbox's root, and says so rather than leaving a root-owned file.
#[test]
fn mount_owner_is_given_or_refused_never_skipped() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("secret");
    std::fs::write(&f, "x").unwrap();
    rbuild::sandbox::give(&f, 0o440, 0, 0).unwrap();
    assert_eq!(
        std::fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
        0o440
    );
    let other = rbuild::sandbox::give(&f, 0o400, 1000, 1000);
    if root() {
        other.unwrap();
        let m = std::fs::metadata(&f).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.permissions().mode() & 0o7777),
            (1000, 1000, 0o400)
        );
    } else {
        let e = other.unwrap_err();
        assert!(e.to_string().contains("rootless"), "{e}");
    }
}

/// Build tests/fixtures/syscalls.c statically into `rootfs` as `/syscalls`.
fn syscall_probe(rootfs: &Path) -> bool {
    if !require::tools(&["cc"]) {
        return false;
    }
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/syscalls.c");
    let out = std::process::Command::new("cc")
        .args(["-static", "-O1", "-o"])
        .arg(rootfs.join("syscalls"))
        .arg(&source)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cc -static {} (needs libc6-dev): {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

fn probe_results(out: &str) -> std::collections::HashMap<String, i32> {
    out.lines()
        .filter_map(|l| {
            let (name, errno) = l.split_once('=')?;
            Some((name.to_string(), errno.parse().ok()?))
        })
        .collect()
}

#[test]
fn seccomp_refuses_what_dockers_default_profile_refuses() {
    let b = Box::new("seccomp");
    if !syscall_probe(&b.dir.join("rootfs")) {
        return;
    }
    let calls = [
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "init_module",
        "finit_module",
        "delete_module",
        "kexec_load",
        "unshare",
        "setns",
        "mount",
        "clock_settime",
        "clone_newuser",
        "personality_aslr_off",
    ];
    let script = format!(
        "/syscalls {} clone3 fork x32_getpid i386_getpid i386_keyctl i386_clone3",
        calls.join(" ")
    );
    let (code, out, err) = b.run(&script);
    assert_eq!(code, 0, "{err}");
    let got = probe_results(&out);
    for call in calls {
        assert_eq!(got.get(call), Some(&libc::EPERM), "{call} in:\n{out}");
    }
    // clone3 says ENOSYS, so libc falls back to clone, which works without namespace flags.
    assert_eq!(got.get("clone3"), Some(&libc::ENOSYS), "{out}");
    assert_eq!(got.get("fork"), Some(&0), "{out}");
    // No other ABI gets around the filter: x32 is refused whole, i386 has its own numbers.
    assert_eq!(got.get("x32_getpid"), Some(&libc::ENOSYS), "{out}");
    match got.get("i386_getpid") {
        Some(0) => {
            assert_eq!(got.get("i386_keyctl"), Some(&libc::EPERM), "{out}");
            assert_eq!(got.get("i386_clone3"), Some(&libc::ENOSYS), "{out}");
        }
        // A kernel without IA-32 emulation has no i386 ABI to go around by.
        Some(&e) => assert_eq!(e, libc::ENOSYS, "{out}"),
        None => panic!("no i386_getpid in:\n{out}"),
    }
}

#[test]
fn privileged_steps_run_without_the_seccomp_filter() {
    let b = Box::new("seccomp-off");
    if !syscall_probe(&b.dir.join("rootfs")) {
        return;
    }
    let spec = Spec {
        privileged: true,
        ..b.spec("/syscalls keyctl perf_event_open clone3", Network::Host)
    };
    let (code, out, err) = b.run_spec(&spec);
    assert_eq!(code, 0, "{err}");
    let got = probe_results(&out);
    // What the kernel itself answers for these arguments: an unknown keyctl operation, no
    // perf attributes, a clone3 argument block of size 0.
    assert_eq!(got.get("keyctl"), Some(&libc::EOPNOTSUPP), "{out}");
    assert_eq!(got.get("perf_event_open"), Some(&libc::EFAULT), "{out}");
    assert_eq!(got.get("clone3"), Some(&libc::EINVAL), "{out}");
}
