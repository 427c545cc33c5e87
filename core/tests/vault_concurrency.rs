//! Exact counting and revocation under concurrency (real threads, real sled).

mod vault_common;

use std::sync::Barrier;

use kinko_core::vault::{
    AccessDurability, AccessKind, KeyRing, MasterKey, Metadata, ShareOptions, Vault,
};
use vault_common::*;

fn upload(env: &Env) -> kinko_core::vault::FileId {
    env.vault
        .upload(
            &env.member,
            &Metadata::default(),
            None,
            &mut &b"contended"[..],
        )
        .unwrap()
}

#[test]
fn a_limit_of_3_under_100_concurrent_downloads_yields_exactly_3() {
    for round in 0..3u8 {
        let dir = tempfile::tempdir().unwrap();
        let env = setup(dir.path(), [20 + round; 32]);
        let file = upload(&env);
        let s = env
            .vault
            .create_share(
                &env.member,
                &file,
                ShareOptions {
                    expires_in: DAY,
                    max_downloads: Some(3),
                    ..Default::default()
                },
            )
            .unwrap();
        let barrier = Barrier::new(100);
        let granted: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..100)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        env.vault
                            .access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
                            .is_ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap())
                .filter(|&ok| ok)
                .count()
        });
        assert_eq!(granted, 3, "round {round}");
        assert_eq!(env.vault.meta().share(&s.id).unwrap().unwrap().downloads, 3);
        // The audit log agrees: 3 allowed downloads, 97 refused, and the chain verifies.
        let mut out = Vec::new();
        env.vault.export_audit(&env.admin, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let downloads: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("\"action\":\"share.download\""))
            .collect();
        assert_eq!(downloads.len(), 100);
        assert_eq!(
            downloads
                .iter()
                .filter(|l| l.contains("\"outcome\":\"allowed\""))
                .count(),
            3
        );
        assert!(env.vault.verify_audit(&env.admin).is_ok());
    }
}

#[test]
fn revocation_racing_downloads_is_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(KeyRing::new(MasterKey::from_bytes([30; 32])));
    cfg.access_durability = AccessDurability::Buffered;
    let (vault, _) = Vault::open(dir.path(), cfg, T0).unwrap();
    let (admin_id, _) = vault.bootstrap_admin("root", DAY, T0).unwrap();
    let admin = ctx(admin_id, kinko_core::vault::Role::Admin, T0);
    let file = vault
        .upload(&admin, &Metadata::default(), None, &mut &b"x"[..])
        .unwrap();
    let s = vault
        .create_share(
            &admin,
            &file,
            ShareOptions {
                expires_in: DAY,
                ..Default::default()
            },
        )
        .unwrap();
    let revoked = std::sync::atomic::AtomicBool::new(false);
    let barrier = Barrier::new(9);
    let after_revoke_allowed = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..150 {
                    let seen_revoked = revoked.load(std::sync::atomic::Ordering::SeqCst);
                    let ok = vault
                        .access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
                        .is_ok();
                    if ok && seen_revoked {
                        after_revoke_allowed.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
        scope.spawn(|| {
            barrier.wait();
            std::thread::yield_now();
            vault.revoke_share(&admin, &s.id).unwrap();
            revoked.store(true, std::sync::atomic::Ordering::SeqCst);
        });
    });
    // Once revoke_share returned, no download was allowed.
    assert_eq!(
        after_revoke_allowed.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    // In the audit chain, no allowed download follows the revocation record.
    let mut out = Vec::new();
    vault.export_audit(&admin, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let revoke_at = lines
        .iter()
        .position(|l| l.contains("\"action\":\"share.revoke\""))
        .unwrap();
    assert!(
        !lines[revoke_at..]
            .iter()
            .any(|l| l.contains("\"action\":\"share.download\"")
                && l.contains("\"outcome\":\"allowed\""))
    );
    let counted = vault.meta().share(&s.id).unwrap().unwrap().downloads as usize;
    let allowed = lines
        .iter()
        .filter(|l| {
            l.contains("\"action\":\"share.download\"") && l.contains("\"outcome\":\"allowed\"")
        })
        .count();
    assert_eq!(
        counted, allowed,
        "every counted download has exactly one audit record"
    );
    assert!(vault.verify_audit(&admin).is_ok());
}
