//! The expiry sweeper, startup repair and KEK rotation.

use std::collections::HashSet;

use super::audit::{Actor, Entry, Outcome};
use super::model::{ExpiryEntry, ExpiryKind, FileRecord, FileState};
use super::sealing;
use super::store::{Durability, Guard, Op, StoreError};
use super::types::{FileId, ShareId, Timestamp};
use super::{Ctx, Damage, Permission, SETTING_SEED, Vault, VaultError, WrappedSecret};

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
    /// Active files whose blob is missing, left as they are: records, keys and shares kept.
    ///
    /// No crash produces this (an upload publishes its blob durably before committing its
    /// record; a delete shreds the record before removing the blob), so it is outside damage
    /// (a blob volume not mounted or not fully restored, a disk fault) that the operator must
    /// see: once the blobs are put back the files read again. Until then a download fails
    /// with an I/O error, and the owner can still delete the file. Reported again at every
    /// startup while it lasts.
    pub missing_blobs: Vec<FileId>,
}

impl RepairReport {
    /// Whether anything was repaired or found missing.
    pub fn is_empty(&self) -> bool {
        self.temporaries_removed == 0
            && self.orphan_blobs_removed.is_empty()
            && self.deletions_finished.is_empty()
            && self.missing_blobs.is_empty()
    }

    /// Whether the report shows outside damage for the operator to act on (missing blobs),
    /// rather than the ordinary leftovers of a crash, which repair has already fixed.
    pub fn needs_attention(&self) -> bool {
        !self.missing_blobs.is_empty()
    }
}

/// The file records of the store, by state.
#[derive(Default)]
struct FileStates {
    active: Vec<FileId>,
    shredded: Vec<FileId>,
    known: HashSet<FileId>,
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

impl Vault {
    /// Removes an expiry entry whose share or file is gone or no longer due (`object` names
    /// it in the audit record).
    fn drop_stale_expiry(
        &self,
        e: ExpiryEntry,
        object: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let entry = Entry::system(now, "sweep.stale_entry", object, String::new());
        self.commit(
            vec![],
            vec![Op::DeleteExpiry(e)],
            entry,
            Durability::Buffered,
        )
        .map(drop)
    }

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
                                let entry = Entry::system(
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
                            _ => self.drop_stale_expiry(e, super::share_obj(&id), now)?,
                        }
                    }
                    ExpiryKind::File => {
                        let id = FileId(e.id);
                        match self.meta.file(&id)? {
                            Some(f) if f.retain_until <= now => {
                                self.shred(Actor::System, "", "file.retention_expired", &id, now)?;
                                report.files_removed += 1;
                            }
                            _ => self.drop_stale_expiry(e, super::file_obj(&id), now)?,
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
            Entry::system(now, "sweep", "expiry index".into(), detail),
            Durability::Sync,
        )?;
        Ok(report)
    }

    /// Startup repair (run by [`Vault::open`]): removes temporaries and orphan blobs, finishes
    /// interrupted deletions, reports active files whose blob is missing without touching
    /// them, and records what it did in the audit log.
    ///
    /// # Errors
    /// [`Damage::BlobsMissing`] (before changing anything) when no active file has its blob,
    /// unless [`super::VaultConfig::allow_missing_blobs`]; store errors.
    pub(super) fn repair(&self, now: Timestamp) -> Result<RepairReport, VaultError> {
        let files = self.file_states()?;
        let blobs: HashSet<FileId> = self.blobs.list()?.into_iter().collect();
        let missing: Vec<FileId> = files
            .active
            .iter()
            .filter(|id| !blobs.contains(id))
            .copied()
            .collect();
        self.refuse_if_all_blobs_missing(files.active.len(), missing.len(), blobs.len())?;
        let mut r = RepairReport {
            temporaries_removed: self.blobs.remove_temporaries()?,
            missing_blobs: missing,
            ..Default::default()
        };
        for id in &blobs {
            if !files.known.contains(id) {
                self.blobs.delete(id)?;
                r.orphan_blobs_removed.push(*id);
            }
        }
        for id in files.shredded {
            self.shred(Actor::System, "", "repair.finish_delete", &id, now)?;
            r.deletions_finished.push(id);
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
            Entry::system(now, "vault.open", "vault".into(), detail),
            Durability::Sync,
        )?;
        Ok(r)
    }

    /// Calls `visit` on every file record, in id order, a page of [`PAGE`] at a time.
    fn each_file(
        &self,
        mut visit: impl FnMut(FileRecord) -> Result<(), VaultError>,
    ) -> Result<(), VaultError> {
        let mut after = None;
        loop {
            let page = self.meta.files_after(after.as_ref(), PAGE)?;
            let n = page.len();
            for f in page {
                after = Some(f.id);
                visit(f)?;
            }
            if n < PAGE {
                return Ok(());
            }
        }
    }

    /// Every file record's id, by state.
    fn file_states(&self) -> Result<FileStates, VaultError> {
        let mut files = FileStates::default();
        self.each_file(|f| {
            files.known.insert(f.id);
            match f.state {
                FileState::Shredded => files.shredded.push(f.id),
                FileState::Active => files.active.push(f.id),
            }
            Ok(())
        })?;
        Ok(files)
    }

    /// Refuses to go on when there are active files and none has its blob: that is an
    /// unmounted or wrong blob directory, not a few lost blobs. Repair would delete that
    /// directory's blobs as orphans, and uploads would be published where the real volume,
    /// once mounted, hides them.
    fn refuse_if_all_blobs_missing(
        &self,
        active: usize,
        missing: usize,
        blobs: usize,
    ) -> Result<(), Damage> {
        if active > 0 && missing == active && !self.config.allow_missing_blobs {
            return Err(Damage::BlobsMissing {
                active: active as u64,
                blobs: blobs as u64,
            });
        }
        Ok(())
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
        self.each_file(|mut f| {
            loop {
                if f.state != FileState::Active {
                    return Ok(());
                }
                if f.kek == new_id && sealing::kek_of(&f.header)? == new_id {
                    report.already_current += 1;
                    return Ok(());
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
                    Ok(_) => {
                        report.rewrapped += 1;
                        return Ok(());
                    }
                    // Changed since it was listed (deleted, say, or re-wrapped by another
                    // rotation): decide again on what it is now.
                    Err(StoreError::Conflict) => match self.meta.file(&f.id)? {
                        Some(now) => f = now,
                        None => return Ok(()),
                    },
                    Err(e) => return Err(e.into()),
                }
            }
        })?;
        let seed_bytes = self
            .meta
            .setting(SETTING_SEED)?
            .ok_or(StoreError::Corrupt("seed"))?;
        let w = WrappedSecret::decode(&seed_bytes).map_err(|_| StoreError::Corrupt("seed"))?;
        let mut ops = Vec::new();
        if w.kek != new_id {
            // Re-wrapped with the same associated data: a rotation never changes whether
            // the vault tags its audit records.
            let aad = self.seed_aad();
            let seed = w.unwrap(&self.config.keys, aad)?;
            let w2 = WrappedSecret::wrap(primary, secrecy::ExposeSecret::expose_secret(&seed), aad);
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
