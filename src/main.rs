//! The `switchboard` binary: settings in, server run (or settings checked),
//! errors out.

use std::io;
use std::process::ExitCode;

use switchboard::cli::{self, Invocation};
use switchboard::systemd::{self, Notifier};
use switchboard::{signals, Config, Server};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let config = match cli::parse(args.clone(), env) {
        Ok(Invocation::Run(config)) => config,
        Ok(Invocation::Help) => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::Version) => {
            println!("switchboard {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Ok(Invocation::CheckConfig(config)) => {
            println!("configuration OK");
            for (name, value) in config.settings() {
                println!("{name} = {value}");
            }
            return ExitCode::SUCCESS;
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
    println!("switchboard {} listening:", env!("CARGO_PKG_VERSION"));
    for endpoint in server.endpoints()? {
        println!("  {endpoint}");
    }
    server.run()
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}
