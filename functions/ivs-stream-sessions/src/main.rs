//! Lambda function: archives IVS stream sessions (`ListStreamSessions`, every channel from `ListChannels`).

use session_archiver::lambda::{run_function, LambdaError};
use session_archiver::ServiceId;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_function(ServiceId::IvsStreamSessions).await
}
