//! Kinko core.
#![doc = include_str!("../../docs/FORMAT.md")]

pub mod keys;
