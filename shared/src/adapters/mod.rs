//! Implementations of the [`crate::ports`] traits: DynamoDB for the functions, memory
//! for unit tests and benchmarks. [`limits`] holds DynamoDB's limits and the neutral
//! item images both storage adapters build from, so the memory adapters refuse what
//! DynamoDB would; [`faults`] wraps any of them to inject store faults and latency
//! (fault-invariant tests, latency-bound benchmarks).
//!
//! Each family is behind the crate feature of its name (`dynamodb` also brings the
//! memory twins and fault wrappers, which size items with its item images), so a
//! function compiles and links only the clients it uses.

#[cfg(feature = "cloudwatch")]
pub mod cloudwatch;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "dynamodb")]
pub mod faults;
pub mod limits;
#[cfg(feature = "dynamodb")]
pub mod memory;
#[cfg(feature = "remote-write")]
pub mod remote_write;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "timestream")]
pub mod timestream;
#[cfg(feature = "webhooks")]
pub mod webhook;
