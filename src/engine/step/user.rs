//! Users and groups of a step, resolved against the image's own `/etc/passwd` and
//! `/etc/group` in the step's root filesystem: USER for RUN and WORKDIR, and COPY/ADD's
//! `--chown` (BuildKit's rules, not USER's).

use std::path::Path;

use crate::dockerfile::instruction::Instruction;
use crate::engine::copy;
use crate::engine::error::BuildError;
use crate::engine::session::Session;
use crate::sandbox;

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

/// USER resolved in `rootfs`.
pub(crate) fn resolve_user(
    session: &Session<'_>,
    instruction: &Instruction,
    rootfs: &Path,
    spec: &str,
) -> Result<sandbox::user::User, BuildError> {
    let (passwd, group) = passwd_and_group(rootfs)?;
    sandbox::user::resolve(spec, &passwd, &group).map_err(|e| session.fail_at(instruction, &e))
}

/// `--chown` of COPY/ADD resolved in `rootfs`, with BuildKit's file-op rules.
pub(crate) fn chown_ids(rootfs: &Path, spec: &str) -> Result<(u32, u32), BuildError> {
    let (passwd, group) = passwd_and_group(rootfs)?;
    Ok(copy::file_op_owner(spec, &passwd, &group))
}

/// The owner WORKDIR gives the directory it creates: BuildKit makes it with its file
/// operation for the USER ([`copy::file_op_owner`]): `USER 4242` gives 4242:4242 whatever
/// passwd says, a user the image does not know gives 0:0 (only a RUN as that user fails).
pub(crate) fn workdir_owner(rootfs: &Path, spec: &str) -> Result<(u32, u32), BuildError> {
    let (passwd, group) = passwd_and_group(rootfs)?;
    Ok(copy::file_op_owner(spec, &passwd, &group))
}
