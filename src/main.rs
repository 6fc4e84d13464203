//! The `switchboard` binary: settings in, server run (or settings checked),
//! errors out.

use std::io::{self, Write};
use std::process::ExitCode;

use switchboard::cli::{self, Invocation};
use switchboard::net::endpoints;
use switchboard::systemd::{self, Notifier};
use switchboard::{signals, Config, Server};

fn main() -> ExitCode {
    switchboard::log::install();
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let config = match cli::parse(args.clone(), env) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help) => return print(&cli::usage()),
        Ok(Invocation::Version) => {
            return print(&format!("switchboard {}\n", env!("CARGO_PKG_VERSION")))
        }
        Ok(Invocation::CheckConfig(config)) => {
            let mut text = String::from("configuration OK\n");
            for (name, value) in config.settings() {
                text += &format!("{name} = {value}\n");
            }
            return print(&text);
        }
        Err(error) => {
            eprintln!("switchboard: {error} (see --help)");
            return ExitCode::from(2);
        }
    };
    match serve(*config, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchboard: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT, on systemd's socket if it passed one.
fn serve(config: Config, args: Vec<String>) -> io::Result<()> {
    // Checked before the banner says the server is listening.
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        let dir = config.data_dir.display();
        io::Error::new(
            e.kind(),
            format!("cannot use the data directory {dir} (--data-dir): {e}"),
        )
    })?;
    // Checked before the banner too: a certificate that cannot be served
    // must not be announced as listening.
    #[cfg(feature = "tls")]
    if let Some((cert, key)) = config.tls_files() {
        switchboard::net::tls::Acceptor::load(cert, key).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot serve TLS: {e}"),
            )
        })?;
    }
    let tls = config.tls_files().is_some();
    let server = match systemd::activated_listener()? {
        Some(listener) => Server::from_listener(listener, config),
        None => Server::bind(config)?,
    };
    let server = match Notifier::from_env() {
        Some(notifier) => server.with_notifier(notifier),
        None => server,
    };
    // SIGHUP reads the same sources again: flags, environment, file.
    // Handled before the address is printed: a SIGTERM sent as soon as
    // the server says where it listens must shut it down gracefully, not
    // kill it with the default action (the handle queues the request
    // until `run` takes it).
    signals::spawn(server.handle(), move || {
        match cli::parse(args.clone(), env) {
            Ok(Invocation::Run(config)) => Ok(*config),
            Ok(_) => Err("the command line no longer asks to run".into()),
            Err(error) => Err(error.to_string()),
        }
    })?;
    let mut banner = format!("switchboard {} listening:\n", env!("CARGO_PKG_VERSION"));
    for endpoint in server.endpoints()? {
        let endpoint = match tls {
            true => endpoints::over_tls(&endpoint),
            false => endpoint,
        };
        banner += &format!("  {endpoint}\n");
    }
    // Nobody reading standard output is no reason not to serve.
    let _ = io::stdout().lock().write_all(banner.as_bytes());
    server.run()
}

/// Prints `text` on standard output. A reader that stops early (`| head`)
/// is not an error: the rest is simply not wanted.
fn print(text: &str) -> ExitCode {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: cannot write to standard output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
