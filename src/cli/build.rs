//! `rbuild build`: turn the flags into a [`Request`], run it with the engine's
//! [`Builder`], and render what happened: lint findings before the build, the progress
//! while it runs, the image ID and names after.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use rbuild::engine::cache::{CacheDirection, CacheSpec};
use rbuild::engine::output::{Kind, Output};
use rbuild::engine::ssh::SshAgents;
use rbuild::engine::{self, BuildError, Builder, Request, SecretSource};
use rbuild::progress::Mode;
use rbuild::sandbox::Network;
use rbuild::sandbox::cgroup::Limits;

use super::args::BuildArgs;
use super::render::{BuildFailed, color_stderr, usage};
use super::{frontend, image};

pub fn run(mut args: BuildArgs, root: &std::path::Path) -> anyhow::Result<ExitCode> {
    // Not root: the build runs as root of a user namespace of its own, in a copy of this
    // process (docs/build.md, "Rootless builds"); this one only waits for it.
    if rbuild::sandbox::unshare::needed() {
        let quiet = args.quiet || args.progress == "quiet";
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(quiet)?);
    }
    let mode = if args.quiet {
        Mode::Quiet
    } else {
        Mode::parse(&args.progress)
            .with_context(|| {
                format!(
                    "invalid --progress {:?}: expected auto, tty, plain, rawjson or quiet",
                    args.progress
                )
            })
            .map_err(usage)?
    };
    // `-`, a Git URL or an http(s) URL: the context is fetched into a scratch directory,
    // removed when the build ends.
    let _scratch = match args.context.to_str() {
        Some(arg) if engine::context_source::is_remote(arg) => {
            let scratch = Scratch(
                std::env::temp_dir().join(format!("rbuild-context-{}", std::process::id())),
            );
            let fetched = engine::context_source::fetch(arg, &scratch.0).map_err(failed)?;
            args.frontend.file = match (&args.frontend.file, fetched.dockerfile) {
                // -f names a file inside a fetched context.
                (Some(f), _) if f.is_relative() => Some(fetched.context.join(f)),
                (Some(f), _) => Some(f.clone()),
                (None, d) => d,
            };
            args.context = fetched.context;
            Some(scratch)
        }
        _ => None,
    };
    engine::check_context(&args.context)?;
    let request = request(&args, root).map_err(usage)?;
    let builder = Builder::new(request).map_err(failed)?;
    // Ctrl-C (and SIGTERM) stop the RUN in progress and unwind, unmounting as they go.
    ctrlc::set_handler(engine::interrupt::interrupt).context("installing the Ctrl-C handler")?;
    let progress = mode.reporter();
    let started = Instant::now();
    let planned = builder.plan(progress.as_ref()).map_err(failed)?;
    for d in &planned.plan().lints {
        eprintln!("{}", d.render(color_stderr()));
    }
    if let Some(w) = frontend::unused_build_args_warning(planned.plan()) {
        eprintln!("{w}");
    }
    let outcome = planned.build(progress.as_ref()).map_err(failed)?;
    drop(progress);
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    let image_id = format!("sha256:{}", outcome.image_id.hex());
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &image_id)
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    if let Some(path) = &args.metadata_file {
        std::fs::write(path, metadata(&outcome)?)
            .with_context(|| format!("writing --metadata-file {}", path.display()))?;
    }
    // `-q` and `--progress=quiet` are the same (buildx): only the image ID, on stdout.
    if mode == Mode::Quiet {
        println!("{image_id}");
    } else {
        // What was made, and where it went: names, files, pushes.
        let mut said = Vec::new();
        if !outcome.tagged.is_empty() {
            let names: Vec<String> = outcome.tagged.iter().map(|n| n.to_string()).collect();
            said.push(format!("tagged {}", names.join(", ")));
        }
        for path in &outcome.written {
            said.push(format!("wrote {}", path.display()));
        }
        for (name, digest) in &outcome.pushed {
            said.push(format!("pushed {name}@{digest}"));
            if !outcome.tagged.contains(name) {
                said.push(format!(
                    "{name} not tagged here (its layers stay in the registry; `rbuild pull {name}` fetches them)"
                ));
            }
        }
        if outcome.fetched > 0 {
            said.push(format!(
                "{} layer(s) fetched from the imported cache",
                outcome.fetched
            ));
        }
        eprintln!(
            "built {image_id} in {:.1}s ({} step(s) run, {} cached){}",
            started.elapsed().as_secs_f64(),
            outcome.ran,
            outcome.cached,
            said.iter().map(|s| format!(", {s}")).collect::<String>()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--build-context NAME=VALUE`: a directory, or `docker-image://REF`.
fn named_context(spec: &str) -> anyhow::Result<(String, rbuild::plan::NamedContext)> {
    let (name, value) = spec
        .split_once('=')
        .with_context(|| format!("invalid --build-context {spec:?}: expected NAME=VALUE"))?;
    if name.is_empty() {
        bail!("invalid --build-context {spec:?}: the name is empty");
    }
    if let Some(reference) = value.strip_prefix("docker-image://") {
        rbuild::oci::reference::Reference::parse(reference).with_context(|| {
            format!("invalid --build-context {spec:?}: {reference:?} is not an image name")
        })?;
        return Ok((
            name.to_string(),
            rbuild::plan::NamedContext::Image(reference.to_string()),
        ));
    }
    if let Some(layout) = value.strip_prefix("oci-layout://") {
        // PATH[:TAG|@DIGEST]: the image is taken from the layout when the build needs it.
        let path = engine::oci_layout_dir(layout);
        if !std::path::Path::new(path).join("index.json").is_file() {
            bail!(
                "invalid --build-context {spec:?}: {path} is not an OCI image layout (no index.json)"
            );
        }
        let absolute = std::fs::canonicalize(path)?;
        let rest = &layout[path.len()..];
        return Ok((
            name.to_string(),
            rbuild::plan::NamedContext::Image(format!("oci-layout://{}{rest}", absolute.display())),
        ));
    }
    if let Some((scheme, _)) = value.split_once("://") {
        bail!(
            "--build-context {spec:?}: {scheme}:// contexts are not supported yet; give a local directory, docker-image://REF or oci-layout://PATH"
        );
    }
    let dir = std::fs::canonicalize(value)
        .ok()
        .filter(|d| d.is_dir())
        .with_context(|| format!("invalid --build-context {spec:?}: {value} is not a directory"))?;
    Ok((name.to_string(), rbuild::plan::NamedContext::Dir(dir)))
}

/// A directory removed when dropped.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `--metadata-file`: what buildx writes, under its keys.
fn metadata(outcome: &engine::Outcome) -> anyhow::Result<Vec<u8>> {
    let manifest = &outcome.manifest;
    let digest = rbuild::oci::manifest::descriptor_digest(manifest)?;
    let mut m = serde_json::Map::new();
    m.insert("containerimage.digest".into(), digest.to_string().into());
    m.insert(
        "containerimage.descriptor".into(),
        serde_json::json!({
            "mediaType": manifest.media_type().to_string(),
            "digest": digest.to_string(),
            "size": manifest.size(),
        }),
    );
    // An index has no one config: buildx leaves the key out then.
    if outcome.platforms.is_empty() {
        m.insert(
            "containerimage.config.digest".into(),
            outcome.image_id.to_string().into(),
        );
    }
    if !outcome.tagged.is_empty() {
        let names: Vec<String> = outcome.tagged.iter().map(|n| n.to_string()).collect();
        m.insert("image.name".into(), names.join(",").into());
    }
    Ok(serde_json::to_vec_pretty(&m)?)
}

/// A build error for the CLI: a step's diagnostic fails the build (exit 1), a Dockerfile
/// that cannot be built is a diagnostic (exit 2), anything else an error with its causes.
fn failed(e: BuildError) -> anyhow::Error {
    match e {
        BuildError::Step(d) => BuildFailed(*d).into(),
        BuildError::Dockerfile(d) => (*d).into(),
        other => other.into(),
    }
}

/// The flags as a build request. Bad tags and options fail before any work, as docker
/// build's do; such an error is the command line's (exit 2).
fn request(args: &BuildArgs, root: &std::path::Path) -> anyhow::Result<Request> {
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
    // SOURCE_DATE_EPOCH (reproducible-builds.org): history and config times, and every
    // mtime in the layers this build writes, clamped to it.
    let source_date_epoch: Option<i64> = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => Some(
            v.parse()
                .with_context(|| format!("invalid SOURCE_DATE_EPOCH {v:?}"))?,
        ),
        _ => None,
    };
    let network = match args.network.as_str() {
        "default" | "host" => Network::Host,
        "none" => Network::None,
        other => bail!("invalid --network {other:?}: expected default, host or none"),
    };
    let limits = Limits {
        memory: args
            .memory
            .as_deref()
            .map(rbuild::dockerfile::units::parse_ram_size)
            .transpose()
            .context("invalid --memory")?,
        cpus: args.cpus,
        pids: args.pids_limit,
    };
    let snapshotter = args
        .snapshotter
        .as_deref()
        .map(rbuild::snapshot::snapshotter::Kind::parse)
        .transpose()?;
    let mut insecure = false;
    for entitlement in &args.allow {
        match entitlement.as_str() {
            "security.insecure" => insecure = true,
            // RUN may use the host's network without asking (it is the default network).
            "network.host" => {}
            other => bail!("invalid --allow {other:?}: expected security.insecure or network.host"),
        }
    }
    for (flag, value) in [("--provenance", &args.provenance), ("--sbom", &args.sbom)] {
        if let Some(v) = value
            && !matches!(v.as_str(), "false" | "0")
        {
            bail!(
                "{flag}={v}: rbuild makes no attestations yet; drop the flag, or pass {flag}=false (what rbuild does)"
            );
        }
    }
    let mut labels = std::collections::BTreeMap::new();
    for l in &args.labels {
        // `--label KEY` is an empty value, as docker takes it.
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        if k.is_empty() {
            bail!("invalid --label {l:?}: the key is empty");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    let mut extra_hosts = Vec::new();
    for h in &args.add_hosts {
        // NAME:IP (the IP may be IPv6, with colons of its own), or NAME=IP as buildx allows.
        let (name, ip) = h
            .split_once('=')
            .or_else(|| h.split_once(':'))
            .with_context(|| format!("invalid --add-host {h:?}: expected NAME:IP"))?;
        if name.is_empty() || ip.parse::<std::net::IpAddr>().is_err() {
            bail!("invalid --add-host {h:?}: expected NAME:IP, with an IPv4 or IPv6 address");
        }
        extra_hosts.push((name.to_string(), ip.to_string()));
    }
    let shm_size = args
        .shm_size
        .as_deref()
        .map(rbuild::dockerfile::units::parse_ram_size)
        .transpose()
        .context("invalid --shm-size")?;
    let ulimits = args
        .ulimits
        .iter()
        .map(|u| rbuild::sandbox::Ulimit::parse(u).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let secrets = secrets(&args.secret)?;
    let ssh = SshAgents::parse(&args.ssh, std::env::var_os("SSH_AUTH_SOCK"))?;
    let cache_from = cache_specs(&args.cache_from, CacheDirection::From)?;
    let cache_to = cache_specs(&args.cache_to, CacheDirection::To)?;
    let isolation =
        rbuild::engine::isolation::Isolation::parse(&args.isolation).map_err(anyhow::Error::msg)?;
    let (source, mut plan, platforms) = frontend::load(&args.frontend, &args.context)?;
    for spec in &args.build_contexts {
        let (name, context) = named_context(spec)?;
        plan.named_contexts.insert(name, context);
    }
    plan.build_platform = rbuild::oci::platform::Platform::host();
    let dockerfile_path = Some(frontend::dockerfile_path(
        args.frontend.file.as_deref(),
        &args.context,
    ))
    .filter(|f| f.as_os_str() != "-");
    Ok(Request {
        dockerfile_path,
        plan,
        platforms,
        no_cache: args.no_cache,
        pull: args.pull,
        network,
        secrets,
        ssh,
        limits,
        extra_hosts,
        shm_size,
        ulimits,
        labels,
        source_date_epoch,
        snapshotter,
        allow_insecure: insecure,
        tags,
        outputs,
        cache_from,
        cache_to,
        isolation,
        ..Request::new(root.to_path_buf(), args.context.clone(), source)
    })
}

fn cache_specs(specs: &[String], direction: CacheDirection) -> anyhow::Result<Vec<CacheSpec>> {
    Ok(specs
        .iter()
        .map(|s| CacheSpec::parse(s, direction))
        .collect::<Result<_, _>>()?)
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
