//! One stage: its first state (scratch, an image, or an earlier stage), then its steps in
//! order — config edits applied, layer steps run or taken from the cache — with a
//! progress vertex per layer step, named as BuildKit names it.

use std::collections::BTreeMap;
use std::time::Instant;

use super::cache::KeyEncoder;
use super::error::BuildError;
use super::interrupt;
use super::resolve::base_state;
use super::session::Session;
use super::stage_image::StageImage;
use super::state::State;
use super::step::{StepKind, run_layer_step};
use crate::plan::Base;
use crate::progress::Event;

/// The name BuildKit shows for a step: `[2/6] COPY . .`, `[builder 3/4] RUN make`.
fn step_name(stage: Option<&str>, n: usize, total: usize, text: &str) -> String {
    match stage {
        Some(s) => format!("[{s} {n}/{total}] {text}"),
        None => format!("[{n}/{total}] {text}"),
    }
}

/// Build stage `index`, whose dependencies' states are in `done`.
pub(crate) fn run_stage(
    session: &Session<'_>,
    index: usize,
    done: &BTreeMap<usize, State>,
) -> Result<State, BuildError> {
    let plan = session.plan();
    let progress = session.progress();
    let stage = &plan.stages[index];
    let platform = stage
        .platform
        .clone()
        .unwrap_or_else(|| plan.target_platform.clone());
    let total = 1 + stage
        .steps
        .iter()
        .filter(|s| StepKind::of(&s.instruction.kind).writes_layer())
        .count();
    let stage_label = (plan.needed_stages().len() > 1).then(|| {
        stage
            .name
            .clone()
            .unwrap_or_else(|| format!("stage-{index}"))
    });
    // In a multi-platform build BuildKit puts the platform first: `[linux/arm64 build 2/3]`.
    let label = match (session.label(), stage_label) {
        (Some(p), Some(s)) => Some(format!("{p} {s}")),
        (Some(p), None) => Some(p.to_string()),
        (None, s) => s,
    };
    let id = session.id();
    progress.event(Event::Start {
        id,
        name: step_name(label.as_deref(), 1, total, &session.text_of(&stage.from)),
    });
    let started = Instant::now();
    let mut state = match &stage.base {
        Base::Scratch => State {
            image: StageImage::scratch(&platform),
            layers: Vec::new(),
            steps: Vec::new(),
            chain: None,
            key: KeyEncoder::new("scratch", None)
                .str("platform", &platform.to_string())
                .finish(),
            platform: platform.clone(),
            clock: session.created(),
        },
        Base::Stage(p) => {
            let parent = &done[p];
            State {
                image: StageImage::from_stage(&parent.image),
                ..parent.clone()
            }
        }
        Base::Image(name) => base_state(session, id, name, &platform, &stage.from)?,
    };
    progress.event(Event::Done {
        id,
        elapsed: started.elapsed(),
    });
    // The plan runs the base's triggers as the stage's first steps; one made without
    // knowing them (the image was not resolved first) must not silently skip them.
    let triggers = state.image.take_onbuild();
    if !triggers.is_empty() && !stage.steps.iter().any(|s| s.trigger.is_some()) {
        return Err(session.err_at(
            &stage.from,
            format!(
                "the base image has ONBUILD triggers ({}) that the plan does not run",
                triggers.join("; ")
            ),
        ));
    }
    let mut n = 1;
    for step in &stage.steps {
        let commit = state
            .image
            .apply(step)
            .map_err(|e| session.fail_at(&step.instruction, &e))?;
        // ONBUILD records no history entry.
        let Some(commit) = commit else { continue };
        let StepKind::Layer(kind) = StepKind::of(&step.instruction.kind) else {
            state
                .image
                .push_history(commit.created_by, true, state.clock.clone());
            continue;
        };
        if interrupt::interrupted() {
            return Err(BuildError::Interrupted);
        }
        n += 1;
        let id = session.id();
        let name = step_name(
            label.as_deref(),
            n,
            total,
            &session.text_of(&step.instruction),
        );
        progress.event(Event::Start { id, name });
        let started = Instant::now();
        match run_layer_step(
            session,
            kind,
            id,
            step,
            &commit.created_by,
            &mut state,
            done,
        ) {
            Ok(cached) => {
                session.count(cached);
                if cached {
                    progress.event(Event::Cached { id });
                } else {
                    progress.event(Event::Done {
                        id,
                        elapsed: started.elapsed(),
                    });
                }
            }
            Err(e) => {
                progress.event(Event::Error {
                    id,
                    message: crate::diag::chain(&e),
                });
                return Err(match (e, &step.trigger) {
                    (BuildError::Step(d), Some(text)) => BuildError::Step(Box::new(
                        d.with_note(format!("in the base image's ONBUILD trigger `{text}`")),
                    )),
                    (e, _) => e,
                });
            }
        }
    }
    Ok(state)
}
