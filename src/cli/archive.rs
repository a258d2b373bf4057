//! `rbuild save` and `rbuild load`: images to and from archives and OCI layout directories.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use rbuild::archive::{self, Format};

use super::args::{LoadArgs, SaveArgs, SaveFormat};
use super::image::{local_name, open_store, platform_or_host};

pub(crate) fn save_cmd(root: &Path, args: SaveArgs) -> anyhow::Result<ExitCode> {
    // Layers built rootless are made into blobs from snapshots whose files belong to the
    // user's subordinate ids: read them from the same kind of user namespace.
    if rbuild::sandbox::unshare::needed() {
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(true)?);
    }
    let store = open_store(root)?;
    let images = args
        .images
        .iter()
        .map(|i| local_name(i))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Without --platform, save keeps a multi-platform image whole where it can.
    let platform = args
        .platform
        .as_deref()
        .map(|p| platform_or_host(Some(p)))
        .transpose()?;
    let platform = platform.as_ref();
    let format = match args.format {
        SaveFormat::DockerArchive => Format::DockerArchive,
        SaveFormat::OciArchive => Format::OciArchive,
        SaveFormat::OciDir => Format::OciDir,
    };
    match (format, &args.output) {
        (Format::OciDir, None) => anyhow::bail!("--format oci-dir needs -o DIRECTORY"),
        (Format::OciDir, Some(dir)) => archive::save::save(
            &store,
            &images,
            platform,
            format,
            archive::save::Output::Dir(dir),
        )?,
        (_, Some(file)) => {
            let tmp = file.with_extension("partial");
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let out = archive::save::Output::Stream(Box::new(std::io::BufWriter::new(f)));
            archive::save::save(&store, &images, platform, format, out)?;
            std::fs::rename(&tmp, file)
                .with_context(|| format!("renaming {} to {}", tmp.display(), file.display()))?;
        }
        (_, None) => {
            if std::io::stdout().is_terminal() {
                anyhow::bail!(
                    "refusing to write an archive to a terminal: pass -o FILE or redirect standard output"
                );
            }
            let out = archive::save::Output::Stream(Box::new(std::io::BufWriter::new(
                std::io::stdout().lock(),
            )));
            archive::save::save(&store, &images, platform, format, out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn load_cmd(root: &Path, args: LoadArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(root)?;
    let tagged = match &args.input {
        Some(file) => {
            let f =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            archive::load::load(&store, std::io::BufReader::new(f))?
        }
        None => archive::load::load(&store, std::io::stdin().lock())?,
    };
    if tagged.is_empty() {
        anyhow::bail!("the archive names no image to tag");
    }
    for t in tagged {
        println!("Loaded image: {t}");
    }
    Ok(ExitCode::SUCCESS)
}
