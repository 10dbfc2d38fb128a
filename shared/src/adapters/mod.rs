//! Implementations of the [`crate::ports`] traits: DynamoDB for the functions, memory
//! for unit tests and benchmarks. [`limits`] holds DynamoDB's limits and the neutral
//! item images both storage adapters build from, so the memory adapters refuse what
//! DynamoDB would.

pub mod cloudwatch;
pub mod dynamodb;
pub mod limits;
pub mod memory;
pub mod remote_write;
pub mod sns;
pub mod timestream;
