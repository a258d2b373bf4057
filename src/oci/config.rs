//! The image configuration (the `config` blob of a manifest): rbuild's own type, a superset
//! of the OCI one (image-spec `config.md`) with Docker's extensions (`Healthcheck`,
//! `OnBuild`, `Shell`: moby `docker-image-spec` `DockerOCIImageConfigExt`).
//!
//! We own this type instead of using `oci-spec`'s `ImageConfiguration` because that one drops
//! fields it does not know, and a base image's config must come out of a build with
//! everything it went in with (`container_config`, `docker_version`, vendor keys, fields of
//! future spec versions). Every object here keeps its unknown keys in `extra`.
//!
//! Field names and omission follow what Docker/BuildKit write (Go `omitempty`): empty
//! optional strings, lists, maps, `false` and zero durations are left out; `architecture`,
//! `os`, `rootfs.type` and `rootfs.diff_ids` are always written (the spec marks them
//! REQUIRED). Explicit `null`s that older Docker writes for known fields (`"Cmd": null`) are
//! read as empty and so are not written back; unknown fields are kept verbatim, `null` too.
//!
//! Timestamps stay the RFC 3339 strings they were written as (Go writes nanoseconds;
//! re-formatting could change the bytes); durations are Go `time.Duration` nanoseconds.
//! This file does no I/O; serialise with [`ImageConfig::to_canonical_json`].

use std::collections::{BTreeMap, BTreeSet};

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use thiserror::Error;

use super::canonical::{CanonicalError, to_canonical_vec};
use super::digest::Digest;
use super::platform::Platform;

/// Keys this crate does not model, kept as they were read.
pub(crate) type Extra = BTreeMap<String, Value>;

/// The image configuration (image-spec `config.md` "Properties").
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// RFC 3339 creation time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub created: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) author: String,
    #[serde(default, deserialize_with = "nullable")]
    pub architecture: String,
    #[serde(default, deserialize_with = "nullable")]
    pub(crate) os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub(crate) os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) os_features: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub(crate) variant: Option<String>,
    /// The execution parameters; `None` when the object is absent (or `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) history: Vec<History>,
    #[serde(flatten)]
    pub(crate) extra: Extra,
}

/// `config`: what a container of this image runs with (image-spec `config.md` `config`,
/// plus Docker's `Healthcheck`, `OnBuild`, `Shell`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerConfig {
    #[serde(
        rename = "User",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) user: String,
    /// `"80/tcp"`-style keys; on the wire a map to empty objects (Go `map[string]struct{}`).
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        serialize_with = "set_as_object",
        deserialize_with = "object_as_set"
    )]
    pub(crate) exposed_ports: BTreeSet<String>,
    /// `NAME=value` entries, in order.
    #[serde(
        rename = "Env",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) entrypoint: Vec<String>,
    #[serde(
        rename = "Cmd",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub cmd: Vec<String>,
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "BTreeSet::is_empty",
        serialize_with = "set_as_object",
        deserialize_with = "object_as_set"
    )]
    pub(crate) volumes: BTreeSet<String>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) working_dir: String,
    #[serde(
        rename = "Labels",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) stop_signal: String,
    /// Windows only: `Cmd`/`Entrypoint` are already escaped for the command line.
    #[serde(
        rename = "ArgsEscaped",
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "nullable"
    )]
    pub(crate) args_escaped: bool,
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub(crate) healthcheck: Option<Healthcheck>,
    /// `ONBUILD` triggers, run by images built `FROM` this one.
    #[serde(
        rename = "OnBuild",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) on_build: Vec<String>,
    /// The `SHELL` for shell-form instructions.
    #[serde(
        rename = "Shell",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) shell: Vec<String>,
    #[serde(flatten)]
    pub(crate) extra: Extra,
}

/// Docker's `HEALTHCHECK` (moby `HealthcheckConfig`). Durations are nanoseconds, as Go's
/// `time.Duration` marshals; zero means "inherit the default" and is not written.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", args…]`, or `["CMD-SHELL", command]`.
    #[serde(
        rename = "Test",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "nullable"
    )]
    pub test: Vec<String>,
    #[serde(
        rename = "Interval",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub(crate) interval: i64,
    #[serde(
        rename = "Timeout",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub(crate) timeout: i64,
    #[serde(
        rename = "StartPeriod",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub(crate) start_period: i64,
    #[serde(
        rename = "StartInterval",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub(crate) start_interval: i64,
    #[serde(
        rename = "Retries",
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "nullable"
    )]
    pub(crate) retries: i64,
    #[serde(flatten)]
    pub(crate) extra: Extra,
}

/// `rootfs`: the layers' uncompressed digests, bottom first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers` (image-spec: "MUST be set to layers").
    #[serde(rename = "type", default = "layers", deserialize_with = "nullable")]
    pub(crate) kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub diff_ids: Vec<Digest>,
    #[serde(flatten)]
    pub(crate) extra: Extra,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: layers(),
            diff_ids: Vec::new(),
            extra: Extra::new(),
        }
    }
}

/// One `history` entry: how a layer (or an empty step) came to be.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct History {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "non_empty"
    )]
    pub(crate) created: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) created_by: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) author: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub(crate) comment: String,
    /// True when the step changed no files and so added no entry to `rootfs.diff_ids`.
    #[serde(
        default,
        skip_serializing_if = "is_false",
        deserialize_with = "nullable"
    )]
    pub(crate) empty_layer: bool,
    #[serde(flatten)]
    pub(crate) extra: Extra,
}

/// Why a config could not be read or written.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("invalid image config JSON")]
    Parse { source: serde_json::Error },
    #[error(transparent)]
    Serialize(#[from] CanonicalError),
}

impl ImageConfig {
    /// An empty config for `platform` (what `FROM scratch` starts from): no layers, an empty
    /// `config` object, the platform fields set.
    pub(crate) fn new(platform: &Platform) -> ImageConfig {
        let mut config = ImageConfig {
            config: Some(ContainerConfig::default()),
            ..ImageConfig::default()
        };
        config.set_platform(platform);
        config
    }

    /// Parse a config blob.
    pub fn from_json(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        serde_json::from_slice(bytes).map_err(|source| ConfigError::Parse { source })
    }

    /// The canonical JSON bytes to store and hash (see `canonical.rs`).
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, ConfigError> {
        Ok(to_canonical_vec(self)?)
    }

    /// The platform the config declares, as written (not normalised).
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
        }
    }

    pub(crate) fn set_platform(&mut self, platform: &Platform) {
        self.os = platform.os.clone();
        self.architecture = platform.architecture.clone();
        self.variant = platform.variant.clone();
        self.os_version = platform.os_version.clone();
        self.os_features = platform.os_features.clone();
    }

    /// Layers in `rootfs.diff_ids` must pair with the non-empty `history` entries
    /// (image-spec `config.md` `history`); this counts the latter.
    #[cfg(test)]
    pub(crate) fn non_empty_history_len(&self) -> usize {
        self.history.iter().filter(|h| !h.empty_layer).count()
    }
}

fn layers() -> String {
    "layers".to_string()
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `null` reads as the type's default (Go writes `null` for nil slices and maps).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `null` and `""` read as absent.
fn non_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// Go's `map[string]struct{}` → a set of its keys (`null` → empty).
fn object_as_set<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<String>, D::Error> {
    let map = Option::<BTreeMap<String, IgnoredAny>>::deserialize(d)?;
    Ok(map.unwrap_or_default().into_keys().collect())
}

/// A set of keys → `{"key": {}, …}`.
fn set_as_object<S: Serializer>(set: &BTreeSet<String>, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(set.len()))?;
    for key in set {
        map.serialize_entry(key, &BTreeMap::<String, Value>::new())?;
    }
    map.end()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const D1: &str = "sha256:0b1edfbffd27c935a666e233a0042ed634205f6f754dbe20769a60369c614f85";
    const D2: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

    /// A config as BuildKit writes it, plus unknown keys at every level (vendor extensions
    /// and the legacy Docker fields our type does not model).
    fn buildkit_like() -> Value {
        json!({
            "architecture": "arm64",
            "variant": "v8",
            "os": "linux",
            "os.features": ["win32k"],
            "created": "2024-05-01T12:34:56.123456789Z",
            "author": "rbuild tests",
            "config": {
                "User": "1000:1000",
                "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
                "Entrypoint": ["/docker-entrypoint.sh"],
                "Cmd": ["nginx", "-g", "daemon off;"],
                "Volumes": {"/var/cache/nginx": {}},
                "WorkingDir": "/srv",
                "Labels": {"maintainer": "someone <a@b.c>", "org.opencontainers.image.version": "1.27"},
                "StopSignal": "SIGQUIT",
                "ArgsEscaped": true,
                "Healthcheck": {
                    "Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
                    "Interval": 30000000000i64,
                    "Timeout": 5000000000i64,
                    "StartPeriod": 10000000000i64,
                    "StartInterval": 1000000000i64,
                    "Retries": 3,
                    "x-vendor-health": {"k": [1, 2]}
                },
                "OnBuild": ["RUN echo child"],
                "Shell": ["/bin/bash", "-c"],
                "Hostname": "",
                "AttachStdin": false,
                "Image": "sha256:deadbeef",
                "Tty": null
            },
            "rootfs": {"type": "layers", "diff_ids": [D1, D2], "x-rootfs": true},
            "history": [
                {"created": "2024-04-30T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / ", "comment": "buildkit.dockerfile.v0"},
                {"created": "2024-05-01T12:34:56Z", "created_by": "ENV LANG=C.UTF-8", "empty_layer": true, "x-history": "kept"},
                {"created_by": "RUN /bin/sh -c apt-get update # buildkit", "author": "me"}
            ],
            "moby.buildkit.buildinfo.v1": "eyJmcm9udGVuZCI6ImRvY2tlcmZpbGUudjAifQ==",
            "container": "3f2c0a9e",
            "docker_version": "24.0.7",
            "unknown_null": null
        })
    }

    fn round_trip(value: &Value) -> Value {
        let bytes = serde_json::to_vec(value).unwrap();
        let config = ImageConfig::from_json(&bytes).unwrap();
        serde_json::from_slice(&config.to_canonical_json().unwrap()).unwrap()
    }

    /// `name: json => what it reads as` for single fields.
    macro_rules! reads {
        ($($name:ident: $json:expr => |$c:ident| $check:expr;)*) => {$(
            #[test]
            fn $name() {
                let $c = ImageConfig::from_json($json.to_string().as_bytes()).unwrap();
                assert!($check, "{:?}", $c);
            }
        )*};
    }

    #[test]
    fn everything_survives_a_round_trip() {
        let original = buildkit_like();
        assert_eq!(round_trip(&original), original);
    }

    #[test]
    fn typed_fields_are_read() {
        let c = ImageConfig::from_json(buildkit_like().to_string().as_bytes()).unwrap();
        let cc = c.config.as_ref().unwrap();
        assert_eq!(
            cc.exposed_ports.iter().collect::<Vec<_>>(),
            ["53/udp", "80/tcp"]
        );
        assert_eq!(cc.cmd, ["nginx", "-g", "daemon off;"]);
        assert_eq!(cc.healthcheck.as_ref().unwrap().interval, 30_000_000_000);
        assert_eq!(cc.healthcheck.as_ref().unwrap().retries, 3);
        assert_eq!(cc.extra["Image"], "sha256:deadbeef");
        assert_eq!(c.rootfs.diff_ids[1].as_str(), D2);
        assert_eq!(c.history[1].extra["x-history"], "kept");
        assert_eq!(c.non_empty_history_len(), 2);
        assert_eq!(c.extra["docker_version"], "24.0.7");
        assert_eq!(c.platform().normalize().to_string(), "linux/arm64");
    }

    #[test]
    fn classic_docker_nulls_and_empties_are_dropped_and_the_rest_kept() {
        // As the classic builder wrote configs (moby `container.Config` without omitempty).
        let classic = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false,
                "Env": ["PATH=/bin"], "Cmd": ["sh"], "Image": "sha256:1234",
                "Volumes": null, "WorkingDir": "", "Entrypoint": null, "OnBuild": null,
                "Labels": null, "ExposedPorts": null, "Healthcheck": null, "ArgsEscaped": false
            },
            "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ", "CMD [\"sh\"]"], "Labels": {}},
            "created": "2019-01-01T01:29:27.650294696Z",
            "rootfs": {"type": "layers", "diff_ids": [D1]},
            "history": [{"created": "2019-01-01T01:29:27.416803627Z", "created_by": "ADD", "author": ""}]
        });
        let want = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Hostname": "", "Domainname": "", "AttachStdin": false,
                "Env": ["PATH=/bin"], "Cmd": ["sh"], "Image": "sha256:1234"
            },
            "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ", "CMD [\"sh\"]"], "Labels": {}},
            "created": "2019-01-01T01:29:27.650294696Z",
            "rootfs": {"type": "layers", "diff_ids": [D1]},
            "history": [{"created": "2019-01-01T01:29:27.416803627Z", "created_by": "ADD"}]
        });
        assert_eq!(round_trip(&classic), want);
    }

    reads! {
        missing_config_stays_missing: json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
            => |c| c.config.is_none();
        null_config_is_missing: json!({"architecture": "amd64", "os": "linux", "config": null, "rootfs": {"type": "layers", "diff_ids": []}})
            => |c| c.config.is_none();
        null_diff_ids_are_empty: json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": null}})
            => |c| c.rootfs.diff_ids.is_empty();
        missing_rootfs_defaults_to_layers: json!({"architecture": "amd64", "os": "linux"})
            => |c| c.rootfs.kind == "layers";
        empty_created_is_absent: json!({"architecture": "amd64", "os": "linux", "created": ""})
            => |c| c.created.is_none();
        empty_variant_is_absent: json!({"architecture": "amd64", "os": "linux", "variant": ""})
            => |c| c.variant.is_none();
        null_history_is_empty: json!({"architecture": "amd64", "os": "linux", "history": null})
            => |c| c.history.is_empty();
    }

    #[test]
    fn bad_diff_id_is_a_parse_error() {
        let bad = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": ["sha256:abc"]}});
        let err =
            crate::diag::chain(&ImageConfig::from_json(bad.to_string().as_bytes()).unwrap_err());
        assert!(err.starts_with("invalid image config JSON: "), "{err}");
        assert!(err.contains("sha256:abc"), "{err}");
    }

    #[test]
    fn new_config_writes_required_fields_only() {
        let c = ImageConfig::new(&Platform::parse("linux/arm/v7").unwrap());
        let text = String::from_utf8(c.to_canonical_json().unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"architecture":"arm","config":{},"os":"linux","rootfs":{"diff_ids":[],"type":"layers"},"variant":"v7"}"#
        );
    }

    #[test]
    fn serialisation_is_canonical_whatever_the_insertion_order() {
        let mut a = ImageConfig::new(&Platform::parse("linux/amd64").unwrap());
        let mut b = a.clone();
        let labels = [("z", "1"), ("a", "2"), ("m", "3")];
        for (k, v) in labels {
            a.config.as_mut().unwrap().labels.insert(k.into(), v.into());
            a.extra.insert(format!("x-{k}"), json!(v));
        }
        for (k, v) in labels.iter().rev() {
            b.config
                .as_mut()
                .unwrap()
                .labels
                .insert((*k).into(), (*v).into());
            b.extra.insert(format!("x-{k}"), json!(v));
        }
        assert_eq!(
            a.to_canonical_json().unwrap(),
            b.to_canonical_json().unwrap()
        );
    }
}
