//! Pushing a local image by name: to where registries.conf sends the destination's name,
//! with the machine's credentials, saying what happens as lines (`rbuild push` prints
//! them; a build's `--push` reports them as progress).

use super::client::{Client, Origin, PushedBlob};
use super::credentials::CredentialStore;
use super::push::{self, Destination, PushError, RemoteBlobs};
use super::registries_conf::{ConfigError, RegistriesConf};
use crate::oci::digest::Digest;
use crate::oci::manifest::Descriptor;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::progress::human_size;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("reading registries.conf")]
    Conf(#[source] Box<ConfigError>),
    #[error("choosing where to push {dest}")]
    Endpoint {
        dest: String,
        #[source]
        source: Box<ConfigError>,
    },
    #[error(transparent)]
    Push(#[from] PushError),
}

/// What to push: an image of the store by name, or a descriptor the store holds (a
/// build's result, whose layers may be elsewhere: `remote`).
pub enum What<'a> {
    Name(&'a Reference),
    Built {
        top: &'a Descriptor,
        remote: &'a dyn RemoteBlobs,
    },
}

/// Push the store's `image` to `dest` (`platform`'s manifest when the image is an index
/// whose other platforms are not local); returns the manifest's digest in the registry.
pub fn push_by_name(
    store: &Store,
    image: &Reference,
    dest: &Reference,
    platform: &Platform,
    say: &dyn Fn(String),
) -> Result<Digest, PublishError> {
    publish(store, What::Name(image), dest, platform, say)
}

/// Push `what` to `dest`, saying what happens to each blob.
pub fn publish(
    store: &Store,
    what: What<'_>,
    dest: &Reference,
    platform: &Platform,
    say: &dyn Fn(String),
) -> Result<Digest, PublishError> {
    let conf = RegistriesConf::load_default().map_err(|e| PublishError::Conf(Box::new(e)))?;
    let endpoint = conf
        .push_endpoint(dest)
        .map_err(|source| PublishError::Endpoint {
            dest: dest.to_string(),
            source: Box::new(source),
        })?;
    let origin = Origin::new(endpoint.api_host(), endpoint.insecure());
    let client = Client::new(Box::new(CredentialStore::from_env()));
    let tag = dest.manifest_reference().to_string();
    let shown = match &what {
        What::Name(image) => image.to_string(),
        What::Built { .. } => "the image".to_string(),
    };
    say(format!(
        "pushing {shown} to {}/{}",
        endpoint.host(),
        endpoint.repository()
    ));
    let destination = Destination {
        origin: &origin,
        repository: endpoint.repository(),
        tag: &tag,
    };
    let events = |ev| match ev {
        push::Event::Blob { digest, size, how } => {
            let what = match how {
                PushedBlob::Existed => "already there",
                PushedBlob::Mounted => "mounted",
                PushedBlob::Uploaded => "uploaded",
            };
            say(format!(
                "  {}: {what} ({})",
                digest.short(),
                human_size(size)
            ));
        }
        push::Event::SinglePlatform { platform } => say(format!(
            "  only {platform} of this multi-platform image is local: pushing that platform's manifest"
        )),
        push::Event::Manifest { .. } => {}
    };
    let digest = match what {
        What::Name(image) => push::push(&client, store, image, destination, platform, &events)?,
        What::Built { top, remote } => push::push_descriptor(
            &client,
            store,
            top,
            &dest.to_string(),
            destination,
            platform,
            Some(remote),
            &events,
        )?,
    };
    say(format!("{tag}: digest: {digest}"));
    Ok(digest)
}
