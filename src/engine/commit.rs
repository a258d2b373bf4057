//! A step's result joins its stage: the layer (written from what the step changed, or
//! taken from the cache) and its snapshot go on the stage's state, with its history entry
//! ([`add_layer`]); and the finished stage becomes an image in the store ([`commit_image`]).

use std::path::Path;

use super::cache::LayerRecord;
use super::error::BuildError;
use super::session::Session;
use super::state::State;
use crate::gc::lease::Kind as LeaseKind;
use crate::layer::deferred::DeferredLayers;
use crate::layer::{LayerOptions, write_layer};
use crate::oci::digest::Digest;
use crate::oci::manifest::{Descriptor, descriptor_digest};
use crate::oci::media_type::{Compression, MediaType};
use crate::snapshot::change::Change;
use crate::snapshot::snapshotter::Kind as Snapshotter;

/// Commit the layer of what a step changed (`changes`, read from `upper`): a deferred
/// layer (`layer::deferred`), named by its diff ID. On the overlay snapshotter no blob is
/// written (`upper` becomes its snapshot); the native snapshotter's trees are a cache, so
/// there the uncompressed tar goes into the store. Its compressed blob is made when
/// something needs one.
pub(crate) fn write(
    session: &Session<'_>,
    upper: &Path,
    changes: &[Change],
) -> Result<LayerRecord, BuildError> {
    let options = LayerOptions {
        compression: Compression::None,
        ..session.settings().layer.clone()
    };
    let digests = match session.snapshotter() {
        Snapshotter::Overlay => write_layer(upper, changes, &options, std::io::sink())?,
        Snapshotter::Native => {
            let mut writer = session.store().blobs().writer()?;
            let digests = write_layer(upper, changes, &options, &mut writer)?;
            writer.commit(&digests.digest)?;
            digests
        }
    };
    Ok(LayerRecord {
        media_type: MediaType::OciLayer.to_string(),
        digest: digests.digest,
        size: digests.size,
        diff_id: digests.diff_id,
    })
}

/// Add a step's result to the stage: its layer, if it made one (its snapshot published
/// from `upper`; a cached step's is unpacked when a later step needs it), and its history
/// entry.
pub(crate) fn add_layer(
    session: &Session<'_>,
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
    let desc = layer.descriptor();
    if let Some(upper) = upper {
        let (kind, dir, holds) = match session.snapshotter() {
            Snapshotter::Overlay => (
                LeaseKind::Snapshot,
                session.snapshots().publish(upper, &chain)?,
                Some(&chain),
            ),
            Snapshotter::Native => (
                LeaseKind::Tree,
                session.trees().publish(upper, &chain)?,
                None,
            ),
        };
        // Before any record or tag names the layer: where its files are, and how to
        // make its blob.
        DeferredLayers::new(&session.settings().state_root).committed(
            &layer.diff_id,
            holds,
            &session.settings().layer,
        )?;
        // Held like every snapshot the build uses; one removed already is made again
        // from the layer when a step needs it.
        session
            .leases()
            .hold(kind, chain.hex(), &dir)
            .map_err(|source| BuildError::Files {
                what: format!("holding {}", dir.display()),
                source,
            })?;
    }
    state.layers.push(desc);
    state.chain = Some(chain);
    state.image.push_layer(layer.diff_id.clone());
    state
        .image
        .push_history(created_by, false, state.clock.clone());
    Ok(())
}

/// Store the stage's config and manifest (with `annotations`, when there are any); returns
/// the manifest's descriptor and the config's digest.
pub(crate) fn commit_image(
    session: &Session<'_>,
    state: &State,
    annotations: Option<std::collections::HashMap<String, String>>,
) -> Result<(Descriptor, Digest), BuildError> {
    let store = session.store();
    let mut config = state.image.config.clone();
    config.created = state.clock.clone();
    let config_bytes = config.to_canonical_json()?;
    let config_desc = store.put_manifest(
        &config_bytes,
        &MediaType::parse(crate::oci::media_type::OCI_CONFIG),
    )?;
    let mut manifest =
        crate::oci::manifest::image_manifest(config_desc.clone(), state.layers.clone());
    manifest.set_annotations(annotations);
    let bytes = crate::oci::manifest::to_canonical_oci(&manifest)?;
    let desc = store.put_manifest(
        &bytes,
        &MediaType::parse(crate::oci::media_type::OCI_MANIFEST),
    )?;
    let config_digest = descriptor_digest(&config_desc)?;
    Ok((desc, config_digest))
}
