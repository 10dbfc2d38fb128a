//! Implementations of the [`crate::ports`] traits: DynamoDB for the functions, memory
//! for unit tests and benchmarks, and [`faults`], a wrapper for any of them that
//! injects store faults and latency (fault-invariant tests, latency-bound benchmarks).

pub mod cloudwatch;
pub mod dynamodb;
pub mod faults;
pub mod memory;
pub mod remote_write;
pub mod sns;
pub mod timestream;
