//! Build contexts that are not a local directory, as `docker build` takes them: `-` (the
//! Dockerfile alone, or a tar of the context, on standard input), a Git URL
//! (`https://host/repo.git#ref:subdir`, `git@host:repo`), or an `http(s)://` URL of a tarball
//! or of a Dockerfile. Each becomes a directory under a scratch directory of the caller's,
//! with archives unpacked by ADD's rules for hostile archives and Git checked out as ADD
//! checks it out.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::BuildError;
use super::remote::Remote;

/// A context made from something other than a local directory.
#[derive(Debug)]
pub struct Fetched {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile when it came alone (from standard input or a URL), outside the
    /// context, as docker keeps it out of the context.
    pub dockerfile: Option<PathBuf>,
}

/// Whether `arg` names a context that [`fetch`] makes: `-` or a remote URL.
pub fn is_remote(arg: &str) -> bool {
    arg == "-" || Remote::parse(arg).is_some()
}

/// Make the context `arg` names (`-`, a Git URL or an http(s) URL) under `scratch`, a new
/// directory the caller removes afterwards.
pub fn fetch(arg: &str, scratch: &Path) -> Result<Fetched, BuildError> {
    let files = |what: String| move |source| BuildError::Files { what, source };
    std::fs::create_dir_all(scratch).map_err(files(format!("creating {}", scratch.display())))?;
    let context = scratch.join("context");
    std::fs::create_dir_all(&context).map_err(files(format!("creating {}", context.display())))?;
    let one_file = if arg == "-" {
        let path = scratch.join("stdin");
        let mut out =
            std::fs::File::create(&path).map_err(files(format!("creating {}", path.display())))?;
        std::io::copy(&mut std::io::stdin().lock(), &mut out)
            .map_err(files("reading the context from standard input".into()))?;
        path
    } else {
        let remote = Remote::parse(arg).ok_or_else(|| {
            BuildError::Request(format!(
                "{arg} is not a URL rbuild can fetch a context from"
            ))
        })?;
        let fetched = scratch.join("fetched");
        let rel = remote.fetch(&fetched, None, false).map_err(|e| {
            BuildError::Request(format!(
                "fetching the build context {arg}: {}",
                crate::diag::chain(&e)
            ))
        })?;
        let got = fetched.join(rel);
        if got.is_dir() {
            return Ok(Fetched {
                context: got,
                dockerfile: None,
            });
        }
        got
    };
    // A tar (maybe compressed) is the context; anything else is the Dockerfile alone, with
    // an empty context.
    let unpacked = super::copy::unpack_archive(&one_file, &context).map_err(|e| {
        BuildError::Request(format!(
            "unpacking the build context {arg}: {}",
            crate::diag::chain(&e)
        ))
    })?;
    if unpacked {
        let _ = std::fs::remove_file(&one_file);
        return Ok(Fetched {
            context,
            dockerfile: None,
        });
    }
    let dockerfile = scratch.join("Dockerfile");
    std::fs::rename(&one_file, &dockerfile)
        .map_err(files(format!("moving {}", one_file.display())))?;
    // Not to be taken for an empty read of a pipe that was never connected.
    let mut first = [0u8; 1];
    let empty = std::fs::File::open(&dockerfile)
        .and_then(|mut f| f.read(&mut first))
        .map(|n| n == 0)
        .unwrap_or(true);
    if empty {
        return Err(BuildError::Request(format!(
            "the build context {arg} is empty: give a Dockerfile or a tar of the context"
        )));
    }
    Ok(Fetched {
        context,
        dockerfile: Some(dockerfile),
    })
}
