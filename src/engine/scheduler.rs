//! Stages in dependency order: each stage the target needs starts as soon as the stages it
//! reads are built, independent ones side by side.

use std::collections::BTreeMap;

use super::error::BuildError;
use super::session::Session;
use super::stage::run_stage;
use super::state::State;

/// How many stages build at once: one per core (a stage is mostly one process at a time).
fn parallel_stages() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Build every stage the target needs. The first failure stops new stages from starting;
/// those running finish, and the failure is returned.
pub(crate) fn schedule(session: &Session<'_>) -> Result<BTreeMap<usize, State>, BuildError> {
    let plan = session.plan();
    let needed = plan.needed_stages();
    let deps: BTreeMap<usize, Vec<usize>> =
        needed.iter().map(|&i| (i, plan.stage_deps(i))).collect();
    let mut done: BTreeMap<usize, State> = BTreeMap::new();
    let mut waiting: Vec<usize> = needed.clone();
    let mut failed: Option<BuildError> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<State, BuildError>)>();
        let mut running = 0usize;
        loop {
            if failed.is_none() {
                while running < parallel_stages() {
                    let Some(pos) = waiting
                        .iter()
                        .position(|i| deps[i].iter().all(|d| done.contains_key(d)))
                    else {
                        break;
                    };
                    let index = waiting.remove(pos);
                    let inputs: BTreeMap<usize, State> =
                        deps[&index].iter().map(|d| (*d, done[d].clone())).collect();
                    let tx = tx.clone();
                    running += 1;
                    scope.spawn(move || {
                        let _ = tx.send((index, run_stage(session, index, &inputs)));
                    });
                }
            }
            if running == 0 {
                break;
            }
            let (index, result) = rx.recv().expect("a stage thread reports");
            running -= 1;
            match result {
                Ok(state) => {
                    done.insert(index, state);
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
    });
    match failed {
        Some(e) => Err(e),
        None => Ok(done),
    }
}
