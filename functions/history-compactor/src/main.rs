//! Lambda function: compacts a day of each service's history (snapshots and changes, gzip'd
//! NDJSON) into typed Parquet sorted by account, region, session and time.

use session_archiver::lambda::LambdaError;

fn main() -> Result<(), LambdaError> {
    session_compaction::function::main()
}
