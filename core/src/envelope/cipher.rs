//! The two payload suites behind one type, and the chunk nonce.
//!
//! Sealing and opening a chunk are pure functions of (key, index, last flag, bytes), so
//! chunks can be processed on any thread in any order (the pipeline in `seal`/`open`
//! relies on it).

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::Suite;

/// Length of an AEAD tag, for both suites.
pub const TAG_BYTES: usize = 16;
/// Length of an AEAD nonce, for both suites.
pub(crate) const NONCE_BYTES: usize = 12;

/// A keyed AEAD of either suite.
pub(crate) enum Cipher {
    // Boxed: the expanded AES key schedule (with its GHASH state) is much larger than ChaCha's key.
    Aes(Box<Aes256Gcm>),
    ChaCha(ChaCha20Poly1305),
}

/// The tag did not verify (or the ciphertext is shorter than a tag). Deliberately says no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthFailed;

impl Cipher {
    pub(crate) fn new(suite: Suite, key: &[u8; 32]) -> Self {
        match suite {
            Suite::Aes256Gcm => Cipher::Aes(Box::new(
                Aes256Gcm::new_from_slice(key).expect("a 32-byte key is an AES-256 key"),
            )),
            Suite::ChaCha20Poly1305 => Cipher::ChaCha(
                ChaCha20Poly1305::new_from_slice(key).expect("a 32-byte key is a ChaCha20 key"),
            ),
        }
    }

    /// Seals `buf` in place and appends the tag.
    pub(crate) fn seal(&self, nonce: &[u8; NONCE_BYTES], aad: &[u8], buf: &mut Vec<u8>) {
        let tag = self.seal_detached(nonce, aad, buf);
        buf.extend_from_slice(&tag);
    }

    /// Seals `msg` in place and returns the tag.
    pub(crate) fn seal_detached(
        &self,
        nonce: &[u8; NONCE_BYTES],
        aad: &[u8],
        msg: &mut [u8],
    ) -> [u8; TAG_BYTES] {
        match self {
            Cipher::Aes(c) => c
                .encrypt_inout_detached(nonce.into(), aad, msg.into())
                .map(<[u8; TAG_BYTES]>::from),
            Cipher::ChaCha(c) => c
                .encrypt_inout_detached(nonce.into(), aad, msg.into())
                .map(<[u8; TAG_BYTES]>::from),
        }
        .expect("chunks and keys are far below the AEAD length limits")
    }

    /// Opens `buf` (ciphertext || tag) in place. On success returns the plaintext length (a
    /// prefix of `buf`); on failure the plaintext is never exposed: both suites check the tag
    /// before decrypting.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_BYTES],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, AuthFailed> {
        let msg_len = buf.len().checked_sub(TAG_BYTES).ok_or(AuthFailed)?;
        let (msg, tag) = buf.split_at_mut(msg_len);
        let tag: &[u8; TAG_BYTES] = (&*tag).try_into().expect("split leaves exactly a tag");
        let result = match self {
            Cipher::Aes(c) => c.decrypt_inout_detached(nonce.into(), aad, msg.into(), tag.into()),
            Cipher::ChaCha(c) => {
                c.decrypt_inout_detached(nonce.into(), aad, msg.into(), tag.into())
            }
        };
        result.map(|()| msg_len).map_err(|_| AuthFailed)
    }
}

/// The nonce of payload chunk `index`: an 88-bit big-endian counter followed by the last flag.
pub(crate) fn chunk_nonce(index: u64, last: bool) -> [u8; NONCE_BYTES] {
    let mut nonce = [0; NONCE_BYTES];
    // The counter is 88 bits; a u64 index fills its low 64 bits, the high 24 stay zero.
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_layout() {
        assert_eq!(chunk_nonce(0, false), [0; 12]);
        assert_eq!(chunk_nonce(1, true), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1]);
        assert_eq!(
            chunk_nonce(u64::MAX, false),
            [0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]
        );
    }

    #[test]
    fn open_rejects_and_leaves_ciphertext() {
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let c = Cipher::new(suite, &[7; 32]);
            let mut buf = b"hello".to_vec();
            c.seal(&chunk_nonce(3, false), b"", &mut buf);
            let sealed = buf.clone();
            assert!(c.open(&chunk_nonce(3, true), b"", &mut buf).is_err());
            assert_eq!(buf, sealed, "a failed open must not release plaintext");
            assert_eq!(c.open(&chunk_nonce(3, false), b"", &mut buf), Ok(5));
            assert_eq!(&buf[..5], b"hello");
            assert!(c.open(&chunk_nonce(0, false), b"", &mut [0u8; 15]).is_err());
        }
    }
}

/// Wycheproof vectors through the exact wrapper the payload, metadata and stanzas use.
#[cfg(test)]
mod wycheproof_tests {
    use super::*;
    use wycheproof::TestResult;
    use wycheproof::aead::{TestName, TestSet};

    fn run(name: TestName, suite: Suite) -> usize {
        let set = TestSet::load(name).expect("bundled Wycheproof test set");
        let mut ran = 0;
        for group in set.test_groups {
            // Kinko only ever uses 256-bit keys, 96-bit nonces and 128-bit tags.
            if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
                continue;
            }
            for test in group.tests {
                let key: [u8; 32] = test.key[..].try_into().unwrap();
                let nonce: [u8; NONCE_BYTES] = test.nonce[..].try_into().unwrap();
                let cipher = Cipher::new(suite, &key);
                let mut sealed = test.ct.to_vec();
                sealed.extend_from_slice(&test.tag);
                let opened = cipher.open(&nonce, &test.aad, &mut sealed);
                match test.result {
                    TestResult::Valid | TestResult::Acceptable => {
                        assert_eq!(opened, Ok(test.pt.len()), "tc {}", test.tc_id);
                        assert_eq!(&sealed[..test.pt.len()], &test.pt[..], "tc {}", test.tc_id);
                        let mut buf = test.pt.to_vec();
                        cipher.seal(&nonce, &test.aad, &mut buf);
                        assert_eq!(&buf[..test.ct.len()], &test.ct[..], "tc {}", test.tc_id);
                        assert_eq!(&buf[test.ct.len()..], &test.tag[..], "tc {}", test.tc_id);
                    }
                    TestResult::Invalid => {
                        assert_eq!(opened, Err(AuthFailed), "tc {}", test.tc_id)
                    }
                }
                ran += 1;
            }
        }
        ran
    }

    #[test]
    fn aes_256_gcm() {
        assert!(run(TestName::AesGcm, Suite::Aes256Gcm) > 50);
    }

    #[test]
    fn chacha20_poly1305() {
        assert!(run(TestName::ChaCha20Poly1305, Suite::ChaCha20Poly1305) > 50);
    }
}
