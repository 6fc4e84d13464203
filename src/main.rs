//! The `switchboard` binary: settings in, server run (or settings checked),
//! errors out.

use std::process::ExitCode;

use switchboard::cli::{self, Invocation};
use switchboard::Server;

fn main() -> ExitCode {
    let config = match cli::parse(
        std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned()),
        |name| std::env::var(name).ok(),
    ) {
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
    let result = Server::bind(*config).and_then(|server| {
        println!("switchboard {} listening:", env!("CARGO_PKG_VERSION"));
        for endpoint in server.endpoints()? {
            println!("  {endpoint}");
        }
        server.run()
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchboard: {error}");
            ExitCode::FAILURE
        }
    }
}
