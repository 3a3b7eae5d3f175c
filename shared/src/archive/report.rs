//! What a scope's run reports besides its summary: one line of metrics for CloudWatch, its line
//! in the runs dataset, and its failure named by its scope.

use serde_json::Value as Json;

use crate::error::{bounded, Error};
use crate::history::runs::{runs_key, RunLine};
use crate::history::{Bucket, HistoryObject, DEFAULT_UPLOAD_PART_SIZE};
use crate::model::{Scope, ServiceId, Timestamp};
use crate::run::batch::ScopeOutcome;
use crate::run::{RunOutcome, RunRequest};
use crate::table::RunCounts;

/// One CloudWatch Embedded Metric Format line for a batch's runs (namespace `SessionArchiver`,
/// dimension `Service`): CloudWatch turns it into metrics with no API call; the template's alarms
/// watch them. One line an invocation, its runs summed: a scope's detail is its line in the runs
/// dataset, so a quiet scope logs nothing of its own. A batch of one scope names its account and
/// region as properties, not dimensions: no metric per scope (an organization of 1,000 accounts
/// in 17 regions would make 187,000).
pub fn metrics_line(service: ServiceId, outcomes: &[(&Scope, ScopeOutcome)], timestamp_ms: i64) -> String {
    let mut counts = RunCounts::default();
    let mut runs = [0u64; 6];
    for (_, outcome) in outcomes {
        let slot = match outcome {
            ScopeOutcome::Ran(summary) if summary.quiet => 4,
            ScopeOutcome::Ran(summary) => match summary.outcome {
                RunOutcome::Complete | RunOutcome::DryRun => 0,
                RunOutcome::Partial => 1,
                RunOutcome::Skipped => 3,
            },
            ScopeOutcome::Failed(_) => 2,
            ScopeOutcome::NotStarted => 5,
        };
        runs[slot] += 1;
        if let ScopeOutcome::Ran(summary) = outcome {
            counts.add(&summary.counts);
        }
    }
    let metrics: [(&str, u64, &str); 15] = [
        // A quiet run is a complete one, and counted apart as well.
        ("CompleteRuns", runs[0] + runs[4], "Count"),
        ("PartialRuns", runs[1], "Count"),
        ("FailedRuns", runs[2], "Count"),
        ("SkippedRuns", runs[3], "Count"),
        ("QuietRuns", runs[4], "Count"),
        ("NotStartedScopes", runs[5], "Count"),
        ("Sessions", counts.sessions, "Count"),
        ("NewSessions", counts.new, "Count"),
        ("ChangedSessions", counts.changed, "Count"),
        ("EndedSessions", counts.ended, "Count"),
        ("ApiCalls", counts.api_calls, "Count"),
        ("ItemsWritten", counts.items_written, "Count"),
        ("Throttles", counts.throttles, "Count"),
        ("ListingStatesRead", counts.states_read, "Count"),
        ("ListingStatesRebuilt", counts.states_rebuilt, "Count"),
    ];
    let mut line = serde_json::Map::new();
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": "SessionArchiver",
                "Dimensions": [["Service"]],
                "Metrics": metrics.iter().map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    line.insert("Service".into(), Json::from(service.as_str()));
    line.insert("Scopes".into(), Json::from(outcomes.len()));
    if let [(scope, _)] = outcomes {
        line.insert("AccountId".into(), Json::from(scope.account_id.as_str()));
        line.insert("Region".into(), Json::from(scope.region.as_str()));
    }
    for (name, value, _) in metrics {
        line.insert(name.into(), Json::from(value));
    }
    Json::Object(line).to_string()
}

/// A scope's line in the runs dataset, for a run that ran (a skipped one read and wrote nothing,
/// and has none); `started_at` is when the invocation started it.
pub fn run_line(
    scope: &Scope,
    request: &RunRequest,
    outcome: &ScopeOutcome,
    started_at: &Timestamp,
) -> Option<RunLine> {
    let line = |run_id: &str, status, started_at: &Timestamp, finished_at| RunLine {
        service: scope.service,
        account_id: scope.account_id.clone(),
        region: scope.region.clone(),
        run_id: run_id.to_owned(),
        event_time: request.event_time.clone(),
        started_at: started_at.clone(),
        finished_at,
        status,
        quiet: false,
        sessions: 0,
        new: 0,
        changed: 0,
        ended: 0,
        pages: 0,
        api_calls: 0,
        error: None,
        invocation_id: request.invocation_id.clone(),
    };
    match outcome {
        ScopeOutcome::NotStarted => None,
        ScopeOutcome::Failed(err) => Some(RunLine {
            error: Some((err.kind(), bounded(err.to_string()))),
            ..line(request.run_id.as_str(), "failed", started_at, Timestamp::now())
        }),
        ScopeOutcome::Ran(summary) => {
            let status = match summary.outcome {
                RunOutcome::Complete => "complete",
                RunOutcome::Partial => "partial",
                RunOutcome::DryRun => "dry_run",
                RunOutcome::Skipped => return None,
            };
            let c = &summary.counts;
            Some(RunLine {
                quiet: summary.quiet,
                sessions: c.sessions,
                new: c.new,
                changed: c.changed,
                ended: c.ended,
                pages: c.pages,
                api_calls: c.api_calls,
                ..line(&summary.run_id, status, &summary.started_at, summary.finished_at.clone())
            })
        }
    }
}

/// Writes the runs dataset's lines of a batch's scopes, one object. The runs are done, their
/// objects and items written, whatever becomes of these lines: a failure to write them is logged
/// (`runs object not written`), and the invocation goes on.
pub async fn write_runs<O: Bucket>(
    bucket: &O,
    prefix: &str,
    service: ServiceId,
    request: &RunRequest,
    outcomes: &[(&Scope, ScopeOutcome)],
    started_at: &Timestamp,
) {
    let lines: Vec<String> = outcomes
        .iter()
        .filter_map(|(scope, outcome)| run_line(scope, request, outcome, started_at))
        .map(|line| line.to_json())
        .collect();
    if lines.is_empty() || request.dry_run {
        return;
    }
    let key = runs_key(prefix, service, &request.event_time, request.run_id.as_str(), &request.invocation_id);
    let mut object = HistoryObject::new(bucket, key.clone(), DEFAULT_UPLOAD_PART_SIZE);
    let written = async {
        for line in &lines {
            object.push(line).await?;
        }
        object.finish().await
    };
    if let Err(err) = request.deadlines.last("S3: the runs object", written).await {
        object.abort().await;
        tracing::error!(key, lines = lines.len(), err = %err, "runs object not written");
    }
}

/// The failure of a scope's run (an account and region of an organization), with what to check
/// where the cause alone does not say it.
pub fn scope_failure(scope: &Scope, err: Error) -> Error {
    let source = match err {
        Error::Api { site, code, message, status, retryable } => {
            let message = match scope_hint(scope, &code, &message) {
                Some(hint) => format!("{message} ({hint})"),
                None => message,
            };
            Error::Api { site, code, message, status, retryable }
        }
        other => other,
    };
    Error::InScope { account_id: scope.account_id.clone(), region: scope.region.clone(), source: Box::new(source) }
}

/// What a session API's refusal in a scope most likely means, where its code does not say it: a
/// region the account has not enabled refuses the account's credentials, and a region where a
/// service is not offered has no endpoint name.
fn scope_hint(scope: &Scope, code: &str, message: &str) -> Option<String> {
    let region = &scope.region;
    match code {
        "UnrecognizedClientException" | "InvalidClientTokenId" | "AuthFailure" => Some(format!(
            "is {region} enabled in this account? A region the account has not enabled refuses its credentials"
        )),
        "DispatchFailure" if message.contains("dns error") || message.contains("failed to lookup address") => {
            let service = scope.service.spec().global_infrastructure_name;
            Some(format!("the endpoint's name did not resolve: is {service} offered in {region}?"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CallSite;
    use crate::history::memory::MemoryBucket;
    use crate::run::{RunSummary, Trigger};

    fn summary(outcome: RunOutcome, quiet: bool) -> RunSummary {
        let at = Timestamp::parse("2026-11-22T10:00:30Z").unwrap();
        let counts = RunCounts { api_calls: 2, pages: 1, ..RunCounts::default() };
        RunSummary {
            counts,
            quiet,
            ..RunSummary::new(ServiceId::IvsStreamSessions, "plan-1", outcome, 0, at.clone(), at)
        }
    }

    #[tokio::test]
    async fn a_batch_writes_one_runs_object_with_a_line_for_each_scope_that_ran_or_failed() {
        // GIVEN a batch of four scopes: one quiet, one failed, one skipped, one not started
        let scopes: Vec<Scope> = ["111111111111", "222222222222", "333333333333", "444444444444"]
            .map(|a| Scope { service: ServiceId::IvsStreamSessions, account_id: a.into(), region: "eu-west-1".into() })
            .into();
        let denied = Error::Event("denied".into());
        let outcomes = [
            (&scopes[0], ScopeOutcome::Ran(summary(RunOutcome::Complete, true))),
            (&scopes[1], ScopeOutcome::Failed(scope_failure(&scopes[1], denied))),
            (&scopes[2], ScopeOutcome::Ran(summary(RunOutcome::Skipped, false))),
            (&scopes[3], ScopeOutcome::NotStarted),
        ];
        let request = RunRequest {
            run_id: crate::model::RunId::parse("plan-1").unwrap(),
            event_id: "plan-1".into(),
            event_time: Timestamp::parse("2026-11-22T10:00:00Z").unwrap(),
            trigger: Trigger::Scheduled,
            dry_run: false,
            invocation_id: "req-1".into(),
            deadlines: crate::run::deadline::Deadlines::none(),
        };
        let bucket = MemoryBucket::default();
        // WHEN its runs are written
        let started = Timestamp::parse("2026-11-22T10:00:01Z").unwrap();
        write_runs(&bucket, "history", ServiceId::IvsStreamSessions, &request, &outcomes, &started).await;
        // THEN one object holds a line for the quiet scope and one for the failed scope, with why
        assert_eq!(bucket.keys(), ["history/runs/ivs-stream-sessions/dt=2026-11-22/plan-1.req-1.jsonl.gz"]);
        let lines = bucket.lines(&bucket.keys()[0]);
        let summary: Vec<(&str, &str, bool, &Json)> = lines
            .iter()
            .map(|l| {
                (l["account_id"].as_str().unwrap(), l["status"].as_str().unwrap(), l["quiet"] == true, &l["error_kind"])
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("111111111111", "complete", true, &Json::Null),
                ("222222222222", "failed", false, &Json::from("InvalidEvent"))
            ]
        );
        assert!(lines[1]["error_message"].as_str().unwrap().starts_with("account 222222222222, region eu-west-1: "));
        // AND a dry run writes none
        let dry = RunRequest { dry_run: true, invocation_id: "req-2".into(), ..request };
        write_runs(&bucket, "history", ServiceId::IvsStreamSessions, &dry, &outcomes, &started).await;
        assert_eq!(bucket.keys().len(), 1);
    }

    #[test]
    fn a_failed_run_is_one_failed_run_in_the_metrics() {
        let scope = Scope {
            service: ServiceId::IvsStreamSessions,
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
        };
        let outcomes = [(&scope, ScopeOutcome::Failed(Error::Event("bad".into())))];
        let line = metrics_line(ServiceId::IvsStreamSessions, &outcomes, 1_790_000_000_000);
        let parsed: Json = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["_aws"]["CloudWatchMetrics"][0]["Namespace"], "SessionArchiver");
        assert_eq!(parsed["Service"], "ivs-stream-sessions");
        assert_eq!(
            (parsed["AccountId"].as_str(), parsed["Region"].as_str()),
            (Some("111122223333"), Some("eu-west-1"))
        );
        assert_eq!(parsed["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["Service"]]));
        assert_eq!((parsed["FailedRuns"].as_u64(), parsed["CompleteRuns"].as_u64()), (Some(1), Some(0)));
        let names: Vec<&str> = parsed["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.iter().all(|n| parsed.get(n).is_some()), "every metric has its value");
        // AND a batch's line sums its scopes, and names no account
        let other = Scope { region: "us-east-1".into(), ..scope.clone() };
        let two = [(&scope, ScopeOutcome::Failed(Error::Event("bad".into()))), (&other, ScopeOutcome::NotStarted)];
        let parsed: Json = serde_json::from_str(&metrics_line(ServiceId::IvsStreamSessions, &two, 0)).unwrap();
        assert_eq!((parsed["Scopes"].as_u64(), parsed["FailedRuns"].as_u64()), (Some(2), Some(1)));
        assert_eq!((parsed["NotStartedScopes"].as_u64(), parsed.get("AccountId")), (Some(1), None));
    }

    fn scope() -> Scope {
        Scope { service: ServiceId::IvsStreamSessions, account_id: "111122223333".into(), region: "eu-north-1".into() }
    }

    fn list_channels() -> CallSite {
        CallSite { service: ServiceId::IvsStreamSessions.as_str(), operation: "ListChannels", parent: None }
    }

    #[test]
    fn a_scope_refused_for_its_credentials_asks_whether_the_region_is_enabled() {
        // GIVEN the answer of a region the account has not enabled
        let refused = Error::Api {
            site: list_channels(),
            code: "UnrecognizedClientException".into(),
            message: "The security token included in the request is invalid.".into(),
            status: Some(403),
            retryable: false,
        };
        // THEN the scope's error names account, region, cause and what to check, and no retry helps
        let err = scope_failure(&scope(), refused);
        assert_eq!(
            err.to_string(),
            "account 111122223333, region eu-north-1: ivs-stream-sessions ListChannels failed: UnrecognizedClientException: The security token included in the request is invalid. (is eu-north-1 enabled in this account? A region the account has not enabled refuses its credentials)"
        );
        assert!(!err.is_retryable());
    }

    #[tokio::test]
    async fn an_endpoint_name_that_does_not_resolve_asks_whether_the_service_is_offered_there() {
        // GIVEN a session API client whose endpoint name cannot resolve (`.invalid` never does)
        let config = aws_sdk_ivs::Config::builder()
            .behavior_version(aws_sdk_ivs::config::BehaviorVersion::latest())
            .region(aws_sdk_ivs::config::Region::new("eu-north-1"))
            .endpoint_url("https://ivs.eu-north-1.invalid")
            .credentials_provider(aws_sdk_ivs::config::Credentials::for_tests())
            .retry_config(aws_sdk_ivs::config::retry::RetryConfig::disabled())
            .build();
        // WHEN it is called in a scope
        let sdk_err = aws_sdk_ivs::Client::from_conf(config).list_channels().send().await.unwrap_err();
        let err = scope_failure(&scope(), Error::from_sdk(list_channels(), sdk_err));
        // THEN the error says the name did not resolve and asks whether IVS is offered there; a
        // retry may help (a resolver can fail for a while), the planner plans offered regions only
        let text = err.to_string();
        assert!(text.contains("DispatchFailure"), "{text}");
        assert!(text.ends_with("(the endpoint's name did not resolve: is ivs offered in eu-north-1?)"), "{text}");
        assert!(err.is_retryable());
    }
}
