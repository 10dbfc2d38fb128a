//! Shards of the key space. Every model belongs to one of [`SHARDS`] shards, by a
//! stable hash of its tenant and id; a shard is the unit of scheduled work and of the
//! stores' hot partitions (pending marks, export cursors, the index of active models).
//! A run owns a range of shards, and every model's series has one writer as long as
//! one run at a time owns each shard.

use std::ops::Range;

use super::ids::{ModelId, TenantId};

/// How many shards there are.
pub const SHARDS: u32 = 32;

/// Every shard.
pub fn all_shards() -> Range<u32> {
    0..SHARDS
}

/// The shard of a model: FNV-1a of `tenant#model`, stable across builds and processes.
pub fn shard_of(tenant: &TenantId, model_id: &ModelId) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    let key = tenant
        .as_str()
        .bytes()
        .chain([b'#'])
        .chain(model_id.as_str().bytes());
    for byte in key {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % SHARDS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(tenant: &str, model: &str) -> (TenantId, ModelId) {
        (
            TenantId::parse(tenant).expect("tenant"),
            ModelId::parse(model).expect("model"),
        )
    }

    #[test]
    fn shards_are_stable_and_spread() {
        let (t, m) = ids("t1", "m1");
        // FNV-1a of "t1#m1" is 0x9b2db8f5: the value is part of the stored keys.
        assert_eq!(shard_of(&t, &m), 0x9b2d_b8f5 % SHARDS);
        let used: std::collections::BTreeSet<u32> = (0..200)
            .map(|i| {
                let (t, m) = ids("t", &format!("m{i}"));
                shard_of(&t, &m)
            })
            .collect();
        assert_eq!(used.len(), SHARDS as usize, "200 models use every shard");
        assert!(used.iter().all(|s| all_shards().contains(s)));
    }
}
