//! Test-only code that tests the crate as a whole rather than one module:
//! the property tests ("fuzz") over every decoder and the request parser
//! (`cargo test fuzz`; docs/reliability.md, "Fuzzing and hostile input"). Each
//! module's own unit tests stay beside it. `layers.rs` checks that the
//! router imports nothing from the layers above it.

mod fuzz;
mod layers;
