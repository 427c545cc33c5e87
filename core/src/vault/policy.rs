//! Share secrets and the access decision.
//!
//! [`decide`] is the whole answer to "may this request get this file now": a pure function of
//! the share record, the facts around it ([`PolicyEnv`]), what the requester proved
//! ([`Credentials`]), the kind of access and `now`. It reads no clock and does no I/O; the
//! vault gathers its inputs, calls it, and commits [`next_state`] together with the audit
//! record, under a version guard so concurrent requests cannot both take the last download.

use std::fmt;

use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::codec::{from_hex, to_hex};
use super::model::{PasswordHash, ShareRecord};
use super::types::{ShareId, Timestamp, random_array};

/// The 256-bit secret of a link share: the `#<secret>` fragment of `BASE/s/<share id>#<secret>`.
/// The server stores only its keyed hash. `Debug` prints `LinkSecret(..)`.
pub struct LinkSecret(Zeroizing<[u8; 32]>);

impl LinkSecret {
    /// A fresh random secret.
    pub fn generate() -> LinkSecret {
        LinkSecret(Zeroizing::new(random_array()))
    }
    /// Parses the fragment encoding (64 hex digits).
    pub fn parse(text: &str) -> Option<LinkSecret> {
        from_hex::<32>(text.trim()).map(|b| LinkSecret(Zeroizing::new(b)))
    }
    /// The fragment encoding, for building the link once.
    pub fn expose_secret(&self) -> SecretString {
        to_hex(&self.0[..]).into()
    }
    /// `BLAKE3-keyed(link hash key, share id || secret)`: binding the id means a secret is
    /// only ever valid for its own share.
    pub(crate) fn hash(&self, key: &[u8; 32], share: &ShareId) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(&share.0);
        h.update(&self.0[..]);
        *h.finalize().as_bytes()
    }
}

impl fmt::Debug for LinkSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkSecret(..)")
    }
}

/// Argon2id cost for share passwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for PasswordCost {
    /// OWASP's Argon2id baseline: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        PasswordCost {
            m_cost: 19 * 1024,
            t_cost: 2,
            p_cost: 1,
        }
    }
}

fn argon2(pw: &[u8], salt: &[u8; 16], m: u32, t: u32, p: u32) -> Option<Zeroizing<[u8; 32]>> {
    let params = Params::new(m, t, p, Some(32)).ok()?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(pw, salt, &mut out[..])
        .ok()?;
    Some(out)
}

/// Hashes a new share password.
///
/// # Panics
/// If `cost` is outside Argon2's limits (a configuration error caught by the first share).
pub fn hash_password(pw: &SecretString, cost: PasswordCost) -> PasswordHash {
    let salt = random_array();
    let hash = argon2(
        pw.expose_secret().as_bytes(),
        &salt,
        cost.m_cost,
        cost.t_cost,
        cost.p_cost,
    )
    .expect("password cost parameters are within Argon2's limits");
    PasswordHash {
        salt,
        m_cost: cost.m_cost,
        t_cost: cost.t_cost,
        p_cost: cost.p_cost,
        hash: *hash,
    }
}

/// The outcome of checking a presented password against a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The share has no password.
    NotRequired,
    /// The share has one; none was presented.
    Missing,
    /// The presented password is wrong.
    Wrong,
    /// The presented password is right.
    Correct,
}

/// Runs Argon2id if the share has a password (outside the commit retry loop: it is the slow
/// part). Compared in constant time.
pub fn check_password(share: &ShareRecord, presented: Option<&SecretString>) -> PasswordCheck {
    match (&share.password, presented) {
        (None, _) => PasswordCheck::NotRequired,
        (Some(_), None) => PasswordCheck::Missing,
        (Some(p), Some(pw)) => {
            match argon2(
                pw.expose_secret().as_bytes(),
                &p.salt,
                p.m_cost,
                p.t_cost,
                p.p_cost,
            ) {
                Some(h) if bool::from(h.ct_eq(&p.hash)) => PasswordCheck::Correct,
                _ => PasswordCheck::Wrong,
            }
        }
    }
}

/// Proof that a download was already counted, so the further HTTP Range requests of the same
/// download are not counted again. Stateless: `nonce || expires || MAC`, the MAC keyed from
/// the vault seed and bound to the share. See `docs/VAULT.md`, "One download, many ranges".
#[derive(Clone, PartialEq, Eq)]
pub struct DownloadTicket {
    nonce: [u8; 16],
    /// The ticket is refused from this instant on.
    pub expires: Timestamp,
    mac: [u8; 32],
}

impl fmt::Debug for DownloadTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DownloadTicket(expires {}, ..)", self.expires)
    }
}

impl DownloadTicket {
    fn mac(key: &[u8; 32], share: &ShareId, nonce: &[u8; 16], expires: Timestamp) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(b"kinko download ticket v1");
        h.update(&share.0);
        h.update(nonce);
        h.update(&expires.0.to_be_bytes());
        *h.finalize().as_bytes()
    }

    pub(crate) fn issue(key: &[u8; 32], share: &ShareId, expires: Timestamp) -> Self {
        let nonce = random_array();
        DownloadTicket {
            nonce,
            expires,
            mac: Self::mac(key, share, &nonce, expires),
        }
    }

    /// Whether this ticket was issued for `share` and is still valid at `now`.
    pub(crate) fn valid(&self, key: &[u8; 32], share: &ShareId, now: Timestamp) -> bool {
        let mac_ok = bool::from(Self::mac(key, share, &self.nonce, self.expires).ct_eq(&self.mac));
        mac_ok && now < self.expires
    }

    /// Text form for a response header (`nonce hex || expires hex || mac hex`).
    pub fn encode(&self) -> String {
        let mut b = Vec::with_capacity(56);
        b.extend_from_slice(&self.nonce);
        b.extend_from_slice(&self.expires.0.to_be_bytes());
        b.extend_from_slice(&self.mac);
        to_hex(&b)
    }

    /// Parses [`DownloadTicket::encode`].
    pub fn parse(text: &str) -> Option<DownloadTicket> {
        let b = from_hex::<56>(text.trim())?;
        Some(DownloadTicket {
            nonce: b[..16].try_into().ok()?,
            expires: Timestamp(u64::from_be_bytes(b[16..24].try_into().ok()?)),
            mac: b[24..].try_into().ok()?,
        })
    }
}

/// What the requester wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessKind {
    /// See the landing page (name, size, expiry). Not counted; no password needed.
    View,
    /// Start a download. Counted once; returns a ticket for the rest of its ranges.
    Download,
    /// Start a download that will be opened with one of these X25519 public keys. Like
    /// [`AccessKind::Download`], except that a share bound to none of them refuses it
    /// ([`Refusal::NotRecipient`]) without counting it. A plaintext share ignores the keys.
    DownloadFor(Vec<[u8; 32]>),
    /// A further range of a download already counted.
    Resume(DownloadTicket),
}

impl AccessKind {
    /// Whether this starts a (counted) download: [`AccessKind::Download`] or
    /// [`AccessKind::DownloadFor`].
    pub fn starts_download(&self) -> bool {
        matches!(self, AccessKind::Download | AccessKind::DownloadFor(_))
    }
}

/// Facts about the world around the share, read by the vault before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyEnv {
    /// An emergency freeze is in force.
    pub frozen: bool,
    /// The share's owner exists and is not disabled.
    pub owner_enabled: bool,
    /// The file exists and has not been shredded.
    pub file_active: bool,
}

/// What the requester proved, checked against the share before deciding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The link secret's keyed hash matches the share's.
    pub secret_ok: bool,
    /// The password check.
    pub password: PasswordCheck,
    /// For [`AccessKind::Resume`]: the ticket is genuine, for this share, and unexpired.
    pub ticket_ok: bool,
}

/// Why access was refused. Precise, for the audit log; see [`Refusal::outward`] for what the
/// requester is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// No share has this id.
    UnknownShare,
    /// The link secret is wrong.
    WrongSecret,
    /// An emergency freeze is in force.
    Frozen,
    /// The share was revoked.
    Revoked,
    /// The share's owner is disabled.
    OwnerDisabled,
    /// The file is gone (deleted or shredded).
    FileGone,
    /// `now` is at or after the share's expiry.
    Expired,
    /// Too many wrong passwords.
    Locked,
    /// The download limit is reached.
    Exhausted,
    /// The share has a password and none was given.
    PasswordRequired,
    /// The given password is wrong (counted toward the lock).
    WrongPassword,
    /// A range request's download ticket is not valid.
    BadTicket,
    /// The share is bound to recipients, none of them a key the download named
    /// ([`AccessKind::DownloadFor`]).
    NotRecipient,
}

/// What a refused requester learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outward {
    /// Nothing: unknown, expired, revoked, exhausted, locked, frozen, disabled owner and wrong
    /// secret all look exactly like this.
    Denied,
    /// The secret was right and the share is otherwise usable: ask for the password.
    PasswordRequired,
    /// The secret was right and the password wrong.
    WrongPassword,
    /// The secret (and password) were right, but the share is bound to none of the keys the
    /// download named: nothing was counted.
    NotRecipient,
}

impl Refusal {
    /// The reason as written in the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::UnknownShare => "unknown share",
            Refusal::WrongSecret => "wrong link secret",
            Refusal::Frozen => "deployment frozen",
            Refusal::Revoked => "share revoked",
            Refusal::OwnerDisabled => "owner disabled",
            Refusal::FileGone => "file gone",
            Refusal::Expired => "share expired",
            Refusal::Locked => "share locked after wrong passwords",
            Refusal::Exhausted => "download limit reached",
            Refusal::PasswordRequired => "password required",
            Refusal::WrongPassword => "wrong password",
            Refusal::BadTicket => "invalid download ticket",
            Refusal::NotRecipient => "not bound to the named keys",
        }
    }

    /// The one thing the requester is told.
    pub fn outward(self) -> Outward {
        match self {
            Refusal::PasswordRequired => Outward::PasswordRequired,
            Refusal::WrongPassword => Outward::WrongPassword,
            Refusal::NotRecipient => Outward::NotRecipient,
            _ => Outward::Denied,
        }
    }
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Serve it. `counted`: this access takes one download from the limit.
    Allow {
        /// Whether the download counter goes up.
        counted: bool,
    },
    /// Refuse it.
    Refuse(Refusal),
}

/// May this request get this file now? Checks, in this order (the first failing one wins):
/// the share exists; the secret matches (before anything else, so that without the secret
/// nothing about the share's state is learned); no freeze; not revoked; owner enabled; file
/// present; `now < expires`; not locked; then per kind — a view is allowed; a resume needs a
/// valid ticket; a download needs a download left and the password if one is set, and, when
/// it names the keys it will be opened with, a share bound to one of them (or a plaintext
/// share). That last check comes after the password, so that only someone holding the
/// password learns whether a key is a recipient.
pub fn decide(
    share: Option<&ShareRecord>,
    env: &PolicyEnv,
    creds: &Credentials,
    kind: &AccessKind,
    now: Timestamp,
) -> Decision {
    use Refusal::*;
    let Some(s) = share else {
        return Decision::Refuse(UnknownShare);
    };
    let refusal = if !creds.secret_ok {
        WrongSecret
    } else if env.frozen {
        Frozen
    } else if s.revoked.is_some() {
        Revoked
    } else if !env.owner_enabled {
        OwnerDisabled
    } else if !env.file_active {
        FileGone
    } else if now >= s.expires {
        Expired
    } else if s.locked() {
        Locked
    } else {
        match kind {
            AccessKind::View => return Decision::Allow { counted: false },
            AccessKind::Resume(_) if creds.ticket_ok => return Decision::Allow { counted: false },
            AccessKind::Resume(_) => BadTicket,
            AccessKind::Download | AccessKind::DownloadFor(_) => {
                if s.max_downloads.is_some_and(|m| s.downloads >= m) {
                    Exhausted
                } else {
                    match creds.password {
                        PasswordCheck::NotRequired | PasswordCheck::Correct => {
                            if let AccessKind::DownloadFor(keys) = kind
                                && !s.recipients.is_empty()
                                && !keys.iter().any(|k| s.recipients.contains(k))
                            {
                                NotRecipient
                            } else {
                                return Decision::Allow { counted: true };
                            }
                        }
                        PasswordCheck::Missing => PasswordRequired,
                        PasswordCheck::Wrong => WrongPassword,
                    }
                }
            }
        }
    };
    Decision::Refuse(refusal)
}

/// [`decide`], with the password checked only when the answer depends on it: `check` (the
/// slow Argon2 run) is called at most once, and only when every other check has passed, so a
/// refused share (locked, expired, revoked, exhausted, a wrong secret...) costs no Argon2 run
/// whatever password is presented. `creds.password` is ignored.
pub fn decide_lazily(
    share: Option<&ShareRecord>,
    env: &PolicyEnv,
    creds: &Credentials,
    kind: &AccessKind,
    now: Timestamp,
    check: impl FnOnce() -> PasswordCheck,
) -> Decision {
    let mut creds = *creds;
    creds.password = match share {
        Some(s) if s.password.is_none() => PasswordCheck::NotRequired,
        _ => PasswordCheck::Missing,
    };
    // The password is the last check that can refuse before the recipients: a decision that
    // asks for it has passed all the others.
    match decide(share, env, &creds, kind, now) {
        Decision::Refuse(Refusal::PasswordRequired) => {
            creds.password = check();
            decide(share, env, &creds, kind, now)
        }
        decided => decided,
    }
}

/// The share record after `decision`, if the decision changes it: a counted download bumps
/// `downloads`, a wrong password bumps `failed_attempts` (which locks the share at its limit).
pub fn next_state(share: &ShareRecord, decision: &Decision) -> Option<ShareRecord> {
    let mut s = share.clone();
    match decision {
        Decision::Allow { counted: true } => s.downloads += 1,
        Decision::Refuse(Refusal::WrongPassword) => s.failed_attempts += 1,
        _ => return None,
    }
    s.version += 1;
    Some(s)
}

/// Checks the presented secret against the share, in constant time.
pub(crate) fn secret_matches(share: &ShareRecord, secret: &LinkSecret, key: &[u8; 32]) -> bool {
    secret.hash(key, &share.id).ct_eq(&share.secret_hash).into()
}
