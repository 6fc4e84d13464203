// The originals' own clients against switchboard (issue 18): one module per
// original, each replaying what its client sends and asserting what it
// reads.

#[path = "../support/mod.rs"]
mod support;

mod channels;
mod common;
