//! Which credential files are read and written, and which `PATH` finds credential helpers:
//! containers-auth.json(5)'s order (c/image `getAuthFilePaths`, `getPathToAuthWithOS`),
//! with Docker's file last. The list and its reasons are in `credentials.rs`'s header.
//!
//! Owns: [`CredentialSources`] and the [`CredentialEnv`] it is derived from, so that tests
//! (which run in parallel) inject paths instead of changing the process environment. Must
//! not open any file.

use std::ffi::OsString;
use std::path::PathBuf;

/// Where credentials are read from and written to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CredentialSources {
    /// Files to read, in order (the list in `credentials.rs`'s header); missing ones are skipped.
    pub(crate) files: Vec<PathBuf>,
    /// The file `store` and `erase` edit: Docker's `config.json`, or `$REGISTRY_AUTH_FILE`
    /// when that is set (so that what `rbuild login` stores is what `lookup` reads).
    pub(crate) write_file: PathBuf,
    /// The `PATH` searched for `docker-credential-<name>`; `None` finds no helper.
    pub(crate) helper_path: Option<OsString>,
}

/// The environment [`CredentialSources::discover`] works from (each `None` when unset or
/// empty).
#[derive(Clone, Debug, Default)]
pub(crate) struct CredentialEnv {
    pub(crate) registry_auth_file: Option<PathBuf>,
    pub(crate) xdg_runtime_dir: Option<PathBuf>,
    pub(crate) xdg_config_home: Option<PathBuf>,
    pub(crate) docker_config: Option<PathBuf>,
    pub(crate) home: Option<PathBuf>,
    pub(crate) uid: u32,
    pub(crate) path: Option<OsString>,
}

impl CredentialEnv {
    /// This process's environment.
    pub(crate) fn from_process() -> CredentialEnv {
        let var = |name| std::env::var_os(name).filter(|v: &OsString| !v.is_empty());
        let dir = |name| var(name).map(PathBuf::from);
        CredentialEnv {
            registry_auth_file: dir("REGISTRY_AUTH_FILE"),
            xdg_runtime_dir: dir("XDG_RUNTIME_DIR"),
            xdg_config_home: dir("XDG_CONFIG_HOME"),
            docker_config: dir("DOCKER_CONFIG"),
            home: dir("HOME"),
            // The user's own uid, also as root of a rootless build's user namespace.
            uid: crate::sys::userns::host_uid(),
            path: var("PATH"),
        }
    }
}

impl CredentialSources {
    /// The files of the header's list for `env`.
    pub(crate) fn discover(env: &CredentialEnv) -> CredentialSources {
        let helper_path = env.path.clone();
        if let Some(file) = &env.registry_auth_file {
            return CredentialSources {
                files: vec![file.clone()],
                write_file: file.clone(),
                helper_path,
            };
        }
        let primary = match &env.xdg_runtime_dir {
            Some(dir) => dir.join("containers/auth.json"),
            None => PathBuf::from(format!("/run/containers/{}/auth.json", env.uid)),
        };
        let config_home = env
            .xdg_config_home
            .clone()
            .or_else(|| env.home.as_ref().map(|h| h.join(".config")));
        let docker = env
            .docker_config
            .clone()
            .or_else(|| env.home.as_ref().map(|h| h.join(".docker")))
            .map(|d| d.join("config.json"));
        let mut files = vec![primary.clone()];
        files.extend(config_home.map(|d| d.join("containers/auth.json")));
        files.extend(docker.clone());
        CredentialSources {
            files,
            // Without HOME or DOCKER_CONFIG there is no Docker file; podman's is next best.
            write_file: docker.unwrap_or(primary),
            helper_path,
        }
    }

    /// [`CredentialSources::discover`] for this process.
    pub(crate) fn from_env() -> CredentialSources {
        CredentialSources::discover(&CredentialEnv::from_process())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn discover_follows_containers_auth_json() {
        let env = CredentialEnv {
            home: Some("/home/u".into()),
            uid: 1000,
            path: Some("/usr/bin".into()),
            ..CredentialEnv::default()
        };
        let got = CredentialSources::discover(&env);
        let want: Vec<PathBuf> = [
            "/run/containers/1000/auth.json",
            "/home/u/.config/containers/auth.json",
            "/home/u/.docker/config.json",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got.files, want);
        assert_eq!(got.write_file, Path::new("/home/u/.docker/config.json"));
        assert_eq!(
            got.helper_path.as_deref(),
            Some(std::ffi::OsStr::new("/usr/bin"))
        );

        let root = CredentialEnv {
            uid: 0,
            home: None,
            ..env.clone()
        };
        assert_eq!(
            CredentialSources::discover(&root).files,
            [PathBuf::from("/run/containers/0/auth.json")]
        );

        let xdg = CredentialEnv {
            xdg_runtime_dir: Some("/run/user/1000".into()),
            xdg_config_home: Some("/cfg".into()),
            docker_config: Some("/dcfg".into()),
            ..env.clone()
        };
        let got = CredentialSources::discover(&xdg);
        let want: Vec<PathBuf> = [
            "/run/user/1000/containers/auth.json",
            "/cfg/containers/auth.json",
            "/dcfg/config.json",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got.files, want);
        assert_eq!(got.write_file, Path::new("/dcfg/config.json"));

        let explicit = CredentialEnv {
            registry_auth_file: Some("/a/auth.json".into()),
            ..xdg
        };
        let got = CredentialSources::discover(&explicit);
        assert_eq!(got.files, [PathBuf::from("/a/auth.json")]);
        assert_eq!(got.write_file, Path::new("/a/auth.json"));
    }
}
