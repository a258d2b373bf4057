//! registries.conf (`registry::registries_conf`, containers-registries.conf(5)) from any
//! text, and where it sends image references.
//!
//! Input: the file's text, a NUL, then image references, one a line (a few fixed ones are
//! always tried).
//!
//! Invariants:
//! - parsing and resolving are deterministic;
//! - a pull goes to the usable mirrors, then to the primary location: never no endpoint,
//!   exactly one non-mirror and that one last; every endpoint's reference is canonical (it
//!   reads back as itself);
//! - a push goes to the reference itself, never a mirror; it is refused only when the table
//!   is blocked, so a refused push means a refused pull, and a pull refused as blocked means
//!   a refused push.

use std::path::Path;

use rbuild::oci::Reference;
use rbuild::registry::registries_conf::{ConfigError, RegistriesConf};

const REFERENCES: &[&str] = &[
    "busybox",
    "docker.io/library/busybox:1.36",
    "quay.io/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "localhost:5000/a/b:c",
    "example.com/x",
];

pub fn check(data: &[u8]) {
    let parts = super::parts(data, 2);
    let text = String::from_utf8_lossy(parts[0]).into_owned();
    let path = Path::new("/etc/containers/registries.conf");
    let conf = RegistriesConf::parse(&text, path);
    assert_eq!(
        format!("{conf:?}"),
        format!("{:?}", RegistriesConf::parse(&text, path)),
        "parsing is not deterministic"
    );
    let Ok(conf) = conf else {
        return;
    };

    let extra = parts
        .get(1)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default();
    let names = REFERENCES.iter().copied().chain(extra.split('\n'));
    for name in names {
        let Ok(reference) = Reference::parse(name) else {
            continue;
        };
        let pull = conf.pull_endpoints(&reference);
        assert_eq!(
            format!("{pull:?}"),
            format!("{:?}", conf.pull_endpoints(&reference)),
            "resolving {reference} is not deterministic"
        );
        let push = conf.push_endpoint(&reference);
        if let Ok(endpoints) = &pull {
            let (last, mirrors) = endpoints.split_last().expect("a pull with no endpoint");
            assert!(
                !last.is_mirror(),
                "{reference}: the last endpoint is a mirror"
            );
            assert!(
                mirrors.iter().all(|e| e.is_mirror()),
                "{reference}: a primary before a mirror"
            );
            for e in endpoints {
                let written = e.reference().to_string();
                let read = Reference::parse(&written).unwrap_or_else(|err| {
                    panic!("{reference}: endpoint {written:?} does not parse: {err}")
                });
                assert_eq!(
                    read.to_string(),
                    written,
                    "{reference}: endpoint {written:?} is not canonical"
                );
            }
        }
        match &push {
            Ok(e) => {
                assert_eq!(
                    e.reference(),
                    &reference,
                    "a push went elsewhere than {reference}"
                );
                assert!(!e.is_mirror(), "a push of {reference} went to a mirror");
            }
            Err(e) => {
                assert!(
                    matches!(e, ConfigError::Blocked { .. }),
                    "push refused for another reason: {e}"
                );
                assert!(
                    pull.is_err(),
                    "push of {reference} refused ({e}) but pull allowed"
                );
            }
        }
        if let Err(ConfigError::Blocked { .. }) = &pull {
            assert!(
                push.is_err(),
                "pull of {reference} blocked but push allowed"
            );
        }
    }
}
