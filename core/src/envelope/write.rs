//! Serializing a header and computing its MAC.

use super::{
    DataKey, FIXED_HEADER_BYTES, Header, MAC_BYTES, MAGIC, PAYLOAD_NONCE_BYTES, Stanza, Suite,
    VERSION, kdf,
};

/// Everything a header holds except its MAC.
pub(crate) struct HeaderParts {
    pub(crate) suite: Suite,
    pub(crate) chunk_exponent: u8,
    pub(crate) payload_nonce: [u8; PAYLOAD_NONCE_BYTES],
    pub(crate) stanzas: Vec<Stanza>,
    pub(crate) metadata: Vec<u8>,
}

impl HeaderParts {
    /// Encodes the header and appends the MAC keyed from `dek`.
    pub(crate) fn seal(self, dek: &DataKey) -> Header {
        let body_len: usize = self.stanzas.iter().map(|s| 3 + s.body.len()).sum();
        let mut bytes = Vec::with_capacity(
            FIXED_HEADER_BYTES + 2 + body_len + 4 + self.metadata.len() + MAC_BYTES,
        );
        bytes.extend_from_slice(&MAGIC);
        bytes.push(VERSION);
        bytes.push(self.suite.to_byte());
        bytes.push(self.chunk_exponent);
        bytes.push(0); // flags
        bytes.extend_from_slice(&self.payload_nonce);
        let count = u16::try_from(self.stanzas.len()).expect("stanza count checked by the caller");
        bytes.extend_from_slice(&count.to_be_bytes());
        for stanza in &self.stanzas {
            bytes.push(stanza.kind);
            let len = u16::try_from(stanza.body.len()).expect("stanza bodies are small");
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(&stanza.body);
        }
        let metadata_len = u32::try_from(self.metadata.len()).expect("metadata length checked");
        bytes.extend_from_slice(&metadata_len.to_be_bytes());
        bytes.extend_from_slice(&self.metadata);
        let mac = header_mac(dek, &bytes);
        bytes.extend_from_slice(mac.as_bytes());
        Header {
            suite: self.suite,
            chunk_exponent: self.chunk_exponent,
            payload_nonce: self.payload_nonce,
            stanzas: self.stanzas,
            metadata: self.metadata,
            bytes,
        }
    }
}

/// BLAKE3 keyed hash of the header bytes before the MAC, keyed from the DEK.
pub(crate) fn header_mac(dek: &DataKey, covered: &[u8]) -> blake3::Hash {
    let mut key = kdf::derive(kdf::HEADER_MAC_KEY, &[dek.expose_secret()]);
    let mac = blake3::keyed_hash(&key, covered);
    zeroize::Zeroize::zeroize(&mut key);
    mac
}
