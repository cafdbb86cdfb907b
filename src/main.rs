//! The `newsapi` binary: serves the API, or runs one administrative command.

use std::process::ExitCode;

use newsapi::{config::Config, db, startup::Application, telemetry};

const USAGE: &str = "usage: newsapi [serve | migrate]";

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let command = std::env::args().nth(1);
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    match command.as_deref() {
        None | Some("serve") => match Application::build(&config).await {
            Ok(app) => match app.run_until_stopped().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&err),
            },
            Err(err) => fail(&err),
        },
        Some("migrate") => match db::migrate(config.database_url()).await {
            Ok(()) => {
                eprintln!("newsapi: migrations applied");
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        },
        Some(_) => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// One clear line on stderr and a non-zero exit, never a panic trace.
fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("newsapi: {err}");
    ExitCode::FAILURE
}
