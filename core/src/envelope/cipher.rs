//! The two payload suites behind one type, and the chunk nonce.
//!
//! Sealing and opening a chunk are pure functions of (key, index, last flag, bytes), so
//! chunks can be processed on any thread in any order (the pipeline in `seal`/`open`
//! relies on it).
//!
//! Both suites are *ring*'s (BoringSSL's assembly, the AEADs under rustls). On this project's
//! x86-64 machine it seals 64 KiB chunks with AES-256-GCM at 11 GB/s and ChaCha20-Poly1305 at
//! 2.6 GB/s, against 4.1 and 1.6 GB/s for the RustCrypto crates (`aes-gcm`,
//! `chacha20poly1305` 0.11), which run in these tests as an independent reference: both
//! implementations must produce the same bytes and open each other's output.

use ring::aead::{AES_256_GCM, Aad, Algorithm, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};

use super::Suite;

/// Length of an AEAD tag, for both suites.
pub const TAG_BYTES: usize = 16;
/// Length of an AEAD nonce, for both suites.
pub(crate) const NONCE_BYTES: usize = 12;

/// A keyed AEAD of either suite.
///
/// *ring* does not zeroize its key schedules, so dropping a `Cipher` overwrites its schedule
/// in place with the schedule of the all-zero key. The schedule is boxed so that it has one
/// address for its whole life: moving a `Cipher` moves only the pointer.
pub(crate) struct Cipher {
    suite: Suite,
    key: Box<LessSafeKey>,
}

/// The tag did not verify (or the ciphertext is shorter than a tag). Deliberately says no more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthFailed;

fn algorithm(suite: Suite) -> &'static Algorithm {
    match suite {
        Suite::Aes256Gcm => &AES_256_GCM,
        Suite::ChaCha20Poly1305 => &CHACHA20_POLY1305,
    }
}

fn schedule(suite: Suite, key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(algorithm(suite), key).expect("both suites take 32-byte keys"))
}

impl Cipher {
    pub(crate) fn new(suite: Suite, key: &[u8; 32]) -> Self {
        Cipher {
            suite,
            key: Box::new(schedule(suite, key)),
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
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), msg)
            .expect("chunks and keys are far below the AEAD length limits");
        tag.as_ref()
            .try_into()
            .expect("both suites have 16-byte tags")
    }

    /// Opens `buf` (ciphertext || tag) in place. On success returns the plaintext length (a
    /// prefix of `buf`). On failure `buf`'s message part is zeroed: it holds neither plaintext
    /// nor the ciphertext any more, so a caller that wants to try again keeps a copy.
    pub(crate) fn open(
        &self,
        nonce: &[u8; NONCE_BYTES],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<usize, AuthFailed> {
        let msg_len = buf.len().checked_sub(TAG_BYTES).ok_or(AuthFailed)?;
        let (msg, tag) = buf.split_at_mut(msg_len);
        self.open_detached(nonce, aad, msg, tag)?;
        Ok(msg_len)
    }

    /// Opens `msg` in place under the separate `tag`; zeroes `msg` on failure, like
    /// [`Cipher::open`].
    pub(crate) fn open_detached(
        &self,
        nonce: &[u8; NONCE_BYTES],
        aad: &[u8],
        msg: &mut [u8],
        tag: &[u8],
    ) -> Result<(), AuthFailed> {
        let tag: [u8; TAG_BYTES] = tag.try_into().map_err(|_| AuthFailed)?;
        self.key
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                tag.into(),
                msg,
                0..,
            )
            .map(|_| ())
            .map_err(|_| AuthFailed)
    }
}

impl Drop for Cipher {
    fn drop(&mut self) {
        // An assignment through the box writes the whole schedule at its one address;
        // `black_box` makes the compiler treat the written bytes as read, so the store is not
        // removed as dead (`zeroize` gets the same from volatile writes, which need `unsafe`).
        // Copies the compiler made while building the schedule are out of reach, as they are
        // for `zeroize`.
        *self.key = schedule(self.suite, &[0; 32]);
        std::hint::black_box(&*self.key);
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
    fn a_failed_open_releases_nothing() {
        for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
            let c = Cipher::new(suite, &[7; 32]);
            let mut sealed = b"hello".to_vec();
            c.seal(&chunk_nonce(3, false), b"", &mut sealed);
            // The wrong nonce decrypts to garbage, which must not stay in the buffer.
            let mut buf = sealed.clone();
            assert_eq!(
                c.open(&chunk_nonce(3, true), b"", &mut buf),
                Err(AuthFailed)
            );
            assert_eq!(
                &buf[..5],
                &[0; 5],
                "a failed open must not release plaintext"
            );
            let mut buf = sealed.clone();
            assert_eq!(c.open(&chunk_nonce(3, false), b"", &mut buf), Ok(5));
            assert_eq!(&buf[..5], b"hello");
            assert!(c.open(&chunk_nonce(0, false), b"", &mut [0u8; 15]).is_err());
            let mut msg = *b"hello";
            assert_eq!(
                c.open_detached(&chunk_nonce(3, false), b"", &mut msg, &sealed[5..20]),
                Err(AuthFailed),
                "a tag of the wrong length never verifies"
            );
        }
    }

    /// RustCrypto's `aes-gcm` and `chacha20poly1305` as an independent reference: the same
    /// bytes out, and each opens what the other sealed.
    mod reference {
        use super::*;
        use aes_gcm::aead::{AeadInOut, KeyInit};
        use proptest::prelude::*;

        fn reference_seal(
            suite: Suite,
            key: &[u8; 32],
            nonce: &[u8; 12],
            aad: &[u8],
            msg: &mut [u8],
        ) -> [u8; 16] {
            let tag = match suite {
                Suite::Aes256Gcm => aes_gcm::Aes256Gcm::new(key.into())
                    .encrypt_inout_detached(nonce.into(), aad, msg.into())
                    .map(<[u8; 16]>::from),
                Suite::ChaCha20Poly1305 => chacha20poly1305::ChaCha20Poly1305::new(key.into())
                    .encrypt_inout_detached(nonce.into(), aad, msg.into())
                    .map(<[u8; 16]>::from),
            };
            tag.expect("short messages")
        }

        proptest! {
            #[test]
            fn matches_the_rustcrypto_crates(
                chacha in any::<bool>(),
                key in any::<[u8; 32]>(),
                nonce in any::<[u8; 12]>(),
                aad in proptest::collection::vec(any::<u8>(), 0..40),
                msg in proptest::collection::vec(any::<u8>(), 0..600),
            ) {
                let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
                let ours = Cipher::new(suite, &key);
                let mut sealed = msg.clone();
                ours.seal(&nonce, &aad, &mut sealed);
                let mut theirs = msg.clone();
                let tag = reference_seal(suite, &key, &nonce, &aad, &mut theirs);
                theirs.extend_from_slice(&tag);
                prop_assert_eq!(&sealed, &theirs);
                prop_assert_eq!(ours.open(&nonce, &aad, &mut theirs), Ok(msg.len()));
                prop_assert_eq!(&theirs[..msg.len()], &msg[..]);
            }
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
