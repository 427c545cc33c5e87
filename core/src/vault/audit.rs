//! The tamper-evident audit log.
//!
//! Each record is encoded canonically (see [`AuditRecord::body`] and `docs/VAULT.md`) and
//! chained: `hash_n = BLAKE3-derive("kinko.dev/v1 audit chain", body_n)`, where `body_n`
//! contains `hash_{n-1}` (32 zero bytes for the first record, `seq` 1). Changing, deleting or
//! reordering a record breaks the chain; truncating the tail is caught by a signed
//! [`Checkpoint`] of a later head.
//!
//! The record is committed in the same atomic store commit as the change it describes, so an
//! operation and its audit record exist together or not at all, and a failed append fails the
//! operation (fail closed).
//!
//! The chain hash has no key, so that an export verifies with the public key alone. In the
//! store, each record also carries a tag, `BLAKE3-keyed(tag key, hash)` with a key derived
//! from the vault seed (`RecordTags`): someone who can write the store but holds no master
//! key cannot rewrite or add records after the newest checkpoint, only drop them.

use std::fmt;
use std::io::{BufRead, Write};
use std::sync::Mutex;

/// The Ed25519 public key that verifies checkpoints.
pub use ed25519_dalek::VerifyingKey;
use ed25519_dalek::{Signature, Signer, SigningKey};
use serde_json::{Value, json};

use super::codec::{self, CodecError, Dec, Enc, from_hex, to_hex};
use super::kek::context;
use super::store::{Durability, Guard, MetaStore, Op, StoreError};
use super::types::{ShareId, Timestamp, TokenId, UserId};

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The vault itself (sweeper, startup repair).
    System,
    /// A user acting without a token (e.g. an in-process admin tool).
    User(UserId),
    /// A user authenticated with an API token.
    Token(UserId, TokenId),
    /// Someone presenting a share link.
    Share(ShareId),
    /// Nobody identifiable (for example an unknown token).
    Anonymous,
}

/// Allowed, or refused and why. The reason is for the audit log only; requesters get one
/// opaque error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The action happened.
    Allowed,
    /// The action was refused for this reason.
    Refused(String),
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// When it happened (as passed to the operation).
    pub time: Timestamp,
    /// Who.
    pub actor: Actor,
    /// What, e.g. `share.download`, `user.disable`.
    pub action: String,
    /// On what, e.g. `share:<id>`, `file:<id>`.
    pub object: String,
    /// Client address as given by the caller (may be empty).
    pub client: String,
    /// Allowed or refused (and why).
    pub outcome: Outcome,
    /// Free-form detail (counts, repaired objects).
    pub detail: String,
    /// The previous record's hash (zeros for `seq` 1).
    pub prev: [u8; 32],
}

/// The fields of a record the caller supplies; the log fills in `seq` and `prev`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) time: Timestamp,
    pub(crate) actor: Actor,
    pub(crate) action: &'static str,
    pub(crate) object: String,
    pub(crate) client: String,
    pub(crate) outcome: Outcome,
    pub(crate) detail: String,
}

impl Entry {
    /// An allowed action of the vault itself (startup, sweeper, bootstrap, recovery).
    pub(crate) fn system(
        now: Timestamp,
        action: &'static str,
        object: String,
        detail: String,
    ) -> Entry {
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
}

const RECORD_V1: u8 = 1;

impl AuditRecord {
    /// The canonical bytes the chain hashes (the stored value minus its trailing hash).
    pub fn body(&self) -> Vec<u8> {
        let mut e = Enc::with_version(RECORD_V1);
        e.u64(self.seq).u64(self.time.0).fixed(&self.prev);
        match self.actor {
            Actor::System => e.u8(0),
            Actor::User(u) => e.u8(1).fixed(&u.0),
            Actor::Token(u, t) => e.u8(2).fixed(&u.0).fixed(&t.0),
            Actor::Share(s) => e.u8(3).fixed(&s.0),
            Actor::Anonymous => e.u8(4),
        };
        e.str(&self.action).str(&self.object).str(&self.client);
        match &self.outcome {
            Outcome::Allowed => e.u8(1).str(""),
            Outcome::Refused(why) => e.u8(2).str(why),
        };
        e.str(&self.detail);
        e.finish()
    }

    /// This record's chain hash.
    pub fn hash(&self) -> [u8; 32] {
        chain_hash(&self.body())
    }

    fn decode_body(buf: &[u8]) -> codec::Result<AuditRecord> {
        let mut d = Dec::new(buf, RECORD_V1)?;
        let seq = d.u64()?;
        let time = Timestamp(d.u64()?);
        let prev = d.array()?;
        let actor = match d.u8()? {
            0 => Actor::System,
            1 => Actor::User(UserId(d.array()?)),
            2 => Actor::Token(UserId(d.array()?), TokenId(d.array()?)),
            3 => Actor::Share(ShareId(d.array()?)),
            4 => Actor::Anonymous,
            _ => return Err(CodecError),
        };
        let action = d.string()?;
        let object = d.string()?;
        let client = d.string()?;
        let outcome = match d.u8()? {
            1 => {
                d.string()?;
                Outcome::Allowed
            }
            2 => Outcome::Refused(d.string()?),
            _ => return Err(CodecError),
        };
        let detail = d.string()?;
        d.end()?;
        Ok(AuditRecord {
            seq,
            time,
            actor,
            action,
            object,
            client,
            outcome,
            detail,
            prev,
        })
    }

    /// The record as one JSON object (one line of the export).
    pub fn to_json(&self) -> Value {
        let actor = match self.actor {
            Actor::System => json!({"kind": "system"}),
            Actor::User(u) => json!({"kind": "user", "user": u.to_string()}),
            Actor::Token(u, t) => {
                json!({"kind": "token", "user": u.to_string(), "token": t.to_string()})
            }
            Actor::Share(s) => json!({"kind": "share", "share": s.to_string()}),
            Actor::Anonymous => json!({"kind": "anonymous"}),
        };
        let (outcome, reason) = match &self.outcome {
            Outcome::Allowed => ("allowed", ""),
            Outcome::Refused(why) => ("refused", why.as_str()),
        };
        json!({
            "type": "record",
            "seq": self.seq,
            "time": self.time.0,
            "actor": actor,
            "action": self.action,
            "object": self.object,
            "client": self.client,
            "outcome": outcome,
            "reason": reason,
            "detail": self.detail,
            "prev": to_hex(&self.prev),
            "hash": to_hex(&self.hash()),
        })
    }

    /// Parses [`AuditRecord::to_json`]; returns the record and the hash the line claims.
    fn from_json(v: &Value) -> Option<(AuditRecord, [u8; 32])> {
        let s = |k: &str| v.get(k)?.as_str().map(str::to_owned);
        let a = v.get("actor")?;
        fn id<T: std::str::FromStr>(a: &Value, k: &str) -> Option<T> {
            a.get(k)?.as_str()?.parse().ok()
        }
        let actor = match a.get("kind")?.as_str()? {
            "system" => Actor::System,
            "user" => Actor::User(id(a, "user")?),
            "token" => Actor::Token(id(a, "user")?, id(a, "token")?),
            "share" => Actor::Share(id(a, "share")?),
            "anonymous" => Actor::Anonymous,
            _ => return None,
        };
        let outcome = match v.get("outcome")?.as_str()? {
            "allowed" => Outcome::Allowed,
            "refused" => Outcome::Refused(s("reason")?),
            _ => return None,
        };
        let rec = AuditRecord {
            seq: v.get("seq")?.as_u64()?,
            time: Timestamp(v.get("time")?.as_u64()?),
            actor,
            action: s("action")?,
            object: s("object")?,
            client: s("client")?,
            outcome,
            detail: s("detail")?,
            prev: from_hex(&s("prev")?)?,
        };
        Some((rec, from_hex(&s("hash")?)?))
    }
}

/// The tags of a vault's stored records: a keyed hash of each record's chain hash, with a key
/// derived from the vault seed (so from the master key), appended to the stored record. A
/// vault created before tags existed has none ([`RecordTags::none`]); whether a vault has
/// them is fixed when it is created (see `docs/VAULT.md`).
#[derive(Clone)]
pub(crate) struct RecordTags(Option<zeroize::Zeroizing<[u8; 32]>>);

impl RecordTags {
    pub(crate) fn keyed(key: &[u8; 32]) -> Self {
        RecordTags(Some(zeroize::Zeroizing::new(*key)))
    }
    pub(crate) fn none() -> Self {
        RecordTags(None)
    }
    pub(crate) fn tagged(&self) -> bool {
        self.0.is_some()
    }
    /// The stored form of a record: its body, its chain hash, and its tag (if any).
    fn seal(&self, mut body: Vec<u8>, hash: &[u8; 32]) -> Vec<u8> {
        body.extend_from_slice(hash);
        if let Some(k) = &self.0 {
            body.extend_from_slice(blake3::keyed_hash(k, hash).as_bytes());
        }
        body
    }
    /// Splits a stored record into its body and claimed chain hash, checking its tag (in
    /// constant time) first.
    fn open<'a>(&self, seq: u64, stored: &'a [u8]) -> Result<(&'a [u8], [u8; 32]), AuditError> {
        let tail = if self.tagged() { 64 } else { 32 };
        if stored.len() < tail {
            return Err(AuditError::Malformed { seq });
        }
        let (body, rest) = stored.split_at(stored.len() - tail);
        let hash: [u8; 32] = rest[..32].try_into().expect("32 bytes");
        if let Some(k) = &self.0 {
            let tag: [u8; 32] = rest[32..].try_into().expect("32 bytes");
            // blake3::Hash compares in constant time.
            if blake3::keyed_hash(k, &hash) != blake3::Hash::from(tag) {
                return Err(AuditError::Forged { seq });
            }
        }
        Ok((body, hash))
    }
}

impl fmt::Debug for RecordTags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RecordTags({})",
            if self.tagged() { "keyed" } else { "none" }
        )
    }
}

fn chain_hash(body: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(context::AUDIT_CHAIN);
    h.update(body);
    *h.finalize().as_bytes()
}

/// A signed statement "the chain head at `seq` is `head`".
#[derive(Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Sequence number of the record whose hash is `head`.
    pub seq: u64,
    /// That record's chain hash.
    pub head: [u8; 32],
    /// When the checkpoint was made.
    pub time: Timestamp,
    /// Ed25519 signature over [`Checkpoint::message`].
    pub signature: [u8; 64],
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Checkpoint(seq {}, head {})",
            self.seq,
            to_hex(&self.head)
        )
    }
}

impl Checkpoint {
    /// The signed bytes: `"kinko.dev/v1 audit checkpoint" || seq || head || time`.
    pub fn message(seq: u64, head: &[u8; 32], time: Timestamp) -> Vec<u8> {
        let mut m = context::AUDIT_CHECKPOINT.to_vec();
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(head);
        m.extend_from_slice(&time.0.to_be_bytes());
        m
    }

    pub(crate) fn sign(key: &SigningKey, seq: u64, head: [u8; 32], time: Timestamp) -> Self {
        let signature = key.sign(&Checkpoint::message(seq, &head, time)).to_bytes();
        Checkpoint {
            seq,
            head,
            time,
            signature,
        }
    }

    /// Checks the signature with only the public audit key.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(
            &Checkpoint::message(self.seq, &self.head, self.time),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }

    fn encode(&self) -> Vec<u8> {
        let mut e = Enc::with_version(1);
        e.u64(self.seq)
            .fixed(&self.head)
            .u64(self.time.0)
            .fixed(&self.signature);
        e.finish()
    }

    fn decode(buf: &[u8]) -> codec::Result<Self> {
        let mut d = Dec::new(buf, 1)?;
        let c = Checkpoint {
            seq: d.u64()?,
            head: d.array()?,
            time: Timestamp(d.u64()?),
            signature: d.array()?,
        };
        d.end()?;
        Ok(c)
    }

    /// One JSON line of the export.
    pub fn to_json(&self) -> Value {
        json!({
            "type": "checkpoint",
            "seq": self.seq,
            "head": to_hex(&self.head),
            "time": self.time.0,
            "signature": to_hex(&self.signature),
        })
    }

    fn from_json(v: &Value) -> Option<Checkpoint> {
        Some(Checkpoint {
            seq: v.get("seq")?.as_u64()?,
            head: from_hex(v.get("head")?.as_str()?)?,
            time: Timestamp(v.get("time")?.as_u64()?),
            signature: from_hex(v.get("signature")?.as_str()?)?,
        })
    }
}

/// What verification found wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A record's bytes do not decode.
    #[error("audit record {seq} is malformed")]
    Malformed {
        /// Position (or line number in an export).
        seq: u64,
    },
    /// A record's stored or claimed hash does not match its contents.
    #[error("audit record {seq} was modified")]
    HashMismatch {
        /// The record.
        seq: u64,
    },
    /// A sequence number is missing or out of order (a record was deleted or moved).
    #[error("audit chain has a gap or is out of order at {seq} (expected {expected})")]
    Gap {
        /// The sequence number found.
        seq: u64,
        /// The one expected.
        expected: u64,
    },
    /// A record does not point at its predecessor's hash.
    #[error("audit record {seq} does not link to the previous record")]
    BrokenLink {
        /// The record.
        seq: u64,
    },
    /// A checkpoint's signature does not verify under the audit key.
    #[error("checkpoint at {seq} has a bad signature")]
    BadSignature {
        /// The checkpoint's seq.
        seq: u64,
    },
    /// A checkpoint names a head the chain does not have (truncated or rewritten chain).
    #[error("checkpoint at {seq} does not match the chain")]
    CheckpointMismatch {
        /// The checkpoint's seq.
        seq: u64,
    },
    /// A stored record's tag does not verify: the record was written (or rewritten) by
    /// someone without the vault's keys.
    #[error("audit record {seq} was not written by this vault (its tag does not verify)")]
    Forged {
        /// The record.
        seq: u64,
    },
    /// The periodic checkpoint of this record is missing from the store: deleted, so that
    /// records after it could be rewritten unnoticed.
    #[error("the checkpoint of audit record {seq} is missing")]
    MissingCheckpoint {
        /// The record that must have one.
        seq: u64,
    },
    /// The export has no signed checkpoint, so nothing in it is vouched for.
    #[error("the export contains no signed checkpoint")]
    NoCheckpoint,
    /// Records follow the export's last checkpoint. An export ends at the checkpoint signed
    /// for it, so records after it were added to the file afterwards.
    #[error(
        "the export has records after its last signed checkpoint ({signed_through} of {records} records are signed)"
    )]
    UnsignedTail {
        /// The last signed record.
        signed_through: u64,
        /// Records in the export.
        records: u64,
    },
    /// Reading the store or the export failed.
    #[error("cannot read the audit log: {0}")]
    Read(String),
}

/// The result of a successful verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Records checked.
    pub records: u64,
    /// The last record's hash.
    pub head: [u8; 32],
    /// Checkpoints whose signature and head verified.
    pub checkpoints: u64,
    /// The highest sequence number covered by a verified checkpoint (0 if none).
    pub signed_through: u64,
}

/// Streaming chain verifier shared by store verification and export verification. Its
/// memory does not grow with the log: a checkpoint is checked right after the record it
/// covers, against the chain head at that point.
#[derive(Debug)]
struct ChainCheck {
    expected: u64,
    prev: [u8; 32],
}

impl ChainCheck {
    fn new() -> Self {
        ChainCheck {
            expected: 1,
            prev: [0; 32],
        }
    }
    fn push(&mut self, rec: &AuditRecord, claimed: &[u8; 32]) -> Result<(), AuditError> {
        if rec.seq != self.expected {
            return Err(AuditError::Gap {
                seq: rec.seq,
                expected: self.expected,
            });
        }
        let h = rec.hash();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&h[..], &claimed[..])) {
            return Err(AuditError::HashMismatch { seq: rec.seq });
        }
        if rec.prev != self.prev {
            return Err(AuditError::BrokenLink { seq: rec.seq });
        }
        self.prev = h;
        self.expected += 1;
        Ok(())
    }
    /// Checks a checkpoint of the record just pushed: its signature, and that it names the
    /// chain's head. A checkpoint anywhere else (of a later record the chain does not reach,
    /// or out of place in an export) is a mismatch.
    fn check_point(&self, c: &Checkpoint, key: &VerifyingKey) -> Result<(), AuditError> {
        if !c.verify(key) {
            return Err(AuditError::BadSignature { seq: c.seq });
        }
        if c.seq + 1 == self.expected && c.head == self.prev {
            Ok(())
        } else {
            Err(AuditError::CheckpointMismatch { seq: c.seq })
        }
    }
}

fn decode_stored(
    seq: u64,
    bytes: &[u8],
    tags: &RecordTags,
) -> Result<(AuditRecord, [u8; 32]), AuditError> {
    let (body, hash) = tags.open(seq, bytes)?;
    let rec = AuditRecord::decode_body(body).map_err(|_| AuditError::Malformed { seq })?;
    if rec.seq != seq {
        return Err(AuditError::Gap {
            seq: rec.seq,
            expected: seq,
        });
    }
    Ok((rec, hash))
}

/// What verifying a vault's stored audit log takes: the checkpoint public key, the checkpoint
/// interval and the record tag key. From [`super::Vault::audit_verifier`]; it stays usable
/// after the vault is closed (a tool inspecting a data directory). It holds a secret (the tag
/// key, which could tag forged records): keep it in the process. `Debug` shows no key.
#[derive(Clone)]
pub struct StoreVerifier {
    pub(crate) public: VerifyingKey,
    pub(crate) every: u64,
    pub(crate) tags: RecordTags,
}

impl fmt::Debug for StoreVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreVerifier")
            .field("every", &self.every)
            .field("tags", &self.tags)
            .finish_non_exhaustive()
    }
}

impl StoreVerifier {
    /// Decodes one stored record, checking its tag and that it is record `seq`.
    ///
    /// # Errors
    /// The bytes are not record `seq` as this vault stored it.
    pub fn record(&self, seq: u64, bytes: &[u8]) -> Result<AuditRecord, AuditError> {
        decode_stored(seq, bytes, &self.tags).map(|(r, _)| r)
    }

    /// Verifies the chain held by `store`, every record's tag, every stored checkpoint, and
    /// that every record whose `seq` is a multiple of the interval has its checkpoint (the
    /// vault writes it in the same commit as the record, so a missing one was deleted: what
    /// rewriting the records after it would need). Streams the chain: memory grows with the
    /// number of checkpoints (one per interval), not with the records.
    ///
    /// # Errors
    /// The first problem found.
    pub fn verify(&self, store: &dyn MetaStore) -> Result<AuditReport, AuditError> {
        verify_store(store, &self.public, self.every, &self.tags)
    }
}

fn verify_store(
    store: &dyn MetaStore,
    key: &VerifyingKey,
    every: u64,
    tags: &RecordTags,
) -> Result<AuditReport, AuditError> {
    const PAGE: usize = 4096;
    let rd = |e: StoreError| AuditError::Read(e.to_string());
    // The log grows while it is verified (a record and its periodic checkpoint land in one
    // commit): verify the records up to the head as it is now, whose checkpoints the list
    // read after it holds.
    let last = |store: &dyn MetaStore| -> Result<u64, AuditError> {
        Ok(store.audit_last().map_err(rd)?.map_or(0, |(seq, _)| seq))
    };
    let head = last(store)?;
    let mut checkpoints = store.checkpoints().map_err(rd)?.into_iter().peekable();
    let mut check = ChainCheck::new();
    let mut report = AuditReport {
        records: 0,
        head: [0; 32],
        checkpoints: 0,
        signed_through: 0,
    };
    let mut from = 1;
    loop {
        let page = store.audit_range(from, PAGE).map_err(rd)?;
        let n = page.len();
        for (seq, bytes) in page {
            if seq > head {
                break;
            }
            let (rec, hash) = decode_stored(seq, &bytes, tags)?;
            check.push(&rec, &hash)?;
            let mut covered = false;
            // Checkpoints come in order of their record; none may be left behind.
            while let Some((cseq, c)) = checkpoints.next_if(|(cseq, _)| *cseq <= seq) {
                let c = Checkpoint::decode(&c).map_err(|_| AuditError::Malformed { seq: cseq })?;
                check.check_point(&c, key)?;
                covered = true;
                report.checkpoints += 1;
                report.signed_through = c.seq;
            }
            if !covered && seq.is_multiple_of(every.max(1)) {
                return Err(AuditError::MissingCheckpoint { seq });
            }
            from = seq + 1;
        }
        if n < PAGE || from > head {
            break;
        }
    }
    // A checkpoint of a record the chain does not have: the chain was truncated. (One of a
    // record appended since the head was read is fine; that record must exist now.)
    if let Some((cseq, _)) = checkpoints.next()
        && (cseq <= head || cseq > last(store)?)
    {
        return Err(AuditError::CheckpointMismatch { seq: cseq });
    }
    report.records = check.expected - 1;
    report.head = check.prev;
    Ok(report)
}

/// Writes the log as JSON Lines, records 1 to `through` (all of them with `None`), each
/// checkpoint right after the record it covers. Returns the number of lines.
///
/// # Errors
/// Store or write errors.
pub(crate) fn export(
    store: &dyn MetaStore,
    tags: &RecordTags,
    out: &mut dyn Write,
    through: Option<u64>,
) -> Result<u64, AuditError> {
    const PAGE: usize = 4096;
    let rd = |e: StoreError| AuditError::Read(e.to_string());
    let wr = |e: std::io::Error| AuditError::Read(e.to_string());
    let mut checkpoints = store.checkpoints().map_err(rd)?.into_iter().peekable();
    let mut lines = 0;
    let mut from = 1;
    loop {
        let page = store.audit_range(from, PAGE).map_err(rd)?;
        let n = page.len();
        for (seq, bytes) in page {
            if through.is_some_and(|t| seq > t) {
                return Ok(lines);
            }
            let (rec, _) = decode_stored(seq, &bytes, tags)?;
            writeln!(out, "{}", rec.to_json()).map_err(wr)?;
            lines += 1;
            while let Some((cseq, c)) = checkpoints.next_if(|(cseq, _)| *cseq <= seq) {
                let c = Checkpoint::decode(&c).map_err(|_| AuditError::Malformed { seq: cseq })?;
                writeln!(out, "{}", c.to_json()).map_err(wr)?;
                lines += 1;
            }
            from = seq + 1;
        }
        if n < PAGE {
            break;
        }
    }
    Ok(lines)
}

/// The audit public key from its hex form (64 digits, as `Vault::audit_public_key` is shown,
/// e.g. by `kinko admin audit key`). `None` if it is not a valid Ed25519 public key.
pub fn parse_public_key(text: &str) -> Option<VerifyingKey> {
    VerifyingKey::from_bytes(&from_hex::<32>(text.trim())?).ok()
}

/// Verifies a JSON Lines export with nothing but the audit public key: the chain must be
/// intact from record 1, every checkpoint line must carry a valid signature over a head the
/// chain has, and the last line must be a checkpoint of the last record (an export ends at
/// the checkpoint signed for it, so anything after it was appended to the file).
///
/// # Errors
/// The first problem found, [`AuditError::NoCheckpoint`] or [`AuditError::UnsignedTail`].
pub fn verify_export(
    input: &mut dyn BufRead,
    key: &VerifyingKey,
) -> Result<AuditReport, AuditError> {
    let mut check = ChainCheck::new();
    let mut report = AuditReport {
        records: 0,
        head: [0; 32],
        checkpoints: 0,
        signed_through: 0,
    };
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| AuditError::Read(e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let bad = AuditError::Malformed { seq: n as u64 + 1 };
        let v: Value = serde_json::from_str(&line).map_err(|_| bad.clone())?;
        match v.get("type").and_then(Value::as_str) {
            Some("record") => {
                let (rec, claimed) = AuditRecord::from_json(&v).ok_or(bad)?;
                check.push(&rec, &claimed)?;
                report.records += 1;
            }
            Some("checkpoint") => {
                let c = Checkpoint::from_json(&v).ok_or(bad)?;
                check.check_point(&c, key)?;
                report.checkpoints += 1;
                report.signed_through = report.signed_through.max(c.seq);
            }
            _ => return Err(bad),
        }
    }
    if report.checkpoints == 0 {
        return Err(AuditError::NoCheckpoint);
    }
    if report.records > report.signed_through {
        return Err(AuditError::UnsignedTail {
            signed_through: report.signed_through,
            records: report.records,
        });
    }
    report.head = check.prev;
    Ok(report)
}

#[derive(Debug)]
struct Head {
    seq: u64,
    hash: [u8; 32],
}

/// The live log: the chain head, and the lock that orders appends.
pub(crate) struct AuditLog {
    head: Mutex<Head>,
    signing: SigningKey,
    checkpoint_every: u64,
    tags: RecordTags,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog").finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Loads the head from the store.
    pub(crate) fn open(
        store: &dyn MetaStore,
        signing: SigningKey,
        checkpoint_every: u64,
        tags: RecordTags,
    ) -> Result<AuditLog, StoreError> {
        let head = match store.audit_last()? {
            None => Head {
                seq: 0,
                hash: [0; 32],
            },
            Some((seq, bytes)) => {
                let (_, hash) = decode_stored(seq, &bytes, &tags)
                    .map_err(|_| StoreError::Corrupt("audit chain head"))?;
                Head { seq, hash }
            }
        };
        Ok(AuditLog {
            head: Mutex::new(head),
            signing,
            checkpoint_every: checkpoint_every.max(1),
            tags,
        })
    }

    pub(crate) fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub(crate) fn tags(&self) -> &RecordTags {
        &self.tags
    }

    /// What verifying the stored log takes.
    pub(crate) fn verifier(&self) -> StoreVerifier {
        StoreVerifier {
            public: self.public_key(),
            every: self.checkpoint_every,
            tags: self.tags.clone(),
        }
    }

    /// Appends `entry` in the same atomic commit as `ops` under `guards`. Returns the record's
    /// seq. If the commit fails, neither the ops nor the record are written; the one exception
    /// is [`StoreError::NotDurable`]: a [`Durability::Sync`] commit that was applied (the
    /// chain head has moved past it) but whose flush failed.
    pub(crate) fn commit(
        &self,
        store: &dyn MetaStore,
        mut guards: Vec<Guard>,
        mut ops: Vec<Op>,
        entry: Entry,
        durability: Durability,
    ) -> Result<u64, StoreError> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let rec = AuditRecord {
            seq: head.seq + 1,
            time: entry.time,
            actor: entry.actor,
            action: entry.action.to_owned(),
            object: entry.object,
            client: entry.client,
            outcome: entry.outcome,
            detail: entry.detail,
            prev: head.hash,
        };
        let body = rec.body();
        let hash = chain_hash(&body);
        let stored = self.tags.seal(body, &hash);
        guards.push(Guard::AuditFree(rec.seq));
        ops.push(Op::AppendAudit(rec.seq, stored));
        if rec.seq.is_multiple_of(self.checkpoint_every) {
            let c = Checkpoint::sign(&self.signing, rec.seq, hash, rec.time);
            ops.push(Op::PutCheckpoint(rec.seq, c.encode()));
        }
        // Apply under the head lock (it orders the chain); flush after releasing it, so that
        // concurrent durable commits share one fsync (group commit). A caller returns only
        // after its flush, which covers every commit ordered before its own.
        match store.commit(&guards, ops, Durability::Buffered) {
            Ok(()) => {
                head.seq = rec.seq;
                head.hash = hash;
                drop(head);
                if durability == Durability::Sync {
                    store.flush().map_err(StoreError::not_durable)?;
                }
                Ok(rec.seq)
            }
            Err(StoreError::Conflict) => {
                // Either a record guard failed (the caller re-reads and retries) or the
                // sequence number was taken behind our back (another writer on a shared
                // backend). In the second case resynchronise the head from the store, so the
                // retry appends after it; a head that does not decode fails closed.
                if !store.audit_range(rec.seq, 1)?.is_empty() {
                    let (seq, bytes) = store.audit_last()?.expect("a record exists at seq");
                    let (_, hash) = decode_stored(seq, &bytes, &self.tags)
                        .map_err(|_| StoreError::Corrupt("audit chain head"))?;
                    *head = Head { seq, hash };
                }
                Err(StoreError::Conflict)
            }
            Err(e) => Err(e),
        }
    }

    /// Signs the current head and stores the checkpoint (an explicit, on-demand checkpoint).
    pub(crate) fn checkpoint(
        &self,
        store: &dyn MetaStore,
        now: Timestamp,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        if head.seq == 0 {
            return Ok(None);
        }
        let c = Checkpoint::sign(&self.signing, head.seq, head.hash, now);
        store.commit(
            &[],
            vec![Op::PutCheckpoint(c.seq, c.encode())],
            Durability::Sync,
        )?;
        Ok(Some(c))
    }
}
