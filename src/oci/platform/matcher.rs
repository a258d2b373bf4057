//! Which platforms a host can run, and so which manifest of an image index to pick:
//! containerd's default matcher (`compare.go` `platformVector` and `Only`, `platforms.go`
//! `NewMatcher`, `platform_windows_compat.go`), re-stated for [`Platform`].
//!
//! Pure comparisons of values; the parsing and normalising they rely on live in
//! `platform.rs`.

use super::Platform;

impl Platform {
    /// Whether a host of platform `self` can run an image built for `candidate`, using
    /// containerd's default rule (`platforms.Only`): see `Platform::preference_order`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.preference_order()
            .iter()
            .any(|wanted| matches_one(wanted, candidate))
    }

    /// Whether `candidate` is this very platform once both are normalised, with no fallback
    /// to older variants (containerd `platforms.OnlyStrict`).
    #[cfg(test)]
    pub(crate) fn matches_exactly(&self, candidate: &Platform) -> bool {
        matches_one(&self.clone().normalize(), candidate)
    }

    /// The platforms a host of platform `self` accepts, best first (containerd
    /// `compare.go` `platformVector`):
    ///
    /// - `amd64/vN` → `amd64/vN`, `amd64/v(N-1)` … `amd64` (v1), then `386`;
    /// - `arm/vN` → `arm/vN` … `arm/v5`;
    /// - `arm64/v8.N` → `arm64/v8.N` … `arm64/v8.1`, `arm64` (v8), then `arm/v8` … `arm/v5`;
    /// - `arm64/v9.N` → `arm64/v9.N` … `arm64/v9`, then `arm64/v8.(N+5)` … `arm64`, then the
    ///   32-bit ARM chain (Armv9.x is a superset of Armv8.(x+5));
    /// - anything else → itself only.
    ///
    /// Deviation: for a bare `arm64/v9`, upstream tries `arm/v9` before `arm/v8`; there is no
    /// 32-bit Armv9 profile, so we start the 32-bit chain at `arm/v8` for every arm64 variant.
    pub(crate) fn preference_order(&self) -> Vec<Platform> {
        let me = self.clone().normalize();
        let with_variant = |arch: &str, variant: Option<String>| Platform {
            architecture: arch.to_string(),
            variant,
            ..me.clone()
        };
        let mut order = vec![me.clone()];
        match me.architecture.as_str() {
            "amd64" => {
                let level = variant_number(me.variant.as_deref()).unwrap_or(1);
                for older in (1..level).rev() {
                    order.push(with_variant("amd64", Some(format!("v{older}"))).normalize());
                }
                order.push(with_variant("386", None));
            }
            "arm" => {
                if let Some(version) = variant_number(me.variant.as_deref()) {
                    for older in (5..version).rev() {
                        order.push(with_variant("arm", Some(format!("v{older}"))));
                    }
                }
            }
            "arm64" => {
                let variant = me.variant.clone().unwrap_or_else(|| "v8".to_string());
                if let Some((major, minor)) = arm64_version(&variant) {
                    let mut minor = minor;
                    let mut push = |major: u32, minor: u32| {
                        let v = if minor == 0 {
                            format!("v{major}")
                        } else {
                            format!("v{major}.{minor}")
                        };
                        order.push(with_variant("arm64", Some(v)).normalize());
                    };
                    if major == 9 {
                        for older in (0..minor).rev() {
                            push(9, older);
                        }
                        minor += 5;
                        push(8, minor);
                    }
                    for older in (0..minor).rev() {
                        push(8, older);
                    }
                }
                for older in (5..=8).rev() {
                    order.push(with_variant("arm", Some(format!("v{older}"))));
                }
            }
            _ => {}
        }
        order
    }

    /// The best of `candidates` for a host of platform `self`: the one earliest in
    /// [`Platform::preference_order`], and among equals the first in iteration order (so the
    /// index's own order breaks ties, as with containerd's stable sort). Returns the
    /// candidate's position in the iteration with it, so callers can pick the matching
    /// descriptor.
    pub(crate) fn best_match<'a, I>(&self, candidates: I) -> Option<(usize, &'a Platform)>
    where
        I: IntoIterator<Item = &'a Platform>,
    {
        let order = self.preference_order();
        candidates
            .into_iter()
            .enumerate()
            .filter_map(|(i, candidate)| {
                let rank = order.iter().position(|w| matches_one(w, candidate))?;
                Some((rank, i, candidate))
            })
            .min_by_key(|(rank, _, _)| *rank)
            .map(|(_, i, candidate)| (i, candidate))
    }
}

/// One matcher of containerd's `NewMatcher`: same OS, architecture and variant after
/// normalisation, the Windows build compatible, and the candidate's `os.features` a subset
/// of the wanted ones (a candidate that needs a feature the host lacks cannot run).
fn matches_one(wanted: &Platform, candidate: &Platform) -> bool {
    let candidate = candidate.clone().normalize();
    wanted.os == candidate.os
        && wanted.architecture == candidate.architecture
        && wanted.variant == candidate.variant
        && windows_version_compatible(wanted, &candidate)
        && candidate
            .os_features
            .iter()
            .all(|f| wanted.os_features.binary_search(f).is_ok())
}

/// Windows containers need the host's major.minor, and the same build unless the host is
/// Windows Server 2022 (build 20348) or newer, which runs any build from 20348 up to its own
/// (containerd `platform_windows_compat.go`; Microsoft's "Windows container version
/// compatibility" page). Other OSes, or a side without a version, always pass.
fn windows_version_compatible(wanted: &Platform, candidate: &Platform) -> bool {
    const LTSC_2022: u16 = 20348;
    if wanted.os != "windows" {
        return true;
    }
    let (Some(host), Some(ctr)) = (
        wanted.os_version.as_deref().and_then(windows_build),
        candidate.os_version.as_deref().and_then(windows_build),
    ) else {
        return true;
    };
    if (host.0, host.1) != (ctr.0, ctr.1) {
        return false;
    }
    if host.2 < LTSC_2022 {
        return host.2 == ctr.2;
    }
    (LTSC_2022..=host.2).contains(&ctr.2)
}

/// `major.minor.build[.revision]` of a Windows `os.version`.
fn windows_build(version: &str) -> Option<(u8, u8, u16)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let build = parts.next()?.parse().ok()?;
    Some((major, minor, build))
}

/// `vN` → N.
fn variant_number(variant: Option<&str>) -> Option<u32> {
    variant?.strip_prefix('v')?.parse().ok()
}

/// `v8`, `v8.2`, `v9.1` → (major, minor); None below v8 or when it is not a version.
fn arm64_version(variant: &str) -> Option<(u32, u32)> {
    let rest = variant.strip_prefix('v')?;
    let (major, minor) = match rest.split_once('.') {
        Some((major, minor)) => (major.parse().ok()?, minor.parse().ok()?),
        None => (rest.parse().ok()?, 0),
    };
    (major >= 8).then_some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A platform as it might arrive in JSON, not normalised.
    fn raw(os: &str, arch: &str, variant: &str) -> Platform {
        Platform {
            os: os.into(),
            architecture: arch.into(),
            variant: (!variant.is_empty()).then(|| variant.into()),
            ..Platform::default()
        }
    }

    /// `host => candidate`: a host of the first platform runs images of the second.
    macro_rules! runs {
        ($($name:ident: $host:expr => $candidate:expr, $want:expr;)*) => {$(
            #[test]
            fn $name() {
                assert_eq!(p($host).matches(&$candidate), $want, "{} runs {:?}", $host, $candidate);
            }
        )*};
    }

    /// `host, [candidates] => index of the best one`.
    macro_rules! picks {
        ($($name:ident: $host:expr, [$($c:expr),*] => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let candidates: Vec<Platform> = vec![$($c),*];
                let got = p($host).best_match(&candidates).map(|(i, _)| i);
                assert_eq!(got, $want, "best for {} among {:?}", $host, candidates);
            }
        )*};
    }

    runs! {
        same: "linux/amd64" => raw("linux", "amd64", ""), true;
        spelled_differently: "linux/amd64" => raw("Linux", "x86_64", "v1"), true;
        amd64_runs_386: "linux/amd64" => raw("linux", "386", ""), true;
        amd64_refuses_v2: "linux/amd64" => raw("linux", "amd64", "v2"), false;
        amd64_v3_runs_v2: "linux/amd64/v3" => raw("linux", "amd64", "v2"), true;
        amd64_refuses_arm64: "linux/amd64" => raw("linux", "arm64", ""), false;
        other_os_refused: "linux/amd64" => raw("windows", "amd64", ""), false;
        arm64_runs_v8_written_out: "linux/arm64" => raw("linux", "aarch64", "v8"), true;
        arm64_runs_arm_v7: "linux/arm64" => raw("linux", "arm", "v7"), true;
        arm64_runs_armhf: "linux/arm64" => raw("linux", "armhf", ""), true;
        arm64_runs_arm_v5: "linux/arm64" => raw("linux", "arm", "v5"), true;
        arm64_refuses_v8_2: "linux/arm64" => raw("linux", "arm64", "v8.2"), false;
        arm64_v8_2_runs_v8_1: "linux/arm64/v8.2" => raw("linux", "arm64", "v8.1"), true;
        arm64_v9_runs_v8_5: "linux/arm64/v9" => raw("linux", "arm64", "v8.5"), true;
        arm64_v9_refuses_v8_6: "linux/arm64/v9" => raw("linux", "arm64", "v8.6"), false;
        arm_v7_runs_v6: "linux/arm/v7" => raw("linux", "arm", "v6"), true;
        arm_v6_refuses_v7: "linux/arm/v6" => raw("linux", "arm", ""), false;
        arm_refuses_arm64: "linux/arm" => raw("linux", "arm64", ""), false;
        riscv_only_itself: "linux/riscv64" => raw("linux", "riscv64", ""), true;
        host_with_feature_runs_plain: "linux(+gpu)/amd64" => raw("linux", "amd64", ""), true;
    }

    #[test]
    fn features_must_be_a_subset_of_the_hosts() {
        let needs_gpu = Platform {
            os_features: vec!["gpu".into()],
            ..raw("linux", "amd64", "")
        };
        assert!(p("linux(+gpu+simd)/amd64").matches(&needs_gpu));
        assert!(!p("linux/amd64").matches(&needs_gpu));
    }

    #[test]
    fn windows_build_compatibility() {
        let image = |v: &str| Platform {
            os_version: Some(v.into()),
            ..raw("windows", "amd64", "")
        };
        let host_2019 = p("windows(10.0.17763)/amd64");
        assert!(host_2019.matches(&image("10.0.17763.5820")));
        assert!(!host_2019.matches(&image("10.0.20348.2461")));
        let host_2025 = p("windows(10.0.26100)/amd64");
        assert!(host_2025.matches(&image("10.0.20348.2461")));
        assert!(!host_2025.matches(&image("10.0.17763.5820")));
        assert!(p("windows/amd64").matches(&image("10.0.17763.5820")));
    }

    picks! {
        exact_wins_over_fallback: "linux/amd64", [raw("linux", "386", ""), raw("linux", "amd64", "")] => Some(1);
        fallback_when_alone: "linux/amd64", [raw("linux", "arm64", ""), raw("linux", "386", "")] => Some(1);
        nothing_runs: "linux/amd64", [raw("linux", "arm64", ""), raw("windows", "amd64", "")] => None;
        arm64_prefers_arm64: "linux/arm64", [raw("linux", "arm", "v7"), raw("linux", "arm64", "v8")] => Some(1);
        arm64_prefers_newest_arm: "linux/arm64", [raw("linux", "arm", "v6"), raw("linux", "arm", "v7")] => Some(1);
        amd64_v3_prefers_v3: "linux/amd64/v3", [raw("linux", "amd64", ""), raw("linux", "amd64", "v3"), raw("linux", "amd64", "v2")] => Some(1);
        amd64_v3_then_v2: "linux/amd64/v3", [raw("linux", "amd64", ""), raw("linux", "amd64", "v2")] => Some(1);
        tie_goes_to_first: "linux/amd64", [raw("linux", "amd64", ""), raw("linux", "x86_64", "")] => Some(0);
        empty_list: "linux/amd64", [] => None;
    }

    #[test]
    fn preference_order_of_arm64() {
        let order: Vec<String> = p("linux/arm64/v9.1")
            .preference_order()
            .iter()
            .map(|x| x.to_string())
            .collect();
        assert_eq!(
            order,
            [
                "linux/arm64/v9.1",
                "linux/arm64/v9",
                "linux/arm64/v8.6",
                "linux/arm64/v8.5",
                "linux/arm64/v8.4",
                "linux/arm64/v8.3",
                "linux/arm64/v8.2",
                "linux/arm64/v8.1",
                "linux/arm64",
                "linux/arm/v8",
                "linux/arm/v7",
                "linux/arm/v6",
                "linux/arm/v5",
            ]
        );
    }

    #[test]
    fn strict_match_has_no_fallback() {
        assert!(p("linux/amd64").matches_exactly(&raw("linux", "x86_64", "")));
        assert!(!p("linux/amd64").matches_exactly(&raw("linux", "386", "")));
        assert!(!p("linux/arm64").matches_exactly(&raw("linux", "arm", "v7")));
    }
}
