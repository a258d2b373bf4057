//! `--chown=user[:group]` for COPY and ADD, resolved against the image's own `/etc/passwd` and
//! `/etc/group` text (read by the caller from the step's root filesystem, never the host's).
//!
//! The rules are BuildKit's file-op rules (`solver/llbsolver/file/user_linux.go`), which
//! differ from `USER`: a numeric user is taken as is and also names the group (`--chown=1000`
//! is `1000:1000` whatever the passwd file says), a user name takes its primary group from
//! passwd, and an explicit group is looked up by name in the group file or taken as a number.
//! Name lookups go through [`crate::sandbox::user::resolve`], the one reader of those files.

use crate::sandbox::user::{UserError, resolve};

/// The uid and gid that `spec` names.
pub(crate) fn resolve_chown(
    spec: &str,
    passwd: &str,
    group: &str,
) -> Result<(u32, u32), UserError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, mut gid) = match user.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) if user.is_empty() => (0, 0),
        Err(_) => {
            let found = resolve(user, passwd, "")?;
            (found.uid, found.gid)
        }
    };
    if let Some(g) = grp.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(gid) => gid,
            // `0:<name>` asks the shared reader for the group alone.
            Err(_) => resolve(&format!("0:{g}"), passwd, group)?.gid,
        };
    }
    Ok((uid, gid))
}

#[cfg(test)]
mod tests {
    use super::resolve_chown;
    use crate::sandbox::user::UserError;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1001:\nwheel:x:10:app\n";

    /// `chowns!(spec => result; ...)`.
    macro_rules! chowns {
        ($($spec:expr => $want:expr;)*) => {$(
            assert_eq!(resolve_chown($spec, PASSWD, GROUP), $want, "{:?}", $spec);
        )*};
    }

    #[test]
    fn buildkit_file_op_rules() {
        chowns! {
            "1000" => Ok((1000, 1000));
            "4242" => Ok((4242, 4242));
            "app" => Ok((1000, 1001));
            "app:wheel" => Ok((1000, 10));
            "app:77" => Ok((1000, 77));
            "55:wheel" => Ok((55, 10));
            "0:0" => Ok((0, 0));
            "ghost" => Err(UserError::NoUser("ghost".into()));
            "app:ghosts" => Err(UserError::NoGroup("ghosts".into()));
        }
    }
}
