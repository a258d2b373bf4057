//! `USER name|uid[:group|gid]` resolved from the image's own `/etc/passwd` and `/etc/group`
//! (read by the caller, through the root, never the host's), with supplementary groups, as
//! Docker does (moby `user.GetExecUser`).

/// The text of `path` inside `root` (the image's `/etc/passwd`, say), resolved as the
/// container would: a symlink in the image stays inside the image (`RESOLVE_IN_ROOT`),
/// never reaching the host's files. A missing file reads as empty, as Docker treats it.
pub(crate) fn read_in_root(root: &std::path::Path, path: &str) -> std::io::Result<String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = match rustix::fs::openat2(
        &dir,
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => return Ok(String::new()),
        Err(e) => return Err(e.into()),
    };
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text)?;
    Ok(text)
}

/// A resolved user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Supplementary groups: every group in `/etc/group` listing the user by name.
    pub(crate) groups: Vec<u32>,
    pub(crate) home: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

/// Resolve `spec` (`""` means root) against passwd and group file contents.
pub(crate) fn resolve(spec: &str, passwd: &str, group: &str) -> Result<User, UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 7)
        .collect();
    let numeric = user.parse::<u32>().ok();
    let found = entries
        .iter()
        .find(|f| f[0] == user || numeric.is_some_and(|n| f[2].parse::<u32>().ok() == Some(n)));
    let (name, uid, mut gid, home) = match (found, numeric) {
        (Some(f), _) => (
            Some(f[0]),
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[5].to_string(),
        ),
        // A numeric uid without a passwd entry is fine: gid 0 unless given, home /.
        (None, Some(n)) => (None, n, 0, "/".to_string()),
        (None, None) => return Err(UserError::NoUser(user.to_string())),
    };
    let groups_file: Vec<Vec<&str>> = group
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    if let Some(g) = grp {
        let n = g.parse::<u32>().ok();
        gid = match groups_file.iter().find(|f| f[0] == g) {
            Some(f) => f[2].parse().unwrap_or(0),
            None => n.ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        };
    }
    // The primary group first, then the groups that list the user by name, and those only
    // when no group was given: runc's `GetExecUser` as BuildKit calls it, with the primary
    // group added as BuildKit adds it since the fix for CVE-2023-25173
    // (`ensureAdditionalGids`). Docker 20.10's BuildKit predates that fix and left it out.
    let mut groups = vec![gid];
    if let Some(name) = name
        && grp.is_none()
    {
        for f in &groups_file {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && !groups.contains(&g)
            {
                groups.push(g);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_in_root_stays_in_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(d.path().join("host-passwd"), "host\n").unwrap();
        std::fs::write(root.join("etc/group"), "g:x:1:\n").unwrap();
        // An absolute link resolves against the root, not the host.
        std::os::unix::fs::symlink(d.path().join("host-passwd"), root.join("etc/passwd")).unwrap();
        assert_eq!(read_in_root(&root, "/etc/passwd").unwrap(), "");
        std::os::unix::fs::symlink("../../host-passwd", root.join("etc/shadow")).unwrap();
        assert_eq!(read_in_root(&root, "/etc/shadow").unwrap(), "");
        assert_eq!(read_in_root(&root, "/etc/group").unwrap(), "g:x:1:\n");
        assert_eq!(read_in_root(&root, "/nope/x").unwrap(), "");
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n# comment\nnobody:x:65534:65534::/nonexistent:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\ntty:x:5:root\napp:x:1000:\nwheel:x:10:app,other\naudio:x:29:app\n";

    macro_rules! users {
        ($($name:ident: $spec:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = resolve($spec, PASSWD, GROUP).map(|u| (u.uid, u.gid, u.groups));
                assert_eq!(got, $want);
            }
        )*};
    }

    users! {
        default_is_root_with_its_memberships: "" => Ok((0, 0, vec![0, 5]));
        listed_in_no_group: "nobody" => Ok((65534, 65534, vec![65534]));
        by_name_with_supplementary: "app" => Ok((1000, 1000, vec![1000, 10, 29]));
        by_uid: "1000" => Ok((1000, 1000, vec![1000, 10, 29]));
        unknown_numeric_uid: "4242" => Ok((4242, 0, vec![0]));
        explicit_group_by_name: "app:wheel" => Ok((1000, 10, vec![10]));
        explicit_group_by_id: "app:77" => Ok((1000, 77, vec![77]));
        unknown_name: "ghost" => Err(UserError::NoUser("ghost".into()));
        unknown_group: "app:ghosts" => Err(UserError::NoGroup("ghosts".into()));
    }
}
