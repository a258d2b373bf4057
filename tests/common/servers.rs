//! Local servers some build tests read from, each a [`Process`] stopped with its test:
//! Python's HTTP server over a directory, and `git daemon` over a bare repository made from
//! a work tree; and waiting for a port to answer.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::process::Process;
use super::registry::free_port;

/// Run `git args` in `dir` with a fixed author; panics with the output on failure.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

/// Serve `dir` over HTTP on loopback (Python's `http.server`); returns it and its port,
/// answering.
pub fn http(dir: &Path) -> (Process, u16) {
    let port = free_port();
    let server = Process::spawn(
        Command::new("python3")
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for_port(port);
    (server, port)
}

/// Commit the work tree `work` (a new repository on `main`, tagged `v1`), clone it bare as
/// `repos/repo.git` and serve `repos` with `git daemon` (`git` runs `git-daemon` as a child
/// of its own: the Process stops the group, both); returns it and its port, answering.
pub fn git_daemon(work: &Path, repos: &Path) -> (Process, u16) {
    git(work, &["init", "-q", "-b", "main"]);
    git(work, &["add", "."]);
    git(work, &["commit", "-q", "-m", "first"]);
    git(work, &["tag", "v1"]);
    std::fs::create_dir_all(repos).unwrap();
    git(
        repos,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
    let port = free_port();
    let daemon = Process::spawn(
        Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", repos.display()))
            .arg(repos)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_for_port(port);
    (daemon, port)
}

/// Wait (5 s at most) until something listens on loopback `port`.
pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
