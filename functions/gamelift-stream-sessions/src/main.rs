//! Lambda function: archives GameLift Streams stream sessions (`ListStreamSessionsByAccount`).

use session_archiver::lambda::{run_function, LambdaError};
use session_archiver::ServiceId;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_function(ServiceId::GameliftStreamSessions).await
}
