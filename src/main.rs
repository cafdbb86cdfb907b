//! The `newsapi` binary: serves the API, or runs one administrative command.

use std::{io::Read, process::ExitCode};

use newsapi::{admin, config::Config, db, startup::Application, telemetry};

const USAGE: &str = "usage: newsapi [serve | migrate | create-admin --email EMAIL | promote EMAIL]
  serve          run the server (the default)
  migrate        apply pending database migrations and exit
  create-admin   create an admin account; the password is read from standard input
  promote        give an existing account the admin role";

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if matches!(args.first(), Some(&("-h" | "--help" | "help"))) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => return fail(&err),
    };
    let outcome = match args.as_slice() {
        [] | ["serve"] => serve(&config).await,
        ["migrate"] => db::migrate(config.database_url())
            .await
            .map(|()| eprintln!("newsapi: migrations applied"))
            .map_err(|e| e.to_string()),
        ["create-admin", "--email", email] => create_admin(&config, email).await,
        ["create-admin", flag] if flag.starts_with("--email=") => {
            create_admin(&config, &flag["--email=".len()..]).await
        }
        ["promote", email] => admin::promote(&config, email)
            .await
            .map(|()| eprintln!("newsapi: {email} is now an admin"))
            .map_err(|e| e.to_string()),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
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
