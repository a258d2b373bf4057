//! How RUN steps are isolated (`--isolation`): with namespaces of their own and a `/proc` of
//! their own where that is allowed, and inside a container that refuses a fresh `/proc`
//! (podman's, Docker's and Kubernetes' defaults mask parts of theirs), with the container's
//! `/proc` instead, and where its seccomp profile refuses `sethostname`, with its hostname:
//! said once ([`ProcChoice::note`]). A probe at the first RUN step of a build decides;
//! outside a user namespace everything is allowed.

use std::path::Path;
use std::sync::OnceLock;

use super::error::BuildError;
use crate::sandbox::Proc;

/// `--isolation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Isolation {
    /// Full where allowed, else the container's `/proc` (said once). `default`, `auto`.
    #[default]
    Auto,
    /// Full, or fail: a `/proc` of the step's own. `oci`, `namespaces`.
    Full,
    /// The container's `/proc`, without probing, and the native snapshotter unless
    /// `--snapshotter` says otherwise: Buildah's `--isolation=chroot`. `chroot`.
    Chroot,
}

impl Isolation {
    pub fn parse(s: &str) -> Result<Isolation, String> {
        match s {
            "default" | "auto" => Ok(Isolation::Auto),
            "oci" | "namespaces" => Ok(Isolation::Full),
            "chroot" => Ok(Isolation::Chroot),
            "process" | "hyperv" => Err(format!(
                "--isolation={s} is for Windows containers; on Linux: default, oci or chroot"
            )),
            _ => Err(format!(
                "invalid --isolation {s:?}: expected default, oci or chroot"
            )),
        }
    }
}

/// What RUN steps get where the machine refuses part of the isolation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) proc: Proc,
    /// The container's hostname, not the step's own.
    pub(crate) keep_hostname: bool,
}

const FULL: Choice = Choice {
    proc: Proc::Fresh,
    keep_hostname: false,
};

/// How to keep everything in a container that refuses some of it.
const UNCONFINED: &str = "run the container with `--security-opt systempaths=unconfined` (podman, docker) or `procMount: Unmasked` (Kubernetes) for /proc, and with `--cap-add SYS_ADMIN` or a seccomp profile allowing sethostname for the hostname";

/// The build's choice for RUN steps, made at the first one.
#[derive(Debug, Default)]
pub(crate) struct ProcChoice {
    chosen: OnceLock<Result<Choice, String>>,
    note: OnceLock<String>,
}

impl ProcChoice {
    /// What RUN steps get under `isolation`; a probe works in a new directory under
    /// `state_root`'s `tmp/`.
    pub(crate) fn choice(
        &self,
        isolation: Isolation,
        state_root: &Path,
    ) -> Result<Choice, BuildError> {
        let chosen = self.chosen.get_or_init(|| {
            // Outside a user namespace everything is allowed; chroot asks for less anyway.
            let allowed = if isolation == Isolation::Chroot
                || !crate::sys::userns::in_user_namespace()
            {
                None
            } else {
                let scratch = state_root
                    .join("tmp")
                    .join(format!("probe-{}", crate::store::unique_suffix()));
                crate::sandbox::probe(&scratch).ok()
            };
            let mut choice = match isolation {
                Isolation::Chroot => Choice {
                    proc: Proc::Host,
                    keep_hostname: false,
                },
                _ => FULL,
            };
            let mut lost = Vec::new();
            if let Some(allowed) = allowed {
                if !allowed.fresh_proc {
                    choice.proc = Proc::Host;
                    lost.push("a /proc of their own (they see the container's, and so its processes)");
                }
                if !allowed.hostname {
                    choice.keep_hostname = true;
                    lost.push("a hostname of their own (they keep the container's)");
                }
            }
            if lost.is_empty() {
                return Ok(choice);
            }
            if isolation == Isolation::Full {
                return Err(format!(
                    "--isolation=oci: this container refuses RUN steps {}; {UNCONFINED}; or build with --isolation=default",
                    lost.join(" and ")
                ));
            }
            let _ = self.note.set(format!(
                "isolation: this container refuses RUN steps {}; their files, mounts, network and users stay isolated. To keep all of it, {UNCONFINED}",
                lost.join(" and ")
            ));
            Ok(choice)
        });
        chosen.clone().map_err(BuildError::Request)
    }

    /// What the build lost, if the probe made it lose anything.
    pub(crate) fn note(&self) -> Option<String> {
        self.note.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolation_values() {
        assert_eq!(Isolation::parse("default"), Ok(Isolation::Auto));
        assert_eq!(Isolation::parse("oci"), Ok(Isolation::Full));
        assert_eq!(Isolation::parse("chroot"), Ok(Isolation::Chroot));
        assert!(Isolation::parse("hyperv").unwrap_err().contains("Windows"));
        assert!(
            Isolation::parse("vm")
                .unwrap_err()
                .contains("expected default")
        );
    }

    #[test]
    fn chroot_is_the_containers_proc_without_a_probe() {
        let choice = ProcChoice::default();
        let scratch = Path::new("/nonexistent/state-root");
        assert_eq!(
            choice.choice(Isolation::Chroot, scratch).unwrap().proc,
            Proc::Host
        );
        assert_eq!(choice.note(), None, "asked for: nothing lost to say");
    }
}
