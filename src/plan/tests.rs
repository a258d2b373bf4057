//! Unit tests of the planner: scoping, expansion, targets and the scope-dependent lint rules.

use super::*;

fn plan_of(text: &str, args: &[(&str, &str)]) -> Result<Plan, Diagnostic> {
    let opts = Options {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: None,
        build_platform: Platform::parse("linux/amd64").unwrap(),
        target_platform: Platform::parse("linux/arm64").unwrap(),
        ..Options::default()
    };
    plan(&Source::new("Dockerfile", text), &opts)
}

fn rules(p: &Plan) -> Vec<String> {
    p.lints
        .iter()
        .map(|d| d.rule.as_deref().unwrap().to_string())
        .collect()
}

fn env_of(step: &Step) -> Vec<(String, String)> {
    match &step.instruction.kind {
        Kind::Env(kvs) => kvs
            .iter()
            .map(|kv| (kv.key.value.clone(), kv.value.value.clone()))
            .collect(),
        Kind::Label(kvs) => kvs
            .iter()
            .map(|kv| (kv.key.value.clone(), kv.value.value.clone()))
            .collect(),
        other => panic!("not ENV/LABEL: {other:?}"),
    }
}

#[test]
fn meta_args_expand_from_and_build_args_override() {
    let p = plan_of("ARG TAG=1.0\nARG IMG=alpine:$TAG\nFROM $IMG\n", &[]).unwrap();
    assert_eq!(p.stages[0].base, Base::Image("alpine:1.0".into()));
    let p = plan_of(
        "ARG TAG=1.0\nARG IMG=alpine:$TAG\nFROM $IMG\n",
        &[("TAG", "2")],
    )
    .unwrap();
    assert_eq!(p.stages[0].base, Base::Image("alpine:2".into()));
}

#[test]
fn meta_args_need_redeclaring_inside_a_stage() {
    let text = "ARG V=1\nFROM scratch\nENV A=$V\nARG V\nENV B=$V\n";
    let p = plan_of(text, &[]).unwrap();
    assert_eq!(env_of(&p.stages[0].steps[0]), vec![("A".into(), "".into())]);
    assert_eq!(
        env_of(&p.stages[0].steps[2]),
        vec![("B".into(), "1".into())]
    );
    assert_eq!(rules(&p), vec!["UndefinedVar"]);
}

#[test]
fn env_wins_over_arg() {
    let p = plan_of("FROM scratch\nARG X=arg\nENV X=env\nLABEL l=$X\n", &[]).unwrap();
    assert_eq!(
        env_of(&p.stages[0].steps[2]),
        vec![("l".into(), "env".into())]
    );
}

#[test]
fn platform_args_are_automatic_in_from_and_declared_in_stages() {
    let text = "FROM --platform=$BUILDPLATFORM scratch AS b\nARG TARGETARCH\nENV A=$TARGETARCH\n";
    let p = plan_of(text, &[]).unwrap();
    assert_eq!(
        p.stages[0].platform.as_ref().unwrap().specifier(),
        "linux/amd64"
    );
    assert_eq!(
        env_of(&p.stages[0].steps[1]),
        vec![("A".into(), "arm64".into())]
    );
    assert!(rules(&p).is_empty(), "{:?}", rules(&p));
}

#[test]
fn build_arg_overrides_stage_default() {
    let p = plan_of("FROM scratch\nARG X=def\nENV A=$X\n", &[("X", "cli")]).unwrap();
    assert_eq!(
        env_of(&p.stages[0].steps[1]),
        vec![("A".into(), "cli".into())]
    );
}

#[test]
fn stages_reference_earlier_stages_and_target_selects() {
    let text =
        "FROM alpine AS base\nFROM base AS app\nCOPY --from=base /a /b\nFROM scratch AS other\n";
    let mut p = plan_of(text, &[]).unwrap();
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(p.needed_stages(), vec![2]);
    p.target = 1;
    assert_eq!(p.needed_stages(), vec![0, 1]);
    let opts = Options {
        target: Some("nope".into()),
        ..Options::default()
    };
    let e = plan(&Source::new("Dockerfile", text), &opts).unwrap_err();
    assert!(
        e.message
            .contains("target stage \"nope\" could not be found"),
        "{}",
        e.message
    );
}

#[test]
fn required_variable_error_points_at_word() {
    let e = plan_of("FROM scratch\nENV A=\"${NOPE:?must be set}\"\n", &[]).unwrap_err();
    assert!(e.message.contains("must be set"), "{}", e.message);
    assert_eq!(e.location.unwrap().line, 2);
}

#[test]
fn undefined_arg_in_from_and_invalid_default() {
    let p = plan_of("FROM $NOPE\n", &[("NOPE", "x")]);
    assert!(p.is_err(), "an undeclared FROM variable is empty");
    let p = plan_of(
        "ARG IMG\nFROM ${IMG:-alpine}\nFROM $UNDECLARED:1 AS b\n",
        &[("UNDECLARED", "x")],
    );
    let p = p.unwrap_err();
    assert!(
        p.message.contains("invalid base image reference"),
        "{}",
        p.message
    );
    let p = plan_of("ARG V\nFROM alpine:$V\n", &[("V", "3")]).unwrap();
    assert_eq!(rules(&p), vec!["InvalidDefaultArgInFrom"]);
}

#[test]
fn instruction_before_from_is_an_error() {
    let e = plan_of("RUN x\nFROM scratch\n", &[]).unwrap_err();
    assert_eq!(e.message, "no build stage in current context");
    let e = plan_of("ARG A=1\n", &[]).unwrap_err();
    assert_eq!(e.message, "dockerfile contains no stages to build");
}

#[test]
fn bad_mount_value_fails_after_expansion() {
    let e = plan_of(
        "FROM scratch\nARG T=nope\nRUN --mount=type=$T,target=/x true\n",
        &[],
    )
    .unwrap_err();
    assert!(
        e.message.contains("unsupported mount type \"nope\""),
        "{}",
        e.message
    );
}

#[test]
fn syntax_rules_fire() {
    let text = "FROM alpine as Build\nMAINTAINER me\nENV A b\nCMD echo hi\nCMD echo bye\nWORKDIR app\nARG API_TOKEN\nrun true\n";
    let p = plan_of(text, &[]).unwrap();
    let r: BTreeSet<String> = rules(&p).into_iter().collect();
    for want in [
        "StageNameCasing",
        "FromAsCasing",
        "MaintainerDeprecated",
        "LegacyKeyValueFormat",
        "JSONArgsRecommended",
        "MultipleInstructionsDisallowed",
        "WorkdirRelativePath",
        "SecretsUsedInArgOrEnv",
        "ConsistentInstructionCasing",
    ] {
        assert!(r.contains(want), "{want} missing from {r:?}");
    }
}

#[test]
fn check_directive_skips_and_errors() {
    let p = plan_of(
        "# check=skip=JSONArgsRecommended\nFROM scratch\nCMD echo\n",
        &[],
    )
    .unwrap();
    assert!(p.lints.is_empty());
    let p = plan_of("# check=error=true\nFROM scratch\nCMD echo\n", &[]).unwrap();
    assert!(p.lint_failed());
}

#[test]
fn copy_heredoc_expands_variables_not_quotes() {
    let p = plan_of(
        "FROM scratch\nARG N=x\nCOPY <<EOF /f\n'$N' \"$N\"\nEOF\n",
        &[],
    )
    .unwrap();
    let Kind::Copy(c) = &p.stages[0].steps[1].instruction.kind else {
        panic!()
    };
    assert_eq!(c.paths.inline[0].data, "'x' \"x\"\n");
}

#[test]
fn proxy_args_pass_without_declaration() {
    let p = plan_of(
        "FROM scratch\n",
        &[("HTTP_PROXY", "http://p:3128"), ("X", "1")],
    )
    .unwrap();
    assert_eq!(p.proxy_env.len(), 1);
}

/// A stage built FROM a stage inherits its ENV and its ARG values (Docker's build-variables
/// documentation: "arguments and variables are inherited from parent stages"); a stage
/// FROM anything else sees neither.
#[test]
fn a_stage_built_on_a_stage_inherits_its_env_and_its_args() {
    let text = "FROM scratch AS a\nARG V=arg\nENV X=1\nFROM a\nENV Y=${X:?unset} Z=$V\n\
                FROM scratch\nENV W=$V\n";
    let p = plan_of(text, &[]).unwrap();
    assert!(p.stages[1].env_known, "a scratch parent's env is known");
    assert_eq!(
        env_of(&p.stages[1].steps[0]),
        vec![("Y".into(), "1".into()), ("Z".into(), "arg".into())]
    );
    assert_eq!(env_of(&p.stages[2].steps[0]), vec![("W".into(), "".into())]);
    assert_eq!(
        rules(&p),
        vec!["UndefinedVar"],
        "V is undefined in the last stage"
    );
}

#[test]
fn an_image_base_leaves_variables_it_may_set_unexpanded() {
    let text = "FROM alpine AS a\nENV PATH=/x:$PATH P=${PATH:?nopath} D=${HOME:-/root}\n\
                ARG A=1\nENV B=$A\nFROM a\nENV C=$B\n";
    let p = plan_of(text, &[]).unwrap();
    assert!(!p.stages[0].env_known && !p.stages[1].env_known);
    assert_eq!(
        env_of(&p.stages[0].steps[0]),
        vec![
            ("PATH".into(), "/x:$PATH".into()),
            // P expands with the PATH from before this ENV: the image's, unknown here.
            ("P".into(), "${PATH:?nopath}".into()),
            ("D".into(), "${HOME:-/root}".into()),
        ]
    );
    assert_eq!(
        env_of(&p.stages[0].steps[2]),
        vec![("B".into(), "1".into())]
    );
    assert_eq!(
        env_of(&p.stages[1].steps[0]),
        vec![("C".into(), "1".into())]
    );
    assert!(rules(&p).is_empty(), "{:?}", rules(&p));
}

#[test]
fn run_mounts_are_expanded_kept_and_followed() {
    let text = "FROM scratch AS tools\nFROM scratch AS unused\nFROM scratch\nARG T=/t\n\
                RUN --mount=type=bind,from=tools,target=$T --mount=type=secret,id=s \
                --mount=type=ssh --mount=type=ssh,id=other true\n";
    let p = plan_of(text, &[]).unwrap();
    let m = &p.stages[2].steps[1].mounts;
    assert_eq!(m.len(), 4);
    assert_eq!(
        (m[0].from.as_deref(), m[0].target.as_str()),
        (Some("tools"), "/t")
    );
    assert_eq!(
        m[2].target, "/run/buildkit/ssh_agent.0",
        "ssh mounts count alone"
    );
    assert_eq!(m[3].target, "/run/buildkit/ssh_agent.1");
    assert_eq!(p.needed_stages(), vec![0, 2], "the bind's stage is needed");
}

#[test]
fn build_args_no_arg_declares_are_reported() {
    let text = "ARG META\nFROM scratch\nARG USED\n";
    let args = [
        ("META", "1"),
        ("USED", "2"),
        ("TYPO", "3"),
        ("HTTP_PROXY", "p"),
    ];
    let p = plan_of(text, &args).unwrap();
    assert_eq!(p.unused_build_args, vec!["TYPO".to_string()]);
}

#[test]
fn a_heredoc_body_that_fails_to_expand_is_an_error() {
    let text = "FROM scratch\nCOPY <<EOF /f\n${MISSING:?must be set}\nEOF\n";
    let err = plan_of(text, &[]).unwrap_err();
    assert!(err.message.contains("must be set"), "{}", err.message);
    let ok = plan_of("FROM scratch\nARG V=x\nCOPY <<EOF /f\n$V\nEOF\n", &[]).unwrap();
    let Kind::Copy(c) = &ok.stages[0].steps[1].instruction.kind else {
        panic!("not COPY")
    };
    assert_eq!(c.paths.inline[0].data, "x\n");
}

#[test]
fn base_image_env_expands_words_when_known() {
    let text = "FROM img\nENV PATH=/opt/bin:$PATH\nWORKDIR $HOME/app\n";
    let source = Source::new("Dockerfile", text);
    // Unknown: left for the image to define.
    let p = plan(&source, &Options::default()).unwrap();
    assert!(!p.stages[0].env_known);
    let env = |p: &Plan| match &p.stages[0].steps[0].instruction.kind {
        Kind::Env(kvs) => kvs[0].value.value.clone(),
        k => panic!("{k:?}"),
    };
    assert_eq!(env(&p), "/opt/bin:$PATH");
    // Known: expanded with the image's ENV.
    let mut opts = Options::default();
    opts.base_env.insert(
        "img".into(),
        vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("HOME".into(), "/home/u".into()),
        ],
    );
    let p = plan(&source, &opts).unwrap();
    assert!(p.stages[0].env_known);
    assert_eq!(env(&p), "/opt/bin:/usr/bin:/bin");
    match &p.stages[0].steps[1].instruction.kind {
        Kind::Workdir(a) => assert_eq!(a.value, "/home/u/app"),
        k => panic!("{k:?}"),
    }
}

/// Every word of one ENV or ARG expands with the variables from before the instruction, as
/// BuildKit expands a whole instruction with one expander; ARG names are words too.
#[test]
fn one_instruction_expands_with_the_variables_before_it() {
    let text = "FROM scratch\nENV A=1\nENV A=2 L=$A\nARG B=x\nARG B=y C=$B\nENV D=$C\n\
                ARG src=NAME\nARG ${src}=value\nENV E=$NAME\nLABEL l1=$A l2=$L\n";
    let p = plan_of(text, &[]).unwrap();
    let steps = &p.stages[0].steps;
    assert_eq!(
        env_of(&steps[1]),
        vec![("A".into(), "2".into()), ("L".into(), "1".into())]
    );
    assert_eq!(env_of(&steps[4]), vec![("D".into(), "x".into())]);
    assert_eq!(env_of(&steps[7]), vec![("E".into(), "value".into())]);
    assert_eq!(
        env_of(&steps[8]),
        vec![("l1".into(), "2".into()), ("l2".into(), "1".into())]
    );
}

/// A stage built FROM an earlier stage sees the ARG values declared there.
#[test]
fn a_child_stage_sees_its_parent_stage_args() {
    let text =
        "FROM scratch AS base\nARG NAME=base\nFROM base\nARG NAME=\"$NAME-dev\"\nENV N=$NAME\n";
    let p = plan_of(text, &[]).unwrap();
    assert_eq!(
        env_of(&p.stages[1].steps[1]),
        vec![("N".into(), "base-dev".into())]
    );
}

/// A stage referenced in another case is an invalid image name, as BuildKit has it; the
/// hint names the stage.
#[test]
fn a_mixed_case_stage_reference_is_refused() {
    let err = plan_of("FROM scratch AS bug_stage\nFROM BUG_stage\n", &[]).unwrap_err();
    assert!(
        err.message.contains("\"BUG_stage\"") && err.message.contains("lowercase"),
        "{}",
        err.message
    );
    assert!(plan_of("FROM scratch AS Build\nFROM build\n", &[]).is_ok());
}
