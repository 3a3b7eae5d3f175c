//! The AWS SDK configuration every function shares: region, optional endpoint override (the
//! local stand-ins), retries and timeouts. Every client (session APIs, DynamoDB, S3, Secrets
//! Manager) is built from one [`SdkSettings::load`], so none waits without a bound; and the
//! two AWS services every program may call on its own behalf: STS for a member account's role
//! ([`member`]) and SQS ([`sqs`]).

pub mod member;
pub mod sqs;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// How the SDK clients are built.
#[derive(Clone, Debug)]
pub struct SdkSettings {
    pub region: Option<String>,
    /// Send every call here instead of the AWS endpoints (the local emulator and moto).
    pub endpoint_url: Option<String>,
    /// Use fixed test credentials: only for the local stand-ins.
    pub local_credentials: bool,
    /// Attempts per call, first one included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    /// Adaptive mode adds a client-side rate limiter that slows down under throttling.
    pub adaptive: bool,
    /// The longest one attempt of a call may take, connection to last byte: a connection that
    /// goes silent is given up and the call retried on another.
    pub attempt_timeout: Duration,
    /// The longest a call may take, its retries and their backoff included.
    pub operation_timeout: Duration,
}

/// The longest a new connection (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long an upload or download may move no bytes before it is cut.
pub const STALLED_STREAM_GRACE: Duration = Duration::from_secs(5);

impl Default for SdkSettings {
    fn default() -> Self {
        SdkSettings {
            region: None,
            endpoint_url: None,
            local_credentials: false,
            max_attempts: 8,
            initial_backoff: Duration::from_millis(200),
            adaptive: true,
            attempt_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(20),
        }
    }
}

impl SdkSettings {
    /// Settings for the local stand-ins: fixed credentials, quick retries.
    pub fn local(endpoint_url: impl Into<String>) -> Self {
        SdkSettings {
            region: Some("us-east-1".into()),
            endpoint_url: Some(endpoint_url.into()),
            local_credentials: true,
            max_attempts: 10,
            initial_backoff: Duration::from_millis(2),
            adaptive: false,
            ..SdkSettings::default()
        }
    }

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT.min(self.attempt_timeout))
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    pub fn retry_config(&self) -> RetryConfig {
        let base = if self.adaptive { RetryConfig::adaptive() } else { RetryConfig::standard() };
        base.with_max_attempts(self.max_attempts)
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(Duration::from_secs(20))
    }

    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(self.retry_config())
            .timeout_config(self.timeout_config())
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled().grace_period(STALLED_STREAM_GRACE).build(),
            );
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        if self.local_credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                "AKIDLOCALSTANDIN",
                "local-stand-in-secret",
                None,
                None,
                "session-archiver-local",
            ));
        }
        loader.load().await
    }
}

impl SdkSettings {
    /// The DynamoDB client of the table of current state.
    pub fn dynamodb_client(&self, sdk: &SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(sdk)
    }

    /// The S3 client of the history bucket; path-style addressing when the endpoint is
    /// overridden (a local stand-in has no per-bucket host names).
    pub fn s3_client(&self, sdk: &SdkConfig) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(sdk).force_path_style(self.endpoint_url.is_some()).build();
        aws_sdk_s3::Client::from_conf(config)
    }
}

impl SdkSettings {
    /// Reads the personal-data key: the secret's string (UTF-8 bytes) or binary value.
    pub async fn read_secret(&self, sdk: &SdkConfig, secret_id: &str) -> crate::Result<Vec<u8>> {
        let client = aws_sdk_secretsmanager::Client::new(sdk);
        let output = client.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
            crate::Error::from_storage_sdk("Secrets Manager GetSecretValue", format!("secret {secret_id}"), e)
        })?;
        match (output.secret_string(), output.secret_binary()) {
            (Some(text), _) => Ok(text.as_bytes().to_vec()),
            (None, Some(blob)) => Ok(blob.as_ref().to_vec()),
            (None, None) => Err(crate::Error::Config(format!("secret {secret_id} has no value"))),
        }
    }
}

/// Classifies HTTP 429 as throttling. The SDK's defaults retry 500/502/503/504 and a list of
/// throttling codes, but not a 429 whose code is off that list, such as Chime SDK Voice's
/// `ThrottledClientException`.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleStatusClassifier;

impl ClassifyRetry for ThrottleStatusClassifier {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.response() {
            Some(response) if response.status().as_u16() == 429 => RetryAction::throttling_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "HTTP 429 is throttling"
    }
}

/// Error codes AWS services use for throttling (the SDK's own list, with Chime SDK Voice's).
const THROTTLING_CODES: [&str; 9] = [
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "ThrottledClientException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "SlowDown",
];

/// Counts the attempts of a client's calls that were answered with throttling, retried or not,
/// for the run's summary and manifest.
#[derive(Clone, Debug, Default)]
pub struct ThrottleCounter(Arc<AtomicU64>);

impl ThrottleCounter {
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Intercept for ThrottleCounter {
    fn name(&self) -> &'static str {
        "ThrottleCounter"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let response = context.response();
        let error_type = response.headers().get("x-amzn-errortype");
        if is_throttling(response.status().as_u16(), error_type, response.body().bytes()) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Whether a response says "throttled": HTTP 429, or a throttling error code in the
/// `x-amzn-ErrorType` header or the JSON body's `__type` / `code` (awsJson and restJson errors).
pub fn is_throttling(status: u16, error_type_header: Option<&str>, body: Option<&[u8]>) -> bool {
    if status == 429 {
        return true;
    }
    if status < 400 {
        return false;
    }
    // `ThrottlingException:http://…` or `aws.protocoltests#ThrottlingException`.
    let bare = |code: &str| {
        let code = code.split(':').next().unwrap_or_default();
        code.rsplit('#').next().unwrap_or_default().to_owned()
    };
    let from_body = || -> Option<String> {
        let json: serde_json::Value = serde_json::from_slice(body?).ok()?;
        json.get("__type").or_else(|| json.get("code")).and_then(|c| c.as_str()).map(bare)
    };
    let code = error_type_header.map(bare).or_else(from_body);
    code.is_some_and(|code| THROTTLING_CODES.contains(&code.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_client_is_built_with_attempt_and_operation_timeouts_and_stall_protection() {
        // GIVEN the settings a function builds its clients from
        let settings = SdkSettings {
            attempt_timeout: Duration::from_secs(7),
            operation_timeout: Duration::from_secs(15),
            ..SdkSettings::local("http://127.0.0.1:9")
        };
        // WHEN the SDK configuration is loaded
        let sdk = settings.load().await;
        // THEN it bounds a connection, an attempt and a whole call
        let timeouts = sdk.timeout_config().unwrap();
        assert_eq!(timeouts.connect_timeout(), Some(CONNECT_TIMEOUT));
        assert_eq!(timeouts.operation_attempt_timeout(), Some(Duration::from_secs(7)));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(15)));
        // AND uploads and downloads that stall are cut
        let stalls = sdk.stalled_stream_protection().unwrap();
        assert!(stalls.upload_enabled() && stalls.download_enabled());
        assert_eq!(stalls.grace_period(), STALLED_STREAM_GRACE);
        // AND the storage clients built from it keep all of this
        let dynamodb = settings.dynamodb_client(&sdk);
        assert_eq!(dynamodb.config().timeout_config(), Some(timeouts));
        let s3 = settings.s3_client(&sdk);
        assert_eq!(s3.config().timeout_config(), Some(timeouts));
        assert!(s3.config().stalled_stream_protection().unwrap().upload_enabled());
    }

    #[test]
    fn throttling_is_told_by_status_header_or_body() {
        assert!(is_throttling(429, None, None));
        assert!(is_throttling(400, None, Some(br#"{"__type":"com.amazonaws.workspaces#ThrottlingException"}"#)));
        assert!(is_throttling(400, Some("ThrottlingException:http://internal.amazon.com/"), None));
        assert!(is_throttling(400, None, Some(br#"{"code":"TooManyRequestsException"}"#)));
        assert!(!is_throttling(400, None, Some(br#"{"__type":"InvalidParameterValuesException"}"#)));
        assert!(!is_throttling(500, None, Some(b"<html>")));
        assert!(!is_throttling(200, Some("ThrottlingException"), None));
    }
}
