//! The platform an image runs on (`os/architecture[/variant]`): the OCI `platform` object,
//! the user's `--platform` specifier syntax, containerd-compatible normalisation, and the
//! rule that picks one manifest out of an image index.
//!
//! The rules follow containerd's `platforms` package (`platforms.go` `Parse`/`Format`,
//! `database.go` `normalizeArch`, `compare.go` `Only`), re-stated here so that rbuild picks
//! the same manifest out of a multi-platform image as `docker build` and BuildKit do.
//! Where we deviate from upstream, the comment at the site says so and why.
//!
//! The matching rules (`matches`, `best_match`, `preference_order`) are in
//! `platform/matcher.rs`. This file owns no I/O: [`Platform::host`] reads only compile-time
//! constants (containerd reads `/proc/cpuinfo` for the ARM variant; we take the variant the
//! binary was built for).
//! Conversions to and from `oci-spec`'s platform type live in `manifest.rs`, not here.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

mod matcher;

/// An image platform, as the OCI image index and image config carry it.
///
/// Field names on the wire are the OCI ones (image-spec `image-index.md` "platform" and
/// `config.md`): `architecture`, `os`, `os.version`, `os.features`, `variant`; empty optional
/// fields are omitted, like Go's `omitempty`.
///
/// Values built by [`Platform::parse`] and [`Platform::host`] are always normalised (see
/// `Platform::normalize`); values deserialised from JSON are kept as written (they are
/// somebody else's bytes), and every comparison normalises both sides first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub(crate) os: String,
    pub(crate) architecture: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_string_as_none"
    )]
    pub(crate) variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_string_as_none"
    )]
    pub(crate) os_version: Option<String>,
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) os_features: Vec<String>,
}

/// Why a platform specifier was rejected. Every variant quotes the whole input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PlatformError {
    #[error("invalid platform {input:?}: the specifier is empty")]
    Empty { input: String },
    #[error("invalid platform {input:?}: wildcards are not supported")]
    Wildcard { input: String },
    #[error(
        "invalid platform {input:?}: too many components (expected <os>, <arch> or <os>/<arch>[/<variant>])"
    )]
    TooManyComponents { input: String },
    #[error(
        "invalid platform {input:?}: component {component:?} must be letters, digits, '_', '.' or '-'"
    )]
    InvalidComponent { input: String, component: String },
    #[error(
        "invalid platform {input:?}: the OS component {component:?} must look like <os>[(<os.version>[+<os.feature>]*)]"
    )]
    InvalidOs { input: String, component: String },
    #[error("invalid platform {input:?}: bad percent-encoding in {option:?}")]
    BadPercentEncoding { input: String, option: String },
    #[error("invalid platform {input:?}: unknown operating system or architecture {component:?}")]
    UnknownOsOrArch { input: String, component: String },
}

impl Platform {
    /// A platform from its parts, normalised.
    #[cfg(test)]
    pub(crate) fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
            os_features: Vec::new(),
        }
        .normalize()
    }

    /// Parse a platform specifier, `<os>[(<options>)]`, `<arch>` or
    /// `<os>[(<options>)]/<arch>[/<variant>]`, as `docker build --platform` takes it
    /// (containerd `platforms.Parse`). `<options>` is `[<os.version>][+<os.feature>]*`, each
    /// percent-encoded where it holds `%+()/`.
    ///
    /// A lone word is tried as an OS first (then the architecture is the host's) and as an
    /// architecture second (then the OS is the host's). The result is normalised.
    ///
    /// Deviation: containerd's `Parse` keeps `linux/arm64/v8` and `linux/arm` as written and
    /// only its `Normalize` turns them into `linux/arm64` and `linux/arm/v7`; we return the
    /// normalised form, so that `==` on two parsed platforms means "the same platform" and
    /// `Display` prints what BuildKit prints (`docker buildx imagetools inspect` shows
    /// `linux/arm64`, `linux/arm/v7`).
    pub fn parse(specifier: &str) -> Result<Platform, PlatformError> {
        let input = || specifier.to_string();
        if specifier.is_empty() {
            return Err(PlatformError::Empty { input: input() });
        }
        if specifier.contains('*') {
            return Err(PlatformError::Wildcard { input: input() });
        }
        let parts: Vec<&str> = specifier.split('/').collect();
        if parts.len() > 3 {
            return Err(PlatformError::TooManyComponents { input: input() });
        }
        let (os_name, os_version, os_features) = parse_os_component(specifier, parts[0])?;
        for part in &parts[1..] {
            if part.is_empty() || !part.bytes().all(is_specifier_byte) {
                return Err(PlatformError::InvalidComponent {
                    input: input(),
                    component: part.to_string(),
                });
            }
        }
        let host = Platform::host();
        let mut platform = Platform {
            os: os_name.to_string(),
            architecture: String::new(),
            variant: None,
            os_version,
            os_features,
        };
        match parts[..] {
            [word] => {
                let os = normalize_os(os_name);
                let had_options = word.len() != os_name.len();
                if is_known_os(&os) {
                    platform.architecture = host.architecture;
                    platform.variant = host.variant;
                } else {
                    let (arch, _) = normalize_arch(word, "");
                    if had_options || !is_known_arch(&arch) {
                        return Err(PlatformError::UnknownOsOrArch {
                            input: input(),
                            component: word.to_string(),
                        });
                    }
                    platform.os = host.os;
                    platform.architecture = word.to_string();
                }
            }
            [_, arch] => platform.architecture = arch.to_string(),
            [_, arch, variant] => {
                platform.architecture = arch.to_string();
                platform.variant = Some(variant.to_string());
            }
            _ => unreachable!("split yields 1..=3 parts here"),
        }
        Ok(platform.normalize())
    }

    /// A comma-separated list of specifiers (`linux/amd64,linux/arm64`, as `--platform`
    /// takes it), each parsed and normalised, duplicates dropped, order kept.
    pub fn parse_list(list: &str) -> Result<Vec<Platform>, PlatformError> {
        let mut out: Vec<Platform> = Vec::new();
        for item in list.split(',') {
            let p = Platform::parse(item.trim())?;
            if !out.contains(&p) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The platform this binary runs on, from `std::env::consts` mapped to Go's
    /// `GOOS`/`GOARCH` names (the names OCI uses: image-spec `config.md` refers to the Go
    /// language documentation for `$GOOS` and `$GOARCH`).
    pub fn host() -> Platform {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        let little = cfg!(target_endian = "little");
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            // Go's GOARM; containerd asks /proc/cpuinfo, we use what we were compiled for.
            "arm" if cfg!(target_feature = "v7") => ("arm", Some("v7")),
            "arm" if cfg!(target_feature = "v6") => ("arm", Some("v6")),
            "arm" => ("arm", Some("v5")),
            "powerpc64" if little => ("ppc64le", None),
            "powerpc64" => ("ppc64", None),
            "powerpc" => ("ppc", None),
            "mips" if little => ("mipsle", None),
            "mips64" if little => ("mips64le", None),
            "loongarch64" => ("loong64", None),
            "sparc64" => ("sparc64", None),
            "wasm32" => ("wasm", None),
            other => (other, None),
        };
        // Built directly: these names are already canonical, and `normalize` itself falls
        // back to `host()` for an empty OS.
        Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
            os_version: None,
            os_features: Vec::new(),
        }
    }

    /// The canonical form (containerd `platforms.Normalize`): lower-case OS and architecture,
    /// `macos` → `darwin`, architecture aliases resolved (`x86_64` → `amd64`, `aarch64` →
    /// `arm64`, `armhf` → `arm/v7`, `armel` → `arm/v6`, `i386` → `386`), the default variant
    /// of each architecture made implicit or explicit the way containerd does it (`amd64/v1`
    /// → `amd64`, `arm64/v8` → `arm64`, `arm` → `arm/v7`), empty strings made `None`, and
    /// `os.features` sorted and de-duplicated. An empty OS becomes the host's, as upstream.
    pub(crate) fn normalize(mut self) -> Platform {
        self.os = normalize_os(&self.os);
        let (arch, variant) =
            normalize_arch(&self.architecture, self.variant.as_deref().unwrap_or(""));
        self.architecture = arch;
        self.variant = (!variant.is_empty()).then_some(variant);
        self.os_version = self.os_version.filter(|v| !v.is_empty());
        self.os_features.retain(|f| !f.is_empty());
        self.os_features.sort();
        self.os_features.dedup();
        self
    }

    /// The full specifier, with `os.version` and `os.features` when present
    /// (containerd `FormatAll`): `windows(10.0.17763+win32k)/amd64`. Parses back to `self`.
    pub fn specifier(&self) -> String {
        let mut options = String::new();
        if let Some(version) = &self.os_version {
            options.push_str(&encode_os_option(version));
        }
        let mut features: Vec<&String> =
            self.os_features.iter().filter(|f| !f.is_empty()).collect();
        features.sort();
        for feature in features {
            options.push('+');
            options.push_str(&encode_os_option(feature));
        }
        if options.is_empty() {
            return self.to_string();
        }
        let mut out = format!("{}({options})/{}", self.os, self.architecture);
        if let Some(variant) = &self.variant {
            out.push('/');
            out.push_str(variant);
        }
        out
    }
}

/// `os/arch[/variant]` (containerd `Format`); `unknown` when there is no OS.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.os.is_empty() {
            return f.write_str("unknown");
        }
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    fn from_str(s: &str) -> Result<Platform, PlatformError> {
        Platform::parse(s)
    }
}

/// containerd `normalizeOS`.
fn normalize_os(os: &str) -> String {
    if os.is_empty() {
        return Platform::host().os;
    }
    match os.to_ascii_lowercase().as_str() {
        "macos" => "darwin".to_string(),
        other => other.to_string(),
    }
}

/// containerd `normalizeArch`, plus the `uname -m` spellings of 32-bit ARM (`armv7l`,
/// `armv6l`, `armv5tel`, `armv8l`), which upstream rejects but people type.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let (arch, variant) = match arch.as_str() {
        "i386" => ("386".to_string(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let v = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".to_string(), v)
        }
        "aarch64" | "arm64" => {
            let v = if variant == "8" || variant == "v8" {
                String::new()
            } else {
                variant
            };
            ("arm64".to_string(), v)
        }
        "armhf" => ("arm".to_string(), "v7".to_string()),
        "armel" => ("arm".to_string(), "v6".to_string()),
        "arm" => {
            let v = match variant.as_str() {
                "" | "7" => "v7".to_string(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".to_string(), v)
        }
        other => match uname_arm_version(other) {
            Some(n) => ("arm".to_string(), format!("v{n}")),
            None => (other.to_string(), variant),
        },
    };
    (arch, variant)
}

/// `armv7l` → 7, `armv6l` → 6, `armv5tel` → 5, `armv8l` → 8.
fn uname_arm_version(arch: &str) -> Option<char> {
    let rest = arch.strip_prefix("armv")?;
    let mut chars = rest.chars();
    let n = chars.next().filter(|c| ('5'..='8').contains(c))?;
    chars.all(|c| c.is_ascii_lowercase()).then_some(n)
}

/// Go's `syslist.go` operating systems, as containerd's `isKnownOS` lists them.
fn is_known_os(os: &str) -> bool {
    matches!(
        os,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "windows"
            | "zos"
    )
}

/// Go's `syslist.go` architectures, as containerd's `isKnownArch` lists them.
fn is_known_arch(arch: &str) -> bool {
    matches!(
        arch,
        "386"
            | "amd64"
            | "amd64p32"
            | "arm"
            | "armbe"
            | "arm64"
            | "arm64be"
            | "ppc64"
            | "ppc64le"
            | "loong64"
            | "mips"
            | "mipsle"
            | "mips64"
            | "mips64le"
            | "mips64p32"
            | "mips64p32le"
            | "ppc"
            | "riscv"
            | "riscv64"
            | "s390"
            | "s390x"
            | "sparc"
            | "sparc64"
            | "wasm"
    )
}

/// containerd's `specifierRe`: `[A-Za-z0-9_.-]`.
fn is_specifier_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Split `<os>[(<version>[+<feature>]*)]` (containerd `osRe`) into the raw OS name and the
/// decoded version and features.
fn parse_os_component<'s>(
    input: &str,
    component: &'s str,
) -> Result<(&'s str, Option<String>, Vec<String>), PlatformError> {
    let bad = || PlatformError::InvalidOs {
        input: input.to_string(),
        component: component.to_string(),
    };
    let is_name_byte = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-');
    let is_option_byte = |b: u8| is_specifier_byte(b) || b == b'%';
    let (name, options) = match component.split_once('(') {
        None => (component, None),
        Some((name, rest)) => (name, Some(rest.strip_suffix(')').ok_or_else(bad)?)),
    };
    if name.is_empty() || !name.bytes().all(is_name_byte) {
        return Err(bad());
    }
    let Some(options) = options else {
        return Ok((name, None, Vec::new()));
    };
    let mut pieces = options.split('+');
    let version = pieces.next().unwrap_or("");
    let features: Vec<&str> = pieces.collect();
    if !version.bytes().all(is_option_byte)
        || features
            .iter()
            .any(|f| f.is_empty() || !f.bytes().all(is_option_byte))
    {
        return Err(bad());
    }
    let decode = |option: &str| {
        percent_decode(option).ok_or_else(|| PlatformError::BadPercentEncoding {
            input: input.to_string(),
            option: option.to_string(),
        })
    };
    let version = decode(version)?;
    let features = features.into_iter().map(decode).collect::<Result<_, _>>()?;
    Ok((name, (!version.is_empty()).then_some(version), features))
}

/// Go's `url.PathUnescape`, restricted to results that are UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// containerd's `osOptionReplacer`: escape what the specifier syntax gives meaning to.
fn encode_os_option(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `omitempty` writers never emit `""`, but hand-written JSON does; read it as absent.
fn empty_string_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.filter(|s| !s.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `input => "os/arch[/variant]"`: parse, then Display; also checks Display parses back.
    macro_rules! parses {
        ($($name:ident: $input:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let got = p($input);
                assert_eq!(got.to_string(), $want, "parse({:?})", $input);
                assert_eq!(p(&got.to_string()), got, "round trip of {:?}", $input);
            }
        )*};
    }

    macro_rules! rejects {
        ($($name:ident: $input:expr => $variant:ident;)*) => {$(
            #[test]
            fn $name() {
                let err = Platform::parse($input).unwrap_err();
                assert!(matches!(err, PlatformError::$variant { .. }), "parse({:?}) gave {err:?}", $input);
                assert!(err.to_string().contains(&format!("{:?}", $input)), "{err}");
            }
        )*};
    }

    parses! {
        os_and_arch: "linux/amd64" => "linux/amd64";
        arm64_v8_is_implicit: "linux/arm64/v8" => "linux/arm64";
        arm64_bare_8: "linux/arm64/8" => "linux/arm64";
        arm64_v8_2_kept: "linux/arm64/v8.2" => "linux/arm64/v8.2";
        aarch64_alias: "linux/aarch64" => "linux/arm64";
        x86_64_alias: "linux/x86_64" => "linux/amd64";
        x86_dash_64_alias: "linux/x86-64" => "linux/amd64";
        amd64_v1_is_implicit: "linux/amd64/v1" => "linux/amd64";
        amd64_v3_kept: "linux/amd64/v3" => "linux/amd64/v3";
        i386_alias: "linux/i386" => "linux/386";
        arm_defaults_to_v7: "linux/arm" => "linux/arm/v7";
        arm_7_gets_a_v: "linux/arm/7" => "linux/arm/v7";
        arm_v6: "linux/arm/v6" => "linux/arm/v6";
        arm_5: "linux/arm/5" => "linux/arm/v5";
        armhf_alias: "linux/armhf" => "linux/arm/v7";
        armel_alias: "linux/armel" => "linux/arm/v6";
        uname_armv7l: "linux/armv7l" => "linux/arm/v7";
        uname_armv6l: "linux/armv6l" => "linux/arm/v6";
        case_insensitive: "Linux/X86_64" => "linux/amd64";
        macos_is_darwin: "macOS/arm64" => "darwin/arm64";
        s390x: "linux/s390x" => "linux/s390x";
        ppc64le: "linux/ppc64le" => "linux/ppc64le";
        riscv64: "linux/riscv64" => "linux/riscv64";
        unknown_arch_with_os_is_kept: "linux/foo" => "linux/foo";
        windows_amd64: "windows/amd64" => "windows/amd64";
    }

    rejects! {
        empty: "" => Empty;
        wildcard: "linux/*" => Wildcard;
        leading_slash: "/linux/arm" => InvalidOs;
        trailing_slash: "linux/arm/" => InvalidComponent;
        space: "linux /arm" => InvalidOs;
        bad_byte: "linux/&arm" => InvalidComponent;
        four_parts: "linux/arm/v7/x" => TooManyComponents;
        unknown_word: "banana" => UnknownOsOrArch;
        options_on_an_arch: "amd64(+x)" => UnknownOsOrArch;
        unclosed_options: "windows(10.0" => InvalidOs;
        empty_feature: "linux(+)" => InvalidOs;
        bad_percent: "windows(10%zz)/amd64" => BadPercentEncoding;
    }

    #[test]
    fn lone_os_takes_host_arch() {
        let host = Platform::host();
        let got = p("linux");
        assert_eq!(
            (got.os.as_str(), &got.architecture),
            ("linux", &host.architecture)
        );
        assert_eq!(got.variant, host.variant);
        assert_eq!(p("macos").os, "darwin");
    }

    #[test]
    fn lone_arch_takes_host_os() {
        let host_os = Platform::host().os;
        for (input, arch, variant) in [
            ("amd64", "amd64", None),
            ("Aarch64", "arm64", None),
            ("armel", "arm", Some("v6")),
            ("i386", "386", None),
            ("s390x", "s390x", None),
        ] {
            let got = p(input);
            assert_eq!(got.os, host_os, "{input}");
            assert_eq!(got.architecture, arch, "{input}");
            assert_eq!(got.variant.as_deref(), variant, "{input}");
        }
    }

    #[test]
    fn host_is_normalised_and_known() {
        let host = Platform::host();
        assert_eq!(host.clone().normalize(), host);
        assert!(is_known_arch(&host.architecture), "{host}");
        assert!(is_known_os(&host.os), "{host}");
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        assert_eq!(host.to_string(), "linux/amd64");
    }

    #[test]
    fn os_options_table() {
        for (input, version, features, spec) in [
            (
                "windows(10.0.17763)/amd64",
                Some("10.0.17763"),
                &[][..],
                "windows(10.0.17763)/amd64",
            ),
            (
                "windows(10.0.17763+win32k)/amd64",
                Some("10.0.17763"),
                &["win32k"][..],
                "windows(10.0.17763+win32k)/amd64",
            ),
            (
                "linux(+unsorted+erofs)/amd64",
                None,
                &["erofs", "unsorted"][..],
                "linux(+erofs+unsorted)/amd64",
            ),
            (
                "windows(10.0.17763%2Bbuild.42)/amd64",
                Some("10.0.17763+build.42"),
                &[][..],
                "windows(10.0.17763%2Bbuild.42)/amd64",
            ),
            (
                "windows(50%25done)/amd64",
                Some("50%done"),
                &[][..],
                "windows(50%25done)/amd64",
            ),
            ("windows()/amd64", None, &[][..], "windows/amd64"),
        ] {
            let got = p(input);
            assert_eq!(got.os_version.as_deref(), version, "{input}");
            assert_eq!(got.os_features, features, "{input}");
            assert_eq!(got.specifier(), spec, "{input}");
            assert_eq!(p(&got.specifier()), got, "{input} round trip");
        }
    }

    #[test]
    fn serde_uses_oci_names_and_omits_empties() {
        let plain = p("linux/amd64");
        assert_eq!(
            serde_json::to_string(&plain).unwrap(),
            r#"{"os":"linux","architecture":"amd64"}"#
        );
        let full = p("windows(10.0.17763+win32k)/arm64/v8.2");
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["os.version"], "10.0.17763");
        assert_eq!(json["os.features"][0], "win32k");
        assert_eq!(json["variant"], "v8.2");
        let back: Platform = serde_json::from_value(json).unwrap();
        assert_eq!(back, full);
    }

    #[test]
    fn serde_reads_empty_strings_as_absent_and_keeps_spelling() {
        let got: Platform = serde_json::from_str(
            r#"{"architecture":"arm64","os":"linux","variant":"v8","os.version":""}"#,
        )
        .unwrap();
        assert_eq!(
            got.variant.as_deref(),
            Some("v8"),
            "deserialising keeps bytes as written"
        );
        assert_eq!(got.os_version, None);
        assert_eq!(got.normalize(), p("linux/arm64"));
        let got: Platform =
            serde_json::from_str(r#"{"architecture":"amd64","os":"linux","variant":""}"#).unwrap();
        assert_eq!(got.variant, None);
    }
}
