//! AWS list prices the benchmarks estimate bills with (us-east-1, on-demand, as published when
//! this was written; check the pricing pages before relying on them). Storage and data transfer
//! are left out.

/// Lambda, arm64: per GB-second, and per request; the functions' default memory.
pub const LAMBDA_GB_SECOND: f64 = 0.000_013_333_4;
pub const LAMBDA_REQUEST: f64 = 0.000_000_2;
pub const LAMBDA_MEMORY_GB: f64 = 0.5;
/// DynamoDB on-demand: per write request unit (1 KB) and read request unit (4 KB strong, 8 KB
/// eventually consistent).
pub const DYNAMODB_WRU: f64 = 0.000_000_625;
pub const DYNAMODB_RRU: f64 = 0.000_000_125;
/// S3 Standard: PUT, POST, LIST per request; GET per request.
pub const S3_PUT: f64 = 0.000_005;
pub const S3_GET: f64 = 0.000_000_4;
/// Secrets Manager: per API call.
pub const SECRETS_CALL: f64 = 0.000_005;
/// SQS standard queues: per request.
pub const SQS_REQUEST: f64 = 0.000_000_4;
/// CloudWatch Logs: per GB ingested.
pub const LOGS_GB: f64 = 0.50;
