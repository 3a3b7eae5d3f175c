//! Lambda function: archives Chime SDK Voice proxy sessions (`ListProxySessions`, every voice connector from `ListVoiceConnectors`).

use session_archiver::lambda::{run_function, LambdaError};
use session_archiver::ServiceId;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    run_function(ServiceId::ChimeProxySessions).await
}
