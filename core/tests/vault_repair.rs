//! Startup repair and outside damage: a blob volume missing or partly restored, a metadata
//! store without its seed, a data directory without some fan-out directories. No crash
//! produces these states, so the vault must neither "repair" them by destroying keys or blobs
//! nor silently start over with a new seed.

mod vault_common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use kinko_core::vault::model::{FileRecord, ShareRecord};
use kinko_core::vault::{
    AccessKind, BlobStore, Damage, Download, FileId, FsBlobStore, KeyRing, Metadata, NewShare,
    RepairReport, SledMetaStore, Vault, VaultConfig, VaultError,
};
use vault_common::*;

const KEK: [u8; 32] = [91; 32];

fn cfg() -> VaultConfig {
    config(KeyRing::new(kek_from(KEK)))
}

fn reopen(dir: &Path) -> Result<(Vault, RepairReport), VaultError> {
    Vault::open(dir, cfg(), T0)
}

fn content(i: usize) -> Vec<u8> {
    format!("file number {i} ").repeat(100 + i).into_bytes()
}

/// A vault with three files of the member, each with a link share.
struct Stocked {
    files: Vec<FileId>,
    shares: Vec<NewShare>,
}

fn stock(env: &Env) -> Stocked {
    let mut files = Vec::new();
    let mut shares = Vec::new();
    for i in 0..3 {
        let id = env
            .vault
            .upload(
                &env.member,
                &Metadata::default(),
                None,
                &mut &content(i)[..],
            )
            .unwrap();
        let share = day_share(&env.vault, &env.member, &id, None);
        files.push(id);
        shares.push(share);
    }
    Stocked { files, shares }
}

/// Every file record, and what makes each share work (its file, secret hash and revocation;
/// not its download counter, which the tests' own downloads move).
type Snapshot = (Vec<FileRecord>, Vec<(FileId, [u8; 32], bool)>);

fn snapshot(v: &Vault, s: &Stocked) -> Snapshot {
    let files = v.meta().files_after(None, 1000).unwrap();
    let shares = s
        .shares
        .iter()
        .map(|sh| {
            let r: ShareRecord = v.meta().share(&sh.id).unwrap().expect("share kept");
            (r.file, r.secret_hash, r.revoked.is_some())
        })
        .collect();
    (files, shares)
}

/// A vault stocked with files and shares, then closed: its directory, what it holds, the
/// member who owns it all, and the snapshot of its records to compare a reopened one with.
fn stocked_and_closed() -> (tempfile::TempDir, Stocked, kinko_core::vault::Ctx, Snapshot) {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), KEK);
    let stocked = stock(&env);
    let before = snapshot(&env.vault, &stocked);
    (dir, stocked, env.member.clone(), before)
}

fn blob_path(dir: &Path, id: &FileId) -> PathBuf {
    let hex = id.to_string();
    dir.join("blobs").join(&hex[..2]).join(hex)
}

fn read_file(env_member: &kinko_core::vault::Ctx, v: &Vault, id: &FileId) -> Vec<u8> {
    let mut out = Vec::new();
    v.open_file(env_member, id)
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn download_by_link(v: &Vault, share: &NewShare) -> Vec<u8> {
    let g = v
        .access(&share.id, &share.secret, None, AccessKind::Download, "", T0)
        .unwrap();
    let Download::Plaintext(mut r) = v.download(&g).unwrap() else {
        panic!("expected plaintext");
    };
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// The detail of the newest `vault.open` audit record.
fn last_open_detail(v: &Vault) -> String {
    let (seq, bytes) = v.meta().audit_last().unwrap().unwrap();
    let rec = v.audit_verifier().record(seq, &bytes).unwrap();
    assert_eq!(rec.action, "vault.open");
    rec.detail
}

/// One blob goes missing (a disk fault, a partial restore). Reopening keeps the file's record,
/// header and shares, reports it (in the report and the audit log, at every start until
/// fixed); putting the blob back makes it readable again, and deleting it works while it is
/// missing.
#[test]
fn a_missing_blob_is_reported_not_shredded() {
    let (dir, stocked, member, before) = stocked_and_closed();

    let lost = stocked.files[1];
    let aside = dir.path().join("aside");
    fs::rename(blob_path(dir.path(), &lost), &aside).unwrap();

    for _ in 0..2 {
        let (v, report) = reopen(dir.path()).unwrap();
        assert_eq!(report.missing_blobs, vec![lost], "{report:?}");
        assert!(report.needs_attention());
        assert!(report.orphan_blobs_removed.is_empty(), "{report:?}");
        assert!(report.deletions_finished.is_empty(), "{report:?}");
        assert_eq!(snapshot(&v, &stocked), before, "repair changed records");
        assert!(
            last_open_detail(&v).contains(&format!("missing_blobs=[{lost}]")),
            "{}",
            last_open_detail(&v)
        );
        // The file cannot be read, the others can.
        assert!(matches!(
            v.open_file(&member, &lost),
            Err(VaultError::Store(_))
        ));
        assert_eq!(read_file(&member, &v, &stocked.files[0]), content(0));
        assert_eq!(download_by_link(&v, &stocked.shares[2]), content(2));
    }

    // The blob is put back: everything reads again, by owner and by link.
    fs::rename(&aside, blob_path(dir.path(), &lost)).unwrap();
    {
        let (v, report) = reopen(dir.path()).unwrap();
        assert!(report.is_empty(), "{report:?}");
        assert_eq!(read_file(&member, &v, &lost), content(1));
        assert_eq!(download_by_link(&v, &stocked.shares[1]), content(1));
    }

    // Missing again: its owner can still delete it (the shred tolerates the absent blob).
    fs::remove_file(blob_path(dir.path(), &lost)).unwrap();
    let (v, report) = reopen(dir.path()).unwrap();
    assert_eq!(report.missing_blobs, vec![lost]);
    v.delete_file(&member, &lost).unwrap();
    assert!(v.meta().file(&lost).unwrap().is_none());
    assert!(v.meta().share(&stocked.shares[1].id).unwrap().is_none());
    drop(v);
    let (v, report) = reopen(dir.path()).unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(v.meta().files_after(None, 10).unwrap().len(), 2);
    assert!(v.verify_audit(&ctx_admin(&v)).is_ok());
}

fn ctx_admin(v: &Vault) -> kinko_core::vault::Ctx {
    let root = v.meta().user_by_name("root").unwrap().unwrap();
    ctx(root.id, kinko_core::vault::Role::Admin, T0)
}

/// The blob directory is empty, as an unmounted volume's mount point is: the vault refuses to
/// open and changes nothing; once the blobs are back every file and link works. With
/// `allow_missing_blobs` it opens, reports every file, and still shreds nothing.
#[test]
fn an_empty_blob_directory_refuses_to_open_and_destroys_nothing() {
    let (dir, stocked, member, before) = stocked_and_closed();

    let blobs = dir.path().join("blobs");
    let mounted = dir.path().join("volume");
    fs::rename(&blobs, &mounted).unwrap();
    fs::create_dir(&blobs).unwrap();

    let err = reopen(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::Damaged(Damage::BlobsMissing {
                active: 3,
                blobs: 0
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("mounted"), "{err}");

    // A vault whose blob directory holds only other blobs (another vault's) refuses too,
    // and does not delete them as orphans.
    let stranger = FileId([0xAB; 16]);
    let mut w = FsBlobStore::open(&blobs)
        .unwrap()
        .create(&stranger)
        .unwrap();
    w.write_all(b"someone else's").unwrap();
    w.commit().unwrap();
    let err = reopen(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::Damaged(Damage::BlobsMissing {
                active: 3,
                blobs: 1
            })
        ),
        "{err:?}"
    );
    assert!(blob_path(dir.path(), &stranger).exists());
    fs::remove_file(blob_path(dir.path(), &stranger)).unwrap();

    // Opened anyway on purpose: every file is reported, none shredded.
    {
        let mut c = cfg();
        c.allow_missing_blobs = true;
        let (v, report) = Vault::open(dir.path(), c, T0).unwrap();
        let mut missing = report.missing_blobs.clone();
        missing.sort();
        let mut files = stocked.files.clone();
        files.sort();
        assert_eq!(missing, files);
        assert_eq!(snapshot(&v, &stocked), before);
    }

    // The volume is mounted again: nothing was lost.
    fs::remove_dir_all(&blobs).unwrap();
    fs::rename(&mounted, &blobs).unwrap();
    let (v, report) = reopen(dir.path()).unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(snapshot(&v, &stocked), before);
    for (i, (id, share)) in stocked.files.iter().zip(&stocked.shares).enumerate() {
        assert_eq!(read_file(&member, &v, id), content(i));
        assert_eq!(download_by_link(&v, share), content(i));
    }
}

fn remove_seed(meta: &Path) {
    let t = raw_tree(meta);
    assert!(t.remove(b"cseed").unwrap().is_some(), "the seed was stored");
    t.flush().unwrap();
}

fn has_seed(meta: &Path) -> bool {
    let store = SledMetaStore::open(meta, None).unwrap();
    kinko_core::vault::MetaStore::setting(&store, "seed")
        .unwrap()
        .is_some()
}

/// A store that holds data but lost its seed does not open (a new seed would invalidate every
/// token, link and checkpoint), and writes nothing; a new store creates its seed and keeps it.
#[test]
fn a_store_with_data_but_no_seed_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let meta = dir.path().join("meta");
    let key = {
        let (v, _) = reopen(dir.path()).unwrap();
        assert!(
            v.meta().setting("seed").unwrap().is_some(),
            "a new store has a seed"
        );
        v.audit_public_key()
    };
    let env = setup(dir.path(), KEK);
    assert_eq!(env.vault.audit_public_key(), key, "the seed is kept");
    stock(&env);
    drop(env);

    remove_seed(&meta);
    let err = reopen(dir.path()).unwrap_err();
    assert!(
        matches!(err, VaultError::Damaged(Damage::SeedMissing)),
        "{err:?}"
    );
    assert!(err.to_string().contains("restore"), "{err}");
    assert!(!has_seed(&meta), "a new seed was written");

    // Even with nothing but audit records (every open writes one), the store is not new.
    let dir2 = tempfile::tempdir().unwrap();
    drop(reopen(dir2.path()).unwrap());
    remove_seed(&dir2.path().join("meta"));
    assert!(matches!(
        reopen(dir2.path()).unwrap_err(),
        VaultError::Damaged(Damage::SeedMissing)
    ));
}

/// The metadata directory is lost (or a wrong one is configured) while the blobs remain: a
/// new vault would delete every blob as an orphan at its first start. It refuses instead.
#[test]
fn an_empty_metadata_store_beside_blobs_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), KEK);
    let stocked = stock(&env);
    drop(env);
    fs::rename(dir.path().join("meta"), dir.path().join("meta.lost")).unwrap();

    let err = reopen(dir.path()).unwrap_err();
    assert!(
        matches!(
            err,
            VaultError::Damaged(Damage::MetadataMissing { blobs: 3 })
        ),
        "{err:?}"
    );
    for id in &stocked.files {
        assert!(blob_path(dir.path(), id).exists(), "blob {id} deleted");
    }
    assert!(!has_seed(&dir.path().join("meta")), "a seed was created");
}

fn fan_dirs(blobs: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".tmp")
        .collect();
    v.sort();
    v
}

fn all_fan_names() -> Vec<String> {
    (0..=255u8).map(|b| format!("{b:02x}")).collect()
}

/// Opening the blob store creates all 256 fan-out directories, so publishing never has to
/// create one (a directory created by one writer and published into by another before its
/// entry is durable would lose the second writer's blob in a crash). Publishing does not
/// create a missing one; a data directory lacking some (written before this) still opens and
/// gets them back.
#[test]
fn fan_out_directories_exist_from_open_and_publishing_never_creates_one() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    let store = FsBlobStore::open(&blobs).unwrap();
    assert_eq!(fan_dirs(&blobs), all_fan_names());

    // Removed behind the store's back: the publish fails instead of creating it.
    fs::remove_dir(blobs.join("5a")).unwrap();
    let id = FileId([0x5A; 16]);
    let mut w = store.create(&id).unwrap();
    w.write_all(b"payload").unwrap();
    assert!(w.commit().is_err(), "publishing created a directory");
    assert!(!blobs.join("5a").exists());
    drop(store);

    // A vault's data directory missing some fan-out directories opens and recreates them.
    let data = dir.path().join("data");
    let env = setup(&data, KEK);
    let stocked = stock(&env);
    let member = env.member.clone();
    drop(env);
    let used: Vec<String> = stocked
        .files
        .iter()
        .map(|f| f.to_string()[..2].to_owned())
        .collect();
    let mut removed = 0;
    for name in all_fan_names() {
        if !used.contains(&name) && removed < 40 {
            fs::remove_dir(data.join("blobs").join(&name)).unwrap();
            removed += 1;
        }
    }
    let (v, report) = reopen(&data).unwrap();
    assert!(report.is_empty(), "{report:?}");
    assert_eq!(fan_dirs(&data.join("blobs")), all_fan_names());
    let files: BTreeMap<FileId, usize> = stocked
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (*f, i))
        .collect();
    for (id, i) in files {
        assert_eq!(read_file(&member, &v, &id), content(i));
    }
    // New uploads land in the recreated directories too.
    for i in 0..20 {
        let id = v
            .upload(&member, &Metadata::default(), None, &mut &content(i)[..])
            .unwrap();
        assert_eq!(read_file(&member, &v, &id), content(i));
    }
}
