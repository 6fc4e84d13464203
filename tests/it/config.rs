//! The config file end to end: the built binary with `--check-config`.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "correct-horse-battery-staple";

/// A config file of its own for each call, removed when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(text: &str) -> ConfigFile {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "switchboard-config-{}-{}.toml",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, text).expect("write the config file");
        ConfigFile(path)
    }

    /// `switchboard --config FILE --check-config`, with `env` added to an
    /// environment without `SWITCHBOARD_*` or `RUST_LOG` variables.
    fn check(&self, env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        for (name, _) in std::env::vars() {
            if name.starts_with("SWITCHBOARD_") || name == "RUST_LOG" {
                command.env_remove(name);
            }
        }
        command
            .arg("--config")
            .arg(&self.0)
            .arg("--check-config")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("run the switchboard binary")
    }

    fn name(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_good_file_is_reported_with_its_settings_and_no_secret() {
    let file = ConfigFile::new(&format!(
        "# a test\nmax-connections = 77\nworld = [\"lobby\", \"games\"]\n\
         secret = \"{SECRET}\"\nrpc-workers = 2\n"
    ));
    let output = file.check(&[("SWITCHBOARD_RPC_WORKERS", "3")]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"configuration OK"), "{stdout}");
    for setting in [
        "max-connections = 77",
        "world = [\"lobby\", \"games\"]",
        "secret = (set)",
        "rpc-workers = 3",
        "log-level = \"info\"",
    ] {
        assert!(lines.contains(&setting), "{setting:?} in {stdout}");
    }
    assert!(!stdout.contains(SECRET) && !stderr.contains(SECRET));
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let file = ConfigFile::new(&format!("secret = \"{SECRET}\"\n\nmax-conections = 10\n"));
    let output = file.check(&[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let expected = format!("{}:3: unknown key \"max-conections\"", file.name());
    assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
    assert!(!stderr.contains(SECRET));
}

#[test]
fn a_bad_value_is_refused_with_its_key_and_line() {
    let file = ConfigFile::new(&format!(
        "secret = \"{SECRET}\"\nlisten = \"127.0.0.1:0\"\nmax-message-bytes = 0\n"
    ));
    let output = file.check(&[]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let expected = format!(
        "{}:3: max-message-bytes: 0 is not a positive whole number",
        file.name()
    );
    assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    assert!(!stderr.contains(SECRET));
}

#[test]
fn a_bad_file_value_is_refused_even_where_the_environment_wins() {
    // The file is checked whole, whatever wins over it.
    let file = ConfigFile::new("max-connections = \"many\"\n");
    let output = file.check(&[("SWITCHBOARD_MAX_CONNECTIONS", "5")]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(":1: max-connections: \"many\""), "{stderr}");
}

#[test]
fn a_missing_file_is_named_with_the_system_s_reason() {
    let file = ConfigFile::new("");
    let missing = file.0.with_extension("missing");
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--check-config")
        .env("SWITCHBOARD_CONFIG", &missing)
        .output()
        .expect("run the switchboard binary");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let expected = format!("cannot read the config file {}: ", missing.display());
    assert!(stderr.contains(&expected), "{expected:?} in {stderr}");
    assert!(stderr.contains("(os error 2)"), "{stderr}");
}
