//! Which user namespace this process runs in, read from `/proc/self/uid_map`
//! (user_namespaces(7)). Root of the initial namespace is the only user that may create device
//! nodes, set `trusted.*` extended attributes or own the system state root; root of any other
//! user namespace — rbuild's own rootless namespace ([`crate::sandbox::unshare`]), or a
//! container's — has capabilities only over the ids mapped into it. Every decision that
//! depends on which of the two we are asks here, and nowhere else.

/// The initial user namespace maps every id to itself: `0 0 4294967295` (user_namespaces(7),
/// "The initial user namespace").
fn is_initial_map(uid_map: &str) -> bool {
    let lines: Vec<Vec<&str>> = uid_map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| !f.is_empty())
        .collect();
    lines.len() == 1 && lines[0] == ["0", "0", "4294967295"]
}

/// Set when this process made a user namespace of its own and entered it (a rootless
/// build's): then it is in one whatever its map says.
static ENTERED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Note that this process entered a user namespace of its own. Root of an unprivileged
/// container builds in one that maps every id to itself, which looks initial by its map.
pub(crate) fn entered() {
    ENTERED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this process runs in a user namespace other than the initial one. Unreadable
/// `/proc` counts as the initial namespace: then rbuild behaves as it always did.
pub(crate) fn in_user_namespace() -> bool {
    ENTERED.load(std::sync::atomic::Ordering::Relaxed)
        || std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| !is_initial_map(&m))
}

/// Whether this process is root of the initial user namespace: root on the host, with
/// every privilege a build may use (device nodes, `trusted.overlay.*` xattrs, any owner).
pub(crate) fn is_host_root() -> bool {
    rustix::process::geteuid().is_root() && !in_user_namespace()
}

/// The id outside (in the parent namespace) that `id` inside maps to, from a
/// `uid_map`/`gid_map` text; `None` when `id` is not mapped.
fn outside(map: &str, id: u32) -> Option<u32> {
    map.lines().find_map(|l| {
        let f: Vec<u64> = l
            .split_whitespace()
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        let [inside, outside, count] = f[..] else {
            return None;
        };
        let id = u64::from(id);
        (inside <= id && id < inside + count).then(|| (outside + id - inside) as u32)
    })
}

/// The real uid of the user who started rbuild, as the parent user namespace knows it:
/// inside rbuild's rootless namespace `getuid()` is 0, but per-user paths on the host
/// (`/run/containers/<uid>/auth.json`) are named after the user's own uid.
pub(crate) fn host_uid() -> u32 {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/proc/self/uid_map")
        .ok()
        .and_then(|m| outside(&m, uid))
        .unwrap_or(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! initial {
        ($($name:ident: $map:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(is_initial_map($map), $want, "{:?}", $map);
            }
        )*};
    }

    initial! {
        host: "         0          0 4294967295\n" => true;
        rootless_single: "         0       1000          1\n" => false;
        rootless_ranges: "0 1000 1\n1 200000 65536\n" => false;
        identity_but_short: "0 0 65536\n" => false;
        identity_then_more: "0 0 4294967295\n0 0 1\n" => false;
        empty: "" => false;
    }

    macro_rules! maps {
        ($($name:ident: $map:expr, $id:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(outside($map, $id), $want);
            }
        )*};
    }

    maps! {
        root_to_user: "0 1000 1\n1 200000 65536\n", 0 => Some(1000);
        first_sub_id: "0 1000 1\n1 200000 65536\n", 1 => Some(200000);
        last_sub_id: "0 1000 1\n1 200000 65536\n", 65536 => Some(265535);
        unmapped: "0 1000 1\n1 200000 65536\n", 65537 => None;
        identity: "0 0 4294967295\n", 4242 => Some(4242);
    }

    #[test]
    fn this_process_is_consistent() {
        // The test runner is either host root, or not root at all, or root in some namespace.
        if rustix::process::geteuid().is_root() && !in_user_namespace() {
            assert!(is_host_root());
            assert_eq!(host_uid(), 0);
        } else {
            assert!(!is_host_root());
        }
    }
}
