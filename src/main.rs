//! `ttserver`: run the all-in-one server or an admin command (architecture.md section 5).

use std::process::ExitCode;

use ttserver::cli::{parse_args, Command, USAGE};
use ttserver::config::Config;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ttserver: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let file_only = matches!(cmd, Command::File { .. });
    match cmd {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("ttserver {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Run { conf } | Command::File { conf } => {
            let cfg = match Config::load(&conf) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ttserver: {e}");
                    return ExitCode::from(2);
                }
            };
            let result = if file_only {
                ttserver::server::run_file(cfg)
            } else {
                ttserver::server::run(cfg)
            };
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ttserver: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Admin { conf, args } => {
            let cfg = match Config::load(&conf) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("ttserver: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut out = std::io::stdout().lock();
            match ttserver::admin::run(
                &cfg.store.data_dir,
                cfg.store.db_sync,
                cfg.auth.password_hash_cost,
                &args,
                &mut out,
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ttserver admin: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
