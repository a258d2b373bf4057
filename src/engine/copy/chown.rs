//! `--chown=user[:group]` for COPY and ADD, resolved against the image's own `/etc/passwd` and
//! `/etc/group` text (read by the caller from the step's root filesystem, never the host's).
//!
//! The rules are BuildKit's file-op rules (`solver/llbsolver/file/user_linux.go`), which
//! differ from `USER`: a numeric user is taken as is and also names the group (`--chown=1000`
//! is `1000:1000` whatever the passwd file says), a user name takes its primary group from
//! passwd, and an explicit group is looked up by name in the group file or taken as a number.
//! Unknown names are not errors (BuildKit's `readUser` falls back to 0 for the user and
//! keeps the gid for the group). Name lookups go through [`crate::sandbox::user::resolve`],
//! the one reader of those files.

use crate::sandbox::user::resolve;

/// The owner BuildKit's file operations give for `spec` (`readUser`), never an error: a
/// number is the uid and also the gid; a name takes uid and gid from passwd, or 0:0 when
/// passwd does not have it (or there is no passwd); an explicit group, by number or by a
/// name the group file has, replaces the gid (a name it lacks leaves it). `--chown` of COPY
/// and ADD, and WORKDIR's directories for the USER, follow these rules: a name the image
/// lacks builds under `docker build`, so it builds here.
pub(crate) fn file_op_owner(spec: &str, passwd: &str, group: &str) -> (u32, u32) {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) if user.is_empty() || user == "root" => (0, 0),
        Err(_) => resolve(user, passwd, "").map_or((0, 0), |u| (u.uid, u.gid)),
    };
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) if g == "root" => 0,
            Err(_) => resolve(&format!("0:{g}"), passwd, group).map_or(gid, |u| u.gid),
        };
    }
    (uid, gid)
}

#[cfg(test)]
mod tests {
    use super::file_op_owner;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1001:\nwheel:x:10:app\n";

    #[test]
    fn buildkit_file_op_rules_never_fail() {
        for (spec, want) in [
            ("", (0, 0)),
            ("4242", (4242, 4242)),
            ("1000", (1000, 1000)),
            ("app", (1000, 1001)),
            ("ghost", (0, 0)),
            ("app:wheel", (1000, 10)),
            ("app:ghosts", (1000, 1001)),
            ("4242:77", (4242, 77)),
            ("root:root", (0, 0)),
        ] {
            assert_eq!(file_op_owner(spec, PASSWD, GROUP), want, "{spec:?}");
        }
    }
}
