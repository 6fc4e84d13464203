//! Test-only code that tests the crate as a whole rather than one module:
//! the property tests ("fuzz") over every decoder and the request parser
//! (`cargo test fuzz`; docs/reliability.md, "Fuzzing and hostile input"). Each
//! module's own unit tests stay beside it. `layers.rs` checks that the
//! router, the dialects and `wire` import nothing from the layers above
//! them.

// Generated sizes and values are small, and the casts say so.
#[allow(clippy::cast_possible_truncation)]
mod fuzz;
mod layers;
