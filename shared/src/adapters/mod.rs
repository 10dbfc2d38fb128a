//! Implementations of the [`crate::ports`] traits: DynamoDB for the functions, memory
//! for unit tests and benchmarks.

pub mod cloudwatch;
pub mod dynamodb;
pub mod memory;
pub mod remote_write;
pub mod sns;
pub mod timestream;
