//! WORKDIR: the directory is created (with missing parents) owned by the current USER, as
//! BuildKit does, with BuildKit's file-operation rules for that user (not RUN's). Its
//! layer is kept even when the directory already existed; `WORKDIR /` makes none.

use std::path::Path;

use super::work::{Cx, LayerStep};
use crate::engine::cache::KeyEncoder;
use crate::engine::copy;
use crate::engine::error::BuildError;
use crate::engine::state::State;

/// The working directory to make, and the USER who owns it.
pub(crate) struct Workdir {
    path: String,
    user: String,
}

pub(crate) fn prepare(state: &State) -> Workdir {
    Workdir {
        path: state.image.workdir(),
        user: state.image.user(),
    }
}

impl LayerStep for Workdir {
    fn key(&self, key: &mut KeyEncoder) {
        key.str("step", "workdir");
        key.str("path", &self.path);
        key.str("user", &self.user);
    }

    fn execute(self: Box<Self>, cx: &Cx<'_, '_>, root: &Path) -> Result<(), BuildError> {
        let instruction = &cx.step.instruction;
        let owner = super::user::workdir_owner(root, &self.user)?;
        copy::mkdir_in_root(root, &self.path, Some(owner))
            .map_err(|e| cx.session.fail_at(instruction, &e))
    }

    fn keeps_empty_layer(&self) -> bool {
        self.path != "/"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key bytes of a WORKDIR step, pinned: changing them is a decision (docs/build.md,
    /// "Cache keys").
    #[test]
    fn key_is_pinned() {
        let step = Workdir {
            path: "/app".into(),
            user: "1000:1000".into(),
        };
        let mut key = KeyEncoder::new("step", None);
        step.key(&mut key);
        assert_eq!(
            key.finish().hex(),
            "36d59d1f39508d5f546fa24413ec70b6c30d8d3173752c7233d612b747996cc4"
        );
    }
}
