//! Lambda function: archives Chime SDK Voice proxy sessions (`ListProxySessions`, every voice connector from `ListVoiceConnectors`).

use session_archiver::lambda::LambdaError;
use session_archiver::ServiceId;

fn main() -> Result<(), LambdaError> {
    session_archiver::archive::main(ServiceId::ChimeProxySessions)
}
