//! Shared helpers for the vault tests: a real sled store and a real filesystem in a temp dir.
#![allow(dead_code, unreachable_pub)]

pub mod hooked;

use std::path::Path;

use kinko_core::vault::{
    AccessDurability, Ctx, FileId, FsBlobStore, KeyRing, MasterKey, MetaStore, NewShare,
    PasswordCost, Principal, Role, ShareOptions, Timestamp, UserId, Vault, VaultConfig,
};

pub const T0: Timestamp = Timestamp(1_800_000_000);
pub const DAY: u64 = 86_400;

/// A config with cheap Argon2 (tests hash many passwords) and the given key(s).
pub fn config(keys: KeyRing) -> VaultConfig {
    let mut c = VaultConfig::new(keys);
    c.password_cost = PasswordCost {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    };
    c.access_durability = AccessDurability::SyncCounted;
    c
}

/// The raw sled tree of the store in `meta`, for tests that damage records on purpose. Opened
/// with the store's lock retry: a just-dropped vault's writer threads can hold the lock briefly.
pub fn raw_tree(meta: &Path) -> sled::Tree {
    kinko_core::vault::SledMetaStore::open_raw_tree(meta).unwrap()
}

/// Rewrites every audit bundle of the store in `meta` (key `A`: records as `seq` u64 BE, `len`
/// u32 LE, record) as one `a` key per record, the store's other form, so that a test can damage
/// single records. The store reads both forms alike.
pub fn unbundle_audit(meta: &Path) -> usize {
    let t = raw_tree(meta);
    let mut moved = 0;
    for kv in t.scan_prefix(b"A") {
        let (k, b) = kv.unwrap();
        let mut rest: &[u8] = &b;
        while !rest.is_empty() {
            let seq = &rest[..8];
            let len = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
            let mut key = vec![b'a'];
            key.extend_from_slice(seq);
            assert!(t.insert(key, &rest[12..12 + len]).unwrap().is_none());
            rest = &rest[12 + len..];
            moved += 1;
        }
        t.remove(k).unwrap();
    }
    t.flush().unwrap();
    moved
}

pub fn kek_from(bytes: [u8; 32]) -> MasterKey {
    MasterKey::from_bytes(bytes)
}

pub struct Env {
    pub vault: Vault,
    pub admin: Ctx,
    pub member: Ctx,
    pub member_id: UserId,
}

pub fn ctx(user: UserId, role: Role, now: Timestamp) -> Ctx {
    Ctx {
        principal: Principal {
            user,
            role,
            token: None,
        },
        client: "127.0.0.1".into(),
        now,
    }
}

/// Opens a vault in `dir` with an admin and a member.
pub fn setup(dir: &Path, kek: [u8; 32]) -> Env {
    let (vault, _) = Vault::open(dir, config(KeyRing::new(kek_from(kek))), T0).unwrap();
    with_users(vault)
}

/// Like [`setup`], with `cfg` and over the metadata store `meta` (blobs in `dir/blobs`, the
/// layout of [`Vault::open`], so the directory can be reopened with it).
pub fn setup_over(dir: &Path, cfg: VaultConfig, meta: Box<dyn MetaStore>) -> Env {
    let blobs = FsBlobStore::open(&dir.join("blobs")).unwrap();
    let (vault, _) = Vault::with_stores(meta, Box::new(blobs), cfg, T0).unwrap();
    with_users(vault)
}

/// Adds an admin and a member to an empty vault.
fn with_users(vault: Vault) -> Env {
    let (admin_id, _) = vault.bootstrap_admin("root", 30 * DAY, T0).unwrap();
    let admin = ctx(admin_id, Role::Admin, T0);
    let member_id = vault.create_user(&admin, "alice", Role::Member).unwrap();
    let member = ctx(member_id, Role::Member, T0);
    Env {
        vault,
        admin,
        member,
        member_id,
    }
}

/// A share of `file` by `who` that expires in a day, with at most `max_downloads`.
pub fn day_share(vault: &Vault, who: &Ctx, file: &FileId, max_downloads: Option<u32>) -> NewShare {
    vault
        .create_share(who, file, day_options(max_downloads))
        .unwrap()
}

/// The options of [`day_share`].
pub fn day_options(max_downloads: Option<u32>) -> ShareOptions {
    ShareOptions {
        expires_in: DAY,
        max_downloads,
        ..Default::default()
    }
}

pub fn at(c: &Ctx, now: Timestamp) -> Ctx {
    let mut c = c.clone();
    c.now = now;
    c
}
