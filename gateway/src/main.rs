//! The `pluto` binary: see `pluto --help` and the README.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pluto_gateway::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pluto: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(pluto_gateway::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(pluto_gateway::GatewayError::Exit { code, message }) => {
            eprintln!("pluto: {message}");
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("pluto: {e}");
            ExitCode::FAILURE
        }
    }
}
