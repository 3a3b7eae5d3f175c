//! Lambda function: plans one service's scopes (accounts × regions, from the configuration or AWS
//! Organizations) and sends one message per scope to the service's queue.

use session_archiver::lambda::LambdaError;

fn main() -> Result<(), LambdaError> {
    session_archiver::plan::function::main()
}
