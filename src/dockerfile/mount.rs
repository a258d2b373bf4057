//! `RUN --mount=type=…,…`: the comma-separated (CSV) mount spec, validated and typed with
//! BuildKit's rules and messages (`instructions/commands_runmount.go`). Values may be
//! expanded (`target=$DIR`) by a caller-supplied expander; with none, only the structure is
//! checked, as BuildKit does at parse time.

use std::fmt;

use super::directive::parse_go_bool;
use super::units::parse_ram_size;
use crate::suggest::did_you_mean;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    const ALL: [&'static str; 5] = ["bind", "cache", "tmpfs", "secret", "ssh"];

    fn parse(s: &str) -> Option<MountType> {
        Some(match s {
            "bind" => MountType::Bind,
            "cache" => MountType::Cache,
            "tmpfs" => MountType::Tmpfs,
            "secret" => MountType::Secret,
            "ssh" => MountType::Ssh,
            _ => return None,
        })
    }
}

impl fmt::Display for MountType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        })
    }
}

/// How concurrent builds share a cache mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sharing {
    Shared,
    Private,
    Locked,
}

/// One typed `--mount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) kind: MountType,
    /// Stage, image or context the source comes from (bind, cache).
    pub(crate) from: Option<String>,
    pub(crate) source: Option<String>,
    /// Where it appears in the container; defaulted for secret and ssh mounts.
    pub(crate) target: String,
    pub(crate) readonly: bool,
    /// Cache id (defaults to the target), secret or ssh id.
    pub(crate) id: Option<String>,
    pub(crate) sharing: Sharing,
    pub(crate) mode: Option<u32>,
    pub(crate) uid: Option<u32>,
    pub(crate) gid: Option<u32>,
    /// tmpfs size limit in bytes.
    pub(crate) size: Option<u64>,
    pub(crate) required: bool,
    /// Secret exposed as this environment variable.
    pub(crate) env: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct MountError {
    pub(crate) message: String,
    pub(crate) hint: Option<String>,
}

fn err(message: impl Into<String>) -> MountError {
    MountError {
        message: message.into(),
        hint: None,
    }
}

const KEYS: [&str; 20] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "dest",
    "ro",
    "rw",
    "readwrite",
    "env",
];

thread_local! {
    /// Building a CSV reader compiles a state machine; doing it once per thread instead of
    /// once per `--mount` made typing a large Dockerfile 2x faster (benches/frontend.rs).
    static CSV: std::cell::RefCell<csv_core::Reader> = std::cell::RefCell::new(csv_core::Reader::new());
}

/// Split a CSV spec into fields (RFC 4180 quoting, as Go's `encoding/csv`); `--mount`,
/// and buildx's `-o`/`--secret` values, share this syntax.
pub fn fields(spec: &str) -> Vec<String> {
    CSV.with(|reader| {
        let mut reader = reader.borrow_mut();
        reader.reset();
        let mut input = spec.as_bytes();
        let mut out = vec![0u8; spec.len() + 1];
        let mut field = Vec::new();
        let mut fields = Vec::new();
        loop {
            // An empty input tells the reader the data has ended.
            let (result, read, written) = reader.read_field(input, &mut out);
            input = &input[read..];
            field.extend_from_slice(&out[..written]);
            match result {
                csv_core::ReadFieldResult::InputEmpty | csv_core::ReadFieldResult::OutputFull => {}
                csv_core::ReadFieldResult::Field { record_end } => {
                    fields.push(String::from_utf8_lossy(&field).into_owned());
                    field.clear();
                    if record_end {
                        break;
                    }
                }
                csv_core::ReadFieldResult::End => break,
            }
        }
        fields
    })
}

pub(crate) type Expander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

/// Parse one `--mount` value. `ssh_index` numbers ssh mounts for their default target.
pub(crate) fn parse(
    spec: &str,
    expand: Option<Expander>,
    ssh_index: usize,
) -> Result<Mount, MountError> {
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: String::new(),
        readonly: false,
        id: None,
        sharing: Sharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        size: None,
        required: false,
        env: None,
    };
    let mut ro_auto = true;
    let mut sharing: Option<String> = None;
    for field in fields(spec) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(raw) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true
                }
                "required" => {
                    return Err(err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind
                    )));
                }
                _ => {
                    return Err(err(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )));
                }
            }
            continue;
        };
        if key == "from" && raw.find('$').is_some_and(|i| i != raw.len() - 1) && expand.is_none() {
            return Err(err(format!(
                "'{key}' doesn't support variable expansion, define alias stage instead"
            )));
        }
        let value = match expand {
            Some(f) => f(&raw).map_err(err)?,
            // Without an expander a value holding a variable is checked later, expanded.
            None if raw.contains('$') => continue,
            None => raw,
        };
        let bool_of =
            |v: &str| parse_go_bool(v).ok_or_else(|| err(format!("invalid value for {key}: {v}")));
        let id_of = |v: &str, radix: u32| {
            u32::from_str_radix(v, radix).map_err(|_| err(format!("invalid value for {key}: {v}")))
        };
        match key.as_str() {
            "type" => {
                let lower = value.to_ascii_lowercase();
                m.kind = MountType::parse(&lower).ok_or_else(|| MountError {
                    message: format!("unsupported mount type \"{value}\""),
                    hint: did_you_mean(&lower, MountType::ALL)
                        .map(|s| format!("did you mean {s}?")),
                })?;
            }
            "target" | "dst" | "destination" | "dest" => m.target = value,
            "readonly" | "ro" => {
                m.readonly = bool_of(&value)?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !bool_of(&value)?;
                ro_auto = false;
            }
            "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                m.required = bool_of(&value)?
            }
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(
                    parse_ram_size(&value)
                        .map_err(|_| err(format!("invalid value for {key}: {value}")))?,
                )
            }
            "required" | "size" => {
                return Err(err(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    m.kind
                )));
            }
            "source" | "src" => m.source = Some(value),
            "from" => m.from = Some(value),
            "sharing" => sharing = Some(value.to_ascii_lowercase()),
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| err(format!("invalid value {value} for mode")))?,
                )
            }
            "uid" => m.uid = Some(id_of(&value, 10)?),
            "gid" => m.gid = Some(id_of(&value, 10)?),
            "id" => m.id = Some(value),
            "env" if m.kind == MountType::Secret => m.env = Some(value),
            "env" => {
                return Err(err(format!(
                    "unexpected key '{key}' for mount type '{}'",
                    m.kind
                )));
            }
            _ => {
                return Err(MountError {
                    message: format!("unexpected key '{key}' in '{field}'"),
                    hint: did_you_mean(&key, KEYS).map(|s| format!("did you mean {s}?")),
                });
            }
        }
    }

    if !matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    ) {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(err(format!(
                    "{name} not allowed for \"{}\" type mounts",
                    m.kind
                )));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    match (sharing.as_deref(), m.kind) {
        (None | Some(""), _) => {}
        (Some(_), k) if k != MountType::Cache => {
            return Err(err(format!("invalid cache sharing set for {k} mount")));
        }
        (Some("shared"), _) => m.sharing = Sharing::Shared,
        (Some("private"), _) => m.sharing = Sharing::Private,
        (Some("locked"), _) => m.sharing = Sharing::Locked,
        (Some(other), _) => {
            return Err(MountError {
                message: format!("unrecognized sharing mode {other:?}"),
                hint: Some("use sharing=shared, private or locked".into()),
            });
        }
    }
    match m.kind {
        MountType::Secret => {
            if m.from.is_some() {
                return Err(err("secret mount should not have a from"));
            }
            if m.source.is_none() && m.target.is_empty() && m.id.is_none() {
                return Err(err("one of source, target required"));
            }
            if m.source.is_some() && m.id.is_some() {
                return Err(err("both source and id can't be set"));
            }
            // The id defaults to the source, then to the target's base name; the target
            // defaults to /run/secrets/<id>.
            if m.id.is_none() {
                let from_target = m
                    .target
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .map(str::to_string);
                m.id = m.source.clone().or(from_target);
            }
            if m.target.is_empty() && m.env.is_none() {
                m.target = format!("/run/secrets/{}", m.id.as_deref().unwrap_or_default());
            }
        }
        MountType::Ssh => {
            if m.id.is_none() {
                m.id = Some("default".into());
            }
            if m.target.is_empty() {
                m.target = format!("/run/buildkit/ssh_agent.{ssh_index}");
            }
        }
        MountType::Bind | MountType::Cache | MountType::Tmpfs => {
            if m.target.is_empty() && expand.is_some() {
                return Err(MountError {
                    message: format!("mount type {} requires a target", m.kind),
                    hint: Some("add target=/path/in/container".into()),
                });
            }
            // BuildKit's default cache id is the target, cleaned: `/x/` and `/x` are one.
            if m.kind == MountType::Cache && m.id.is_none() && !m.target.is_empty() {
                m.id = Some(crate::context::clean::clean(&m.target));
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(spec: &str) -> Mount {
        let id = |s: &str| Ok(s.to_string());
        parse(spec, Some(&id), 0).unwrap_or_else(|e| panic!("{spec}: {e}"))
    }

    fn fails(spec: &str) -> String {
        let id = |s: &str| Ok(s.to_string());
        parse(spec, Some(&id), 0).unwrap_err().message
    }

    #[test]
    fn cache_defaults() {
        let m = ok("type=cache,target=/root/.cache/pip");
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.id.as_deref(), Some("/root/.cache/pip"));
        assert_eq!(m.sharing, Sharing::Shared);
        assert!(!m.readonly);
    }

    #[test]
    fn bind_is_readonly_unless_rw() {
        assert!(ok("target=/src").readonly);
        assert!(!ok("type=bind,target=/src,rw").readonly);
        assert!(!ok("type=bind,target=/src,readwrite=true").readonly);
    }

    #[test]
    fn secret_defaults() {
        let m = ok("type=secret,id=aws");
        assert_eq!(m.target, "/run/secrets/aws");
        let m = ok("type=secret,target=/etc/token,required");
        assert_eq!(m.id.as_deref(), Some("token"));
        assert!(m.required);
        let m = ok("type=secret,id=tok,env=TOKEN");
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        assert!(m.target.is_empty());
    }

    #[test]
    fn ssh_defaults() {
        let m = ok("type=ssh");
        assert_eq!(m.id.as_deref(), Some("default"));
        assert_eq!(m.target, "/run/buildkit/ssh_agent.0");
    }

    #[test]
    fn tmpfs_size_and_cache_options() {
        assert_eq!(ok("type=tmpfs,target=/t,size=64m").size, Some(64 << 20));
        let m = ok("type=cache,target=/c,sharing=locked,mode=0755,uid=1000,gid=1000,id=x");
        assert_eq!(
            (m.sharing, m.mode, m.uid, m.id.as_deref()),
            (Sharing::Locked, Some(0o755), Some(1000), Some("x"))
        );
        assert_eq!(ok("\"type=bind\",\"target=/a,b\"").target, "/a,b");
    }

    macro_rules! rejects {
        ($($name:ident: $spec:expr => $msg:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(fails($spec), $msg);
            }
        )*};
    }

    rejects! {
        bad_type: "type=bnd,target=/x" => "unsupported mount type \"bnd\"";
        unknown_key: "type=cache,targte=/x" => "unexpected key 'targte' in 'targte=/x'";
        bare_word: "type=cache,foo" => "invalid field 'foo' must be a key=value pair";
        required_on_bind: "type=bind,target=/x,required" => "unexpected key 'required' for mount type 'bind'";
        size_on_cache: "type=cache,target=/x,size=1m" => "unexpected key 'size' for mount type 'cache'";
        sharing_on_bind: "type=bind,target=/x,sharing=locked" => "invalid cache sharing set for bind mount";
        bad_sharing: "type=cache,target=/x,sharing=both" => "unrecognized sharing mode \"both\"";
        mode_on_bind: "type=bind,target=/x,mode=0700" => "mode not allowed for \"bind\" type mounts";
        bad_mode: "type=cache,target=/x,mode=999" => "invalid value 999 for mode";
        secret_from: "type=secret,id=a,from=b" => "secret mount should not have a from";
        secret_nothing: "type=secret" => "one of source, target required";
        env_on_cache: "type=cache,target=/x,env=A" => "unexpected key 'env' for mount type 'cache'";
        missing_target: "type=cache" => "mount type cache requires a target";
        bad_bool: "type=bind,target=/x,ro=maybe" => "invalid value for ro: maybe";
    }

    #[test]
    fn unknown_key_suggests() {
        let id = |s: &str| Ok(s.to_string());
        let e = parse("type=cache,targte=/x", Some(&id), 0).unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean target?"));
    }

    #[test]
    fn structural_check_defers_values() {
        // Without an expander, values are not checked yet but the structure is.
        assert!(parse("type=cache", None, 0).is_ok());
        assert!(parse("type=bind,from=$STAGE", None, 0).is_err());
    }
}
