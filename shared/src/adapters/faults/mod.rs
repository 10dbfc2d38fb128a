//! A wrapper for any store that injects faults and latency, for fault-invariant tests
//! and for benchmarks that charge a round trip per call like DynamoDB from Lambda.
//!
//! [`Faulty<S>`] implements every port `S` implements among those ingest,
//! aggregation, export and evaluation use ([`ModelRegistry`], [`PartialStore`],
//! [`PendingWork`], [`RollupStore`], [`ExportCursors`], [`ModelSettingsStore`],
//! [`AlertStore`], [`AlertNotifier`], [`SeriesWriter`], [`MetricsExporter`]). Every
//! call goes through one [`FaultPlan`], shared by all the stores wrapped with it, which
//! decides per call — from a script, then from a seeded draw against the
//! [`FaultRates`] — whether it passes, fails before reaching the store (nothing
//! applied), fails after a write took effect, or crashes the process: then neither
//! that call nor any later call under the plan completes, [`FaultPlan::crashed`]
//! resolves, and a driver drops the run and starts a new process — a fresh plan over
//! the same inner stores ([`Faulty::restarted`]). An injected failure is the store's
//! `Unavailable` error with an [`InjectedFault`] as its source.
//!
//! - `plan`: the plan, its rates, script, counts, latency and crash signal.
//! - `pages`: how many round trips an answer costs (the page-size hook).
//! - `stores`: the port implementations of [`Faulty`], one entry per method.
//!
//! Like [`crate::adapters::memory`], this is ordinary library code: generic, so it
//! costs the functions nothing unless they name it, and it needs no dependency of
//! its own (the draw is a SplitMix64 sequence).
//!
//! [`ModelRegistry`]: crate::ports::ModelRegistry
//! [`PartialStore`]: crate::ports::PartialStore
//! [`PendingWork`]: crate::ports::PendingWork
//! [`RollupStore`]: crate::ports::RollupStore
//! [`ExportCursors`]: crate::ports::ExportCursors
//! [`ModelSettingsStore`]: crate::ports::ModelSettingsStore
//! [`AlertStore`]: crate::ports::AlertStore
//! [`AlertNotifier`]: crate::ports::AlertNotifier
//! [`SeriesWriter`]: crate::ports::SeriesWriter
//! [`MetricsExporter`]: crate::ports::MetricsExporter

mod pages;
mod plan;
mod stores;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

pub use plan::{
    Access, CallCounts, DYNAMODB_ROUND_TRIP, Fault, FaultPlan, FaultRates, InvalidRates, Op,
    Trigger,
};

use crate::error::StoreError;
use crate::ports::ExportFailure;
use crate::ports::RegistryError;
use pages::ResponseSize;

/// A store whose calls pass through a [`FaultPlan`]. The store is held in an `Arc`, so
/// that after a crash a new process can wrap the same store under a fresh plan.
#[derive(Debug)]
pub struct Faulty<S> {
    inner: Arc<S>,
    plan: Arc<FaultPlan>,
}

impl<S> Faulty<S> {
    /// Wraps `inner` under `plan`.
    pub fn new(inner: S, plan: Arc<FaultPlan>) -> Self {
        Self::shared(Arc::new(inner), plan)
    }

    /// Wraps a store that outlives this wrapper (and the process it stands for).
    pub fn shared(inner: Arc<S>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }

    /// The same inner store under `plan`: the store as a new process sees it.
    pub fn restarted(&self, plan: Arc<FaultPlan>) -> Self {
        Self::shared(Arc::clone(&self.inner), plan)
    }

    /// The wrapped store, to inspect what was applied.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    /// The plan the calls go through.
    pub fn plan(&self) -> &Arc<FaultPlan> {
        &self.plan
    }

    /// Runs one call of `op` — `call`, the inner store's future, not yet polled —
    /// as the plan decides, and charges its round trips.
    async fn call<T, E>(&self, op: Op, call: impl Future<Output = Result<T, E>>) -> Result<T, E>
    where
        T: ResponseSize,
        E: Injected,
    {
        let plan = &self.plan;
        plan.halt_if_crashed().await;
        let answer = match plan.decide(op) {
            None => call.await,
            Some(fault @ Fault::FailBefore) => Err(E::injected(op, fault)),
            Some(fault @ Fault::FailAfter) => {
                let _lost_with_the_connection = call.await;
                Err(E::injected(op, fault))
            }
            Some(Fault::Crash) => {
                plan.crash();
                return std::future::pending().await;
            }
            Some(Fault::CrashAfter) => {
                let _never_answered = call.await;
                plan.crash();
                return std::future::pending().await;
            }
        };
        plan.round_trips(answer.as_ref().map_or(1, ResponseSize::round_trips))
            .await;
        // A crash while the answer was on its way: it never arrives.
        plan.halt_if_crashed().await;
        answer
    }
}

/// What an injected failure carries as its source, so a test can tell it from a real
/// one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("injected {fault} on {op}")]
pub struct InjectedFault {
    /// The call's operation.
    pub op: Op,
    /// The fault, as it acted.
    pub fault: Fault,
}

/// An error type a port method answers, and its form of an injected failure: the
/// port's "unavailable, retry later".
trait Injected {
    /// `fault` on a call of `op`, as the caller sees it.
    fn injected(op: Op, fault: Fault) -> Self;
}

impl Injected for StoreError {
    fn injected(op: Op, fault: Fault) -> Self {
        Self::Unavailable {
            operation: op.name(),
            source: Box::new(InjectedFault { op, fault }),
        }
    }
}

impl Injected for RegistryError {
    fn injected(op: Op, fault: Fault) -> Self {
        Self::Store(StoreError::injected(op, fault))
    }
}

impl Injected for ExportFailure {
    fn injected(op: Op, fault: Fault) -> Self {
        Self::Unavailable(Box::new(InjectedFault { op, fault }))
    }
}
