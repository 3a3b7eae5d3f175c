//! Lambda function: archives IVS stream sessions (`ListStreamSessions`, every channel from `ListChannels`).

use session_archiver::lambda::LambdaError;
use session_archiver::ServiceId;

fn main() -> Result<(), LambdaError> {
    session_archiver::archive::main(ServiceId::IvsStreamSessions)
}
