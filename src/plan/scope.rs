//! Variable scopes for word expansion: the global scope of meta ARGs (before the first
//! FROM, visible only to FROM lines), and each stage's scope of declared ARGs overlaid by
//! ENV (ENV wins). Automatic platform ARGs and the predefined proxy ARGs live here too.

use std::collections::BTreeMap;

use crate::dockerfile::shell::Env;
use crate::oci::platform::Platform;

/// The proxy variables Docker passes through from `--build-arg` without an `ARG`, and keeps
/// out of the image history.
pub(crate) const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The automatic platform ARGs (BuildKit): available to FROM lines without a declaration,
/// and inside a stage once declared with `ARG NAME`.
pub(crate) fn platform_args(build: &Platform, target: &Platform) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (prefix, p) in [("BUILD", build), ("TARGET", target)] {
        m.insert(format!("{prefix}PLATFORM"), p.specifier());
        m.insert(format!("{prefix}OS"), p.os.clone());
        m.insert(format!("{prefix}ARCH"), p.architecture.clone());
        m.insert(
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        );
    }
    m
}

/// A stage's variables: declared ARGs (value or declared-unset) and ENV.
#[derive(Clone, Debug, Default)]
pub(crate) struct StageScope {
    pub(crate) args: BTreeMap<String, Option<String>>,
    pub(crate) env: Vec<(String, String)>,
}

impl StageScope {
    pub(crate) fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }

    pub(crate) fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for StageScope {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.env_value(name)
            .or_else(|| self.args.get(name).and_then(|v| v.as_deref()))
    }
}

/// The global scope: meta ARGs and the automatic platform ARGs.
#[derive(Clone, Debug, Default)]
pub(crate) struct GlobalScope {
    pub(crate) values: BTreeMap<String, String>,
    /// Meta ARGs declared (with or without a value), for UndefinedArgInFrom.
    pub(crate) declared: BTreeMap<String, Option<String>>,
}

impl Env for GlobalScope {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}
