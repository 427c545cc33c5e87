//! X25519 identities and recipients in age's encodings.
//!
//! Kinko uses the same key encodings as [age], so keys made by `age-keygen` or `rage-keygen`
//! work with Kinko and Kinko's keys work with age tools:
//!
//! - an [`Identity`] (secret key) is 32 bytes, Bech32-encoded with the HRP `AGE-SECRET-KEY-`
//!   and printed in upper case: `AGE-SECRET-KEY-1…` (74 characters);
//! - a [`Recipient`] (public key) is the X25519 public key of an identity, Bech32-encoded with
//!   the HRP `age` in lower case: `age1…` (62 characters).
//!
//! Decoding is strict: the checksum must be Bech32 (not Bech32m), the payload exactly 32 bytes
//! with zero padding bits (so every key has exactly one encoding), and the string must not mix
//! upper and lower case. Identities are accepted in either case, as age accepts them; recipients
//! only in lower case, the form every age tool prints.
//!
//! Identity and recipient files hold one key per line; blank lines and lines starting with `#`
//! are ignored, so the files `age-keygen` writes (and [`Identity::identity_file_contents`]
//! writes) parse with [`parse_identity_file`].
//!
//! [age]: https://c2sp.org/age#native-x25519-recipients-and-identities

use std::fmt;
use std::io::{BufRead, Read};
use std::str::FromStr;

use bech32::primitives::decode::{CharError, UncheckedHrpstring, UncheckedHrpstringError};
use bech32::{Bech32, ByteIterExt, Fe32IterExt, Hrp};
use secrecy::SecretString;
use subtle::ConstantTimeEq;
use x25519_dalek::{PublicKey, SharedSecret, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

/// Bech32 HRP of an X25519 recipient (public key), in the case it is printed.
const RECIPIENT_HRP: &str = "age";

/// Bech32 HRP of an X25519 identity (secret key), lower case as the checksum is computed over
/// it; identities are printed in upper case.
const IDENTITY_HRP: &str = "age-secret-key-";

/// Length of an X25519 secret or public key in bytes.
const KEY_BYTES: usize = 32;

/// Length of an encoded identity: HRP (15) + separator (1) + 52 data characters
/// (32 bytes = 256 bits in 5-bit groups, rounded up) + 6 checksum characters.
const IDENTITY_STRING_LEN: usize = IDENTITY_HRP.len() + 1 + (KEY_BYTES * 8).div_ceil(5) + 6;

/// Longest line, in bytes including its line ending, that the key file parsers accept. A key
/// line is at most 74 characters; this bound only keeps a hostile file from being buffered
/// whole.
const MAX_LINE_BYTES: usize = 4096;

/// An error parsing a key or a key file.
///
/// No variant carries the text that failed to parse, so an error message never repeats
/// (possibly secret) key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The string is not a valid X25519 recipient (`age1…`); `reason` says which check failed.
    #[error("invalid recipient: {reason}")]
    InvalidRecipient {
        /// Which check failed, e.g. "bad Bech32 checksum".
        reason: &'static str,
    },
    /// The string is not a valid X25519 identity (`AGE-SECRET-KEY-1…`); `reason` says which
    /// check failed, never which characters were wrong.
    #[error("invalid identity: {reason}")]
    InvalidIdentity {
        /// Which check failed, e.g. "bad Bech32 checksum".
        reason: &'static str,
    },
    /// A line of an identity or recipient file is neither blank, a comment, nor a valid key of
    /// the expected kind. The line's contents are not included.
    #[error("line {line}: {reason}")]
    BadLine {
        /// 1-based number of the offending line.
        line: usize,
        /// Which check failed, e.g. "bad Bech32 checksum".
        reason: &'static str,
    },
    /// An identity or recipient file has no keys (it is empty or only comments and blank lines).
    #[error("no keys found")]
    NoKeys,
    /// Reading an identity or recipient file failed.
    #[error("could not read keys: {0}")]
    Io(#[from] std::io::Error),
}

/// An X25519 identity (secret key), which opens envelopes sealed to its [`Recipient`].
///
/// The secret is zeroized on drop. `Debug` prints only the public key (`Identity(age1…)`);
/// there is no `Display`: the secret encoding is only available through
/// [`Identity::to_string`], which returns a [`SecretString`].
#[derive(Clone)]
pub struct Identity {
    secret: StaticSecret,
    public: PublicKey,
}

impl Identity {
    /// Generates a new identity from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// Panics if the OS random number generator fails: there is no safe way to make a key
    /// without it.
    pub fn generate() -> Identity {
        let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
        if let Err(err) = getrandom::fill(bytes.as_mut()) {
            panic!("OS random number generator failed, cannot generate an identity: {err}");
        }
        Identity::from_secret_bytes(*bytes)
    }

    /// Makes an identity from 32 secret bytes (used as given; X25519 clamps them when they are
    /// used). Meant for test vectors and deterministic keys; use [`Identity::generate`] otherwise.
    pub fn from_secret_bytes(mut bytes: [u8; KEY_BYTES]) -> Identity {
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey::from(&secret);
        Identity { secret, public }
    }

    /// Returns the recipient (public key) that envelopes for this identity are sealed to.
    pub fn to_public(&self) -> Recipient {
        Recipient(self.public)
    }

    /// Encodes this identity as age does: `AGE-SECRET-KEY-1…`, upper case, 74 characters.
    ///
    /// The result is byte for byte what age's `x25519::Identity::to_string` gives for the same
    /// secret. It is built in one allocation of its final size, so no partial copy is left
    /// behind in freed memory.
    // Deliberately not `Display`: the secret must not be printable by accident.
    pub fn to_string(&self) -> SecretString {
        let mut encoded = String::with_capacity(IDENTITY_STRING_LEN);
        let hrp = Hrp::parse_unchecked(IDENTITY_HRP);
        // Iterating the encoder directly (rather than `bech32::encode_upper`) avoids the
        // intermediate stack buffer `encode_*_to_fmt` would leave behind un-zeroized.
        encoded.extend(
            self.secret
                .as_bytes()
                .iter()
                .copied()
                .bytes_to_fes()
                .with_checksum::<Bech32>(&hrp)
                .chars()
                .map(|c| c.to_ascii_uppercase()),
        );
        debug_assert_eq!(encoded.len(), IDENTITY_STRING_LEN);
        SecretString::from(encoded)
    }

    /// Returns the contents of an identity file as `age-keygen` writes it:
    ///
    /// ```text
    /// # created: {created}
    /// # public key: age1…
    /// AGE-SECRET-KEY-1…
    /// ```
    ///
    /// `created` is written as given (age writes an RFC 3339 time such as
    /// `2024-05-01T12:00:00+02:00`); line breaks in it are replaced by spaces so it stays one
    /// comment line. [`parse_identity_file`] and age both read the result back.
    pub fn identity_file_contents(&self, created: &str) -> SecretString {
        use secrecy::ExposeSecret;
        use std::fmt::Write;

        let public = self.to_public().to_string();
        let secret = self.to_string();
        let len = "# created: \n# public key: \n\n".len()
            + created.len()
            + public.len()
            + secret.expose_secret().len();
        let mut contents = String::with_capacity(len);
        contents.push_str("# created: ");
        contents.extend(created.chars().map(|c| match c {
            '\n' | '\r' => ' ',
            c => c,
        }));
        // Writing to a String cannot fail and stays within the capacity reserved above.
        let _ = write!(
            contents,
            "\n# public key: {public}\n{}\n",
            secret.expose_secret()
        );
        SecretString::from(contents)
    }

    /// The X25519 secret, for the envelope's stanza code.
    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

impl FromStr for Identity {
    type Err = KeyError;

    /// Parses `AGE-SECRET-KEY-1…` (upper case, as age prints it, or all lower case). Mixed
    /// case, another HRP, a bad checksum or a payload other than 32 bytes is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_identity(s).map_err(|m| KeyError::InvalidIdentity {
            reason: m.identity_reason(),
        })
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Identity")
            .field(&format_args!("{}", self.to_public()))
            .finish()
    }
}

/// An X25519 recipient (public key): envelopes sealed to it open with its [`Identity`].
///
/// Prints (`Display`) and parses (`FromStr`) as `age1…`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Recipient(PublicKey);

impl Recipient {
    /// Makes a recipient from a raw 32-byte X25519 public key (any 32 bytes are accepted here;
    /// low-order keys are refused when an envelope is sealed to them).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Recipient {
        Recipient(PublicKey::from(bytes))
    }

    /// The raw 32-byte X25519 public key.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        self.0.as_bytes()
    }

    /// The X25519 public key, for the envelope's stanza code.
    pub(crate) fn public_key(&self) -> PublicKey {
        self.0
    }
}

impl FromStr for Recipient {
    type Err = KeyError;

    /// Parses `age1…` (lower case only, as every age tool prints it). Another HRP (including an
    /// identity given by mistake), mixed or upper case, a bad checksum or a payload other than
    /// 32 bytes is an error.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_recipient(s).map_err(|m| KeyError::InvalidRecipient {
            reason: m.recipient_reason(),
        })
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(RECIPIENT_HRP);
        // The only possible error besides `fmt::Error` is "too long", impossible for 32 bytes.
        bech32::encode_lower_to_fmt::<Bech32, _>(f, hrp, self.as_bytes()).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Recipient")
            .field(&format_args!("{self}"))
            .finish()
    }
}

/// X25519 with the all-zero-output check (low-order points): returns `None` when the shared
/// secret is all zero, checked in constant time (subtle).
///
/// A low-order (or zero) public key gives the all-zero shared secret whatever the secret
/// key is, so a stanza built on it would be readable by anyone; the format rejects it (see
/// FORMAT.md, stanza kind `01`).
pub(crate) fn x25519_agree(secret: &StaticSecret, public: &PublicKey) -> Option<SharedSecret> {
    let shared = secret.diffie_hellman(public);
    let all_zero = shared
        .as_bytes()
        .iter()
        .fold(0u8, |acc, b| acc | b)
        .ct_eq(&0);
    if bool::from(all_zero) {
        None
    } else {
        Some(shared)
    }
}

/// [`x25519_agree`] on raw bytes, for test vectors (Wycheproof, RFC 7748) outside the crate.
///
/// Not part of Kinko's API: the result is a bare secret, not zeroized on drop.
#[doc(hidden)]
pub fn x25519_agree_bytes(
    secret: [u8; KEY_BYTES],
    public: [u8; KEY_BYTES],
) -> Option<[u8; KEY_BYTES]> {
    let secret = StaticSecret::from(secret);
    x25519_agree(&secret, &PublicKey::from(public)).map(|shared| shared.to_bytes())
}

/// Parses an identity file: one `AGE-SECRET-KEY-1…` identity a line.
///
/// Blank lines and lines starting with `#` (after trimming surrounding whitespace) are ignored;
/// any other line must be a valid identity, or the error names its 1-based line number (and
/// never its contents). A file without any identity is [`KeyError::NoKeys`]. Lines are
/// zeroized after they are parsed. Lines longer than 4 KiB are refused.
pub fn parse_identity_file(reader: impl BufRead) -> Result<Vec<Identity>, KeyError> {
    parse_key_file(reader, |s| {
        parse_identity(s).map_err(Malformed::identity_reason)
    })
}

/// Parses a recipients file: one `age1…` recipient a line, with the same rules as
/// [`parse_identity_file`] (comments, blank lines, line numbers in errors, no keys is an error).
pub fn parse_recipients_file(reader: impl BufRead) -> Result<Vec<Recipient>, KeyError> {
    parse_key_file(reader, |s| {
        parse_recipient(s).map_err(Malformed::recipient_reason)
    })
}

/// Reads `reader` line by line, skipping blank and comment lines, parsing every other line with
/// `parse`. The line buffer is zeroized between lines and on return.
fn parse_key_file<R: BufRead, T>(
    mut reader: R,
    parse: impl Fn(&str) -> Result<T, &'static str>,
) -> Result<Vec<T>, KeyError> {
    let mut keys = Vec::new();
    // Sized for the longest accepted line, so `read_until` never reallocates (which would
    // leave a copy of the line behind in freed memory).
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_LINE_BYTES + 1));
    let mut line = 0;
    loop {
        buf.zeroize();
        // `take` bounds how much one line can buffer; one extra byte tells "too long" apart.
        let n = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line += 1;
        if buf.len() > MAX_LINE_BYTES {
            return Err(KeyError::BadLine {
                line,
                reason: "line too long",
            });
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            return Err(KeyError::BadLine {
                line,
                reason: "not valid UTF-8",
            });
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        keys.push(parse(text).map_err(|reason| KeyError::BadLine { line, reason })?);
    }
    if keys.is_empty() {
        return Err(KeyError::NoKeys);
    }
    Ok(keys)
}

/// Why a string is not a valid key. Carries nothing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformed {
    Empty,
    /// Not Bech32 at all: no separator, a character outside the Bech32 alphabet, or an
    /// invalid HRP.
    NotBech32,
    MixedCase,
    /// A recipient in upper case.
    UpperCaseRecipient,
    /// An identity where a recipient was expected.
    IsIdentity,
    /// A recipient where an identity was expected.
    IsRecipient,
    /// Some other HRP (e.g. a plugin key or an unrelated Bech32 string).
    WrongHrp,
    /// The checksum does not verify as Bech32 (this includes Bech32m strings), or the string
    /// is longer than Bech32's 90 characters.
    Checksum,
    /// The payload is not exactly 32 bytes, or its padding bits are not zero.
    Length,
}

impl Malformed {
    fn common_reason(self) -> &'static str {
        match self {
            Malformed::Empty => "empty string",
            Malformed::NotBech32 => "not a Bech32 string",
            Malformed::MixedCase => "mixes upper and lower case",
            Malformed::UpperCaseRecipient => "recipients must be lower case (age1...)",
            Malformed::IsIdentity => {
                "this is a secret key (AGE-SECRET-KEY-1...), not a recipient; \
                 use its public key (age1...)"
            }
            Malformed::IsRecipient => {
                "this is a recipient (age1...), not an identity (AGE-SECRET-KEY-1...)"
            }
            Malformed::WrongHrp => "not an X25519 key (wrong prefix)",
            Malformed::Checksum => "bad Bech32 checksum",
            Malformed::Length => "key is not 32 bytes",
        }
    }

    fn identity_reason(self) -> &'static str {
        match self {
            Malformed::WrongHrp => "not an X25519 identity (expected AGE-SECRET-KEY-1...)",
            m => m.common_reason(),
        }
    }

    fn recipient_reason(self) -> &'static str {
        match self {
            Malformed::WrongHrp => "not an X25519 recipient (expected age1...)",
            m => m.common_reason(),
        }
    }
}

/// The kind of key a parser expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Recipient,
    Identity,
}

/// Decodes a Bech32 key string of the `expected` kind to its 32-byte payload, zeroized on drop.
fn decode_key(s: &str, expected: KeyKind) -> Result<Zeroizing<[u8; KEY_BYTES]>, Malformed> {
    if s.is_empty() {
        return Err(Malformed::Empty);
    }
    let unchecked = UncheckedHrpstring::new(s).map_err(|e| match e {
        UncheckedHrpstringError::Char(CharError::MixedCase) => Malformed::MixedCase,
        _ => Malformed::NotBech32,
    })?;
    // The HRP is checked before the checksum, so a key of the wrong kind gets a useful message
    // even when it is also damaged. Mixed case was refused above, so the HRP is in one case.
    let hrp = unchecked.hrp();
    let hrp = hrp.as_bytes();
    let is_identity = hrp.eq_ignore_ascii_case(IDENTITY_HRP.as_bytes());
    let is_recipient = hrp.eq_ignore_ascii_case(RECIPIENT_HRP.as_bytes());
    match expected {
        KeyKind::Identity if is_identity => {}
        KeyKind::Identity if is_recipient => return Err(Malformed::IsRecipient),
        KeyKind::Recipient if hrp == RECIPIENT_HRP.as_bytes() => {}
        KeyKind::Recipient if is_recipient => return Err(Malformed::UpperCaseRecipient),
        KeyKind::Recipient if is_identity => return Err(Malformed::IsIdentity),
        _ => return Err(Malformed::WrongHrp),
    }
    // Fails on a bad checksum or a string over Bech32's 90 characters.
    let checked = unchecked
        .validate_and_remove_checksum::<Bech32>()
        .map_err(|_| Malformed::Checksum)?;
    // Exactly 32 bytes with at most 4 zero padding bits: 52 data characters, canonical.
    checked
        .validate_segwit_padding()
        .map_err(|_| Malformed::Length)?;
    let mut iter = checked.byte_iter();
    if iter.len() != KEY_BYTES {
        return Err(Malformed::Length);
    }
    let mut bytes = Zeroizing::new([0u8; KEY_BYTES]);
    for (dst, src) in bytes.iter_mut().zip(&mut iter) {
        *dst = src;
    }
    Ok(bytes)
}

fn parse_identity(s: &str) -> Result<Identity, Malformed> {
    let bytes = decode_key(s, KeyKind::Identity)?;
    Ok(Identity::from_secret_bytes(*bytes))
}

fn parse_recipient(s: &str) -> Result<Recipient, Malformed> {
    let bytes = decode_key(s, KeyKind::Recipient).map_err(|m| {
        // A secret key pasted as a recipient: say so even if it is not valid Bech32 at all.
        if looks_like_identity(s) {
            Malformed::IsIdentity
        } else {
            m
        }
    })?;
    Ok(Recipient::from_bytes(*bytes))
}

/// Whether `s` starts like an identity, in any case.
fn looks_like_identity(s: &str) -> bool {
    const PREFIX: &[u8] = b"age-secret-key-1";
    s.as_bytes()
        .get(..PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C2SP age testkit identity (`testdata/testkit/x25519*`).
    const TESTKIT_SK: [u8; 32] = [
        0xca, 0x16, 0x26, 0x25, 0x2c, 0x53, 0xcf, 0x1a, 0x4d, 0xc4, 0x66, 0x95, 0xe7, 0xfc, 0xc4,
        0x65, 0x94, 0xcb, 0x4c, 0xca, 0xde, 0xdb, 0x67, 0x12, 0xdf, 0xda, 0x07, 0x53, 0xf3, 0xae,
        0x35, 0x5e,
    ];

    #[test]
    fn secret_and_public_key_accessors() {
        let id = Identity::from_secret_bytes(TESTKIT_SK);
        assert_eq!(id.secret().as_bytes(), &TESTKIT_SK);
        let r = id.to_public();
        assert_eq!(r.public_key(), PublicKey::from(id.secret()));
        assert_eq!(r.public_key().as_bytes(), r.as_bytes());
    }

    #[test]
    fn agree_is_symmetric_and_nonzero() {
        let a = Identity::from_secret_bytes([1; 32]);
        let b = Identity::from_secret_bytes([2; 32]);
        let ab = x25519_agree(a.secret(), &b.to_public().public_key()).expect("non-zero");
        let ba = x25519_agree(b.secret(), &a.to_public().public_key()).expect("non-zero");
        assert_eq!(ab.as_bytes(), ba.as_bytes());
    }

    #[test]
    fn agree_rejects_low_order_points() {
        let id = Identity::from_secret_bytes(TESTKIT_SK);
        // Zero, one, and the order-8 point from the age testkit (`x25519_low_order`).
        let mut one = [0u8; 32];
        one[0] = 1;
        let order8: [u8; 32] = [
            0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83,
            0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd,
            0xd0, 0x9f, 0x11, 0xd7,
        ];
        for p in [[0u8; 32], one, order8] {
            assert!(x25519_agree(id.secret(), &PublicKey::from(p)).is_none());
        }
    }

    #[test]
    fn identity_string_length_constant() {
        let id = Identity::from_secret_bytes(TESTKIT_SK);
        assert_eq!(IDENTITY_STRING_LEN, 74);
        use secrecy::ExposeSecret;
        assert_eq!(id.to_string().expose_secret().len(), IDENTITY_STRING_LEN);
    }

    #[test]
    fn malformed_kinds() {
        let id = Identity::from_secret_bytes(TESTKIT_SK);
        let r = id.to_public().to_string();
        assert_eq!(
            decode_key("", KeyKind::Recipient).unwrap_err(),
            Malformed::Empty
        );
        assert_eq!(
            decode_key("age", KeyKind::Identity).unwrap_err(),
            Malformed::NotBech32
        );
        assert_eq!(parse_identity(&r).unwrap_err(), Malformed::IsRecipient);
        assert_eq!(
            parse_recipient(&r.to_uppercase()).unwrap_err(),
            Malformed::UpperCaseRecipient
        );
    }
}
