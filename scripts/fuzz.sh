#!/usr/bin/env bash
# Run every fuzz target (fuzz/, docs/fuzzing.md) for a fixed number of executions and write
# the figures into docs/fuzzing.md, between <!-- fuzz-results:start --> and
# <!-- fuzz-results:end -->.
#
#   scripts/fuzz.sh                  # 1,000,000 executions of dockerfile, 100,000 of each other
#   scripts/fuzz.sh --runs 10000     # each other target 10,000, dockerfile ten times that
#   scripts/fuzz.sh --seconds 60     # a time budget per target instead of counts
#   scripts/fuzz.sh --targets "shell oci_json" --no-doc --here
#
# The figures are for a commit: the targets are built from HEAD, exported (`git archive`) to
# $FUZZ_WORK/tree, not from the working tree, whose uncommitted changes they would not name;
# `--here` fuzzes the working tree instead (the table then says so).
#
# Installs cargo-fuzz if missing; builds with RUSTC_BOOTSTRAP=1 (libFuzzer's sanitizer
# coverage needs -Z flags, and only stable Rust is assumed), address sanitizer on and debug
# assertions on, into fuzz/target (shared with builds of the working tree). The committed seeds
# (fuzz/corpus/<target>/) are read, never written: each target grows its corpus in a scratch
# directory ($FUZZ_WORK, default /dev/shm/rbuild-fuzz-work, kept between runs), passed to
# libFuzzer first so that new inputs land there. Crashes go to fuzz/artifacts/<target>/ (not
# committed); a fixed one is minimized into fuzz/regressions/<target>/, which CI runs
# (tests/fuzz_regressions.rs). Two processes run at a time (one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

RUNS=100000
DOCKERFILE_FACTOR=10
SECONDS_PER_TARGET=
WRITE_DOC=1
HERE=
ALL_TARGETS="dockerfile shell dockerignore layer_apply add_archive oci_json registry_auth registries_conf auth_json archive_load"
TARGETS=$ALL_TARGETS
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --seconds|--budget) SECONDS_PER_TARGET=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --no-doc) WRITE_DOC=; shift ;;
    --here) HERE=1; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "scripts/fuzz.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

WORK=${FUZZ_WORK:-/dev/shm/rbuild-fuzz-work}
LOGS=$WORK/logs
mkdir -p "$LOGS"
log() { echo "== $*" >&2; }

if [ -n "$HERE" ]; then
  TREE=$REPO
  COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src fuzz Cargo.toml Cargo.lock || echo ' plus uncommitted changes')"
else
  TREE=$WORK/tree
  COMMIT=$(git rev-parse --short HEAD)
  rm -rf "$TREE" && mkdir -p "$TREE"
  git archive HEAD | tar -x -C "$TREE"
fi
log "building the fuzz targets of $COMMIT in $TREE"
(cd "$TREE/fuzz" && cargo fuzz build --target-dir "$REPO/fuzz/target")
BIN=$REPO/fuzz/target/$(rustc -vV | sed -n 's/^host: //p')/release

# run_target TARGET SHARD SHARDS: one libFuzzer process, with its share of the budget.
run_target() {
  local t=$1 i=$2 n=$3 budget
  if [ -n "$SECONDS_PER_TARGET" ]; then
    budget="-max_total_time=$SECONDS_PER_TARGET"
  elif [ "$t" = dockerfile ]; then
    budget="-runs=$((RUNS * DOCKERFILE_FACTOR / n))"
  else
    budget="-runs=$((RUNS / n))"
  fi
  mkdir -p "$WORK/corpus/$t" "$REPO/fuzz/artifacts/$t"
  local start=$SECONDS status=0
  # The scratch corpus first: libFuzzer adds what it finds to the first directory.
  (cd "$WORK" && "$BIN/$t" "$WORK/corpus/$t" "$TREE/fuzz/corpus/$t" "$budget" \
      -artifact_prefix="$REPO/fuzz/artifacts/$t/" -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1) >"$LOGS/$t.$i.log" 2>&1 || status=$?
  echo "$status $((SECONDS - start))" >"$LOGS/$t.$i.status"
  log "$t ($((i + 1))/$n): exit $status after $((SECONDS - start)) s"
}
export -f run_target log
export WORK LOGS RUNS DOCKERFILE_FACTOR SECONDS_PER_TARGET BIN TREE REPO

# The Dockerfile target has ten times the budget of the others: it runs last, as two
# processes sharing its corpus, so that both cores stay busy to the end.
shards() { [ "$1" = dockerfile ] && echo 2 || echo 1; }
rm -f "$LOGS"/*.log "$LOGS"/*.status
log "running: $TARGETS"
for t in $TARGETS; do [ "$t" = dockerfile ] || echo "$t 0 1"; done >"$WORK/jobs"
for t in $TARGETS; do
  [ "$t" = dockerfile ] || continue
  for ((i = 0; i < $(shards "$t"); i++)); do echo "$t $i $(shards "$t")"; done
done >>"$WORK/jobs"
xargs -P 2 -L 1 bash -c 'run_target "$@"' _ <"$WORK/jobs"

# The figures, from each process's log: executions (libFuzzer's final stats, summed over a
# target's processes), coverage and features (its last status line; the highest of a
# target's processes), the corpus (files: the scratch corpus and the seeds), crashes
# (inputs written to fuzz/artifacts this run).
rows=""
failed=0
for t in $TARGETS; do
  execs=0 cov=0 ft=0 took=0 crashes=0
  for ((i = 0; i < $(shards "$t"); i++)); do
    l=$LOGS/$t.$i.log
    read -r status secs <"$LOGS/$t.$i.status"
    [ "$status" = 0 ] || { failed=1; grep -m1 -A3 'panicked at\|ERROR: ' "$l" >&2 || true; }
    e=$(sed -n 's/^stat::number_of_executed_units: *//p' "$l" | tail -1)
    last=$(grep -E '^#[0-9]+' "$l" | grep 'cov:' | tail -1 || true)
    c=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    f=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    execs=$((execs + ${e:-0})) crashes=$((crashes + $(grep -c 'Test unit written to' "$l" || true)))
    [ "${c:-0}" -le "$cov" ] || cov=$c
    [ "${f:-0}" -le "$ft" ] || ft=$f
    [ "$secs" -le "$took" ] || took=$secs
  done
  corpus=$(($(find "$WORK/corpus/$t" -type f | wc -l) + $(find "$TREE/fuzz/corpus/$t" -type f | wc -l)))
  kept=$({ find "$REPO/fuzz/regressions/$t" -type f 2>/dev/null || true; } | wc -l)
  budget="-runs=$RUNS"
  [ "$t" != dockerfile ] || budget="-runs=$((RUNS * DOCKERFILE_FACTOR))"
  [ -z "$SECONDS_PER_TARGET" ] || budget="-max_total_time=$SECONDS_PER_TARGET"
  rows+="| \`$t\` | $execs | $cov | $ft | $corpus | $took | $crashes | $kept | \`$budget\`, $COMMIT, $(date -u +%Y-%m-%d) |"$'\n'
done
header="| target | executions | cov | ft | corpus (files) | time (s) | crashes | regressions kept | budget, commit, date |
|---|---:|---:|---:|---:|---:|---:|---:|---|"
printf '%s\n%s' "$header" "$rows"

if [ -n "$WRITE_DOC" ]; then
  doc=$REPO/docs/fuzzing.md
  line="Each row is the last run of its target by \`scripts/fuzz.sh\` on $(nproc) cores, $(rustc --version | cut -d' ' -f1-2), cargo-fuzz $(cargo fuzz --version | awk '{print $2}'), address sanitizer and debug assertions on; a run of some targets (\`--targets\`) replaces only their rows."
  grep -q '<!-- fuzz-results:start -->' "$doc" && grep -q '<!-- fuzz-results:end -->' "$doc" \
    || { echo "no fuzz-results markers in $doc; table not written" >&2; exit 1; }
  printf '%s' "$rows" >"$WORK/rows.md"
  python3 - "$doc" "$WORK/rows.md" "$line" "$header" "$ALL_TARGETS" <<'PY'
import sys
doc, rows_file, line, header, order = sys.argv[1:6]
text = open(doc).read()
start = text.index("<!-- fuzz-results:start -->")
end = text.index("<!-- fuzz-results:end -->") + len("<!-- fuzz-results:end -->")
end += text[end:].startswith("\n")
name = lambda row: row.split("|")[1].strip().strip("`")
old = {name(r): r for r in text[start:end].splitlines() if r.startswith("| `")}
old.update({name(r): r for r in open(rows_file).read().splitlines() if r.startswith("| `")})
rows = [old[t] for t in order.split() if t in old]
section = "<!-- fuzz-results:start -->\n%s\n\n%s\n%s\n<!-- fuzz-results:end -->\n" % (line, header, "\n".join(rows))
open(doc, "w").write(text[:start] + section + text[end:])
PY
  log "wrote the table into docs/fuzzing.md"
fi
exit $failed
