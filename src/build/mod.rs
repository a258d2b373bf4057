//! The build engine: runs a plan's stages into an image. `config` is its pure half, the
//! image config and history each step produces.

pub mod config;
