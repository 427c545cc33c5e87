//! Identities, recipients and secrets given by the app.
//!
//! Secrets arrive as top-level string arguments (a passphrase, a share password, an API
//! token, an identity string): uniffi hands such a string over in the buffer the foreign
//! side filled, without a copy, and it is wrapped in a zeroize-on-drop type before anything
//! else happens, so the Rust side's only copy is wiped once it is no longer needed.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use kinko_core::keys;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::KinkoError;

/// Largest identity file read (a key line is 74 bytes; this leaves room for many keys and
/// comments, and keeps a wrong path such as a disk image from being read whole).
const MAX_IDENTITY_FILE: u64 = 1024 * 1024;

/// An X25519 identity (secret key, `AGE-SECRET-KEY-1…`): opens files sealed to its
/// [`Recipient`]. Compatible with age and rage keys.
///
/// The secret is zeroized when the object is freed. Printing it (`repr` in Python) shows
/// only its public key.
#[derive(Clone, uniffi::Object)]
#[uniffi::export(Debug)]
pub struct Identity {
    pub(crate) inner: keys::Identity,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // kinko_core's Identity prints only its public key.
        self.inner.fmt(f)
    }
}

#[uniffi::export]
impl Identity {
    /// Generates a new identity from the operating system's random number generator.
    #[uniffi::constructor]
    pub fn generate() -> Arc<Identity> {
        Arc::new(Identity {
            inner: keys::Identity::generate(),
        })
    }

    /// Parses `AGE-SECRET-KEY-1…` (as age, rage and `kinko keygen` print it). The string
    /// is zeroized on the Rust side once parsed.
    ///
    /// # Errors
    ///
    /// [`KinkoError::InvalidKey`], naming the failed check but never the key.
    #[uniffi::constructor]
    pub fn parse(encoded: String) -> Result<Arc<Identity>, KinkoError> {
        let encoded = Zeroizing::new(encoded);
        let inner = encoded
            .trim()
            .parse::<keys::Identity>()
            .map_err(KinkoError::from)?;
        Ok(Arc::new(Identity { inner }))
    }

    /// The recipient (public key, `age1…`) that files for this identity are sealed to.
    pub fn to_public(&self) -> Arc<Recipient> {
        Arc::new(Recipient {
            inner: self.inner.to_public(),
        })
    }

    /// The secret key as `AGE-SECRET-KEY-1…`, for the app to store (in a keychain, say).
    ///
    /// The string is handed to the app: the Rust side keeps no copy, but the foreign
    /// runtime's copy is the app's to protect.
    pub fn expose_secret(&self) -> String {
        self.inner.to_string().expose_secret().to_owned()
    }

    /// Writes an identity file as `age-keygen` and `kinko keygen` do (a `# created:` and a
    /// `# public key:` comment, then the key), readable by the `kinko` CLI (`open -i`) and by
    /// age. The file is created with mode 0600 under a temporary name and moved into place;
    /// an existing file is never replaced (it may hold the only copy of another key).
    /// `created` is written in the first comment line as given (age writes an RFC 3339 time).
    ///
    /// # Errors
    ///
    /// [`KinkoError::Io`] if `path` exists or the file cannot be written.
    pub fn write_file(&self, path: String, created: String) -> Result<(), KinkoError> {
        let contents = self.inner.identity_file_contents(&created);
        let mut out = crate::output::AtomicOutput::new(&path)?;
        out.write_all(contents.expose_secret().as_bytes())
            .map_err(|e| KinkoError::io("write", &path, &e))?;
        out.commit_new()
    }
}

/// An X25519 recipient (public key, `age1…`): files sealed to it open with its
/// [`Identity`]. Compatible with age and rage keys.
///
/// `str()` / `toString()` / `description` print it as `age1…`; recipients compare equal when
/// their keys are.
#[derive(Clone, PartialEq, Eq, Hash, uniffi::Object)]
#[uniffi::export(Debug, Display, Eq, Hash)]
pub struct Recipient {
    pub(crate) inner: keys::Recipient,
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[uniffi::export]
impl Recipient {
    /// Parses `age1…` (lower case, as every age tool prints it).
    ///
    /// # Errors
    ///
    /// [`KinkoError::InvalidKey`], e.g. for a secret key given by mistake.
    #[uniffi::constructor]
    pub fn parse(encoded: String) -> Result<Arc<Recipient>, KinkoError> {
        let inner = encoded
            .trim()
            .parse::<keys::Recipient>()
            .map_err(KinkoError::from)?;
        Ok(Arc::new(Recipient { inner }))
    }
}

/// A secret the app passes in: a passphrase (to seal or open a file), a share password, or
/// an API token.
///
/// Zeroized on the Rust side when the object is freed (`del` in Python, `close()`/`destroy()`
/// in Kotlin, end of scope in Swift). Printing it shows `Secret(..)`; there is no way to read
/// it back.
#[derive(uniffi::Object)]
#[uniffi::export(Debug)]
pub struct Secret {
    /// The string exactly as uniffi passed it in. Not a `SecretString`: converting to one
    /// shrinks the buffer to its length, which reallocates and frees the original without
    /// wiping it. `Zeroizing<String>` wipes the whole capacity on drop.
    inner: Zeroizing<String>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[uniffi::export]
impl Secret {
    /// Wraps `value`. The string buffer uniffi passed in becomes the secret itself (no copy
    /// is made) and is zeroized when this object is freed.
    #[uniffi::constructor]
    pub fn new(value: String) -> Arc<Secret> {
        Arc::new(Secret {
            inner: Zeroizing::new(value),
        })
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl Secret {
    /// The secret text.
    pub(crate) fn expose(&self) -> &str {
        &self.inner
    }

    /// A copy for `kinko_core`, which takes passphrases as `SecretString`. `to_owned`
    /// allocates exactly the length, so the conversion does not reallocate.
    pub(crate) fn to_secret_string(&self) -> SecretString {
        SecretString::from(self.inner.as_str().to_owned())
    }
}

/// Parses the contents of an identity file: one `AGE-SECRET-KEY-1…` a line, blank lines and
/// `#` comments ignored (the files `age-keygen`, `kinko keygen` and
/// [`Identity::write_file`] write). The text is zeroized on the Rust side once parsed.
///
/// # Errors
///
/// [`KinkoError::InvalidKey`] naming the first bad line (never its contents), or when there
/// is no key at all.
#[uniffi::export]
pub fn parse_identities(text: String) -> Result<Vec<Arc<Identity>>, KinkoError> {
    let text = Zeroizing::new(text);
    let ids = keys::parse_identity_file(text.as_bytes())?;
    Ok(wrap_identities(ids))
}

/// Reads an identity file (as [`parse_identities`] parses it) through a buffer that is
/// zeroized afterwards.
///
/// # Errors
///
/// [`KinkoError::Io`] if the file cannot be read; [`KinkoError::InvalidKey`] as
/// [`parse_identities`].
#[uniffi::export]
pub fn read_identity_file(path: String) -> Result<Vec<Arc<Identity>>, KinkoError> {
    use std::io::Read;
    let io_err = |e: std::io::Error| KinkoError::io("read", &path, &e);
    let file = std::fs::File::open(Path::new(&path)).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    // Sized up front so that reading never reallocates and leaves a copy of a key behind.
    let mut buf = Zeroizing::new(Vec::with_capacity(
        usize::try_from(len.min(MAX_IDENTITY_FILE)).unwrap_or(0) + 1,
    ));
    file.take(MAX_IDENTITY_FILE)
        .read_to_end(&mut buf)
        .map_err(io_err)?;
    let ids = keys::parse_identity_file(&buf[..])?;
    Ok(wrap_identities(ids))
}

/// Parses a recipients file: one `age1…` a line, blank lines and `#` comments ignored.
///
/// # Errors
///
/// [`KinkoError::InvalidKey`] naming the first bad line, or when there is no key at all.
#[uniffi::export]
pub fn parse_recipients(text: String) -> Result<Vec<Arc<Recipient>>, KinkoError> {
    let list = keys::parse_recipients_file(text.as_bytes())?;
    Ok(list
        .into_iter()
        .map(|inner| Arc::new(Recipient { inner }))
        .collect())
}

fn wrap_identities(ids: Vec<keys::Identity>) -> Vec<Arc<Identity>> {
    ids.into_iter()
        .map(|inner| Arc::new(Identity { inner }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let id = Identity::generate();
        let encoded = id.expose_secret();
        let shown = format!("{id:?}");
        assert!(shown.contains(&id.to_public().to_string()), "{shown}");
        assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");

        let secret = Secret::new("correct horse battery staple".into());
        assert_eq!(format!("{secret:?}"), "Secret(..)");

        let err = Identity::parse(encoded[..encoded.len() - 1].to_owned()).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains(&encoded[16..40]), "{text}");
    }

    #[test]
    fn secret_keeps_the_string_it_was_given() {
        let secret = Secret::new(String::from("pass phrase"));
        assert_eq!(secret.expose(), "pass phrase");
        assert_eq!(secret.to_secret_string().expose_secret(), "pass phrase");
        assert!(!secret.is_empty());
    }
}
