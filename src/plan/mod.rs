//! The build plan's front half: a pure function from Dockerfile text, build args and
//! platforms to typed stages whose words are expanded the way Docker expands them — meta
//! ARGs before the first FROM, ARG re-declaration per stage, ENV over ARG, automatic platform
//! ARGs, predefined proxy ARGs — plus the lint findings. No I/O: base images' environments
//! are unknown here, so rules that would need them stay quiet for such stages.

pub(crate) mod scope;

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{Diagnostic, Source, Span, chain};
use crate::dockerfile::ast::Arg;
use crate::dockerfile::directive::CheckConfig;
use crate::dockerfile::instruction::{self, Instruction, Kind};
use crate::dockerfile::lint::{self, Linter};
use crate::dockerfile::shell::{Env, Lexer};
use crate::dockerfile::{mount, parser};
use crate::oci::platform::Platform;
use crate::oci::reference::Reference;
use crate::suggest::did_you_mean;
use scope::{GlobalScope, PROXY_ARGS, StageScope, platform_args};

/// A named build context (`--build-context NAME=VALUE`): what `FROM NAME`, `COPY --from=NAME`
/// and `RUN --mount=from=NAME` mean when no stage has that name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory (`NAME=path`): files for `COPY --from`.
    Dir(std::path::PathBuf),
    /// An image (`NAME=docker-image://REF`), in place of the image NAME would name; or
    /// `oci-layout://PATH[:TAG|@DIGEST]`, an image taken from an OCI layout directory.
    Image(String),
}

/// What a plan depends on besides the Dockerfile text.
#[derive(Clone, Debug)]
pub struct Options {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub build_platform: Platform,
    pub target_platform: Platform,
    /// The ENV of base images, by the name as FROM gives it (expanded): a stage on such an
    /// image expands words with the image's variables, as BuildKit does. A stage whose image
    /// is not here leaves variables it cannot know unexpanded (`Stage::env_known`).
    pub base_env: BTreeMap<String, Vec<(String, String)>>,
    /// The ONBUILD triggers of base images, by name as FROM gives it: they become the
    /// stage's first steps, as BuildKit runs them.
    pub base_onbuild: BTreeMap<String, Vec<String>>,
    /// `--build-context`s by name.
    pub named_contexts: BTreeMap<String, NamedContext>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            build_args: BTreeMap::new(),
            target: None,
            build_platform: Platform::host(),
            target_platform: Platform::host(),
            base_env: BTreeMap::new(),
            base_onbuild: BTreeMap::new(),
            named_contexts: BTreeMap::new(),
        }
    }
}

/// Where a stage starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference, expanded, as written (normalised later when pulled).
    Image(String),
}

/// One step of a stage: the instruction with its words expanded, and the ARG values in
/// effect (which RUN sees and which the cache key must include).
#[derive(Clone, Debug)]
pub(crate) struct Step {
    pub(crate) instruction: Instruction,
    /// RUN's `--mount`s, typed and expanded (empty for other instructions).
    pub(crate) mounts: Vec<mount::Mount>,
    /// An ONBUILD trigger of the stage's base image (its text), run right after FROM; its
    /// locations point at that FROM.
    pub(crate) trigger: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Stage {
    pub(crate) name: Option<String>,
    pub(crate) base: Base,
    pub(crate) platform: Option<Platform>,
    pub(crate) from: Instruction,
    pub(crate) steps: Vec<Step>,
    /// Whether the stage's whole environment is known to the plan: it starts from scratch,
    /// or from a stage whose environment is known. A base image's ENV is not (no I/O here),
    /// so in such stages a variable the Dockerfile does not set is left unexpanded (`$PATH`
    /// stays `$PATH`) rather than taken as empty: the image may set it.
    pub(crate) env_known: bool,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub(crate) stages: Vec<Stage>,
    /// Index of the stage to build.
    pub(crate) target: usize,
    /// The platform this plan builds for: the platform of every stage whose FROM names
    /// none. A multi-platform build has one plan per target platform.
    pub(crate) target_platform: Platform,
    /// `--build-context`s by name.
    pub(crate) named_contexts: BTreeMap<String, NamedContext>,
    /// Proxy variables given as build args: in RUN's environment, never in the image.
    pub(crate) proxy_env: BTreeMap<String, String>,
    /// Lint findings, in source order.
    pub lints: Vec<Diagnostic>,
    /// `--build-arg` names no ARG declares (and that are not proxy variables): Docker warns
    /// "One or more build-args [...] were not consumed".
    pub unused_build_args: Vec<String>,
}

impl Plan {
    /// Whether a lint finding is an error (`# check=error=true`).
    pub fn lint_failed(&self) -> bool {
        self.lints
            .iter()
            .any(|d| d.severity == crate::diag::Severity::Error)
    }

    /// The stages the target needs, in dependency order (the target last).
    pub(crate) fn needed_stages(&self) -> Vec<usize> {
        let mut need = BTreeSet::new();
        let mut todo = vec![self.target];
        while let Some(i) = todo.pop() {
            if !need.insert(i) {
                continue;
            }
            todo.extend(self.stage_deps(i));
        }
        need.into_iter().collect()
    }

    /// The stages stage `index` reads directly: its base, and those it copies or mounts
    /// from; each is earlier in the Dockerfile.
    pub(crate) fn stage_deps(&self, index: usize) -> Vec<usize> {
        let s = &self.stages[index];
        let mut deps = BTreeSet::new();
        if let Base::Stage(p) = s.base {
            deps.insert(p);
        }
        for step in &s.steps {
            let copy_from = match &step.instruction.kind {
                Kind::Copy(c) => c.from.as_deref(),
                _ => None,
            };
            let mount_from = step.mounts.iter().filter_map(|m| m.from.as_deref());
            for from in copy_from.into_iter().chain(mount_from) {
                if let Some(j) = self.stage_index(from)
                    && j < index
                {
                    deps.insert(j);
                }
            }
        }
        deps.into_iter().collect()
    }

    /// A stage by name or index (`COPY --from=0`).
    pub(crate) fn stage_index(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| {
                name.parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.stages.len())
            })
    }
}

/// Plan a Dockerfile.
pub fn plan(source: &Source, opts: &Options) -> Result<Plan, Diagnostic> {
    let df = parser::parse(source).map_err(|e| e.diagnostic(source))?;
    let check = match df.directive("check") {
        Some(d) => CheckConfig::parse(&d.value)
            .map_err(|e| Diagnostic::error(chain(&e)).at(source, d.span))?,
        None => CheckConfig::default(),
    };
    let instrs = df
        .nodes
        .iter()
        .map(instruction::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.diagnostic(source))?;
    let mut lint = Linter::new(source, check.clone());
    lint::check_syntax(&df, &instrs, &mut lint);

    let lexer = Lexer::new(df.escape);
    let mut partial = lexer.clone();
    partial.skip_unset_env = true;
    let mut planner = Planner {
        source,
        opts,
        lexer,
        partial,
        scope: StageScope::default(),
        stage_scopes: Vec::new(),
        lint,
        global: GlobalScope::default(),
        defaults: GlobalScope::default(),
    };
    let platform = platform_args(&opts.build_platform, &opts.target_platform);
    planner.global.values = platform.clone();
    planner.defaults.values = platform;

    let first_from = instrs.iter().position(|i| matches!(i.kind, Kind::From(_)));
    let Some(first_from) = first_from else {
        return Err(Diagnostic::error("dockerfile contains no stages to build")
            .at_lines(source, 1, source.line_count())
            .with_hint("add a FROM instruction, such as `FROM scratch`"));
    };
    for i in &instrs[..first_from] {
        let Kind::Arg(decls) = &i.kind else {
            return Err(Diagnostic::error("no build stage in current context")
                .at(source, i.node.keyword_span)
                .with_hint("only ARG may come before the first FROM"));
        };
        planner.meta_args(decls)?;
    }

    let mut stages: Vec<Stage> = Vec::new();
    for i in &instrs[first_from..] {
        if let Kind::From(f) = &i.kind {
            if !stages.is_empty() {
                planner.end_stage();
            }
            let stage = planner.from(i, f, &stages)?;
            // A stage built FROM an earlier one starts with its ENV and its ARG values, as
            // BuildKit carries a base stage's build args into the child; from an image or
            // scratch, only the image's ENV.
            planner.scope = match &stage.base {
                Base::Stage(p) => planner.stage_scopes[*p].clone(),
                Base::Image(name) => StageScope {
                    env: opts.base_env.get(name).cloned().unwrap_or_default(),
                    ..StageScope::default()
                },
                Base::Scratch => StageScope::default(),
            };
            // A base's ONBUILD triggers run as the stage's first steps: an image's, or those
            // an earlier stage declared itself (the ones it ran from its own base are not
            // passed on), as BuildKit runs them for a stage used as a base.
            let triggers = match &stage.base {
                Base::Image(name) => opts.base_onbuild.get(name).cloned().unwrap_or_default(),
                Base::Stage(p) => stages[*p]
                    .steps
                    .iter()
                    .filter(|s| s.trigger.is_none())
                    .filter_map(|s| match &s.instruction.kind {
                        Kind::Onbuild(o) => Some(o.expression.clone()),
                        _ => None,
                    })
                    .collect(),
                Base::Scratch => Vec::new(),
            };
            stages.push(stage);
            let idx = stages.len() - 1;
            for text in triggers {
                let t = trigger(source, i, &text)?;
                planner.step(&t, &mut stages[idx])?;
                if let Some(step) = stages[idx].steps.last_mut() {
                    step.trigger = Some(text);
                }
            }
        } else {
            let idx = stages.len() - 1;
            planner.step(i, &mut stages[idx])?;
        }
    }

    let target = match &opts.target {
        None => stages.len() - 1,
        Some(t) => {
            let lower = t.to_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| {
                    let names: Vec<&str> =
                        stages.iter().filter_map(|s| s.name.as_deref()).collect();
                    let d = Diagnostic::error(format!("target stage \"{t}\" could not be found"));
                    match did_you_mean(t, names.iter().copied()) {
                        Some(s) => d.with_hint(format!("did you mean {s}?")),
                        None if names.is_empty() => d.with_hint(
                            "no stage is named: give one a name with `FROM image AS name`",
                        ),
                        None => d.with_hint(format!("stages: {}", names.join(", "))),
                    }
                })?
        }
    };

    let proxy_env = opts
        .build_args
        .iter()
        .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let declared: BTreeSet<&str> =
        planner
            .global
            .declared
            .keys()
            .map(String::as_str)
            .chain(stages.iter().flat_map(|s| &s.steps).flat_map(
                |step| match &step.instruction.kind {
                    Kind::Arg(decls) => decls.iter().map(|d| d.key.as_str()).collect(),
                    _ => Vec::new(),
                },
            ))
            .collect();
    let unused_build_args = opts
        .build_args
        .keys()
        .filter(|k| !declared.contains(k.as_str()) && !PROXY_ARGS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut lints = planner.lint.found;
    lints.sort_by_key(|d| d.location.as_ref().map(|l| (l.line, l.column)));
    Ok(Plan {
        stages,
        target,
        target_platform: opts.target_platform.clone(),
        named_contexts: opts.named_contexts.clone(),
        proxy_env,
        lints,
        unused_build_args,
    })
}

struct Planner<'a> {
    source: &'a Source,
    opts: &'a Options,
    lexer: Lexer,
    /// `lexer` leaving unset variables as text, for stages whose environment is not known.
    partial: Lexer,
    /// The current stage's ARGs and ENV so far.
    scope: StageScope,
    /// Each finished stage's final ENV, for stages built on it.
    /// Each finished stage's variables: a stage built FROM it starts with them.
    stage_scopes: Vec<StageScope>,
    lint: Linter<'a>,
    global: GlobalScope,
    /// The global scope with defaults only (no build args), for InvalidDefaultArgInFrom.
    defaults: GlobalScope,
}

impl Planner<'_> {
    fn end_stage(&mut self) {
        let scope = std::mem::take(&mut self.scope);
        self.stage_scopes.push(scope);
    }

    fn err_at(&self, span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic::error(message).at(self.source, span)
    }

    /// Expand one word; returns the result and the names it referenced that were unset.
    fn expand(
        &self,
        word: &str,
        span: Span,
        env: &dyn Env,
    ) -> Result<(String, BTreeSet<String>), Diagnostic> {
        self.expand_with(&self.lexer, word, span, env)
    }

    fn expand_with(
        &self,
        lexer: &Lexer,
        word: &str,
        span: Span,
        env: &dyn Env,
    ) -> Result<(String, BTreeSet<String>), Diagnostic> {
        lexer
            .process_word_with_matches(word, env)
            .map(|e| (e.result, e.unmatched))
            .map_err(|e| {
                let at = span.start + e.offset().min(span.end - span.start);
                self.err_at(Span::new(at, span.end.max(at + 1)), chain(&e))
            })
    }

    fn meta_args(&mut self, decls: &[instruction::ArgDecl]) -> Result<(), Diagnostic> {
        for d in decls {
            let default = match &d.value {
                Some(v) => Some(self.expand(v, d.span, &self.global)?.0),
                None => None,
            };
            let default_only = match &d.value {
                Some(v) => Some(self.expand(v, d.span, &self.defaults)?.0),
                None => None,
            };
            let value = self.opts.build_args.get(&d.key).cloned().or(default);
            if let Some(v) = &value {
                self.global.values.insert(d.key.clone(), v.clone());
            }
            if let Some(v) = default_only {
                self.defaults.values.insert(d.key.clone(), v);
            }
            self.global.declared.insert(d.key.clone(), value);
        }
        Ok(())
    }

    fn from(
        &mut self,
        i: &Instruction,
        f: &instruction::FromSpec,
        stages: &[Stage],
    ) -> Result<Stage, Diagnostic> {
        let (image, unmatched) = self.expand(&f.image.value, f.image.span, &self.global)?;
        for name in unmatched {
            if !self.global.declared.contains_key(&name) {
                let known: Vec<&str> = self.global.declared.keys().map(String::as_str).collect();
                let hint = did_you_mean(&name, known).map(|s| format!("did you mean {s}?"));
                self.lint.report(
                    "UndefinedArgInFrom",
                    format!("FROM argument '{name}' is not declared"),
                    f.image.span,
                    hint.or(Some(format!(
                        "declare it before the first FROM: `ARG {name}`"
                    ))),
                );
            }
        }
        if f.image.value.contains('$') {
            let (with_defaults, _) = self.expand(&f.image.value, f.image.span, &self.defaults)?;
            let named_stage = stages
                .iter()
                .any(|s| s.name.as_deref() == Some(with_defaults.to_lowercase().as_str()));
            if with_defaults.is_empty()
                || (!named_stage
                    && with_defaults != "scratch"
                    && Reference::parse(&with_defaults).is_err())
            {
                let args: Vec<&str> = self
                    .global
                    .declared
                    .keys()
                    .map(String::as_str)
                    .filter(|k| f.image.value.contains(*k))
                    .collect();
                self.lint.report(
                    "InvalidDefaultArgInFrom",
                    format!(
                        "Default value for ARG {} results in empty or invalid base image name",
                        f.image.value
                    ),
                    f.image.span,
                    Some(format!(
                        "give {} a default that names an image",
                        args.join(", ")
                    )),
                );
            }
        }
        if image.is_empty() {
            return Err(self
                .err_at(
                    f.image.span,
                    format!("base name ({}) should not be blank", f.image.value),
                )
                .with_hint("pass the variable with --build-arg or give the ARG a default"));
        }
        let platform = match &f.platform {
            None => None,
            Some(p) => {
                let span = i.flags.span("platform").unwrap_or(i.node.keyword_span);
                let (text, _) = self.expand(p, span, &self.global)?;
                Some(Platform::parse(&text).map_err(|e| {
                    self.err_at(
                        span,
                        format!("failed to parse platform {text}: {}", chain(&e)),
                    )
                })?)
            }
        };
        let lower = image.to_lowercase();
        let stage = stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        // Stage names are lower case (`AS Build` names `build`); a reference to one in
        // another case is taken for an image name, which upper case makes invalid: BuildKit
        // refuses it, and so does rbuild, naming the stage that was meant.
        if stage.is_some() && lower != image {
            return Err(self
                .err_at(
                    f.image.span,
                    format!(
                        "invalid base image reference \"{image}\": repository name must be lowercase"
                    ),
                )
                .with_hint(format!(
                    "stage names are lower case: write FROM {lower} to build on that stage"
                )));
        }
        let base = if let Some(idx) = stage {
            Base::Stage(idx)
        } else if let Some(named) = self.opts.named_contexts.get(&image) {
            match named {
                NamedContext::Image(reference) => Base::Image(reference.clone()),
                NamedContext::Dir(dir) => {
                    return Err(self.err_at(
                        f.image.span,
                        format!(
                            "FROM {image}: the build context {image} is a directory ({}), and a stage starts from an image",
                            dir.display()
                        ),
                    )
                    .with_hint(format!(
                        "use it with COPY --from={image}, or name an image: --build-context {image}=docker-image://REF"
                    )));
                }
            }
        } else if lower == "scratch" {
            Base::Scratch
        } else {
            Reference::parse(&image).map_err(|e| {
                self.err_at(
                    f.image.span,
                    format!("invalid base image reference \"{image}\": {}", chain(&e)),
                )
            })?;
            Base::Image(image.clone())
        };
        let mut from = i.clone();
        if let Kind::From(ff) = &mut from.kind {
            ff.image.value = image;
        }
        let env_known = match base {
            Base::Scratch => true,
            Base::Stage(p) => stages[p].env_known,
            Base::Image(ref name) => self.opts.base_env.contains_key(name),
        };
        Ok(Stage {
            name: f.name.clone(),
            base,
            platform,
            from,
            steps: Vec::new(),
            env_known,
        })
    }

    fn step(&mut self, i: &Instruction, stage: &mut Stage) -> Result<(), Diagnostic> {
        let mut scope = std::mem::take(&mut self.scope);
        let env_known = stage.env_known;
        let lexer = if env_known {
            &self.lexer
        } else {
            &self.partial
        };
        let mut out = i.clone();
        let mut undefined: Vec<(String, Span)> = Vec::new();
        let mut mounts = Vec::new();
        {
            let mut word = |a: &mut Arg, scope: &StageScope| -> Result<(), Diagnostic> {
                let (v, unset) = self.expand_with(lexer, &a.value, a.span, scope)?;
                undefined.extend(unset.into_iter().map(|n| (n, a.span)));
                a.value = v;
                Ok(())
            };
            match &mut out.kind {
                // Every word of one ENV (or ARG) expands with the variables from before
                // the instruction: `ENV A=2 L=$A` gives L the old A (BuildKit expands the
                // whole instruction with one expander, `EnvCommand.Expand`).
                Kind::Env(kvs) => {
                    for kv in kvs.iter_mut() {
                        word(&mut kv.key, &scope)?;
                        word(&mut kv.value, &scope)?;
                    }
                    for kv in kvs.iter() {
                        scope.set_env(&kv.key.value, &kv.value.value);
                    }
                }
                Kind::Label(kvs) => {
                    for kv in kvs.iter_mut() {
                        word(&mut kv.key, &scope)?;
                        word(&mut kv.value, &scope)?;
                    }
                }
                Kind::Arg(decls) => {
                    let mut declared = Vec::new();
                    for d in decls.iter_mut() {
                        // The name is a word too (`ARG ${name}=v`, `ArgCommand.Expand`).
                        let mut key = Arg {
                            value: d.key.clone(),
                            span: d.span,
                        };
                        word(&mut key, &scope)?;
                        d.key = key.value;
                        let mut value = match &d.value {
                            Some(v) => {
                                let mut a = Arg {
                                    value: v.clone(),
                                    span: d.span,
                                };
                                word(&mut a, &scope)?;
                                Some(a.value)
                            }
                            None => self.global.values.get(&d.key).cloned(),
                        };
                        if let Some(v) = self.opts.build_args.get(&d.key) {
                            value = Some(v.clone());
                        }
                        d.value = value.clone();
                        declared.push((d.key.clone(), value));
                    }
                    scope.args.extend(declared);
                }
                Kind::Expose(args) | Kind::Volume(args) => {
                    for a in args.iter_mut() {
                        word(a, &scope)?;
                    }
                }
                Kind::User(a) | Kind::Workdir(a) | Kind::StopSignal(a) => word(a, &scope)?,
                Kind::Copy(c) => {
                    let flags = [
                        ("from", &mut c.from),
                        ("chown", &mut c.chown),
                        ("chmod", &mut c.chmod),
                    ];
                    copy_words(&mut c.paths, flags, i, &scope, &mut word)?;
                    expand_inline(lexer, &mut c.paths.inline, &scope, |m| {
                        self.err_at(i.node.span, m)
                    })?;
                }
                Kind::Add(c) => {
                    let flags = [
                        ("chown", &mut c.chown),
                        ("chmod", &mut c.chmod),
                        ("checksum", &mut c.checksum),
                    ];
                    copy_words(&mut c.paths, flags, i, &scope, &mut word)?;
                    expand_inline(lexer, &mut c.paths.inline, &scope, |m| {
                        self.err_at(i.node.span, m)
                    })?;
                }
                Kind::Run(r) => {
                    for m in &r.mounts {
                        let expander =
                            |w: &str| lexer.process_word(w, &scope).map_err(|e| chain(&e));
                        // BuildKit numbers ssh mounts among themselves: ssh_agent.0, .1, …
                        let ssh_index = mounts
                            .iter()
                            .filter(|m: &&mount::Mount| m.kind == mount::MountType::Ssh)
                            .count();
                        let parsed =
                            mount::parse(&m.value, Some(&expander), ssh_index).map_err(|e| {
                                let d = self.err_at(m.span, e.message);
                                match e.hint {
                                    Some(h) => d.with_hint(h),
                                    None => d,
                                }
                            })?;
                        mounts.push(parsed);
                    }
                }
                _ => {}
            }
        }
        if env_known {
            for (name, span) in undefined {
                if scope.lookup(&name).is_none() && !scope.args.contains_key(&name) {
                    let known: Vec<&str> = scope
                        .args
                        .keys()
                        .map(String::as_str)
                        .chain(scope.env.iter().map(|(k, _)| k.as_str()))
                        .collect();
                    let hint = did_you_mean(&name, known).map(|s| format!("did you mean ${s}?"));
                    self.lint.report(
                        "UndefinedVar",
                        format!("Usage of undefined variable '${name}'"),
                        span,
                        hint.or(Some(format!(
                            "declare it with `ARG {name}` or `ENV {name}=…`"
                        ))),
                    );
                }
            }
        }
        stage.steps.push(Step {
            instruction: out,
            mounts,
            trigger: None,
        });
        self.scope = scope;
        Ok(())
    }
}

/// An ONBUILD trigger of a base image, typed as its own one-line Dockerfile, with its
/// locations moved to the `FROM` that brought it (the only place in this Dockerfile that
/// says where it comes from). FROM, ONBUILD and MAINTAINER cannot be triggers.
fn trigger(source: &Source, from: &Instruction, text: &str) -> Result<Instruction, Diagnostic> {
    let at_from = |message: String| {
        Diagnostic::error(message)
            .at(source, from.node.keyword_span)
            .with_note(format!("in the base image's ONBUILD trigger `{text}`"))
    };
    let own = Source::new("ONBUILD trigger", format!("{text}\n"));
    let df = parser::parse(&own).map_err(|e| at_from(e.diagnostic(&own).message))?;
    let [node] = df.nodes.as_slice() else {
        return Err(at_from(format!(
            "an ONBUILD trigger must be one instruction, this is {}",
            df.nodes.len()
        )));
    };
    let mut i = instruction::parse(node).map_err(|e| at_from(e.diagnostic(&own).message))?;
    if matches!(
        i.kind,
        Kind::From(_) | Kind::Onbuild(_) | Kind::Maintainer(_)
    ) {
        return Err(at_from(format!(
            "{} isn't allowed as an ONBUILD trigger",
            i.node.keyword.to_uppercase()
        )));
    }
    i.node.span = from.node.span;
    i.node.keyword_span = from.node.keyword_span;
    i.node.args_span = from.node.args_span;
    i.node.start_line = from.node.start_line;
    i.node.end_line = from.node.end_line;
    Ok(i)
}

/// Expand the sources, destination and string flags of COPY or ADD.
fn copy_words(
    paths: &mut instruction::SourcesAndDest,
    flags: [(&str, &mut Option<String>); 3],
    i: &Instruction,
    scope: &StageScope,
    word: &mut impl FnMut(&mut Arg, &StageScope) -> Result<(), Diagnostic>,
) -> Result<(), Diagnostic> {
    for a in paths
        .sources
        .iter_mut()
        .chain(std::iter::once(&mut paths.dest))
    {
        word(a, scope)?;
    }
    for (name, value) in flags {
        if let Some(v) = value {
            let mut a = Arg {
                value: std::mem::take(v),
                span: i.flags.span(name).unwrap_or(i.node.keyword_span),
            };
            word(&mut a, scope)?;
            *v = a.value;
        }
    }
    Ok(())
}

/// COPY/ADD heredoc bodies marked for expansion: variables only, quotes left alone.
/// A body that fails to expand (`${` unclosed, `${V:?msg}` unset) is an error at the
/// instruction, as in BuildKit.
fn expand_inline(
    lexer: &Lexer,
    inline: &mut [instruction::InlineSource],
    scope: &StageScope,
    at: impl Fn(String) -> Diagnostic,
) -> Result<(), Diagnostic> {
    let mut raw = lexer.clone();
    raw.skip_process_quotes = true;
    for s in inline.iter_mut().filter(|s| s.expand) {
        s.data = raw
            .process_word(&s.data, scope)
            .map_err(|e| at(format!("heredoc {}: {}", s.path, chain(&e))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
