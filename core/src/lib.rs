//! Kinko core.
#![doc = include_str!("../../docs/FORMAT.md")]

pub mod keys;
pub mod vault;
