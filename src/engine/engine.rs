//! Stages in dependency order, steps in order: the cache lookup, the overlay, the work,
//! the layer, the snapshot.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use super::base::Bases;
use super::cache::{BuildCache, CacheKey, KeyHasher, LayerRecord, Record};
use super::copy::{self, CopyOp, HashCache, SourceRoot};
use super::fs::{StepFs, Tree};
use super::remote::Remote;
use super::stage_image::StageImage;
use super::{Options, run};
use crate::context::Matcher;
use crate::diag::{Diagnostic, Source};
use crate::dockerfile::instruction::{Instruction, Kind};
use crate::layer::write_layer;
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, descriptor, descriptor_digest};
use crate::oci::media_type::MediaType;
use crate::oci::platform::Platform;
use crate::plan::{Base, Plan, Step};
use crate::progress::{Event, Reporter};
use crate::registry::registries_conf::RegistriesConf;
use crate::snapshot::snapshotter::Kind as Snapshotter;
use crate::snapshot::trees::Trees;
use crate::snapshot::workdir::WorkDir;
use crate::snapshot::{Snapshots, overlay};
use crate::store::{Store, StoreError};

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
    /// The engine's own file work (reading the ignore file, the image's passwd, making a
    /// directory for a mount).
    #[error("{what}: {source}")]
    Files {
        what: String,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Ignore {
        path: PathBuf,
        source: crate::context::PatternError,
    },
    /// The native snapshotter copying or comparing a step's root filesystem.
    #[error("{what}: {source}")]
    Native {
        what: String,
        source: crate::snapshot::native::NativeError,
    },
    /// Writing the image's config and manifest.
    #[error("committing the image: {0}")]
    Commit(#[from] crate::oci::manifest::ManifestError),
    #[error("committing the image config: {0}")]
    CommitConfig(#[from] crate::oci::config::ConfigError),
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
    pub(super) plan: &'a Plan,
    pub(super) source: &'a Source,
    pub(super) opts: &'a Options,
    pub(super) store: &'a Store,
    pub(super) progress: &'a dyn Reporter,
    /// Overlay: a stage is a stack of layer snapshots; native: one full tree per state.
    pub(super) kind: Snapshotter,
    pub(super) snapshots: Snapshots,
    pub(super) trees: Trees,
    pub(super) cache: BuildCache,
    pub(super) hashes: Mutex<HashCache>,
    pub(super) ignore: Option<Matcher>,
    /// registries.conf, read the first time a base image has to be pulled.
    pub(super) conf: OnceLock<RegistriesConf>,
    pub(super) next_id: AtomicUsize,
    /// Base images resolved before the build.
    pub(super) bases: Bases,
    pub(super) ran: AtomicUsize,
    pub(super) cached: AtomicUsize,
    pub(super) logs: PathBuf,
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
    // Before any step mounts anything: what a killed run left mounted goes, and so do
    // snapshots that the machine went down before writing.
    crate::snapshot::workdir::cleanup_stale(&opts.state_root)?;
    crate::snapshot::journal::recover(&opts.state_root).map_err(|source| BuildError::Files {
        what: format!(
            "checking {} for unsynced snapshots",
            opts.state_root.display()
        ),
        source,
    })?;
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
    pub(super) fn new(
        plan: &'a Plan,
        source: &'a Source,
        opts: &'a Options,
        store: &'a Store,
        progress: &'a dyn Reporter,
        bases: Bases,
    ) -> Result<Engine<'a>, BuildError> {
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
                    .map_err(|source| BuildError::Ignore { path, source });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(BuildError::Files {
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
    pub(super) fn id(&self) -> usize {
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
    pub(super) fn created(&self) -> Option<String> {
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
        // How the layer is written changes its bytes: a layer cached as gzip must not
        // answer a zstd build, nor one without SOURCE_DATE_EPOCH a reproducible one.
        let layer = &self.opts.layer;
        key.str(
            "layer",
            &format!(
                "{:?} {:?} {:?}",
                layer.compression, layer.level, layer.source_date_epoch
            ),
        );
        let work: Work = match &instruction.kind {
            Kind::Workdir(_) => {
                let dir = state.image.workdir();
                key.str("workdir", &dir);
                // The directory is created owned by USER.
                key.str("user", &state.image.user());
                Work::Mkdir(dir)
            }
            Kind::Run(_) => {
                let prepared = run::prepare(self, step, state, done)?;
                prepared.key(&mut key);
                Work::Run(Box::new(prepared))
            }
            Kind::Copy(_) | Kind::Add(_) => {
                let work = self.copy_op(step, state, done)?;
                key.str("copy", &format!("{:?}", work.op));
                key.str("chown", work.chown.as_deref().unwrap_or(""));
                // Files are hashed only where nothing else names them: a stage's or an
                // image's key already says what its tree holds.
                let hashed = match &work.from {
                    CopyFrom::Context => Some(SourceRoot::Context {
                        dir: &self.opts.context,
                        ignore: self.ignore.as_ref(),
                    }),
                    CopyFrom::Files(tree) => Some(SourceRoot::Tree(tree.root())),
                    CopyFrom::State(from) => {
                        key.field("from", from.key.as_bytes());
                        None
                    }
                };
                if let Some(root) = hashed {
                    let inputs = copy::inputs_digest(&root, &work.op, &mut self.hashes())
                        .map_err(|e| self.err_at(instruction, e.to_string()))?;
                    key.field("inputs", inputs.as_bytes());
                }
                Work::Copy(Box::new(work))
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
        let chain = crate::snapshot::next_chain_id(state.chain.as_ref(), &layer.diff_id);
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
                let CopyWork {
                    mut op,
                    chown,
                    from,
                } = *boxed;
                if let Some(spec) = &chown {
                    op.owner = Some(run::chown_ids(self, &step.instruction, &merged, spec)?);
                }
                let mounted = match &from {
                    CopyFrom::State(state_ref) => Some(state_ref.open(self, false)?),
                    _ => None,
                };
                let root = match (&from, &mounted) {
                    (CopyFrom::Files(tree), _) | (_, Some(tree)) => SourceRoot::Tree(tree.root()),
                    _ => SourceRoot::Context {
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

    /// COPY/ADD's operation and where it copies from. `--chown` is resolved when the step
    /// runs, against the passwd and group files it then sees; the key has it as written
    /// (with the stage's key, which names those files).
    fn copy_op(
        &self,
        step: &Step,
        state: &State,
        done: &BTreeMap<usize, State>,
    ) -> Result<CopyWork, BuildError> {
        let instruction = &step.instruction;
        // With SOURCE_DATE_EPOCH, what COPY/ADD write carries that time in the snapshot as
        // in the layer (which clamps every mtime to it anyway).
        let timestamp = self.opts.source_date_epoch.map(|secs| copy::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        });
        let mut work = match &instruction.kind {
            Kind::Copy(c) => {
                let from = match &c.from {
                    None => CopyFrom::Context,
                    Some(name) => {
                        CopyFrom::State(self.state_from(name, state, done, instruction)?)
                    }
                };
                let op = CopyOp::for_copy(c, &state.image.workdir(), None)
                    .map_err(|e| self.err_at(instruction, e.to_string()))?;
                CopyWork {
                    op,
                    chown: c.chown.clone(),
                    from,
                }
            }
            Kind::Add(a) => {
                let mut op = CopyOp::for_add(a, &state.image.workdir(), None)
                    .map_err(|e| self.err_at(instruction, e.to_string()))?;
                let remotes: Vec<Option<Remote>> = a
                    .paths
                    .sources
                    .iter()
                    .map(|s| Remote::parse(&s.value))
                    .collect();
                let chown = a.chown.clone();
                if remotes.iter().all(Option::is_none) {
                    CopyWork {
                        op,
                        chown,
                        from: CopyFrom::Context,
                    }
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
                    CopyWork {
                        op,
                        chown,
                        from: CopyFrom::Files(Tree::files(dir)),
                    }
                }
            }
            _ => unreachable!("copy_op takes COPY or ADD"),
        };
        work.op.timestamp = timestamp;
        Ok(work)
    }

    /// What `COPY --from=NAME` or `RUN --mount=from=NAME` reads: an earlier stage, or an
    /// image (resolved and unpacked). Nothing is mounted: the key of the stage or image
    /// says what the tree holds, and [`StateRef::open`] mounts it when a step runs.
    pub(super) fn state_from(
        &self,
        name: &str,
        state: &State,
        done: &BTreeMap<usize, State>,
        instruction: &Instruction,
    ) -> Result<StateRef, BuildError> {
        if let Some(index) = self.plan.stage_index(name) {
            let Some(stage) = done.get(&index) else {
                return Err(self.err_at(
                    instruction,
                    format!("stage {name:?} is not built before this step (a stage can only copy from earlier stages)"),
                ));
            };
            return Ok(StateRef {
                lowers: stage.lowers.clone(),
                key: stage.key,
            });
        }
        let id = self.id();
        let image = self.base_image(id, name, &state.platform, instruction)?;
        Ok(StateRef {
            lowers: image.lowers,
            key: image.key,
        })
    }

    /// Store the stage's config and manifest; returns the manifest's descriptor and the
    /// config's digest.
    fn commit(&self, state: &State) -> Result<(Descriptor, Digest), BuildError> {
        let mut config = state.image.config.clone();
        config.created = state.clock.clone();
        let config_bytes = config.to_canonical_json()?;
        let config_desc = self.store.put_manifest(
            &config_bytes,
            &MediaType::parse(crate::oci::media_type::OCI_CONFIG),
        )?;
        let manifest =
            crate::oci::manifest::image_manifest(config_desc.clone(), state.layers.clone());
        let bytes = crate::oci::manifest::to_canonical_oci(&manifest)?;
        let desc = self.store.put_manifest(
            &bytes,
            &MediaType::parse(crate::oci::media_type::OCI_MANIFEST),
        )?;
        let config_digest = descriptor_digest(&config_desc)?;
        Ok((desc, config_digest))
    }
}

/// A COPY or ADD to do: the operation (owner not resolved yet), its `--chown` as written,
/// and where it reads from.
struct CopyWork {
    op: CopyOp,
    chown: Option<String>,
    from: CopyFrom,
}

/// Another state's root filesystem, by its snapshots and its cache key (which names what
/// it holds), mounted only when a step that reads it runs.
pub(super) struct StateRef {
    lowers: Vec<PathBuf>,
    pub(super) key: CacheKey,
}

impl StateRef {
    /// Mount it to read (or, `writable`, to write into and discard).
    pub(super) fn open(&self, engine: &Engine<'_>, writable: bool) -> Result<Tree, BuildError> {
        engine.tree(&self.lowers, writable)
    }
}

/// Where COPY/ADD read from.
enum CopyFrom {
    Context,
    /// `--from=` a stage or image.
    State(StateRef),
    /// ADD's downloads.
    Files(Tree),
}

/// What a layer step does in its overlay.
enum Work {
    Mkdir(String),
    Run(Box<run::Prepared>),
    Copy(Box<CopyWork>),
}

impl Engine<'_> {
    /// A state's root filesystem to read (or, `writable`, to write into and discard).
    pub(super) fn tree(&self, lowers: &[PathBuf], writable: bool) -> Result<Tree, BuildError> {
        Tree::open(self.kind, &self.opts.state_root, lowers, writable)
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
