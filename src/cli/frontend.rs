//! The front-end half of `rbuild check` and `rbuild build`: locate and read the Dockerfile,
//! turn `--build-arg`/`--platform` into planner options, and plan.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rbuild::diag::Source;
use rbuild::oci::platform::Platform;
use rbuild::plan::{Options, Plan};

use super::args::FrontendArgs;

/// The Dockerfile to read: `-f FILE` (`-` = stdin), else `PATH/Dockerfile`, else
/// `PATH/Containerfile`.
pub(crate) fn dockerfile_path(file: Option<&Path>, context: &Path) -> PathBuf {
    let in_context = |name: &str| {
        if context == Path::new(".") {
            PathBuf::from(name)
        } else {
            context.join(name)
        }
    };
    match file {
        Some(f) => f.to_path_buf(),
        None => {
            // `Containerfile` when there is no `Dockerfile`, as podman and buildah read it.
            let dockerfile = in_context("Dockerfile");
            let containerfile = in_context("Containerfile");
            if !dockerfile.exists() && containerfile.exists() {
                containerfile
            } else {
                dockerfile
            }
        }
    }
}

/// Read the Dockerfile as text; invalid UTF-8 is replaced (and reported), as Docker reads
/// bytes.
pub(crate) fn read_dockerfile(path: &Path) -> anyhow::Result<Source> {
    let bytes = if path == Path::new("-") {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .context("reading the Dockerfile from standard input")?;
        b
    } else {
        std::fs::read(path).with_context(|| format!("reading Dockerfile {}", path.display()))?
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "warning: {} is not valid UTF-8 (at byte {}); invalid bytes are read as U+FFFD",
                path.display(),
                e.utf8_error().valid_up_to()
            );
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    let name = if path == Path::new("-") {
        "<stdin>".to_string()
    } else {
        path.display().to_string()
    };
    Ok(Source::new(name, text))
}

/// `--build-arg K=V`, or `K` to take the value from the environment (skipped when unset,
/// as docker does).
pub(crate) fn build_args(raw: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some(("", _)) => bail!("invalid --build-arg {a:?}: the name is empty"),
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

/// Planner options from the command line, for the first of the `--platform` list.
pub(crate) fn options(
    raw_args: &[String],
    target: Option<&str>,
    platforms: &[Platform],
) -> anyhow::Result<Options> {
    let target_platform = platforms.first().cloned().unwrap_or_else(Platform::host);
    Ok(Options {
        build_args: build_args(raw_args)?,
        target: target.map(str::to_string),
        build_platform: Platform::host(),
        target_platform,
        base_env: BTreeMap::new(),
        base_onbuild: BTreeMap::new(),
        named_contexts: BTreeMap::new(),
    })
}

/// The target platforms `--platform` names (a comma-separated list), or none.
pub(crate) fn platforms(args: &FrontendArgs) -> anyhow::Result<Vec<Platform>> {
    match args.platform.as_deref() {
        Some(list) => {
            Platform::parse_list(list).with_context(|| format!("invalid --platform {list:?}"))
        }
        None => Ok(Vec::new()),
    }
}

/// Read the Dockerfile and turn the flags into planner options (for the first target
/// platform) and the list of target platforms.
pub(crate) fn load(
    args: &FrontendArgs,
    context: &Path,
) -> anyhow::Result<(Source, Options, Vec<Platform>)> {
    let platforms = platforms(args)?;
    let path = dockerfile_path(args.file.as_deref(), context);
    let source = read_dockerfile(&path)?;
    let opts = options(&args.build_args, args.target.as_deref(), &platforms)?;
    Ok((source, opts, platforms))
}

/// Docker's warning for `--build-arg`s that no ARG declares, if there are any.
pub fn unused_build_args_warning(plan: &Plan) -> Option<String> {
    (!plan.unused_build_args.is_empty()).then(|| {
        format!(
            "warning: one or more build-args [{}] were not consumed: no ARG declares them",
            plan.unused_build_args.join(" ")
        )
    })
}
