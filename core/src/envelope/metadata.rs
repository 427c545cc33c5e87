//! Encrypted file metadata: name, content type, plaintext size, modification time.

use zeroize::Zeroize;

use super::cipher::{Cipher, NONCE_BYTES};
use super::rng::RandomSource;
use super::{DataKey, Header, OpenError, PAYLOAD_NONCE_BYTES, SealError, Suite, kdf};

/// Longest file name or content type, in bytes.
pub const MAX_METADATA_FIELD: usize = 4096;

const HAS_SIZE: u8 = 0x01;
const HAS_MODIFIED: u8 = 0x02;

/// What an envelope says about its file. Encrypted in the header: only someone who can
/// unwrap the DEK sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// File name (no directories), or empty.
    pub name: String,
    /// MIME content type, or empty.
    pub content_type: String,
    /// Plaintext length in bytes. The opener fails if the payload holds a different number.
    pub size: Option<u64>,
    /// Modification time, seconds since the Unix epoch.
    pub modified: Option<i64>,
}

impl Metadata {
    fn encode(&self) -> Result<Vec<u8>, SealError> {
        for field in [&self.name, &self.content_type] {
            if field.len() > MAX_METADATA_FIELD {
                return Err(SealError::MetadataTooLong(field.len()));
            }
        }
        let mut out = Vec::with_capacity(1 + 4 + self.name.len() + self.content_type.len() + 16);
        let mut flags = 0;
        if self.size.is_some() {
            flags |= HAS_SIZE;
        }
        if self.modified.is_some() {
            flags |= HAS_MODIFIED;
        }
        out.push(flags);
        for field in [&self.name, &self.content_type] {
            out.extend_from_slice(&(field.len() as u16).to_be_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        if let Some(size) = self.size {
            out.extend_from_slice(&size.to_be_bytes());
        }
        if let Some(modified) = self.modified {
            out.extend_from_slice(&modified.to_be_bytes());
        }
        Ok(out)
    }

    fn decode(mut bytes: &[u8]) -> Option<Metadata> {
        fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = bytes.split_at_checked(n)?;
            *bytes = tail;
            Some(head)
        }
        fn string(bytes: &mut &[u8]) -> Option<String> {
            let len = u16::from_be_bytes(take(bytes, 2)?.try_into().ok()?);
            if usize::from(len) > MAX_METADATA_FIELD {
                return None;
            }
            String::from_utf8(take(bytes, usize::from(len))?.to_vec()).ok()
        }
        let flags = take(&mut bytes, 1)?[0];
        if flags & !(HAS_SIZE | HAS_MODIFIED) != 0 {
            return None;
        }
        let name = string(&mut bytes)?;
        let content_type = string(&mut bytes)?;
        let size = if flags & HAS_SIZE != 0 {
            Some(u64::from_be_bytes(take(&mut bytes, 8)?.try_into().ok()?))
        } else {
            None
        };
        let modified = if flags & HAS_MODIFIED != 0 {
            Some(i64::from_be_bytes(take(&mut bytes, 8)?.try_into().ok()?))
        } else {
            None
        };
        bytes.is_empty().then_some(Metadata {
            name,
            content_type,
            size,
            modified,
        })
    }

    /// Encrypts into the header's metadata field: nonce || ciphertext || tag.
    pub(crate) fn seal(
        &self,
        suite: Suite,
        dek: &DataKey,
        payload_nonce: &[u8; PAYLOAD_NONCE_BYTES],
        rng: &mut dyn RandomSource,
    ) -> Result<Vec<u8>, SealError> {
        let mut plaintext = self.encode()?;
        let mut nonce = [0; NONCE_BYTES];
        rng.fill(&mut nonce);
        let cipher = metadata_cipher(suite, dek, payload_nonce);
        let mut field = nonce.to_vec();
        let mut sealed = plaintext.clone();
        plaintext.zeroize();
        cipher.seal(&nonce, b"", &mut sealed);
        field.extend_from_slice(&sealed);
        Ok(field)
    }
}

fn metadata_cipher(suite: Suite, dek: &DataKey, payload_nonce: &[u8]) -> Cipher {
    let mut key = kdf::derive(kdf::METADATA_KEY, &[dek.expose_secret(), payload_nonce]);
    let cipher = Cipher::new(suite, &key);
    key.zeroize();
    cipher
}

impl Header {
    /// Decrypts the metadata with the DEK from [`Header::unwrap_key`]. The header MAC is
    /// checked first, whatever the DEK's origin: whoever holds a DEK can re-encrypt the
    /// metadata, and only the MAC binds it to the rest of the header.
    ///
    /// # Errors
    ///
    /// [`OpenError::HeaderAuthFailed`] if the DEK does not belong to this header or the
    /// header (metadata included) was altered; [`OpenError::MalformedHeader`] if it decrypts
    /// to an invalid encoding (only a faulty encoder can produce that).
    pub fn metadata(&self, dek: &DataKey) -> Result<Metadata, OpenError> {
        self.verify_mac(dek)?;
        let (nonce, sealed) = self.metadata.split_at(NONCE_BYTES);
        let nonce: &[u8; NONCE_BYTES] = nonce.try_into().expect("length checked when parsed");
        let cipher = metadata_cipher(self.suite, dek, &self.payload_nonce);
        let mut buf = sealed.to_vec();
        let len = cipher
            .open(nonce, b"", &mut buf)
            .map_err(|_| OpenError::HeaderAuthFailed)?;
        let metadata = Metadata::decode(&buf[..len]);
        buf.zeroize();
        metadata.ok_or(OpenError::MalformedHeader("metadata encoding is invalid"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_is_strict() {
        let cases = [
            Metadata::default(),
            Metadata {
                name: "報告書.pdf".into(),
                content_type: "application/pdf".into(),
                size: Some(0),
                modified: Some(-1),
            },
            Metadata {
                size: Some(u64::MAX),
                ..Metadata::default()
            },
        ];
        for m in cases {
            let enc = m.encode().unwrap();
            assert_eq!(Metadata::decode(&enc), Some(m.clone()));
            let mut longer = enc.clone();
            longer.push(0);
            assert_eq!(Metadata::decode(&longer), None, "trailing byte accepted");
            for cut in 0..enc.len() {
                assert_eq!(Metadata::decode(&enc[..cut]), None, "prefix {cut} accepted");
            }
        }
        assert_eq!(
            Metadata::decode(&[0x04, 0, 0, 0, 0]),
            None,
            "unknown flag accepted"
        );
    }

    #[test]
    fn long_fields_are_refused() {
        let m = Metadata {
            name: "x".repeat(MAX_METADATA_FIELD + 1),
            ..Metadata::default()
        };
        assert!(matches!(m.encode(), Err(SealError::MetadataTooLong(4097))));
    }
}
