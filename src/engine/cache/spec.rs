//! Where a build cache travels: buildx's `--cache-from` and `--cache-to` syntax
//! (`type=registry,ref=REF,mode=max`, `type=local,dest=DIR`, `type=local,src=DIR`, a bare
//! `REF` for a registry). Every attribute is understood or refused: a cache option is never
//! silently ignored.

use std::path::PathBuf;

use crate::dockerfile::mount::fields;
use crate::oci::media_type::Compression;
use crate::oci::reference::Reference;

/// Which records an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// The steps of the final image (buildx's default).
    #[default]
    Min,
    /// Every step of every stage the build ran or took from a cache.
    Max,
}

/// Which `RUN --mount=type=cache` directories an export carries (`mounts=`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Mounts {
    #[default]
    None,
    /// Every cache mount the build used.
    All,
    /// These ids (a mount's `id=`, or its target when it has none).
    Ids(Vec<String>),
}

impl Mounts {
    /// Whether the cache mount whose id is `id` is carried.
    pub fn includes(&self, id: &str) -> bool {
        match self {
            Mounts::None => false,
            Mounts::All => true,
            Mounts::Ids(ids) => ids.iter().any(|i| i == id),
        }
    }
}

/// Where the cache is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A tag in a registry repository.
    Registry(Reference),
    /// An OCI image layout directory.
    Local(PathBuf),
    /// In the built image's manifest (`--cache-to type=inline`): `--cache-from IMAGE` reads
    /// it back.
    Inline,
}

/// One `--cache-from` or `--cache-to` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheSpec {
    pub location: Location,
    /// Export: which records.
    pub mode: Mode,
    /// Export: a failure to write the cache is a warning rather than a failed build.
    /// (Imports always only warn.)
    pub ignore_error: bool,
    /// Export: the compression asked for; the cache holds the build's own layers, so it
    /// must be theirs (checked by the builder).
    pub compression: Option<Compression>,
    /// Local import: the cache of this tag in the layout's `index.json` (default `latest`).
    /// Local export: the tag to write.
    pub tag: String,
    /// Export: the cache mounts whose contents travel too.
    pub mounts: Mounts,
}

/// Whether a spec is read from (`--cache-from`) or written to (`--cache-to`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    From,
    To,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {flag} {spec:?}: {message}")]
pub struct CacheSpecError {
    flag: &'static str,
    spec: String,
    message: String,
}

impl CacheSpec {
    /// Parse one value of `--cache-from` (`direction` From) or `--cache-to`.
    pub fn parse(spec: &str, direction: Direction) -> Result<CacheSpec, CacheSpecError> {
        let flag = match direction {
            Direction::From => "--cache-from",
            Direction::To => "--cache-to",
        };
        let fail = |message: String| CacheSpecError {
            flag,
            spec: spec.to_string(),
            message,
        };
        let registry = |r: &str| {
            Reference::parse(r)
                .map(|r| Location::Registry(r.with_default_tag()))
                .map_err(|e| fail(format!("ref={r}: {}", crate::diag::chain(&e))))
        };
        let mut out = CacheSpec {
            location: Location::Local(PathBuf::new()),
            mode: Mode::Min,
            ignore_error: false,
            compression: None,
            tag: "latest".into(),
            mounts: Mounts::None,
        };
        // buildx: a value without `=` is a registry reference.
        if !spec.contains('=') {
            if spec.is_empty() {
                return Err(fail("empty value".into()));
            }
            out.location = registry(spec)?;
            return Ok(out);
        }
        let mut kind = None;
        let (mut reference, mut dir) = (None, None);
        let mut last_key = String::new();
        let mut tag_given = false;
        for field in fields(spec) {
            // `mounts=pip,npm`: a bare word after `mounts=` is one more id.
            if !field.contains('=')
                && last_key == "mounts"
                && let Mounts::Ids(ids) = &mut out.mounts
            {
                ids.push(mount_id(&field).map_err(&fail)?);
                continue;
            }
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| fail(format!("{field:?} is not key=value")))?;
            last_key = key.to_string();
            let bool_value = |v: &str| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(fail(format!("{key}={v}: expected true or false"))),
            };
            match key {
                "type" => kind = Some(value.to_string()),
                "ref" => reference = Some(value.to_string()),
                "dest" if direction == Direction::To => dir = Some(PathBuf::from(value)),
                "src" if direction == Direction::From => dir = Some(PathBuf::from(value)),
                "tag" => {
                    if value.is_empty()
                        || !value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        return Err(fail(format!(
                            "tag={value}: expected a tag ([A-Za-z0-9._-])"
                        )));
                    }
                    out.tag = value.to_string();
                    tag_given = true;
                }
                "mode" if direction == Direction::To => {
                    out.mode = match value {
                        "min" => Mode::Min,
                        "max" => Mode::Max,
                        _ => return Err(fail(format!("mode={value}: expected min or max"))),
                    }
                }
                "ignore-error" if direction == Direction::To => {
                    out.ignore_error = bool_value(value)?
                }
                "compression" if direction == Direction::To => {
                    out.compression = Some(Compression::from_name(value).ok_or_else(|| {
                        fail(format!(
                            "compression={value}: expected gzip, zstd or uncompressed"
                        ))
                    })?)
                }
                "mounts" if direction == Direction::To => {
                    out.mounts = match value {
                        "all" => Mounts::All,
                        // Quoted, one field holds them all: `"mounts=pip,npm"`.
                        v => Mounts::Ids(
                            v.split(',')
                                .map(mount_id)
                                .collect::<Result<_, _>>()
                                .map_err(&fail)?,
                        ),
                    }
                }
                // rbuild always writes OCI media types in an image manifest, which is what
                // these ask for; asking otherwise is refused.
                "oci-mediatypes" | "image-manifest" if direction == Direction::To => {
                    if !bool_value(value)? {
                        return Err(fail(format!(
                            "{key}=false: rbuild writes its cache as an OCI image index and manifest only"
                        )));
                    }
                }
                _ => {
                    let accepted = match direction {
                        Direction::From => "type, ref, src, tag",
                        Direction::To => {
                            "type, ref, dest, tag, mode, mounts, ignore-error, compression, oci-mediatypes, image-manifest"
                        }
                    };
                    return Err(fail(format!(
                        "unknown or unsupported attribute {key:?} (accepted: {accepted})"
                    )));
                }
            }
        }
        out.location = match kind.as_deref() {
            Some("registry") => {
                if dir.is_some() {
                    return Err(fail("type=registry takes ref=, not a directory".into()));
                }
                registry(
                    &reference.ok_or_else(|| fail("type=registry needs ref=NAME:TAG".into()))?,
                )?
            }
            Some("local") => {
                if reference.is_some() {
                    return Err(fail("type=local takes a directory, not ref=".into()));
                }
                let key = match direction {
                    Direction::From => "src",
                    Direction::To => "dest",
                };
                Location::Local(dir.ok_or_else(|| fail(format!("type=local needs {key}=DIR")))?)
            }
            Some(t @ ("gha" | "s3" | "azblob")) => {
                return Err(fail(format!(
                    "type={t} is not supported: use type=registry (any OCI registry, ECR and GHCR included) or type=local"
                )));
            }
            Some("inline") if direction == Direction::To => {
                if reference.is_some() || dir.is_some() {
                    return Err(fail(
                        "type=inline goes in the image: it takes no ref= or dest=".into(),
                    ));
                }
                if out.mode == Mode::Max || out.mounts != Mounts::None {
                    return Err(fail(
                        "type=inline holds the final image's own steps only (mode=min, no mounts=): use type=registry for mode=max or mounts"
                            .into(),
                    ));
                }
                Location::Inline
            }
            Some("inline") => {
                return Err(fail(
                    "type=inline is written by --cache-to; read it with --cache-from IMAGE (type=registry,ref=IMAGE)"
                        .into(),
                ));
            }
            Some(t) => {
                return Err(fail(format!(
                    "unknown type {t:?}: expected registry or local"
                )));
            }
            None => return Err(fail("missing type= (registry or local)".into())),
        };
        if tag_given && !matches!(out.location, Location::Local(_)) {
            return Err(fail(
                "tag= names a cache in a local directory; a registry cache's tag is in ref=NAME:TAG".into(),
            ));
        }
        Ok(out)
    }

    /// How the location is shown in progress and warnings.
    pub fn shown(&self) -> String {
        match &self.location {
            Location::Registry(r) => r.to_string(),
            Location::Local(d) => format!("{} (local)", d.display()),
            Location::Inline => "the image (inline)".into(),
        }
    }
}

/// One id of `mounts=`.
fn mount_id(v: &str) -> Result<String, String> {
    if v.is_empty() {
        return Err("mounts=: expected all, or cache mount ids separated by commas".into());
    }
    if v == "all" {
        return Err("mounts=all cannot be combined with ids".into());
    }
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(s: &str) -> Result<CacheSpec, CacheSpecError> {
        CacheSpec::parse(s, Direction::To)
    }
    fn from(s: &str) -> Result<CacheSpec, CacheSpecError> {
        CacheSpec::parse(s, Direction::From)
    }

    #[test]
    fn registry_specs_with_their_attributes() {
        let s =
            to("type=registry,ref=localhost:5000/app:cache,mode=max,ignore-error=true").unwrap();
        assert_eq!(
            s.location,
            Location::Registry(Reference::parse("localhost:5000/app:cache").unwrap())
        );
        assert_eq!((s.mode, s.ignore_error), (Mode::Max, true));
        // A bare reference is a registry cache; no tag means latest.
        let s = from("localhost:5000/app").unwrap();
        assert_eq!(
            s.location,
            Location::Registry(Reference::parse("localhost:5000/app:latest").unwrap())
        );
        assert_eq!(s.mode, Mode::Min);
        assert_eq!(
            to("type=registry,ref=r/a:c,compression=zstd")
                .unwrap()
                .compression,
            Some(Compression::Zstd)
        );
        assert!(to("type=registry,ref=r/a:c,oci-mediatypes=true,image-manifest=true").is_ok());
    }

    #[test]
    fn mounts_name_all_or_ids() {
        assert_eq!(to("type=registry,ref=r/a:c").unwrap().mounts, Mounts::None);
        assert_eq!(
            to("type=registry,ref=r/a:c,mounts=all").unwrap().mounts,
            Mounts::All
        );
        // Ids after `mounts=` as the syntax writes them, and quoted as CSV.
        for spec in [
            "type=registry,ref=r/a:c,mounts=pip,/root/.npm,mode=max",
            "type=registry,ref=r/a:c,\"mounts=pip,/root/.npm\",mode=max",
        ] {
            let s = to(spec).unwrap();
            assert_eq!(
                s.mounts,
                Mounts::Ids(vec!["pip".into(), "/root/.npm".into()]),
                "{spec}"
            );
            assert_eq!(s.mode, Mode::Max);
            assert!(s.mounts.includes("pip") && !s.mounts.includes("go"));
        }
        for (spec, said) in [
            ("type=registry,ref=r/a:c,mounts=", "expected all"),
            (
                "type=registry,ref=r/a:c,mounts=pip,all",
                "cannot be combined",
            ),
            ("type=registry,ref=r/a:c,mode=max,pip", "not key=value"),
        ] {
            let e = to(spec).unwrap_err().to_string();
            assert!(e.contains(said), "{spec}: {e}");
        }
        assert!(from("type=registry,ref=r/a:c,mounts=all").is_err());
    }

    #[test]
    fn local_specs_read_src_and_write_dest() {
        let s = to("type=local,dest=/tmp/c,tag=main").unwrap();
        assert_eq!(s.location, Location::Local("/tmp/c".into()));
        assert_eq!(s.tag, "main");
        assert_eq!(
            from("type=local,src=/tmp/c").unwrap().location,
            Location::Local("/tmp/c".into())
        );
        assert!(
            from("type=local,dest=/tmp/c")
                .unwrap_err()
                .to_string()
                .contains("unknown or unsupported attribute \"dest\"")
        );
        assert!(
            to("type=local")
                .unwrap_err()
                .to_string()
                .contains("dest=DIR")
        );
    }

    #[test]
    fn what_is_not_understood_is_refused_with_the_reason() {
        for (spec, said) in [
            ("type=registry", "needs ref="),
            ("type=registry,ref=a:b,mode=all", "expected min or max"),
            (
                "type=registry,ref=a:b,ignore-error=maybe",
                "expected true or false",
            ),
            ("type=gha", "not supported"),
            ("type=inline,mode=max", "mode=min, no mounts="),
            ("type=inline,ref=a:b", "takes no ref="),
            ("type=s4", "unknown type"),
            ("ref=a:b", "missing type="),
            (
                "type=registry,ref=a:b,oci-mediatypes=false",
                "OCI image index",
            ),
            ("type=registry,ref=a:b,mode", "not key=value"),
            ("type=local,dest=d,tag=a/b", "expected a tag"),
            (
                "type=registry,ref=a:b,tag=c",
                "tag= names a cache in a local directory",
            ),
            ("type=registry,ref=UPPER:b", "ref=UPPER:b"),
            ("", "empty value"),
        ] {
            let e = to(spec).unwrap_err().to_string();
            assert!(e.contains(said), "{spec}: {e}");
            assert!(e.starts_with("invalid --cache-to"), "{e}");
        }
        // Export-only attributes are refused on import.
        assert!(from("type=registry,ref=a:b,mode=max").is_err());
        assert!(
            from("type=inline")
                .unwrap_err()
                .to_string()
                .contains("--cache-from IMAGE")
        );
        assert_eq!(to("type=inline").unwrap().location, Location::Inline);
    }
}
