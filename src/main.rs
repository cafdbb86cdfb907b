//! The `newsapi` binary: serves the API, or runs one administrative command.

use std::{io::Read, process::ExitCode};

use clap::{Parser, Subcommand};
use newsapi::{admin, config::Config, db, startup::Application, telemetry};

/// A News REST API secured with JWT, over PostgreSQL.
#[derive(Debug, Parser)]
#[command(
    name = "newsapi",
    version,
    after_help = "Settings are read from the environment and from .env; see .env.example."
)]
struct Cli {
    /// What to do; without one, `serve`.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default)
    Serve,
    /// Apply pending database migrations and exit
    Migrate,
    /// Create an admin account; the password is read from standard input
    CreateAdmin {
        /// The new account's email
        #[arg(long, value_name = "EMAIL")]
        email: String,
    },
    /// Give an existing account the admin role
    Promote {
        /// The account's email
        #[arg(value_name = "EMAIL")]
        email: String,
    },
    /// Delete an account with its sessions and news (not the only admin's)
    DeleteUser {
        /// The account's email, in any spelling
        #[arg(long, value_name = "EMAIL")]
        email: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    // Usage errors print the usage and exit with 2; --help and `help` print it and exit with 0.
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    // After the configuration, which loads .env: a RUST_LOG set there applies too.
    telemetry::init(config.observability.log_format);
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(&config).await,
        Command::Migrate => db::prepare(config.database_url(), &config.database)
            .await
            .map(|()| eprintln!("newsapi: migrations applied"))
            .map_err(|e| e.to_string()),
        Command::CreateAdmin { email } => create_admin(&config, &email).await,
        Command::Promote { email } => admin::promote(&config, &email)
            .await
            .map(|()| eprintln!("newsapi: {email} is now an admin"))
            .map_err(|e| e.to_string()),
        Command::DeleteUser { email } => admin::delete_user(&config, &email)
            .await
            .map(|deleted| {
                eprintln!(
                    "newsapi: deleted user {} ({}) and {} news item(s)",
                    deleted.email, deleted.id, deleted.news
                );
            })
            .map_err(|e| e.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

async fn serve(config: &Config) -> Result<(), String> {
    let app = Application::build(config)
        .await
        .map_err(|e| e.to_string())?;
    app.run_until_stopped().await.map_err(|e| e.to_string())
}

async fn create_admin(config: &Config, email: &str) -> Result<(), String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    // One trailing line break is the end of the input, not part of the password.
    let password = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password)
        .to_string();
    if password.is_empty() {
        return Err(format!(
            "no password on standard input; pipe it in, e.g. \
             printf '%s\\n' 'a long passphrase' | newsapi create-admin --email {email}"
        ));
    }
    let id = admin::create_admin(config, email, password)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("newsapi: admin {email} created with id {id}");
    Ok(())
}

/// One clear line on stderr and a non-zero exit, never a panic trace.
fn fail(err: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("newsapi: {err}");
    ExitCode::FAILURE
}
