//! Lambda function: archives GameLift Streams stream sessions (`ListStreamSessionsByAccount`).

use session_archiver::lambda::LambdaError;
use session_archiver::ServiceId;

fn main() -> Result<(), LambdaError> {
    session_archiver::archive::main(ServiceId::GameliftStreamSessions)
}
