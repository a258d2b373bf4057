//! Stages in dependency order, steps in order: the cache lookup, the overlay, the work,
//! the layer, the snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use super::cache::{BuildCache, CacheKey, KeyHasher, LayerRecord, Record};
use super::config::StageImage;
use super::copy::{self, CopyOp, HashCache, SourceRoot};
use super::remote::Remote;
use super::{Options, run};
use crate::context::Matcher;
use crate::diag::{Diagnostic, Source};
use crate::dockerfile::instruction::{Instruction, Kind};
use crate::layer::write_layer;
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, descriptor, descriptor_digest};
use crate::oci::media_type::MediaType;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::plan::{Base, Plan, Step};
use crate::progress::{Event, Reporter};
use crate::registry::client::Client;
use crate::registry::config::RegistriesConf;
use crate::registry::credentials::CredentialStore;
use crate::registry::pull::{self, pull_name};
use crate::snapshot::snapshotter::Kind as Snapshotter;
use crate::snapshot::trees::Trees;
use crate::snapshot::workdir::WorkDir;
use crate::snapshot::{Snapshots, diff, native, overlay};
use crate::store::{Image, Store, StoreError};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A step failed where the Dockerfile says it (rendered with the source line).
    #[error("{}", .0.message)]
    Step(Box<Diagnostic>),
    #[error("resolving base image {name}: {source}")]
    ResolveBase {
        name: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] Box<StoreError>),
    #[error("writing a layer: {0}")]
    Layer(#[from] crate::layer::LayerError),
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    #[error(transparent)]
    Overlay(#[from] crate::snapshot::overlay::OverlayError),
    #[error(transparent)]
    Diff(#[from] crate::snapshot::diff::DiffError),
    #[error(transparent)]
    WorkDir(#[from] crate::snapshot::workdir::WorkDirError),
    #[error(transparent)]
    Cache(#[from] super::cache::CacheError),
    #[error("interrupted: the build was stopped (Ctrl-C); nothing was tagged")]
    Interrupted,
    #[error(
        "rbuild builds with overlayfs, which cannot be mounted over {root} here (the native snapshotter is not wired into builds yet){}; see docs/build.md",
        if *.userns { ": a rootless build mounts it with `userxattr`, which needs a filesystem with user extended attributes (ext4, xfs, btrfs, tmpfs since Linux 6.6)" } else { "" }
    )]
    NoOverlay { root: String, userns: bool },
}

impl From<StoreError> for BuildError {
    fn from(e: StoreError) -> BuildError {
        BuildError::Store(Box::new(e))
    }
}

impl BuildError {
    /// The Dockerfile diagnostic, when the error has a location.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            BuildError::Step(d) => Some(d),
            _ => None,
        }
    }
}

/// What a build produced: the target stage's image, stored (untagged) in the store.
#[derive(Debug)]
pub struct Built {
    /// The image manifest.
    pub manifest: Descriptor,
    pub config_digest: Digest,
    pub image: StageImage,
    /// The target stage's snapshots, lowest first (overlay), or its one tree (native): its
    /// root filesystem, for local outputs.
    pub lowers: Vec<PathBuf>,
    pub snapshotter: Snapshotter,
    /// Steps run, and steps taken from the cache.
    pub ran: usize,
    pub cached: usize,
    /// The next free progress vertex number (for the caller's own vertices).
    pub next_id: usize,
}

/// One stage's state as its steps run.
#[derive(Clone)]
pub(super) struct State {
    pub(super) image: StageImage,
    pub(super) layers: Vec<Descriptor>,
    pub(super) lowers: Vec<PathBuf>,
    pub(super) chain: Option<Digest>,
    pub(super) key: CacheKey,
    pub(super) platform: Platform,
    /// The `created` time of the stage's latest history entry: when its last layer step
    /// ran (a cached step keeps the time it first ran), so that a rebuild from the cache
    /// gives the same image config, and the same image ID, as Docker's does.
    pub(super) clock: Option<String>,
}

pub(super) struct Engine<'a> {
    plan: &'a Plan,
    source: &'a Source,
    opts: &'a Options,
    store: &'a Store,
    progress: &'a dyn Reporter,
    /// Overlay: a stage is a stack of layer snapshots; native: one full tree per state.
    kind: Snapshotter,
    snapshots: Snapshots,
    trees: Trees,
    cache: BuildCache,
    hashes: Mutex<HashCache>,
    ignore: Option<Matcher>,
    /// registries.conf, read the first time a base image has to be pulled.
    conf: OnceLock<RegistriesConf>,
    next_id: AtomicUsize,
    /// Base images resolved before the build.
    bases: Bases,
    ran: AtomicUsize,
    cached: AtomicUsize,
    logs: PathBuf,
}

/// The base images of a plan's stages, resolved before the build (pulled where needed),
/// so that their ENV can be given to the planner ([`Bases::env`]) and the build uses the
/// very images the plan was made with.
#[derive(Debug, Default)]
pub struct Bases {
    /// By (name as FROM gives it, platform).
    images: BTreeMap<(String, String), Image>,
    next_id: usize,
}

impl Bases {
    /// Each base image's ENV by name, for [`crate::plan::Options::base_env`].
    pub fn env(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let mut out = BTreeMap::new();
        for ((name, _), image) in &self.images {
            let env = image
                .config
                .config
                .as_ref()
                .map(|c| {
                    c.env
                        .iter()
                        .map(|e| match e.split_once('=') {
                            Some((k, v)) => (k.to_string(), v.to_string()),
                            None => (e.clone(), String::new()),
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.entry(name.clone()).or_insert(env);
        }
        out
    }
}

impl Bases {
    /// Each base image's ONBUILD triggers by name, for
    /// [`crate::plan::Options::base_onbuild`].
    pub fn onbuild(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for ((name, _), image) in &self.images {
            let triggers = image
                .config
                .config
                .as_ref()
                .map(|c| c.on_build.clone())
                .unwrap_or_default();
            if !triggers.is_empty() {
                out.entry(name.clone()).or_insert(triggers);
            }
        }
        out
    }
}

/// Resolve the base images of the stages `plan` needs: from the store, or pulled.
pub fn resolve_bases(
    plan: &Plan,
    source: &Source,
    opts: &Options,
    store: &Store,
    progress: &dyn Reporter,
) -> Result<Bases, BuildError> {
    let engine = Engine::new(plan, source, opts, store, progress, Bases::default())?;
    let mut images = BTreeMap::new();
    for index in plan.needed_stages() {
        let stage = &plan.stages[index];
        let Base::Image(name) = &stage.base else {
            continue;
        };
        let platform = stage
            .platform
            .clone()
            .unwrap_or_else(|| opts.platform.clone());
        let key = (name.clone(), platform.to_string());
        if images.contains_key(&key) {
            continue;
        }
        let id = engine.id();
        progress.event(Event::Start {
            id,
            name: format!("[internal] load metadata for {name}"),
        });
        let started = Instant::now();
        let image = engine.resolve_image(id, name, &platform, &stage.from)?;
        progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
        images.insert(key, image);
    }
    Ok(Bases {
        images,
        next_id: engine.next_id.load(Ordering::Relaxed),
    })
}

/// Build the plan's target stage, with the base images [`resolve_bases`] found.
pub fn build(
    plan: &Plan,
    source: &Source,
    opts: &Options,
    store: &Store,
    progress: &dyn Reporter,
    bases: Bases,
) -> Result<Built, BuildError> {
    let engine = Engine::new(plan, source, opts, store, progress, bases)?;
    let kind = engine.kind;
    let mut done = engine.schedule()?;
    // Saving the context hashes is an optimisation for the next build.
    let _ = engine.hashes().save();
    let state = done
        .remove(&plan.target)
        .expect("the target stage was built");
    let (manifest, config_digest) = engine.commit(&state)?;
    Ok(Built {
        manifest,
        config_digest,
        image: state.image,
        lowers: state.lowers,
        snapshotter: kind,
        ran: engine.ran.load(Ordering::Relaxed),
        cached: engine.cached.load(Ordering::Relaxed),
        next_id: engine.next_id.load(Ordering::Relaxed),
    })
}

/// How many stages build at once: one per core (a stage is mostly one process at a time).
fn parallel_stages() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Engine<'_> {
    /// Build every stage the target needs, each as soon as the stages it reads are built,
    /// independent ones side by side. The first failure stops new stages from starting;
    /// those running finish, and the failure is returned.
    fn schedule(&self) -> Result<BTreeMap<usize, State>, BuildError> {
        let needed = self.plan.needed_stages();
        let deps: BTreeMap<usize, Vec<usize>> = needed
            .iter()
            .map(|&i| (i, self.plan.stage_deps(i)))
            .collect();
        let mut done: BTreeMap<usize, State> = BTreeMap::new();
        let mut waiting: Vec<usize> = needed.clone();
        let mut failed: Option<BuildError> = None;
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<State, BuildError>)>();
            let mut running = 0usize;
            loop {
                if failed.is_none() {
                    while running < parallel_stages() {
                        let Some(pos) = waiting
                            .iter()
                            .position(|i| deps[i].iter().all(|d| done.contains_key(d)))
                        else {
                            break;
                        };
                        let index = waiting.remove(pos);
                        let inputs: BTreeMap<usize, State> =
                            deps[&index].iter().map(|d| (*d, done[d].clone())).collect();
                        let tx = tx.clone();
                        running += 1;
                        scope.spawn(move || {
                            let _ = tx.send((index, self.stage(index, &inputs)));
                        });
                    }
                }
                if running == 0 {
                    break;
                }
                let (index, result) = rx.recv().expect("a stage thread reports");
                running -= 1;
                match result {
                    Ok(state) => {
                        done.insert(index, state);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
        });
        match failed {
            Some(e) => Err(e),
            None => Ok(done),
        }
    }
}

impl<'a> Engine<'a> {
    fn new(
        plan: &'a Plan,
        source: &'a Source,
        opts: &'a Options,
        store: &'a Store,
        progress: &'a dyn Reporter,
        bases: Bases,
    ) -> Result<Engine<'a>, BuildError> {
        crate::snapshot::workdir::cleanup_stale(&opts.state_root)?;
        let detected = crate::snapshot::snapshotter::detect(&opts.state_root);
        let kind = opts.snapshotter.unwrap_or(detected);
        if kind == Snapshotter::Overlay && detected != Snapshotter::Overlay {
            return Err(BuildError::NoOverlay {
                root: opts.state_root.display().to_string(),
                userns: crate::sys::userns::in_user_namespace(),
            });
        }
        let ignore = read_ignore(&opts.context, opts.dockerfile.as_deref())?;
        let logs = opts.state_root.join("logs").join(format!(
            "{}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            std::process::id()
        ));
        Ok(Engine {
            plan,
            source,
            opts,
            store,
            progress,
            kind,
            snapshots: Snapshots::new(&opts.state_root),
            trees: Trees::new(&opts.state_root),
            cache: BuildCache::new(&opts.state_root),
            hashes: Mutex::new(
                HashCache::load(&opts.state_root.join("cache").join("context-hashes"))
                    .unwrap_or_else(|_| HashCache::in_memory()),
            ),
            ignore,
            conf: OnceLock::new(),
            next_id: AtomicUsize::new(bases.next_id.max(1)),
            bases,
            ran: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            logs,
        })
    }
}

/// The context's ignore matcher: `<Dockerfile>.dockerignore` beside the Dockerfile wins
/// over the context's `.dockerignore`; none when neither exists or it has no patterns.
fn read_ignore(context: &Path, dockerfile: Option<&Path>) -> Result<Option<Matcher>, BuildError> {
    let specific = dockerfile.map(|d| {
        let mut name = d.file_name().unwrap_or_default().to_os_string();
        name.push(".dockerignore");
        d.with_file_name(name)
    });
    for path in specific
        .into_iter()
        .chain(std::iter::once(context.join(".dockerignore")))
    {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let patterns = crate::context::read_ignore_file(&text);
                if patterns.is_empty() {
                    return Ok(None);
                }
                return Matcher::new(&patterns)
                    .map(Some)
                    .map_err(|e| BuildError::Io {
                        what: format!("{}", path.display()),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(BuildError::Io {
                    what: format!("reading {}", path.display()),
                    source,
                });
            }
        }
    }
    Ok(None)
}

/// The name BuildKit shows for a step: `[2/6] COPY . .`, `[builder 3/4] RUN make`.
fn step_name(stage: Option<&str>, n: usize, total: usize, text: &str) -> String {
    match stage {
        Some(s) => format!("[{s} {n}/{total}] {text}"),
        None => format!("[{n}/{total}] {text}"),
    }
}

/// Whether a step changes the filesystem (and so is a vertex with a cache key).
fn is_layer_step(kind: &Kind) -> bool {
    matches!(
        kind,
        Kind::Run(_) | Kind::Copy(_) | Kind::Add(_) | Kind::Workdir(_)
    )
}

impl Engine<'_> {
    fn id(&self) -> usize {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The instruction as written, one line (continuations joined), for step names.
    fn text_of(&self, i: &Instruction) -> String {
        let words: Vec<&str> = i.node.original.split_whitespace().collect();
        let mut s = words.join(" ");
        if s.len() > 120 {
            let cut = (0..=117)
                .rev()
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(0);
            s.truncate(cut);
            s.push_str("...");
        }
        s
    }

    pub(super) fn err_at(&self, i: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Step(Box::new(
            Diagnostic::error(message).at(self.source, i.node.keyword_span),
        ))
    }

    pub(super) fn err_hint(
        &self,
        i: &Instruction,
        message: impl Into<String>,
        hint: &str,
    ) -> BuildError {
        BuildError::Step(Box::new(
            Diagnostic::error(message)
                .at(self.source, i.node.keyword_span)
                .with_hint(hint),
        ))
    }

    fn stage(&self, index: usize, done: &BTreeMap<usize, State>) -> Result<State, BuildError> {
        let plan = self.plan;
        let stage = &plan.stages[index];
        let platform = stage
            .platform
            .clone()
            .unwrap_or_else(|| self.opts.platform.clone());
        let total = 1 + stage
            .steps
            .iter()
            .filter(|s| is_layer_step(&s.instruction.kind))
            .count();
        let label = (plan.needed_stages().len() > 1).then(|| {
            stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{index}"))
        });
        let id = self.id();
        let from_text = self.text_of(&stage.from);
        self.progress.event(Event::Start {
            id,
            name: step_name(label.as_deref(), 1, total, &from_text),
        });
        let started = Instant::now();
        let mut state = match &stage.base {
            Base::Scratch => State {
                image: StageImage::scratch(&platform),
                layers: Vec::new(),
                lowers: Vec::new(),
                chain: None,
                key: KeyHasher::new("scratch", None)
                    .str("platform", &platform.to_string())
                    .finish(),
                platform: platform.clone(),
                clock: self.created(),
            },
            Base::Stage(p) => {
                let parent = &done[p];
                State {
                    image: StageImage::from_stage(&parent.image),
                    layers: parent.layers.clone(),
                    lowers: parent.lowers.clone(),
                    chain: parent.chain.clone(),
                    key: parent.key,
                    platform: parent.platform.clone(),
                    clock: parent.clock.clone(),
                }
            }
            Base::Image(name) => self.base_image(id, name, &platform, &stage.from)?,
        };
        self.progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
        // The plan runs the base's triggers as the stage's first steps; one made without
        // knowing them (the image was not resolved first) must not silently skip them.
        let triggers = state.image.take_onbuild();
        if !triggers.is_empty() && !stage.steps.iter().any(|s| s.trigger.is_some()) {
            return Err(self.err_at(
                &stage.from,
                format!(
                    "the base image has ONBUILD triggers ({}) that the plan does not run",
                    triggers.join("; ")
                ),
            ));
        }
        let mut n = 1;
        for step in &stage.steps {
            let kind = &step.instruction.kind;
            let commit = state
                .image
                .apply(step)
                .map_err(|e| self.err_at(&step.instruction, e.to_string()))?;
            // ONBUILD records no history entry.
            let Some(commit) = commit else { continue };
            if !is_layer_step(kind) {
                state
                    .image
                    .push_history(commit.created_by, true, state.clock.clone());
                continue;
            }
            if super::interrupt::interrupted() {
                return Err(BuildError::Interrupted);
            }
            n += 1;
            let id = self.id();
            let name = step_name(label.as_deref(), n, total, &self.text_of(&step.instruction));
            self.progress.event(Event::Start { id, name });
            let started = Instant::now();
            match self.layer_step(id, step, &commit.created_by, &mut state, done) {
                Ok(true) => {
                    self.cached.fetch_add(1, Ordering::Relaxed);
                    self.progress.event(Event::Cached { id });
                }
                Ok(false) => {
                    self.ran.fetch_add(1, Ordering::Relaxed);
                    self.progress.event(Event::Done {
                        id,
                        elapsed: started.elapsed(),
                    });
                }
                Err(e) => {
                    self.progress.event(Event::Error {
                        id,
                        message: e.to_string(),
                    });
                    return Err(match (e, &step.trigger) {
                        (BuildError::Step(d), Some(text)) => BuildError::Step(Box::new(
                            d.with_note(format!("in the base image's ONBUILD trigger `{text}`")),
                        )),
                        (e, _) => e,
                    });
                }
            }
        }
        Ok(state)
    }

    /// `created` for history entries and the config: `SOURCE_DATE_EPOCH` when set, else now.
    fn created(&self) -> Option<String> {
        let secs = self.opts.source_date_epoch.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
        Some(
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64),
            )
            .to_string(),
        )
    }

    fn base_image(
        &self,
        id: usize,
        name: &str,
        platform: &Platform,
        from: &Instruction,
    ) -> Result<State, BuildError> {
        let resolve_err = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::ResolveBase {
            name: name.to_string(),
            source: e,
        };
        let image = match self
            .bases
            .images
            .get(&(name.to_string(), platform.to_string()))
        {
            Some(image) => image.clone(),
            None => self.resolve_image(id, name, platform, from)?,
        };
        let lowers = match self.kind {
            Snapshotter::Overlay => {
                self.snapshots
                    .ensure(self.store, &image, overlay::userxattr())?
            }
            Snapshotter::Native => self.trees.ensure(self.store, &image)?.into_iter().collect(),
        };
        let manifest_digest =
            descriptor_digest(&image.descriptor).map_err(|e| resolve_err(Box::new(e)))?;
        let diff_ids = image.config.rootfs.diff_ids.clone();
        let clock = image.config.created.clone().or_else(|| self.created());
        Ok(State {
            clock,
            key: KeyHasher::new("image", None)
                .str("manifest", manifest_digest.as_str())
                .finish(),
            chain: crate::snapshot::chain_ids(&diff_ids).pop(),
            layers: image.manifest.layers().to_vec(),
            lowers,
            image: StageImage::from_base(image.config),
            platform: platform.clone(),
        })
    }

    /// The image `name` for `platform`: from the store, or (missing there, or `--pull`)
    /// from its registry.
    fn resolve_image(
        &self,
        id: usize,
        name: &str,
        platform: &Platform,
        from: &Instruction,
    ) -> Result<Image, BuildError> {
        let resolve_err = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::ResolveBase {
            name: name.to_string(),
            source: e,
        };
        let reference = Reference::parse(name)
            .map_err(|e| self.err_at(from, format!("invalid base image {name:?}: {e}")))?
            .with_default_tag();
        let local = if self.opts.pull {
            None
        } else {
            match self.store.image(&reference, platform) {
                Ok(image) => Some(image),
                Err(StoreError::ImageNotFound { .. } | StoreError::NoMatchingPlatform { .. }) => {
                    None
                }
                Err(e) => return Err(e.into()),
            }
        };
        let image = match local {
            Some(image) => image,
            None => {
                let conf = match self.conf.get() {
                    Some(c) => c,
                    None => {
                        let loaded =
                            RegistriesConf::load_default().map_err(|e| resolve_err(Box::new(e)))?;
                        self.conf.get_or_init(|| loaded)
                    }
                };
                let client = Client::new(Box::new(CredentialStore::from_env()));
                let progress = self.progress;
                let events = |r: &Reference, ev: pull::Event| {
                    let message = match ev {
                        pull::Event::Source {
                            host, repository, ..
                        } => format!("pulling {r} from {host}/{repository}"),
                        pull::Event::Downloaded { digest, size } => {
                            format!("{digest}: downloaded {size} bytes")
                        }
                        pull::Event::Cached { digest, .. } => format!("{digest}: present"),
                        _ => return,
                    };
                    progress.event(Event::Status { id, message });
                };
                let (pulled, _) = pull_name(conf, &client, self.store, name, platform, &events)
                    .map_err(|e| resolve_err(Box::new(e)))?;
                self.store.image(&pulled, platform)?
            }
        };
        let actual = image.config.platform();
        if !platform.matches(&actual) {
            return Err(self.err_at(
                from,
                format!("{name} is a {actual} image, which does not match the stage's platform {platform}"),
            ));
        }
        Ok(image)
    }

    /// Run (or find in the cache) one layer step; returns whether it was cached.
    fn layer_step(
        &self,
        id: usize,
        step: &Step,
        created_by: &str,
        state: &mut State,
        done: &BTreeMap<usize, State>,
    ) -> Result<bool, BuildError> {
        let instruction = &step.instruction;
        let mut key = KeyHasher::new("step", Some(&state.key));
        key.str("platform", &state.platform.to_string());
        let work: Work = match &instruction.kind {
            Kind::Workdir(_) => {
                let dir = state.image.workdir();
                key.str("workdir", &dir);
                Work::Mkdir(dir)
            }
            Kind::Run(_) => {
                let prepared = run::prepare(self, step, state, done)?;
                prepared.key(&mut key);
                Work::Run(Box::new(prepared))
            }
            Kind::Copy(_) | Kind::Add(_) => {
                let (op, from) = self.copy_op(step, state, done)?;
                let root = match &from {
                    Some(tree) => SourceRoot::Tree(tree.root()),
                    None => SourceRoot::Context {
                        dir: &self.opts.context,
                        ignore: self.ignore.as_ref(),
                    },
                };
                let inputs = copy::inputs_digest(&root, &op, &mut self.hashes())
                    .map_err(|e| self.err_at(instruction, e.to_string()))?;
                key.str("copy", &format!("{op:?}"));
                key.field("inputs", inputs.as_bytes());
                if let Some(tree) = &from {
                    key.field("from", tree.key_bytes());
                }
                Work::Copy(Box::new((op, from)))
            }
            _ => unreachable!("only layer steps come here"),
        };
        let key = key.finish();
        if !self.opts.no_cache
            && let Some(record) = self.cache.get(&key)
            && self.reuse(&record, state, created_by)?
        {
            state.key = key;
            return Ok(true);
        }
        state.clock = self.created();
        let layer = self.execute(id, step, created_by, state, work)?;
        self.cache.put(
            &key,
            &Record {
                layer,
                created: state.clock.clone(),
            },
        )?;
        state.key = key;
        Ok(false)
    }

    /// Take a cached result if its layer is still in the store; false when it is not.
    fn reuse(
        &self,
        record: &Record,
        state: &mut State,
        created_by: &str,
    ) -> Result<bool, BuildError> {
        if let Some(layer) = &record.layer
            && !self.store.blobs().contains(&layer.digest)
        {
            return Ok(false);
        }
        state.clock = record.created.clone().or_else(|| self.created());
        self.push_layer(state, created_by, record.layer.as_ref(), None)?;
        Ok(true)
    }

    /// Add a step's result to the stage: its layer (snapshot published or unpacked) and
    /// its history entry.
    fn push_layer(
        &self,
        state: &mut State,
        created_by: &str,
        layer: Option<&LayerRecord>,
        upper: Option<&Path>,
    ) -> Result<(), BuildError> {
        let created_by = created_by.to_string();
        let Some(layer) = layer else {
            state
                .image
                .push_history(created_by, true, state.clock.clone());
            return Ok(());
        };
        let chain = match &state.chain {
            None => layer.diff_id.clone(),
            Some(prev) => Digest::sha256(format!("{prev} {}", layer.diff_id).as_bytes()),
        };
        let desc = descriptor(
            &MediaType::parse(&layer.media_type),
            &layer.digest,
            layer.size,
        );
        match self.kind {
            Snapshotter::Overlay => {
                let dir = match upper {
                    Some(upper) => self.snapshots.publish(upper, &chain)?,
                    None => self.snapshots.ensure_layer(
                        self.store,
                        &desc,
                        &layer.diff_id,
                        &chain,
                        overlay::userxattr(),
                    )?,
                };
                state.lowers.push(dir);
            }
            Snapshotter::Native => {
                let tree = match upper {
                    Some(rootfs) => self.trees.publish(rootfs, &chain)?,
                    None => self.trees.ensure_layer(
                        self.store,
                        state.lowers.first().map(PathBuf::as_path),
                        &desc,
                        &layer.diff_id,
                        &chain,
                    )?,
                };
                state.lowers = vec![tree];
            }
        }
        state.layers.push(desc);
        state.chain = Some(chain);
        state.image.push_layer(layer.diff_id.clone());
        state
            .image
            .push_history(created_by, false, state.clock.clone());
        Ok(())
    }

    /// Do the step's work in an overlay over the stage, and commit what changed.
    fn execute(
        &self,
        id: usize,
        step: &Step,
        created_by: &str,
        state: &mut State,
        work: Work,
    ) -> Result<Option<LayerRecord>, BuildError> {
        let dir = WorkDir::create(&self.opts.state_root)?;
        let fs = StepFs::prepare(self.kind, &state.lowers, dir.path())?;
        let merged = fs.root().to_path_buf();
        match work {
            Work::Mkdir(path) => {
                // BuildKit creates WORKDIR owned by the current USER.
                let owner = run::user_ids(self, &step.instruction, &merged, &state.image.user())?;
                copy::mkdir_in_root(&merged, &path, Some(owner))
                    .map_err(|e| self.err_at(&step.instruction, e.to_string()))?
            }
            Work::Run(prepared) => {
                let log = self.logs.join(format!("step-{id}.log"));
                run::execute(self, id, step, &prepared, &merged, dir.path(), &log)?
            }
            Work::Copy(boxed) => {
                let (op, from) = *boxed;
                let root = match &from {
                    Some(tree) => SourceRoot::Tree(tree.root()),
                    None => SourceRoot::Context {
                        dir: &self.opts.context,
                        ignore: self.ignore.as_ref(),
                    },
                };
                copy::copy(&root, &merged, &op)
                    .map_err(|e| self.err_at(&step.instruction, e.to_string()))?;
            }
        }
        let (upper, changes) = fs.finish()?;
        if changes.is_empty() {
            self.push_layer(state, created_by, None, None)?;
            return Ok(None);
        }
        let mut writer = self.store.blobs().writer()?;
        let digests = write_layer(&upper, &changes, &self.opts.layer, &mut writer)?;
        writer.commit(&digests.digest)?;
        let record = LayerRecord {
            media_type: MediaType::oci_layer(self.opts.layer.compression).to_string(),
            digest: digests.digest,
            size: digests.size,
            diff_id: digests.diff_id,
        };
        self.push_layer(state, created_by, Some(&record), Some(&upper))?;
        Ok(Some(record))
    }

    /// COPY/ADD's operation, and the stage or image tree it copies from.
    fn copy_op(
        &self,
        step: &Step,
        state: &State,
        done: &BTreeMap<usize, State>,
    ) -> Result<(CopyOp, Option<Tree>), BuildError> {
        let instruction = &step.instruction;
        let passwd = || -> Result<(String, String), BuildError> {
            let tree = self.tree(&state.lowers, None, false)?;
            let read = |p: &str| {
                crate::sandbox::user::read_in_root(tree.root(), p).map_err(|source| {
                    BuildError::Io {
                        what: format!("reading {p} of the image"),
                        source,
                    }
                })
            };
            Ok((read("/etc/passwd")?, read("/etc/group")?))
        };
        // `--chown`, resolved against the image's own passwd and group files.
        let owner = |chown: Option<&str>| -> Result<Option<(u32, u32)>, BuildError> {
            let Some(spec) = chown else { return Ok(None) };
            let (passwd, group) = passwd()?;
            copy::resolve_chown(spec, &passwd, &group)
                .map(Some)
                .map_err(|e| self.err_at(instruction, e.to_string()))
        };
        let (op, from) = match &instruction.kind {
            Kind::Copy(c) => {
                let from = match &c.from {
                    None => None,
                    Some(name) => Some(self.tree_from(name, state, done, instruction, false)?),
                };
                let owner = owner(c.chown.as_deref())?;
                let op = CopyOp::for_copy(c, &state.image.workdir(), owner)
                    .map_err(|e| self.err_at(instruction, e.to_string()))?;
                (op, from)
            }
            Kind::Add(a) => {
                let owner = owner(a.chown.as_deref())?;
                let mut op = CopyOp::for_add(a, &state.image.workdir(), owner)
                    .map_err(|e| self.err_at(instruction, e.to_string()))?;
                let remotes: Vec<Option<Remote>> = a
                    .paths
                    .sources
                    .iter()
                    .map(|s| Remote::parse(&s.value))
                    .collect();
                if remotes.iter().all(Option::is_none) {
                    (op, None)
                } else if remotes.iter().any(Option::is_none) {
                    return Err(self.err_at(
                        instruction,
                        "ADD of URLs together with local files in one instruction is not supported yet: split it into two ADDs",
                    ));
                } else {
                    // Fetched before the cache lookup: what was downloaded is what the key
                    // hashes (a changed file at the same URL is a cache miss).
                    let dir = WorkDir::create(&self.opts.state_root)?;
                    let mut sources = Vec::new();
                    for (n, remote) in remotes.iter().flatten().enumerate() {
                        let rel = remote
                            .fetch(
                                &dir.path().join(n.to_string()),
                                a.checksum.as_deref(),
                                a.keep_git_dir,
                            )
                            .map_err(|e| self.err_at(instruction, e.to_string()))?;
                        sources.push(format!("/{n}/{rel}"));
                    }
                    op.sources = sources;
                    op.checksum = None;
                    // Remote archives are not unpacked unless --unpack=true (BuildKit).
                    op.unpack_archives = a.unpack.unwrap_or(false);
                    (op, Some(Tree::files(dir)))
                }
            }
            _ => unreachable!("copy_op takes COPY or ADD"),
        };
        Ok((op, from))
    }

    /// The tree `COPY --from=NAME` reads: an earlier stage, or an image.
    pub(super) fn tree_from(
        &self,
        name: &str,
        state: &State,
        done: &BTreeMap<usize, State>,
        instruction: &Instruction,
        writable: bool,
    ) -> Result<Tree, BuildError> {
        if let Some(index) = self.plan.stage_index(name) {
            let Some(stage) = done.get(&index) else {
                return Err(self.err_at(
                    instruction,
                    format!("stage {name:?} is not built before this step (a stage can only copy from earlier stages)"),
                ));
            };
            return self.tree(&stage.lowers, Some(stage.key), writable);
        }
        let id = self.id();
        let image = self.base_image(id, name, &state.platform, instruction)?;
        self.tree(&image.lowers, Some(image.key), writable)
    }

    /// Store the stage's config and manifest; returns the manifest's descriptor and the
    /// config's digest.
    fn commit(&self, state: &State) -> Result<(Descriptor, Digest), BuildError> {
        let mut config = state.image.config.clone();
        config.created = state.clock.clone();
        let config_bytes = config.to_canonical_json().map_err(|e| BuildError::Io {
            what: "serialising the image config".into(),
            source: std::io::Error::other(e),
        })?;
        let config_desc = self.store.put_manifest(
            &config_bytes,
            &MediaType::parse(crate::oci::media_type::OCI_CONFIG),
        )?;
        let manifest =
            crate::oci::manifest::image_manifest(config_desc.clone(), state.layers.clone());
        let bytes =
            crate::oci::manifest::to_canonical_oci(&manifest).map_err(|e| BuildError::Io {
                what: "serialising the image manifest".into(),
                source: std::io::Error::other(e),
            })?;
        let desc = self.store.put_manifest(
            &bytes,
            &MediaType::parse(crate::oci::media_type::OCI_MANIFEST),
        )?;
        let config_digest = descriptor_digest(&config_desc).map_err(|e| BuildError::Io {
            what: "config descriptor".into(),
            source: std::io::Error::other(e),
        })?;
        Ok((desc, config_digest))
    }
}

/// A step's root filesystem while it works: an overlay over the stage's snapshots, or a
/// copy of the stage's tree.
enum StepFs {
    Overlay(overlay::Mounted),
    Native(native::NativeSnapshot),
}

impl StepFs {
    fn prepare(kind: Snapshotter, lowers: &[PathBuf], work: &Path) -> Result<StepFs, BuildError> {
        let native_err = |e: native::NativeError| BuildError::Io {
            what: "preparing the step's root filesystem".into(),
            source: std::io::Error::other(e),
        };
        Ok(match kind {
            Snapshotter::Overlay => StepFs::Overlay(overlay::prepare(lowers, work)?),
            Snapshotter::Native => {
                let lower = match lowers.first() {
                    Some(t) => t.clone(),
                    None => {
                        let empty = work.join("empty");
                        std::fs::create_dir_all(&empty).map_err(|source| BuildError::Io {
                            what: format!("creating {}", empty.display()),
                            source,
                        })?;
                        empty
                    }
                };
                StepFs::Native(native::prepare(&lower, &work.join("native")).map_err(native_err)?)
            }
        })
    }

    fn root(&self) -> &Path {
        match self {
            StepFs::Overlay(m) => m.merged(),
            StepFs::Native(n) => n.rootfs(),
        }
    }

    /// End the step: the directory the layer's files are read from (overlay: the upper
    /// directory; native: the step's whole tree) and what changed.
    fn finish(self) -> Result<(PathBuf, Vec<crate::snapshot::change::Change>), BuildError> {
        match self {
            StepFs::Overlay(m) => {
                let upper = m.upper().to_path_buf();
                m.unmount()?;
                let changes = diff::overlay_changes(&upper)?;
                Ok((upper, changes))
            }
            StepFs::Native(n) => {
                let changes = n.changes().map_err(|e| BuildError::Io {
                    what: "comparing the step's root filesystem with its parent".into(),
                    source: std::io::Error::other(e),
                })?;
                Ok((n.rootfs().to_path_buf(), changes))
            }
        }
    }
}

/// What a layer step does in its overlay.
enum Work {
    Mkdir(String),
    Run(Box<run::Prepared>),
    Copy(Box<(CopyOp, Option<Tree>)>),
}

/// A tree a step reads from: another stage's or an image's root filesystem, mounted for
/// reading (COPY --from, RUN --mount=from=) as an overlay with a throwaway upper directory
/// (so writes through a `rw` bind mount are discarded); or ADD's downloads.
pub(super) struct Tree {
    _dir: WorkDir,
    mounted: Option<overlay::Mounted>,
    /// The tree when it is not an overlay (native snapshotter).
    path: Option<PathBuf>,
    key: Option<CacheKey>,
}

impl Tree {
    /// Overlay: an overlay over `lowers` with a throwaway upper directory. Native: the
    /// state's tree itself to read, or a copy of it to write into.
    pub(super) fn open(
        kind: Snapshotter,
        state_root: &Path,
        lowers: &[PathBuf],
        key: Option<CacheKey>,
        writable: bool,
    ) -> Result<Tree, BuildError> {
        let dir = WorkDir::create(state_root)?;
        let (mounted, path) = match (kind, lowers.first()) {
            (Snapshotter::Overlay, _) => (Some(overlay::prepare(lowers, dir.path())?), None),
            (Snapshotter::Native, Some(tree)) if !writable => (None, Some(tree.clone())),
            (Snapshotter::Native, Some(tree)) => {
                let snap = native::prepare(tree, &dir.path().join("copy")).map_err(|e| {
                    BuildError::Io {
                        what: format!("copying {}", tree.display()),
                        source: std::io::Error::other(e),
                    }
                })?;
                (None, Some(snap.rootfs().to_path_buf()))
            }
            (Snapshotter::Native, None) => {
                let empty = dir.path().join("empty");
                std::fs::create_dir(&empty).map_err(|source| BuildError::Io {
                    what: format!("creating {}", empty.display()),
                    source,
                })?;
                (None, Some(empty))
            }
        };
        Ok(Tree {
            _dir: dir,
            mounted,
            path,
            key,
        })
    }

    /// A plain directory (removed with the tree).
    fn files(dir: WorkDir) -> Tree {
        Tree {
            _dir: dir,
            mounted: None,
            path: None,
            key: None,
        }
    }

    pub(super) fn root(&self) -> &Path {
        match (&self.mounted, &self.path) {
            (Some(m), _) => m.merged(),
            (None, Some(p)) => p,
            (None, None) => self._dir.path(),
        }
    }

    pub(super) fn key_bytes(&self) -> &[u8] {
        self.key.as_ref().map_or(&[], |k| k.as_bytes())
    }
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree({})", self.root().display())
    }
}

// Accessors the RUN module needs.
impl Engine<'_> {
    /// A state's root filesystem to read (or, `writable`, to write into and discard).
    pub(super) fn tree(
        &self,
        lowers: &[PathBuf],
        key: Option<CacheKey>,
        writable: bool,
    ) -> Result<Tree, BuildError> {
        Tree::open(self.kind, &self.opts.state_root, lowers, key, writable)
    }
    pub(super) fn opts(&self) -> &Options {
        self.opts
    }
    pub(super) fn progress(&self) -> &dyn Reporter {
        self.progress
    }
    pub(super) fn source(&self) -> &Source {
        self.source
    }
    pub(super) fn plan(&self) -> &Plan {
        self.plan
    }
    pub(super) fn ignore(&self) -> Option<&Matcher> {
        self.ignore.as_ref()
    }
    pub(super) fn hashes(&self) -> std::sync::MutexGuard<'_, HashCache> {
        self.hashes.lock().expect("hash cache")
    }
}
