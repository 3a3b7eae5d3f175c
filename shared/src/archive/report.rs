//! What a scope's run reports besides its summary: one line of metrics for CloudWatch, and its
//! failure named by its scope.

use serde_json::Value as Json;

use crate::error::Error;
use crate::model::Scope;
use crate::run::{RunOutcome, RunSummary};
use crate::Result;

/// One CloudWatch Embedded Metric Format line (namespace `SessionArchiver`, dimension `Service`):
/// CloudWatch turns it into metrics with no API call; the template's alarms watch them. The
/// account and region are properties, not dimensions: searchable in Logs Insights, and no
/// metric per scope (an organization of 1,000 accounts in 17 regions would make 187,000).
pub fn metrics_line(scope: &Scope, result: &Result<RunSummary>, timestamp_ms: i64) -> String {
    let (outcome, counts) = match result {
        Ok(summary) => (Some(summary.outcome), summary.counts.clone()),
        Err(_) => (None, Default::default()),
    };
    let flag = |wanted: Option<RunOutcome>| u64::from(outcome == wanted);
    let metrics: [(&str, u64, &str); 13] = [
        ("CompleteRuns", flag(Some(RunOutcome::Complete)), "Count"),
        ("PartialRuns", flag(Some(RunOutcome::Partial)), "Count"),
        ("FailedRuns", u64::from(result.is_err()), "Count"),
        ("SkippedRuns", flag(Some(RunOutcome::Skipped)), "Count"),
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
    line.insert("Service".into(), Json::from(scope.service.as_str()));
    line.insert("AccountId".into(), Json::from(scope.account_id.as_str()));
    line.insert("Region".into(), Json::from(scope.region.as_str()));
    if let Ok(RunSummary { state_rebuilt_because: Some(reason), .. }) = result {
        line.insert("StateRebuiltBecause".into(), Json::from(reason.as_str()));
    }
    for (name, value, _) in metrics {
        line.insert(name.into(), Json::from(value));
    }
    Json::Object(line).to_string()
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
    use crate::model::ServiceId;

    #[test]
    fn a_failed_run_is_one_failed_run_in_the_metrics() {
        let scope = Scope {
            service: ServiceId::IvsStreamSessions,
            account_id: "111122223333".into(),
            region: "eu-west-1".into(),
        };
        let line = metrics_line(&scope, &Err(Error::Event("bad".into())), 1_790_000_000_000);
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
