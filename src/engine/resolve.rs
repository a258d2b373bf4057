//! Images a build reads: resolved before the final plan (from the store, or pulled) so the
//! planner can expand words with their ENV and run their ONBUILD triggers
//! ([`resolve_bases`]); turned into a stage's first state ([`base_state`]); and what
//! `COPY --from` or `RUN --mount=from=` names, a stage or an image ([`state_from`]).

use std::collections::BTreeMap;
use std::time::Instant;

use super::bases::Bases;
use super::cache::KeyEncoder;
use super::error::BuildError;
use super::session::Session;
use super::stage_image::StageImage;
use super::state::{State, StateRef};
use crate::dockerfile::instruction::Instruction;
use crate::oci::manifest::descriptor_digest;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::plan::{Base, NamedContext};
use crate::progress::Event;
use crate::registry::client::Client;
use crate::registry::credentials::CredentialStore;
use crate::registry::pull::{self, Layers, pull_name_as};
use crate::store::Image;

/// Resolve the base images of the stages `plan` needs: from the store, or pulled.
pub(crate) fn resolve_bases(session: &Session<'_>) -> Result<Bases, BuildError> {
    let plan = session.plan();
    let progress = session.progress();
    let mut images = BTreeMap::new();
    for index in plan.needed_stages() {
        let stage = &plan.stages[index];
        let Base::Image(name) = &stage.base else {
            continue;
        };
        let platform = stage
            .platform
            .clone()
            .unwrap_or_else(|| plan.target_platform.clone());
        let key = (name.clone(), platform.to_string());
        if images.contains_key(&key) {
            continue;
        }
        let id = session.id();
        progress.event(Event::Start {
            id,
            name: format!("[internal] load metadata for {name}"),
        });
        let started = Instant::now();
        let image = resolve_image(session, id, name, &platform, &stage.from)?;
        progress.event(Event::Done {
            id,
            elapsed: started.elapsed(),
        });
        images.insert(key, image);
    }
    Ok(Bases {
        images,
        next_id: session.next_id(),
    })
}

/// A stage's first state: the image `name` for `platform` (resolved before the build, or
/// now). Its layers are unpacked when a step first needs them (`Session::lowers`).
pub(crate) fn base_state(
    session: &Session<'_>,
    id: usize,
    name: &str,
    platform: &Platform,
    from: &Instruction,
) -> Result<State, BuildError> {
    let resolve_err = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::ResolveBase {
        name: name.to_string(),
        source: e,
    };
    let image = match session.bases().get(name, &platform.to_string()) {
        Some(image) => image.clone(),
        None => resolve_image(session, id, name, platform, from)?,
    };
    let manifest_digest =
        descriptor_digest(&image.descriptor).map_err(|e| resolve_err(Box::new(e)))?;
    let diff_ids = image.config.rootfs.diff_ids.clone();
    let clock = image.config.created.clone().or_else(|| session.created());
    Ok(State {
        clock,
        key: KeyEncoder::new("image", None)
            .str("manifest", manifest_digest.as_str())
            .finish(),
        chain: crate::snapshot::chain_ids(&diff_ids).pop(),
        layers: image.manifest.layers().to_vec(),
        steps: Vec::new(),
        image: StageImage::from_base(image.config),
        platform: platform.clone(),
    })
}

/// The image `name` for `platform`: from the store, or (missing there, or `--pull`) from
/// its registry.
pub(crate) fn resolve_image(
    session: &Session<'_>,
    id: usize,
    name: &str,
    platform: &Platform,
    from: &Instruction,
) -> Result<Image, BuildError> {
    let resolve_err = |e: Box<dyn std::error::Error + Send + Sync>| BuildError::ResolveBase {
        name: name.to_string(),
        source: e,
    };
    // A `--build-context NAME=oci-layout://...`: from the layout, into the store untagged.
    if let Some(spec) = name.strip_prefix(super::layout::SCHEME) {
        let image = super::layout::import(session.store(), spec, platform)?;
        return Ok(image);
    }
    let reference = Reference::parse(name)
        .map_err(|e| {
            session.err_at(
                from,
                format!("invalid base image {name:?}: {}", crate::diag::chain(&e)),
            )
        })?
        .with_default_tag();
    let store = session.store();
    let local = if session.settings().pull {
        None
    } else {
        store.local_image(&reference, platform)?
    };
    let image = match local {
        Some(image) => image,
        None => {
            let conf = session
                .registries_conf()
                .map_err(|e| resolve_err(Box::new(e)))?;
            let client = Client::new(Box::new(CredentialStore::from_env()));
            let progress = session.progress();
            let sizes = std::sync::Mutex::new(BTreeMap::new());
            let events = |r: &Reference, ev: pull::Event| {
                let message = match ev {
                    pull::Event::Started { digest, size } => {
                        sizes.lock().expect("sizes").insert(digest.clone(), size);
                        format!(
                            "{}: downloading {}",
                            digest.short(),
                            crate::progress::human_size(size)
                        )
                    }
                    pull::Event::Progress { digest, written } => {
                        let total = sizes.lock().expect("sizes").get(&digest).copied();
                        progress.event(Event::Bytes {
                            id,
                            what: digest.short().to_string(),
                            current: written,
                            total: total.unwrap_or(written),
                        });
                        return;
                    }
                    pull::Event::Source {
                        host, repository, ..
                    } => format!("pulling {r} from {host}/{repository}"),
                    pull::Event::Downloaded { digest, size } => {
                        format!(
                            "{}: downloaded {}",
                            digest.short(),
                            crate::progress::human_size(size)
                        )
                    }
                    pull::Event::Cached { digest, .. } => format!("{digest}: present"),
                    _ => return,
                };
                progress.event(Event::Status { id, message });
            };
            // Shown at the FROM line, under the image's name, with what each source said.
            // Manifests and config only: the layers are fetched when a step needs them
            // (`Session::lowers`), or never, when every step comes from an imported cache.
            let (pulled, got) = pull_name_as(conf, &client, store, name, platform, Layers::Leave, &events)
                .map_err(|e| {
                    let word = from
                        .node
                        .args
                        .iter()
                        .find(|a| !a.value.starts_with("--"))
                        .map_or(from.node.keyword_span, |a| a.span);
                    BuildError::Step(Box::new(
                        crate::diag::Diagnostic::error(format!(
                            "base image {name}: {}",
                            crate::diag::chain(&e)
                        ))
                        .at(session.source(), word)
                        .with_hint(
                            "check the name and tag, and that the registry (or its registries.conf mirror) has it for this platform; `rbuild pull NAME` tries it alone",
                        ),
                    ))
                })?;
            let image = store.image_at(&got.tagged, platform)?;
            if !got.whole {
                session
                    .lazy()
                    .pulled(&pulled, &got.tagged, image.manifest.layers(), &got.source);
            }
            image
        }
    };
    let actual = image.config.platform();
    if !platform.matches(&actual) {
        return Err(session.err_at(
            from,
            format!(
                "{name} is a {actual} image, which does not match the stage's platform {platform}"
            ),
        ));
    }
    Ok(image)
}

/// What `COPY --from=NAME` or `RUN --mount=from=NAME` reads: an earlier stage, or an image
/// (resolved and unpacked). Nothing is mounted: the key of the stage or image says what the
/// tree holds, and [`StateRef::open`] mounts it when a step runs.
pub(crate) fn state_from(
    session: &Session<'_>,
    name: &str,
    state: &State,
    done: &BTreeMap<usize, State>,
    instruction: &Instruction,
) -> Result<StateRef, BuildError> {
    if let Some(index) = session.plan().stage_index(name) {
        let Some(stage) = done.get(&index) else {
            return Err(session.err_at(
                instruction,
                format!("stage {name:?} is not built before this step (a stage can only copy from earlier stages)"),
            ));
        };
        return Ok(stage.to_ref());
    }
    // A `--build-context` of that name: an image in place of the name, or a directory
    // (which only COPY reads, before it gets here).
    let name = match session.plan().named_contexts.get(name) {
        Some(NamedContext::Image(reference)) => reference.as_str(),
        Some(NamedContext::Dir(dir)) => {
            return Err(session.err_at(
                instruction,
                format!(
                    "--from={name}: the build context {name} is a directory ({}); RUN --mount cannot read it yet, COPY --from can",
                    dir.display()
                ),
            ));
        }
        None => name,
    };
    let id = session.id();
    Ok(base_state(session, id, name, &state.platform, instruction)?.to_ref())
}
