//! A build run from Rust, without the CLI: a [`Request`] filled in by hand, planned and
//! built by the engine's [`Builder`], its progress collected, its result read back from the
//! store.

use std::sync::Mutex;

use rbuild::diag::Source;
use rbuild::engine::{Builder, Request};
use rbuild::oci::reference::Reference;
use rbuild::progress::{Event, Reporter};
use rbuild::store::Store;

/// Keeps every event a build reports.
#[derive(Default)]
struct Collect(Mutex<Vec<Event>>);

impl Reporter for Collect {
    fn event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Collect {
    fn started(&self) -> Vec<String> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                Event::Start { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn cached(&self) -> usize {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter(|e| matches!(e, Event::Cached { .. }))
            .count()
    }
}

fn build(
    root: &std::path::Path,
    context: &std::path::Path,
    text: &str,
) -> (rbuild::engine::Outcome, Collect) {
    let mut request = Request::new(
        root.to_path_buf(),
        context.to_path_buf(),
        Source::new("Dockerfile", text),
    );
    request.tags = vec![Reference::parse("lib-test:1").unwrap().with_default_tag()];
    request.source_date_epoch = Some(1_700_000_000);
    let progress = Collect::default();
    let planned = Builder::new(request)
        .unwrap()
        .plan(&progress)
        .unwrap_or_else(|e| panic!("planning: {}", rbuild::diag::chain(&e)));
    assert!(
        planned.plan().lints.is_empty(),
        "{:?}",
        planned.plan().lints
    );
    let outcome = planned
        .build(&progress)
        .unwrap_or_else(|e| panic!("building: {}", rbuild::diag::chain(&e)));
    (outcome, progress)
}

#[test]
fn a_build_runs_from_rust_without_the_cli() {
    // Root, as the CLI's rootless path re-runs itself as root of a user namespace before it
    // builds.
    if !crate::common::require::root("layer steps mount overlays") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(context.join("app")).unwrap();
    std::fs::write(context.join("app/hello.txt"), "hello\n").unwrap();
    let dockerfile = "FROM scratch\nCOPY app/ /app/\nWORKDIR /srv\nENV GREETING=hi\n";

    let (first, progress) = build(&root, &context, dockerfile);
    assert_eq!((first.ran, first.cached), (2, 0), "COPY and WORKDIR run");
    let names = progress.started();
    assert!(
        names.iter().any(|n| n == "[2/3] COPY app/ /app/"),
        "BuildKit's step names: {names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n == "naming to docker.io/library/lib-test:1")
    );

    let store = Store::open(&root).unwrap();
    let tagged = store
        .resolve(&Reference::parse("lib-test:1").unwrap().with_default_tag())
        .unwrap()
        .expect("the build tagged its image");
    assert_eq!(tagged, first.manifest);
    assert_eq!(first.tagged.len(), 1);

    // The same request again: every layer step from the cache, the same image.
    let (second, progress) = build(&root, &context, dockerfile);
    assert_eq!((second.ran, second.cached), (0, 2));
    assert_eq!(progress.cached(), 2);
    assert_eq!(second.image_id, first.image_id);
}
