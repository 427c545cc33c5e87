//! The expiry sweeper, startup repair and KEK rotation.

use std::collections::HashSet;

use super::audit::{Actor, Entry, Outcome};
use super::model::{ExpiryKind, FileState};
use super::sealing;
use super::store::{Durability, Guard, Op, StoreError};
use super::types::{FileId, ShareId, Timestamp};
use super::{Ctx, Permission, SEED_AAD, SETTING_SEED, Vault, VaultError, WrappedSecret};

/// What a sweep did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Expiry index entries read. The sweep reads only entries with `at <= now`, so this is
    /// the number of expired objects, whatever the number stored.
    pub visited: u64,
    /// Expired shares deleted.
    pub shares_removed: u64,
    /// Files past retention, crypto-shredded and deleted.
    pub files_removed: u64,
}

/// What startup repair found and fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Temporary blobs of interrupted uploads, removed.
    pub temporaries_removed: u64,
    /// Published blobs without a file record (crash between publish and commit), removed.
    pub orphan_blobs_removed: Vec<FileId>,
    /// Interrupted deletions (key already shredded), finished.
    pub deletions_finished: Vec<FileId>,
    /// File records whose blob was missing, shredded (never expected; reported loudly).
    pub missing_blobs: Vec<FileId>,
}

impl RepairReport {
    /// Whether anything was repaired.
    pub fn is_empty(&self) -> bool {
        self.temporaries_removed == 0
            && self.orphan_blobs_removed.is_empty()
            && self.deletions_finished.is_empty()
            && self.missing_blobs.is_empty()
    }
}

/// What a KEK rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// File headers re-wrapped to the primary KEK.
    pub rewrapped: u64,
    /// File headers already under the primary KEK.
    pub already_current: u64,
    /// Whether the vault seed was re-wrapped.
    pub seed_rewrapped: bool,
}

const SWEEP_BATCH: usize = 1024;
const PAGE: usize = 1024;

fn system(now: Timestamp, action: &'static str, object: String, detail: String) -> Entry {
    Entry {
        time: now,
        actor: Actor::System,
        action,
        object,
        client: String::new(),
        outcome: Outcome::Allowed,
        detail,
    }
}

impl Vault {
    /// Walks the expiry index from its oldest entry up to `now`: deletes expired shares and
    /// crypto-shreds files past retention. Its cost is proportional to what expired. Each
    /// removal is audited; the sweep's summary too. Flushes once at the end.
    ///
    /// # Errors
    /// Store errors (what was swept so far stays swept; the next sweep continues).
    pub fn sweep(&self, now: Timestamp) -> Result<SweepReport, VaultError> {
        let mut report = SweepReport::default();
        loop {
            let scan = self.meta.expired(now, SWEEP_BATCH)?;
            report.visited += scan.visited;
            let n = scan.entries.len();
            for e in scan.entries {
                match e.kind {
                    ExpiryKind::Share => {
                        let id = ShareId(e.id);
                        match self.meta.share(&id)? {
                            Some(s) if s.expires <= now => {
                                let entry = system(
                                    now,
                                    "share.expire",
                                    super::share_obj(&id),
                                    format!("downloads={}", s.downloads),
                                );
                                match self.commit(
                                    vec![Guard::Share(id, Some(s.version))],
                                    vec![Op::DeleteShare(s)],
                                    entry,
                                    Durability::Buffered,
                                ) {
                                    Ok(_) => report.shares_removed += 1,
                                    // Changed under us: the next sweep sees it again.
                                    Err(StoreError::Conflict) => {}
                                    Err(err) => return Err(err.into()),
                                }
                            }
                            _ => {
                                let entry = system(
                                    now,
                                    "sweep.stale_entry",
                                    super::share_obj(&id),
                                    String::new(),
                                );
                                self.commit(
                                    vec![],
                                    vec![Op::DeleteExpiry(e)],
                                    entry,
                                    Durability::Buffered,
                                )?;
                            }
                        }
                    }
                    ExpiryKind::File => {
                        let id = FileId(e.id);
                        match self.meta.file(&id)? {
                            Some(f) if f.retain_until <= now => {
                                self.shred(Actor::System, "", "file.retention_expired", &id, now)?;
                                report.files_removed += 1;
                            }
                            _ => {
                                let entry = system(
                                    now,
                                    "sweep.stale_entry",
                                    super::file_obj(&id),
                                    String::new(),
                                );
                                self.commit(
                                    vec![],
                                    vec![Op::DeleteExpiry(e)],
                                    entry,
                                    Durability::Buffered,
                                )?;
                            }
                        }
                    }
                }
            }
            if n < SWEEP_BATCH {
                break;
            }
        }
        let detail = format!(
            "visited={} shares_removed={} files_removed={}",
            report.visited, report.shares_removed, report.files_removed
        );
        self.commit(
            vec![],
            vec![],
            system(now, "sweep", "expiry index".into(), detail),
            Durability::Sync,
        )?;
        Ok(report)
    }

    /// Startup repair (run by [`Vault::open`]): removes temporaries and orphan blobs, finishes
    /// interrupted deletions, and records what it did in the audit log.
    pub(super) fn repair(&self, now: Timestamp) -> Result<RepairReport, VaultError> {
        let mut r = RepairReport {
            temporaries_removed: self.blobs.remove_temporaries()?,
            ..Default::default()
        };
        let mut known = HashSet::new();
        let mut shredded = Vec::new();
        let mut active = Vec::new();
        let mut after = None;
        loop {
            let page = self.meta.files_after(after.as_ref(), PAGE)?;
            let n = page.len();
            for f in page {
                after = Some(f.id);
                known.insert(f.id);
                match f.state {
                    FileState::Shredded => shredded.push(f.id),
                    FileState::Active => active.push(f.id),
                }
            }
            if n < PAGE {
                break;
            }
        }
        let blobs: HashSet<FileId> = self.blobs.list()?.into_iter().collect();
        for id in &blobs {
            if !known.contains(id) {
                self.blobs.delete(id)?;
                r.orphan_blobs_removed.push(*id);
            }
        }
        for id in shredded {
            self.shred(Actor::System, "", "repair.finish_delete", &id, now)?;
            r.deletions_finished.push(id);
        }
        for id in active {
            if !blobs.contains(&id) {
                self.shred(Actor::System, "", "repair.missing_blob", &id, now)?;
                r.missing_blobs.push(id);
            }
        }
        let detail = format!(
            "temporaries_removed={} orphan_blobs_removed=[{}] deletions_finished=[{}] missing_blobs=[{}]",
            r.temporaries_removed,
            join(&r.orphan_blobs_removed),
            join(&r.deletions_finished),
            join(&r.missing_blobs)
        );
        self.commit(
            vec![],
            vec![],
            system(now, "vault.open", "vault".into(), detail),
            Durability::Sync,
        )?;
        Ok(r)
    }

    /// Re-wraps every file header and the vault seed under the primary KEK of the ring (admin
    /// only). Payloads are not touched. Resumable: each file is its own atomic commit, and a
    /// second run skips what is done. Afterwards the old KEK can be dropped from the ring.
    ///
    /// # Errors
    /// Forbidden, a header under a KEK not in the ring, or store errors.
    pub fn rotate_kek(&self, ctx: &Ctx) -> Result<RotationReport, VaultError> {
        self.require(ctx, Permission::Administer, "kek.rotate", "kek")?;
        let primary = self.config.keys.primary();
        let new_id = primary.id();
        let mut report = RotationReport::default();
        let mut after = None;
        loop {
            let page = self.meta.files_after(after.as_ref(), PAGE)?;
            let n = page.len();
            for f in page {
                after = Some(f.id);
                if f.state != FileState::Active {
                    continue;
                }
                if f.kek == new_id && sealing::kek_of(&f.header)? == new_id {
                    report.already_current += 1;
                    continue;
                }
                let mut f2 = f.clone();
                f2.header = sealing::rewrap(&f.header, &self.config.keys, primary)?;
                f2.kek = new_id;
                f2.version += 1;
                let mut entry = ctx.entry("file.rewrap", super::file_obj(&f.id), Outcome::Allowed);
                entry.detail = format!("kek {} -> {new_id}", f.kek);
                match self.commit(
                    vec![Guard::File(f.id, Some(f.version))],
                    vec![Op::PutFile(f2)],
                    entry,
                    Durability::Buffered,
                ) {
                    Ok(_) => report.rewrapped += 1,
                    Err(StoreError::Conflict) => {
                        return Err(VaultError::Invalid(
                            "a file changed during rotation; run it again".into(),
                        ));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if n < PAGE {
                break;
            }
        }
        let seed_bytes = self
            .meta
            .setting(SETTING_SEED)?
            .ok_or(StoreError::Corrupt("seed"))?;
        let w = WrappedSecret::decode(&seed_bytes).map_err(|_| StoreError::Corrupt("seed"))?;
        let mut ops = Vec::new();
        if w.kek != new_id {
            let seed = w.unwrap(&self.config.keys, SEED_AAD)?;
            let w2 = WrappedSecret::wrap(
                primary,
                secrecy::ExposeSecret::expose_secret(&seed),
                SEED_AAD,
            );
            ops.push(Op::PutSetting(SETTING_SEED, w2.encode()));
            report.seed_rewrapped = true;
        }
        let mut entry = ctx.entry("kek.rotate", format!("kek:{new_id}"), Outcome::Allowed);
        entry.detail = format!(
            "rewrapped={} already_current={} seed_rewrapped={}",
            report.rewrapped, report.already_current, report.seed_rewrapped
        );
        self.commit(
            vec![Guard::Setting(SETTING_SEED, Some(seed_bytes))],
            ops,
            entry,
            Durability::Sync,
        )?;
        Ok(report)
    }
}

fn join(ids: &[FileId]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}
