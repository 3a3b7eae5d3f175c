//! Lambda function: archives WorkSpaces connection status (`DescribeWorkspacesConnectionStatus`).

use session_archiver::lambda::LambdaError;
use session_archiver::ServiceId;

fn main() -> Result<(), LambdaError> {
    session_archiver::archive::main(ServiceId::WorkspacesConnectionStatus)
}
