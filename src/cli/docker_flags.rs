//! `docker build` and `docker buildx build` flags that rbuild does not take, with what to do
//! instead: a command line written for docker gets a clear answer, never clap's generic
//! "unexpected argument" and its misleading tip to pass the flag after `--`.

/// What to say about docker's build flag `flag` (`--squash`), if it is one rbuild lacks.
pub(crate) fn advice(flag: &str) -> Option<&'static str> {
    Some(match flag {
        "--attest" => "rbuild makes no attestations yet; drop the flag",
        "--security-opt" => {
            "RUN gets Docker's default capabilities; use RUN --security=insecure with --allow security.insecure"
        }
        "--cgroup-parent" | "--cpu-shares" | "--cpu-period" | "--cpu-quota" | "--cpuset-cpus"
        | "--cpuset-mems" | "--memory-swap" => {
            "RUN's resource limits are set with --memory, --cpus and --pids-limit"
        }
        "--squash" => "rbuild keeps one layer per step; squashing is not supported",
        "--compress" | "--stream" => {
            "the context is read in place: there is nothing to compress or stream"
        }
        "--disable-content-trust" => {
            "rbuild does not verify content trust signatures; drop the flag"
        }
        "--builder" => "rbuild is the builder: drop the flag",
        "--annotation" => "annotations are not supported yet; use --label for the image config",
        "--no-cache-filter" => "use --no-cache to rebuild every step",
        "--call" | "--check" | "--print" => {
            "use `rbuild check` to lint a Dockerfile without building"
        }
        "--debug" => "use --progress=plain for the whole log of each step",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn docker_flags_get_advice_and_others_none() {
        assert!(super::advice("--squash").is_some());
        assert!(super::advice("--attest").unwrap().contains("attestations"));
        assert!(super::advice("--no-such-flag").is_none());
    }
}
