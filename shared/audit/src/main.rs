//! `session-audit`: see `session-audit --help`.

use clap::Parser;
use session_audit::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let now = session_archiver::model::Timestamp::now().epoch_seconds();
    match cli.run(now).await {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("session-audit: {err}");
            std::process::ExitCode::from(match err {
                session_audit::AuditError::Usage(_) => 2,
                _ => 1,
            })
        }
    }
}
