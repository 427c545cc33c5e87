//! Vault benchmarks: the per-download overhead (decision + counter update + audit append)
//! and the sweep cost per expired item with 1,000,000 live shares.
//!
//! Run: `cargo bench -p kinko-core --bench vault`. Set `KINKO_BENCH_LIVE` to change the
//! number of live shares for the sweep benchmark (default 1,000,000; inserting them takes a
//! while and is not measured).
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use kinko_core::vault::store::Op;
use kinko_core::vault::{
    AccessDurability, AccessKind, Ctx, Durability, KeyRing, LinkSecret, MasterKey, Metadata,
    NewShare, PasswordCost, Principal, Role, ShareId, ShareOptions, Timestamp, Vault, VaultConfig,
};

const T0: Timestamp = Timestamp(1_800_000_000);
const DAY: u64 = 86_400;

fn vault(dir: &std::path::Path, durability: AccessDurability) -> (Vault, Ctx) {
    let mut cfg = VaultConfig::new(KeyRing::new(MasterKey::from_bytes([1; 32])));
    cfg.access_durability = durability;
    cfg.password_cost = PasswordCost {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
    let (v, _) = Vault::open(dir, cfg, T0).unwrap();
    let (admin, _) = v.bootstrap_admin("root", DAY, T0).unwrap();
    let ctx = Ctx {
        principal: Principal {
            user: admin,
            role: Role::Admin,
            token: None,
        },
        client: String::new(),
        now: T0,
    };
    (v, ctx)
}

fn shared_file(v: &Vault, ctx: &Ctx) -> NewShare {
    let file = v
        .upload(ctx, &Metadata::default(), None, &mut &b"payload"[..])
        .unwrap();
    v.create_share(
        ctx,
        &file,
        ShareOptions {
            expires_in: 30 * DAY,
            ..Default::default()
        },
    )
    .unwrap()
}

fn access(c: &mut Criterion) {
    let mut g = c.benchmark_group("access");
    g.throughput(Throughput::Elements(1));
    for (name, durability) in [
        ("buffered", AccessDurability::Buffered),
        ("sync_counted", AccessDurability::SyncCounted),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (v, ctx) = vault(dir.path(), durability);
        let s = shared_file(&v, &ctx);
        g.bench_function(format!("download_counted_{name}"), |b| {
            b.iter(|| {
                black_box(
                    v.access(
                        &s.id,
                        &s.secret,
                        None,
                        AccessKind::Download,
                        "203.0.113.7",
                        T0,
                    )
                    .unwrap(),
                )
            })
        });
        if durability == AccessDurability::Buffered {
            let wrong = LinkSecret::generate();
            g.bench_function("refused_wrong_secret", |b| {
                b.iter(|| {
                    black_box(
                        v.access(&s.id, &wrong, None, AccessKind::Download, "203.0.113.7", T0)
                            .is_err(),
                    )
                })
            });
            g.bench_function("view_uncounted", |b| {
                b.iter(|| {
                    black_box(
                        v.access(&s.id, &s.secret, None, AccessKind::View, "203.0.113.7", T0)
                            .unwrap(),
                    )
                })
            });
        }
        // Two threads (the machine has two cores): concurrent decisions on two shares. With
        // sync_counted, concurrent flushes share one fsync (sled group commit).
        let s2 = shared_file(&v, &ctx);
        g.bench_function(format!("download_counted_{name}_2_threads"), |b| {
            b.iter_custom(|iters| {
                let barrier = Barrier::new(2);
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for share in [&s, &s2] {
                        let (v, barrier) = (&v, &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            for _ in 0..iters.div_ceil(2) {
                                v.access(
                                    &share.id,
                                    &share.secret,
                                    None,
                                    AccessKind::Download,
                                    "",
                                    T0,
                                )
                                .unwrap();
                            }
                        });
                    }
                });
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn sweep(c: &mut Criterion) {
    let live: u64 = std::env::var("KINKO_BENCH_LIVE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (v, ctx) = vault(dir.path(), AccessDurability::Buffered);
    let file = v
        .upload(&ctx, &Metadata::default(), Some(300 * DAY), &mut &b"x"[..])
        .unwrap();
    let s = v
        .create_share(
            &ctx,
            &file,
            ShareOptions {
                expires_in: 60 * DAY,
                ..Default::default()
            },
        )
        .unwrap();
    let template = v.meta().share(&s.id).unwrap().unwrap();
    let make = |i: u64, tag: u8, expires: Timestamp| {
        let mut s = template.clone();
        let mut id = [tag; 16];
        id[..8].copy_from_slice(&i.to_be_bytes());
        s.id = ShareId(id);
        s.expires = expires;
        s
    };
    let t = Instant::now();
    for b in 0..live / 2000 {
        let ops = (b * 2000..(b + 1) * 2000)
            .map(|i| Op::PutShare(make(i, 0xAA, T0.plus(DAY + i % (30 * DAY)))))
            .collect();
        v.meta().commit(&[], ops, Durability::Buffered).unwrap();
    }
    v.flush().unwrap();
    eprintln!(
        "sweep bench: {live} live shares inserted in {:?} (not measured)",
        t.elapsed()
    );
    const EXPIRED: u64 = 1000;
    let mut round = 0u64;
    let mut g = c.benchmark_group("sweep");
    g.throughput(Throughput::Elements(EXPIRED));
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(format!("1000_expired_among_{live}_live"), |b| {
        b.iter_batched(
            || {
                // Fresh expired shares, all before the sweep instant of this round.
                round += 1;
                let ops = (0..EXPIRED)
                    .map(|i| {
                        Op::PutShare(make(
                            round * EXPIRED + i,
                            0xEE,
                            Timestamp(T0.0 - 10_000 + i),
                        ))
                    })
                    .collect();
                v.meta().commit(&[], ops, Durability::Buffered).unwrap();
            },
            |()| {
                let r = v.sweep(T0).unwrap();
                assert_eq!(r.visited, EXPIRED);
                r
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, access, sweep);
criterion_main!(benches);
