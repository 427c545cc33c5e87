//! Parsing a header. Bounded: the parser reads exactly the header's bytes and never more
//! than the limits in docs/FORMAT.md allow, whatever the input claims.

use std::io::{self, Read};

use super::{
    FIXED_HEADER_BYTES, Header, MAC_BYTES, MAGIC, MAX_CHUNK_EXPONENT, MAX_METADATA_BYTES,
    MAX_STANZA_BODY, MAX_STANZAS, MIN_CHUNK_EXPONENT, MIN_METADATA_BYTES, OpenError,
    PAYLOAD_NONCE_BYTES, Stanza, StanzaKind, Suite, VERSION, stanza,
};

/// A reader that keeps every byte it hands out: the MAC covers the header's exact bytes.
struct Recording<'a, R: Read + ?Sized> {
    inner: &'a mut R,
    bytes: Vec<u8>,
}

impl<R: Read + ?Sized> Recording<'_, R> {
    fn take(&mut self, n: usize) -> Result<&[u8], OpenError> {
        let start = self.bytes.len();
        self.bytes.resize(start + n, 0);
        let mut filled = start;
        while filled < start + n {
            match self.inner.read(&mut self.bytes[filled..start + n]) {
                Ok(0) => return Err(OpenError::TruncatedHeader),
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(OpenError::Io(e)),
            }
        }
        Ok(&self.bytes[start..])
    }

    fn u8(&mut self) -> Result<u8, OpenError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, OpenError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, OpenError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl Header {
    /// Reads and parses a header from `reader`, consuming exactly the header's bytes: the
    /// reader is left at the first payload byte. Checks the structure and limits only; the
    /// MAC is checked by [`Header::unwrap_key`], which needs a key.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotAnEnvelope`], [`OpenError::UnsupportedVersion`],
    /// [`OpenError::UnsupportedSuite`], [`OpenError::MalformedHeader`],
    /// [`OpenError::Argon2ParamsOutOfBounds`], [`OpenError::TruncatedHeader`] and
    /// [`OpenError::Io`], checked in that order of appearance in the bytes.
    pub fn read<R: Read + ?Sized>(reader: &mut R) -> Result<Header, OpenError> {
        let mut r = Recording {
            inner: reader,
            bytes: Vec::with_capacity(256),
        };

        // Magic, read byte by byte so that a short non-envelope input says "not an
        // envelope" rather than "truncated".
        for expected in MAGIC {
            match r.u8() {
                Ok(b) if b == expected => {}
                Ok(_) => return Err(OpenError::NotAnEnvelope),
                Err(OpenError::TruncatedHeader) if r.bytes.len() == 1 => {
                    return Err(OpenError::NotAnEnvelope);
                }
                Err(e) => return Err(e),
            }
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(OpenError::UnsupportedVersion(version));
        }
        let suite_byte = r.u8()?;
        let suite = Suite::from_byte(suite_byte).ok_or(OpenError::UnsupportedSuite(suite_byte))?;
        let chunk_exponent = r.u8()?;
        if !(MIN_CHUNK_EXPONENT..=MAX_CHUNK_EXPONENT).contains(&chunk_exponent) {
            return Err(OpenError::MalformedHeader("chunk size out of range"));
        }
        if r.u8()? != 0 {
            return Err(OpenError::MalformedHeader("unknown header flags"));
        }
        let payload_nonce: [u8; PAYLOAD_NONCE_BYTES] = r
            .take(PAYLOAD_NONCE_BYTES)?
            .try_into()
            .expect("took exactly the nonce length");
        debug_assert_eq!(r.bytes.len(), FIXED_HEADER_BYTES);

        let count = usize::from(r.u16()?);
        if count == 0 {
            return Err(OpenError::MalformedHeader("no stanzas"));
        }
        if count > MAX_STANZAS {
            return Err(OpenError::MalformedHeader("too many stanzas"));
        }
        let mut stanzas = Vec::with_capacity(count);
        let mut passphrases = 0;
        for _ in 0..count {
            let kind = r.u8()?;
            let len = usize::from(r.u16()?);
            if len > MAX_STANZA_BODY {
                return Err(OpenError::MalformedHeader("stanza body too long"));
            }
            let body = r.take(len)?.to_vec();
            let stanza = Stanza { kind, body };
            match stanza.kind() {
                StanzaKind::X25519 if len != stanza::X25519_BODY_BYTES => {
                    return Err(OpenError::MalformedHeader("bad X25519 stanza length"));
                }
                StanzaKind::Symmetric if len != stanza::SYMMETRIC_BODY_BYTES => {
                    return Err(OpenError::MalformedHeader(
                        "bad symmetric-key stanza length",
                    ));
                }
                StanzaKind::Passphrase => {
                    if len != stanza::PASSPHRASE_BODY_BYTES {
                        return Err(OpenError::MalformedHeader("bad passphrase stanza length"));
                    }
                    passphrases += 1;
                    if passphrases > 1 {
                        return Err(OpenError::MalformedHeader(
                            "more than one passphrase stanza",
                        ));
                    }
                    let p = stanza::passphrase_params(&stanza.body);
                    if !p.within_bounds() {
                        return Err(OpenError::Argon2ParamsOutOfBounds {
                            m_cost: p.m_cost,
                            t_cost: p.t_cost,
                            p_cost: p.p_cost,
                        });
                    }
                }
                StanzaKind::Unknown(0) => {
                    return Err(OpenError::MalformedHeader("stanza kind 0 is invalid"));
                }
                _ => {}
            }
            stanzas.push(stanza);
        }

        let metadata_len = r.u32()? as usize;
        if !(MIN_METADATA_BYTES..=MAX_METADATA_BYTES).contains(&metadata_len) {
            return Err(OpenError::MalformedHeader("metadata length out of range"));
        }
        let metadata = r.take(metadata_len)?.to_vec();
        r.take(MAC_BYTES)?;

        Ok(Header {
            suite,
            chunk_exponent,
            payload_nonce,
            stanzas,
            metadata,
            bytes: r.bytes,
        })
    }

    /// Parses a header that fills `bytes` exactly.
    ///
    /// # Errors
    ///
    /// As [`Header::read`], and [`OpenError::MalformedHeader`] if bytes follow the header.
    pub fn from_bytes(bytes: &[u8]) -> Result<Header, OpenError> {
        let mut rest = bytes;
        let header = Header::read(&mut rest)?;
        if !rest.is_empty() {
            return Err(OpenError::MalformedHeader("bytes follow the header"));
        }
        Ok(header)
    }
}
