//! Pushing a local image by name: to where registries.conf sends the destination's name,
//! with the machine's credentials, saying what happens as lines (`rbuild push` prints
//! them; a build's `--push` reports them as progress).

use super::client::{Client, Origin, PushedBlob};
use super::credentials::CredentialStore;
use super::push::{self, Destination, PushError};
use super::registries_conf::{ConfigError, RegistriesConf};
use crate::oci::digest::Digest;
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

/// Push the store's `image` to `dest` (`platform`'s manifest when the image is an index
/// whose other platforms are not local); returns the manifest's digest in the registry.
pub fn push_by_name(
    store: &Store,
    image: &Reference,
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
    say(format!(
        "pushing {image} to {}/{}",
        endpoint.host(),
        endpoint.repository()
    ));
    let destination = Destination {
        origin: &origin,
        repository: endpoint.repository(),
        tag: &tag,
    };
    let digest = push::push(
        &client,
        store,
        image,
        destination,
        platform,
        &|ev| match ev {
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
        },
    )?;
    say(format!("{tag}: digest: {digest}"));
    Ok(digest)
}
