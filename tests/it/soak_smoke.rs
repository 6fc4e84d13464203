//! CI's run of the soak (`examples/soak/`): 30 seconds of mixed traffic in
//! every dialect, with churn, against the built binary; passes when the
//! soak does (RSS drift after the warm-up under 5%, threads and files back
//! to idle, no client error). The example's code is compiled into this
//! test, so a clean `cargo test` needs nothing built beforehand; the long
//! run is the example itself (see docs/reliability.md).

#[allow(dead_code)] // the example's `main` and parsing are not used here
#[path = "../../examples/soak/main.rs"]
mod soak;

use std::path::PathBuf;

#[test]
fn thirty_seconds_of_mixed_traffic_with_churn_leave_the_server_as_it_was() {
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_switchboard"));
    let options = soak::Options::new(soak::Under::Binary(binary), 30);
    let outcome = soak::run(&options).expect("the soak runs");
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
}
