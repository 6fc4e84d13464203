//! Fuzzing on stable Rust: property tests that feed every dialect's
//! decoder, and the HTTP request parser, arbitrary input and mutations of
//! the protocol documents' own examples. The properties: nothing panics
//! (or overflows the reader thread's stack), and every refusal is the
//! dialect's own error, as the client would read it.
//!
//! `cargo test fuzz` runs them all with proptest's 256 cases per property;
//! `PROPTEST_CASES=100000 cargo test --lib fuzz` is a long run (see the
//! docs/reliability.md "Fuzzing and hostile input"). A failing input is shrunk to a
//! small one and printed, and its seed is saved under
//! `proptest-regressions/` so that the next run tries it first.
//!
//! - [`mutate`]: the inputs: arbitrary text and JSON, mutated examples;
//! - [`wire`]: one connection in-process, from a client's message to the
//!   frames it would read back (session, router, rendering);
//! - [`oracle`]: reading JSON for the dialects' models of their documents,
//!   which say what must be accepted or refused without the decoders;
//! - one file per dialect, `http` for request heads and `jwt` for tokens;
//! - [`stack`]: the deepest JSON every decoder takes, on a release
//!   reader's stack.

mod blazing;
mod channels;
mod common;
mod concierge;
mod http;
mod jwt;
mod mutate;
mod oracle;
mod stack;
mod wire;
mod world;

use std::panic::Location;
use std::thread;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// How many shrinking steps a failure may take: enough to get a readable
/// input, bounded so that a failure in CI is reported in seconds.
const MAX_SHRINK_ITERS: u32 = 2048;

/// Checks `property` for values drawn from the strategy `inputs` makes, as
/// many as `PROPTEST_CASES` says (256 without it). (The strategy is made
/// on the fuzzing thread: proptest's recursive strategies stay on one.)
///
/// The cases run on a thread with the stack of a connection's reader
/// thread, where the server decodes messages: nesting that fits the test
/// harness's larger stack but not the reader's would otherwise go unseen
/// (a stack overflow aborts the test binary, which fails the run too).
#[track_caller]
pub fn check<S: Strategy>(
    inputs: impl FnOnce() -> S + Send + 'static,
    property: impl Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
) {
    check_on_stack(crate::net::connection::READER_STACK, inputs, property);
}

/// [`check`] on a thread with a stack of `stack_size` bytes.
#[track_caller]
pub fn check_on_stack<S: Strategy>(
    stack_size: usize,
    inputs: impl FnOnce() -> S + Send + 'static,
    property: impl Fn(S::Value) -> Result<(), TestCaseError> + Send + 'static,
) {
    let config = Config {
        // Where proptest keeps the seeds of past failures: next to the
        // calling test file, as the `proptest!` macro would.
        source_file: Some(Location::caller().file()),
        max_shrink_iters: MAX_SHRINK_ITERS,
        ..Config::default()
    };
    let outcome = thread::Builder::new()
        .name("fuzz".into())
        .stack_size(stack_size)
        .spawn(move || {
            TestRunner::new(config)
                .run(&inputs(), property)
                .map_err(|failure| failure.to_string())
        })
        .expect("start the fuzzing thread")
        .join()
        .expect("the property runner reports failures rather than panicking");
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
