//! RUN for another architecture runs its binaries through the kernel's binfmt_misc and QEMU
//! user emulation (Debian's `qemu-user-static` registers a handler per architecture). The
//! sandbox gives the step the image as its root, where the host's QEMU is not, so only a
//! handler registered with the `F` flag (the interpreter opened at registration) works.
//!
//! Checked before anything is built: a plan with RUN steps for an architecture this machine
//! cannot run fails at once, saying how to install the handler, and never half-builds.

use std::path::Path;

use super::error::BuildError;
use crate::dockerfile::instruction::Kind;
use crate::oci::platform::Platform;
use crate::plan::Plan;

/// Where the kernel lists binfmt_misc handlers; `RBUILD_BINFMT_MISC` names another place
/// (a container may mount it elsewhere).
const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Fail when a stage `plan` builds runs steps for an architecture the host cannot execute
/// and no usable binfmt_misc handler is registered for it.
pub(crate) fn check(plan: &Plan) -> Result<(), BuildError> {
    let host = Platform::host();
    let mut foreign: Vec<Platform> = Vec::new();
    for index in plan.needed_stages() {
        let stage = &plan.stages[index];
        let platform = stage
            .platform
            .clone()
            .unwrap_or_else(|| plan.target_platform.clone());
        let runs = stage
            .steps
            .iter()
            .any(|s| matches!(s.instruction.kind, Kind::Run(_)));
        if runs && !native(&host, &platform) && !foreign.contains(&platform) {
            foreign.push(platform);
        }
    }
    for platform in foreign {
        check_platform(&platform)?;
    }
    Ok(())
}

/// Fail when `platform`'s executables need emulation and no usable handler is registered.
pub(crate) fn check_platform(platform: &Platform) -> Result<(), BuildError> {
    if native(&Platform::host(), platform) {
        return Ok(());
    }
    let dir = std::env::var_os("RBUILD_BINFMT_MISC")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| BINFMT_MISC.into());
    handler_for(&dir, platform)
        .map(|_| ())
        .map_err(BuildError::Request)
}

/// Whether the host runs `platform`'s binaries itself (its own architecture, or 386 on
/// amd64).
fn native(host: &Platform, platform: &Platform) -> bool {
    host.architecture == platform.architecture
        || (host.architecture == "amd64" && platform.architecture == "386")
}

/// The ELF identification of an architecture's executables: class (1: 32-bit, 2: 64-bit),
/// data encoding (1: little, 2: big endian) and `e_machine`.
fn elf_id(architecture: &str) -> Option<(u8, u8, u16)> {
    Some(match architecture {
        "amd64" => (2, 1, 0x3e),
        "386" => (1, 1, 0x03),
        "arm64" => (2, 1, 0xb7),
        "arm" => (1, 1, 0x28),
        "ppc64le" => (2, 1, 0x15),
        "ppc64" => (2, 2, 0x15),
        "s390x" => (2, 2, 0x16),
        "riscv64" => (2, 1, 0xf3),
        "mips64le" => (2, 1, 0x08),
        "mips64" => (2, 2, 0x08),
        "mipsle" => (1, 1, 0x08),
        "mips" => (1, 2, 0x08),
        "loong64" => (2, 1, 0x102),
        _ => return None,
    })
}

/// The name of the handler in `dir` that runs `platform`'s executables, or the message that
/// says why there is none and what to do.
fn handler_for(dir: &Path, platform: &Platform) -> Result<String, String> {
    let arch = &platform.architecture;
    let install = format!(
        "install QEMU user emulation, which registers one (Debian and Ubuntu: `apt-get install qemu-user-static`; elsewhere: `docker run --privileged --rm tonistiigi/binfmt --install {arch}`)"
    );
    let Some((class, data, machine)) = elf_id(arch) else {
        return Err(format!(
            "running {platform} executables needs emulation, and rbuild does not know the executables of architecture {arch:?}"
        ));
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        format!(
            "running {platform} executables needs QEMU user emulation through binfmt_misc, and {} cannot be read ({e}): mount it (`mount -t binfmt_misc binfmt_misc {}`), then {install}",
            dir.display(),
            dir.display()
        )
    })?;
    let mut without_f = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        let handler = Handler::parse(&text);
        if !handler.enabled || !handler.runs(class, data, machine) {
            continue;
        }
        if handler.fix_binary {
            return Ok(name);
        }
        without_f = Some(name);
    }
    Err(match without_f {
        Some(name) => format!(
            "running {platform} executables needs QEMU user emulation; the binfmt_misc handler {name:?} runs {arch} executables but was registered without the F flag, so it cannot work inside the build's root filesystem: register it again with F (Debian: `apt-get install --reinstall qemu-user-static`)"
        ),
        None => format!(
            "running {platform} executables needs QEMU user emulation, and this machine has no binfmt_misc handler for {arch}: {install}"
        ),
    })
}

/// One binfmt_misc entry, as the kernel prints it.
#[derive(Debug, Default)]
struct Handler {
    enabled: bool,
    fix_binary: bool,
    offset: usize,
    magic: Vec<u8>,
    mask: Vec<u8>,
}

impl Handler {
    fn parse(text: &str) -> Handler {
        let mut h = Handler::default();
        for line in text.lines() {
            let line = line.trim();
            if line == "enabled" {
                h.enabled = true;
            } else if let Some(flags) = line.strip_prefix("flags:") {
                h.fix_binary = flags.contains('F');
            } else if let Some(n) = line.strip_prefix("offset ") {
                h.offset = n.trim().parse().unwrap_or(usize::MAX);
            } else if let Some(hex) = line.strip_prefix("magic ") {
                h.magic = unhex(hex.trim());
            } else if let Some(hex) = line.strip_prefix("mask ") {
                h.mask = unhex(hex.trim());
            }
        }
        h
    }

    /// Whether the handler's magic (under its mask) accepts an ELF executable of this
    /// class, encoding and machine.
    fn runs(&self, class: u8, data: u8, machine: u16) -> bool {
        if self.offset != 0 || self.magic.len() < 20 {
            return false;
        }
        let machine = if data == 1 {
            machine.to_le_bytes()
        } else {
            machine.to_be_bytes()
        };
        let mut elf = [0u8; 20];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = class;
        elf[5] = data;
        elf[18..20].copy_from_slice(&machine);
        // Only the identifying bytes are compared; the rest of the magic (version, type)
        // is what the handler adds and any executable has.
        [0, 1, 2, 3, 4, 5, 18, 19].iter().all(|&i| {
            let mask = self.mask.get(i).copied().unwrap_or(0xff);
            self.magic[i] & mask == elf[i] & mask
        })
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Debian's qemu-user-static registers for aarch64.
    const AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    fn dir(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("register"), "").unwrap();
        std::fs::write(d.path().join("status"), "enabled\n").unwrap();
        for (name, text) in entries {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        d
    }

    fn arm64() -> Platform {
        Platform::parse("linux/arm64").unwrap()
    }

    #[test]
    fn a_registered_handler_with_f_is_found() {
        let d = dir(&[("qemu-aarch64", AARCH64)]);
        assert_eq!(handler_for(d.path(), &arm64()).unwrap(), "qemu-aarch64");
    }

    #[test]
    fn another_architecture_has_none() {
        let d = dir(&[("qemu-aarch64", AARCH64)]);
        let err = handler_for(d.path(), &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(
            err.contains("no binfmt_misc handler for s390x")
                && err.contains("apt-get install qemu-user-static"),
            "{err}"
        );
    }

    #[test]
    fn disabled_or_without_f_does_not_count() {
        let d = dir(&[("qemu-aarch64", &AARCH64.replace("enabled", "disabled"))]);
        assert!(handler_for(d.path(), &arm64()).is_err());
        let d = dir(&[("qemu-aarch64", &AARCH64.replace("flags: PF", "flags: P"))]);
        let err = handler_for(d.path(), &arm64()).unwrap_err();
        assert!(err.contains("without the F flag"), "{err}");
    }

    #[test]
    fn no_binfmt_misc_says_how_to_mount_it() {
        let err = handler_for(Path::new("/nonexistent/binfmt_misc"), &arm64()).unwrap_err();
        assert!(err.contains("mount -t binfmt_misc"), "{err}");
    }

    #[test]
    fn the_host_and_386_on_amd64_are_native() {
        let amd64 = Platform::parse("linux/amd64").unwrap();
        assert!(native(&amd64, &amd64));
        assert!(native(&amd64, &Platform::parse("linux/386").unwrap()));
        assert!(!native(&amd64, &arm64()));
    }
}
