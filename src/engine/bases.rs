//! The base images of a build, resolved before the final plan (from the store, or pulled),
//! so that their ENV and ONBUILD triggers can be given to the planner and the build uses
//! the very images the plan was made with. A value: resolving is `resolve.rs`'s.

use std::collections::BTreeMap;

use crate::store::Image;

#[derive(Clone, Debug, Default)]
pub(crate) struct Bases {
    /// By (name as FROM gives it, platform).
    pub(crate) images: BTreeMap<(String, String), Image>,
    /// The next free progress vertex number after resolving them.
    pub(crate) next_id: usize,
}

impl Bases {
    /// Each base image's ENV by name, for [`crate::plan::Options::base_env`].
    pub(crate) fn env(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let mut out = BTreeMap::new();
        for ((name, _), image) in &self.images {
            let env = image
                .config
                .config
                .as_ref()
                .map(|c| {
                    c.env
                        .iter()
                        .map(|e| {
                            let (k, v) = super::stage_image::key_value(e);
                            (k.to_string(), v.to_string())
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.entry(name.clone()).or_insert(env);
        }
        out
    }

    /// Each base image's ONBUILD triggers by name, for
    /// [`crate::plan::Options::base_onbuild`].
    pub(crate) fn onbuild(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for ((name, _), image) in &self.images {
            let triggers = image
                .config
                .config
                .as_ref()
                .map(|c| c.on_build.clone())
                .unwrap_or_default();
            if !triggers.is_empty() {
                out.entry(name.clone()).or_insert(triggers);
            }
        }
        out
    }

    pub(crate) fn get(&self, name: &str, platform: &str) -> Option<&Image> {
        self.images.get(&(name.to_string(), platform.to_string()))
    }
}
