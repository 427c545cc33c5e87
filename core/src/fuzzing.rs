//! Entry points for the cargo-fuzz targets in fuzz/ (compiled only with `--cfg fuzzing`).
//! Each target is a one-line call into here, so the fuzzed code paths are the library's own.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::sync::OnceLock;

use crate::envelope::{
    FIXED_HEADER_BYTES, Header, Keyring, Opener, Recipients, SealOptions, Suite, SymmetricKey, seal,
};
use crate::keys::{self, Identity, Recipient};

fn identity() -> Identity {
    Identity::from_secret_bytes([0x5a; 32])
}

fn symmetric() -> SymmetricKey {
    SymmetricKey::from_bytes([0xa5; 32])
}

/// Keyring without a passphrase: Argon2 would make every input slow, and its bounds are
/// checked by the parser before any Argon2 work.
fn keyring() -> Keyring {
    Keyring::new().identity(identity()).symmetric(symmetric())
}

const PLAINTEXT_LEN: usize = 3 * 4096 + 100;

fn plaintext() -> Vec<u8> {
    (0..PLAINTEXT_LEN).map(|i| (i * 31 % 251) as u8).collect()
}

/// A valid envelope (4 KiB chunks, 4 chunks) to the fuzz identity and key.
fn reference() -> &'static [u8] {
    static ENVELOPE: OnceLock<Vec<u8>> = OnceLock::new();
    ENVELOPE.get_or_init(|| {
        let recipients = Recipients::new()
            .x25519(identity().to_public())
            .symmetric(&symmetric());
        let options = SealOptions {
            suite: Suite::ChaCha20Poly1305,
            chunk_size: 4096,
            ..SealOptions::default()
        };
        seal(&plaintext()[..], Vec::new(), &recipients, options).expect("sealing to memory")
    })
}

/// Header parser: anything that parses re-serializes to the same bytes.
pub fn header(data: &[u8]) {
    if let Ok(header) = Header::from_bytes(data) {
        assert_eq!(header.as_bytes(), data);
        let _ = header.unwrap_key(&keyring());
    }
}

/// Stanza section: a valid fixed header part followed by fuzzer bytes (stanzas, metadata,
/// MAC), parsed and unwrapped with the fuzz keyring. Must never panic; the MAC must reject.
pub fn stanzas(data: &[u8]) {
    let mut bytes = reference()[..FIXED_HEADER_BYTES].to_vec();
    bytes.extend_from_slice(data);
    if let Ok(header) = Header::read(&mut &bytes[..]) {
        for s in header.stanzas() {
            let _ = (s.key_id(), s.argon2_params());
        }
        // Only a header whose MAC verifies may yield a key, and fuzz bytes cannot forge one
        // unless they copied the reference header's.
        if let Ok(dek) = header.unwrap_key(&keyring()) {
            header
                .verify_mac(&dek)
                .expect("unwrap_key returned a key whose MAC fails");
        }
    }
}

/// The opener. First byte 0: the data is an envelope. Otherwise the data edits the reference
/// envelope (XOR mask at an offset, then a cut), and anything that still opens must open to
/// the reference plaintext, through both the streaming and the seekable opener.
pub fn opener(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let envelope = if mode == 0 {
        rest.to_vec()
    } else {
        let mut env = reference().to_vec();
        if rest.len() >= 4 {
            let at = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % env.len();
            let cut = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
            for (i, b) in rest[4..].iter().enumerate() {
                if let Some(x) = env.get_mut(at + i) {
                    *x ^= b;
                }
            }
            if mode & 1 == 1 {
                env.truncate(env.len().saturating_sub(cut % 64));
            } else if mode & 2 == 2 {
                env.extend_from_slice(&rest[4..]);
            }
        }
        env
    };
    let mut out = Vec::new();
    if let Ok(mut opener) = Opener::new(&envelope[..], &keyring())
        && opener.copy_to(&mut out).is_ok()
    {
        assert_eq!(
            out,
            plaintext(),
            "a modified envelope opened to other plaintext"
        );
    }
    if let Ok(mut opener) = Opener::new_seekable(Cursor::new(&envelope), &keyring()) {
        let at = u64::from(mode) * 97;
        let mut got = Vec::new();
        if opener.seek(SeekFrom::Start(at)).is_ok() && opener.read_to_end(&mut got).is_ok() {
            let from = (at as usize).min(PLAINTEXT_LEN);
            assert_eq!(
                got,
                plaintext()[from..],
                "a range opened to other plaintext"
            );
        }
    }
}

/// Key parsing: whatever parses prints back to a string that parses to the same key.
pub fn keys(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = text.parse::<Recipient>() {
        assert_eq!(r.to_string().parse::<Recipient>().ok(), Some(r));
        assert_eq!(r.to_string(), text, "recipients have one encoding");
    }
    if let Ok(i) = text.parse::<Identity>() {
        use secrecy::ExposeSecret;
        let again: Identity = i
            .to_string()
            .expose_secret()
            .parse()
            .expect("own output parses");
        assert_eq!(again.to_public(), i.to_public());
    }
    let _ = keys::parse_identity_file(data);
    let _ = keys::parse_recipients_file(data);
}

#[cfg(test)]
mod tests {
    /// The fuzz hooks compile and hold on the checked-in vectors and simple edits, so the
    /// cargo-fuzz targets start from a working harness.
    #[test]
    fn hooks_accept_seed_inputs() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
        for entry in std::fs::read_dir(dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            super::header(&bytes);
            super::stanzas(&bytes[super::FIXED_HEADER_BYTES.min(bytes.len())..]);
            let mut raw = vec![0];
            raw.extend_from_slice(&bytes);
            super::opener(&raw);
            super::keys(&bytes);
        }
        let header = crate::envelope::Header::read(&mut super::reference()).unwrap();
        super::header(header.as_bytes());
        for mode in 1..8u8 {
            super::opener(&[mode, 0, 0, 0, 0]);
            super::opener(&[mode, 50, 0, 9, 0, 1, 2, 3]);
        }
        super::keys(b"age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq");
        super::keys(
            crate::keys::Identity::from_secret_bytes([1; 32])
                .to_public()
                .to_string()
                .as_bytes(),
        );
    }
}
