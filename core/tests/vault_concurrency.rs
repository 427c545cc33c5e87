//! Exact counting and revocation under concurrency (real threads, real sled).

mod vault_common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Barrier};

use kinko_core::vault::store::Op;
use kinko_core::vault::{
    AccessDurability, AccessError, AccessKind, ApiToken, Durability, FileId, FileState, KeyRing,
    MasterKey, Metadata, NewShare, StoreError, TokenId, UserId, Vault, VaultError,
};
use secrecy::{ExposeSecret, SecretString};
use vault_common::hooked::{HookedStore, Hooks, is_shred};
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
        let s = day_share(&env.vault, &env.member, &file, Some(3));
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
    let s = day_share(&vault, &admin, &file, None);
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

/// A file with a share, in a vault over a [`HookedStore`] that counts the commits that
/// crypto-shred a file (the attempts of a delete's first step).
fn busy_share_env(
    dir: &std::path::Path,
    kek: u8,
) -> (Env, FileId, NewShare, Arc<Hooks>, Arc<AtomicUsize>) {
    let (meta, hooks) = HookedStore::open(&dir.join("meta"));
    let mut cfg = config(KeyRing::new(MasterKey::from_bytes([kek; 32])));
    cfg.access_durability = AccessDurability::Buffered;
    let env = setup_over(dir, cfg, Box::new(meta));
    let file = upload(&env);
    let share = day_share(&env.vault, &env.member, &file, None);
    let shred_attempts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&shred_attempts);
    hooks.before_commit(Box::new(move |_, ops| {
        if is_shred(ops) {
            counter.fetch_add(1, SeqCst);
        }
    }));
    (env, file, share, hooks, shred_attempts)
}

/// After a delete: the file, its blob and its shares are gone, and the link is refused.
fn assert_deleted(env: &Env, file: &FileId, share: &NewShare) {
    let v = &env.vault;
    assert!(v.meta().file(file).unwrap().is_none(), "file record left");
    assert!(!v.blobs().exists(file).unwrap(), "blob left");
    assert!(v.meta().share(&share.id).unwrap().is_none(), "share left");
    assert!(v.meta().shares_of_file(file).unwrap().is_empty());
    assert!(v.meta().shares_of_user(&env.member_id).unwrap().is_empty());
    assert!(matches!(
        v.access(&share.id, &share.secret, None, AccessKind::Download, "", T0),
        Err(AccessError::Denied)
    ));
}

/// Downloads in a loop on several threads (each one bumps the share's version) while the
/// owner deletes the file. The delete's shred commit does not depend on share versions, so
/// it goes through at its first attempt (nothing else changes the file record); no
/// download is allowed once the delete returned, and none is recorded after the shred.
#[test]
fn deleting_a_file_under_a_stream_of_downloads_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let (env, file, share, _hooks, shred_attempts) = busy_share_env(dir.path(), 50);
    let v = &env.vault;
    let downloads = AtomicUsize::new(0);
    let deleted = AtomicBool::new(false);
    let allowed_after_delete = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                // Keep downloading until a few attempts after the delete returned.
                let mut after = 0;
                while after < 20 {
                    let seen_deleted = deleted.load(SeqCst);
                    let ok = v
                        .access(&share.id, &share.secret, None, AccessKind::Download, "", T0)
                        .is_ok();
                    downloads.fetch_add(usize::from(ok), SeqCst);
                    if seen_deleted {
                        after += 1;
                        allowed_after_delete.fetch_add(usize::from(ok), SeqCst);
                    }
                }
            });
        }
        scope.spawn(|| {
            // Delete while the downloads are in full flow.
            while downloads.load(SeqCst) < 50 {
                std::thread::yield_now();
            }
            let result = v.delete_file(&env.member, &file);
            deleted.store(true, SeqCst); // also on failure, so the downloaders stop
            result.unwrap();
        });
    });
    assert_eq!(
        shred_attempts.load(SeqCst),
        1,
        "the shred commit was retried"
    );
    assert_eq!(allowed_after_delete.load(SeqCst), 0);
    assert_deleted(&env, &file, &share);

    // In the audit chain no allowed download follows the shred.
    let mut out = Vec::new();
    v.export_audit(&env.admin, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let shred_at = lines
        .iter()
        .position(|l| l.contains("\"action\":\"file.delete\"") && l.contains("key shredded"))
        .unwrap();
    assert!(
        lines[..shred_at]
            .iter()
            .any(|l| l.contains("\"action\":\"share.download\"")
                && l.contains("\"outcome\":\"allowed\"")),
        "downloads ran before the delete"
    );
    assert!(
        !lines[shred_at..]
            .iter()
            .any(|l| l.contains("\"action\":\"share.download\"")
                && l.contains("\"outcome\":\"allowed\"")),
        "a download was allowed after the shred"
    );
    assert!(v.verify_audit(&env.admin).is_ok());
}

/// The worst interleaving, staged: a download's counter update lands between the delete's
/// reads and its shred commit, before every attempt (the store bumps the share's version
/// just before the shred commit applies). The delete still finishes at its first attempt.
/// (With a share-version guard it would retry once per bump: forever under a steady stream.)
#[test]
fn a_share_updated_before_every_shred_attempt_does_not_stall_the_delete() {
    const BUMPS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let (env, file, share, hooks, shred_attempts) = busy_share_env(dir.path(), 51);
    let (share_id, attempts) = (share.id, Arc::clone(&shred_attempts));
    hooks.before_commit(Box::new(move |store, ops| {
        if !is_shred(ops) || attempts.fetch_add(1, SeqCst) >= BUMPS {
            return;
        }
        // What a counted download's commit does to the share.
        let mut s = store.share(&share_id).unwrap().unwrap();
        s.downloads += 1;
        s.version += 1;
        store
            .commit(&[], vec![Op::UpdateShare(s)], Durability::Buffered)
            .unwrap();
    }));
    env.vault.delete_file(&env.member, &file).unwrap();
    assert_eq!(
        shred_attempts.load(SeqCst),
        1,
        "the shred commit was retried"
    );
    assert_deleted(&env, &file, &share);
}

/// Commits what `disable_user` writes for the user record, straight to the store (from a
/// hook, so it lands between a vault operation's reads and its commit).
fn disable_behind_the_back(store: &dyn kinko_core::vault::MetaStore, user: &UserId) {
    let mut u = store.user(user).unwrap().unwrap();
    u.disabled = true;
    u.version += 1;
    store
        .commit(&[], vec![Op::PutUser(u)], Durability::Sync)
        .unwrap();
}

/// A vault over a [`HookedStore`], with an admin and a member.
fn hooked_env(dir: &std::path::Path, kek: u8) -> (Env, Arc<Hooks>) {
    let (meta, hooks) = HookedStore::open(&dir.join("meta"));
    let env = setup_over(
        dir,
        config(KeyRing::new(kek_from([kek; 32]))),
        Box::new(meta),
    );
    (env, hooks)
}

/// A share created while its owner is being disabled, staged: the disable commits between
/// the share's reads and its commit. The share must not survive the disable (it would be
/// live again after `enable_user`): its commit fails on the owner's version, and a retry is
/// refused because the owner is disabled.
#[test]
fn a_share_created_during_its_owners_disable_does_not_survive_it() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 51);
    let file = upload(&env);
    let member = env.member_id;
    // What `disable_user` commits for the user record, landing first.
    hooks.stage_once(
        |op| matches!(op, Op::PutShare(_)),
        move |store| disable_behind_the_back(store, &member),
    );
    let raced = env
        .vault
        .create_share(&env.member, &file, day_options(None));
    // The commit fails on the owner's version; the owner, disabled, is also the caller, so
    // the failure is reported as the caller being gone.
    assert!(
        matches!(
            raced,
            Err(VaultError::Store(StoreError::Conflict) | VaultError::Unauthenticated)
        ),
        "{raced:?}"
    );
    assert!(env.vault.meta().shares_of_user(&member).unwrap().is_empty());
    // Asked again, with the owner now disabled: refused, by the admin too.
    for who in [&env.member, &env.admin] {
        let again = env.vault.create_share(who, &file, day_options(None));
        assert!(matches!(again, Err(VaultError::Invalid(_))), "{again:?}");
    }
    assert!(env.vault.meta().shares_of_user(&member).unwrap().is_empty());
}

/// Concurrent bootstraps of an empty vault (say two `kinko serve` starts racing on a fresh
/// data dir, or a retried first call) make exactly one admin, and every other one is told an
/// admin exists.
#[test]
fn concurrent_bootstraps_make_one_admin() {
    for round in 0..20u8 {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) =
            Vault::open(dir.path(), config(KeyRing::new(kek_from([round; 32]))), T0).unwrap();
        let barrier = Barrier::new(4);
        let made: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|i| {
                    let (vault, barrier) = (&vault, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        vault.bootstrap_admin(&format!("root{i}"), DAY, T0)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            made.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}"
        );
        assert!(
            made.iter()
                .all(|r| r.is_ok() || matches!(r, Err(VaultError::Exists(_)))),
            "round {round}"
        );
        assert_eq!(vault.meta().users().unwrap().len(), 1, "round {round}");
    }
}

/// The other order: the share is created between the disable's reads and its commit. The
/// disable revokes the shares the user has when its commit applies, so this one too.
#[test]
fn a_share_created_just_before_its_owners_disable_commits_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 52);
    let file = upload(&env);
    stage_a_late_share(&env, &hooks, &file, 0x1a, |op| {
        matches!(op, Op::RevokeSharesOfUser(..))
    });
    env.vault.disable_user(&env.admin, &env.member_id).unwrap();
    let shares = env.vault.meta().shares_of_user(&env.member_id).unwrap();
    assert_two_revoked(&env, shares, "the disable");
}

/// Two admins disabling each other at once, staged: the other disable commits between this
/// one's reads and its commit. This one must fail its guard on the other admin and, asked
/// again, be refused: one admin stays enabled.
#[test]
fn two_admins_disabling_each_other_leave_one_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 53);
    let root = env.admin.principal.user;
    let second = env
        .vault
        .create_user(&env.admin, "second", kinko_core::vault::Role::Admin)
        .unwrap();
    // What the other admin's disable commits for its target (this one's caller).
    hooks.stage_once(
        |op| matches!(op, Op::RevokeSharesOfUser(..)),
        move |store| disable_behind_the_back(store, &root),
    );
    let raced = env.vault.disable_user(&env.admin, &second);
    // Refused: as the last admin's disable, or because its caller is now disabled.
    assert!(
        matches!(
            raced,
            Err(VaultError::Invalid(_) | VaultError::Unauthenticated)
        ),
        "{raced:?}"
    );
    let enabled: Vec<_> = env
        .vault
        .meta()
        .users()
        .unwrap()
        .into_iter()
        .filter(|u| u.role == kinko_core::vault::Role::Admin && !u.disabled)
        .map(|u| u.id)
        .collect();
    assert_eq!(enabled, vec![second]);
}

/// A share created while every share of its file is being revoked, staged: the share commits
/// between the revocation's listing and its commit. "Revoke every share of the file" must
/// take the shares the file has when it commits, or the new share outlives a revocation
/// that the audit log records after its creation.
#[test]
fn a_share_created_just_before_its_files_revocation_commits_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 54);
    let file = upload(&env);
    stage_a_late_share(&env, &hooks, &file, 0x2b, |op| {
        matches!(op, Op::RevokeShare(..) | Op::RevokeSharesOfFile(..))
    });
    env.vault.revoke_file_shares(&env.member, &file).unwrap();
    let shares = env.vault.meta().shares_of_file(&file).unwrap();
    assert_two_revoked(&env, shares, "the revocation");
}

/// Shares `file` (the member's) once, and stages a second share of it, what `create_share`
/// commits, to land just before the first commit that `trigger` matches.
fn stage_a_late_share(env: &Env, hooks: &Hooks, file: &FileId, late: u8, trigger: fn(&Op) -> bool) {
    let listed = day_share(&env.vault, &env.member, file, None);
    let template = env.vault.meta().share(&listed.id).unwrap().unwrap();
    let late = kinko_core::vault::ShareId([late; 16]);
    hooks.stage_once(trigger, move |store| {
        let mut s = template.clone();
        s.id = late;
        store
            .commit(&[], vec![Op::PutShare(s)], Durability::Sync)
            .unwrap();
    });
}

/// Both shares (the listed one and the late one) exist and are revoked after `what`.
fn assert_two_revoked(env: &Env, shares: Vec<kinko_core::vault::ShareId>, what: &str) {
    assert_eq!(shares.len(), 2);
    for id in shares {
        let s = env.vault.meta().share(&id).unwrap().unwrap();
        assert!(s.revoked.is_some(), "share {id} survived {what}");
    }
}

/// `who` acting through a fresh API token of its own (as a server request does), and the
/// token's id.
fn through_a_token(env: &Env, who: &kinko_core::vault::Ctx) -> (kinko_core::vault::Ctx, TokenId) {
    let token = env
        .vault
        .issue_token(&env.admin, &who.principal.user, "device", DAY)
        .unwrap();
    let parsed = ApiToken::parse(token.expose_secret().expose_secret()).unwrap();
    let principal = env.vault.authenticate(&parsed, "", T0).unwrap();
    let mut c = who.clone();
    c.principal = principal;
    (c, parsed.id())
}

/// Deletes an API token straight in the store (what `revoke_token` commits).
fn revoke_behind_the_back(store: &dyn kinko_core::vault::MetaStore, token: &TokenId) {
    let t = store.token(token).unwrap().unwrap();
    store
        .commit(&[], vec![Op::DeleteToken(t)], Durability::Sync)
        .unwrap();
}

/// A request authenticated with a token that is revoked before the request commits (a lost
/// device's token, revoked while its share request hashed the password, say), staged: the
/// revocation lands between the share's reads and its commit. No share may be created by a
/// token after its revocation returned; asked again, the token is refused.
#[test]
fn a_share_requested_with_a_token_revoked_meanwhile_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 55);
    let file = upload(&env);
    let (member, token) = through_a_token(&env, &env.member);
    hooks.stage_once(
        |op| matches!(op, Op::PutShare(_)),
        move |store| revoke_behind_the_back(store, &token),
    );
    let raced = env.vault.create_share(&member, &file, day_options(None));
    assert!(raced.is_err(), "{raced:?}");
    assert!(env.vault.meta().shares_of_file(&file).unwrap().is_empty());
    let again = env.vault.create_share(&member, &file, day_options(None));
    assert!(
        matches!(again, Err(VaultError::Unauthenticated)),
        "{again:?}"
    );
    assert!(env.vault.meta().shares_of_file(&file).unwrap().is_empty());
}

/// The same for an admin's token issuing a new token: a revoked admin token must not mint a
/// working credential after its revocation.
#[test]
fn a_token_issued_through_a_token_revoked_meanwhile_is_not_issued() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 56);
    let (admin, token) = through_a_token(&env, &env.admin);
    let before = env.vault.meta().tokens_of(&env.member_id).unwrap().len();
    hooks.stage_once(
        |op| matches!(op, Op::PutToken(_)),
        move |store| revoke_behind_the_back(store, &token),
    );
    let raced = env.vault.issue_token(&admin, &env.member_id, "minted", DAY);
    assert!(raced.is_err(), "{raced:?}");
    let again = env.vault.issue_token(&admin, &env.member_id, "minted", DAY);
    assert!(
        matches!(again, Err(VaultError::Unauthenticated)),
        "{again:?}"
    );
    assert_eq!(
        env.vault.meta().tokens_of(&env.member_id).unwrap().len(),
        before
    );
}

/// A KEK rotation while files are deleted, staged: a file is crypto-shredded between the
/// rotation's listing and its re-wrap commit. The rotation skips it (it has no key left to
/// re-wrap) and finishes, rather than failing on a change it does not care about; the
/// shredded file stays shredded.
#[test]
fn a_file_deleted_during_a_kek_rotation_does_not_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _hooks) = hooked_env(dir.path(), 57);
    let files: Vec<FileId> = (0..3).map(|_| upload(&env)).collect();
    let admin_id = env.admin.principal.user;
    drop(env);
    let (meta, hooks) = HookedStore::open(&dir.path().join("meta"));
    let ring = KeyRing::new(kek_from([58; 32])).with_old(kek_from([57; 32]));
    let blobs = kinko_core::vault::FsBlobStore::open(&dir.path().join("blobs")).unwrap();
    let (vault, _) = Vault::with_stores(Box::new(meta), Box::new(blobs), config(ring), T0).unwrap();
    // What a delete's shred commits, landing before the first re-wrap.
    let staged = AtomicBool::new(false);
    let victim = std::sync::Mutex::new(None);
    let shredded = Arc::new(victim);
    let seen = Arc::clone(&shredded);
    hooks.before_commit(Box::new(move |store, ops| {
        let Some(Op::PutFile(f)) = ops.first() else {
            return;
        };
        if f.state != FileState::Active || staged.swap(true, SeqCst) {
            return;
        }
        let mut tomb = store.file(&f.id).unwrap().unwrap();
        tomb.header = Vec::new();
        tomb.state = FileState::Shredded;
        tomb.version += 1;
        store
            .commit(
                &[],
                vec![Op::DeleteSharesOfFile(f.id), Op::PutFile(tomb)],
                Durability::Sync,
            )
            .unwrap();
        *seen.lock().unwrap() = Some(f.id);
    }));
    let admin = ctx(admin_id, kinko_core::vault::Role::Admin, T0);
    let report = vault.rotate_kek(&admin).unwrap();
    let victim = shredded.lock().unwrap().expect("a re-wrap was staged");
    assert_eq!(report.rewrapped, 2);
    assert!(report.seed_rewrapped);
    for id in files {
        let f = vault.meta().file(&id).unwrap().unwrap();
        if id == victim {
            assert_eq!(f.state, FileState::Shredded);
            assert!(f.header.is_empty(), "the shredded key came back");
        } else {
            assert_eq!(f.state, FileState::Active);
        }
    }
}

/// Concurrent wrong passwords lock a share after exactly the configured number: that many
/// are told "wrong password", every other one is refused as locked, and the counter and the
/// audit log agree.
#[test]
fn concurrent_wrong_passwords_lock_after_exactly_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [59; 32]);
    let file = upload(&env);
    let mut opts = day_options(None);
    opts.password = Some(SecretString::from("correct horse"));
    let s = env.vault.create_share(&env.member, &file, opts).unwrap();
    let wrong = SecretString::from("wrong");
    let barrier = Barrier::new(40);
    let answers: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    env.vault
                        .access(&s.id, &s.secret, Some(&wrong), AccessKind::Download, "", T0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrongs = answers
        .iter()
        .filter(|a| matches!(a, Err(AccessError::WrongPassword)))
        .count();
    assert_eq!(wrongs, 5, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|a| matches!(a, Err(AccessError::WrongPassword | AccessError::Denied))),
        "{answers:?}"
    );
    let stored = env.vault.meta().share(&s.id).unwrap().unwrap();
    assert_eq!(stored.failed_attempts, 5);
    assert!(stored.locked());
    let mut out = Vec::new();
    env.vault.export_audit(&env.admin, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let count = |reason: &str| {
        text.lines()
            .filter(|l| l.contains("\"action\":\"share.download\"") && l.contains(reason))
            .count()
    };
    assert_eq!(count("\"reason\":\"wrong password\""), 5);
    assert_eq!(
        count("\"reason\":\"share locked after wrong passwords\""),
        35
    );
    assert!(env.vault.verify_audit(&env.admin).is_ok());
}

/// What a delete does to a file, straight in the store and on disk: the shred commit, then
/// the blob's removal.
fn shred_behind_the_back(
    store: &dyn kinko_core::vault::MetaStore,
    file: &FileId,
    blob: &std::path::Path,
) {
    let mut tomb = store.file(file).unwrap().unwrap();
    tomb.header = Vec::new();
    tomb.state = FileState::Shredded;
    tomb.version += 1;
    store
        .commit(
            &[],
            vec![Op::DeleteSharesOfFile(*file), Op::PutFile(tomb)],
            Durability::Sync,
        )
        .unwrap();
    std::fs::remove_file(blob).unwrap();
}

/// A file deleted while it is being read, staged: the delete (shred and blob removal) lands
/// right after the read of the file record, for a partner's download granted just before
/// and for the owner's own read. Either is told the file is gone, as if it had come after
/// the delete, not a store failure (which the server answers with a 500).
#[test]
fn a_file_deleted_while_a_read_opens_it_is_gone_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 60);
    for owner_read in [false, true] {
        let file = upload(&env);
        let s = day_share(&env.vault, &env.member, &file, None);
        let grant = env
            .vault
            .access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
            .unwrap();
        let blob = dir
            .path()
            .join("blobs")
            .join(format!("{:02x}", file.0[0]))
            .join(file.to_string());
        assert!(blob.exists(), "{blob:?}");
        hooks.after_file_read(Box::new(move |store| {
            shred_behind_the_back(store, &file, &blob);
        }));
        let read = if owner_read {
            env.vault.open_file(&env.member, &file).map(drop)
        } else {
            env.vault.download(&grant).map(drop)
        };
        assert!(
            matches!(read, Err(VaultError::NotFound("file"))),
            "owner read {owner_read}: {read:?}"
        );
    }
}

/// Every other admin write through a token revoked meanwhile, staged as above: the revocation
/// lands between the write's reads and its commit. Nothing is written after the revocation
/// returned (no user created, enabled or disabled, no retention set, no freeze); asked
/// again, the token is refused.
#[test]
fn admin_writes_through_a_token_revoked_meanwhile_are_not_applied() {
    use kinko_core::vault::{Ctx, Retention, Role};

    type Write = fn(&Vault, &Ctx, &UserId, &UserId) -> Result<(), VaultError>;
    /// What is written, the store operation to stage the revocation before, and the write.
    type Case = (&'static str, fn(&Op) -> bool, Write);
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path(), 57);
    let other = env
        .vault
        .create_user(&env.admin, "other", Role::Member)
        .unwrap();
    env.vault.disable_user(&env.admin, &env.member_id).unwrap();
    let state = |v: &Vault| {
        let mut users: Vec<(String, bool)> = v
            .meta()
            .users()
            .unwrap()
            .into_iter()
            .map(|u| (u.name, u.disabled))
            .collect();
        users.sort();
        let r = v.retention().unwrap();
        (users, r.default, r.max, v.frozen().unwrap())
    };
    let writes: [Case; 5] = [
        (
            "create",
            |op| matches!(op, Op::PutUser(u) if u.name == "newcomer"),
            |v, c, _, _| v.create_user(c, "newcomer", Role::Member).map(drop),
        ),
        (
            "enable",
            |op| matches!(op, Op::PutUser(u) if !u.disabled),
            |v, c, member, _| v.enable_user(c, member),
        ),
        (
            "disable",
            |op| matches!(op, Op::PutUser(u) if u.disabled),
            |v, c, _, other| v.disable_user(c, other),
        ),
        (
            "retention",
            |op| matches!(op, Op::PutSetting(..)),
            |v, c, _, _| {
                v.set_retention(
                    c,
                    Retention {
                        default: 2 * DAY,
                        max: 3 * DAY,
                    },
                )
            },
        ),
        (
            "freeze",
            |op| matches!(op, Op::PutSetting(..)),
            |v, c, _, _| v.freeze(c),
        ),
    ];
    for (what, trigger, write) in writes {
        let before = state(&env.vault);
        let (admin, token) = through_a_token(&env, &env.admin);
        hooks.stage_once(trigger, move |store| revoke_behind_the_back(store, &token));
        let raced = write(&env.vault, &admin, &env.member_id, &other);
        assert!(raced.is_err(), "{what}: {raced:?}");
        assert_eq!(
            state(&env.vault),
            before,
            "{what}: applied after the revocation"
        );
        let again = write(&env.vault, &admin, &env.member_id, &other);
        assert!(
            matches!(again, Err(VaultError::Unauthenticated)),
            "{what}: {again:?}"
        );
        assert_eq!(state(&env.vault), before, "{what}");
    }
}
