//! `make invoke FUNCTION=<service id or history-compactor> EVENT=<file>`: sends one event to the
//! real function binary through a local Lambda Runtime API and prints its answer.
//!
//! By default on the local stand-ins (moto and the emulator seeded from `events/local-world.json`).
//! With `--aws` the function talks to the real AWS account of your credentials instead: set
//! `TABLE_NAME`, `BUCKET_NAME`, `ACCOUNT_ID` and `AWS_REGION` (and `AWS_PROFILE` if you use one).

use std::process::ExitCode;
use std::time::Duration;

use archiver_e2e::lambda::{LocalFunction, Outcome};
use archiver_e2e::stage::{local_world, read_json, LocalStage};
use session_archiver::ServiceId;

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let aws = args.iter().any(|a| a == "--aws");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [function, event] = positional.as_slice() else {
        eprintln!("usage: archiver-invoke [--aws] <function: {}> <event.json>", ids());
        return ExitCode::from(2);
    };
    let target = match function.as_str() {
        COMPACTOR => None,
        id => match id.parse::<ServiceId>() {
            Ok(service) => Some(service),
            Err(_) => {
                eprintln!("unknown function `{function}`: one of {}", ids());
                return ExitCode::from(2);
            }
        },
    };
    match invoke(target, event, aws).await {
        Ok(Outcome::Response(summary)) => {
            println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(Outcome::Error { error_type, error_message }) => {
            eprintln!("{error_type}: {error_message}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("invoke failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The compactor's function id; the others are the services'.
const COMPACTOR: &str = "history-compactor";

fn ids() -> String {
    ServiceId::ALL.map(|s| s.as_str()).into_iter().chain([COMPACTOR]).collect::<Vec<_>>().join(", ")
}

/// Invokes a service's function (`Some`) or the compactor (`None`).
async fn invoke(
    service: Option<ServiceId>,
    event_file: &str,
    aws: bool,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let event = read_json(std::path::Path::new(event_file))?;
    let name = service.map_or(COMPACTOR, ServiceId::as_str);
    let binary = LocalFunction::binary(name);
    if aws {
        let var = |k: &str| std::env::var(k).map_err(|_| format!("--aws needs {k} set"));
        let (account, region) = (var("ACCOUNT_ID")?, var("AWS_REGION")?);
        let env: Vec<(String, String)> = [
            "TABLE_NAME",
            "BUCKET_NAME",
            "HISTORY_PREFIX",
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "HOME",
        ]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_owned(), v)))
        .collect();
        let mut function =
            LocalFunction::start(&binary, name, &account, &region, &env, Duration::from_secs(900)).await?;
        return Ok(function.invoke(event).await?);
    }
    let stage = LocalStage::start(local_world()?).await?;
    let mut function = match service {
        Some(service) => stage.function(service).await?,
        // Over the stand-ins' bucket, empty: a day with nothing to compact, answered as such.
        None => stage.compactor(256, &[]).await?,
    };
    let outcome = function.invoke(event).await?;
    for line in function.log() {
        eprintln!("{line}");
    }
    Ok(outcome)
}
