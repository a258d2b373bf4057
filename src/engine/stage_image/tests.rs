//! Unit tests of the stage image: Dockerfiles go through the real planner, then every step
//! through `apply`, the way the engine drives it; the expectations are what BuildKit writes.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::*;
use crate::diag::Source;
use crate::plan::{self, Base, Options, Plan};

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The base every `FROM image` stage of these tests starts from: a python-like config with
/// a CMD, an ONBUILD trigger, a `created` time and keys BuildKit does not keep.
fn base_config() -> ImageConfig {
    let v = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["python3"],
            "Labels": {"base": "yes", "shared": "base"},
            "OnBuild": ["RUN echo from-base"],
            "Hostname": "abc"
        },
        "container_config": {"Cmd": ["/bin/sh"]},
        "docker_version": "20.10.7",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:0b1edfbffd27c935a666e233a0042ed634205f6f754dbe20769a60369c614f85"]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /", "x-vendor": 1}]
    });
    ImageConfig::from_json(v.to_string().as_bytes()).unwrap()
}

fn plan_of(text: &str, build_args: &[(&str, &str)]) -> Plan {
    let opts = Options {
        build_args: build_args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: None,
        build_platform: Platform::parse("linux/amd64").unwrap(),
        target_platform: Platform::parse("linux/amd64").unwrap(),
        ..Options::default()
    };
    plan::plan(&Source::new("Dockerfile", text), &opts).unwrap()
}

/// Build stage `index` of a plan the way the engine does: start from its base, apply every
/// step and commit its history entry (empty-layer unless the step writes a layer).
fn build_stage(plan: &Plan, index: usize) -> Result<StageImage, StepError> {
    let stage = &plan.stages[index];
    let mut image = match stage.base {
        Base::Scratch => StageImage::scratch(&Platform::parse("linux/amd64").unwrap()),
        Base::Image(_) => StageImage::from_base(base_config()),
        Base::Stage(parent) => StageImage::from_stage(&build_stage(plan, parent)?),
    };
    for step in &stage.steps {
        if let Some(commit) = image.apply(step)? {
            image.push_history(commit.created_by, !commit.writes_layer, None);
        }
    }
    Ok(image)
}

fn build_with(text: &str, build_args: &[(&str, &str)]) -> Result<StageImage, StepError> {
    let plan = plan_of(text, build_args);
    build_stage(&plan, plan.target)
}

fn build(text: &str) -> StageImage {
    build_with(text, &[]).unwrap()
}

/// The `config` object as it will be written.
fn container_json(image: &StageImage) -> Value {
    let bytes = image.config.to_canonical_json().unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["config"].clone()
}

/// The entries this Dockerfile committed (the base's own are left out).
fn committed(image: &StageImage) -> Vec<(String, bool)> {
    image
        .config
        .history
        .iter()
        .filter(|h| h.comment == COMMENT)
        .map(|h| (h.created_by.clone(), h.empty_layer))
        .collect()
}

/// The last RUN step of the target stage and the image just before it.
fn before_last_run(text: &str) -> (StageImage, Step) {
    let plan = plan_of(text, &[]);
    let stage = &plan.stages[plan.target];
    let last = stage
        .steps
        .iter()
        .rposition(|s| matches!(s.instruction.kind, Kind::Run(_)))
        .expect("a RUN step");
    let mut image = match stage.base {
        Base::Scratch => StageImage::scratch(&Platform::parse("linux/amd64").unwrap()),
        Base::Image(_) => StageImage::from_base(base_config()),
        Base::Stage(parent) => StageImage::from_stage(&build_stage(&plan, parent).unwrap()),
    };
    for step in &stage.steps[..last] {
        image.apply(step).unwrap();
    }
    (image, stage.steps[last].clone())
}

/// `name: Dockerfile => the "config" object as written`.
macro_rules! config_is {
    ($($name:ident: $text:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_eq!(container_json(&build($text)), $want, "{}", $text);
        }
    )*};
}

/// `name: Dockerfile => [(created_by, empty_layer), …]` for the entries it commits.
macro_rules! history_is {
    ($($name:ident: $text:expr => [$(($by:expr, $empty:expr)),* $(,)?];)*) => {$(
        #[test]
        fn $name() {
            let want: Vec<(String, bool)> = vec![$(($by.to_string(), $empty)),*];
            assert_eq!(committed(&build($text)), want, "{}", $text);
        }
    )*};
}

/// `name: Dockerfile => BuildKit's error message`.
macro_rules! rejects {
    ($($name:ident: $text:expr => $msg:expr;)*) => {$(
        #[test]
        fn $name() {
            let err = build_with($text, &[]).unwrap_err();
            assert_eq!(err.to_string(), $msg, "{}", $text);
        }
    )*};
}

/// `name: Dockerfile => argv of its last RUN`.
macro_rules! runs {
    ($($name:ident: $text:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            let (image, step) = before_last_run($text);
            let want: Vec<&str> = $want.to_vec();
            assert_eq!(image.run_args(&step).unwrap(), want, "{}", $text);
        }
    )*};
}

/// `name: Dockerfile, proxy build args => environment of its last RUN`.
macro_rules! run_env_is {
    ($($name:ident: $text:expr, $proxy:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            let (image, _) = before_last_run($text);
            let proxy: BTreeMap<String, String> = $proxy
                .iter()
                .map(|(k, v): &(&str, &str)| (k.to_string(), v.to_string()))
                .collect();
            let want: Vec<&str> = $want.to_vec();
            assert_eq!(image.run_env(&proxy), want, "{}", $text);
        }
    )*};
}

config_is! {
    scratch_has_buildkit_defaults: "FROM scratch\n"
        => json!({"Env": [PATH], "WorkingDir": "/"});
    env_pairs_replace_in_place: "FROM scratch\nENV A=1 B=2\nENV A=3 C=4\n"
        => json!({"Env": [PATH, "A=3", "B=2", "C=4"], "WorkingDir": "/"});
    env_legacy_form: "FROM scratch\nENV PYTHONUNBUFFERED 1\n"
        => json!({"Env": [PATH, "PYTHONUNBUFFERED=1"], "WorkingDir": "/"});
    env_replaces_base_key: "FROM python\nENV LANG=C\n"
        => json!({"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C"], "Cmd": ["python3"], "Labels": {"base": "yes", "shared": "base"}});
    env_path_replaces_default: "FROM scratch\nENV PATH=/opt/bin\n"
        => json!({"Env": ["PATH=/opt/bin"], "WorkingDir": "/"});
    workdir_relative_joins: "FROM scratch\nWORKDIR a\nWORKDIR b\n"
        => json!({"Env": [PATH], "WorkingDir": "/a/b"});
    workdir_relative_is_cleaned: "FROM scratch\nWORKDIR /app\nWORKDIR ../srv/./x/\n"
        => json!({"Env": [PATH], "WorkingDir": "/srv/x"});
    workdir_absolute_kept_as_written: "FROM scratch\nWORKDIR /app/\n"
        => json!({"Env": [PATH], "WorkingDir": "/app/"});
    workdir_uses_env: "FROM scratch\nENV HOME=/home/me\nWORKDIR $HOME/src\n"
        => json!({"Env": [PATH, "HOME=/home/me"], "WorkingDir": "/home/me/src"});
    cmd_shell_form_uses_default_shell: "FROM scratch\nCMD echo hi\n"
        => json!({"Env": [PATH], "Cmd": ["/bin/sh", "-c", "echo hi"], "ArgsEscaped": true, "WorkingDir": "/"});
    cmd_shell_form_uses_shell: "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nCMD echo hi\n"
        => json!({"Env": [PATH], "Cmd": ["/bin/bash", "-c", "echo hi"], "ArgsEscaped": true, "Shell": ["/bin/bash", "-c"], "WorkingDir": "/"});
    entrypoint_shell_form_uses_shell: "FROM scratch\nSHELL [\"/bin/ash\", \"-eo\", \"pipefail\", \"-c\"]\nENTRYPOINT exec app\n"
        => json!({"Env": [PATH], "Entrypoint": ["/bin/ash", "-eo", "pipefail", "-c", "exec app"], "Shell": ["/bin/ash", "-eo", "pipefail", "-c"], "WorkingDir": "/"});
    entrypoint_resets_base_cmd: "FROM python\nENTRYPOINT [\"app\"]\n"
        => json!({"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], "Entrypoint": ["app"], "Labels": {"base": "yes", "shared": "base"}});
    entrypoint_keeps_cmd_of_this_stage: "FROM python\nCMD [\"--help\"]\nENTRYPOINT [\"app\"]\n"
        => json!({"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], "Entrypoint": ["app"], "Cmd": ["--help"], "ArgsEscaped": true, "Labels": {"base": "yes", "shared": "base"}});
    entrypoint_resets_cmd_of_parent_stage: "FROM scratch AS base\nCMD [\"--help\"]\nFROM base\nENTRYPOINT [\"app\"]\n"
        => json!({"Env": [PATH], "Entrypoint": ["app"], "ArgsEscaped": true, "WorkingDir": "/"});
    expose_ports_protocols_and_ranges: "FROM scratch\nEXPOSE 80 53/udp 8000-8002\nEXPOSE 80/tcp\n"
        => json!({"Env": [PATH], "ExposedPorts": {"53/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}}, "WorkingDir": "/"});
    expose_splits_expanded_words: "FROM scratch\nARG PORTS=\"80 443\"\nEXPOSE $PORTS\n"
        => json!({"Env": [PATH], "ExposedPorts": {"443/tcp": {}, "80/tcp": {}}, "WorkingDir": "/"});
    volumes_accumulate: "FROM scratch\nVOLUME /data\nVOLUME [\"/logs\", \"/cache\"]\n"
        => json!({"Env": [PATH], "Volumes": {"/cache": {}, "/data": {}, "/logs": {}}, "WorkingDir": "/"});
    labels_merge_with_base: "FROM python\nLABEL shared=mine new=\"a b\"\n"
        => json!({"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["python3"], "Labels": {"base": "yes", "shared": "mine", "new": "a b"}});
    user_and_stopsignal: "FROM scratch\nUSER 1000:1000\nSTOPSIGNAL SIGQUIT\n"
        => json!({"Env": [PATH], "User": "1000:1000", "StopSignal": "SIGQUIT", "WorkingDir": "/"});
    healthcheck_none: "FROM scratch\nHEALTHCHECK NONE\n"
        => json!({"Env": [PATH], "Healthcheck": {"Test": ["NONE"]}, "WorkingDir": "/"});
    healthcheck_with_options: "FROM scratch\nHEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/\n"
        => json!({"Env": [PATH], "Healthcheck": {"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 30_000_000_000i64, "Timeout": 5_000_000_000i64, "StartPeriod": 60_000_000_000i64, "StartInterval": 2_000_000_000i64, "Retries": 3}, "WorkingDir": "/"});
    healthcheck_exec_form: "FROM scratch\nHEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n"
        => json!({"Env": [PATH], "Healthcheck": {"Test": ["CMD", "/bin/check", "-q"]}, "WorkingDir": "/"});
    onbuild_appends_trigger_text: "FROM scratch\nONBUILD COPY . /src\nONBUILD RUN make\n"
        => json!({"Env": [PATH], "OnBuild": ["COPY . /src", "RUN make"], "WorkingDir": "/"});
    base_triggers_do_not_carry_over: "FROM python\nONBUILD RUN mine\n"
        => json!({"Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"], "Cmd": ["python3"], "Labels": {"base": "yes", "shared": "base"}, "OnBuild": ["RUN mine"]});
    parent_stage_triggers_do_not_carry_over: "FROM scratch AS base\nONBUILD RUN make\nFROM base\n"
        => json!({"Env": [PATH], "WorkingDir": "/"});
    arg_stays_out_of_the_config: "FROM scratch\nARG V=1\n"
        => json!({"Env": [PATH], "WorkingDir": "/"});
}

#[test]
fn maintainer_sets_author() {
    let image = build("FROM scratch\nMAINTAINER Jane <jane@example.com>\n");
    assert_eq!(image.config.author, "Jane <jane@example.com>");
}

#[test]
fn from_base_keeps_layers_and_history_and_drops_what_buildkit_drops() {
    let image = build("FROM python\n");
    let written: Value =
        serde_json::from_slice(&image.config.to_canonical_json().unwrap()).unwrap();
    assert_eq!(
        written,
        json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"],
                "Cmd": ["python3"],
                "Labels": {"base": "yes", "shared": "base"}
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:0b1edfbffd27c935a666e233a0042ed634205f6f754dbe20769a60369c614f85"]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs.tar /"}]
        })
    );
}

#[test]
fn base_without_path_gets_the_default_at_the_end() {
    let mut base = base_config();
    base.config.as_mut().unwrap().env = vec!["LANG=C".into()];
    let image = StageImage::from_base(base);
    assert_eq!(
        image.env(),
        vec![
            ("LANG".to_string(), "C".to_string()),
            ("PATH".to_string(), DEFAULT_PATH.to_string())
        ]
    );
}

#[test]
fn base_without_config_object_gets_one() {
    let base = ImageConfig::from_json(br#"{"architecture":"arm64","os":"linux"}"#).unwrap();
    let image = StageImage::from_base(base);
    assert_eq!(container_json(&image), json!({"Env": [PATH]}));
    assert_eq!(image.workdir(), "/");
    assert_eq!(image.user(), "");
    assert_eq!(image.shell(), vec!["/bin/sh", "-c"]);
}

#[test]
fn windows_scratch_has_no_path_and_uses_cmd() {
    let image = StageImage::scratch(&Platform::new("windows", "amd64", None));
    assert!(image.env().is_empty());
    assert_eq!(image.shell(), vec!["cmd", "/S", "/C"]);
}

#[test]
fn onbuild_triggers_are_taken_once() {
    let mut image = StageImage::from_base(base_config());
    assert_eq!(image.take_onbuild(), vec!["RUN echo from-base"]);
    assert!(image.take_onbuild().is_empty());
    let plan = plan_of("FROM scratch AS base\nONBUILD RUN make\nFROM base\n", &[]);
    let mut child = StageImage::from_stage(&build_stage(&plan, 0).unwrap());
    assert_eq!(child.take_onbuild(), vec!["RUN make"]);
}

#[test]
fn layers_and_history_are_recorded() {
    let mut image = StageImage::scratch(&Platform::parse("linux/amd64").unwrap());
    let diff_id = Digest::sha256(b"layer");
    image.push_layer(diff_id.clone());
    image.push_history(
        "COPY a / # buildkit".into(),
        false,
        Some("2024-05-01T00:00:00Z".into()),
    );
    assert_eq!(image.config.rootfs.diff_ids, vec![diff_id]);
    assert_eq!(image.config.non_empty_history_len(), 1);
    let h = &image.config.history[0];
    assert_eq!(h.comment, "buildkit.dockerfile.v0");
    assert_eq!(h.created.as_deref(), Some("2024-05-01T00:00:00Z"));
}

history_is! {
    flask_watchlist: "FROM python:3.10-alpine\nWORKDIR /app\nENV PYTHONDONTWRITEBYTECODE 1\nENV PYTHONUNBUFFERED 1\nCOPY requirements.txt /app\nRUN --mount=type=cache,target=/root/.cache/pip \\\n    pip3 install -r requirements.txt\nCOPY . .\nRUN python init_db.py\nEXPOSE 5000/tcp\nCMD [\"gunicorn\", \"-w\", \"2\", \"-b\", \"0.0.0.0:5000\", \"app:app\"]\n" => [
        ("WORKDIR /app", false),
        ("ENV PYTHONDONTWRITEBYTECODE=1", true),
        ("ENV PYTHONUNBUFFERED=1", true),
        ("COPY requirements.txt /app # buildkit", false),
        ("RUN /bin/sh -c pip3 install -r requirements.txt # buildkit", false),
        ("COPY . . # buildkit", false),
        ("RUN /bin/sh -c python init_db.py # buildkit", false),
        ("EXPOSE map[5000/tcp:{}]", true),
        (r#"CMD ["gunicorn" "-w" "2" "-b" "0.0.0.0:5000" "app:app"]"#, true),
    ];
    metadata_wording: "FROM scratch\nLABEL a=1 b=\"x y\"\nUSER app\nVOLUME /data /logs\nSTOPSIGNAL 9\nSHELL [\"/bin/bash\", \"-c\"]\nMAINTAINER me\nENTRYPOINT run it\n" => [
        ("LABEL a=1 b=x y", true),
        ("USER app", true),
        ("VOLUME [/data /logs]", true),
        ("STOPSIGNAL 9", true),
        ("SHELL [/bin/bash -c]", true),
        ("MAINTAINER me", true),
        (r#"ENTRYPOINT ["/bin/bash" "-c" "run it"]"#, true),
    ];
    workdir_root_writes_no_layer: "FROM scratch\nWORKDIR /\nWORKDIR /srv\n" => [
        ("WORKDIR /", true),
        ("WORKDIR /srv", false),
    ];
    onbuild_commits_nothing: "FROM scratch\nONBUILD RUN x\nUSER u\n" => [
        ("USER u", true),
    ];
    expose_lists_only_its_own_ports_sorted: "FROM scratch\nEXPOSE 80\nEXPOSE 443 8000-8001/udp\n" => [
        ("EXPOSE map[80/tcp:{}]", true),
        ("EXPOSE map[443/tcp:{} 8000/udp:{} 8001/udp:{}]", true),
    ];
    healthcheck_wording: "FROM scratch\nHEALTHCHECK --interval=1m30s --retries=3 CMD curl -f http://x/ || exit 1\n" => [
        ("HEALTHCHECK {Test:[CMD-SHELL curl -f http://x/ || exit 1] Interval:1m30s Timeout:0s StartPeriod:0s StartInterval:0s Retries:3}", true),
    ];
    args_with_and_without_values: "FROM scratch\nARG A=1 B\nARG C\nRUN make\n" => [
        ("ARG A=1 B", true),
        ("ARG C", true),
        ("RUN |3 A=1 B= C= /bin/sh -c make # buildkit", false),
    ];
    args_in_declaration_order: "FROM scratch\nARG ZED=z\nARG ALPHA=a\nRUN [\"make\", \"all\"]\n" => [
        ("ARG ZED=z", true),
        ("ARG ALPHA=a", true),
        ("RUN |2 ZED=z ALPHA=a make all # buildkit", false),
    ];
    arg_declared_after_run_not_counted: "FROM scratch\nRUN a\nARG X=1\nRUN b\n" => [
        ("RUN /bin/sh -c a # buildkit", false),
        ("ARG X=1", true),
        ("RUN |1 X=1 /bin/sh -c b # buildkit", false),
    ];
    arg_shadowed_by_env_shows_env_value: "FROM scratch\nARG V=arg\nENV V=env\nRUN x\n" => [
        ("ARG V=arg", true),
        ("ENV V=env", true),
        ("RUN |1 V=env /bin/sh -c x # buildkit", false),
    ];
    parent_stage_args_count_in_child: "FROM scratch AS base\nARG X=1\nFROM base\nRUN x\n" => [
        ("ARG X=1", true),
        ("RUN |1 X=1 /bin/sh -c x # buildkit", false),
    ];
    sbom_arg_counts_in_history: "FROM scratch\nARG BUILDKIT_SBOM_SCAN_STAGE=true\nRUN x\n" => [
        ("ARG BUILDKIT_SBOM_SCAN_STAGE=true", true),
        ("RUN |1 BUILDKIT_SBOM_SCAN_STAGE=true /bin/sh -c x # buildkit", false),
    ];
    copy_and_add_wording: "FROM scratch\nCOPY --from=build --chown=app --link a b /dst/\nADD --chmod=755 https://example.com/x.tgz /opt/\nCOPY <<EOF /etc/motd\nhello\nEOF\n" => [
        ("COPY --chown=app a b /dst/ # buildkit", false),
        ("ADD --chmod=755 https://example.com/x.tgz /opt/ # buildkit", false),
        ("COPY <<EOF /etc/motd # buildkit", false),
    ];
    heredoc_run_wording: "FROM scratch\nRUN <<EOF\necho a\necho b\nEOF\n" => [
        ("RUN /bin/sh -c echo a\necho b\n # buildkit", false),
    ];
}

#[test]
fn build_arg_value_shows_in_arg_and_run_history() {
    let image = build_with("FROM scratch\nARG V=default\nRUN x\n", &[("V", "given")]).unwrap();
    assert_eq!(
        committed(&image),
        vec![
            ("ARG V=given".to_string(), true),
            ("RUN |1 V=given /bin/sh -c x # buildkit".to_string(), false)
        ]
    );
}

rejects! {
    expose_dash: "FROM scratch\nEXPOSE -\n" => "invalid containerPort: -";
    expose_bad_proto: "FROM scratch\nEXPOSE 80/xyz\n" => "invalid proto: xyz";
    expose_too_big: "FROM scratch\nEXPOSE 70000\n" => "invalid containerPort: 70000";
    stopsignal_unknown: "FROM scratch\nSTOPSIGNAL SIGFOO\n" => "invalid signal: SIGFOO";
    stopsignal_zero: "FROM scratch\nSTOPSIGNAL 0\n" => "invalid signal: 0";
    stopsignal_rt_out_of_range: "FROM scratch\nSTOPSIGNAL RTMIN+16\n" => "invalid signal: RTMIN+16";
    volume_empty_after_expansion: "FROM scratch\nARG EMPTY=\nVOLUME $EMPTY\n" => "VOLUME specified can not be an empty string";
}

macro_rules! signals_accepted {
    ($($name:ident: $signal:expr;)*) => {$(
        #[test]
        fn $name() {
            assert!(valid_signal($signal), "{}", $signal);
        }
    )*};
}

signals_accepted! {
    signal_with_prefix: "SIGTERM";
    signal_without_prefix: "KILL";
    signal_lower_case: "sigquit";
    signal_number: "9";
    signal_negative_number: "-1";
    signal_realtime_min: "SIGRTMIN+3";
    signal_realtime_max: "RTMAX-14";
}

runs! {
    // BuildKit runs a lone `#!` heredoc as its own file, mounted under /dev/pipes.
    run_shebang_heredoc: "FROM scratch\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n" => ["/dev/pipes/EOF"];
    run_shebang_needs_a_lone_heredoc: "FROM scratch\nRUN python3 <<EOF\n#!/x\nEOF\n" => ["/bin/sh", "-c", "python3 <<EOF\n#!/x\nEOF"];
    run_shell_form: "FROM scratch\nRUN echo hi\n" => ["/bin/sh", "-c", "echo hi"];
    run_exec_form: "FROM scratch\nRUN [\"echo\", \"hi\"]\n" => ["echo", "hi"];
    run_uses_shell: "FROM scratch\nSHELL [\"/bin/bash\", \"-eo\", \"pipefail\", \"-c\"]\nRUN a | b\n" => ["/bin/bash", "-eo", "pipefail", "-c", "a | b"];
    run_keeps_variables_for_the_shell: "FROM scratch\nENV A=1\nRUN echo $A\n" => ["/bin/sh", "-c", "echo $A"];
    run_lone_heredoc_is_the_script: "FROM scratch\nRUN <<EOF\necho a\necho b\nEOF\n" => ["/bin/sh", "-c", "echo a\necho b\n"];
    run_chomped_heredoc: "FROM scratch\nRUN <<-EOF\n\techo a\n\techo b\nEOF\n" => ["/bin/sh", "-c", "echo a\necho b\n"];
    run_quoted_heredoc_is_not_expanded: "FROM scratch\nRUN <<'EOF'\necho $HOME\nEOF\n" => ["/bin/sh", "-c", "echo $HOME\n"];
    run_heredoc_fed_to_a_command: "FROM scratch\nRUN python3 <<EOF\nprint(1)\nEOF\n" => ["/bin/sh", "-c", "python3 <<EOF\nprint(1)\nEOF"];
    run_two_heredocs: "FROM scratch\nRUN cat <<A <<B\na\nA\nb\nB\n" => ["/bin/sh", "-c", "cat <<A <<B\na\nA\nb\nB"];
}

#[test]
fn run_args_refuses_other_steps() {
    let plan = plan_of("FROM scratch\nUSER x\n", &[]);
    let image = StageImage::scratch(&Platform::parse("linux/amd64").unwrap());
    assert_eq!(
        image.run_args(&plan.stages[0].steps[0]).unwrap_err(),
        StepError::NotRun {
            keyword: "USER".into()
        }
    );
}

run_env_is! {
    run_env_scratch: "FROM scratch\nRUN x\n", [] => [PATH];
    run_env_from_base: "FROM python\nRUN x\n", [] => ["PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"];
    run_env_reset_key_moves_to_end: "FROM scratch\nENV A=1\nARG B=2\nENV A=3\nRUN x\n", [] => [PATH, "B=2", "A=3"];
    run_env_arg_without_value_is_unset: "FROM scratch\nARG NOPE\nRUN x\n", [] => [PATH];
    run_env_later_arg_overrides_env: "FROM scratch\nENV V=env\nARG V=arg\nRUN x\n", [] => [PATH, "V=arg"];
    run_env_sbom_args_stay_out: "FROM scratch\nARG BUILDKIT_SBOM_SCAN_CONTEXT=true\nRUN x\n", [] => [PATH];
    run_env_parent_stage_args_and_env: "FROM scratch AS base\nARG X=1\nENV Y=2\nFROM base\nRUN x\n", [] => ["X=1", PATH, "Y=2"];
    run_env_proxies_both_cases: "FROM scratch\nRUN x\n", [("HTTP_PROXY", "http://p:3128"), ("no_proxy", "localhost")]
        => [PATH, "HTTP_PROXY=http://p:3128", "http_proxy=http://p:3128", "NO_PROXY=localhost", "no_proxy=localhost"];
    run_env_lower_case_proxy_wins: "FROM scratch\nRUN x\n", [("HTTPS_PROXY", "upper"), ("https_proxy", "lower")]
        => [PATH, "HTTPS_PROXY=lower", "https_proxy=lower"];
    run_env_empty_proxy_left_out: "FROM scratch\nRUN x\n", [("ALL_PROXY", "")] => [PATH];
}

#[test]
fn expansion_sees_base_env_state_and_args() {
    let image = build("FROM python\nARG V=arg\nENV A=1\n");
    let lexer = crate::dockerfile::shell::Lexer::new('\\');
    let expand = |word: &str| lexer.process_word(word, &image).unwrap();
    assert_eq!(expand("$PATH:/opt"), "/usr/local/bin:/usr/bin:/bin:/opt");
    assert_eq!(expand("${LANG}-$V-$A"), "C.UTF-8-arg-1");
    assert_eq!(expand("${UNSET:-none}"), "none");
}

#[test]
fn image_env_and_run_env_differ_in_order() {
    let image = build("FROM scratch\nENV A=1 B=2\nENV A=3\n");
    assert_eq!(
        image.env(),
        vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            ("A".to_string(), "3".to_string()),
            ("B".to_string(), "2".to_string())
        ]
    );
    assert_eq!(image.run_env(&BTreeMap::new()), vec![PATH, "B=2", "A=3"]);
}

#[test]
fn relative_base_workdir_is_taken_from_the_root() {
    for (written, want) in [("app", "/app"), ("./a/../b/", "/b"), ("/srv", "/srv")] {
        let mut base = base_config();
        base.config.as_mut().unwrap().working_dir = written.into();
        let image = StageImage::from_base(base);
        assert_eq!(image.workdir(), want, "{written:?}");
        assert_eq!(container_json(&image)["WorkingDir"], json!(want));
    }
}
