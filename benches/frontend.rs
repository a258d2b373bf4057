//! Front-end benchmark: parse + type, and the full plan (expansion, scopes, lint), of a
//! generated 10,000-line multi-stage Dockerfile with continuations and heredocs.
//! Run: `cargo bench --bench frontend`. Prints a markdown table for docs/benchmarks.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use rbuild::diag::Source;
use rbuild::dockerfile::{instruction, parser};
use rbuild::plan::{self, Options};

/// One stage of 33 lines mixing every common instruction form.
const STAGE: &str = r#"FROM --platform=$BUILDPLATFORM $BASE AS stage@
ARG VERSION
ARG TARGETARCH
ENV APP_HOME=/opt/app@ PATH=/opt/app@/bin:$PATH LANG=C.UTF-8
LABEL org.opencontainers.image.version="$VERSION" stage="@"
WORKDIR $APP_HOME
COPY --chown=1000:1000 --chmod=0644 requirements.txt setup.cfg ./
RUN --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    --mount=type=secret,id=token,required \
    apt-get update && \
    apt-get install -y --no-install-recommends ca-certificates curl git && \
    rm -rf /var/lib/apt/lists/*
RUN <<EOF
set -eux
echo building @ for $TARGETARCH
mkdir -p /opt/app@/bin
EOF
COPY <<-EOF /etc/app@.conf
	name = stage@
	version = $VERSION
	EOF
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.invalid/app.tar.gz /tmp/
USER 1000:1000
EXPOSE 8080/tcp 9090/udp
VOLUME ["/data", "/logs"]
HEALTHCHECK --interval=30s --timeout=3s --retries=3 CMD ["curl", "-f", "http://localhost:8080/"]
STOPSIGNAL SIGTERM
ONBUILD RUN echo triggered
ENTRYPOINT ["/opt/app@/bin/run"]
CMD ["--serve", "--port", "8080"]
# a comment between stages

"#;

fn dockerfile(lines: usize) -> String {
    let mut s =
        String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\nARG VERSION=1.2.3\n");
    let mut i = 0;
    while s.lines().count() < lines {
        s.push_str(&STAGE.replace('@', &i.to_string()));
        i += 1;
    }
    s
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    for _ in 0..3 {
        f();
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let text = dockerfile(10_000);
    let lines = text.lines().count();
    let source = Source::new("Dockerfile", text);
    let parse_type = median(
        || {
            let df = parser::parse(black_box(&source)).unwrap();
            for n in &df.nodes {
                black_box(instruction::parse(n).unwrap());
            }
        },
        31,
    );
    let df = parser::parse(&source).unwrap();
    let parse_only = median(
        || {
            black_box(parser::parse(black_box(&source)).unwrap());
        },
        31,
    );
    let type_only = median(
        || {
            for n in &df.nodes {
                black_box(instruction::parse(black_box(n)).unwrap());
            }
        },
        31,
    );
    let full = median(
        || {
            black_box(plan::plan(black_box(&source), &Options::default()).unwrap());
        },
        31,
    );
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| workload | median of 31 runs | target |");
    println!("|---|---|---|");
    println!(
        "| parse + type, {lines} lines, {} bytes | {:.2} ms | < 20 ms |",
        source.text.len(),
        ms(parse_type)
    );
    println!("| of which parse | {:.2} ms | |", ms(parse_only));
    println!(
        "| of which type ({} instructions) | {:.2} ms | |",
        df.nodes.len(),
        ms(type_only)
    );
    println!(
        "| plan (parse, type, expand, scopes, lint), same file | {:.2} ms | none |",
        ms(full)
    );
}
