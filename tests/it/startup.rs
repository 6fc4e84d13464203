//! What an operator sees when the binary cannot start or cannot print:
//! every error names what is wrong (the address, the path, the flag), a
//! configuration fault exits 2 (so systemd's `RestartPreventExitStatus=2`
//! stops a restart loop), and a reader that stops early is no error.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};

fn switchboard(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    for (name, _) in std::env::vars() {
        if name.starts_with("SWITCHBOARD_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the switchboard binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn an_address_without_a_port_is_a_configuration_fault_named_by_its_flag() {
    for args in [
        &["--listen", "8081", "--check-config"][..],
        &["--listen", "8081"][..],
    ] {
        let output = switchboard(args);
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {error}");
        assert!(error.contains("--listen"), "{error}");
        assert!(error.contains("\"8081\""), "{error}");
        assert!(error.contains("HOST:PORT"), "{error}");
        assert!(
            output.stdout.is_empty(),
            "{args:?}: nothing claims to listen"
        );
    }
}

#[test]
fn an_address_in_use_is_named_with_its_flag() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = std::env::temp_dir().join(format!("switchboard-startup-{}", std::process::id()));
    let output = switchboard(&["--listen", &addr, "--data-dir", dir.to_str().unwrap()]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{error}");
    assert!(
        error.contains(&format!("cannot listen on {addr} (--listen)")),
        "{error}"
    );
    assert!(error.contains("in use"), "{error}");
}

#[test]
fn a_data_dir_that_is_a_file_is_named_before_anything_listens() {
    let file = std::env::temp_dir().join(format!("switchboard-not-a-dir-{}", std::process::id()));
    std::fs::write(&file, "a file").unwrap();
    let output = switchboard(&[
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        file.to_str().unwrap(),
    ]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{error}");
    assert!(
        error.contains(&format!(
            "cannot use the data directory {} (--data-dir)",
            file.display()
        )),
        "{error}"
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(!out.contains("listening"), "{out}");
    let _ = std::fs::remove_file(file);
}

#[cfg(not(feature = "redis"))]
#[test]
fn redis_on_a_build_without_it_says_so() {
    let output = switchboard(&["--redis", "redis://127.0.0.1:6379", "--check-config"]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(
        error.contains("--redis: \"redis://127.0.0.1:6379\" is not accepted by this build, which has no Redis support"),
        "{error}"
    );
}

#[test]
fn a_reader_that_stops_early_is_no_error() {
    for args in [&["--check-config"][..], &["--help"][..], &["--version"][..]] {
        // The pipe's reading end is closed before the binary writes.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert_eq!(stderr(&output), "", "{args:?}");
    }
}

#[test]
fn help_is_aligned_and_names_every_flag_and_endpoint() {
    let output = switchboard(&["--help"]);
    let help = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(0));
    for flag in switchboard::cli::flag_names() {
        assert!(help.contains(&format!("--{flag}")), "--{flag} in\n{help}");
    }
    for endpoint in switchboard::net::endpoints::ENDPOINTS {
        assert!(help.contains(endpoint.path), "{} in\n{help}", endpoint.path);
    }
    // Descriptions start in one column.
    let columns: std::collections::BTreeSet<usize> = help
        .lines()
        .filter(|l| l.starts_with("  --"))
        .map(|l| {
            // The description starts after the first run of two spaces.
            let gap = 2 + l[2..].find("  ").unwrap_or(0);
            gap + l[gap..].len() - l[gap..].trim_start().len()
        })
        .collect();
    assert_eq!(columns.len(), 1, "{columns:?}\n{help}");
}
