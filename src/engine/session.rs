//! One build's shared resources and the few services every step uses: the plan and its
//! source (for diagnostics), the settings, the store, the progress, the snapshotter, the
//! build cache, the context's ignore matcher and content hashes, progress vertex numbers
//! and history times. Steps reach these through methods, never through fields. Must not
//! know what any step kind does.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::bases::Bases;
use super::cache::BuildCache;
use super::cache::travel::Travel;
use super::copy::HashCache;
use super::error::BuildError;
use super::fs::Tree;
use super::inflight::InFlight;
use super::isolation::ProcChoice;
use super::lazy::LazyBlobs;
use super::settings::Settings;
use super::state::StateRef;
use crate::context::Matcher;
use crate::diag::{Diagnostic, Source};
use crate::dockerfile::instruction::Instruction;
use crate::gc::lease::{Kind as LeaseKind, Leases};
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, descriptor_digest};
use crate::plan::Plan;
use crate::progress::{Event, Reporter};
use crate::registry::registries_conf::{ConfigError, RegistriesConf};
use crate::snapshot::overlay;
use crate::snapshot::snapshotter::Kind as Snapshotter;
use crate::snapshot::trees::Trees;
use crate::snapshot::{SnapshotError, Snapshots};
use crate::store::Store;

pub(crate) struct Session<'a> {
    plan: &'a Plan,
    source: &'a Source,
    settings: &'a Settings,
    store: &'a Store,
    progress: &'a dyn Reporter,
    /// Overlay: a stage is a stack of layer snapshots; native: one full tree per state.
    kind: Snapshotter,
    snapshots: Snapshots,
    trees: Trees,
    cache: BuildCache,
    /// The context's content hashes, loaded the first time a step hashes files (resolving
    /// base images never does).
    hashes: OnceLock<Mutex<HashCache>>,
    ignore: Option<Matcher>,
    /// registries.conf, read the first time a base image has to be pulled.
    conf: OnceLock<RegistriesConf>,
    /// Progress vertex numbers, shared by the builds of a multi-platform build.
    ids: Arc<AtomicUsize>,
    /// Steps being computed now, shared by the builds of a multi-platform build.
    inflight: Arc<InFlight>,
    /// Blobs known but not fetched, shared likewise.
    lazy: Arc<LazyBlobs>,
    travel: Arc<Travel>,
    leases: Leases,
    proc_choice: Arc<ProcChoice>,
    /// The target platform in vertex names (`[linux/arm64 2/3] RUN ...`) when the build
    /// makes several.
    label: Option<String>,
    /// Base images resolved before the build.
    bases: Bases,
    ran: AtomicUsize,
    cached: AtomicUsize,
    logs: PathBuf,
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        plan: &'a Plan,
        source: &'a Source,
        settings: &'a Settings,
        store: &'a Store,
        progress: &'a dyn Reporter,
        bases: Bases,
    ) -> Result<Session<'a>, BuildError> {
        let root = &settings.state_root;
        let detected = crate::snapshot::snapshotter::detect(root);
        let kind = settings.snapshotter.unwrap_or(detected);
        if kind == Snapshotter::Overlay && detected != Snapshotter::Overlay {
            return Err(BuildError::NoOverlay {
                root: root.display().to_string(),
                userns: crate::sys::userns::in_user_namespace(),
            });
        }
        let ignore = read_ignore(&settings.context, settings.dockerfile.as_deref())?;
        let logs = root.join("logs").join(format!(
            "{}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            crate::store::unique_suffix()
        ));
        Ok(Session {
            plan,
            source,
            settings,
            store,
            progress,
            kind,
            snapshots: Snapshots::new(root),
            trees: Trees::new(root),
            cache: BuildCache::new(root),
            hashes: OnceLock::new(),
            ignore,
            conf: OnceLock::new(),
            ids: Arc::new(AtomicUsize::new(bases.next_id.max(1))),
            inflight: Arc::default(),
            lazy: Arc::default(),
            travel: Arc::default(),
            leases: Leases::new(root),
            proc_choice: Arc::default(),
            label: None,
            bases,
            ran: AtomicUsize::new(0),
            cached: AtomicUsize::new(0),
            logs,
        })
    }

    pub(crate) fn plan(&self) -> &'a Plan {
        self.plan
    }
    pub(crate) fn source(&self) -> &'a Source {
        self.source
    }
    pub(crate) fn settings(&self) -> &'a Settings {
        self.settings
    }
    pub(crate) fn store(&self) -> &'a Store {
        self.store
    }
    pub(crate) fn progress(&self) -> &'a dyn Reporter {
        self.progress
    }
    pub(crate) fn snapshotter(&self) -> Snapshotter {
        self.kind
    }
    pub(crate) fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }
    pub(crate) fn trees(&self) -> &Trees {
        &self.trees
    }
    pub(crate) fn cache(&self) -> &BuildCache {
        &self.cache
    }
    pub(crate) fn bases(&self) -> &Bases {
        &self.bases
    }
    pub(crate) fn ignore(&self) -> Option<&Matcher> {
        self.ignore.as_ref()
    }
    pub(crate) fn hashes(&self) -> std::sync::MutexGuard<'_, HashCache> {
        self.hashes
            .get_or_init(|| {
                let path = self
                    .settings
                    .state_root
                    .join("cache")
                    .join("context-hashes");
                Mutex::new(HashCache::load(&path).unwrap_or_else(|_| HashCache::in_memory()))
            })
            .lock()
            .expect("hash cache")
    }

    /// Keep the context hashes for the next build, if this one loaded them.
    pub(crate) fn save_hashes(&self) {
        if let Some(hashes) = self.hashes.get() {
            // An optimisation for the next build: a failure to save costs nothing else.
            let _ = hashes.lock().expect("hash cache").save();
        }
    }
    /// Where a step's whole output is kept.
    pub(crate) fn log_path(&self, id: usize) -> PathBuf {
        self.logs.join(format!("step-{id}.log"))
    }

    /// registries.conf, read once per build.
    pub(crate) fn registries_conf(&self) -> Result<&RegistriesConf, ConfigError> {
        if let Some(c) = self.conf.get() {
            return Ok(c);
        }
        let loaded = RegistriesConf::load_default()?;
        Ok(self.conf.get_or_init(|| loaded))
    }

    /// A new progress vertex number.
    pub(crate) fn id(&self) -> usize {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }
    pub(crate) fn next_id(&self) -> usize {
        self.ids.load(Ordering::Relaxed)
    }

    /// This session as one of the builds of a multi-platform build: vertex numbers and
    /// steps in flight shared with the others, and its platform in vertex names.
    pub(crate) fn joined(
        mut self,
        ids: Arc<AtomicUsize>,
        inflight: Arc<InFlight>,
        label: String,
    ) -> Session<'a> {
        self.ids = ids;
        self.inflight = inflight;
        self.label = Some(label);
        self
    }

    /// This session with what the whole build shares: blobs known but not fetched, and
    /// the records imported and used.
    pub(crate) fn sharing(
        mut self,
        lazy: Arc<LazyBlobs>,
        travel: Arc<Travel>,
        proc_choice: Arc<ProcChoice>,
    ) -> Session<'a> {
        self.lazy = lazy;
        self.travel = travel;
        self.proc_choice = proc_choice;
        self
    }

    /// What RUN steps get of the isolation (`--isolation`, and what this machine allows),
    /// decided at the first.
    pub(crate) fn isolation(&self) -> Result<super::isolation::Choice, BuildError> {
        self.proc_choice
            .choice(self.settings.isolation, &self.settings.state_root)
    }

    /// The imported records, and the records this build used.
    pub(crate) fn travel(&self) -> &Travel {
        &self.travel
    }

    /// The steps being computed now, by key.
    pub(crate) fn inflight(&self) -> &InFlight {
        &self.inflight
    }

    /// The platform label of vertex names, in a multi-platform build.
    pub(crate) fn label(&self) -> Option<&str> {
        self.label.as_deref()
    }

    /// Count a step that ran, or (`cached`) one taken from the cache.
    pub(crate) fn count(&self, cached: bool) {
        let n = if cached { &self.cached } else { &self.ran };
        n.fetch_add(1, Ordering::Relaxed);
    }
    /// Steps run, and steps taken from the cache.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.ran.load(Ordering::Relaxed),
            self.cached.load(Ordering::Relaxed),
        )
    }

    /// `created` for history entries and the config: `SOURCE_DATE_EPOCH` when set, else now.
    pub(crate) fn created(&self) -> Option<String> {
        let secs = self.settings.source_date_epoch.unwrap_or_else(|| {
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

    /// A step's failure at its instruction.
    pub(crate) fn err_at(&self, i: &Instruction, message: impl Into<String>) -> BuildError {
        BuildError::Step(Box::new(
            Diagnostic::error(message).at(self.source, i.node.keyword_span),
        ))
    }

    /// A step's failure at its instruction, with its causes folded into the message.
    pub(crate) fn fail_at(
        &self,
        i: &Instruction,
        err: &(dyn std::error::Error + 'static),
    ) -> BuildError {
        self.err_at(i, crate::diag::chain(err))
    }

    pub(crate) fn err_hint(
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

    /// The instruction as written, one line (continuations joined), for step names.
    pub(crate) fn text_of(&self, i: &Instruction) -> String {
        // Whole, as BuildKit's plain progress prints it; the tty renderer fits it to the
        // terminal.
        i.node
            .original
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The root filesystem of a state made of `layers` (with their `diff_ids`): its
    /// snapshots, lowest first (overlay), or its one tree (native). What is missing is
    /// unpacked, each blob fetched first when it is still in a registry (a base image's
    /// layer, an imported cache's); the step of progress vertex `id` says so. Overlay
    /// snapshots are made [`JOBS`] at a time; a native tree's blobs are fetched so.
    pub(crate) fn lowers(
        &self,
        id: Option<usize>,
        layers: &[Descriptor],
        diff_ids: &[Digest],
    ) -> Result<Vec<PathBuf>, BuildError> {
        if layers.len() != diff_ids.len() {
            return Err(SnapshotError::LayerCount {
                diff_ids: diff_ids.len(),
                layers: layers.len(),
            }
            .into());
        }
        let chains = crate::snapshot::chain_ids(diff_ids);
        let store = self.store;
        // Each snapshot or tree used is held for the rest of the build, so that a
        // collection under a size cap leaves it; one removed just before it was held is
        // made again (a collection that keeps removing it makes the build fail).
        let hold = |kind: LeaseKind, chain: &Digest, path: &Path| {
            self.leases
                .hold(kind, chain.hex(), path)
                .map_err(|source| BuildError::Files {
                    what: format!("holding {}", path.display()),
                    source,
                })
        };
        let gone = |path: &Path| BuildError::Files {
            what: format!("using {}", path.display()),
            source: std::io::Error::other("removed by a collection three times in a row"),
        };
        let say = |message: String| {
            if let Some(id) = id {
                self.progress.event(Event::Status { id, message });
            }
        };
        let fetch = |layer: &Descriptor| -> Result<(), BuildError> {
            let digest = descriptor_digest(layer)?;
            if !store.blobs().contains(&digest) && self.lazy.knows(&digest) {
                say(format!(
                    "fetching {} ({})",
                    digest.short(),
                    crate::progress::human_size(layer.size())
                ));
            }
            self.lazy.ensure(store, layer)
        };
        match self.kind {
            Snapshotter::Overlay => {
                // What is missing is made JOBS at a time, each layer fetched and unpacked.
                let missing: Vec<usize> = (0..layers.len())
                    .filter(|&i| !self.snapshots.path(&chains[i]).is_dir())
                    .collect();
                parallel(&missing, |i| {
                    fetch(&layers[i])?;
                    say(format!("unpacking {}", chains[i].short()));
                    self.snapshots.ensure_layer(
                        store,
                        &layers[i],
                        &diff_ids[i],
                        &chains[i],
                        overlay::userxattr(),
                    )?;
                    Ok(())
                })?;
                layers
                    .iter()
                    .zip(diff_ids)
                    .zip(&chains)
                    .map(|((layer, diff_id), chain)| {
                        let dir = self.snapshots.path(chain);
                        for _ in 0..3 {
                            if !dir.is_dir() {
                                self.lazy.ensure(store, layer)?;
                                self.snapshots.ensure_layer(
                                    store,
                                    layer,
                                    diff_id,
                                    chain,
                                    overlay::userxattr(),
                                )?;
                            }
                            if hold(LeaseKind::Snapshot, chain, &dir)? {
                                return Ok(dir);
                            }
                        }
                        Err(gone(&dir))
                    })
                    .collect()
            }
            Snapshotter::Native => {
                'attempt: for _ in 0..3 {
                    // The deepest tree there is, then each layer above it applied in turn.
                    let have = chains.iter().rposition(|c| self.trees.path(c).is_dir());
                    let mut tree = have.map(|i| self.trees.path(&chains[i]));
                    if let Some(i) = have
                        && !hold(LeaseKind::Tree, &chains[i], &self.trees.path(&chains[i]))?
                    {
                        continue;
                    }
                    // Each tree is its parent's plus a layer, so they are made in turn;
                    // their blobs are fetched JOBS at a time first.
                    let above: Vec<usize> = (have.map_or(0, |i| i + 1)..layers.len()).collect();
                    parallel(&above, |i| fetch(&layers[i]))?;
                    for i in above {
                        say(format!("unpacking {}", chains[i].short()));
                        let made = self.trees.ensure_layer(
                            store,
                            tree.as_deref(),
                            &layers[i],
                            &diff_ids[i],
                            &chains[i],
                        )?;
                        if !hold(LeaseKind::Tree, &chains[i], &made)? {
                            continue 'attempt;
                        }
                        tree = Some(made);
                    }
                    return Ok(tree.into_iter().collect());
                }
                Err(gone(
                    &self.trees.path(chains.last().expect("a tree has layers")),
                ))
            }
        }
    }

    /// This build's holds on what it uses (see `gc/lease.rs`).
    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The blobs this build may fetch lazily (an imported cache's layers).
    pub(crate) fn lazy(&self) -> &LazyBlobs {
        &self.lazy
    }

    /// Mount another state's root filesystem to read (or, `writable`, to write into and
    /// discard), for the step of progress vertex `id`.
    pub(crate) fn open(
        &self,
        id: Option<usize>,
        state: &StateRef,
        writable: bool,
    ) -> Result<Tree, BuildError> {
        Ok(Tree::open(
            self.kind,
            &self.settings.state_root,
            &self.lowers(id, &state.layers, &state.diff_ids)?,
            writable,
        )?)
    }
}

/// Run `work` on each of `items`, [`crate::registry::pull::JOBS`] at a time; the first
/// error is returned once the others have stopped.
fn parallel(
    items: &[usize],
    work: impl Fn(usize) -> Result<(), BuildError> + Sync,
) -> Result<(), BuildError> {
    if items.len() < 2 {
        return items.iter().try_for_each(|&i| work(i));
    }
    let todo = Mutex::new(items.iter().rev().copied().collect::<Vec<_>>());
    let failed: Mutex<Option<BuildError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..crate::registry::pull::JOBS.min(items.len()) {
            s.spawn(|| {
                loop {
                    if failed.lock().expect("failure").is_some() {
                        return;
                    }
                    let Some(i) = todo.lock().expect("work").pop() else {
                        return;
                    };
                    if let Err(e) = work(i) {
                        failed.lock().expect("failure").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match failed.into_inner().expect("failure") {
        Some(e) => Err(e),
        None => Ok(()),
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
