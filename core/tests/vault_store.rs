//! The vault over its store seam: what a failing store leaves behind, and what the stores
//! show of themselves.

mod vault_common;

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::Ordering::SeqCst;

use kinko_core::vault::{FileId, FileState, KeyRing, Metadata, StoreError, Vault, VaultError};
use vault_common::hooked::HookedStore;
use vault_common::*;

const KEK: [u8; 32] = [41; 32];
const PAYLOAD: &[u8] = b"the payload of an upload whose flush failed";

fn hooked_env(dir: &std::path::Path) -> (Env, std::sync::Arc<vault_common::hooked::Hooks>) {
    let (meta, hooks) = HookedStore::open(&dir.join("meta"));
    let env = setup_over(dir, config(KeyRing::new(kek_from(KEK))), Box::new(meta));
    (env, hooks)
}

fn upload(env: &Env) -> Result<FileId, VaultError> {
    env.vault
        .upload(&env.member, &Metadata::default(), None, &mut &PAYLOAD[..])
}

/// Every active file record has its blob and every blob its record.
fn assert_records_match_blobs(vault: &Vault) {
    let records: BTreeSet<FileId> = vault
        .meta()
        .files_after(None, usize::MAX)
        .unwrap()
        .into_iter()
        .filter(|f| f.state == FileState::Active)
        .map(|f| f.id)
        .collect();
    let blobs: BTreeSet<FileId> = vault.blobs().list().unwrap().into_iter().collect();
    assert_eq!(records, blobs, "file records and blobs differ");
}

fn read_file(env: &Env, vault: &Vault, id: &FileId) -> Vec<u8> {
    let mut out = Vec::new();
    vault
        .open_file(&env.member, id)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// The upload's record commit is applied, then its flush fails. The upload reports the
/// failure, as "applied, not durable", and keeps the blob: the record is never without it,
/// neither now nor after a restart (whose repair would otherwise report it missing).
#[test]
fn an_upload_whose_flush_fails_keeps_the_blob_of_its_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path());
    hooks.failing_flushes.store(1, SeqCst);

    let err = upload(&env).unwrap_err();
    assert_eq!(
        hooks.failed_flushes.load(SeqCst),
        1,
        "the flush was the failure"
    );
    assert!(
        matches!(err, VaultError::Store(StoreError::NotDurable(_))),
        "{err:?}"
    );
    assert!(err.was_applied());

    let files = env.vault.meta().files_of_user(&env.member_id).unwrap();
    assert_eq!(files.len(), 1, "the record was committed");
    let id = files[0];
    assert!(
        env.vault.blobs().exists(&id).unwrap(),
        "a committed file record lost its blob"
    );
    assert_records_match_blobs(&env.vault);
    assert_eq!(read_file(&env, &env.vault, &id), PAYLOAD);

    // A clean restart: the record reaches the disk; repair finds nothing to fix.
    let member = env.member.clone();
    drop(env);
    let (vault, report) = Vault::open(dir.path(), config(KeyRing::new(kek_from(KEK))), T0).unwrap();
    assert!(report.missing_blobs.is_empty(), "{report:?}");
    assert!(report.orphan_blobs_removed.is_empty(), "{report:?}");
    assert_records_match_blobs(&vault);
    let mut out = Vec::new();
    vault
        .open_file(&member, &id)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, PAYLOAD);
}

/// A commit that fails outright (nothing applied) still removes the upload's blob: keeping
/// the blob is only for a record that exists.
#[test]
fn an_upload_whose_commit_fails_leaves_neither_record_nor_blob() {
    let dir = tempfile::tempdir().unwrap();
    let (env, hooks) = hooked_env(dir.path());
    hooks.failing_commits.store(1, SeqCst);

    let err = upload(&env).unwrap_err();
    assert!(!err.was_applied(), "{err:?}");
    assert!(
        env.vault
            .meta()
            .files_of_user(&env.member_id)
            .unwrap()
            .is_empty()
    );
    assert!(env.vault.blobs().list().unwrap().is_empty());

    // The store works again: the next upload succeeds.
    let id = upload(&env).unwrap();
    assert_records_match_blobs(&env.vault);
    assert_eq!(read_file(&env, &env.vault, &id), PAYLOAD);
}

/// The bytes of `b` as Rust's `Debug` of a byte slice prints them, minus the brackets
/// (how sled's own `Debug` would show a key or value containing them).
fn as_debug_bytes(b: &[u8]) -> String {
    let s = format!("{b:?}");
    s[1..s.len() - 1].to_owned()
}

/// A vault's `Debug` shows no stored record: sled's own `Debug` prints every key and value
/// (the wrapped seed, file headers, hashes, the audit log).
#[test]
fn a_vaults_debug_shows_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), KEK);
    let file = upload(&env).unwrap();
    let share = day_share(&env.vault, &env.member, &file, None);
    let header = env.vault.meta().file(&file).unwrap().unwrap().header;
    let seed = env.vault.meta().setting("seed").unwrap().unwrap();

    let shown = format!("{:?}", env.vault);
    let pretty = format!("{:#?}", env.vault);
    for text in [&shown, &pretty] {
        assert!(text.len() < 500, "{} chars: {text}", text.len());
        for (what, bytes) in [
            ("file id", &file.0[..]),
            ("share id", &share.id.0[..]),
            ("member id", &env.member_id.0[..]),
            ("file header", &header[..16]),
            ("wrapped seed", &seed[..16]),
        ] {
            assert!(!text.contains(&as_debug_bytes(bytes)), "{what} in {text}");
        }
        for id in [
            file.to_string(),
            share.id.to_string(),
            env.member_id.to_string(),
        ] {
            assert!(!text.contains(&id), "{id} in {text}");
        }
        assert!(!text.contains("alice"), "a user name in {text}");
    }
    // What it does show: the data directory.
    assert!(shown.contains("meta"), "{shown}");
}

/// The stores' directories are private to the vault's user, a new vault's and (tightened at
/// open) an existing one's: the audit log names users and client addresses.
#[cfg(unix)]
#[test]
fn the_store_directories_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let (meta, blobs) = kinko_core::vault::data_paths(&dir.path().join("new"));
    drop(
        Vault::open(
            &dir.path().join("new"),
            config(KeyRing::new(kek_from(KEK))),
            T0,
        )
        .unwrap(),
    );
    assert_eq!((mode(&meta), mode(&blobs)), (0o700, 0o700));

    let old = dir.path().join("old");
    let (meta, blobs) = kinko_core::vault::data_paths(&old);
    for d in [&meta, &blobs] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    drop(Vault::open(&old, config(KeyRing::new(kek_from(KEK))), T0).unwrap());
    assert_eq!((mode(&meta), mode(&blobs)), (0o700, 0o700));
}
