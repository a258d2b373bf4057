//! `rbuild run`: `docker run`'s flags turned into an [`engine::container::RunRequest`]; the
//! process's exit status becomes rbuild's (128 + N for a signal, as a shell reports it).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use rbuild::engine;
use rbuild::engine::container::RunRequest;
use rbuild::sandbox::{Bind, Network};

use super::args::RunArgs;
use super::image::platform_or_host;

pub(crate) fn run_cmd(root: &Path, args: RunArgs) -> anyhow::Result<ExitCode> {
    // -t: docker allocates a terminal; rbuild gives the process its own, so one is needed.
    if args.tty && !rustix::termios::isatty(std::io::stdout()) {
        bail!(
            "-t: rbuild run gives the process its own terminal (it allocates none), and standard output is not one; run without -t"
        );
    }
    if args.detach {
        bail!("rbuild run does not detach: the run ends with its process (use `&` in the shell)");
    }
    // Not root: the run happens as root of a user namespace of its own, as builds do.
    if rbuild::sandbox::unshare::needed() {
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(true)?);
    }
    let request = request(root, &args).map_err(super::render::usage)?;
    ctrlc::set_handler(engine::interrupt::interrupt).context("installing the Ctrl-C handler")?;
    let status = engine::container::run(&request, &|line| eprintln!("{line}"))
        .map_err(anyhow::Error::from)?;
    if engine::interrupt::interrupted() {
        return Ok(ExitCode::from(130));
    }
    Ok(exit_code(status))
}

fn request(root: &Path, args: &RunArgs) -> anyhow::Result<RunRequest> {
    let (image, command) = args
        .image_and_command
        .split_first()
        .context("rbuild run needs an image")?;
    let network = match args.network.as_str() {
        "host" | "default" => Network::Host,
        "none" => Network::None,
        other => bail!("invalid --network {other:?}: expected host or none"),
    };
    let mut env = Vec::new();
    for e in &args.env {
        match e.split_once('=') {
            Some(("", _)) => bail!("invalid -e {e:?}: the name is empty"),
            Some(_) => env.push(e.clone()),
            // `-e KEY` takes the value from this environment, and is dropped without one.
            None => {
                if let Ok(v) = std::env::var(e) {
                    env.push(format!("{e}={v}"));
                }
            }
        }
    }
    let volumes = args
        .volumes
        .iter()
        .map(|v| volume(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let publish = args
        .publish
        .iter()
        .map(|p| port(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(RunRequest {
        state_root: root.to_path_buf(),
        image: image.clone(),
        platform: platform_or_host(args.platform.as_deref())?,
        args: command.to_vec(),
        entrypoint: args.entrypoint.clone(),
        env,
        volumes,
        workdir: args.workdir.clone(),
        user: args.user.clone(),
        network,
        publish,
        stdin: args.interactive,
    })
}

/// `-v SRC:DST[:ro|:rw]`: a host path (made absolute) bound at an absolute DST.
fn volume(spec: &str) -> anyhow::Result<Bind> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, readonly) = match parts.as_slice() {
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        _ => bail!(
            "invalid -v {spec:?}: expected SRC:DST or SRC:DST:ro (named volumes are not supported)"
        ),
    };
    if !(src.starts_with('/') || src.starts_with('.')) {
        bail!(
            "invalid -v {spec:?}: {src:?} names a volume, and named volumes are not supported: give a host path (absolute, or starting with ./)"
        );
    }
    if !dst.starts_with('/') {
        bail!("invalid -v {spec:?}: the destination {dst:?} must be an absolute path");
    }
    let source = std::fs::canonicalize(src)
        .with_context(|| format!("invalid -v {spec:?}: {src} (a host path, which must exist)"))?;
    Ok(Bind {
        source,
        target: dst.to_string(),
        readonly,
    })
}

/// `-p HOST:CONTAINER` or `-p PORT` (TCP; an address or `/udp` is refused).
fn port(spec: &str) -> anyhow::Result<(u16, u16)> {
    let number = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .with_context(|| format!("invalid -p {spec:?}: {s:?} is not a port number"))
    };
    match spec.split(':').collect::<Vec<_>>().as_slice() {
        [one] => Ok((number(one)?, number(one)?)),
        [host, inside] => Ok((number(host)?, number(inside)?)),
        _ => bail!("invalid -p {spec:?}: expected HOST:CONTAINER or PORT (TCP on all addresses)"),
    }
}

/// The process's status as rbuild's exit code: its own code, or 128 + the signal.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c.clamp(0, 255) as u8),
        (None, Some(s)) => ExitCode::from((128 + s).clamp(0, 255) as u8),
        _ => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_volumes_parse_as_docker_writes_them() {
        assert_eq!(port("5000:80").unwrap(), (5000, 80));
        assert_eq!(port("8080").unwrap(), (8080, 8080));
        assert!(port("127.0.0.1:1:2").is_err());
        assert!(port("0").is_err());
        let v = volume("/tmp:/data:ro").unwrap();
        assert_eq!((v.target.as_str(), v.readonly), ("/data", true));
        assert!(volume("/tmp:data").is_err());
        assert!(volume("name:/data").is_err(), "a named volume is refused");
    }
}
