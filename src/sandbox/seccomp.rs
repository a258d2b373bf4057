//! The seccomp filter every RUN step gets unless it runs privileged: the system calls that
//! Docker's default profile refuses to a container with Docker's default capabilities
//! fail with `EPERM`, as they do under `docker build` (keyrings, BPF, perf events,
//! userfaultfd, kernel modules and kexec, mounting and namespaces, clocks, swap, quotas,
//! NUMA policy, other processes' memory, io_uring, …). `clone3` fails with `ENOSYS` so
//! that libc falls back to `clone`, whose flags the filter can read: `clone` with a
//! namespace flag is refused like `unshare`.
//!
//! Docker's profile is an allow-list; this one refuses the same calls by name and lets
//! the rest through, so a system call newer than the list is allowed (Docker answers
//! `EPERM` for those until its profile learns them).
//!
//! The filter is classic BPF written here rather than by a filter crate: `seccompiler`
//! makes one-architecture programs that kill every other ABI, and a 64-bit x86 kernel also
//! runs i386 binaries (`linux/386` images run natively) and, where enabled, x32 ones; an
//! x86_64-only deny-list could be bypassed through `int 0x80`. libseccomp handles both but
//! is a C library that every rbuild binary, including those run inside containers, would
//! then need at run time. This program checks the architecture first and has a block per
//! ABI: x86_64 (x32 numbers refused outright), i386 (its own numbers, from the kernel's
//! `unistd_32.h`), aarch64 (AArch32 compat refused outright: rbuild runs `linux/arm`
//! through QEMU there, never natively).

use std::collections::HashMap;

/// `seccomp_data` offsets (include/uapi/linux/seccomp.h).
const NR: u32 = 0;
const ARCH: u32 = 4;
/// The low 32 bits of `args[0]`, a `u64` at offset 16.
#[cfg(target_endian = "little")]
const ARG0_LOW: u32 = 16;
#[cfg(target_endian = "big")]
const ARG0_LOW: u32 = 20;

/// `AUDIT_ARCH_*` (include/uapi/linux/audit.h).
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;

/// x32 system calls are x86_64's with this bit set.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Namespace flags of `clone` (CLONE_NEWTIME shares its bit with CSIGNAL there).
const CLONE_NAMESPACES: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u32;

/// `personality(2)` arguments Docker's profile allows: `PER_LINUX`, `PER_LINUX32`,
/// `UNAME26`, `PER_LINUX32|UNAME26` and the query `0xffffffff`.
const PERSONALITIES: [u32; 5] = [0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Refused with EPERM in every ABI, by name: what Docker's default profile leaves out for
/// a container with the default capabilities. Names an ABI lacks are skipped.
pub const DENIED: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "fanotify_init",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pidfd_getfd",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "stime",
    "swapoff",
    "swapon",
    "syslog",
    "sysfs",
    "_sysctl",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "vm86",
    "vm86old",
];

/// One ABI's system call numbers for the names the filter looks at.
struct Abi {
    arch: u32,
    numbers: HashMap<&'static str, u32>,
    /// Refuse numbers with the x32 bit (x86_64 only).
    x32_bit: bool,
}

/// System call numbers by name (a name an ABI lacks is not in its table).
type Numbers = &'static [(&'static str, libc::c_long)];

/// `(name, libc::SYS_name)` for each name.
macro_rules! numbers {
    ($($name:ident),* $(,)?) => {
        &[$((stringify!($name), libc::$name)),*]
    };
}

/// The native ABI's numbers, from libc: what every architecture here has, then what only
/// this one has. `SYS_` is stripped from the names when they are looked up.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const COMMON: Numbers = numbers![
    SYS_acct,
    SYS_add_key,
    SYS_bpf,
    SYS_clock_adjtime,
    SYS_clock_settime,
    SYS_delete_module,
    SYS_fanotify_init,
    SYS_finit_module,
    SYS_fsconfig,
    SYS_fsmount,
    SYS_fsopen,
    SYS_fspick,
    SYS_get_mempolicy,
    SYS_init_module,
    SYS_io_uring_enter,
    SYS_io_uring_register,
    SYS_io_uring_setup,
    SYS_kcmp,
    SYS_kexec_file_load,
    SYS_kexec_load,
    SYS_keyctl,
    SYS_lookup_dcookie,
    SYS_mbind,
    SYS_mount,
    SYS_mount_setattr,
    SYS_move_mount,
    SYS_move_pages,
    SYS_name_to_handle_at,
    SYS_nfsservctl,
    SYS_open_by_handle_at,
    SYS_open_tree,
    SYS_perf_event_open,
    SYS_pidfd_getfd,
    SYS_pivot_root,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_quotactl,
    SYS_quotactl_fd,
    SYS_reboot,
    SYS_request_key,
    SYS_set_mempolicy,
    SYS_setns,
    SYS_settimeofday,
    SYS_swapoff,
    SYS_swapon,
    SYS_syslog,
    SYS_umount2,
    SYS_unshare,
    SYS_userfaultfd,
    SYS_vhangup,
    SYS_clone,
    SYS_clone3,
    SYS_personality,
];

#[cfg(target_arch = "x86_64")]
const NATIVE: (u32, Numbers) = (
    AUDIT_ARCH_X86_64,
    numbers![
        SYS_ioperm,
        SYS_iopl,
        SYS_sysfs,
        SYS__sysctl,
        SYS_uselib,
        SYS_ustat
    ],
);

#[cfg(target_arch = "aarch64")]
const NATIVE: (u32, Numbers) = (AUDIT_ARCH_AARCH64, numbers![]);

/// i386 numbers as the x86_64 kernel's IA-32 emulation takes them
/// (arch/x86/entry/syscalls/syscall_32.tbl; a unit test compares them with `unistd_32.h`
/// where the headers are installed).
#[cfg(target_arch = "x86_64")]
const I386: Numbers = &[
    ("acct", 51),
    ("add_key", 286),
    ("bpf", 357),
    ("clock_adjtime", 343),
    ("clock_settime", 264),
    ("create_module", 127),
    ("delete_module", 129),
    ("fanotify_init", 338),
    ("finit_module", 350),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fsopen", 430),
    ("fspick", 433),
    ("get_kernel_syms", 130),
    ("get_mempolicy", 275),
    ("init_module", 128),
    ("io_uring_enter", 426),
    ("io_uring_register", 427),
    ("io_uring_setup", 425),
    ("ioperm", 101),
    ("iopl", 110),
    ("kcmp", 349),
    ("kexec_load", 283),
    ("keyctl", 288),
    ("lookup_dcookie", 253),
    ("mbind", 274),
    ("mount", 21),
    ("mount_setattr", 442),
    ("move_mount", 429),
    ("move_pages", 317),
    ("name_to_handle_at", 341),
    ("nfsservctl", 169),
    ("open_by_handle_at", 342),
    ("open_tree", 428),
    ("perf_event_open", 336),
    ("pidfd_getfd", 438),
    ("pivot_root", 217),
    ("process_vm_readv", 347),
    ("process_vm_writev", 348),
    ("query_module", 167),
    ("quotactl", 131),
    ("quotactl_fd", 443),
    ("reboot", 88),
    ("request_key", 287),
    ("set_mempolicy", 276),
    ("setns", 346),
    ("settimeofday", 79),
    ("stime", 25),
    ("swapoff", 115),
    ("swapon", 87),
    ("syslog", 103),
    ("sysfs", 135),
    ("_sysctl", 149),
    ("umount", 22),
    ("umount2", 52),
    ("unshare", 310),
    ("uselib", 86),
    ("userfaultfd", 374),
    ("ustat", 62),
    ("vhangup", 111),
    ("vm86", 166),
    ("vm86old", 113),
    ("clone", 120),
    ("clone3", 435),
    ("personality", 136),
];

fn abi(arch: u32, tables: &[Numbers], x32_bit: bool) -> Abi {
    Abi {
        arch,
        numbers: tables
            .iter()
            .flat_map(|t| t.iter())
            .map(|&(n, nr)| (n.strip_prefix("SYS_").unwrap_or(n), nr as u32))
            .collect(),
        x32_bit,
    }
}

/// The ABIs this machine's kernel may run, each with its own block; any other
/// architecture (AArch32 compat on arm64) is refused whole.
fn abis() -> Vec<Abi> {
    #[cfg(target_arch = "x86_64")]
    return vec![
        abi(NATIVE.0, &[COMMON, NATIVE.1], true),
        abi(AUDIT_ARCH_I386, &[I386], false),
    ];
    #[cfg(target_arch = "aarch64")]
    return vec![abi(NATIVE.0, &[COMMON, NATIVE.1], false)];
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return Vec::new();
}

/// A classic BPF instruction, as the kernel takes it (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;

/// Where a conditional jump goes: the next instruction or a label.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum To {
    Next,
    Label(Label),
}

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Label {
    Abi(usize),
    Deny(usize),
    NoSys(usize),
    Allow(usize),
    Clone(usize),
    Personality(usize),
}

/// A program with symbolic jump targets, resolved by [`Asm::finish`].
#[derive(Default)]
struct Asm {
    code: Vec<(u16, To, To, u32)>,
    labels: HashMap<Label, usize>,
}

impl Asm {
    fn stmt(&mut self, code: u16, k: u32) {
        self.code.push((code, To::Next, To::Next, k));
    }

    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((code, jt, jf, k));
    }

    fn label(&mut self, l: Label) {
        self.labels.insert(l, self.code.len());
    }

    fn finish(self) -> Vec<Insn> {
        let offset = |at: usize, to: To| -> u8 {
            match to {
                To::Next => 0,
                To::Label(l) => {
                    let target = self.labels[&l];
                    let distance = target
                        .checked_sub(at + 1)
                        .expect("BPF jumps only go forwards");
                    u8::try_from(distance).expect("a BPF jump reaches at most 255 instructions")
                }
            }
        };
        self.code
            .iter()
            .enumerate()
            .map(|(at, &(code, jt, jf, k))| Insn {
                code,
                jt: offset(at, jt),
                jf: offset(at, jf),
                k,
            })
            .collect()
    }
}

/// The filter's program; `None` on an architecture whose system call numbers rbuild does
/// not know.
pub fn program() -> Option<Vec<Insn>> {
    let abis = abis();
    if abis.is_empty() {
        return None;
    }
    let mut a = Asm::default();
    a.stmt(LD_ABS, ARCH);
    for (i, abi) in abis.iter().enumerate() {
        a.jump(JEQ, abi.arch, To::Label(Label::Abi(i)), To::Next);
    }
    a.stmt(RET, KILL);
    for (i, abi) in abis.iter().enumerate() {
        a.label(Label::Abi(i));
        a.stmt(LD_ABS, NR);
        if abi.x32_bit {
            a.jump(JGE, X32_SYSCALL_BIT, To::Label(Label::NoSys(i)), To::Next);
        }
        for name in DENIED {
            if let Some(&nr) = abi.numbers.get(name) {
                a.jump(JEQ, nr, To::Label(Label::Deny(i)), To::Next);
            }
        }
        a.jump(
            JEQ,
            abi.numbers["clone"],
            To::Label(Label::Clone(i)),
            To::Next,
        );
        a.jump(
            JEQ,
            abi.numbers["clone3"],
            To::Label(Label::NoSys(i)),
            To::Next,
        );
        let personality = abi.numbers["personality"];
        a.jump(JEQ, personality, To::Label(Label::Personality(i)), To::Next);
        a.stmt(RET, ALLOW);
        a.label(Label::Clone(i));
        a.stmt(LD_ABS, ARG0_LOW);
        a.jump(
            JSET,
            CLONE_NAMESPACES,
            To::Label(Label::Deny(i)),
            To::Label(Label::Allow(i)),
        );
        a.label(Label::Personality(i));
        a.stmt(LD_ABS, ARG0_LOW);
        for p in PERSONALITIES {
            a.jump(JEQ, p, To::Label(Label::Allow(i)), To::Next);
        }
        a.label(Label::Deny(i));
        a.stmt(RET, EPERM);
        a.label(Label::NoSys(i));
        a.stmt(RET, ENOSYS);
        a.label(Label::Allow(i));
        a.stmt(RET, ALLOW);
    }
    Some(a.finish())
}

/// Install the filter on the calling thread; what it execs keeps it. `no_new_privs` must be
/// set first (it is, by the sandbox's PID 1), so no capability is needed.
pub fn install() -> std::io::Result<()> {
    let Some(program) = program() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!(
                "rbuild has no seccomp filter for {}: run the step with RUN --security=insecure and --allow security.insecure",
                std::env::consts::ARCH
            ),
        ));
    };
    let insns: Vec<libc::sock_filter> = program
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    crate::sys::seccomp_filter(&insns)
}

#[cfg(test)]
mod tests;
