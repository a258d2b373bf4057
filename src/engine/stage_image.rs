//! The image a stage builds, step by step: the pure half of the build engine that turns a
//! stage's instructions into the image config and history exactly as BuildKit's Dockerfile
//! frontend writes them (`frontend/dockerfile/dockerfile2llb/convert.go`, the `dispatch*`
//! functions), and that tells the engine what a RUN executes and in which environment.
//!
//! The reference is the frontend built into BuildKit v0.13–v0.24 (Docker Engine 25–28); the
//! one place later versions word history differently is EXPOSE (see `history.rs`).
//!
//! Which steps write a layer (history `empty_layer: false`): RUN, COPY, ADD, and WORKDIR when
//! the directory is not `/`, because BuildKit creates it (`mkdir -p`, owned by the current
//! USER) as a file operation; the engine does the same. Every other instruction only edits
//! the config and commits an empty-layer entry, and ONBUILD commits none. A layer whose diff
//! turns out empty — WORKDIR on a directory that exists, a RUN that changes nothing — is
//! dropped and its entry marked `empty_layer`, as BuildKit's exporter does with the empty
//! gzip layer (`exporter/containerimage/writer.go`, `normalizeLayersAndHistory`).
//!
//! Owns: config and history edits, RUN's argv and environment. Must not do I/O: base image
//! configs come in as values, layers are the engine's, and `created` times are the caller's
//! (SOURCE_DATE_EPOCH included).

mod history;
mod ports;

use std::collections::BTreeMap;

use thiserror::Error;

use crate::context::clean::clean;
use crate::dockerfile::heredoc;
use crate::dockerfile::instruction::{Kind, ShellForm};
use crate::dockerfile::shell::Env;
use crate::oci::config::{ContainerConfig, Healthcheck, History, ImageConfig};
use crate::oci::digest::Digest;
use crate::oci::platform::Platform;
use crate::plan::Step;

pub(crate) use history::COMMENT;
pub(crate) use ports::PortError;

/// BuildKit's default `PATH` for Unix images (`util/system.DefaultPathEnvUnix`), set in every
/// stage whose image does not define one.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// ARGs that configure BuildKit itself and so never enter RUN's environment
/// (`convert.go` `nonEnvArgs`); they still count in the history's `|N` prefix.
const NON_ENV_ARGS: [&str; 2] = ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// Where a RUN's `#!` heredoc script is mounted (BuildKit's path).
pub(crate) const PIPES: &str = "/dev/pipes";

/// Why a step could not be applied. Messages are BuildKit's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum StepError {
    #[error(transparent)]
    ExposePort(#[from] PortError),
    /// moby/sys `signal.ParseSignal`: a non-zero number or a Linux signal name.
    #[error("invalid signal: {signal}")]
    StopSignal { signal: String },
    #[error("VOLUME specified can not be an empty string")]
    EmptyVolume,
    /// Heredocs on an exec-form RUN, or on a RUN that split into several words.
    #[error("parsing produced an invalid run command: [{}]", .args.join(" "))]
    RunCommand { args: Vec<String> },
    /// `run_args` was handed a step that is not a RUN.
    #[error("not a RUN step: {keyword}")]
    NotRun { keyword: String },
    /// FROM starts a stage ([`StageImage::scratch`], [`StageImage::from_base`],
    /// [`StageImage::from_stage`]); it is never a step.
    #[error("FROM is not a step of a stage")]
    From,
}

/// The history entry BuildKit commits for one step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Commit {
    pub(crate) created_by: String,
    /// The step writes a layer (RUN, COPY, ADD, WORKDIR other than `/`); when false, or when
    /// the layer's diff is empty, the entry is an `empty_layer` one.
    pub(crate) writes_layer: bool,
}

/// The image a stage builds: the config so far, plus what BuildKit keeps beside it while it
/// dispatches the stage.
#[derive(Clone, Debug)]
pub(crate) struct StageImage {
    /// The config and history so far. Edit the environment only through [`StageImage::apply`]:
    /// RUN's environment is kept beside it.
    pub(crate) config: ImageConfig,
    /// The environment BuildKit's LLB state carries (`llb.EnvList`): the image ENV, plus
    /// the stage's ARG values, keys in the order they were last set (setting a key again
    /// moves it to the end, unlike the config's ENV, where it is replaced in place). A later
    /// ARG overrides an ENV of the same name here, as it does in BuildKit.
    state_env: Vec<(String, String)>,
    /// ARG declarations in order with the value each resolved to, those of a parent stage
    /// first (BuildKit `dispatchState.buildArgs`).
    declared: Vec<(String, Option<String>)>,
    /// A CMD was set in this stage, so ENTRYPOINT keeps it (BuildKit `cmd.IsSet`).
    cmd_set: bool,
    /// The base's ONBUILD triggers, already out of the config.
    triggers: Vec<String>,
}

impl StageImage {
    /// `FROM scratch`: an empty config for `platform` with BuildKit's defaults (`emptyImage`):
    /// WorkingDir `/` and, except on Windows, `PATH`.
    pub(crate) fn scratch(platform: &Platform) -> StageImage {
        let mut config = ImageConfig::new(platform);
        let cc = config.config.get_or_insert_with(ContainerConfig::default);
        cc.working_dir = "/".to_string();
        StageImage::start(config, Vec::new(), Vec::new())
    }

    /// `FROM image`: the image's config, history and layers carry on.
    ///
    /// As BuildKit does, which decodes the config into its own Go type: `created` goes, keys
    /// the OCI and Docker image specs do not define (`container_config`, `docker_version`,
    /// vendor keys) go, and the ONBUILD triggers move out of the config into
    /// [`StageImage::take_onbuild`]. `PATH` is added when the image sets none. A relative
    /// WorkingDir becomes absolute, from `/`.
    pub(crate) fn from_base(base: ImageConfig) -> StageImage {
        let mut config = base;
        config.created = None;
        config.extra.clear();
        config.rootfs.extra.clear();
        for h in &mut config.history {
            h.extra.clear();
        }
        if let Some(cc) = &mut config.config {
            cc.extra.clear();
            if let Some(hc) = &mut cc.healthcheck {
                hc.extra.clear();
            }
            // A relative WorkingDir is taken from `/`, as BuildKit takes it.
            if !cc.working_dir.is_empty() && !cc.working_dir.starts_with('/') {
                cc.working_dir = clean(&format!("/{}", cc.working_dir));
            }
        }
        StageImage::start(config, Vec::new(), Vec::new())
    }

    /// `FROM stage`: the parent stage's image as it ended, its ONBUILD instructions as
    /// triggers, CMD counting as unset again. The parent's ARGs stay declared, in RUN's
    /// environment and in its history (BuildKit starts from the parent's LLB state and
    /// `buildArgs`; documented since moby/buildkit#5381, contrary to the classic builder:
    /// moby/buildkit#1977).
    pub(crate) fn from_stage(parent: &StageImage) -> StageImage {
        StageImage::start(
            parent.config.clone(),
            parent.state_env.clone(),
            parent.declared.clone(),
        )
    }

    /// BuildKit's `dispatchStages` preamble: PATH when missing, then the image ENV over the
    /// inherited state environment.
    fn start(
        mut config: ImageConfig,
        state_env: Vec<(String, String)>,
        declared: Vec<(String, Option<String>)>,
    ) -> StageImage {
        let windows = config.os == "windows";
        let cc = config.config.get_or_insert_with(ContainerConfig::default);
        let triggers = std::mem::take(&mut cc.on_build);
        // Windows is left to the OS (moby/buildkit#5445).
        if !windows && !cc.env.iter().any(|e| key_value(e).0 == "PATH") {
            cc.env.push(format!("PATH={DEFAULT_PATH}"));
        }
        let mut image = StageImage {
            state_env,
            declared,
            cmd_set: false,
            triggers,
            config: ImageConfig::default(),
        };
        for e in &cc.env {
            let (k, v) = key_value(e);
            image.set_state_env(k, v);
        }
        image.config = config;
        image
    }

    fn container(&self) -> Option<&ContainerConfig> {
        self.config.config.as_ref()
    }

    fn container_mut(&mut self) -> &mut ContainerConfig {
        self.config
            .config
            .get_or_insert_with(ContainerConfig::default)
    }

    /// The shell for shell-form RUN, CMD and ENTRYPOINT: SHELL, or `/bin/sh -c`
    /// (`cmd /S /C` on Windows).
    pub(crate) fn shell(&self) -> Vec<String> {
        match self.container() {
            Some(cc) if !cc.shell.is_empty() => cc.shell.clone(),
            _ if self.config.os == "windows" => vec!["cmd".into(), "/S".into(), "/C".into()],
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    /// The working directory, `/` when unset.
    pub(crate) fn workdir(&self) -> String {
        match self.container() {
            Some(cc) if !cc.working_dir.is_empty() => cc.working_dir.clone(),
            _ => "/".to_string(),
        }
    }

    /// The user RUN runs as and WORKDIR's directory is owned by; empty means root.
    pub(crate) fn user(&self) -> String {
        self.container()
            .map(|cc| cc.user.clone())
            .unwrap_or_default()
    }

    /// The image's ENV, in order.
    #[cfg(test)]
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        self.container()
            .map(|cc| {
                cc.env
                    .iter()
                    .map(|e| {
                        let (k, v) = key_value(e);
                        (k.to_string(), v.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Apply one step to the config, as BuildKit's `dispatch` does, and return the history
    /// entry BuildKit commits for it (none for ONBUILD).
    ///
    /// Metadata instructions (ENV, LABEL, ARG, EXPOSE, VOLUME, USER, WORKDIR, STOPSIGNAL,
    /// MAINTAINER, HEALTHCHECK, ONBUILD, CMD, ENTRYPOINT, SHELL) change the config here;
    /// RUN, COPY and ADD change only files, which is the engine's part, and just get their
    /// entry. Words are expected expanded, as the planner leaves them.
    pub(crate) fn apply(&mut self, step: &Step) -> Result<Option<Commit>, StepError> {
        let metadata = |created_by: String| {
            Ok(Some(Commit {
                created_by,
                writes_layer: false,
            }))
        };
        match &step.instruction.kind {
            Kind::From(_) => Err(StepError::From),
            Kind::Run(run) => {
                let args = self.command(&run.cmd)?;
                let created_by = history::run(&args, &self.declared, |k| {
                    self.state_value(k).map(str::to_string)
                });
                Ok(Some(Commit {
                    created_by,
                    writes_layer: true,
                }))
            }
            Kind::Copy(c) => Ok(Some(Commit {
                created_by: history::copy(
                    "COPY",
                    c.parents,
                    c.chown.as_deref(),
                    c.chmod.as_deref(),
                    &c.paths,
                ),
                writes_layer: true,
            })),
            Kind::Add(a) => Ok(Some(Commit {
                created_by: history::copy(
                    "ADD",
                    false,
                    a.chown.as_deref(),
                    a.chmod.as_deref(),
                    &a.paths,
                ),
                writes_layer: true,
            })),
            Kind::Env(kvs) => {
                let mut created_by = "ENV".to_string();
                for kv in kvs {
                    let (k, v) = (&kv.key.value, &kv.value.value);
                    created_by.push_str(&format!(" {k}={v}"));
                    replace_env(&mut self.container_mut().env, k, v);
                    self.set_state_env(k, v);
                }
                metadata(created_by)
            }
            Kind::Label(kvs) => {
                let mut created_by = "LABEL".to_string();
                for kv in kvs {
                    let (k, v) = (&kv.key.value, &kv.value.value);
                    created_by.push_str(&format!(" {k}={v}"));
                    self.container_mut().labels.insert(k.clone(), v.clone());
                }
                metadata(created_by)
            }
            Kind::Arg(decls) => {
                let mut words = Vec::new();
                for d in decls {
                    self.declared.push((d.key.clone(), d.value.clone()));
                    match &d.value {
                        Some(v) => {
                            if !NON_ENV_ARGS.contains(&d.key.as_str()) {
                                self.set_state_env(&d.key, v);
                            }
                            words.push(format!("{}={v}", d.key));
                        }
                        None => words.push(d.key.clone()),
                    }
                }
                metadata(format!("ARG {}", words.join(" ")))
            }
            Kind::Expose(specs) => {
                // BuildKit splits EXPOSE's words again after expansion (`ProcessWords`), so
                // `EXPOSE $PORTS` with `PORTS="80 443"` exposes both.
                let mut exposed = std::collections::BTreeSet::new();
                for word in specs.iter().flat_map(|a| a.value.split_ascii_whitespace()) {
                    exposed.extend(ports::parse(word)?);
                }
                let cc = self.container_mut();
                cc.exposed_ports.extend(exposed.iter().cloned());
                metadata(history::exposed(&exposed))
            }
            Kind::Volume(paths) => {
                let paths: Vec<String> = paths.iter().map(|a| a.value.clone()).collect();
                if paths.iter().any(String::is_empty) {
                    return Err(StepError::EmptyVolume);
                }
                self.container_mut().volumes.extend(paths.iter().cloned());
                metadata(format!("VOLUME {}", history::plain(&paths)))
            }
            Kind::User(user) => {
                self.container_mut().user = user.value.clone();
                metadata(format!("USER {}", user.value))
            }
            Kind::Workdir(path) => {
                let dir = normalize_workdir(&self.workdir(), &path.value);
                self.container_mut().working_dir = dir.clone();
                Ok(Some(Commit {
                    created_by: format!("WORKDIR {dir}"),
                    writes_layer: dir != "/",
                }))
            }
            Kind::StopSignal(signal) => {
                if !valid_signal(&signal.value) {
                    return Err(StepError::StopSignal {
                        signal: signal.value.clone(),
                    });
                }
                self.container_mut().stop_signal = signal.value.clone();
                metadata(format!("STOPSIGNAL {}", signal.value))
            }
            Kind::Maintainer(name) => {
                self.config.author = name.value.clone();
                metadata(format!("MAINTAINER {}", name.value))
            }
            Kind::Healthcheck(h) => {
                let hc = Healthcheck {
                    test: h.test.clone(),
                    interval: h.interval,
                    timeout: h.timeout,
                    start_period: h.start_period,
                    start_interval: h.start_interval,
                    retries: i64::from(h.retries),
                    ..Healthcheck::default()
                };
                let created_by = history::healthcheck(&hc);
                self.container_mut().healthcheck = Some(hc);
                metadata(created_by)
            }
            Kind::Onbuild(o) => {
                self.container_mut().on_build.push(o.expression.clone());
                Ok(None)
            }
            Kind::Cmd(form) => {
                let args = self.shell_form(form);
                let cc = self.container_mut();
                cc.cmd = args.clone();
                // BuildKit sets it for every CMD, on every OS (docker-image-spec keeps the
                // field for backward compatibility).
                cc.args_escaped = true;
                self.cmd_set = true;
                metadata(format!("CMD {}", history::quoted(&args)))
            }
            Kind::Entrypoint(form) => {
                let args = self.shell_form(form);
                let cmd_set = self.cmd_set;
                let cc = self.container_mut();
                cc.entrypoint = args.clone();
                // A CMD from the base image was meant for the old ENTRYPOINT; one set in
                // this stage was written for the new one.
                if !cmd_set {
                    cc.cmd.clear();
                }
                metadata(format!("ENTRYPOINT {}", history::quoted(&args)))
            }
            Kind::Shell(shell) => {
                self.container_mut().shell = shell.clone();
                metadata(format!("SHELL {}", history::plain(shell)))
            }
        }
    }

    /// The argv a RUN step executes (BuildKit `dispatchRun`).
    ///
    /// Shell form runs `SHELL + [command]`, exec form runs as written. Heredocs need the
    /// shell form: a RUN that is only `<<EOF` runs the body (tabs stripped for `<<-`, never
    /// expanded here — the shell expands it) as the shell's command string; any other RUN
    /// with heredocs, such as `RUN python3 <<EOF` or `RUN cat <<A <<B`, hands the shell the
    /// whole line with the bodies and delimiters re-attached, so the shell's own heredoc
    /// support applies. A lone `<<EOF` whose body starts with `#!` runs as its own
    /// executable file, `/dev/pipes/EOF` ([`StageImage::run_script`]).
    pub(crate) fn run_args(&self, step: &Step) -> Result<Vec<String>, StepError> {
        match &step.instruction.kind {
            Kind::Run(run) => self.command(&run.cmd),
            _ => Err(StepError::NotRun {
                keyword: step.instruction.node.keyword.to_uppercase(),
            }),
        }
    }

    /// The script file a RUN step runs, when it is a lone `<<NAME` whose body starts with
    /// `#!`: its name and body. BuildKit writes it 0755 into a read-only mount at
    /// `/dev/pipes/` and executes `/dev/pipes/NAME` (`dispatchRun`).
    pub(crate) fn run_script(&self, step: &Step) -> Option<(String, String)> {
        let Kind::Run(run) = &step.instruction.kind else {
            return None;
        };
        self.shebang(&run.cmd)
    }

    /// A lone heredoc whose body starts with `#!` (not on Windows): its name and body.
    fn shebang(&self, cmd: &ShellForm) -> Option<(String, String)> {
        let first = cmd.files.first()?;
        if cmd.args.len() != 1 || !cmd.prepend_shell || self.config.os == "windows" {
            return None;
        }
        heredoc::parse_word(&cmd.args[0]).ok().flatten()?;
        let body = if first.chomp {
            heredoc::chomp(&first.content)
        } else {
            first.content.clone()
        };
        body.starts_with("#!").then(|| (first.name.clone(), body))
    }

    /// The environment a RUN step sees, `KEY=value` (BuildKit: the LLB state's env, then the
    /// proxy variables): the image ENV and the ARG values in effect — a parent stage's too —
    /// each where it was last set, then for each proxy build arg (matched case-insensitively,
    /// the last in sorted order winning) both the upper- and lower-case variable. Proxy
    /// values reach RUN but never the image or its history.
    pub(crate) fn run_env(&self, proxy: &BTreeMap<String, String>) -> Vec<String> {
        let mut env: Vec<String> = self
            .state_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        const PROXIES: [&str; 5] = [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "FTP_PROXY",
            "NO_PROXY",
            "ALL_PROXY",
        ];
        let mut values: [Option<&str>; 5] = [None; 5];
        for (key, value) in proxy {
            if let Some(i) = PROXIES.iter().position(|p| p.eq_ignore_ascii_case(key)) {
                values[i] = Some(value);
            }
        }
        for (name, value) in PROXIES.iter().zip(values) {
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                env.push(format!("{name}={v}"));
                env.push(format!("{}={v}", name.to_lowercase()));
            }
        }
        env
    }

    /// Append a history entry as the Dockerfile frontend writes it (comment
    /// [`COMMENT`]); `empty_layer` for a step that added no layer; `created` as RFC 3339.
    pub(crate) fn push_history(
        &mut self,
        created_by: String,
        empty_layer: bool,
        created: Option<String>,
    ) {
        self.config.history.push(History {
            created,
            created_by,
            comment: COMMENT.to_string(),
            empty_layer,
            ..History::default()
        });
    }

    /// Record a new layer's diff ID (its uncompressed digest) in `rootfs.diff_ids`.
    pub(crate) fn push_layer(&mut self, diff_id: Digest) {
        self.config.rootfs.diff_ids.push(diff_id);
    }

    /// The base's ONBUILD triggers, to run right after FROM; each call after the first
    /// returns none. They are already out of the config: an image does not pass on the
    /// triggers it inherited, only the ONBUILD instructions of its own Dockerfile.
    pub(crate) fn take_onbuild(&mut self) -> Vec<String> {
        std::mem::take(&mut self.triggers)
    }

    /// BuildKit's RUN argv for a command (`dispatchRun`).
    fn command(&self, cmd: &ShellForm) -> Result<Vec<String>, StepError> {
        if let Some((name, _)) = self.shebang(cmd) {
            return Ok(vec![format!("{PIPES}/{name}")]);
        }
        let mut args = cmd.args.clone();
        if let Some(first) = cmd.files.first() {
            if args.len() != 1 || !cmd.prepend_shell {
                return Err(StepError::RunCommand { args });
            }
            let lone = heredoc::parse_word(&args[0]).ok().flatten().is_some();
            if lone {
                let body = if first.chomp {
                    heredoc::chomp(&first.content)
                } else {
                    first.content.clone()
                };
                args = vec![body];
            } else {
                let mut script = args.remove(0);
                for f in &cmd.files {
                    script.push('\n');
                    script.push_str(&f.content);
                    script.push_str(&f.name);
                }
                args = vec![script];
            }
        }
        Ok(if cmd.prepend_shell {
            self.with_shell(&args)
        } else {
            args
        })
    }

    /// CMD/ENTRYPOINT: shell form through the current SHELL, exec form as written.
    fn shell_form(&self, form: &ShellForm) -> Vec<String> {
        if form.prepend_shell {
            self.with_shell(&form.args)
        } else {
            form.args.clone()
        }
    }

    fn with_shell(&self, args: &[String]) -> Vec<String> {
        let mut argv = self.shell();
        argv.push(args.join(" "));
        argv
    }

    fn set_state_env(&mut self, key: &str, value: &str) {
        self.state_env.retain(|(k, _)| k != key);
        self.state_env.push((key.to_string(), value.to_string()));
    }

    fn state_value(&self, key: &str) -> Option<&str> {
        self.state_env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The variables BuildKit expands a step's words with (`getEnv(d.state)`): the same as RUN's
/// environment without the proxies. The planner cannot know a base image's ENV (it does no
/// I/O) and leaves such variables unexpanded; this is what they expand to.
impl Env for StageImage {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.state_value(name)
    }
}

/// `KEY=value` → (`KEY`, `value`); no `=` means an empty value.
pub(crate) fn key_value(entry: &str) -> (&str, &str) {
    entry.split_once('=').unwrap_or((entry, ""))
}

/// Set `key` in an ENV list: replaced where it is, or appended (BuildKit `addEnv`). Keys
/// compare exactly, as on Linux.
fn replace_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env.iter_mut().find(|e| key_value(e).0 == key) {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// WORKDIR on Linux (BuildKit `system.NormalizeWorkdir`): a relative path joins the current
/// directory and is cleaned; an absolute one is kept as written (`/app/` stays `/app/`); an
/// empty one (a variable that expanded to nothing) keeps the current directory.
fn normalize_workdir(current: &str, requested: &str) -> String {
    let parent = if current.starts_with('/') {
        current.to_string()
    } else {
        clean(&format!("/{current}"))
    };
    match requested {
        "" => parent,
        p if p.starts_with('/') => p.to_string(),
        p => clean(&format!("{parent}/{p}")),
    }
}

/// moby/sys `signal.ParseSignal` on Linux: any non-zero integer (Go `strconv.Atoi`), or a
/// signal name with or without `SIG`, in any case.
fn valid_signal(raw: &str) -> bool {
    if let Ok(n) = raw.parse::<i64>() {
        return n != 0;
    }
    const NAMES: [&str; 34] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    let upper = raw.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    NAMES.contains(&name)
        || name == "RTMIN"
        || name == "RTMAX"
        || (1..=15).any(|i| name == format!("RTMIN+{i}"))
        || (1..=14).any(|i| name == format!("RTMAX-{i}"))
}

#[cfg(test)]
mod tests;
