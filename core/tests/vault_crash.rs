//! Crash safety: a child process performs uploads, shares, downloads, revocations, deletions
//! and sweeps against a real vault and is killed with SIGKILL at random points; after every
//! kill the vault is reopened (startup repair runs) and checked.
//!
//! The child is this same test binary, re-run with `KINKO_CRASH_CHILD` set, executing the
//! `crash_child` test. It appends to a journal *after* each operation returns, so every
//! journaled fact was committed; a `-` line is written *before* an operation whose outcome
//! the check must not assume (a revocation or deletion that may or may not have happened).

mod vault_common;

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kinko_core::vault::{
    AccessDurability, AccessKind, FileId, FileState, KeyRing, LinkSecret, MasterKey, Metadata,
    Role, ShareId, ShareOptions, Timestamp, Vault,
};
use secrecy::ExposeSecret;
use vault_common::*;

const KEK: [u8; 32] = [77; 32];
const KILLS: u64 = 110;
const OPS_PER_RUN: u64 = 900;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn open(dir: &Path, now: Timestamp) -> (Vault, kinko_core::vault::RepairReport) {
    let mut cfg = config(KeyRing::new(MasterKey::from_bytes(KEK)));
    cfg.access_durability = AccessDurability::SyncCounted;
    cfg.checkpoint_every = 50;
    Vault::open(dir, cfg, now).unwrap()
}

fn run_base(run: u64) -> Timestamp {
    T0.plus(run * (OPS_PER_RUN + 100))
}

fn content(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(4) {
        0 => 0,
        1 => rng.below(100) as usize,
        2 => rng.below(70_000) as usize,
        _ => rng.below(150_000) as usize,
    };
    let seed = rng.next();
    (0..len)
        .map(|i| (seed.wrapping_add(i as u64 * 31) >> 3) as u8)
        .collect()
}

/// The child: loops over random operations until killed.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("KINKO_CRASH_CHILD") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let run: u64 = std::env::var("KINKO_CRASH_RUN").unwrap().parse().unwrap();
    let base = run_base(run);
    let mut journal = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("journal"))
        .unwrap();
    let mut log = |line: String| journal.write_all(format!("{line}\n").as_bytes()).unwrap();
    let (vault, _) = open(&dir.join("vault"), base);
    let admin = match vault.meta().user_by_name("root").unwrap() {
        Some(u) => u.id,
        None => vault.bootstrap_admin("root", 1000 * DAY, base).unwrap().0,
    };
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (run + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
    // Shares known to this run (id, secret) for downloads.
    let mut shares: Vec<(ShareId, LinkSecret)> = Vec::new();
    for i in 0..OPS_PER_RUN {
        let now = base.plus(i);
        let a = ctx(admin, Role::Admin, now);
        let files: Vec<FileId> = vault
            .meta()
            .files_after(None, 1000)
            .unwrap()
            .into_iter()
            .filter(|f| f.state == FileState::Active)
            .map(|f| f.id)
            .collect();
        match rng.below(100) {
            0..15 => {
                let data = content(&mut rng);
                let id = vault
                    .upload(&a, &Metadata::default(), Some(300 * DAY), &mut &data[..])
                    .unwrap();
                log(format!("F {id} {}", blake3::hash(&data).to_hex()));
            }
            15..40 if !files.is_empty() => {
                let f = files[rng.below(files.len() as u64) as usize];
                let expires_in = 50 + rng.below(3000);
                let max = rng.below(4) as u32;
                let opts = ShareOptions {
                    expires_in,
                    max_downloads: (max > 0).then_some(max),
                    ..Default::default()
                };
                let s = vault.create_share(&a, &f, opts).unwrap();
                log(format!(
                    "S {} {} {f} {}",
                    s.id,
                    s.secret.expose_secret().expose_secret(),
                    s.expires.0
                ));
                shares.push((s.id, s.secret));
            }
            40..70 if !shares.is_empty() => {
                let (id, secret) = &shares[rng.below(shares.len() as u64) as usize];
                if let Ok(g) = vault.access(id, secret, None, AccessKind::Download, "10.0.0.1", now)
                {
                    log(format!("D {id}"));
                    if let Ok(kinko_core::vault::Download::Plaintext(mut r)) = vault.download(&g) {
                        let mut v = Vec::new();
                        // A concurrent delete in this process cannot happen (one thread), so
                        // the read must succeed and authenticate.
                        r.read_to_end(&mut v).unwrap();
                    }
                }
            }
            70..75 if !shares.is_empty() => {
                let (id, _) = &shares[rng.below(shares.len() as u64) as usize];
                log(format!("R- {id}"));
                let _ = vault.revoke_share(&a, id);
                log(format!("R {id}"));
            }
            75..90 if files.len() > 10 => {
                let f = files[rng.below(files.len() as u64) as usize];
                log(format!("X- {f}"));
                vault.delete_file(&a, &f).unwrap();
                log(format!("X {f}"));
            }
            90..100 => {
                vault.sweep(now).unwrap();
            }
            _ => {}
        }
    }
    // Ran out of operations before being killed: idle until the parent kills us.
    std::thread::sleep(Duration::from_secs(3600));
}

#[derive(Default)]
struct Journal {
    files: HashMap<FileId, String>,
    shares: HashMap<ShareId, (String, FileId, u64)>,
    downloads: HashMap<ShareId, u32>,
    revoking: HashSet<ShareId>,
    deleting: HashSet<FileId>,
}

fn read_journal(path: &Path) -> Journal {
    let mut j = Journal::default();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    for line in text.lines() {
        let p: Vec<&str> = line.split(' ').collect();
        // A kill can cut the last line short; only complete lines count.
        match p.as_slice() {
            ["F", id, h] if h.len() == 64 => {
                j.files.insert(id.parse().unwrap(), h.to_string());
            }
            ["S", id, secret, file, exp] if secret.len() == 64 => {
                if let (Ok(exp), Ok(file)) = (exp.parse(), file.parse()) {
                    j.shares
                        .insert(id.parse().unwrap(), (secret.to_string(), file, exp));
                }
            }
            ["D", id] if id.len() == 32 => {
                *j.downloads.entry(id.parse().unwrap()).or_default() += 1
            }
            ["R-", id] if id.len() == 32 => {
                j.revoking.insert(id.parse().unwrap());
            }
            ["X-", id] if id.len() == 32 => {
                j.deleting.insert(id.parse().unwrap());
            }
            _ => {}
        }
    }
    j
}

/// Reopens the vault (running repair) and checks every invariant.
fn check(dir: &Path, now: Timestamp) -> kinko_core::vault::RepairReport {
    let j = read_journal(&dir.join("journal"));
    let (v, report) = open(&dir.join("vault"), now);
    let root = v.meta().user_by_name("root").unwrap();
    let Some(root) = root else { return report };
    let admin = ctx(root.id, Role::Admin, now);

    // No orphans: blobs and active file records match exactly; no tombstone survives repair;
    // no temporary is left.
    let records = v.meta().files_after(None, 100_000).unwrap();
    assert!(
        records.iter().all(|f| f.state == FileState::Active),
        "repair left a tombstone"
    );
    let ids: HashSet<FileId> = records.iter().map(|f| f.id).collect();
    let blobs: HashSet<FileId> = v.blobs().list().unwrap().into_iter().collect();
    assert_eq!(ids, blobs, "file records and blobs differ");
    let tmp = std::fs::read_dir(dir.join("vault/blobs/.tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "temporaries left");

    // Every committed file is intact (unless a deletion of it was started).
    for (id, hash) in &j.files {
        if j.deleting.contains(id) {
            continue;
        }
        let mut data = Vec::new();
        v.open_file(&admin, id)
            .unwrap_or_else(|e| panic!("committed file {id} lost: {e}"))
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(
            blake3::hash(&data).to_hex().as_str(),
            hash,
            "file {id} corrupted"
        );
    }
    // Every share points at an existing, active file.
    for id in ids.iter() {
        for sid in v.meta().shares_of_file(id).unwrap() {
            assert!(v.meta().share(&sid).unwrap().is_some());
        }
    }
    // Every committed share survives, unless it expired, was revoked or its file deleted;
    // and no committed download was given back.
    for (id, (secret, file, exp)) in &j.shares {
        let rec = v.meta().share(id).unwrap();
        if let Some(rec) = &rec {
            assert!(
                ids.contains(&rec.file),
                "share {id} points to a missing file"
            );
            let journaled = j.downloads.get(id).copied().unwrap_or(0);
            assert!(
                rec.downloads >= journaled,
                "share {id}: {journaled} downloads committed, {} stored",
                rec.downloads
            );
            if let Some(m) = rec.max_downloads {
                assert!(rec.downloads <= m);
            }
        }
        if j.revoking.contains(id) || j.deleting.contains(file) || Timestamp(*exp) <= now {
            continue;
        }
        let rec = rec.unwrap_or_else(|| panic!("committed share {id} lost"));
        assert!(rec.revoked.is_none());
        let secret = LinkSecret::parse(secret).unwrap();
        v.access(id, &secret, None, AccessKind::View, "check", now)
            .unwrap_or_else(|e| panic!("share {id} refused: {e}"));
    }
    // The audit chain verifies.
    v.audit_verifier()
        .verify(v.meta())
        .expect("audit chain verifies");
    report
}

#[test]
fn sigkill_at_random_points_then_restart_and_check() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("vault")).unwrap();
    let exe = std::env::current_exe().unwrap();
    // KINKO_CRASH_SEED varies the kill points (and, through the run numbers, nothing else).
    let seed = std::env::var("KINKO_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xDEAD_BEEF_CAFE_F00D);
    let mut rng = Rng(seed);
    let started = Instant::now();
    let (mut repaired_tmp, mut repaired_orphans, mut finished_deletes) = (0, 0, 0);
    for run in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env("KINKO_CRASH_CHILD", dir.path())
            .env("KINKO_CRASH_RUN", run.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it work for 20–220 ms, then SIGKILL (std's kill() is SIGKILL on Unix).
        std::thread::sleep(Duration::from_millis(20 + rng.below(200)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the child must die by SIGKILL, not exit (run {run}: {status})"
        );
        let r = check(dir.path(), run_base(run).plus(OPS_PER_RUN + 50));
        repaired_tmp += r.temporaries_removed;
        repaired_orphans += r.orphan_blobs_removed.len();
        finished_deletes += r.deletions_finished.len();
    }
    let j = read_journal(&dir.path().join("journal"));
    eprintln!(
        "{KILLS} kills in {:?}: {} files, {} shares, {} downloads journaled; repairs: {repaired_tmp} temporaries, {repaired_orphans} orphan blobs, {finished_deletes} deletions finished",
        started.elapsed(),
        j.files.len(),
        j.shares.len(),
        j.downloads.values().sum::<u32>()
    );
    assert!(
        j.files.len() > 50 && j.shares.len() > 50,
        "the children did real work"
    );
}
