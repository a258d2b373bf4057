//! Rootless id mapping with subordinate ranges (`/etc/subuid`, `/etc/subgid`, subuid(5)):
//! root inside is the user, and ids 1… inside are the user's first range, so `USER 1000`
//! works rootless. The mapping must be written from outside the new user namespace by the
//! setuid helpers `newuidmap`/`newgidmap` (uidmap package); without ranges or helpers the
//! sandbox falls back to mapping root alone.

use std::path::Path;
use std::process::Command;

/// The first subordinate range `(start, count)` of the user named `name` or numbered `id`.
pub(crate) fn range(file_text: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    file_text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
        let ours = Some(owner) == name || owner.parse::<u32>().ok() == Some(id);
        if !ours {
            return None;
        }
        Some((start.parse().ok()?, count.parse().ok()?))
    })
}

/// The login name of `uid` from /etc/passwd.
fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
    })
}

/// `newuidmap`/`newgidmap` arguments after the pid: `(uid ranges, gid ranges)`.
pub(crate) type Mapping = (Vec<String>, Vec<String>);

/// Why the calling user gets no subordinate ranges: the text completes "only root is
/// mapped: …".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NoRanges {
    #[error("user {user} has no range in {file}")]
    NoRange { user: String, file: &'static str },
    #[error("{tool} is not installed (Debian's uidmap package)")]
    NoTool { tool: &'static str },
}

/// The mapping to apply for the calling (non-root) user, if it has ranges and the helpers
/// exist.
pub fn external_mapping() -> Option<Mapping> {
    mapping_for_user().ok()
}

/// [`external_mapping`], saying why there is none.
pub(crate) fn mapping_for_user() -> Result<Mapping, NoRanges> {
    // Root without CAP_SYS_ADMIN (root of an unprivileged container): every id it has,
    // mapped to itself, written directly ([`apply`]); it may, with CAP_SETUID.
    if rustix::process::geteuid().is_root() {
        let identity = |file: &str| -> Vec<String> {
            std::fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 3).then(|| [f[0], f[0], f[2]].map(str::to_string))
                })
                .flatten()
                .collect()
        };
        let (u, g) = (
            identity("/proc/self/uid_map"),
            identity("/proc/self/gid_map"),
        );
        if !u.is_empty() && !g.is_empty() {
            return Ok((u, g));
        }
    }
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    let name = user_name(uid);
    let shown = name.clone().unwrap_or_else(|| uid.to_string());
    let sub = |file: &'static str| {
        std::fs::read_to_string(file)
            .ok()
            .and_then(|text| range(&text, name.as_deref(), uid))
            .ok_or_else(|| NoRanges::NoRange {
                user: shown.clone(),
                file,
            })
    };
    let sub_u = sub("/etc/subuid")?;
    let sub_g = sub("/etc/subgid")?;
    let has = |tool: &str| {
        ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
            .iter()
            .any(|d| Path::new(d).join(tool).exists())
    };
    for tool in ["newuidmap", "newgidmap"] {
        if !has(tool) {
            return Err(NoRanges::NoTool { tool });
        }
    }
    let args = |own: u32, (start, count): (u32, u32)| {
        vec![
            "0".into(),
            own.to_string(),
            "1".into(),
            "1".into(),
            start.to_string(),
            count.to_string(),
        ]
    };
    Ok((args(uid, sub_u), args(gid, sub_g)))
}

/// Map the calling process's new user namespace to itself alone: root inside is `uid`:`gid`
/// outside. Needs no privilege; `setgroups` must be denied first (user_namespaces(7),
/// "Interaction with system calls that change process UIDs or GIDs"). On failure, the
/// `/proc/self` file that could not be written.
pub(crate) fn map_self_alone(uid: u32, gid: u32) -> Result<(), (&'static str, std::io::Error)> {
    let write = |file: &'static str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), text).map_err(|e| (file, e))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("0 {uid} 1"))?;
    write("gid_map", format!("0 {gid} 1"))
}

/// Apply `mapping` to process `pid` once it has its own user namespace (a sandbox helper,
/// or the rootless build's process: both unshare it first thing after they start).
pub(crate) fn apply(pid: u32, mapping: &Mapping) -> Result<(), String> {
    // Wait (briefly) for the process to have unshared its user namespace.
    let ours = std::fs::read_link("/proc/self/ns/user")
        .map_err(|e| format!("reading our user namespace: {e}"))?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match std::fs::read_link(format!("/proc/{pid}/ns/user")) {
            Ok(ns) if ns != ours => break,
            Ok(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(1))
            }
            Ok(_) => return Err(format!("process {pid} did not create its user namespace")),
            Err(e) => return Err(format!("process {pid} went away: {e}")),
        }
    }
    if rustix::process::geteuid().is_root() {
        // The same triples newuidmap takes, written as its lines.
        for (file, args) in [("uid_map", &mapping.0), ("gid_map", &mapping.1)] {
            let text: Vec<String> = args.chunks(3).map(|t| t.join(" ")).collect();
            std::fs::write(format!("/proc/{pid}/{file}"), text.join("\n"))
                .map_err(|e| format!("writing /proc/{pid}/{file}: {e}"))?;
        }
        return Ok(());
    }
    for (tool, args) in [("newuidmap", &mapping.0), ("newgidmap", &mapping.1)] {
        let out = Command::new(tool)
            .arg(pid.to_string())
            .args(args)
            .output()
            .map_err(|e| format!("running {tool}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{tool} {pid} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "alice:100000:65536\n1001:300000:1000\nbob:200000:65536\n";

    #[test]
    fn ranges_by_name_or_uid() {
        assert_eq!(range(SUBUID, Some("bob"), 1002), Some((200000, 65536)));
        assert_eq!(range(SUBUID, Some("carol"), 1001), Some((300000, 1000)));
        assert_eq!(range(SUBUID, Some("dave"), 1003), None);
        assert_eq!(range("junk\n", Some("dave"), 1), None);
    }
}
