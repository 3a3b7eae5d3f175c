//! Lambda function: archives WorkSpaces connection status (`DescribeWorkspacesConnectionStatus`).

use session_archiver::lambda::{run_function, LambdaError};
use session_archiver::ServiceId;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_function(ServiceId::WorkspacesConnectionStatus).await
}
