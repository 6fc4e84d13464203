//! `switchboard-bench --smoke` against a real server: every scenario at a
//! tiny size, so the load tool keeps working. No timing is asserted.

use std::process::Command;

use crate::support::*;
use switchboard::Config;

#[test]
fn every_bench_scenario_runs_at_a_tiny_size() {
    let addr = start(Config {
        max_queued_bytes: 64 << 20,
        ..config()
    });
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard-bench"))
        .args(["--smoke", "--url", &format!("ws://{addr}/ws/concierge")])
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("smoke: PASS"),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}
