//! Base images: resolved before the build (from the store, or pulled), so the planner can
//! expand words with their ENV and run their ONBUILD triggers ([`resolve_bases`]), and
//! turned into a stage's first state ([`Engine::base_image`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::Options;
use super::cache::KeyHasher;
use super::engine::{BuildError, Engine, State};
use super::stage_image::StageImage;
use crate::diag::Source;
use crate::dockerfile::instruction::Instruction;
use crate::oci::manifest::descriptor_digest;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::plan::{Base, Plan};
use crate::progress::{Event, Reporter};
use crate::registry::client::Client;
use crate::registry::credentials::CredentialStore;
use crate::registry::pull::{self, pull_name};
use crate::registry::registries_conf::RegistriesConf;
use crate::snapshot::overlay;
use crate::snapshot::snapshotter::Kind as Snapshotter;
use crate::store::{Image, Store, StoreError};

/// The base images of a plan's stages, resolved before the build (pulled where needed),
/// so that their ENV can be given to the planner ([`Bases::env`]) and the build uses the
/// very images the plan was made with.
#[derive(Debug, Default)]
pub struct Bases {
    /// By (name as FROM gives it, platform).
    pub(super) images: BTreeMap<(String, String), Image>,
    pub(super) next_id: usize,
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
                        .map(|e| {
                            let (k, v) = super::stage_image::key_value(e);
                            (k.to_string(), v.to_string())
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

impl Engine<'_> {
    pub(super) fn base_image(
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
    pub(super) fn resolve_image(
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
                let sizes = std::sync::Mutex::new(BTreeMap::new());
                let events = |r: &Reference, ev: pull::Event| {
                    let message = match ev {
                        pull::Event::Started { digest, size } => {
                            sizes.lock().expect("sizes").insert(digest.clone(), size);
                            format!("{digest}: downloading {size} bytes")
                        }
                        pull::Event::Progress { digest, written } => {
                            let total = sizes.lock().expect("sizes").get(&digest).copied();
                            progress.event(Event::Bytes {
                                id,
                                what: digest.hex()[..12].to_string(),
                                current: written,
                                total: total.unwrap_or(written),
                            });
                            return;
                        }
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
}
