//! The store across processes: concurrent writers of one blob, concurrent taggers, the
//! store lock held by `flock(1)` from util-linux, and a 64 MiB blob written with bounded
//! memory. Child processes are this test binary run again on the `child` test with a role
//! in the environment (as a plain test, `child` does nothing).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rbuild::oci::manifest::descriptor;
use rbuild::oci::{DigestAndSize, Digester, MediaType, Reference};
use rbuild::store::{Expected, LOCK_FILE, Store};

use crate::common::process::Process;

const ROLE: &str = "RBUILD_STORE_TEST_ROLE";
const ROOT: &str = "RBUILD_STORE_TEST_ROOT";
const ARG: &str = "RBUILD_STORE_TEST_ARG";

/// A deterministic stream of `len` bytes handed out in ragged chunks (at most 7919 bytes
/// per read), generated on the fly: nothing holds the whole content.
struct Pattern {
    len: u64,
    pos: u64,
}

impl Pattern {
    fn new(len: u64) -> Pattern {
        Pattern { len, pos: 0 }
    }

    /// Its digest and size, computed by streaming it.
    fn expected(len: u64) -> DigestAndSize {
        let mut hasher = Digester::default();
        io::copy(&mut Pattern::new(len), &mut hasher).unwrap();
        hasher.peek()
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(7919).min((self.len - self.pos) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            let x = self.pos + i as u64;
            *b = (x ^ (x >> 9) ^ (x >> 17)) as u8;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

fn r(s: &str) -> Reference {
    Reference::parse(s).unwrap()
}

/// The name libtest gives the [`child`] test: its module path without the crate's name
/// (`store::child`).
fn child_test() -> String {
    let (_crate, module) = module_path!().split_once("::").unwrap();
    format!("{module}::child")
}

/// This test binary, run again as a child in `role` on just the [`child`] test.
fn spawn_child(role: &str, root: &Path, arg: &str) -> Process {
    Process::spawn(
        Command::new(std::env::current_exe().unwrap())
            .args([&child_test(), "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(ROOT, root)
            .env(ARG, arg)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
}

fn wait_ok(child: Process, what: &str) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    assert!(
        status.success(),
        "{what} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{}",
        String::from_utf8_lossy(&stderr)
    );
    stdout
}

/// The child side of the tests below.
#[test]
fn child() {
    let Some(role) = std::env::var_os(ROLE) else {
        return;
    };
    let store = Store::open(std::env::var_os(ROOT).unwrap()).unwrap();
    let arg = std::env::var(ARG).unwrap_or_default();
    match role.to_str().unwrap() {
        "write-blob" => {
            let len: u64 = arg.parse().unwrap();
            let got = store
                .blobs()
                .write(Pattern::new(len), Expected::Unknown)
                .unwrap();
            println!("wrote {}", got.digest);
        }
        "tag-many" => {
            let config = store.blobs().write(&b"{}"[..], Expected::Unknown).unwrap();
            let d = descriptor(&MediaType::OciConfig, &config.digest, config.size);
            for i in 0..20 {
                store.tag(&r(&format!("app:{arg}-{i}")), d.clone()).unwrap();
            }
        }
        "stream-64mib" => {
            let len = 64 << 20;
            let expected = Pattern::expected(len);
            let got = store.blobs().write(Pattern::new(len), &expected).unwrap();
            assert_eq!(got, expected);
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let peak = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .unwrap()
                .trim()
                .trim_end_matches(" kB")
                .to_string();
            println!("peak-kib {peak}");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn two_processes_and_a_thread_write_the_same_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let len = 8 << 20;
    let children: Vec<Process> = (0..2)
        .map(|_| spawn_child("write-blob", dir.path(), &len.to_string()))
        .collect();
    let expected = Pattern::expected(len);
    assert_eq!(
        store.blobs().write(Pattern::new(len), &expected).unwrap(),
        expected
    );
    for (i, c) in children.into_iter().enumerate() {
        let out = wait_ok(c, &format!("writer {i}"));
        assert!(out.contains(&format!("wrote {}", expected.digest)), "{out}");
    }
    assert_eq!(store.blobs().verify(&expected.digest).unwrap(), expected);
    assert_eq!(store.blobs().list().unwrap().count(), 1);
    let temps = std::fs::read_dir(store.blobs().tmp_dir()).unwrap().count();
    assert_eq!(temps, 0, "no temporary file left behind");
}

#[test]
fn two_processes_tagging_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let children: Vec<Process> = ["a", "b"]
        .iter()
        .map(|prefix| spawn_child("tag-many", dir.path(), prefix))
        .collect();
    for c in children {
        wait_ok(c, "tagger");
    }
    assert_eq!(store.list().unwrap().len(), 40);
}

#[test]
fn a_64_mib_blob_is_written_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = wait_ok(spawn_child("stream-64mib", dir.path(), ""), "64 MiB writer");
    let peak: u64 = out
        .lines()
        .find_map(|l| l.split_once("peak-kib ").map(|(_, kib)| kib.trim()))
        .unwrap_or_else(|| panic!("no peak in {out}"))
        .parse()
        .unwrap();
    // The figure docs/store.md quotes (`--no-capture` shows it).
    eprintln!("peak RSS while writing a 64 MiB blob: {peak} KiB");
    // The test binary itself needs a few MiB; holding the blob would need 64 more.
    assert!(
        peak < 32 * 1024,
        "peak RSS {peak} KiB while writing a 64 MiB blob"
    );
    let store = Store::open(dir.path()).unwrap();
    let only = store.blobs().list().unwrap().next().unwrap();
    assert_eq!(store.blobs().size(&only).unwrap(), 64 << 20);
}

/// `flock(1)` holding `<root>/lock` in a mode until its stdin closes.
struct Holder(Process);

impl Holder {
    fn hold(root: &Path, mode: &str) -> Holder {
        let mut flock = Process::spawn(
            Command::new("flock")
                .arg(mode)
                .arg(root.join(LOCK_FILE))
                .args(["-c", "echo held; read _"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let mut line = String::new();
        BufReader::new(flock.child().stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "held\n");
        Holder(flock)
    }

    fn release(mut self) {
        self.0
            .child()
            .stdin
            .take()
            .unwrap()
            .write_all(b"\n")
            .unwrap();
        assert!(self.0.wait().unwrap().success());
    }
}

/// `flock(1) mode, store operation => does the operation wait for flock to let go?`
/// A waiting operation calls the wait hook exactly once; blob writes never wait.
macro_rules! under_flock {
    ($($name:ident: $mode:expr, $op:ident => $waits:expr;)*) => {$(
        #[test]
        fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let told = Arc::new(AtomicUsize::new(0));
            let (tx, rx) = mpsc::channel();
            let store = {
                let (told, tx) = (told.clone(), tx.clone());
                Store::open(dir.path()).unwrap().with_lock_wait_hook(move |w| {
                    told.fetch_add(1, Ordering::SeqCst);
                    tx.send(w.to_string()).unwrap();
                })
            };
            let config = store.blobs().write(&b"{}"[..], Expected::Unknown).unwrap();
            let d = descriptor(&MediaType::OciConfig, &config.digest, config.size);

            let holder = Holder::hold(dir.path(), $mode);
            let worker = {
                let store = store.clone();
                let tx = tx.clone();
                std::thread::spawn(move || {
                    match stringify!($op) {
                        "tag" => store.tag(&r("app"), d).map(drop).unwrap(),
                        "list" => store.list().map(drop).unwrap(),
                        other => panic!("no operation {other}"),
                    }
                    tx.send("done".to_string()).unwrap();
                })
            };
            let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            // Blob writes take no lock, whoever holds it.
            store.blobs().write(&b"written meanwhile"[..], Expected::Unknown).unwrap();
            if $waits {
                assert!(
                    first.starts_with("waiting for the store lock held by another rbuild process"),
                    "{first}"
                );
                std::thread::sleep(Duration::from_millis(100));
                assert!(rx.try_recv().is_err(), "finished while the lock was held");
                holder.release();
                assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), "done");
            } else {
                assert_eq!(first, "done");
                holder.release();
            }
            worker.join().unwrap();
            assert_eq!(told.load(Ordering::SeqCst), usize::from($waits));
        }
    )*};
}

under_flock! {
    exclusive_flock_holds_up_tag: "--exclusive", tag => true;
    exclusive_flock_holds_up_list: "--exclusive", list => true;
    shared_flock_holds_up_tag: "--shared", tag => true;
    shared_flock_lets_list_through: "--shared", list => false;
}
