//! The sweeper's cost grows with what expired, not with what is stored.

mod vault_common;

use std::time::Instant;

use kinko_core::vault::store::Op;
use kinko_core::vault::{Durability, Metadata, ShareId, ShareOptions, ShareRecord, Timestamp};
use vault_common::*;

/// 1,000,000 live shares and 1,000 expired ones: a sweep visits exactly the 1,000.
///
/// The million shares are inserted through the store in batches of 2,000 (one atomic sled
/// batch each, 4 keys per share), which takes about 40 s on the 2-core dev machine (sled
/// itself costs ~10 µs per key here); the sweep itself takes milliseconds.
#[test]
fn sweep_visits_only_expired_entries_among_a_million_live_shares() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [50; 32]);
    let v = &env.vault;
    let file = v
        .upload(
            &env.member,
            &Metadata::default(),
            Some(300 * DAY),
            &mut &b"x"[..],
        )
        .unwrap();
    // A real share gives a template with a real secret hash.
    let template = v
        .create_share(
            &env.member,
            &file,
            ShareOptions {
                expires_in: 60 * DAY,
                ..Default::default()
            },
        )
        .unwrap();
    let template: ShareRecord = v.meta().share(&template.id).unwrap().unwrap();
    let make = |i: u64, expires: Timestamp| {
        let mut s = template.clone();
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&i.to_be_bytes());
        id[8] = 0xAA;
        s.id = ShareId(id);
        s.expires = expires;
        s
    };
    let started = Instant::now();
    const LIVE: u64 = 1_000_000;
    const BATCH: u64 = 2_000;
    for b in 0..LIVE / BATCH {
        let ops: Vec<Op> = (b * BATCH..(b + 1) * BATCH)
            .map(|i| Op::PutShare(make(i, T0.plus(DAY + i % (30 * DAY)))))
            .collect();
        v.meta().commit(&[], ops, Durability::Buffered).unwrap();
    }
    let expired: Vec<Op> = (0..1000u64)
        .map(|i| Op::PutShare(make(LIVE + i, T0.plus(i * 10))))
        .collect();
    v.meta().commit(&[], expired, Durability::Buffered).unwrap();
    eprintln!("inserted {} shares in {:?}", LIVE + 1000, started.elapsed());

    // Nothing expired yet at T0 - 1.
    assert_eq!(v.sweep(Timestamp(T0.0 - 1)).unwrap().visited, 0);
    // At T0 + 10,000 s exactly the 1,000 expired shares are visited and removed.
    let r = v.sweep(T0.plus(10_000)).unwrap();
    assert_eq!(r.visited, 1000, "{r:?}");
    assert_eq!(r.shares_removed, 1000);
    // A second sweep has nothing left to visit.
    assert_eq!(v.sweep(T0.plus(10_000)).unwrap().visited, 0);
    // The live ones are untouched.
    assert!(v.meta().share(&make(0, T0).id).unwrap().is_some());
    assert!(v.meta().share(&make(LIVE + 1, T0).id).unwrap().is_none());
    // Boundary: a share expiring exactly at `now` is swept; one a second later is not.
    let edge = T0.plus(DAY);
    let r = v.sweep(edge).unwrap();
    assert_eq!(r.visited, 1, "only the share with expires == now: {r:?}");
}
