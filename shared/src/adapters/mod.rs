//! Implementations of the [`crate::ports`] traits: DynamoDB for the functions, memory
//! for unit tests and benchmarks. [`limits`] holds DynamoDB's limits and the neutral
//! item images both storage adapters build from, so the memory adapters refuse what
//! DynamoDB would; [`faults`] wraps any of them to inject store faults and latency
//! (fault-invariant tests, latency-bound benchmarks).

pub mod cloudwatch;
pub mod dynamodb;
pub mod faults;
pub mod limits;
pub mod memory;
pub mod remote_write;
pub mod sns;
pub mod timestream;
