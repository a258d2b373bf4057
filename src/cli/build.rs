//! `rbuild build`: read and plan the Dockerfile, run the build, then write the outputs:
//! tags in the local store (the default, and `type=image`), pushes, archives and files.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use rbuild::diag::Diagnostic;
use rbuild::engine::output::{Kind, Output};
use rbuild::engine::{self, Options, SecretSource};
use rbuild::layer::LayerOptions;
use rbuild::oci::reference::Reference;
use rbuild::progress::{Event, Mode, Reporter};
use rbuild::sandbox::Network;
use rbuild::sandbox::cgroup::Limits;
use rbuild::sandbox::ssh::SshAgents;

use super::args::BuildArgs;
use super::{color_stderr, frontend, image};

/// A build that failed at a Dockerfile location (a RUN's exit code, a COPY source that is
/// not there): shown like a syntax error, but the exit code says the build failed (1).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct BuildFailed(pub Diagnostic);

pub fn run(args: BuildArgs, root: &std::path::Path) -> anyhow::Result<ExitCode> {
    // Not root: the build runs as root of a user namespace of its own, in a copy of this
    // process (docs/build.md, "Rootless builds"); this one only waits for it.
    if rbuild::sandbox::unshare::needed() {
        let quiet = args.quiet || args.progress == "quiet";
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(quiet)?);
    }
    if !args.context.is_dir() {
        bail!(
            "build context {} is not a directory",
            args.context.display()
        );
    }
    // Bad tags and options fail before any work, as docker build's do.
    let mut tags = Vec::new();
    for tag in &args.tags {
        tags.push(image::local_name(tag).with_context(|| format!("-t {tag}"))?);
    }
    let mut outputs = args
        .outputs
        .iter()
        .map(|o| Output::parse(o))
        .collect::<Result<Vec<_>, _>>()?;
    if args.push {
        outputs.push(Output {
            kind: Kind::Image { push: true },
            dest: None,
            names: Vec::new(),
            compression: None,
            compression_level: None,
        });
    }
    let mode = if args.quiet {
        Mode::Quiet
    } else {
        Mode::parse(&args.progress).with_context(|| {
            format!(
                "invalid --progress {:?}: expected auto, tty, plain, rawjson or quiet",
                args.progress
            )
        })?
    };
    let compression = {
        let mut chosen = outputs.iter().filter_map(|o| o.compression);
        let first = chosen.next();
        if chosen.any(|c| Some(c) != first) {
            bail!(
                "outputs ask for different compressions; rbuild writes one set of layers per build"
            );
        }
        first
    };
    let level = outputs.iter().find_map(|o| o.compression_level);
    // SOURCE_DATE_EPOCH (reproducible-builds.org): history and config times, and every
    // mtime in the layers this build writes, clamped to it.
    let source_date_epoch: Option<i64> = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse()
                .with_context(|| format!("invalid SOURCE_DATE_EPOCH {v:?}"))?,
        ),
        _ => None,
    };
    let opts = Options {
        state_root: root.to_path_buf(),
        context: args.context.clone(),
        dockerfile: Some(frontend::dockerfile_path(
            args.frontend.file.as_deref(),
            &args.context,
        ))
        .filter(|f| f.as_os_str() != "-"),
        no_cache: args.no_cache,
        pull: args.pull,
        network: match args.network.as_str() {
            "default" | "host" => Network::Host,
            "none" => Network::None,
            other => bail!("invalid --network {other:?}: expected default, host or none"),
        },
        secrets: secrets(&args.secret)?,
        ssh: SshAgents::parse(&args.ssh, std::env::var_os("SSH_AUTH_SOCK"))?,
        limits: Limits {
            memory: args
                .memory
                .as_deref()
                .map(rbuild::dockerfile::units::parse_ram_size)
                .transpose()
                .context("invalid --memory")?,
            cpus: args.cpus,
            pids: args.pids_limit,
        },
        layer: LayerOptions {
            compression: compression.unwrap_or(LayerOptions::default().compression),
            level,
            source_date_epoch,
            ..LayerOptions::default()
        },
        source_date_epoch,
        platform: rbuild::oci::platform::Platform::host(),
        snapshotter: args
            .snapshotter
            .as_deref()
            .map(rbuild::snapshot::snapshotter::Kind::parse)
            .transpose()?,
    };

    let (source, mut plan_opts) = frontend::load(&args.frontend, &args.context)?;
    let opts = Options {
        platform: plan_opts.target_platform.clone(),
        ..opts
    };
    plan_opts.build_platform = rbuild::oci::platform::Platform::host();
    // A first plan finds the stages and their base images (and stops a Dockerfile that
    // cannot be built before anything is pulled); the plan that builds then knows the
    // base images' ENV, as BuildKit expands words with it.
    let first = rbuild::plan::plan(&source, &plan_opts)?;
    let store = image::open_store(root)?;
    // Held until the outputs are written: a prune waits for this build.
    let _running = engine::builds_lock(root).shared()?;
    // Ctrl-C (and SIGTERM) stop the RUN in progress and unwind, unmounting as they go.
    ctrlc::set_handler(engine::interrupt::interrupt).context("installing the Ctrl-C handler")?;
    let progress = mode.reporter();
    let started = Instant::now();
    let failed = |e: engine::BuildError| -> anyhow::Error {
        match e {
            engine::BuildError::Step(d) => BuildFailed(*d).into(),
            other => other.into(),
        }
    };
    let bases =
        engine::resolve_bases(&first, &source, &opts, &store, progress.as_ref()).map_err(failed)?;
    plan_opts.base_env = bases.env();
    plan_opts.base_onbuild = bases.onbuild();
    let plan = rbuild::plan::plan(&source, &plan_opts)?;
    for d in &plan.lints {
        eprintln!("{}", d.render(color_stderr()));
    }
    if plan.lint_failed() {
        bail!("lint errors (# check=error=true): the build did not start");
    }
    if let Some(w) = frontend::unused_build_args_warning(&plan) {
        eprintln!("{w}");
    }
    let built =
        engine::build(&plan, &source, &opts, &store, progress.as_ref(), bases).map_err(failed)?;
    let mut id = built.next_id - 1;
    let mut vertex = |name: String| {
        id += 1;
        progress.event(Event::Start { id, name });
        let t = Instant::now();
        (id, t)
    };
    let done = |progress: &dyn Reporter, (id, t): (usize, Instant)| {
        progress.event(Event::Done {
            id,
            elapsed: t.elapsed(),
        })
    };

    // Tags: -t names, and type=image names.
    let mut names: Vec<Reference> = tags.clone();
    let mut push: Vec<Reference> = Vec::new();
    for o in &outputs {
        if let Kind::Image { push: p } = o.kind {
            let mut these = Vec::new();
            for n in &o.names {
                these.push(image::local_name(n).with_context(|| format!("-o name={n}"))?);
            }
            if these.is_empty() {
                these = tags.clone();
            }
            if p {
                if these.is_empty() {
                    bail!("--push needs a name: pass -t NAME");
                }
                for n in &these {
                    if !push.contains(n) {
                        push.push(n.clone());
                    }
                }
            }
            for n in these {
                if !names.contains(&n) {
                    names.push(n);
                }
            }
        }
    }
    for name in &names {
        let v = vertex(format!("naming to {name}"));
        store.tag(name, built.manifest.clone())?;
        done(progress.as_ref(), v);
    }
    for o in outputs
        .iter()
        .filter(|o| !matches!(o.kind, Kind::Image { .. }))
    {
        let v = vertex(format!(
            "exporting to {}",
            o.dest
                .as_deref()
                .unwrap_or(std::path::Path::new("-"))
                .display()
        ));
        engine::output::write::write(&store, root, &built, o, names.first())?;
        done(progress.as_ref(), v);
    }
    for name in &push {
        let v = vertex(format!("pushing {name}"));
        let id = v.0;
        let say = |message: String| {
            progress.event(Event::Status {
                id,
                message: message.trim_start().to_string(),
            })
        };
        image::push_image(&store, name, name, None, &say)?;
        done(progress.as_ref(), v);
    }
    drop(progress);
    let image_id = format!("sha256:{}", built.config_digest.hex());
    // `-q` and `--progress=quiet` are the same (buildx): only the image ID, on stdout.
    if mode == Mode::Quiet {
        println!("{image_id}");
    } else {
        eprintln!(
            "built {image_id} in {:.1}s ({} step(s) run, {} cached){}",
            started.elapsed().as_secs_f64(),
            built.ran,
            built.cached,
            if names.is_empty() {
                String::new()
            } else {
                format!(
                    ", tagged {}",
                    names
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--secret id=ID[,src=FILE|,env=VAR][,type=file|env]`, as buildx reads it; a bare
/// `id=ID` takes the environment variable ID when it is set, else the file ID.
fn secrets(specs: &[String]) -> anyhow::Result<BTreeMap<String, SecretSource>> {
    let mut out = BTreeMap::new();
    for spec in specs {
        let mut id = None;
        let mut src = None;
        let mut env = None;
        let mut kind = None;
        for field in rbuild::dockerfile::mount::fields(spec) {
            let (k, v) = field.split_once('=').with_context(|| {
                format!("invalid --secret {spec:?}: {field:?} is not key=value")
            })?;
            match k {
                "id" => id = Some(v.to_string()),
                "src" | "source" => src = Some(v.to_string()),
                "env" => env = Some(v.to_string()),
                "type" => kind = Some(v.to_string()),
                other => {
                    bail!("invalid --secret {spec:?}: unknown key {other:?} (id, src, env, type)")
                }
            }
        }
        let id = id.with_context(|| format!("invalid --secret {spec:?}: id= is required"))?;
        let source = match (kind.as_deref(), src, env) {
            (Some("env"), Some(v), None) | (_, None, Some(v)) => SecretSource::Env(v),
            (Some("env"), None, None) => SecretSource::Env(id.clone()),
            (Some("file") | None, Some(f), None) => SecretSource::File(f.into()),
            (None, None, None) if std::env::var_os(&id).is_some() => SecretSource::Env(id.clone()),
            (Some("file") | None, None, None) => SecretSource::File(id.clone().into()),
            (Some(t), _, _) if t != "file" && t != "env" => {
                bail!("invalid --secret {spec:?}: type must be file or env")
            }
            _ => bail!("invalid --secret {spec:?}: give src= or env=, not both"),
        };
        out.insert(id, source);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_specs() {
        let s = secrets(&[
            "id=a,src=/f".into(),
            "id=b,env=VAR".into(),
            "id=c,type=env".into(),
            "id=d,type=file,source=/g".into(),
        ])
        .unwrap();
        assert_eq!(s["a"], SecretSource::File("/f".into()));
        assert_eq!(s["b"], SecretSource::Env("VAR".into()));
        assert_eq!(s["c"], SecretSource::Env("c".into()));
        assert_eq!(s["d"], SecretSource::File("/g".into()));
        for bad in [
            "src=/f",
            "id=a,src=/f,env=V",
            "id=a,type=tcp,src=x",
            "id=a,nope=1",
        ] {
            assert!(secrets(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
