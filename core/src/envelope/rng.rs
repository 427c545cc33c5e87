//! Where the envelope's randomness comes from.
//!
//! Sealing needs fresh randomness for the DEK, the payload nonce, X25519 ephemeral secrets,
//! salts and the metadata nonce. Production code always draws from the operating system;
//! the crate's own tests substitute a seeded BLAKE3 XOF so that test vectors are reproducible.
//! The trait is crate-private on purpose: no caller outside this crate can make sealing
//! deterministic.

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
