//! A whole build from a [`Request`]: plan the Dockerfile, resolve its base images (pulled
//! where needed), plan again knowing their ENV and ONBUILD triggers, build the stages,
//! then tag, write the `-o` outputs and push. Two phases, so that a caller can show the
//! plan's lint findings before anything runs: [`Builder::plan`], then [`Planned::build`].
//!
//! Must not print: everything it has to say goes to the [`Reporter`] or into the result.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::bases::Bases;
use super::built::{Built, Images};
use super::cache::format::{INLINE_ANNOTATION, inline_value};
use super::cache::travel::Travel;
use super::cache::{CacheKey, CacheLocation, CacheSpec};
use super::caches::{export_all, import_all};
use super::commit::commit_image;
use super::error::BuildError;
use super::inflight::InFlight;
use super::isolation::ProcChoice;
use super::lazy::LazyBlobs;
use super::output::{Kind, Output};
use super::request::Request;
use super::resolve::resolve_bases;
use super::scheduler::schedule;
use super::session::Session;
use super::settings::Settings;
use crate::diag::Source;
use crate::layer::LayerOptions;
use crate::layer::deferred::DeferredLayers;
use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::plan::Plan;
use crate::progress::{Event, Reporter};
use crate::store::{LockGuard, Store};

/// The lock that running builds hold shared and `rbuild prune` takes exclusive: a build
/// uses snapshots, trees and blobs that no tag keeps alive yet (its base images' unpacked
/// layers, its cache hits), which a prune would otherwise delete under it. It is not the
/// store's lock, which a build takes exclusive for moments (tagging) while it runs.
pub fn builds_lock(state_root: &std::path::Path) -> crate::store::StoreLock {
    crate::store::StoreLock::new(state_root.join("builds.lock"))
}

/// The build context must be a directory; checked first, before the Dockerfile in it is
/// looked for.
pub fn check_context(context: &std::path::Path) -> Result<(), BuildError> {
    if context.is_dir() {
        return Ok(());
    }
    Err(BuildError::Request(format!(
        "build context {} is not a directory",
        context.display()
    )))
}

/// Refuse an output whose destination cannot be written, before anything is built: a
/// `type=local` directory that is not empty (or not a directory), a file in a directory
/// that does not exist, or a file output onto a directory.
fn check_destination(o: &Output) -> Result<(), BuildError> {
    let Some(dest) = o.dest.as_deref() else {
        return Ok(());
    };
    if dest == std::path::Path::new("-") {
        return Ok(());
    }
    let refuse = |why: String| {
        Err(BuildError::Request(format!(
            "-o dest={}: {why}",
            dest.display()
        )))
    };
    let writes_a_directory = matches!(o.kind, Kind::Local | Kind::Oci { tar: false });
    if writes_a_directory {
        return match std::fs::read_dir(dest).map(|mut e| e.next().is_some()) {
            Ok(true) if o.kind == Kind::Local => refuse(
                "the directory is not empty; type=local writes into a new or empty directory"
                    .into(),
            ),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                refuse("it is a file, and this output writes a directory".into())
            }
            Err(e) => refuse(format!("cannot read it: {e}")),
        };
    }
    if dest.is_dir() {
        return refuse("it is a directory, and this output writes a file".into());
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return refuse(format!("the directory {} does not exist", parent.display()));
    }
    Ok(())
}

/// A checked request, ready to plan.
#[derive(Debug)]
pub struct Builder {
    source: Source,
    plan_options: crate::plan::Options,
    /// The target platforms, in the order the index lists them; one for most builds.
    platforms: Vec<Platform>,
    settings: Settings,
    /// Names to tag the result with: `-t`, and `type=image` outputs' `name=`.
    names: Vec<Reference>,
    /// Names to push.
    push: Vec<Reference>,
    /// Outputs other than tags.
    files: Vec<Output>,
    /// `--label`s for the final image.
    labels: std::collections::BTreeMap<String, String>,
    cache_from: Vec<CacheSpec>,
    cache_to: Vec<CacheSpec>,
}

/// One platform's build: its image, the keys of the steps it is made of, and the steps
/// run and taken from the cache.
struct PlatformBuild {
    built: Built,
    steps: Vec<CacheKey>,
    ran: usize,
    cached: usize,
}

/// What a build produced and where it went.
#[derive(Debug)]
pub struct Outcome {
    /// The image ID: the config's digest; for several platforms, the index's digest.
    pub image_id: Digest,
    /// The image manifest in the store; for several platforms, the image index.
    pub manifest: Descriptor,
    /// Each platform's manifest (with its `platform`) when the build made an index.
    pub platforms: Vec<Descriptor>,
    /// The names it was tagged with.
    pub tagged: Vec<Reference>,
    /// The names it was pushed to, with the manifest's digest in the registry.
    pub pushed: Vec<(Reference, Digest)>,
    /// Where `-o` outputs wrote files (standard output left out).
    pub written: Vec<std::path::PathBuf>,
    /// Steps run, and steps taken from the cache.
    pub ran: usize,
    pub cached: usize,
    /// What the user should know that did not fail the build (a `--cache-from` that could
    /// not be used).
    pub warnings: Vec<String>,
    /// Blobs fetched from an imported cache.
    pub fetched: usize,
}

impl Builder {
    /// Check `request` before any work, as docker build does: the context is a directory,
    /// outputs agree on compression, pushes have names.
    pub fn new(request: Request) -> Result<Builder, BuildError> {
        check_context(&request.context)?;
        let mut platforms: Vec<Platform> = Vec::new();
        for p in &request.platforms {
            let p = p.clone().normalize();
            if !platforms.contains(&p) {
                platforms.push(p);
            }
        }
        if platforms.is_empty() {
            platforms.push(request.plan.target_platform.clone());
        }
        if platforms.len() > 1
            && let Some(o) = request.outputs.iter().find(|o| o.kind == Kind::Docker)
        {
            return Err(BuildError::Request(format!(
                "-o type=docker{}: a docker-archive holds one platform, and this build makes {} ({}); write type=oci for all of them, or pick one with --platform",
                o.dest
                    .as_deref()
                    .map(|d| format!(",dest={}", d.display()))
                    .unwrap_or_default(),
                platforms.len(),
                platforms
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let compression = {
            let mut chosen = request.outputs.iter().filter_map(|o| o.compression);
            let first = chosen.next();
            if chosen.any(|c| Some(c) != first) {
                return Err(BuildError::Request(
                    "outputs ask for different compressions; rbuild writes one set of layers per build".into(),
                ));
            }
            first
        };
        let level = request.outputs.iter().find_map(|o| o.compression_level);
        let mut names: Vec<Reference> = request.tags.clone();
        let mut push: Vec<Reference> = Vec::new();
        for o in &request.outputs {
            let Kind::Image { push: pushes } = o.kind else {
                continue;
            };
            let mut these = Vec::new();
            for n in &o.names {
                these.push(
                    Reference::parse(n)
                        .map_err(|e| {
                            BuildError::Request(format!(
                                "-o name={n}: invalid image name: {}",
                                crate::diag::chain(&e)
                            ))
                        })?
                        .with_default_tag(),
                );
            }
            if these.is_empty() {
                these = request.tags.clone();
            }
            if pushes {
                if these.is_empty() {
                    return Err(BuildError::Request(
                        "--push needs a name: pass -t NAME".into(),
                    ));
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
        let files: Vec<Output> = request
            .outputs
            .iter()
            .filter(|o| !matches!(o.kind, Kind::Image { .. }))
            .cloned()
            .collect();
        // What would fail only after the whole build is checked before it.
        for o in &files {
            check_destination(o)?;
        }
        for (id, source) in &request.secrets {
            if let super::settings::SecretSource::File(path) = source
                && let Err(e) = std::fs::File::open(path)
            {
                return Err(BuildError::Request(format!(
                    "--secret id={id}: cannot read {}: {e}",
                    path.display()
                )));
            }
        }
        // A cache holds the build's own layers: it cannot be of another compression.
        let layer_compression = compression.unwrap_or(LayerOptions::default().compression);
        if let Some(c) = request
            .cache_to
            .iter()
            .filter_map(|c| c.compression)
            .find(|c| *c != layer_compression)
        {
            return Err(BuildError::Request(format!(
                "--cache-to compression={c}: a cache holds this build's own layers, which are {layer_compression}; choose the layers' compression with -o ...,compression={c}, or leave compression= out"
            )));
        }
        let settings = Settings {
            state_root: request.state_root,
            context: request.context,
            dockerfile: request.dockerfile_path,
            no_cache: request.no_cache,
            pull: request.pull,
            network: request.network,
            secrets: request.secrets,
            ssh: request.ssh,
            limits: request.limits,
            extra_hosts: request.extra_hosts,
            shm_size: request.shm_size,
            ulimits: request.ulimits,
            layer: LayerOptions {
                compression: compression.unwrap_or(LayerOptions::default().compression),
                level,
                source_date_epoch: request.source_date_epoch,
                ..LayerOptions::default()
            },
            source_date_epoch: request.source_date_epoch,
            // Chroot isolation is Buildah's: full copies of each state, not overlays.
            snapshotter: request
                .snapshotter
                .or((request.isolation == super::isolation::Isolation::Chroot)
                    .then_some(crate::snapshot::snapshotter::Kind::Native)),
            allow_insecure: request.allow_insecure,
            isolation: request.isolation,
        };
        Ok(Builder {
            source: request.dockerfile,
            plan_options: request.plan,
            platforms,
            settings,
            names,
            push,
            files,
            labels: request.labels,
            cache_from: request.cache_from,
            cache_to: request.cache_to,
        })
    }

    /// Plan the build, once per target platform. A first plan finds the stages and their
    /// base images (and stops a Dockerfile that cannot be built before anything is
    /// pulled); the base images are resolved for that platform; the plan that builds then
    /// knows their ENV, as BuildKit expands words with it, and their ONBUILD triggers.
    /// Holds the builds lock from here on: a prune waits.
    pub fn plan(self, progress: &dyn Reporter) -> Result<Planned, BuildError> {
        let root = &self.settings.state_root;
        let store = Store::open(root).map_err(|source| BuildError::OpenStore {
            root: root.clone(),
            source: Box::new(source),
        })?;
        let running = builds_lock(root).shared()?;
        // Base images are pulled without their layers: the build fetches them when a step
        // needs them.
        let lazy = Arc::new(LazyBlobs::default());
        let mut plans = Vec::with_capacity(self.platforms.len());
        let mut bases = Bases::default();
        for platform in &self.platforms {
            let mut options = self.plan_options.clone();
            options.target_platform = platform.clone();
            let first = crate::plan::plan(&self.source, &options)
                .map_err(|d| BuildError::Dockerfile(Box::new(d)))?;
            let found = {
                let ids = Bases {
                    next_id: bases.next_id,
                    ..Bases::default()
                };
                let session =
                    Session::new(&first, &self.source, &self.settings, &store, progress, ids)?
                        .sharing(lazy.clone(), Arc::default(), Arc::default());
                resolve_bases(&session)?
            };
            options.base_env = found.env();
            options.base_onbuild = found.onbuild();
            let plan = crate::plan::plan(&self.source, &options)
                .map_err(|d| BuildError::Dockerfile(Box::new(d)))?;
            bases.next_id = found.next_id;
            bases.images.extend(found.images);
            plans.push(plan);
        }
        Ok(Planned {
            builder: self,
            plans,
            store,
            bases,
            lazy,
            _running: running,
        })
    }
}

/// A planned build: a plan per target platform (their lint findings and unused build args
/// are the caller's to show), the base images they were made with, and the store.
pub struct Planned {
    builder: Builder,
    plans: Vec<Plan>,
    store: Store,
    bases: Bases,
    /// Blobs known but not fetched (base images' layers, then imported caches').
    lazy: Arc<LazyBlobs>,
    _running: LockGuard,
}

impl Planned {
    /// The plan of the first target platform (the lints and unused build args of every
    /// platform's plan are the same: they come from the Dockerfile and the build args).
    pub fn plan(&self) -> &Plan {
        &self.plans[0]
    }

    /// Build the target stage for each platform, then tag, write and push the result: the
    /// image, or for several platforms an image index of their images, in the order the
    /// platforms were given (so its digest does not depend on which finished first).
    pub fn build(self, progress: &dyn Reporter) -> Result<Outcome, BuildError> {
        if self.plans.iter().any(|p| p.lint_failed()) {
            return Err(BuildError::LintFailed);
        }
        let Planned {
            builder,
            plans,
            store,
            bases,
            lazy,
            _running,
        } = self;
        let settings = &builder.settings;
        let root = &settings.state_root;
        // Before any step mounts anything: what a killed run left mounted goes, and so do
        // snapshots that the machine went down before writing.
        crate::snapshot::workdir::cleanup_stale(root)?;
        crate::snapshot::journal::recover(root).map_err(|source| BuildError::Files {
            what: format!("checking {} for unsynced snapshots", root.display()),
            source,
        })?;
        for plan in &plans {
            super::emulation::check(plan)?;
        }
        // The platforms build at once, sharing vertex numbers and the steps in flight: a
        // step that another platform is computing is waited for and taken from the cache.
        let ids = Arc::new(AtomicUsize::new(bases.next_id.max(1)));
        let inflight = Arc::new(InFlight::default());
        // `--cache-from`, read before any step (not under `--no-cache`: nothing from
        // earlier builds is used).
        let (travel, mut warnings) = if settings.no_cache {
            (Travel::default(), Vec::new())
        } else {
            import_all(&builder.cache_from, &lazy, progress, &mut || {
                ids.fetch_add(1, Ordering::Relaxed)
            })
        };
        let travel = Arc::new(travel);
        let proc_choice = Arc::new(ProcChoice::default());
        let inline = builder
            .cache_to
            .iter()
            .any(|c| c.location == CacheLocation::Inline);
        if inline && builder.push.is_empty() && builder.files.is_empty() {
            warnings.push(
                "--cache-to type=inline: the cache is in the image's manifest, in the local store only; push the image (--push) for other machines to build from it".into(),
            );
        }
        let multi = plans.len() > 1;
        // `type=tar` and `type=local` write the root filesystem: it is unpacked at the end.
        let needs_rootfs = builder
            .files
            .iter()
            .any(|o| matches!(o.kind, Kind::Tar | Kind::Local));
        let build_one = |plan: &Plan| -> Result<PlatformBuild, BuildError> {
            let mut session = Session::new(
                plan,
                &builder.source,
                settings,
                &store,
                progress,
                Bases {
                    images: bases.images.clone(),
                    next_id: ids.load(Ordering::Relaxed),
                },
            )?
            .sharing(lazy.clone(), travel.clone(), proc_choice.clone());
            if multi {
                session = session.joined(
                    ids.clone(),
                    inflight.clone(),
                    plan.target_platform.to_string(),
                );
            }
            let mut done = schedule(&session)?;
            session.save_hashes();
            let mut state = done
                .remove(&plan.target)
                .expect("the target stage was built");
            // `--label` goes on the final image over the Dockerfile's LABELs, without a
            // history entry, as docker build puts it.
            if !builder.labels.is_empty() {
                let cc = state
                    .image
                    .config
                    .config
                    .get_or_insert_with(Default::default);
                cc.labels.extend(builder.labels.clone());
            }
            // `--cache-to type=inline`: the final image's steps' records in its manifest
            // (the image ID, its config's digest, stays the same).
            let annotations = if inline {
                let steps: HashSet<CacheKey> = state.steps.iter().copied().collect();
                // As pushed: each deferred layer as its blob, made now.
                let records = session
                    .travel()
                    .records(Some(&steps))
                    .into_iter()
                    .map(|(k, r)| Ok((k, r.materialized(&store)?)))
                    .collect::<Result<_, BuildError>>()?;
                let value = inline_value(&records)?;
                Some([(INLINE_ANNOTATION.to_string(), value)].into())
            } else {
                None
            };
            let (manifest, config_digest) = commit_image(&session, &state, annotations)?;
            let (ran, cached) = session.counts();
            if !multi {
                ids.store(session.next_id(), Ordering::Relaxed);
            }
            let built = Built {
                manifest,
                config_digest,
                layers: state.layers.clone(),
                platform: plan.target_platform.clone(),
                lowers: if needs_rootfs {
                    session.lowers(None, &state.layers, state.diff_ids())?
                } else {
                    Vec::new()
                },
                snapshotter: session.snapshotter(),
            };
            Ok(PlatformBuild {
                built,
                steps: state.steps,
                ran,
                cached,
            })
        };
        let results: Vec<Result<PlatformBuild, BuildError>> = if multi {
            std::thread::scope(|s| {
                let running: Vec<_> = plans.iter().map(|p| s.spawn(|| build_one(p))).collect();
                running
                    .into_iter()
                    .map(|h| h.join().expect("a platform's build panicked"))
                    .collect()
            })
        } else {
            vec![build_one(&plans[0])]
        };
        let mut images: Vec<Built> = Vec::with_capacity(plans.len());
        let (mut ran, mut cached) = (0, 0);
        let mut final_steps = HashSet::new();
        for result in results {
            let one = result?;
            images.push(one.built);
            final_steps.extend(one.steps);
            ran += one.ran;
            cached += one.cached;
        }
        let next_id = std::cell::Cell::new(ids.load(Ordering::Relaxed));
        let new_id = || next_id.replace(next_id.get() + 1);
        // An image written to a file (OCI or docker) or carrying an inline cache has its
        // layers built here compressed now, and is tagged as it leaves. A push compresses
        // them into its uploads, and the names move to what it pushed. Either way the store
        // then names what leaves the machine; one only tagged here stays uncompressed.
        let leaves_as_files = inline
            || builder
                .files
                .iter()
                .any(|o| matches!(o.kind, Kind::Oci { .. } | Kind::Docker));
        if leaves_as_files {
            let id = new_id();
            let started = Instant::now();
            progress.event(Event::Start {
                id,
                name: "exporting layers".into(),
            });
            for image in &mut images {
                image.manifest = crate::layer::deferred::materialize(&store, &image.manifest)?;
            }
            progress.event(Event::Done {
                id,
                elapsed: started.elapsed(),
            });
        }
        let index = if images.len() > 1 {
            let bytes = crate::oci::manifest::to_canonical_oci(&Images::index_document(&images))?;
            Some(store.put_manifest(&bytes, &crate::oci::media_type::MediaType::OciIndex)?)
        } else {
            None
        };
        // Tags and file outputs hold every blob: layers left in a registry (an imported
        // cache's, a base image's) are fetched now, each once. A build whose result only
        // goes to registries fetches none: each push mounts or finds them there, and the
        // pushed names are not tagged here (the store names only whole images).
        let only_pushed = builder.files.is_empty()
            && !builder.push.is_empty()
            && builder.names.iter().all(|n| builder.push.contains(n));
        let deferred = DeferredLayers::new(root);
        let whole = images.iter().all(|i| {
            i.layers.iter().all(|l| {
                deferred.is_deferred(l)
                    || crate::oci::manifest::descriptor_digest(l)
                        .is_ok_and(|d| store.blobs().contains(&d))
            })
        });
        let tag_here = whole || !only_pushed;
        if tag_here {
            for image in &images {
                for layer in image.layers.iter().filter(|l| !deferred.is_deferred(l)) {
                    lazy.ensure(&store, layer)?;
                }
            }
            // A deferred layer's only copy is its snapshot: on disk before a tag names it.
            if !builder.names.is_empty() && ran > 0 {
                crate::snapshot::journal::sync(root).map_err(|source| BuildError::Files {
                    what: format!("writing back the snapshots under {}", root.display()),
                    source,
                })?;
            }
        }
        lazy.tag_whole(&store)?;
        let result = Images::new(images, index);
        let vertex = |name: String| {
            let id = new_id();
            progress.event(Event::Start { id, name });
            (id, Instant::now())
        };
        let done = |(id, t): (usize, Instant)| {
            progress.event(Event::Done {
                id,
                elapsed: t.elapsed(),
            })
        };
        let names = if tag_here {
            builder.names.clone()
        } else {
            Vec::new()
        };
        for name in &names {
            let v = vertex(format!("naming to {name}"));
            store.tag(name, result.descriptor().clone())?;
            done(v);
        }
        let mut written = Vec::new();
        for o in &builder.files {
            if let Some(d) = o
                .dest
                .as_deref()
                .filter(|d| *d != std::path::Path::new("-"))
            {
                written.push(d.to_path_buf());
            }
            let v = vertex(format!(
                "exporting to {}",
                o.dest
                    .as_deref()
                    .unwrap_or(std::path::Path::new("-"))
                    .display()
            ));
            super::output::write::write(&store, root, &result, o, builder.names.first())?;
            done(v);
        }
        let mut pushed = Vec::new();
        for name in &builder.push {
            let v = vertex(format!("pushing {name}"));
            let id = v.0;
            let say = |message: String| {
                progress.event(Event::Status {
                    id,
                    message: message.trim_start().to_string(),
                })
            };
            let what = crate::registry::publish::What::Built {
                top: result.descriptor(),
                remote: lazy.as_ref(),
            };
            let digest =
                crate::registry::publish::publish(&store, what, name, &Platform::host(), &say)?;
            pushed.push((name.clone(), digest));
            done(v);
        }
        let mut manifest = result.descriptor().clone();
        if !pushed.is_empty() && !leaves_as_files {
            // Its blobs were made by the push: nothing is compressed again.
            let made = crate::layer::deferred::materialize(&store, &manifest)?;
            for name in &names {
                store.retag_if(name, &manifest, made.clone())?;
            }
            manifest = made;
        }
        let exported = export_all(
            &builder.cache_to,
            &travel,
            &final_steps,
            &store,
            &lazy,
            &settings.layer,
            progress,
            &mut || new_id(),
        )?;
        warnings.extend(exported);
        warnings.extend(proc_choice.note());
        // `[gc] keep-storage` in <root>/config.toml: the build cache, cache mounts and
        // snapshots are kept under it after every build (other builds' items are held).
        match crate::gc::usage::configured_limit(root) {
            Ok(None) => {}
            Ok(Some(limit)) => {
                let v = vertex(format!(
                    "keeping the build cache under {}",
                    crate::progress::human_size(limit)
                ));
                let records = super::cache::BuildCache::new(root).entries();
                let evicted =
                    crate::gc::usage::keep_storage(&store, limit, records).map_err(|e| {
                        BuildError::Files {
                            what: "keeping the build cache under gc.keep-storage".into(),
                            source: std::io::Error::other(crate::diag::chain(&e)),
                        }
                    })?;
                progress.event(Event::Status {
                    id: v.0,
                    message: format!(
                        "{} item(s) removed, {} now",
                        evicted.items.len(),
                        crate::progress::human_size(evicted.after)
                    ),
                });
                done(v);
            }
            Err(e) => warnings.push(e),
        }
        Ok(Outcome {
            // Several platforms: the ID is the index's digest, the one the names now name.
            image_id: if result.is_multi_platform() {
                crate::oci::manifest::descriptor_digest(&manifest)?
            } else {
                result.image_id()
            },
            warnings,
            fetched: lazy.fetched(),
            manifest,
            platforms: result.platform_manifests(),
            tagged: names,
            pushed,
            written,
            ran,
            cached,
        })
    }
}
