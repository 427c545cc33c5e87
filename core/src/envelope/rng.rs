//! Where the envelope's randomness comes from.
//!
//! Sealing needs fresh randomness for the DEK, the payload nonce, X25519 ephemeral secrets,
//! salts and the metadata nonce. Sealing always draws from the operating system; the crate's
//! own tests substitute a seeded BLAKE3 XOF so that test vectors are reproducible.
//!
//! One use is deterministic on purpose: the vault re-wraps a file's DEK to a share's
//! recipients with [`DerivedRandom`] keyed by that DEK, so every download of the share gets
//! the same header bytes and a broken download can resume (see `vault::sealing::bind`).
//! The trait is crate-private: no caller outside this crate can make sealing deterministic.

/// A source of random bytes for sealing.
pub(crate) trait RandomSource {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's CSPRNG.
#[derive(Debug, Default)]
pub(crate) struct OsRandom;

impl RandomSource for OsRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        // Sealing without good randomness would silently reuse keys and nonces: fail loudly.
        getrandom::fill(buf).expect("OS RNG failed: refusing to seal without randomness");
    }
}

/// A deterministic stream that only the holder of `key` can predict: the BLAKE3 extendable
/// output of `derive_key(context, key || input)`, a PRF of `input` under `key`. The same
/// inputs give the same bytes, so it may replace fresh randomness only where equal inputs
/// *should* give equal output and `key` is a secret at least as strong as what the output
/// protects. Zeroized on drop.
pub(crate) struct DerivedRandom(blake3::OutputReader);

impl DerivedRandom {
    pub(crate) fn new(context: &str, key: &[u8; 32], input: &[u8]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(context);
        hasher.update(key).update(input);
        let out = hasher.finalize_xof();
        zeroize::Zeroize::zeroize(&mut hasher);
        DerivedRandom(out)
    }
}

impl RandomSource for DerivedRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
    }
}

impl Drop for DerivedRandom {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// A deterministic byte stream for test vectors: the BLAKE3 extendable output of a seed.
#[cfg(test)]
pub(crate) struct SeededRandom(blake3::OutputReader);

#[cfg(test)]
impl SeededRandom {
    pub(crate) fn new(seed: &str) -> Self {
        SeededRandom(blake3::Hasher::new().update(seed.as_bytes()).finalize_xof())
    }
}

#[cfg(test)]
impl RandomSource for SeededRandom {
    fn fill(&mut self, buf: &mut [u8]) {
        self.0.fill(buf);
    }
}
