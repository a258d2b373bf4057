//! The state root: `--root DIR`, else `$RBUILD_ROOT`, else `/var/lib/rbuild` for root and
//! `$XDG_DATA_HOME/rbuild` (or `~/.local/share/rbuild`) for everyone else.

use std::path::PathBuf;

/// What the default depends on, gathered from the process so the rule stays pure.
pub struct RootInputs {
    pub uid: u32,
    pub xdg_data_home: Option<PathBuf>,
    pub home: Option<PathBuf>,
}

impl RootInputs {
    pub fn from_process() -> RootInputs {
        let non_empty = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        RootInputs {
            uid: rustix::process::getuid().as_raw(),
            xdg_data_home: non_empty("XDG_DATA_HOME"),
            home: non_empty("HOME"),
        }
    }
}

/// The default state root (used when neither `--root` nor `RBUILD_ROOT` is given).
pub fn default_root(inputs: &RootInputs) -> Result<PathBuf, String> {
    if inputs.uid == 0 {
        return Ok(PathBuf::from("/var/lib/rbuild"));
    }
    // XDG Base Directory spec: a relative $XDG_DATA_HOME is invalid and must be ignored.
    if let Some(x) = inputs.xdg_data_home.as_ref().filter(|p| p.is_absolute()) {
        return Ok(x.join("rbuild"));
    }
    match &inputs.home {
        Some(h) => Ok(h.join(".local/share/rbuild")),
        None => Err("cannot choose a state directory: HOME is not set; pass --root DIR".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(uid: u32, xdg: Option<&str>, home: Option<&str>) -> RootInputs {
        RootInputs {
            uid,
            xdg_data_home: xdg.map(PathBuf::from),
            home: home.map(PathBuf::from),
        }
    }

    #[test]
    fn root_user_uses_var_lib() {
        let got = default_root(&inputs(0, Some("/x"), Some("/root"))).unwrap();
        assert_eq!(got, PathBuf::from("/var/lib/rbuild"));
    }

    #[test]
    fn user_prefers_xdg_data_home() {
        let got = default_root(&inputs(1000, Some("/data"), Some("/home/u"))).unwrap();
        assert_eq!(got, PathBuf::from("/data/rbuild"));
    }

    #[test]
    fn relative_xdg_is_ignored() {
        let got = default_root(&inputs(1000, Some("rel"), Some("/home/u"))).unwrap();
        assert_eq!(got, PathBuf::from("/home/u/.local/share/rbuild"));
    }

    #[test]
    fn no_home_is_an_error() {
        assert!(default_root(&inputs(1000, None, None)).is_err());
    }
}
