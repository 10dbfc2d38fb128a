//! The fault plan: which store calls fail, and how, decided per call from a seed and
//! a script; the latency charged per round trip; the call counts; and the crash
//! signal. One plan is shared (behind an `Arc`) by every store wrapped with it, so they
//! draw from one sequence and die together.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// A round trip from Lambda to DynamoDB in the same region, as the benchmarks charge
/// it.
pub const DYNAMODB_ROUND_TRIP: Duration = Duration::from_millis(5);

/// Whether an operation only reads or may change the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Access {
    /// Changes nothing: only [`Fault::FailBefore`] and [`Fault::Crash`] apply.
    Read,
    /// May change the store: every [`Fault`] applies.
    Write,
}

/// One method of a port (its name) and whether it reads or writes. The constants
/// (`Op::PUT_PARTIAL`, …) are defined beside the wrappers that use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Op {
    name: &'static str,
    access: Access,
}

impl Op {
    /// A reading method named `name`.
    pub(super) const fn read(name: &'static str) -> Self {
        Self {
            name,
            access: Access::Read,
        }
    }

    /// A writing method named `name`.
    pub(super) const fn write(name: &'static str) -> Self {
        Self {
            name,
            access: Access::Write,
        }
    }

    /// The port method's name, e.g. `put_partial`.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// Whether it reads or writes.
    pub const fn access(self) -> Access {
        self.access
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What goes wrong with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Refused before it reached the store (throttling): nothing applied, the caller
    /// sees `Unavailable`.
    FailBefore,
    /// Timed out after the write took effect: applied, but the caller sees
    /// `Unavailable`. Writes only; on a read it is [`Fault::FailBefore`] (a read
    /// applies nothing).
    FailAfter,
    /// The process died before the call reached the store: nothing applied, and
    /// neither this call nor any later call of any store under the plan completes.
    Crash,
    /// The process died after the write took effect: applied; otherwise like
    /// [`Fault::Crash`]. Writes only; on a read it is [`Fault::Crash`].
    CrashAfter,
}

impl Fault {
    /// The fault as it acts on an operation with `access`.
    fn on(self, access: Access) -> Self {
        match (self, access) {
            (Self::FailAfter, Access::Read) => Self::FailBefore,
            (Self::CrashAfter, Access::Read) => Self::Crash,
            (fault, _) => fault,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FailBefore => "fail-before",
            Self::FailAfter => "fail-after",
            Self::Crash => "crash",
            Self::CrashAfter => "crash-after",
        })
    }
}

/// The probability of each fault per call, drawn from the plan's seed. Reads draw
/// only from `fail_before` and `crash` (the rest of their draw passes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FaultRates {
    /// Probability of [`Fault::FailBefore`].
    pub fail_before: f64,
    /// Probability of [`Fault::FailAfter`] (writes).
    pub fail_after: f64,
    /// Probability of [`Fault::Crash`].
    pub crash: f64,
    /// Probability of [`Fault::CrashAfter`] (writes).
    pub crash_after: f64,
}

impl FaultRates {
    /// Each rate with its fault, in the order a draw is matched against them.
    fn each(self) -> [(Fault, f64); 4] {
        [
            (Fault::FailBefore, self.fail_before),
            (Fault::FailAfter, self.fail_after),
            (Fault::Crash, self.crash),
            (Fault::CrashAfter, self.crash_after),
        ]
    }
}

/// Rates that are not probabilities, or add up to more than one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("fault rates must each lie in [0, 1] and add up to at most 1: {rates:?}")]
pub struct InvalidRates {
    /// The rates refused.
    pub rates: FaultRates,
}

/// Which call a scripted fault hits; counts start at 1 and include every call under
/// the plan, whatever store it went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The n-th call.
    Call(u64),
    /// The n-th read.
    Read(u64),
    /// The n-th write.
    Write(u64),
    /// The n-th call of the operation.
    Operation(Op, u64),
}

/// How many calls the stores under a plan received, and what was done to them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls decided (a call made after the crash is not: it never starts).
    pub calls: u64,
    /// Of which reads.
    pub reads: u64,
    /// Of which writes.
    pub writes: u64,
    /// Round trips charged: one per call answered, and one per started 1 MB page of a
    /// read answering many items.
    pub round_trips: u64,
    /// Calls per operation.
    pub by_op: BTreeMap<Op, u64>,
    /// Faults injected, by kind as they acted (a fail-after on a read counts as
    /// fail-before).
    pub by_fault: BTreeMap<Fault, u64>,
}

impl CallCounts {
    /// Calls of `op`.
    pub fn of(&self, op: Op) -> u64 {
        self.by_op.get(&op).copied().unwrap_or(0)
    }

    /// Faults of kind `fault` injected.
    pub fn injected(&self, fault: Fault) -> u64 {
        self.by_fault.get(&fault).copied().unwrap_or(0)
    }
}

/// Decides, per call, whether a store call passes, fails or crashes the process:
/// scripted faults first, then a draw from the seeded sequence against the rates. The
/// same seed, rates, script and sequence of calls give the same decisions. Optionally
/// charges a latency per round trip. Build it with [`FaultPlan::new`] and the `with_`
/// methods, then share it with [`FaultPlan::shared`].
#[derive(Debug)]
pub struct FaultPlan {
    seed: u64,
    rates: FaultRates,
    script: Vec<(Trigger, Fault)>,
    latency: Option<Duration>,
    state: Mutex<PlanState>,
    crashed: AtomicBool,
    crash_signal: Notify,
}

/// What changes with every call.
#[derive(Debug)]
struct PlanState {
    /// The random sequence's state (SplitMix64).
    rng: u64,
    counts: CallCounts,
}

impl FaultPlan {
    /// A plan drawing from `seed` that injects nothing and charges no latency until
    /// given rates, a script or a latency.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rates: FaultRates::default(),
            script: Vec::new(),
            latency: None,
            state: Mutex::new(PlanState {
                rng: seed,
                counts: CallCounts::default(),
            }),
            crashed: AtomicBool::new(false),
            crash_signal: Notify::new(),
        }
    }

    /// Injects faults at random with these rates.
    pub fn with_rates(self, rates: FaultRates) -> Result<Self, InvalidRates> {
        let each = rates.each();
        let valid = each.iter().all(|(_, p)| (0.0..=1.0).contains(p))
            && each.iter().map(|(_, p)| p).sum::<f64>() <= 1.0;
        if !valid {
            return Err(InvalidRates { rates });
        }
        Ok(Self { rates, ..self })
    }

    /// Injects `fault` on the call `trigger` names, whatever the rates draw; of two
    /// scripted faults naming the same call, the first given wins. Every call draws
    /// all the same, so a script does not move the random faults of other calls.
    pub fn with_fault(mut self, trigger: Trigger, fault: Fault) -> Self {
        self.script.push((trigger, fault));
        self
    }

    /// Charges `per_round_trip` (a `tokio::time::sleep`) for every round trip.
    pub fn with_latency(self, per_round_trip: Duration) -> Self {
        Self {
            latency: Some(per_round_trip),
            ..self
        }
    }

    /// Charges [`DYNAMODB_ROUND_TRIP`] for every round trip.
    pub fn with_dynamodb_latency(self) -> Self {
        self.with_latency(DYNAMODB_ROUND_TRIP)
    }

    /// The plan, ready to share between wrapped stores.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }

    /// The seed the plan draws from (to name a failing run).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The counts so far.
    pub fn counts(&self) -> CallCounts {
        self.lock().counts.clone()
    }

    /// Whether the process has crashed.
    pub fn is_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// Resolves when the process crashes (at once if it has): a driver selects on it
    /// beside the run it drives, drops the run, and starts a new process with a fresh
    /// plan over the same inner stores.
    pub async fn crashed(&self) {
        // Created before the flag is read, so a crash in between still wakes it.
        let signal = self.crash_signal.notified();
        if self.is_crashed() {
            return;
        }
        signal.await;
    }

    /// Never returns once the process has crashed.
    pub(super) async fn halt_if_crashed(&self) {
        if self.is_crashed() {
            std::future::pending::<()>().await;
        }
    }

    /// The process dies now.
    pub(super) fn crash(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.crash_signal.notify_waiters();
    }

    /// Counts a call of `op` and decides its fault (`None`: it passes).
    pub(super) fn decide(&self, op: Op) -> Option<Fault> {
        let mut state = self.lock();
        let draw = next_unit(&mut state.rng);
        let counts = &mut state.counts;
        counts.calls += 1;
        let nth_of_access = match op.access {
            Access::Read => {
                counts.reads += 1;
                counts.reads
            }
            Access::Write => {
                counts.writes += 1;
                counts.writes
            }
        };
        let nth_of_op = {
            let n = counts.by_op.entry(op).or_default();
            *n += 1;
            *n
        };
        let calls = counts.calls;
        let scripted = self.script.iter().find_map(|(trigger, fault)| {
            let hit = match *trigger {
                Trigger::Call(n) => n == calls,
                Trigger::Read(n) => op.access == Access::Read && n == nth_of_access,
                Trigger::Write(n) => op.access == Access::Write && n == nth_of_access,
                Trigger::Operation(target, n) => target == op && n == nth_of_op,
            };
            hit.then_some(*fault)
        });
        let fault = scripted
            .or_else(|| self.drawn(draw, op.access))?
            .on(op.access);
        *counts.by_fault.entry(fault).or_default() += 1;
        Some(fault)
    }

    /// The fault `draw` (uniform in [0, 1)) falls on among those that apply to
    /// `access`.
    fn drawn(&self, draw: f64, access: Access) -> Option<Fault> {
        let mut edge = 0.0;
        for (fault, rate) in self.rates.each() {
            if fault.on(access) != fault {
                continue;
            }
            edge += rate;
            if draw < edge {
                return Some(fault);
            }
        }
        None
    }

    /// Counts `round_trips` and waits the latency they are charged.
    pub(super) async fn round_trips(&self, round_trips: u64) {
        self.lock().counts.round_trips += round_trips;
        if let Some(latency) = self.latency {
            let trips = u32::try_from(round_trips).unwrap_or(u32::MAX);
            tokio::time::sleep(latency.saturating_mul(trips)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlanState> {
        // Nothing panics while the state is held; a poisoned lock holds whole values.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The next number of a SplitMix64 sequence, as a uniform draw from [0, 1).
fn next_unit(state: &mut u64) -> f64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    // The top 53 bits, the precision of an f64 in [0, 1).
    (z >> 11) as f64 / (1u64 << 53) as f64
}
