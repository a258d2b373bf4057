//! `rbuild pull` and `rbuild images`: the image commands that talk to registries and the
//! local store.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use rbuild::diag::chain;
use rbuild::oci::manifest::descriptor_digest;
use rbuild::oci::media_type::MediaType;
use rbuild::oci::platform::Platform;
use rbuild::progress::human_size;
use rbuild::registry::client::Client;
use rbuild::registry::credentials::CredentialStore;
use rbuild::registry::pull::{Event, pull_name};
use rbuild::registry::registries_conf::RegistriesConf;
use rbuild::store::Store;

use rbuild::oci::reference::Reference;

use super::args::{ImagesArgs, InspectArgs, PruneArgs, PullArgs, PushArgs, RmiArgs, TagArgs};

/// A local image name as typed: normalised, `:latest` when untagged.
pub(super) fn local_name(input: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(input)
        .with_context(|| format!("invalid image name {input:?}"))?
        .with_default_tag())
}

pub(super) fn open_store(root: &Path) -> anyhow::Result<Store> {
    Store::open(root).with_context(|| format!("opening the store at {}", root.display()))
}

pub(super) fn platform_or_host(p: Option<&str>) -> anyhow::Result<Platform> {
    match p {
        Some(p) => Platform::parse(p).with_context(|| format!("invalid --platform {p:?}")),
        None => Ok(Platform::host()),
    }
}

pub(crate) fn push_cmd(root: &Path, args: PushArgs) -> anyhow::Result<ExitCode> {
    // Layers built rootless are made into blobs from snapshots whose files belong to the
    // user's subordinate ids: read them from the same kind of user namespace.
    if rbuild::sandbox::unshare::needed() {
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(true)?);
    }
    let store = open_store(root)?;
    let image = local_name(&args.image)?;
    let dest = local_name(args.dest.as_deref().unwrap_or(&args.image))?;
    let platform = platform_or_host(args.platform.as_deref())?;
    let digest =
        rbuild::registry::publish::push_by_name(&store, &image, &dest, &platform, &|line| {
            eprintln!("{line}")
        })?;
    println!("{dest}@{digest}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn tag_cmd(root: &Path, args: TagArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let source = local_name(&args.source)?;
    let target = local_name(&args.target)?;
    let desc = store
        .resolve(&source)?
        .ok_or_else(|| anyhow::anyhow!("{source}: no such image in the store"))?;
    store.tag(&target, desc)?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn rmi_cmd(root: &Path, args: RmiArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let mut missing = Vec::new();
    for name in &args.images {
        let reference = local_name(name)?;
        match store.untag(&reference)? {
            Some(desc) => println!("Untagged: {reference}@{}", desc.digest()),
            None => missing.push(reference.to_string()),
        }
    }
    if !missing.is_empty() {
        anyhow::bail!("no such image: {}", missing.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn inspect_cmd(root: &Path, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let reference = local_name(&args.image)?;
    let platform = platform_or_host(args.platform.as_deref())?;
    let desc = store
        .resolve(&reference)?
        .ok_or_else(|| anyhow::anyhow!("{reference}: no such image in the store"))?;
    let img = store.image_at(&desc, &platform)?;
    let out = serde_json::json!({
        "reference": reference.to_string(),
        "digest": desc.digest().to_string(),
        "mediaType": desc.media_type().to_string(),
        "manifestDigest": img.descriptor.digest().to_string(),
        "manifest": serde_json::from_slice::<serde_json::Value>(&img.manifest_bytes)?,
        "config": serde_json::from_slice::<serde_json::Value>(&img.config_bytes)?,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}

/// One indicatif bar per blob being downloaded, on a terminal.
#[derive(Default)]
struct Bars {
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::BTreeMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    /// Draw the event; false when it is not a blob event (printed as a line instead).
    fn handle(&self, ev: &Event) -> bool {
        let mut bars = self.bars.lock().expect("progress bars");
        match ev {
            Event::Started { digest, size } => {
                let bar = self.multi.add(indicatif::ProgressBar::new(*size));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "  {prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("progress template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(digest.short().to_string());
                bars.insert(digest.to_string(), bar);
                true
            }
            Event::Progress { digest, written } => {
                if let Some(b) = bars.get(&digest.to_string()) {
                    b.set_position(*written);
                }
                true
            }
            Event::Downloaded { digest, size } => {
                if let Some(b) = bars.remove(&digest.to_string()) {
                    b.finish_and_clear();
                }
                let _ = self.multi.println(format!(
                    "  {}: downloaded ({})",
                    digest.short(),
                    human_size(*size)
                ));
                true
            }
            _ => false,
        }
    }
}

pub fn pull_cmd(root: &Path, args: PullArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let conf = RegistriesConf::load_default()?;
    let platform = platform_or_host(args.platform.as_deref())?;
    let client = Client::new(Box::new(CredentialStore::from_env()));
    let quiet = args.quiet;
    let bars = (!quiet && std::io::stderr().is_terminal()).then(Bars::default);
    let progress = |reference: &Reference, ev: Event| {
        if quiet {
            return;
        }
        if let Some(b) = &bars
            && b.handle(&ev)
        {
            return;
        }
        match ev {
            Event::Source {
                host,
                repository,
                error,
            } => match error {
                Some(e) => eprintln!("{e}\n  trying {host}/{repository}"),
                None => eprintln!("pulling {reference} from {host}/{repository}"),
            },
            Event::Manifest { .. } => {}
            Event::Cached { digest, size } => eprintln!(
                "  {}: already present ({})",
                digest.short(),
                human_size(size)
            ),
            Event::Downloaded { digest, size } => {
                eprintln!("  {}: downloaded ({})", digest.short(), human_size(size))
            }
            Event::Tagged { digest, .. } => eprintln!("Digest: {digest}"),
            Event::Started { .. } | Event::Progress { .. } => {}
        }
    };
    let (reference, _) = pull_name(
        &conf,
        &client,
        &store,
        &args.reference,
        &platform,
        &progress,
    )?;
    // An index was matched against the platform already; a single manifest is whatever it
    // is, so an explicit --platform is checked here, as Docker does.
    if args.platform.is_some() {
        let actual = store.image(&reference, &platform)?.config.platform();
        if !platform.matches(&actual) {
            anyhow::bail!(
                "{reference} was pulled, but it is a {actual} image, which does not match the requested platform {platform}"
            );
        }
    }
    println!("{reference}");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn images_cmd(root: &Path, _args: ImagesArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let mut rows = vec![[
        "REPOSITORY".to_string(),
        "TAG".into(),
        "IMAGE ID".into(),
        "CREATED".into(),
        "SIZE".into(),
        "PLATFORM".into(),
    ]];
    for (reference, desc) in store.list()? {
        let repo = reference.familiar_name();
        let tag = reference.tag().unwrap_or("<none>").to_string();
        let row = match store.images_at_all(&desc) {
            Ok(images) if !images.is_empty() => {
                // An index is one image to its users: its own digest is its ID, its size
                // the layers of the platforms it has here (each counted once).
                let id = if MediaType::parse(desc.media_type().as_ref()).is_index() {
                    descriptor_digest(&desc)
                } else {
                    descriptor_digest(images[0].manifest.config())
                }
                .map(|d| d.short().to_string())
                .unwrap_or_default();
                let mut layers = std::collections::BTreeMap::new();
                for img in &images {
                    for l in img.manifest.layers() {
                        layers.insert(l.digest().to_string(), l.size());
                    }
                }
                let size: u64 = layers.values().sum();
                let created = images
                    .iter()
                    .filter_map(|i| i.config.created.clone())
                    .max()
                    .as_deref()
                    .map(ago)
                    .unwrap_or_else(|| "N/A".into());
                let platforms: Vec<String> = images
                    .iter()
                    .map(|i| i.config.platform().to_string())
                    .collect();
                [
                    repo,
                    tag,
                    id,
                    created,
                    human_size(size),
                    platforms.join(","),
                ]
            }
            Ok(_) => [
                repo,
                tag,
                "<error>".into(),
                String::new(),
                "no platform of this index is in the store".into(),
                String::new(),
            ],
            Err(e) => [
                repo,
                tag,
                "<error>".into(),
                String::new(),
                chain(&e),
                String::new(),
            ],
        };
        rows.push(row);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn prune_cmd(root: &Path, args: PruneArgs) -> anyhow::Result<ExitCode> {
    // Rootless builds leave files owned by the user's subordinate ids in snapshots and cache
    // mounts, which the user can only remove from inside the same kind of user namespace
    // (as `podman unshare` does for its storage).
    if rbuild::sandbox::unshare::needed() {
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(true)?);
    }
    let store = open_store(root)?;
    // Under a size: running builds go on, and what they hold stays.
    if let Some(size) = &args.keep_storage {
        let limit = rbuild::dockerfile::units::parse_ram_size(size)
            .with_context(|| format!("invalid --keep-storage {size:?}"))
            .map_err(super::render::usage)?;
        let records = rbuild::engine::cache::BuildCache::new(root).entries();
        let evicted = rbuild::gc::usage::keep_storage(&store, limit, records)?;
        for (kind, name, size) in &evicted.items {
            println!(
                "deleted {kind} {} ({})",
                &name[..12.min(name.len())],
                human_size(*size)
            );
        }
        if evicted.held > 0 {
            eprintln!("kept {} item(s) that running builds use", evicted.held);
        }
        println!(
            "build cache, cache mounts and snapshots: {} (limit {}); reclaimed {}",
            human_size(evicted.after),
            human_size(limit),
            human_size(evicted.before - evicted.after)
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Builds use snapshots and blobs no tag keeps yet: wait for running ones to finish.
    let _no_builds = rbuild::engine::builds_lock(root)
        .with_wait_hook(std::sync::Arc::new(|_| {
            eprintln!("waiting for running builds to finish...")
        }))
        .exclusive()?;
    // Plain prune is docker's `image prune`: the build cache stays, and so do the layers its
    // records name, so that the next build of a tagged image finds its steps cached. With
    // --build-cache it goes too, as with `docker builder prune -a`.
    let cache = rbuild::engine::cache::BuildCache::new(root);
    let keep = if args.build_cache {
        let records = cache.clear()?;
        rbuild::sandbox::cache_mount::CacheMounts::new(root)
            .clear()
            .with_context(|| format!("removing cache mounts under {}", root.display()))?;
        if records > 0 {
            println!("deleted {records} build cache record(s) and the cache mounts");
        }
        // The native snapshotter's full trees are a cache of layers, made again when needed.
        let trees = rbuild::snapshot::trees::Trees::new(root).clear()?;
        if trees > 0 {
            println!("deleted {trees} native snapshotter tree(s)");
        }
        // Build logs (`<root>/logs/<build>/step-N.log`) go with the cache they describe, and
        // so do the records of what each COPY wrote (incremental COPY).
        for dir in [root.join("logs"), root.join("cache").join("copies")] {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(
                        anyhow::Error::new(e).context(format!("removing {}", dir.display()))
                    );
                }
                _ => {}
            }
        }
        std::collections::BTreeSet::new()
    } else {
        let n = cache.records();
        if n > 0 {
            eprintln!(
                "kept the build cache ({n} step record(s), their layers and the cache mounts): `rbuild prune --build-cache` removes it too"
            );
        }
        cache.layer_digests()
    };
    let pruned = rbuild::gc::prune(&store, args.grace.into(), &keep)?;
    for (digest, size) in &pruned.blobs {
        println!("deleted {digest} ({})", human_size(*size));
    }
    for (chain, size) in &pruned.snapshots {
        println!(
            "deleted snapshot {} ({})",
            &chain[..12.min(chain.len())],
            human_size(*size)
        );
    }
    if pruned.kept_recent > 0 {
        eprintln!(
            "kept {} unreferenced blob(s) younger than {} (an operation may be about to use them; --grace 0 removes them)",
            pruned.kept_recent, args.grace
        );
    }
    println!("Total reclaimed space: {}", human_size(pruned.bytes()));
    Ok(ExitCode::SUCCESS)
}

/// `rbuild df`: a row per kind, as `docker system df` prints them.
pub(crate) fn df_cmd(root: &Path) -> anyhow::Result<ExitCode> {
    if rbuild::sandbox::unshare::needed() {
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(true)?);
    }
    let store = open_store(root)?;
    let records = rbuild::engine::cache::BuildCache::new(root).entries();
    let u = rbuild::gc::usage::usage(&store, &records)?;
    println!(
        "{:<14} {:>7} {:>10} {:>12}",
        "TYPE", "TOTAL", "SIZE", "RECLAIMABLE"
    );
    for (name, row) in [
        ("Images", u.images),
        ("Build cache", u.build_cache),
        ("Cache mounts", u.cache_mounts),
        ("Snapshots", u.snapshots),
        ("Other", u.other),
    ] {
        let count = if name == "Other" {
            "-".to_string()
        } else {
            row.count.to_string()
        };
        println!(
            "{name:<14} {count:>7} {:>10} {:>12}",
            human_size(row.size),
            human_size(row.reclaimable)
        );
    }
    println!("{:<14} {:>7} {:>10}", "Total", "", human_size(u.total()));
    println!("(total bytes: {})", u.total());
    Ok(ExitCode::SUCCESS)
}

/// `2 days ago`, as docker prints CREATED.
fn ago(created: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339_weak(created) else {
        return created.to_string();
    };
    match SystemTime::now().duration_since(t) {
        Ok(d) => {
            let s = d.as_secs();
            let (n, unit) = match s {
                0..60 => return "Less than a minute ago".into(),
                60..3600 => (s / 60, "minute"),
                3600..86_400 => (s / 3600, "hour"),
                86_400..604_800 => (s / 86_400, "day"),
                604_800..2_592_000 => (s / 604_800, "week"),
                2_592_000..31_536_000 => (s / 2_592_000, "month"),
                _ => (s / 31_536_000, "year"),
            };
            format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
        }
        Err(_) => created.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(ago("not a date"), "not a date");
        assert!(ago("2000-01-01T00:00:00Z").ends_with("years ago"));
    }
}
