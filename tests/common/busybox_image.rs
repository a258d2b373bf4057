//! A busybox image made here, for builds to pull from a test registry: Debian's static
//! busybox (the host's, or another architecture's binary) with an applet symlink at each
//! path `busybox --list-full` names, a passwd and group with `root`, `app` (1000) and
//! `nobody`, and the usual top-level directories. One gzip layer per platform, every entry
//! owned by root with a fixed time, written as an OCI layout here (no builder under test
//! makes it) and pushed with skopeo; several platforms make an image index.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::registry::run;

const MTIME: u64 = 1_704_067_200;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n";

/// `(path, mode)` of the directories, in creation order.
const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("dev", 0o755),
    ("etc", 0o755),
    ("home", 0o755),
    ("home/app", 0o755),
    ("proc", 0o755),
    ("root", 0o700),
    ("sbin", 0o755),
    ("sys", 0o755),
    ("tmp", 0o1777),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("var", 0o755),
    ("var/tmp", 0o1777),
];

/// What one platform's image is made of: the layer's diff ID and the path of its blob.
pub struct Pushed {
    pub diff_id: String,
    pub blob: PathBuf,
}

/// Write an OCI layout at `layout` with one busybox image per `(architecture, busybox
/// binary)` (an index when there are several, in that order), tagged `latest`, and push
/// it all to `dest` (`registry/repository:tag`).
pub fn publish(layout: &Path, dest: &str, platforms: &[(&str, &Path)]) -> Vec<Pushed> {
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| -> (String, usize) {
        let d = hex(&Sha256::digest(bytes));
        std::fs::write(blobs.join(&d), bytes).unwrap();
        (format!("sha256:{d}"), bytes.len())
    };
    let mut pushed = Vec::new();
    let mut manifests = Vec::new();
    for (arch, busybox) in platforms {
        let (gz, diff_id) = layer(busybox);
        let (layer_digest, layer_size) = put(&gz);
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"]
            },
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "rbuild test base: busybox-static"}]
        });
        let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}]
        });
        let (digest, size) = put(&serde_json::to_vec(&manifest).unwrap());
        manifests.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": size,
            "platform": {"architecture": arch, "os": "linux"}
        }));
        let blob = blobs.join(layer_digest.trim_start_matches("sha256:"));
        pushed.push(Pushed { diff_id, blob });
    }
    let mut top = if manifests.len() == 1 {
        let mut m = manifests.remove(0);
        m.as_object_mut().unwrap().remove("platform");
        m
    } else {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests
        });
        let (digest, size) = put(&serde_json::to_vec(&index).unwrap());
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size})
    };
    top.as_object_mut().unwrap().insert(
        "annotations".into(),
        json!({"org.opencontainers.image.ref.name": "latest"}),
    );
    let index = json!({"schemaVersion": 2, "manifests": [top]});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    run(Command::new("skopeo")
        .args(["copy", "-q", "--all", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{dest}")));
    pushed
}

/// The layer for `busybox` (the binary): its gzip bytes and the digest of the tar (its
/// diff ID). The applet list is the host busybox's (the same Debian version).
fn layer(busybox: &Path) -> (Vec<u8>, String) {
    let mut b = tar::Builder::new(Vec::new());
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h
    };
    for (dir, mode) in DIRS {
        let mut h = header(tar::EntryType::Directory, *mode, 0);
        b.append_data(&mut h, format!("{dir}/"), &[][..]).unwrap();
    }
    let busybox = std::fs::read(busybox)
        .unwrap_or_else(|e| panic!("{} (busybox-static): {e}", busybox.display()));
    let mut h = header(tar::EntryType::Regular, 0o755, busybox.len() as u64);
    b.append_data(&mut h, "bin/busybox", &busybox[..]).unwrap();
    for (name, text) in [
        ("etc/passwd", PASSWD),
        ("etc/group", GROUP),
        ("etc/nsswitch.conf", "hosts: files dns\n"),
    ] {
        let mut h = header(tar::EntryType::Regular, 0o644, text.len() as u64);
        b.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    let list = run(Command::new("/bin/busybox").arg("--list-full"));
    let mut applets: Vec<&str> = list
        .lines()
        .filter(|p| *p != "bin/busybox" && !p.is_empty())
        .collect();
    applets.sort();
    applets.dedup();
    for applet in applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, applet, "/bin/busybox").unwrap();
    }
    let tar = b.into_inner().unwrap();
    let diff_id = format!("sha256:{}", hex(&Sha256::digest(&tar)));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The arm64 busybox of `tests/fixtures/busybox-arm64.sh`, fetched on first use; `None`
/// after a skip that says why when the machine cannot fetch it and `RBUILD_ALLOW_SKIP=1`
/// allows skipping (a failure otherwise).
pub fn arm64_busybox() -> Option<PathBuf> {
    use std::sync::OnceLock;
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let result = PATH.get_or_init(|| {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/busybox-arm64.sh");
        let out = Command::new("bash")
            .arg(&script)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run bash {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprint!("{stderr}");
        match out.status.code() {
            Some(0) => Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())),
            Some(3) => Err(stderr.trim().to_string()),
            _ => panic!("{} failed ({}):\n{stderr}", script.display(), out.status),
        }
    });
    match result {
        Ok(path) => Some(path.clone()),
        Err(reason) => {
            super::require::skip(
                super::require::Need::Install,
                format_args!("no arm64 busybox: {reason}"),
            );
            None
        }
    }
}

/// Whether the kernel runs arm64 executables through a binfmt_misc handler registered
/// with the F flag (Debian's qemu-user-static); skips otherwise (a failure in CI).
pub fn arm64_emulation() -> bool {
    let handler = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    if handler.as_deref().is_ok_and(|h| {
        h.lines().next() == Some("enabled")
            && h.contains("flags: ")
            && h.lines()
                .any(|l| l.starts_with("flags:") && l.contains('F'))
    }) {
        return true;
    }
    super::require::skip(
        super::require::Need::Install,
        "no binfmt_misc handler qemu-aarch64 with the F flag (apt-get install qemu-user-static; .ci/run registers it)",
    );
    false
}
