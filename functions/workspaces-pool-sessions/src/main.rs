//! Lambda function: archives WorkSpaces Pools sessions (`DescribeWorkspacesPoolSessions`, every pool from `DescribeWorkspacesPools`).

use session_archiver::lambda::LambdaError;
use session_archiver::ServiceId;

fn main() -> Result<(), LambdaError> {
    session_archiver::archive::main(ServiceId::WorkspacesPoolSessions)
}
