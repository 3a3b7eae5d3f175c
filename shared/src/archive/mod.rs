//! The archiving functions' program, one per session API: their configuration ([`config`]),
//! events ([`event`]), cold start and handler ([`function`]), what becomes of a batch's failed
//! scopes ([`batch`]) and what a run reports ([`report`]).
//! A function's `main` is [`main`].

pub mod batch;
pub mod config;
pub mod event;
pub mod function;
pub mod report;

use crate::lambda::{serve, LambdaError};
use crate::model::ServiceId;

/// The `main` of the function archiving `service`.
pub fn main(service: ServiceId) -> Result<(), LambdaError> {
    serve::<function::Function>(|| config::FunctionConfig::from_env(service))
}
