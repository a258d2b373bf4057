//! Pull: one image from an ordered list of sources (mirrors first) into the store. The
//! manifest (an index is narrowed to the wanted platform) and the config are stored as
//! their exact bytes; layers are fetched in parallel straight into the store, verified as
//! they stream; blobs the store already holds are not fetched again. The tag moves last, so
//! an interrupted pull never leaves a tag pointing at missing blobs.

use std::sync::Mutex;

use super::client::{Client, Origin, RegistryError};
use super::registries_conf::{ConfigError, RegistriesConf};
use crate::oci::digest::{Digest, DigestAndSize};
use crate::oci::manifest::{
    Descriptor, Manifest, ManifestError, descriptor_digest, parse_manifest_any, select_manifest,
};
use crate::oci::media_type::MediaType;
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::store::{Store, StoreError};

/// One place to pull from: a registry origin and the repository path on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub origin: Origin,
    pub repository: String,
}

/// Progress of a pull, for the renderer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Trying a source (the first, or a fallback after `error`).
    Source {
        host: String,
        repository: String,
        error: Option<String>,
    },
    Manifest {
        digest: Digest,
        media_type: String,
    },
    /// A blob is already in the store.
    Cached {
        digest: Digest,
        size: u64,
    },
    /// A blob download starts.
    Started {
        digest: Digest,
        size: u64,
    },
    /// Bytes of a blob verified and written so far (reported every 512 KiB).
    Progress {
        digest: Digest,
        written: u64,
    },
    Downloaded {
        digest: Digest,
        size: u64,
    },
    Tagged {
        reference: String,
        digest: Digest,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pulling {reference}: no source to pull from")]
    NoSource { reference: String },
    /// Every source failed: what each one answered, in the order they were tried.
    #[error("pulling {reference}: no source had it ({})", .tried.iter().map(|(s, e)| format!("{s}: {e}")).collect::<Vec<_>>().join("; "))]
    AllSources {
        reference: String,
        tried: Vec<(String, String)>,
    },
    #[error("pulling {reference} from {host}")]
    Registry {
        reference: String,
        host: String,
        source: Box<RegistryError>,
    },
    #[error("pulling {reference}")]
    Manifest {
        reference: String,
        source: Box<ManifestError>,
    },
    #[error("pulling {reference}: the image has no manifest for {platform} (it offers: {offered})")]
    NoPlatform {
        reference: String,
        platform: String,
        offered: String,
    },
    #[error("pulling {reference}")]
    Store {
        reference: String,
        source: Box<StoreError>,
    },
    #[error("pulling {name}")]
    Config {
        name: String,
        source: Box<ConfigError>,
    },
}

/// What was pulled.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// What the tag now names: the index when the registry served one, else the manifest.
    pub tagged: Descriptor,
    pub source: Source,
    /// Whether the name was tagged: false when layers were left in the registry
    /// ([`Layers::Leave`]).
    pub whole: bool,
}

/// Whether a pull fetches the image's layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layers {
    /// Every layer the store lacks, then the tag.
    Fetch,
    /// Manifests and config only; the layers stay in the registry (fetched later by the
    /// caller, which knows from [`Pulled::source`] where they are), and the name is tagged
    /// only if the store has every layer already.
    Leave,
}

/// How many blobs are fetched at once.
pub(crate) const JOBS: usize = 3;

/// Pull an image named as a user types it (`python:3.10`, `ghcr.io/o/a@sha256:…`): a
/// short name is expanded as registries.conf says, an untagged name means `:latest`, and
/// each candidate is pulled from its mirrors and then its primary location. Returns the
/// name it was stored under, and what was pulled.
pub fn pull_name(
    conf: &RegistriesConf,
    client: &Client,
    store: &Store,
    name: &str,
    platform: &Platform,
    events: &(dyn Fn(&Reference, Event) + Sync),
) -> Result<(Reference, Pulled), PullError> {
    pull_name_as(conf, client, store, name, platform, Layers::Fetch, events)
}

/// [`pull_name`], fetching the layers or leaving them (`layers`).
pub fn pull_name_as(
    conf: &RegistriesConf,
    client: &Client,
    store: &Store,
    name: &str,
    platform: &Platform,
    layers: Layers,
    events: &(dyn Fn(&Reference, Event) + Sync),
) -> Result<(Reference, Pulled), PullError> {
    let config = |source| PullError::Config {
        name: name.to_string(),
        source: Box::new(source),
    };
    let candidates: Vec<Reference> = conf
        .expand_short_name(name)
        .map_err(config)?
        .into_iter()
        .map(|r| r.with_default_tag())
        .collect();
    let mut last = None;
    for reference in candidates {
        let resolved = conf.resolve(&reference).map_err(config)?;
        let sources: Vec<Source> = resolved
            .endpoints
            .iter()
            .map(|e| Source {
                origin: Origin::new(e.api_host(), e.insecure()),
                repository: e.repository().to_string(),
            })
            .collect();
        match pull_as(
            client,
            store,
            &sources,
            &reference,
            platform,
            layers,
            &|ev| events(&reference, ev),
        ) {
            Ok(p) => return Ok((reference, p)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(PullError::NoSource {
        reference: name.to_string(),
    }))
}

/// Pull `reference` for `platform` from the first source that works, into `store`.
pub fn pull(
    client: &Client,
    store: &Store,
    sources: &[Source],
    reference: &Reference,
    platform: &Platform,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Pulled, PullError> {
    pull_as(
        client,
        store,
        sources,
        reference,
        platform,
        Layers::Fetch,
        events,
    )
}

fn pull_as(
    client: &Client,
    store: &Store,
    sources: &[Source],
    reference: &Reference,
    platform: &Platform,
    layers: Layers,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Pulled, PullError> {
    let name = reference.to_string();
    let mut last: Option<PullError> = None;
    let mut tried: Vec<(String, String)> = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        events(Event::Source {
            host: source.origin.host.clone(),
            repository: source.repository.clone(),
            error: last.as_ref().map(|e: &PullError| crate::diag::chain(e)),
        });
        match pull_from(client, store, source, reference, platform, layers, events) {
            Ok(p) => return Ok(p),
            // A mirror that fails hands over to the next source; if every one fails, each
            // one's answer is told (a mirror's "not found" matters as much as the last
            // source's DNS failure).
            Err(e) if is_retryable_elsewhere(&e) => {
                let shown = format!("{}/{}", source.origin.host, source.repository);
                // Each answer without the "pulling NAME (from HOST)" every one starts with.
                let said = crate::diag::chain(&e);
                let said = said
                    .strip_prefix(&format!("pulling {name} from {}: ", source.origin.host))
                    .or_else(|| said.strip_prefix(&format!("pulling {name}: ")))
                    .unwrap_or(&said)
                    .to_string();
                tried.push((shown, said));
                if i + 1 == sources.len() {
                    return Err(if tried.len() == 1 {
                        e
                    } else {
                        PullError::AllSources {
                            reference: name,
                            tried,
                        }
                    });
                }
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(PullError::NoSource { reference: name }))
}

/// Errors that another source may not have: the registry's, not the image's or the store's.
fn is_retryable_elsewhere(e: &PullError) -> bool {
    matches!(e, PullError::Registry { .. } | PullError::NoPlatform { .. })
}

fn pull_from(
    client: &Client,
    store: &Store,
    source: &Source,
    reference: &Reference,
    platform: &Platform,
    layers: Layers,
    events: &(dyn Fn(Event) + Sync),
) -> Result<Pulled, PullError> {
    let name = reference.to_string();
    let reg = |e| PullError::Registry {
        reference: name.clone(),
        host: source.origin.host.clone(),
        source: Box::new(e),
    };
    let st = |e| PullError::Store {
        reference: name.clone(),
        source: Box::new(e),
    };
    let man = |e| PullError::Manifest {
        reference: name.clone(),
        source: Box::new(e),
    };
    let wanted = reference.manifest_reference();

    let top = client
        .get_manifest(&source.origin, &source.repository, wanted)
        .map_err(reg)?;
    events(Event::Manifest {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
    });
    let parsed = parse_manifest_any(
        &top.bytes,
        Some(&top.media_type)
            .filter(|m| !m.is_empty())
            .map(String::as_str),
    )
    .map_err(man)?;
    let tagged = store
        .put_manifest(&top.bytes, &parsed.media_type())
        .map_err(st)?;

    let image = match parsed {
        Manifest::Image(m) => m,
        Manifest::Index(index) => {
            let entry = select_manifest(&index, platform).ok_or_else(|| {
                let offered: Vec<String> = index
                    .manifests()
                    .iter()
                    .filter_map(|d| d.platform().as_ref().map(|p| Platform::from(p).to_string()))
                    .collect();
                PullError::NoPlatform {
                    reference: name.clone(),
                    platform: platform.to_string(),
                    offered: offered.join(", "),
                }
            })?;
            let digest = descriptor_digest(entry).map_err(man)?;
            let fetched = client
                .get_manifest(&source.origin, &source.repository, digest.as_str())
                .map_err(reg)?;
            events(Event::Manifest {
                digest: fetched.digest.clone(),
                media_type: fetched.media_type.clone(),
            });
            let media = MediaType::parse(entry.media_type().as_ref());
            let Manifest::Image(m) =
                parse_manifest_any(&fetched.bytes, Some(media.as_str())).map_err(man)?
            else {
                return Err(man(ManifestError::KindMismatch {
                    header: media.to_string(),
                    body: "index".into(),
                }));
            };
            store.put_manifest(&fetched.bytes, &media).map_err(st)?;
            m
        }
    };

    // Config and layers: the config first (small), then the layers in parallel.
    let mut blobs: Vec<&Descriptor> = vec![image.config()];
    let whole = layers == Layers::Fetch
        || image
            .layers()
            .iter()
            .all(|d| descriptor_digest(d).is_ok_and(|g| store.blobs().contains(&g)));
    if layers == Layers::Fetch {
        blobs.extend(image.layers().iter());
    }
    let todo: Mutex<Vec<&Descriptor>> = Mutex::new(blobs.into_iter().rev().collect());
    let first_error: Mutex<Option<PullError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..JOBS {
            scope.spawn(|| {
                loop {
                    if first_error.lock().expect("error lock").is_some() {
                        return;
                    }
                    let Some(desc) = todo.lock().expect("todo lock").pop() else {
                        return;
                    };
                    if let Err(e) = fetch_blob(client, store, source, desc, &name, events) {
                        first_error.lock().expect("error lock").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error lock") {
        return Err(e);
    }

    let digest = descriptor_digest(&tagged).map_err(man)?;
    if whole {
        store.tag(reference, tagged.clone()).map_err(st)?;
        events(Event::Tagged {
            reference: name,
            digest,
        });
    }
    Ok(Pulled {
        tagged,
        source: source.clone(),
        whole,
    })
}

/// Fetch one blob of `source` into `store` (nothing when the store has it), verified as
/// it streams; `name` is what errors say was being pulled.
pub(crate) fn fetch_blob(
    client: &Client,
    store: &Store,
    source: &Source,
    desc: &Descriptor,
    name: &str,
    events: &(dyn Fn(Event) + Sync),
) -> Result<(), PullError> {
    let man = |e| PullError::Manifest {
        reference: name.to_string(),
        source: Box::new(e),
    };
    let st = |e| PullError::Store {
        reference: name.to_string(),
        source: Box::new(e),
    };
    let digest = descriptor_digest(desc).map_err(man)?;
    let size = desc.size();
    if store.blobs().contains(&digest) {
        events(Event::Cached { digest, size });
        return Ok(());
    }
    let mut writer = store.blobs().writer().map_err(st)?;
    events(Event::Started {
        digest: digest.clone(),
        size,
    });
    let mut sink = Progress {
        inner: &mut writer,
        digest: &digest,
        written: 0,
        reported: 0,
        events,
    };
    client
        .get_blob(
            &source.origin,
            &source.repository,
            &digest,
            Some(size),
            &mut sink,
        )
        .map_err(|e| PullError::Registry {
            reference: name.to_string(),
            host: source.origin.host.clone(),
            source: Box::new(e),
        })?;
    let expected = DigestAndSize {
        digest: digest.clone(),
        size,
    };
    writer.commit(&expected).map_err(st)?;
    events(Event::Downloaded { digest, size });
    Ok(())
}

/// Counts what reaches the store and reports it every [`PROGRESS_STEP`] bytes.
struct Progress<'a, W: std::io::Write> {
    inner: &'a mut W,
    digest: &'a Digest,
    written: u64,
    reported: u64,
    events: &'a (dyn Fn(Event) + Sync),
}

const PROGRESS_STEP: u64 = 512 << 10;

impl<W: std::io::Write> std::io::Write for Progress<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        if self.written - self.reported >= PROGRESS_STEP {
            self.reported = self.written;
            (self.events)(Event::Progress {
                digest: self.digest.clone(),
                written: self.written,
            });
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
