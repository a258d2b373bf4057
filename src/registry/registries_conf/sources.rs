//! Which registries.conf files are read, in which order, and how they are merged
//! (containers-registries.conf(5) "DESCRIPTION", containers-registries.conf.d(5)
//! "CONFIGURATION PRECEDENCE"; c/image `newConfigWrapperWithHomeDir`, `dropInConfigs`,
//! `updateWithConfigurationFrom`).
//!
//! Owns: [`ConfigSources`] (the injectable set of paths), reading them, and the drop-in merge
//! rules. Must not interpret a file's contents (`file.rs`) or answer lookups (`registries_conf.rs`).
//!
//! The order, as the man pages give it:
//! 1. `$CONTAINERS_REGISTRIES_CONF` set: that file only, and it must exist. (c/image still
//!    reads the drop-in directories in that case; we do not, so that the variable pins the
//!    whole configuration — a test or CI job setting it gets exactly that file.)
//! 2. else, if `$HOME/.config/containers/registries.conf` exists: it, then
//!    `$HOME/.config/containers/registries.conf.d/*.conf`. The system file and directory are
//!    not read at all ("replaces"). c/image does this for every user, root included (root's
//!    `$HOME` is usually `/root`), and so do we.
//! 3. else `/etc/containers/registries.conf` (missing is fine: an empty configuration), then
//!    `/etc/containers/registries.conf.d/*.conf`, then `$HOME/.config/containers/registries.conf.d/*.conf`.
//!
//! Within a directory, only regular `*.conf` files (or links to them), sorted by name bytes;
//! sub-directories are not entered.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::file::{FileConf, parse_file};
use super::{ConfigError, RegistriesConf};

/// The files one configuration is read from. Build it with [`ConfigSources::from_env`] for
/// the real thing, or by hand (tests, `--registries-conf`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfigSources {
    /// The main `registries.conf`; may use the deprecated version 1 format.
    pub(crate) main: PathBuf,
    /// Whether a missing `main` is an error (it is when the user named the file).
    pub(crate) main_required: bool,
    /// Drop-in directories in reading order; each must use the version 2 format.
    pub(crate) drop_in_dirs: Vec<PathBuf>,
}

impl ConfigSources {
    /// Exactly one file, which must exist (`$CONTAINERS_REGISTRIES_CONF`).
    pub(crate) fn only(file: impl Into<PathBuf>) -> ConfigSources {
        ConfigSources {
            main: file.into(),
            main_required: true,
            drop_in_dirs: Vec::new(),
        }
    }

    /// Rules 2 and 3 of the header, for a system directory (normally `/etc/containers`) and
    /// a home directory. Checks whether the per-user file exists, nothing else.
    pub(crate) fn discover(system_dir: &Path, home: Option<&Path>) -> ConfigSources {
        let user_dir = home.map(|h| h.join(".config/containers"));
        if let Some(user_dir) = &user_dir {
            let user_file = user_dir.join("registries.conf");
            if user_file.exists() {
                return ConfigSources {
                    main: user_file,
                    main_required: false,
                    drop_in_dirs: vec![user_dir.join("registries.conf.d")],
                };
            }
        }
        let mut drop_in_dirs = vec![system_dir.join("registries.conf.d")];
        drop_in_dirs.extend(user_dir.map(|d| d.join("registries.conf.d")));
        ConfigSources {
            main: system_dir.join("registries.conf"),
            main_required: false,
            drop_in_dirs,
        }
    }

    /// The sources podman would use in this process's environment.
    pub(crate) fn from_env() -> ConfigSources {
        let var = |name| std::env::var_os(name).filter(|v: &OsString| !v.is_empty());
        match var("CONTAINERS_REGISTRIES_CONF") {
            Some(file) => ConfigSources::only(file),
            None => {
                let home = var("HOME").map(PathBuf::from);
                ConfigSources::discover(Path::new("/etc/containers"), home.as_deref())
            }
        }
    }
}

/// Read and merge every file of `sources` (see the header for the order).
pub(super) fn load(sources: &ConfigSources) -> Result<RegistriesConf, ConfigError> {
    let mut conf = RegistriesConf::default();
    match std::fs::read_to_string(&sources.main) {
        Ok(text) => {
            conf.merge(parse_file(&text, &sources.main, true)?);
            conf.files.push(sources.main.clone());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && !sources.main_required => {}
        Err(source) => {
            return Err(ConfigError::ReadFile {
                path: sources.main.clone(),
                source,
            });
        }
    }
    for dir in &sources.drop_in_dirs {
        for path in drop_ins(dir)? {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                // Removed between listing and reading: an expected race (c/image ignores it too).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ConfigError::ReadFile { path, source }),
            };
            conf.merge(parse_file(&text, &path, false)?);
            conf.files.push(path);
        }
    }
    Ok(conf)
}

/// The `*.conf` files directly in `dir`, sorted by name; a missing directory has none.
fn drop_ins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let fail = |source| ConfigError::ReadDropInDir {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fail(e)),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(fail)?.path();
        let is_conf = path.extension().is_some_and(|e| e == "conf");
        // `is_dir` follows links: a link to a directory is skipped, a link to a file kept.
        if is_conf && !path.is_dir() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

impl RegistriesConf {
    /// Apply one file on top of what earlier files said (containers-registries.conf.d(5)):
    /// a `[[registry]]` table replaces the one with the same prefix, a set
    /// `unqualified-search-registries` (even `[]`) or `short-name-mode` replaces the old value,
    /// aliases merge one by one and `""` erases.
    pub(super) fn merge(&mut self, file: FileConf) {
        for entry in file.registries {
            self.registries
                .insert(entry.prefix.as_str().to_string(), entry);
        }
        if let Some(search) = file.search {
            self.search = Some(search);
        }
        if let Some(mode) = file.short_name_mode {
            self.short_name_mode = mode;
        }
        for (name, alias) in file.aliases {
            match alias {
                Some(alias) => self.aliases.insert(name, alias),
                None => self.aliases.remove(&name),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::registries_conf::ShortNameMode;
    use std::fs;

    fn write(path: &Path, text: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    fn search(conf: &RegistriesConf) -> Vec<&str> {
        conf.unqualified_search_registries()
            .iter()
            .map(String::as_str)
            .collect()
    }

    /// `name: [(relative path, contents)…] => expected search list`, loaded through
    /// `discover(<tmp>/etc, Some(<tmp>/home))`.
    macro_rules! layered {
        ($($name:ident: [$(($path:expr, $text:expr)),* $(,)?] => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let tmp = tempfile::tempdir().unwrap();
                $( write(&tmp.path().join($path), $text); )*
                let sources = ConfigSources::discover(&tmp.path().join("etc"), Some(&tmp.path().join("home")));
                let conf = load(&sources).unwrap();
                let want: Vec<&str> = $want;
                assert_eq!(search(&conf), want);
            }
        )*};
    }

    layered! {
        nothing_at_all_is_empty: [] => vec![];
        system_file: [("etc/registries.conf", r#"unqualified-search-registries = ["a.io"]"#)] => vec!["a.io"];
        drop_in_overrides_system: [
            ("etc/registries.conf", r#"unqualified-search-registries = ["a.io"]"#),
            ("etc/registries.conf.d/10.conf", r#"unqualified-search-registries = ["b.io"]"#),
        ] => vec!["b.io"];
        drop_ins_in_name_order: [
            ("etc/registries.conf.d/20-b.conf", r#"unqualified-search-registries = ["b.io"]"#),
            ("etc/registries.conf.d/10-a.conf", r#"unqualified-search-registries = ["a.io"]"#),
        ] => vec!["b.io"];
        empty_list_overrides: [
            ("etc/registries.conf", r#"unqualified-search-registries = ["a.io"]"#),
            ("etc/registries.conf.d/10.conf", "unqualified-search-registries = []"),
        ] => vec![];
        unset_does_not_override: [
            ("etc/registries.conf", r#"unqualified-search-registries = ["a.io"]"#),
            ("etc/registries.conf.d/10.conf", r#"short-name-mode = "disabled""#),
        ] => vec!["a.io"];
        only_conf_files: [
            ("etc/registries.conf", r#"unqualified-search-registries = ["a.io"]"#),
            ("etc/registries.conf.d/10.conf.bak", r#"unqualified-search-registries = ["bak.io"]"#),
            ("etc/registries.conf.d/sub.conf/x.conf", r#"unqualified-search-registries = ["sub.io"]"#),
        ] => vec!["a.io"];
        user_drop_ins_after_system_ones: [
            ("home/.config/containers/registries.conf.d/00.conf", r#"unqualified-search-registries = ["user.io"]"#),
            ("etc/registries.conf.d/99.conf", r#"unqualified-search-registries = ["sys.io"]"#),
        ] => vec!["user.io"];
        user_file_replaces_system: [
            ("etc/registries.conf", r#"unqualified-search-registries = ["sys.io"]"#),
            ("etc/registries.conf.d/99.conf", r#"short-name-mode = "enforcing""#),
            ("home/.config/containers/registries.conf", "[aliases]\n"),
        ] => vec![];
        user_file_then_user_drop_ins: [
            ("home/.config/containers/registries.conf", r#"unqualified-search-registries = ["u.io"]"#),
            ("home/.config/containers/registries.conf.d/1.conf", r#"unqualified-search-registries = ["d.io"]"#),
        ] => vec!["d.io"];
        v1_main_file: [("etc/registries.conf", "[registries.search]\nregistries = ['r1.io', 'r2.io']\n")] => vec!["r1.io", "r2.io"];
    }

    #[test]
    fn registry_tables_merge_by_prefix_and_aliases_erase() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        write(
            &etc.join("registries.conf"),
            r#"
                short-name-mode = "enforcing"
                [aliases]
                "app" = "quay.io/org/app"
                "keep" = "quay.io/org/keep"
                [[registry]]
                prefix = "a.io"
                location = "mirror-a.io"
                [[registry]]
                location = "b.io"
                insecure = true
            "#,
        );
        write(
            &etc.join("registries.conf.d/50.conf"),
            r#"
                [aliases]
                "app" = ""
                [[registry]]
                prefix = "a.io"
                location = "other-a.io"
            "#,
        );
        let conf = load(&ConfigSources::discover(&etc, None)).unwrap();
        assert_eq!(conf.short_name_mode(), ShortNameMode::Enforcing);
        assert!(!conf.aliases.contains_key("app"));
        assert!(conf.aliases.contains_key("keep"));
        assert_eq!(
            conf.registries["a.io"].location.as_deref(),
            Some("other-a.io")
        );
        assert!(conf.registries["b.io"].insecure);
        assert_eq!(conf.files().len(), 2);
    }

    #[test]
    fn shortnames_drop_in_feeds_expansion() {
        // The shape distributions ship as /etc/containers/registries.conf.d/000-shortnames.conf,
        // with a later drop-in overriding one alias and erasing another.
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        write(
            &etc.join("registries.conf"),
            r#"unqualified-search-registries = ["registry.fedoraproject.org", "docker.io"]"#,
        );
        write(
            &etc.join("registries.conf.d/000-shortnames.conf"),
            "[aliases]\n  \"fedora\" = \"registry.fedoraproject.org/fedora\"\n  \"nginx\" = \"docker.io/library/nginx\"\n  \"php\" = \"docker.io/library/php\"\n",
        );
        write(
            &etc.join("registries.conf.d/50-site.conf"),
            "[aliases]\n\"nginx\" = \"quay.io/site/nginx\"\n\"php\" = \"\"\n",
        );
        let conf = load(&ConfigSources::discover(&etc, None)).unwrap();
        let expand = |name: &str| -> Vec<String> {
            conf.expand_short_name(name)
                .unwrap()
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(
            expand("fedora:40"),
            ["registry.fedoraproject.org/fedora:40"]
        );
        assert_eq!(expand("nginx"), ["quay.io/site/nginx"]);
        assert_eq!(
            expand("php:8"),
            [
                "registry.fedoraproject.org/php:8",
                "docker.io/library/php:8"
            ]
        );
    }

    #[test]
    fn named_file_only_and_required() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("mine.conf");
        write(&file, r#"unqualified-search-registries = ["mine.io"]"#);
        write(
            &tmp.path().join("registries.conf.d/1.conf"),
            r#"unqualified-search-registries = ["no.io"]"#,
        );
        let conf = load(&ConfigSources::only(&file)).unwrap();
        assert_eq!(search(&conf), ["mine.io"]);

        let missing = tmp.path().join("missing.conf");
        let err = load(&ConfigSources::only(&missing)).unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }));
        assert!(err.to_string().contains("missing.conf"), "{err}");
    }

    #[test]
    fn v1_in_a_drop_in_is_rejected_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        write(
            &etc.join("registries.conf.d/old.conf"),
            "[registries.search]\nregistries = ['a.io']\n",
        );
        let err = load(&ConfigSources::discover(&etc, None)).unwrap_err();
        assert!(matches!(err, ConfigError::V1DropIn { .. }), "{err:?}");
        assert!(err.to_string().contains("old.conf:1:2: drop-in"), "{err}");
    }

    #[test]
    fn discover_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        let home = tmp.path().join("home");
        let sources = ConfigSources::discover(&etc, Some(&home));
        assert_eq!(sources.main, etc.join("registries.conf"));
        assert_eq!(
            sources.drop_in_dirs,
            [
                etc.join("registries.conf.d"),
                home.join(".config/containers/registries.conf.d")
            ]
        );
        assert!(!sources.main_required);
        let no_home = ConfigSources::discover(&etc, None);
        assert_eq!(no_home.drop_in_dirs, [etc.join("registries.conf.d")]);
    }
}
