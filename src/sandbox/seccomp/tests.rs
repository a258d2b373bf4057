use super::*;

/// AArch32, which arm64 kernels may run as a compat ABI.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;

/// What the kernel hands the filter (`struct seccomp_data`), as words at their offsets.
struct Call {
    arch: u32,
    nr: u32,
    arg0: u64,
}

/// Run `program` on `call` as the kernel's classic BPF interpreter would, for the
/// instructions the filter uses; the return value is the seccomp action.
fn run(program: &[Insn], call: &Call) -> u32 {
    let word = |offset: u32| -> u32 {
        match offset {
            NR => call.nr,
            ARCH => call.arch,
            ARG0_LOW => call.arg0 as u32,
            other => panic!("the filter reads an unexpected offset {other}"),
        }
    };
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = program[pc];
        pc += 1;
        match i.code {
            LD_ABS => acc = word(i.k),
            RET => return i.k,
            JEQ | JGE | JSET => {
                let taken = match i.code {
                    JEQ => acc == i.k,
                    JGE => acc >= i.k,
                    _ => acc & i.k != 0,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            other => panic!("unexpected BPF opcode {other:#x}"),
        }
    }
}

fn native(name: &str, arg0: u64) -> Call {
    Call {
        arch: NATIVE.0,
        nr: abis()[0].numbers[name],
        arg0,
    }
}

#[test]
fn denied_calls_get_eperm_and_the_rest_pass() {
    let p = program().unwrap();
    for name in ["keyctl", "add_key", "bpf", "perf_event_open", "userfaultfd"] {
        assert_eq!(run(&p, &native(name, 0)), EPERM, "{name}");
    }
    for name in [
        "init_module",
        "finit_module",
        "delete_module",
        "unshare",
        "setns",
    ] {
        assert_eq!(run(&p, &native(name, 0)), EPERM, "{name}");
    }
    for nr in [
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_openat,
        libc::SYS_execve,
    ] {
        let call = Call {
            arch: NATIVE.0,
            nr: nr as u32,
            arg0: 0,
        };
        assert_eq!(run(&p, &call), ALLOW, "syscall {nr}");
    }
}

#[test]
fn clone_is_refused_only_with_namespace_flags_and_clone3_falls_back() {
    let p = program().unwrap();
    let fork = (libc::SIGCHLD | libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID) as u64;
    assert_eq!(run(&p, &native("clone", fork)), ALLOW);
    let thread = (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SIGHAND) as u64;
    assert_eq!(run(&p, &native("clone", thread)), ALLOW);
    for ns in [libc::CLONE_NEWUSER, libc::CLONE_NEWNS, libc::CLONE_NEWNET] {
        let flags = (ns | libc::SIGCHLD) as u64;
        assert_eq!(run(&p, &native("clone", flags)), EPERM, "{ns:#x}");
    }
    assert_eq!(run(&p, &native("clone3", 0)), ENOSYS);
}

#[test]
fn personality_allows_docker_values_only() {
    let p = program().unwrap();
    for ok in PERSONALITIES {
        assert_eq!(run(&p, &native("personality", u64::from(ok))), ALLOW);
    }
    // ADDR_NO_RANDOMIZE: turning ASLR off is refused, as under Docker.
    assert_eq!(run(&p, &native("personality", 0x0040000)), EPERM);
}

#[test]
fn unknown_architectures_are_killed() {
    let p = program().unwrap();
    let call = Call {
        arch: 0x1234,
        nr: 0,
        arg0: 0,
    };
    assert_eq!(run(&p, &call), KILL);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn i386_and_x32_cannot_go_around_the_filter() {
    let p = program().unwrap();
    let i386 = |nr| Call {
        arch: AUDIT_ARCH_I386,
        nr,
        arg0: 0,
    };
    assert_eq!(run(&p, &i386(288)), EPERM, "keyctl");
    assert_eq!(run(&p, &i386(357)), EPERM, "bpf");
    assert_eq!(run(&p, &i386(3)), ALLOW, "read");
    assert_eq!(run(&p, &i386(435)), ENOSYS, "clone3");
    let x32 = Call {
        arch: AUDIT_ARCH_X86_64,
        nr: X32_SYSCALL_BIT | libc::SYS_keyctl as u32,
        arg0: 0,
    };
    assert_eq!(run(&p, &x32), ENOSYS);
    // AArch32 on arm64 is no ABI here: killed, like any unknown one.
    let arm = Call {
        arch: AUDIT_ARCH_ARM,
        nr: 0,
        arg0: 0,
    };
    assert_eq!(run(&p, &arm), KILL);
}

/// The i386 numbers are the kernel's: compared with the UAPI header that Debian's
/// linux-libc-dev installs (a dependency of libc6-dev, so of any C toolchain).
#[cfg(target_arch = "x86_64")]
#[test]
fn i386_numbers_match_the_kernel_headers() {
    let header = "/usr/include/x86_64-linux-gnu/asm/unistd_32.h";
    let text = std::fs::read_to_string(header)
        .unwrap_or_else(|e| panic!("{header} (Debian's linux-libc-dev): {e}"));
    let defined: HashMap<&str, u32> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("#define __NR_")?;
            let (name, nr) = rest.split_once(' ')?;
            Some((name, nr.trim().parse().ok()?))
        })
        .collect();
    for (name, nr) in I386 {
        assert_eq!(defined.get(name), Some(&(*nr as u32)), "{name}");
    }
}

/// Every name in the list is a real system call of an ABI that x86_64 runs (i386 keeps
/// the legacy ones), so no typo goes unnoticed as a call nobody makes.
#[cfg(target_arch = "x86_64")]
#[test]
fn every_denied_name_is_known_to_an_abi() {
    let abis = abis();
    for name in DENIED {
        assert!(
            abis.iter().any(|a| a.numbers.contains_key(name)),
            "{name} is in no ABI's table"
        );
    }
}
