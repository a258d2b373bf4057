//! clap definitions. Flag names and meanings follow `docker build` / `docker buildx build`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "rbuild",
    version,
    about = "Build OCI container images from Dockerfiles, without a daemon",
    after_help = "With no subcommand, rbuild builds: `rbuild -t app:1 .` is `rbuild build -t app:1 .`

Rootless: run as any user, rbuild builds as root of a user namespace of its own. Files owned
by other ids (chown, COPY --chown, USER 1000) need a subordinate id range for that user:
  sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $USER
and newuidmap/newgidmap (Debian: apt-get install uidmap). Without one, only root is mapped.

Exit codes: 0 success; 1 the build or command failed; 2 the command line or the
Dockerfile's syntax is wrong. State lives under --root, $RBUILD_ROOT, /var/lib/rbuild (root)
or ~/.local/share/rbuild."
)]
pub(crate) struct Cli {
    /// State directory (image store, build cache, logs)
    #[arg(long, global = true, env = "RBUILD_ROOT", value_name = "DIR")]
    pub(crate) root: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Build an image from a Dockerfile and a context directory
    #[command(after_help = "Examples:
  rbuild build -t app:1 .                        build ./Dockerfile, tag app:1 in the local store
  rbuild build -f docker/Dockerfile.prod -t app .  another Dockerfile
  rbuild build --build-arg VERSION=2 --target test .
  rbuild build -o type=oci,dest=app.tar .        an OCI archive (type=docker for docker load)
  rbuild build -o out/ .                         the final root filesystem as files
  rbuild build --platform linux/amd64,linux/arm64 --push -t registry.example.com/app:1 .
  rbuild build --secret id=npm,src=$HOME/.npmrc --ssh default .
  rbuild build - < Dockerfile                    the Dockerfile from standard input, no context
  rbuild build https://github.com/org/repo.git#main:app   a Git context")]
    Build(Box<BuildArgs>),
    /// Parse and lint a Dockerfile without building (like `docker build --check`)
    Check(CheckArgs),
    /// Pull an image from a registry into the local store
    Pull(PullArgs),
    /// List the images in the local store
    Images(ImagesArgs),
    /// Push an image from the local store to a registry
    Push(PushArgs),
    /// Give an image in the local store another name
    Tag(TagArgs),
    /// Remove image names from the local store (content is freed by `prune`)
    Rmi(RmiArgs),
    /// Show an image's digest, manifest and config as JSON
    Inspect(InspectArgs),
    /// Write images to an archive (docker-archive, oci-archive) or an OCI layout directory
    Save(SaveArgs),
    /// Load images from a docker-archive or oci-archive
    Load(LoadArgs),
    /// Log in to a registry (credentials are checked, then stored where docker and podman read them)
    Login(LoginArgs),
    /// Remove stored credentials for a registry
    Logout(LogoutArgs),
    /// Delete blobs and snapshots that no image name references, and say what was freed
    Prune(PruneArgs),
    /// Run an image's command once, in the build sandbox, for smoke tests (always --rm)
    Run(RunArgs),
    /// Print rbuild's version and the commit it was built from
    Version,
    /// What images, the build cache, cache mounts and snapshots take on disk, and what
    /// prune would free (docker's `system df`)
    Df,
    /// Check the store: every blob against its digest, every image name against its
    /// manifests and layers, every snapshot against its layer (exit 0 sound, 1 repaired,
    /// 4 problems left)
    Fsck(FsckArgs),
}

#[derive(Debug, Args)]
pub(crate) struct FsckArgs {
    /// Mend what can be mended: remove corrupt blobs, snapshots and cache records and what
    /// killed runs left, and pull again by digest the images that lost content
    #[arg(long)]
    pub(crate) repair: bool,
}

#[derive(Debug, Args)]
#[command(trailing_var_arg = true)]
pub(crate) struct RunArgs {
    /// Accepted for docker's habit: every run is removed when it exits
    #[arg(long)]
    pub(crate) rm: bool,
    /// Set an environment variable (`KEY=VALUE`, or `KEY` to take it from this environment)
    #[arg(short = 'e', long = "env", value_name = "KEY[=VALUE]")]
    pub(crate) env: Vec<String>,
    /// Bind a host path (`SRC:DST[:ro]`; SRC absolute or relative to here)
    #[arg(short = 'v', long = "volume", value_name = "SRC:DST[:ro]")]
    pub(crate) volumes: Vec<String>,
    /// Working directory inside (default: the image's WORKDIR)
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub(crate) workdir: Option<String>,
    /// User (`name|uid[:group|gid]`; default: the image's USER)
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub(crate) user: Option<String>,
    /// Replace the image's ENTRYPOINT (an empty string clears it)
    #[arg(long, value_name = "COMMAND")]
    pub(crate) entrypoint: Option<String>,
    /// `host` (the default: the host's network) or `none`
    #[arg(long, value_name = "MODE", default_value = "host")]
    pub(crate) network: String,
    /// Publish a TCP port: `HOST:CONTAINER` (a relay on the host) or `PORT`
    #[arg(short = 'p', long = "publish", value_name = "HOST:CONTAINER")]
    pub(crate) publish: Vec<String>,
    /// Run the image for this platform (another architecture runs under QEMU emulation)
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    /// Pass standard input to the process (else it reads /dev/null)
    #[arg(short = 'i', long)]
    pub(crate) interactive: bool,
    /// Use rbuild's own terminal (rbuild allocates none; standard output must be one)
    #[arg(short = 't', long)]
    pub(crate) tty: bool,
    /// Not supported: runs are never detached
    #[arg(short = 'd', long)]
    pub(crate) detach: bool,
    /// The image, then the command and its arguments (default: the image's CMD)
    #[arg(value_name = "IMAGE", required = true, num_args = 1.., allow_hyphen_values = true)]
    pub(crate) image_and_command: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Also remove the build cache (step records, cache mounts, native snapshotter trees,
    /// build logs), as `docker builder prune -a` does; plain prune keeps it
    #[arg(long = "build-cache", short = 'a', visible_alias = "all")]
    pub(crate) build_cache: bool,
    /// Keep unreferenced blobs younger than this (a pull or build may be about to tag them)
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    pub(crate) grace: humantime::Duration,
    /// Instead: remove the least recently used build cache, cache mounts and snapshots
    /// until they take at most SIZE together (`10GB`, `500m`), sparing what running builds
    /// use, as `docker builder prune --keep-storage` says it does
    #[arg(
        long = "keep-storage",
        value_name = "SIZE",
        conflicts_with = "build_cache"
    )]
    pub(crate) keep_storage: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    #[arg(short, long)]
    pub(crate) username: Option<String>,
    /// The password (prefer --password-stdin: command lines are visible to other users)
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub(crate) password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub(crate) password_stdin: bool,
    /// The registry (`ghcr.io`, `localhost:5000`; default: Docker Hub)
    #[arg(value_name = "REGISTRY", default_value = "docker.io")]
    pub(crate) registry: String,
}

#[derive(Debug, Args)]
pub(crate) struct LogoutArgs {
    #[arg(value_name = "REGISTRY", default_value = "docker.io")]
    pub(crate) registry: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum SaveFormat {
    DockerArchive,
    OciArchive,
    OciDir,
}

#[derive(Debug, Args)]
pub(crate) struct SaveArgs {
    /// Write to this file (directory for oci-dir) instead of standard output
    #[arg(short, long, value_name = "PATH")]
    pub(crate) output: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = SaveFormat::DockerArchive)]
    pub(crate) format: SaveFormat,
    /// Save only this platform of a multi-platform image (default: the whole image where all its
    /// platforms are local and the format is OCI, else this host's platform)
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    #[arg(value_name = "IMAGE", required = true)]
    pub(crate) images: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct LoadArgs {
    /// Read from this file instead of standard input
    #[arg(short, long, value_name = "FILE")]
    pub(crate) input: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct PushArgs {
    /// Platform to push when only one platform of a multi-platform image is local
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    /// The local image
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
    /// Where to push it (default: the image's own name)
    #[arg(value_name = "DEST")]
    pub(crate) dest: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct TagArgs {
    #[arg(value_name = "SOURCE")]
    pub(crate) source: String,
    #[arg(value_name = "TARGET")]
    pub(crate) target: String,
}

#[derive(Debug, Args)]
pub(crate) struct RmiArgs {
    #[arg(value_name = "IMAGE", required = true)]
    pub(crate) images: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Platform to show for a multi-platform image (default: this host)
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    #[arg(value_name = "IMAGE")]
    pub(crate) image: String,
}

#[derive(Debug, Args)]
pub(crate) struct PullArgs {
    /// Platform to pull from a multi-platform image (`os/arch[/variant]`; default: this host)
    #[arg(long, value_name = "PLATFORM")]
    pub(crate) platform: Option<String>,
    /// Print only the image's name when done
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// The image (`busybox`, `ghcr.io/org/app:1`, `repo@sha256:…`)
    #[arg(value_name = "IMAGE")]
    pub(crate) reference: String,
}

#[derive(Debug, Args)]
pub(crate) struct ImagesArgs {}

/// What both `build` and `check` need to read and plan a Dockerfile.
#[derive(Debug, Args)]
pub(crate) struct FrontendArgs {
    /// Path of the Dockerfile (default: PATH/Dockerfile; `-` reads standard input)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    pub(crate) build_args: Vec<String>,
    /// Build (or check) the stage with this name (default: the last stage)
    #[arg(long, value_name = "STAGE")]
    pub(crate) target: Option<String>,
    /// Target platforms (`os/arch[/variant]`, comma-separated: `linux/amd64,linux/arm64`
    /// builds both and makes an image index)
    #[arg(long, value_name = "PLATFORM[,PLATFORM...]")]
    pub(crate) platform: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); may be repeated
    #[arg(short = 't', long = "tag", value_name = "REF")]
    pub(crate) tags: Vec<String>,
    #[command(flatten)]
    pub(crate) frontend: FrontendArgs,
    /// Do not use the build cache
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Pull base images even when the local store has them
    #[arg(long)]
    pub(crate) pull: bool,
    /// RUN's network: `default` (the host's), `host` or `none`
    #[arg(long, value_name = "MODE", default_value = "default")]
    pub(crate) network: String,
    /// A secret for `RUN --mount=type=secret` (`id=ID[,src=FILE|,env=VAR]`)
    #[arg(long, value_name = "SPEC")]
    pub(crate) secret: Vec<String>,
    /// An entitlement the build may use: `security.insecure` (`RUN --security=insecure`
    /// runs with every capability and no masked paths), `network.host` (always allowed)
    #[arg(long, value_name = "ENTITLEMENT")]
    pub(crate) allow: Vec<String>,
    /// An ssh agent for `RUN --mount=type=ssh` (`default`, `ID=SOCKET`)
    #[arg(long, value_name = "ID[=SOCKET]")]
    pub(crate) ssh: Vec<String>,
    /// Output (`type=oci,dest=F`, `type=docker,dest=F`, `type=local,dest=DIR`, `type=tar,dest=F`, `type=image,name=REF[,push=true]`, `DIR`)
    #[arg(short = 'o', long = "output", value_name = "SPEC")]
    pub(crate) outputs: Vec<String>,
    /// Push the image to its registry when built (`type=image,push=true`)
    #[arg(long)]
    pub(crate) push: bool,
    /// How RUN steps are isolated: default (full where allowed, else the container's /proc,
    /// said once), oci (full or fail), chroot (the container's /proc, native snapshotter)
    #[arg(long, value_name = "MODE", default_value = "default")]
    pub(crate) isolation: String,
    /// Use the build cache at SPEC (`type=registry,ref=REF`, `REF`, `type=local,src=DIR`); repeatable
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub(crate) cache_from: Vec<String>,
    /// Write the build cache to SPEC (`type=registry,ref=REF[,mode=max]`, `type=local,dest=DIR`)
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub(crate) cache_to: Vec<String>,
    /// Progress output: auto, tty, plain, rawjson or quiet
    #[arg(long, value_name = "TYPE", default_value = "auto")]
    pub(crate) progress: String,
    /// Print only the image ID when done (`--progress=quiet`)
    #[arg(short, long)]
    pub(crate) quiet: bool,
    /// Memory limit of RUN steps (`512m`, `2g`)
    #[arg(long, value_name = "BYTES")]
    pub(crate) memory: Option<String>,
    /// CPU limit of RUN steps (`1.5`)
    #[arg(long, value_name = "CPUS")]
    pub(crate) cpus: Option<f64>,
    /// Process limit of RUN steps
    #[arg(long, value_name = "N")]
    pub(crate) pids_limit: Option<u64>,
    /// How steps get their root filesystem: overlay, or native (full copies; for hosts
    /// without overlayfs). Default: overlay where it works
    #[arg(long, value_name = "KIND")]
    pub(crate) snapshotter: Option<String>,
    /// Write the image ID to this file
    #[arg(long, value_name = "FILE")]
    pub(crate) iidfile: Option<PathBuf>,
    /// Write the build's result as JSON to this file (buildx's keys: containerimage.digest,
    /// containerimage.config.digest, containerimage.descriptor, image.name)
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub(crate) metadata_file: Option<PathBuf>,
    /// Set a label on the image (`KEY=VALUE`), over the Dockerfile's LABELs
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,
    /// Add a line to RUN's /etc/hosts (`NAME:IP`)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub(crate) add_hosts: Vec<String>,
    /// Size of RUN's /dev/shm (`128m`, `1g`; default 64m)
    #[arg(long = "shm-size", value_name = "BYTES")]
    pub(crate) shm_size: Option<String>,
    /// A named build context (`NAME=DIR` for COPY --from=NAME, `NAME=docker-image://REF` for
    /// FROM NAME and --from=NAME)
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub(crate) build_contexts: Vec<String>,
    /// A resource limit of RUN steps (`nofile=1024:2048`, `core=0`; -1 is unlimited)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub(crate) ulimits: Vec<String>,
    /// Put the image in the local store: what every rbuild build does
    #[arg(long)]
    pub(crate) load: bool,
    /// Accepted for docker's habit: rbuild keeps no intermediate containers to remove
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) rm: Option<bool>,
    /// Accepted for docker's habit: rbuild keeps no intermediate containers to remove
    #[arg(long = "force-rm", num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub(crate) force_rm: Option<bool>,
    /// rbuild makes no provenance attestation: only `false` is accepted
    #[arg(long, value_name = "VALUE")]
    pub(crate) provenance: Option<String>,
    /// rbuild makes no SBOM attestation: only `false` is accepted
    #[arg(long, value_name = "VALUE")]
    pub(crate) sbom: Option<String>,
    /// The build context: a directory, `-` (a Dockerfile or a tar on standard input), an
    /// http(s) tarball or a Git URL
    #[arg(value_name = "PATH")]
    pub(crate) context: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    #[command(flatten)]
    pub(crate) frontend: FrontendArgs,
    /// Output format of the diagnostics
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// The build context directory
    #[arg(value_name = "PATH", default_value = ".")]
    pub(crate) context: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}
