//! `rbuild login` / `logout` against a real registry with htpasswd Basic auth: credentials
//! are checked before they are stored, stored where docker reads them, used by pull, removed.

use std::io::Write;
use std::process::Stdio;

use crate::common::process::Process;
use crate::common::registry::{Registry, skopeo_push, umoci_busybox};
use crate::common::require;
use crate::common::{describe, mirror_conf, rbuild_cmd, rbuild_in, temp_home};

fn login(
    home: &std::path::Path,
    conf: &std::path::Path,
    registry: &str,
    password: &str,
) -> std::process::Output {
    let mut login = Process::spawn(
        rbuild_cmd(home, conf)
            .args(["login", "-u", "tester", "--password-stdin", registry])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    login
        .child()
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    login.wait_with_output().unwrap()
}

#[test]
fn login_checks_stores_and_logout_removes() {
    if !require::tools(&["docker-registry", "skopeo", "umoci", "htpasswd"]) {
        return;
    }
    let reg = Registry::start(Some(("tester", "s3cret")));
    let home = temp_home("cli-login");
    umoci_busybox(&home.join("layout"), "1");
    let image = format!("{}/private/box:1", reg.addr);
    skopeo_push(&home.join("layout"), "1", &image, Some("tester:s3cret"));
    let conf = mirror_conf(&home, "127.0.0.1:1", &[&reg.addr]);

    let denied = rbuild_in(&home, &conf, &["pull", "-q", &image]);
    assert_eq!(
        denied.status.code(),
        Some(1),
        "{}",
        describe(&["pull"], &denied)
    );
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains(&format!("rbuild login {}", reg.addr)),
        "{}",
        describe(&["pull"], &denied)
    );

    let wrong = login(&home, &conf, &reg.addr, "nope");
    assert_eq!(
        wrong.status.code(),
        Some(1),
        "{}",
        describe(&["login"], &wrong)
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("refused these credentials"));
    assert!(
        !home.join("docker/config.json").exists(),
        "nothing stored for a failed login"
    );

    let ok = login(&home, &conf, &reg.addr, "s3cret");
    assert!(ok.status.success(), "{}", describe(&["login"], &ok));
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "Login Succeeded"
    );
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(home.join("docker/config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["auths"][&reg.addr]["auth"], "dGVzdGVyOnMzY3JldA==",
        "{cfg}"
    );

    let pulled = rbuild_in(&home, &conf, &["pull", "-q", &image]);
    assert!(pulled.status.success(), "{}", describe(&["pull"], &pulled));

    let out = rbuild_in(&home, &conf, &["logout", &reg.addr]);
    assert!(out.status.success(), "{}", describe(&["logout"], &out));
    let again = rbuild_in(&home, &conf, &["pull", "-q", &image]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "credentials are gone: {}",
        describe(&["pull"], &again)
    );
    let out = rbuild_in(&home, &conf, &["logout", &reg.addr]);
    assert_eq!(out.status.code(), Some(1));
    let _ = std::fs::remove_dir_all(&home);
}
