//! The flags, the sources and their order, and the errors.

use super::*;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn invoke(args: &[&str], env: &[(&str, &str)]) -> Result<Invocation, CliError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    parse(args.iter().map(std::string::ToString::to_string), lookup)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, CliError> {
    match invoke(args, env)? {
        Invocation::Run(config) => Ok(*config),
        other => panic!("{other:?}"),
    }
}

/// Writes `text` to a new file of its own, for `--config`.
fn config_file(text: &str) -> String {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "switchboard-cli-{}-{}.toml",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    );
    let path = std::env::temp_dir().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// The defaults with a config file's `text` applied, as if read from
/// `switchboard.toml`.
fn from_file(text: &str) -> Result<Config, CliError> {
    let mut config = Config::default();
    apply_file_text(&mut config, "switchboard.toml", text)?;
    Ok(config)
}

fn file_error(text: &str) -> String {
    from_file(text).unwrap_err().to_string()
}

#[test]
fn defaults_without_flags() {
    let config = run(&[], &[]).unwrap();
    assert_eq!(config.listen, "127.0.0.1:8080");
    assert_eq!(config.identify_timeout, Duration::from_secs(5));
    assert_eq!(config.max_connections, 10_000);
    assert!(config.secret.is_none());
}

#[test]
fn flags_win_over_environment() {
    let env = [
        ("SWITCHBOARD_LISTEN", "0.0.0.0:1"),
        ("SWITCHBOARD_MAX_MESSAGE_BYTES", "99"),
        ("SWITCHBOARD_QUIET", "1"),
    ];
    let config = run(&["--listen", "127.0.0.1:9", "--secret=x"], &env).unwrap();
    assert_eq!(config.listen, "127.0.0.1:9");
    assert_eq!(config.max_message_bytes, 99);
    assert_eq!(config.secret.as_deref(), Some("x"));
    assert_eq!(config.log_level, Level::Warn);
}

#[test]
fn bad_input_names_the_culprit() {
    assert_eq!(
        run(&["--nope"], &[]).unwrap_err(),
        CliError::UnknownFlag("--nope".into())
    );
    assert_eq!(
        run(&["--listen"], &[]).unwrap_err(),
        CliError::MissingValue("--listen".into())
    );
    let error = run(&[], &[("SWITCHBOARD_IDENTIFY_TIMEOUT_MS", "soon")]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "SWITCHBOARD_IDENTIFY_TIMEOUT_MS: \"soon\" is not a number of milliseconds from 1 to 604800000 (a week)"
    );
    assert!(run(&["--max-connections", "0"], &[]).is_err());
    assert!(run(&["--quiet=yes"], &[]).is_err());
    assert!(run(&["stray"], &[]).is_err());
}

#[test]
fn limits_are_off_by_default_and_zero_turns_them_off() {
    let config = run(&[], &[]).unwrap();
    assert_eq!(config.max_connections_per_ip, None);
    assert_eq!((config.rate_limit, config.rate_burst), (None, None));
    let env = [("SWITCHBOARD_MAX_CONNECTIONS_PER_IP", "4")];
    let config = run(&["--rate-limit", "50", "--rate-burst=80"], &env).unwrap();
    assert_eq!(config.max_connections_per_ip, Some(4));
    assert_eq!((config.rate_limit, config.rate_burst), (Some(50), Some(80)));
    let config = run(&["--max-connections-per-ip", "0", "--rate-limit=0"], &env).unwrap();
    assert_eq!(config.max_connections_per_ip, None);
    assert_eq!(config.rate_limit, None);
    assert_eq!(run(&["--rate-burst", "0"], &[]).unwrap().rate_burst, None);
    assert!(run(&["--rate-burst", "x"], &[]).is_err());
    assert!(run(&["--rate-limit", "-1"], &[]).is_err());
    assert!(run(&["--rate-limit", "99999999999"], &[]).is_err());
}

#[test]
fn worlds_repeat_and_replace_the_default_and_the_environment() {
    assert_eq!(run(&[], &[]).unwrap().worlds, ["default"]);
    assert_eq!(
        run(&["--world", "a", "--world=b,c"], &[]).unwrap().worlds,
        ["a", "b", "c"]
    );
    assert_eq!(
        run(&[], &[("SWITCHBOARD_WORLD", "x, y")]).unwrap().worlds,
        ["x", "y"]
    );
    assert_eq!(
        run(&["--world", "a"], &[("SWITCHBOARD_WORLD", "x")])
            .unwrap()
            .worlds,
        ["a"]
    );
    assert!(run(&["--world", "a/b"], &[]).is_err());
}

#[test]
fn help_and_version() {
    assert!(matches!(
        parse(["--help".to_string()], |_| None),
        Ok(Invocation::Help)
    ));
    assert!(matches!(
        parse(["-V".to_string()], |_| None),
        Ok(Invocation::Version)
    ));
    assert!(usage().contains("--max-queued-bytes"));
}

#[test]
fn flags_win_over_environment_over_file_over_defaults() {
    let file = config_file(
        "listen = \"0.0.0.0:1\"\nmax-connections = 11\nheartbeat-ms = 12\nrpc-workers = 13\n",
    );
    let env = [
        ("SWITCHBOARD_MAX_CONNECTIONS", "21"),
        ("SWITCHBOARD_HEARTBEAT_MS", "22"),
    ];
    let config = run(&["--config", &file, "--heartbeat-ms", "32"], &env).unwrap();
    assert_eq!(config.listen, "0.0.0.0:1", "the file over the default");
    assert_eq!(config.max_connections, 21, "the environment over the file");
    assert_eq!(
        config.heartbeat_interval,
        Duration::from_millis(32),
        "the flag over all"
    );
    assert_eq!(config.rpc_workers, 13);
    assert_eq!(
        config.max_handshakes, 1024,
        "the default where nothing speaks"
    );
    let from_env = run(&[], &[("SWITCHBOARD_CONFIG", &file)]).unwrap();
    assert_eq!(
        from_env.rpc_workers, 13,
        "SWITCHBOARD_CONFIG names the file too"
    );
    let later = run(&["--config", "/nonexistent", "--config", &file], &[]).unwrap();
    assert_eq!(later.rpc_workers, 13, "the last --config wins");
    assert_eq!(
        run(&[], &[("SWITCHBOARD_CONFIG", "")]).unwrap().rpc_workers,
        4
    );
}

#[test]
fn a_higher_source_replaces_the_file_s_worlds() {
    let file = config_file("world = [\"a\", \"b\"]");
    assert_eq!(run(&["--config", &file], &[]).unwrap().worlds, ["a", "b"]);
    let env = [("SWITCHBOARD_WORLD", "x")];
    assert_eq!(run(&["--config", &file], &env).unwrap().worlds, ["x"]);
    let flags = ["--config", &file, "--world", "y", "--world", "z"];
    assert_eq!(run(&flags, &env).unwrap().worlds, ["y", "z"]);
    assert_eq!(from_file("world = \"c, d\"").unwrap().worlds, ["c", "d"]);
    assert!(from_file("world = []").unwrap().worlds.is_empty());
}

#[test]
fn file_values_take_their_toml_types() {
    let config = from_file(
        "secret = 's3'\nquiet = true\nmax-message-bytes = 0x10\ndata-dir = \"/var/lib/sb\"",
    )
    .unwrap();
    assert_eq!(config.secret.as_deref(), Some("s3"));
    assert_eq!(config.log_level, Level::Warn);
    assert_eq!(config.max_message_bytes, 16);
    assert_eq!(config.data_dir, std::path::Path::new("/var/lib/sb"));
    assert_eq!(from_file("quiet = false").unwrap().log_level, Level::Info);
}

#[test]
fn file_errors_name_the_file_the_line_and_the_key() {
    let cases = [
        (
            "listen = \"x:1\"\n\nmax-conections = 5",
            "switchboard.toml:3: unknown key \"max-conections\"",
        ),
        (
            "max-message-bytes = -5",
            "switchboard.toml:1: max-message-bytes: -5 is not a positive whole number",
        ),
        (
            "\nmax-message-bytes = \"abc\"",
            "switchboard.toml:2: max-message-bytes: \"abc\" is not a whole number (without quotes)",
        ),
        (
            "ping-ms = 0",
            "switchboard.toml:1: ping-ms: 0 is not a number of milliseconds from 1 to 604800000 (a week)",
        ),
        (
            "secret = 42",
            "switchboard.toml:1: secret: 42 is not a quoted string",
        ),
        (
            "listen = 127.0.0.1:80",
            "switchboard.toml:1: listen: 127.0.0.1:80 is not a quoted string",
        ),
        (
            "quiet = \"yes\"",
            "switchboard.toml:1: quiet: \"yes\" is not true or false",
        ),
        (
            "world = 3",
            "switchboard.toml:1: world: 3 is not a quoted string or a list of them",
        ),
        (
            "world = [\n  \"a\",\n  7,\n]",
            "switchboard.toml:3: world: 7 is not a quoted string",
        ),
        (
            "world = [\"a/b\"]",
            "switchboard.toml:1: world: \"a/b\" is not a world name without '/'",
        ),
        (
            "log-level = \"loud\"",
            "switchboard.toml:1: log-level: \"loud\" is not error, warn, info or debug",
        ),
        (
            "config = \"other.toml\"",
            "switchboard.toml:1: unknown key \"config\": --config works on the command line only, not in the file",
        ),
        (
            "check-config = true",
            "switchboard.toml:1: unknown key \"check-config\": --check-config works on the command line only, not in the file",
        ),
        (
            "# settings\n[server]\nlisten = \"x\"",
            "switchboard.toml:2: tables are not used: write every key at the top level",
        ),
        (
            "listen = \"x\"\nlisten = \"y\"",
            "switchboard.toml:2: \"listen\" is set twice",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(file_error(text), message, "{text:?}");
    }
    assert!(matches!(
        from_file("\n\nmax-conections = 5"),
        Err(CliError::UnknownKey { at: Location { line: 3, .. }, key }) if key == "max-conections"
    ));
}

#[test]
fn an_unreadable_file_names_its_path_and_the_system_s_reason() {
    let error = run(&["--config", "/nonexistent/switchboard.toml"], &[]).unwrap_err();
    let CliError::FileUnreadable {
        path,
        error: reason,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(path, "/nonexistent/switchboard.toml");
    let expected = std::io::Error::from(std::io::ErrorKind::NotFound).kind();
    assert_eq!(
        std::fs::read("/nonexistent/switchboard.toml")
            .unwrap_err()
            .kind(),
        expected
    );
    assert_eq!(
        error.to_string(),
        format!("cannot read the config file /nonexistent/switchboard.toml: {reason}")
    );
    assert!(reason.contains("os error"), "{reason}");
}

#[test]
fn the_log_level_from_every_source() {
    let level = |args: &[&str], env: &[(&str, &str)]| run(args, env).unwrap().log_level;
    assert_eq!(level(&[], &[]), Level::Info);
    assert_eq!(level(&["--log-level", "debug"], &[]), Level::Debug);
    assert_eq!(level(&["--quiet"], &[]), Level::Warn);
    assert_eq!(level(&[], &[("RUST_LOG", "debug")]), Level::Debug);
    assert_eq!(
        level(&[], &[("RUST_LOG", "switchboard=error")]),
        Level::Error
    );
    assert_eq!(level(&[], &[("RUST_LOG", "tower=debug")]), Level::Info);
    let own_variable = [("RUST_LOG", "debug"), ("SWITCHBOARD_LOG_LEVEL", "warn")];
    assert_eq!(level(&[], &own_variable), Level::Warn);
    assert_eq!(level(&["--log-level=error"], &own_variable), Level::Error);
    let file = config_file("log-level = \"error\"");
    assert_eq!(level(&["--config", &file], &[]), Level::Error);
    assert_eq!(
        level(&["--config", &file], &[("RUST_LOG", "debug")]),
        Level::Debug
    );
    assert!(run(&["--log-level", "loud"], &[]).is_err());
}

#[test]
fn check_config_checks_everything_and_is_command_line_only() {
    let file = config_file("max-connections = 7");
    let Ok(Invocation::CheckConfig(config)) = invoke(&["--config", &file, "--check-config"], &[])
    else {
        panic!("not a check");
    };
    assert_eq!(config.max_connections, 7);
    let bad = config_file("max-connections = 0");
    assert!(invoke(&["--check-config", "--config", &bad], &[]).is_err());
    assert!(invoke(&["--check-config=yes"], &[]).is_err());
    let env = [("SWITCHBOARD_CHECK_CONFIG", "1")];
    assert!(matches!(invoke(&[], &env), Ok(Invocation::Run(_))));
}

#[test]
fn settings_show_every_flag_and_no_secret() {
    let config = run(
        &[
            "--secret",
            "s3cr3t",
            "--jwt-key",
            "k3y",
            "--admin-token",
            "t0k3n",
        ],
        &[],
    )
    .unwrap();
    let settings = config.settings();
    for flag in FLAGS {
        let shown = settings.iter().any(|(name, _)| *name == flag.name);
        let folded = matches!(flag.name, "quiet"); // into log-level
        let command = matches!(flag.apply, Setter::ConfigFile | Setter::CheckConfig);
        assert_eq!(shown, !folded && !command, "--{}", flag.name);
    }
    let printed = format!("{settings:?}");
    for secret in ["s3cr3t", "k3y", "t0k3n"] {
        assert!(!printed.contains(secret), "{printed}");
    }
    let shown = |name| settings.iter().find(|(n, _)| *n == name).unwrap().1.clone();
    assert_eq!(shown("secret"), "(set)");
    assert_eq!(shown("world"), "[\"default\"]");
    assert_eq!(shown("ping-ms"), "15000");
}

/// Each flag's type in the file is read from its usage's placeholder:
/// a new placeholder must be placed here on purpose.
#[test]
fn every_placeholder_has_a_file_type() {
    for flag in FLAGS {
        let placeholder = flag.usage.split_whitespace().next().unwrap_or("");
        let known = match flag.apply {
            Setter::Value(_) => [
                "N", "TEXT", "ADDR", "DIR", "LEVEL", "URL", "PATTERNS", "LIST", "CIDRS", "FILE",
            ]
            .contains(&placeholder),
            Setter::List(_) => placeholder == "NAME",
            Setter::ConfigFile => placeholder == "FILE",
            Setter::Switch(_) | Setter::CheckConfig => {
                !placeholder.chars().all(|c| c.is_ascii_uppercase())
            }
        };
        assert!(known, "--{}: placeholder {placeholder:?}", flag.name);
    }
}

#[test]
fn redis_needs_a_build_with_the_redis_feature() {
    let parsed = run(&["--redis", "redis://127.0.0.1:6379"], &[]);
    match (cfg!(feature = "redis"), parsed) {
        (true, Ok(config)) => {
            assert_eq!(config.redis.as_deref(), Some("redis://127.0.0.1:6379"));
        }
        (false, Err(error)) => assert!(error.to_string().contains("--features redis")),
        (with_feature, other) => panic!("feature {with_feature}: {other:?}"),
    }
}

#[test]
fn tls_needs_a_build_with_the_tls_feature_and_both_files() {
    let parsed = run(&["--tls-cert", "c.pem", "--tls-key", "k.pem"], &[]);
    match (cfg!(feature = "tls"), parsed) {
        (true, Ok(config)) => assert_eq!(
            config.tls_files(),
            Some((Path::new("c.pem"), Path::new("k.pem")))
        ),
        (false, Err(error)) => assert!(error.to_string().contains("--features tls")),
        (with_feature, other) => panic!("feature {with_feature}: {other:?}"),
    }
    if cfg!(feature = "tls") {
        let half = run(&["--tls-cert", "c.pem"], &[]).unwrap_err();
        assert_eq!(half, CliError::TlsHalf);
        assert!(half.to_string().contains("--tls-key"), "{half}");
    }
}

#[test]
fn the_example_file_holds_every_key_with_its_default() {
    let example = include_str!("../../examples/switchboard.toml");
    let defaults = Config::default().settings();
    let as_is = from_file(example).unwrap();
    assert_eq!(as_is.settings(), defaults, "as shipped");
    // Every `# key = value` line, uncommented, still gives the defaults
    // (keys without one, the secrets, aside).
    let uncommented: String = example
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(setting) if setting.contains(" = ") => setting,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let entries = flat_toml::parse(&uncommented).unwrap();
    for flag in FLAGS {
        let settable = !matches!(flag.apply, Setter::ConfigFile | Setter::CheckConfig);
        let present = entries.iter().any(|entry| entry.key == flag.name);
        assert_eq!(present, settable, "{} in the example", flag.name);
    }
    // A build without Redis support refuses `redis` (tested below).
    let with_redis = cfg!(feature = "redis");
    let with_tls = cfg!(feature = "tls");
    let uncommented: String = uncommented
        .lines()
        .filter(|line| with_redis || !line.starts_with("redis ="))
        .filter(|line| with_tls || !line.starts_with("tls-"))
        .map(|line| format!("{line}\n"))
        .collect();
    let all = from_file(&uncommented).unwrap();
    let secrets = ["secret", "jwt-key", "emit-token", "admin-token"];
    for ((name, value), (_, default)) in all.settings().iter().zip(&defaults) {
        match (secrets.contains(name), *name) {
            (true, _) => assert_eq!(value, "(set)", "{name}"),
            // Off by default; the example shows a local Redis.
            (false, "redis") if with_redis => {
                assert_eq!(value, "\"redis://127.0.0.1:6379\"");
            }
            // Off by default; the example shows certbot's paths.
            (false, "tls-cert" | "tls-key") if with_tls => {
                assert!(value.contains("/etc/letsencrypt/live/"), "{name}");
            }
            (false, _) => assert_eq!(value, default, "{name}"),
        }
    }
}
