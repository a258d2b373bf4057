//! Typed instructions: each syntax-tree [`Node`] becomes an [`Instruction`] with its flags
//! validated and its arguments checked, following BuildKit's `instructions/parse.go` (its
//! messages are kept so users can search them). Values are still unexpanded: variables are
//! substituted later, per stage, by the planner.

use super::ast::{Arg, Heredoc, Node};
use super::flags::{self, Flags, Kind as F};
use super::heredoc;
use super::mount;
use super::units::parse_duration;
use crate::diag::{Span, SpannedError, chain};

/// Why an instruction is invalid.
pub(crate) type TypeError = SpannedError;
use crate::suggest::did_you_mean;

/// Every instruction keyword, for suggestions.
pub(crate) const KEYWORDS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A typed instruction and the node it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instruction {
    pub(crate) node: Node,
    pub kind: Kind,
    pub flags: Flags,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    From(FromSpec),
    Run(Run),
    Cmd(ShellForm),
    Entrypoint(ShellForm),
    Shell(Vec<String>),
    Copy(Copy),
    Add(Add),
    Env(Vec<KeyValue>),
    Label(Vec<KeyValue>),
    Arg(Vec<ArgDecl>),
    Expose(Vec<Arg>),
    Volume(Vec<Arg>),
    User(Arg),
    Workdir(Arg),
    StopSignal(Arg),
    Maintainer(Arg),
    Healthcheck(Healthcheck),
    Onbuild(Onbuild),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FromSpec {
    pub(crate) image: Arg,
    /// The stage name, lower-cased (BuildKit matches stage names case-insensitively).
    pub(crate) name: Option<String>,
    /// The name and the `AS` keyword as written, for lint rules.
    pub(crate) name_arg: Option<Arg>,
    pub(crate) as_arg: Option<Arg>,
    pub(crate) platform: Option<String>,
}

/// A command in shell form (`prepend_shell`, one string) or exec form (JSON array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShellForm {
    pub args: Vec<String>,
    pub prepend_shell: bool,
    /// Heredoc bodies (RUN only); tabs of `<<-` bodies not yet stripped.
    pub files: Vec<Heredoc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Network {
    Default,
    None,
    Host,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Security {
    Sandbox,
    Insecure,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    pub cmd: ShellForm,
    /// Raw `--mount` values with their spans (parsed structurally here, expanded later).
    pub(crate) mounts: Vec<Arg>,
    pub(crate) network: Option<Network>,
    pub(crate) security: Option<Security>,
}

/// A source given inline by a heredoc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InlineSource {
    pub path: String,
    /// The body, `<<-` tabs already stripped.
    pub data: String,
    pub expand: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcesAndDest {
    pub sources: Vec<Arg>,
    pub inline: Vec<InlineSource>,
    pub dest: Arg,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub paths: SourcesAndDest,
    pub(crate) from: Option<String>,
    pub(crate) chown: Option<String>,
    pub(crate) chmod: Option<String>,
    pub(crate) link: bool,
    pub(crate) parents: bool,
    pub(crate) exclude: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub(crate) paths: SourcesAndDest,
    pub(crate) chown: Option<String>,
    pub(crate) chmod: Option<String>,
    pub(crate) link: bool,
    pub(crate) keep_git_dir: bool,
    pub(crate) checksum: Option<String>,
    /// `--unpack`: `None` = default (local archives unpacked, remote ones not).
    pub(crate) unpack: Option<bool>,
    pub(crate) exclude: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub(crate) key: Arg,
    pub(crate) value: Arg,
    /// Written in the legacy `KEY value` form.
    pub(crate) legacy: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArgDecl {
    pub(crate) key: String,
    /// The default, quotes still in (expanded later).
    pub(crate) value: Option<String>,
    pub(crate) span: Span,
}

/// HEALTHCHECK; durations in nanoseconds, 0 = inherit the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Healthcheck {
    /// `["NONE"]`, `["CMD", …]` (exec) or `["CMD-SHELL", "…"]`.
    pub test: Vec<String>,
    pub(crate) interval: i64,
    pub(crate) timeout: i64,
    pub(crate) start_period: i64,
    pub(crate) start_interval: i64,
    pub(crate) retries: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger as it will be stored in the image config (`RUN echo hi`).
    pub(crate) expression: String,
    pub(crate) trigger: Box<Node>,
}

/// Type one node.
pub fn parse(node: &Node) -> Result<Instruction, TypeError> {
    let kw = node.keyword.to_uppercase();
    let at_least_one = || TypeError::new(format!("{kw} requires at least one argument"), node.span);
    let exactly_one = || TypeError::new(format!("{kw} requires exactly one argument"), node.span);
    let no_flags = || flags::parse(&node.flags, &[]);
    let args = &node.args;
    let (kind, flags) = match node.command().as_str() {
        "from" => {
            let f = flags::parse(&node.flags, &[("platform", F::String)])?;
            (Kind::From(parse_from(node, &f)?), f)
        }
        "run" => {
            let f = flags::parse(
                &node.flags,
                &[
                    ("mount", F::Strings),
                    ("network", F::String),
                    ("security", F::String),
                ],
            )?;
            (Kind::Run(parse_run(node, &f)?), f)
        }
        "cmd" => (Kind::Cmd(shell_form(node, false)), no_flags()?),
        "entrypoint" => (Kind::Entrypoint(shell_form(node, false)), no_flags()?),
        "shell" => {
            let f = no_flags()?;
            if args.is_empty() {
                return Err(at_least_one());
            }
            if !node.json {
                return Err(TypeError::new(
                    "SHELL requires the arguments to be in JSON form",
                    node.args_span,
                )
                .with_hint("write it as SHELL [\"/bin/bash\", \"-c\"]"));
            }
            (Kind::Shell(node.values()), f)
        }
        "copy" => {
            let f = flags::parse(
                &node.flags,
                &[
                    ("from", F::String),
                    ("chown", F::String),
                    ("chmod", F::String),
                    ("link", F::Bool),
                    ("parents", F::Bool),
                    ("exclude", F::Strings),
                ],
            )?;
            let paths = sources_and_dest(node, "COPY")?;
            let kind = Kind::Copy(Copy {
                paths,
                from: f.string("from").map(str::to_string),
                chown: f.string("chown").map(str::to_string),
                chmod: f.string("chmod").map(str::to_string),
                link: f.bool("link"),
                parents: f.bool("parents"),
                exclude: f.strings("exclude"),
            });
            (kind, f)
        }
        "add" => {
            let f = flags::parse(
                &node.flags,
                &[
                    ("chown", F::String),
                    ("chmod", F::String),
                    ("link", F::Bool),
                    ("keep-git-dir", F::Bool),
                    ("checksum", F::String),
                    ("unpack", F::Bool),
                    ("exclude", F::Strings),
                ],
            )?;
            let paths = sources_and_dest(node, "ADD")?;
            let kind = Kind::Add(Add {
                paths,
                chown: f.string("chown").map(str::to_string),
                chmod: f.string("chmod").map(str::to_string),
                link: f.bool("link"),
                keep_git_dir: f.bool("keep-git-dir"),
                checksum: f.string("checksum").map(str::to_string),
                unpack: f.is_set("unpack").then(|| f.bool("unpack")),
                exclude: f.strings("exclude"),
            });
            (kind, f)
        }
        "env" | "label" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
            let f = no_flags()?;
            let kvs = key_values(node, &kw)?;
            (
                if kw == "ENV" {
                    Kind::Env(kvs)
                } else {
                    Kind::Label(kvs)
                },
                f,
            )
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
            let f = no_flags()?;
            let mut decls = Vec::new();
            for a in args {
                let (key, value) = match a.value.split_once('=') {
                    Some((k, v)) => (k, Some(v.to_string())),
                    None => (a.value.as_str(), None),
                };
                if key.is_empty() {
                    return Err(TypeError::new("ARG names can not be blank", a.span));
                }
                decls.push(ArgDecl {
                    key: key.to_string(),
                    value,
                    span: a.span,
                });
            }
            (Kind::Arg(decls), f)
        }
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
            (Kind::Expose(args.clone()), no_flags()?)
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one());
            }
            let f = no_flags()?;
            for a in args {
                if a.value.trim().is_empty() {
                    return Err(TypeError::new(
                        "VOLUME specified can not be an empty string",
                        a.span,
                    ));
                }
            }
            (Kind::Volume(args.clone()), f)
        }
        "user" | "workdir" | "stopsignal" | "maintainer" => {
            let f = no_flags()?;
            let [a] = args.as_slice() else {
                return Err(exactly_one());
            };
            let a = a.clone();
            let kind = match node.command().as_str() {
                "user" => Kind::User(a),
                "workdir" => Kind::Workdir(a),
                "stopsignal" => Kind::StopSignal(a),
                _ => Kind::Maintainer(a),
            };
            (kind, f)
        }
        "healthcheck" => parse_healthcheck(node)?,
        "onbuild" => {
            let f = no_flags()?;
            let Some(child) = &node.child else {
                return Err(at_least_one());
            };
            let trigger = child.keyword.to_uppercase();
            match trigger.as_str() {
                "ONBUILD" => {
                    return Err(TypeError::new(
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                        child.keyword_span,
                    ));
                }
                "MAINTAINER" | "FROM" => {
                    return Err(TypeError::new(
                        format!("{trigger} isn't allowed as an ONBUILD trigger"),
                        child.keyword_span,
                    ));
                }
                _ => {}
            }
            // The trigger must itself be a valid instruction.
            parse(child)?;
            let mut expression = node.original.trim_start()[node.keyword.len()..]
                .trim_start()
                .to_string();
            for h in &node.heredocs {
                expression.push('\n');
                expression.push_str(&h.content);
                expression.push_str(&h.name);
            }
            (
                Kind::Onbuild(Onbuild {
                    expression,
                    trigger: child.clone(),
                }),
                f,
            )
        }
        _ => {
            let mut e = TypeError::new(
                format!("unknown instruction: {}", node.keyword),
                node.keyword_span,
            );
            if let Some(s) = did_you_mean(&node.keyword, KEYWORDS) {
                let s = if node.keyword.chars().all(|c| c.is_ascii_lowercase()) {
                    s.to_lowercase()
                } else {
                    s.to_string()
                };
                e = e.with_hint(format!("did you mean {s}?"));
            }
            return Err(e);
        }
    };
    Ok(Instruction {
        node: node.clone(),
        kind,
        flags,
    })
}

/// `FROM image [AS name]`; stage names must match `^[a-z][a-z0-9-_.]*$` (case-insensitively).
fn parse_from(node: &Node, f: &Flags) -> Result<FromSpec, TypeError> {
    let args = &node.args;
    let bad = || {
        TypeError::new(
            "FROM requires either one or three arguments",
            node.args_span,
        )
        .with_hint("write `FROM image` or `FROM image AS name`")
    };
    let (image, as_arg, name_arg) = match args.as_slice() {
        [image] => (image.clone(), None, None),
        [image, as_kw, name] if as_kw.value.eq_ignore_ascii_case("as") => {
            (image.clone(), Some(as_kw.clone()), Some(name.clone()))
        }
        [] => return Err(bad()),
        [_, second, _] => {
            return Err(
                TypeError::new("FROM requires either one or three arguments", second.span)
                    .with_hint(format!(
                        "the second word must be AS, not `{}`",
                        second.value
                    )),
            );
        }
        _ => return Err(bad()),
    };
    let name = match &name_arg {
        Some(n) => {
            let lower = n.value.to_lowercase();
            let valid = lower.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                && lower
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(TypeError::new(
                    format!(
                        "invalid name for build stage: \"{}\", name can't start with a number or contain symbols",
                        n.value
                    ),
                    n.span,
                )
                .with_hint("stage names start with a letter and hold letters, digits, '-', '_' or '.'"));
            }
            Some(lower)
        }
        None => None,
    };
    Ok(FromSpec {
        image,
        name,
        name_arg,
        as_arg,
        platform: f.string("platform").map(str::to_string),
    })
}

fn shell_form(node: &Node, heredocs: bool) -> ShellForm {
    let values = node.values();
    let args = if node.json || values.is_empty() {
        values
    } else {
        vec![values.join(" ")]
    };
    ShellForm {
        args,
        prepend_shell: !node.json,
        files: if heredocs {
            node.heredocs.clone()
        } else {
            Vec::new()
        },
    }
}

fn parse_run(node: &Node, f: &Flags) -> Result<Run, TypeError> {
    let span = |name: &str| f.span(name).unwrap_or(node.keyword_span);
    let network = match f.string("network") {
        None => None,
        Some("default") => Some(Network::Default),
        Some("none") => Some(Network::None),
        Some("host") => Some(Network::Host),
        Some(other) => {
            return Err(TypeError::new(
                format!("unsupported network mode \"{other}\""),
                span("network"),
            )
            .with_hint("use --network=default, none or host"));
        }
    };
    let security = match f.string("security") {
        None => None,
        Some("sandbox") => Some(Security::Sandbox),
        Some("insecure") => Some(Security::Insecure),
        Some(other) => {
            return Err(TypeError::new(
                format!("unsupported security mode \"{other}\""),
                span("security"),
            )
            .with_hint("use --security=sandbox or insecure"));
        }
    };
    let mut mounts = Vec::new();
    for flag in node
        .flags
        .iter()
        .filter(|a| a.value.starts_with("--mount="))
    {
        let spec = &flag.value["--mount=".len()..];
        mount::parse(spec, None, 0).map_err(|e| TypeError {
            message: e.message,
            span: flag.span,
            hint: e.hint,
        })?;
        mounts.push(Arg {
            value: spec.to_string(),
            span: flag.span,
        });
    }
    Ok(Run {
        cmd: shell_form(node, true),
        mounts,
        network,
        security,
    })
}

fn sources_and_dest(node: &Node, kw: &str) -> Result<SourcesAndDest, TypeError> {
    let Some((dest, sources)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(TypeError::new(
            format!("{kw} requires at least two arguments, but only one was provided. Destination could not be determined"),
            node.span,
        )
        .with_hint(format!("write `{kw} <src>... <dest>`")));
    };
    if !node.json && heredoc::parse_word(&dest.value).ok().flatten().is_some() {
        return Err(TypeError::new(
            format!("{kw} cannot accept a heredoc as a destination"),
            dest.span,
        ));
    }
    let mut paths = Vec::new();
    let mut inline = Vec::new();
    for src in sources {
        let doc = if node.json {
            None
        } else {
            heredoc::parse_word(&src.value).ok().flatten()
        };
        match doc {
            Some(doc) => {
                let body = node
                    .heredocs
                    .iter()
                    .find(|h| h.name == doc.name)
                    .map(|h| h.content.clone())
                    .unwrap_or_default();
                inline.push(InlineSource {
                    data: if doc.chomp {
                        heredoc::chomp(&body)
                    } else {
                        body
                    },
                    path: doc.name,
                    expand: doc.expand,
                });
            }
            None => paths.push(src.clone()),
        }
    }
    Ok(SourcesAndDest {
        sources: paths,
        inline,
        dest: dest.clone(),
    })
}

fn key_values(node: &Node, kw: &str) -> Result<Vec<KeyValue>, TypeError> {
    node.args
        .chunks(3)
        .map(|c| match c {
            [k, v, sep] if !k.value.is_empty() => Ok(KeyValue {
                key: k.clone(),
                value: v.clone(),
                legacy: sep.value.is_empty(),
            }),
            [k, ..] => Err(TypeError::new(
                format!("{kw} names can not be blank"),
                k.span,
            )),
            [] => Err(TypeError::new(
                format!("{kw} requires at least one argument"),
                node.span,
            )),
        })
        .collect()
}

fn parse_healthcheck(node: &Node) -> Result<(Kind, Flags), TypeError> {
    let Some(first) = node.args.first() else {
        return Err(
            TypeError::new("HEALTHCHECK requires at least one argument", node.span)
                .with_hint("write `HEALTHCHECK CMD <command>` or `HEALTHCHECK NONE`"),
        );
    };
    let typ = first.value.to_uppercase();
    let rest = &node.args[1..];
    if typ == "NONE" {
        if let Some(a) = rest.first() {
            return Err(TypeError::new(
                "HEALTHCHECK NONE takes no arguments",
                a.span,
            ));
        }
        let f = flags::parse(&node.flags, &[])?;
        let hc = Healthcheck {
            test: vec!["NONE".into()],
            interval: 0,
            timeout: 0,
            start_period: 0,
            start_interval: 0,
            retries: 0,
        };
        return Ok((Kind::Healthcheck(hc), f));
    }
    let f = flags::parse(
        &node.flags,
        &[
            ("interval", F::String),
            ("timeout", F::String),
            ("start-period", F::String),
            ("start-interval", F::String),
            ("retries", F::String),
        ],
    )?;
    if typ != "CMD" {
        return Err(TypeError::new(
            format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"),
            first.span,
        ));
    }
    let values: Vec<String> = rest.iter().map(|a| a.value.clone()).collect();
    if values.is_empty() {
        return Err(TypeError::new(
            "Missing command after HEALTHCHECK CMD",
            first.span,
        ));
    }
    let test = if node.json {
        std::iter::once("CMD".to_string()).chain(values).collect()
    } else {
        vec!["CMD-SHELL".to_string(), values.join(" ")]
    };
    let interval = |name: &str| -> Result<i64, TypeError> {
        let Some(v) = f.string(name) else {
            return Ok(0);
        };
        let span = f.span(name).unwrap_or(node.span);
        let d = parse_duration(v).map_err(|e| TypeError::new(chain(&e), span))?;
        if d != 0 && d < 1_000_000 {
            return Err(TypeError::new(
                format!("Interval \"{name}\" cannot be less than 1ms"),
                span,
            ));
        }
        Ok(d)
    };
    let retries = match f.string("retries") {
        None => 0,
        Some(v) => {
            let span = f.span("retries").unwrap_or(node.span);
            let n: i32 = v
                .parse()
                .map_err(|_| TypeError::new(format!("invalid retries value \"{v}\""), span))?;
            if n < 0 {
                return Err(TypeError::new(
                    format!("--retries cannot be negative ({n})"),
                    span,
                ));
            }
            n
        }
    };
    let hc = Healthcheck {
        test,
        interval: interval("interval")?,
        timeout: interval("timeout")?,
        start_period: interval("start-period")?,
        start_interval: interval("start-interval")?,
        retries,
    };
    Ok((Kind::Healthcheck(hc), f))
}

#[cfg(test)]
mod tests {
    use super::super::parser;
    use super::*;
    use crate::diag::Source;

    fn first(text: &str) -> Result<Instruction, TypeError> {
        let df = parser::parse(&Source::new("Dockerfile", text)).unwrap();
        parse(&df.nodes[0])
    }

    macro_rules! rejects {
        ($($name:ident: $text:expr => $msg:expr;)*) => {$(
            #[test]
            fn $name() {
                let e = first($text).unwrap_err();
                assert!(e.message.contains($msg), "{:?}: got {:?}", $text, e.message);
            }
        )*};
    }

    rejects! {
        from_two_words: "FROM a b\n" => "FROM requires either one or three arguments";
        from_bad_stage: "FROM a AS 1st\n" => "invalid name for build stage: \"1st\"";
        from_bad_as: "FROM a IS b\n" => "FROM requires either one or three arguments";
        run_bad_network: "RUN --network=bridge x\n" => "unsupported network mode \"bridge\"";
        run_bad_mount: "RUN --mount=type=nope,target=/x x\n" => "unsupported mount type \"nope\"";
        copy_unknown_flag: "COPY --form=a x y\n" => "unknown flag: --form";
        shell_not_json: "SHELL /bin/sh -c\n" => "SHELL requires the arguments to be in JSON form";
        healthcheck_none_args: "HEALTHCHECK NONE x\n" => "HEALTHCHECK NONE takes no arguments";
        healthcheck_bad_type: "HEALTHCHECK CONNECT x\n" => "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)";
        healthcheck_no_cmd: "HEALTHCHECK CMD\n" => "Missing command after HEALTHCHECK CMD";
        healthcheck_bad_duration: "HEALTHCHECK --timeout=5 CMD x\n" => "invalid duration";
        healthcheck_negative_retries: "HEALTHCHECK --retries=-1 CMD x\n" => "--retries cannot be negative (-1)";
        volume_empty: "VOLUME [\"\"]\n" => "VOLUME specified can not be an empty string";
        arg_blank: "ARG =x\n" => "ARG names can not be blank";
        env_flag: "ENV --x=1 a=b\n" => "unknown flag: --x";
    }

    #[test]
    fn unknown_instruction_suggests_in_same_case() {
        let e = first("RUNN x\n").unwrap_err();
        assert_eq!(e.message, "unknown instruction: RUNN");
        assert_eq!(e.hint.as_deref(), Some("did you mean RUN?"));
        let e = first("copi x y\n").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("did you mean copy?"));
    }

    #[test]
    fn from_with_stage_and_platform() {
        let i = first("FROM --platform=$BUILDPLATFORM golang:1 AS Build\n").unwrap();
        let Kind::From(f) = i.kind else { panic!() };
        assert_eq!(f.image.value, "golang:1");
        assert_eq!(f.name.as_deref(), Some("build"));
        assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
    }

    #[test]
    fn healthcheck_exec_and_shell() {
        let Kind::Healthcheck(h) =
            first("HEALTHCHECK --interval=5s --retries=3 CMD [\"a\", \"b\"]\n")
                .unwrap()
                .kind
        else {
            panic!()
        };
        assert_eq!(h.test, vec!["CMD", "a", "b"]);
        assert_eq!((h.interval, h.retries), (5_000_000_000, 3));
    }

    #[test]
    fn copy_heredoc_sources_are_chomped() {
        let Kind::Copy(c) = first("COPY <<-EOF x /d\n\tbody\nEOF\n").unwrap().kind else {
            panic!()
        };
        assert_eq!(c.paths.inline[0].data, "body\n");
        assert_eq!(c.paths.sources[0].value, "x");
        assert_eq!(c.paths.dest.value, "/d");
    }

    #[test]
    fn onbuild_expression_keeps_heredoc() {
        let Kind::Onbuild(o) = first("ONBUILD RUN <<EOF\necho hi\nEOF\n").unwrap().kind else {
            panic!()
        };
        assert_eq!(o.expression, "RUN <<EOF\necho hi\nEOF");
    }
}
