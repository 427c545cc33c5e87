//! Users, roles and API tokens.
//!
//! An API token is `kinko_<token id: 32 hex><secret: 64 hex>`. The vault stores only
//! `BLAKE3-keyed(token hash key, token id || secret)`; the token string is returned once, by
//! [`Vault::issue_token`](super::Vault::issue_token), and cannot be recovered. The hash key is
//! derived from the vault seed, which is wrapped under the master key, so a copy of the data
//! directory alone does not even allow an offline guess to be checked.

use std::fmt;

use secrecy::SecretString;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use super::codec::{from_hex, to_hex};
use super::model::{TokenRecord, UserRecord};
use super::types::{Role, Timestamp, TokenId, UserId, random_array};

const TOKEN_PREFIX: &str = "kinko_";

/// A full API token (id and secret). Shown once; `Debug` prints only the id.
pub struct ApiToken {
    id: TokenId,
    secret: Zeroizing<[u8; 32]>,
}

impl ApiToken {
    pub(crate) fn generate() -> ApiToken {
        ApiToken {
            id: TokenId::random(),
            secret: Zeroizing::new(random_array()),
        }
    }

    /// The public token id.
    pub fn id(&self) -> TokenId {
        self.id
    }

    /// Parses a token string.
    ///
    /// # Errors
    /// `None` if the text is not a token of this format.
    pub fn parse(text: &str) -> Option<ApiToken> {
        let rest = text.trim().strip_prefix(TOKEN_PREFIX)?;
        if rest.len() != 96 {
            return None;
        }
        let id = from_hex::<16>(rest.get(..32)?)?;
        let secret = Zeroizing::new(from_hex::<32>(rest.get(32..)?)?);
        Some(ApiToken {
            id: TokenId(id),
            secret,
        })
    }

    /// The token string to hand to its user, once.
    pub fn expose_secret(&self) -> SecretString {
        let mut hex = to_hex(&self.secret[..]);
        let s = format!("{TOKEN_PREFIX}{}{hex}", self.id);
        hex.zeroize();
        s.into()
    }

    pub(crate) fn hash(&self, key: &[u8; 32]) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(key);
        h.update(&self.id.0);
        h.update(&self.secret[..]);
        *h.finalize().as_bytes()
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken({}, ..)", self.id)
    }
}

/// Who is calling, once a token is authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user: UserId,
    /// The user's role.
    pub role: Role,
    /// The token used (`None` for in-process callers such as the bootstrap admin).
    pub token: Option<TokenId>,
}

/// Why a token was refused (audit only; callers see one opaque error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Unknown,
    WrongSecret,
    Expired,
    UserDisabled,
}

impl TokenRefusal {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "unknown token",
            TokenRefusal::WrongSecret => "wrong token secret",
            TokenRefusal::Expired => "token expired",
            TokenRefusal::UserDisabled => "user disabled",
        }
    }
}

/// The token check as a pure function of (stored token, its user, presented token, now).
pub(crate) fn check_token(
    stored: Option<&TokenRecord>,
    user: Option<&UserRecord>,
    presented: &ApiToken,
    hash_key: &[u8; 32],
    now: Timestamp,
) -> Result<Principal, TokenRefusal> {
    let t = stored.ok_or(TokenRefusal::Unknown)?;
    let h = presented.hash(hash_key);
    if !bool::from(h.ct_eq(&t.hash)) {
        return Err(TokenRefusal::WrongSecret);
    }
    if now >= t.expires {
        return Err(TokenRefusal::Expired);
    }
    let u = user.ok_or(TokenRefusal::UserDisabled)?;
    if u.disabled {
        return Err(TokenRefusal::UserDisabled);
    }
    Ok(Principal {
        user: u.id,
        role: u.role,
        token: Some(t.id),
    })
}

/// Something a principal may ask to do; [`authorize`] says whether the role allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Manage users, tokens, retention, freezes and keys.
    Administer,
    /// Upload files.
    Upload,
    /// Share, revoke or delete an object owned by `owner`.
    ManageOwned {
        /// Owner of the object.
        owner: UserId,
    },
    /// Read, verify and export the audit log.
    ReadAudit,
}

/// Role-based authorization, a pure function.
pub fn authorize(p: &Principal, what: Permission) -> bool {
    match (p.role, what) {
        (Role::Admin, _) => true,
        (Role::Member, Permission::Upload) => true,
        (Role::Member, Permission::ManageOwned { owner }) => owner == p.user,
        (Role::Auditor, Permission::ReadAudit) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn token_round_trip_and_debug() {
        let t = ApiToken::generate();
        let s = t.expose_secret();
        let p = ApiToken::parse(s.expose_secret()).unwrap();
        assert_eq!(p.id(), t.id());
        assert_eq!(p.hash(&[1; 32]), t.hash(&[1; 32]));
        assert_ne!(p.hash(&[2; 32]), t.hash(&[1; 32]));
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&s.expose_secret()[38..]));
        assert!(ApiToken::parse("kinko_00").is_none());
    }

    #[test]
    fn roles() {
        let me = UserId([1; 16]);
        let other = UserId([2; 16]);
        let member = Principal {
            user: me,
            role: Role::Member,
            token: None,
        };
        assert!(authorize(&member, Permission::Upload));
        assert!(authorize(&member, Permission::ManageOwned { owner: me }));
        assert!(!authorize(
            &member,
            Permission::ManageOwned { owner: other }
        ));
        assert!(!authorize(&member, Permission::Administer));
        assert!(!authorize(&member, Permission::ReadAudit));
        let auditor = Principal {
            user: me,
            role: Role::Auditor,
            token: None,
        };
        assert!(authorize(&auditor, Permission::ReadAudit));
        assert!(!authorize(&auditor, Permission::Upload));
        let admin = Principal {
            user: me,
            role: Role::Admin,
            token: None,
        };
        assert!(authorize(&admin, Permission::ManageOwned { owner: other }));
    }
}
