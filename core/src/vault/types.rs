//! Identifiers, time and roles shared by every part of the vault.

use std::fmt;
use std::str::FromStr;

use super::codec::{from_hex, to_hex};

/// A point in time: whole seconds since the Unix epoch (UTC).
///
/// The vault never reads a clock. Every operation that depends on time takes `now` as an
/// argument, so policy is a pure function and tests pick their instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// `self + secs`, saturating at the end of time.
    pub fn plus(self, secs: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs))
    }

    /// The current wall-clock time. Only callers at the edge (server, CLI) use this; nothing
    /// inside the vault does.
    pub fn now() -> Timestamp {
        Timestamp(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An identifier could not be parsed (wrong length or not hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed identifier: expected 32 hex digits")]
pub struct ParseIdError;

pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("OS RNG is likely failing!");
    b
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// 128 random bits; printed and parsed as 32 lower-case hex digits.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub [u8; 16]);

        impl $name {
            /// A fresh random identifier.
            pub fn random() -> Self {
                $name(random_array())
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&to_hex(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                from_hex::<16>(s).map($name).ok_or(ParseIdError)
            }
        }
    };
}

id_type!(
    /// Names a user.
    UserId
);
id_type!(
    /// Names a file (and its blob).
    FileId
);
id_type!(
    /// Names a share. Public: it is the `<share id>` in `BASE/s/<share id>#<secret>`.
    ShareId
);
id_type!(
    /// Names an API token. Public: it is the first part of the token string and appears in
    /// the audit log; the secret part never does.
    TokenId
);

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages users, tokens, retention, freezes and keys; may revoke anything.
    Admin,
    /// Uploads files and shares and revokes their own.
    Member,
    /// Reads, verifies and exports the audit log; changes nothing.
    Auditor,
}

impl Role {
    pub(crate) fn code(self) -> u8 {
        match self {
            Role::Admin => 1,
            Role::Member => 2,
            Role::Auditor => 3,
        }
    }
    pub(crate) fn from_code(c: u8) -> Option<Role> {
        Some(match c {
            1 => Role::Admin,
            2 => Role::Member,
            3 => Role::Auditor,
            _ => return None,
        })
    }
    /// The lower-case name used in the audit log and by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        match s {
            "admin" => Ok(Role::Admin),
            "member" => Ok(Role::Member),
            "auditor" => Ok(Role::Auditor),
            _ => Err(ParseIdError),
        }
    }
}
