//! Lambda function: archives WorkSpaces Pools sessions (`DescribeWorkspacesPoolSessions`, every pool from `DescribeWorkspacesPools`).

use session_archiver::lambda::{run_function, LambdaError};
use session_archiver::ServiceId;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_function(ServiceId::WorkspacesPoolSessions).await
}
