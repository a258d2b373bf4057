//! Where a build's result goes: buildx's `-o`/`--output` syntax (`type=oci,dest=out.tar`,
//! `type=local,dest=dir`, the shorthand `-o dir`, `-o -` for a tar on standard output).
//! Every attribute is understood or refused: an output option is never silently ignored.

use std::path::PathBuf;

use crate::dockerfile::mount::fields;
use crate::oci::media_type::Compression;

/// What kind of output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The final stage's root filesystem, as files in `dest`.
    Local,
    /// The same as one tar stream.
    Tar,
    /// An OCI image layout, as an archive (`tar=true`, the default) or a directory.
    Oci { tar: bool },
    /// A docker-archive (`docker load`'s format).
    Docker,
    /// Tags in rbuild's store, pushed when `push`.
    Image { push: bool },
}

/// One `-o` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    pub kind: Kind,
    /// `None` for the image kind; `-` means standard output.
    pub dest: Option<PathBuf>,
    /// `name=` (comma-separated image names to give the result).
    pub names: Vec<String>,
    pub compression: Option<Compression>,
    pub compression_level: Option<i32>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid output {spec:?}: {message}")]
pub struct OutputSpecError {
    pub(crate) spec: String,
    pub(crate) message: String,
}

impl Output {
    /// Parse one `-o` value.
    pub fn parse(spec: &str) -> Result<Output, OutputSpecError> {
        let fail = |message: String| OutputSpecError {
            spec: spec.to_string(),
            message,
        };
        if !spec.contains('=') {
            // buildx: `-o -` is a tar of the files on stdout, `-o DIR` is type=local.
            let kind = if spec == "-" { Kind::Tar } else { Kind::Local };
            if spec.is_empty() {
                return Err(fail("empty output".into()));
            }
            return Ok(Output {
                kind,
                dest: Some(PathBuf::from(spec)),
                names: Vec::new(),
                compression: None,
                compression_level: None,
            });
        }
        let mut kind = None;
        let mut dest = None;
        let mut names = Vec::new();
        let mut tar = None;
        let mut push = None;
        let mut compression = None;
        let mut compression_level = None;
        for field in fields(spec) {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| fail(format!("{field:?} is not key=value")))?;
            let bool_value = |v: &str| match v {
                "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => Err(fail(format!("{key}={v}: expected true or false"))),
            };
            match key.to_lowercase().as_str() {
                "type" => kind = Some(value.to_string()),
                "dest" => dest = Some(PathBuf::from(value)),
                "name" => names.extend(value.split(',').map(str::to_string)),
                "tar" => tar = Some(bool_value(value)?),
                "push" => push = Some(bool_value(value)?),
                "compression" => {
                    compression = Some(Compression::from_name(value).ok_or_else(|| {
                        fail(format!(
                            "compression {value:?}: expected gzip, zstd or uncompressed"
                        ))
                    })?)
                }
                "compression-level" => {
                    compression_level = Some(value.parse().map_err(|_| {
                        fail(format!("compression-level {value:?} is not a number"))
                    })?)
                }
                other => {
                    return Err(fail(format!(
                        "unknown attribute {other:?} (rbuild knows type, dest, name, tar, push, compression, compression-level)"
                    )));
                }
            }
        }
        let kind = match kind.as_deref() {
            Some("local") => Kind::Local,
            Some("tar") => Kind::Tar,
            Some("oci") => Kind::Oci {
                tar: tar.unwrap_or(true),
            },
            Some("docker") => Kind::Docker,
            Some("image") => Kind::Image {
                push: push.unwrap_or(false),
            },
            Some("registry") => Kind::Image { push: true },
            Some(other) => {
                return Err(fail(format!(
                    "unknown type {other:?} (expected local, tar, oci, docker, image or registry)"
                )));
            }
            None => return Err(fail("missing type=".into())),
        };
        if tar.is_some() && !matches!(kind, Kind::Oci { .. }) {
            return Err(fail("tar= applies to type=oci only".into()));
        }
        if push.is_some() && !matches!(kind, Kind::Image { .. }) {
            return Err(fail("push= applies to type=image only".into()));
        }
        match kind {
            Kind::Image { .. } if dest.is_some() => {
                return Err(fail("type=image takes name=, not dest=".into()));
            }
            Kind::Image { push: true } if names.is_empty() => {
                return Err(fail("pushing needs name= (or -t)".into()));
            }
            Kind::Image { .. } => {}
            Kind::Docker | Kind::Tar => {
                if dest.is_none() {
                    return Err(fail("dest= is required (`-` for standard output)".into()));
                }
            }
            Kind::Oci { tar } => {
                if dest.is_none() {
                    return Err(fail("dest= is required".into()));
                }
                if !tar && dest.as_deref() == Some(std::path::Path::new("-")) {
                    return Err(fail(
                        "an OCI layout directory cannot go to standard output".into(),
                    ));
                }
            }
            Kind::Local => {
                if dest.is_none() {
                    return Err(fail("dest= is required".into()));
                }
                if dest.as_deref() == Some(std::path::Path::new("-")) {
                    return Err(fail(
                        "type=local writes a directory; use type=tar for standard output".into(),
                    ));
                }
            }
        }
        Ok(Output {
            kind,
            dest,
            names,
            compression,
            compression_level,
        })
    }

    /// Whether this output needs an image (manifest, config, layers) rather than files.
    #[cfg(test)]
    pub(crate) fn needs_image(&self) -> bool {
        matches!(
            self.kind,
            Kind::Oci { .. } | Kind::Docker | Kind::Image { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! parses {
        ($name:ident, $spec:expr, $kind:expr, $dest:expr) => {
            #[test]
            fn $name() {
                let o = Output::parse($spec).unwrap();
                assert_eq!(o.kind, $kind);
                assert_eq!(o.dest.as_deref(), $dest.map(std::path::Path::new));
            }
        };
    }

    macro_rules! refuses {
        ($name:ident, $spec:expr, $needle:expr) => {
            #[test]
            fn $name() {
                let e = Output::parse($spec).unwrap_err();
                assert!(e.to_string().contains($needle), "{e}");
            }
        };
    }

    parses!(shorthand_dir, "out", Kind::Local, Some("out"));
    parses!(shorthand_stdout, "-", Kind::Tar, Some("-"));
    parses!(local, "type=local,dest=d", Kind::Local, Some("d"));
    parses!(
        oci_tar_default,
        "type=oci,dest=x.tar",
        Kind::Oci { tar: true },
        Some("x.tar")
    );
    parses!(
        oci_dir,
        "type=oci,dest=x,tar=false",
        Kind::Oci { tar: false },
        Some("x")
    );
    parses!(docker, "type=docker,dest=-", Kind::Docker, Some("-"));
    parses!(
        image,
        "type=image,name=a:1",
        Kind::Image { push: false },
        None::<&str>
    );
    parses!(
        registry,
        "type=registry,name=r/a:1",
        Kind::Image { push: true },
        None::<&str>
    );
    parses!(
        quoted_names,
        "type=image,\"name=a:1,b:2\"",
        Kind::Image { push: false },
        None::<&str>
    );

    refuses!(
        unknown_attr,
        "type=oci,dest=x,oci-mediatypes=true",
        "unknown attribute \"oci-mediatypes\""
    );
    refuses!(unknown_type, "type=cacheonly", "unknown type");
    refuses!(no_type, "dest=x", "missing type=");
    refuses!(no_dest, "type=oci", "dest= is required");
    refuses!(
        tar_on_docker,
        "type=docker,dest=x,tar=false",
        "tar= applies to type=oci only"
    );
    refuses!(local_stdout, "type=local,dest=-", "use type=tar");
    refuses!(push_without_name, "type=image,push=true", "needs name=");
    refuses!(
        bad_compression,
        "type=oci,dest=x,compression=lz4",
        "compression \"lz4\""
    );

    #[test]
    fn names_and_compression() {
        let o = Output::parse("type=image,\"name=a:1,b:2\",compression=zstd,compression-level=9")
            .unwrap();
        assert_eq!(o.names, vec!["a:1", "b:2"]);
        assert_eq!(o.compression, Some(Compression::Zstd));
        assert_eq!(o.compression_level, Some(9));
        assert!(o.needs_image());
        assert!(!Output::parse("d").unwrap().needs_image());
    }
}
