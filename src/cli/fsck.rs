//! `rbuild fsck`: check the state root, and with `--repair` mend what can be mended
//! (`rbuild::fsck`). Exit codes as fsck(8) has them: 0 nothing wrong, 1 problems found and
//! all repaired, 4 problems left.

use std::path::Path;
use std::process::ExitCode;

use rbuild::registry::client::Client;
use rbuild::registry::credentials::CredentialStore;
use rbuild::registry::registries_conf::RegistriesConf;

use super::args::FsckArgs;
use super::image::open_store;

pub fn fsck_cmd(root: &Path, args: FsckArgs) -> anyhow::Result<ExitCode> {
    // Snapshots of rootless builds belong to the user's subordinate ids: read (and
    // removed) only from inside the same kind of user namespace, as prune does.
    if rbuild::sandbox::unshare::needed() {
        return Ok(rbuild::sandbox::unshare::run_in_user_namespace(true)?);
    }
    let store = open_store(root)?;
    let mut report = rbuild::fsck::check(&store, args.repair)?;
    for problem in &report.problems {
        println!("{problem}");
    }
    if !report.to_pull.is_empty() {
        let conf = RegistriesConf::load_default()?;
        let client = Client::new(Box::new(CredentialStore::from_env()));
        for r in std::mem::take(&mut report.to_pull) {
            let what = format!("{}@{} ({})", r.name, r.digest, r.platform);
            match rbuild::fsck::repull(&store, &conf, &client, &r) {
                Ok(()) => report.repaired.push(format!("pulled {what} again")),
                Err(why) => report.unrepaired.push(format!(
                    "image {} lost content and pulling {what} again failed: {why}; pull or build it again",
                    r.name
                )),
            }
        }
    }
    for line in &report.repaired {
        println!("repaired: {line}");
    }
    for line in &report.unrepaired {
        println!("not repaired: {line}");
    }
    println!(
        "checked {} blob(s), {} image name(s), {} snapshot(s), {} build cache record(s): {} problem(s)",
        report.blobs,
        report.tags,
        report.snapshots,
        report.records,
        report.problems.len()
    );
    if report.unreferenced_snapshots > 0 {
        println!(
            "{} snapshot(s) belong to no image (rbuild prune removes them)",
            report.unreferenced_snapshots
        );
    }
    if report.unchecked_snapshots > 0 {
        println!(
            "{} snapshot(s) not checked: the blob they were unpacked from is gone",
            report.unchecked_snapshots
        );
    }
    if report.dangling_records > 0 && !args.repair {
        println!(
            "{} build cache record(s) name layers no longer here: a miss, removed by --repair",
            report.dangling_records
        );
    }
    let code = if report.problems.is_empty() {
        0
    } else if args.repair && report.unrepaired.is_empty() {
        1
    } else {
        if !args.repair {
            println!("run rbuild fsck --repair to mend what can be mended");
        }
        4
    };
    Ok(ExitCode::from(code))
}
