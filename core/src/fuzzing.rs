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
        edited(reference(), mode, rest)
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

/// The audit signing key of the fuzz exports.
fn audit_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[0x3c; 32])
}

/// A valid export of 12 records (every kind of actor and outcome) with checkpoints after
/// records 5, 10 and 12, and the chain head after each record (`heads[i]`: record `i + 1`).
struct AuditExport {
    text: Vec<u8>,
    heads: Vec<[u8; 32]>,
}

fn reference_export() -> &'static AuditExport {
    use crate::vault::audit::{Actor, AuditRecord, Checkpoint, Outcome};
    use crate::vault::{ShareId, Timestamp, TokenId, UserId};
    static EXPORT: OnceLock<AuditExport> = OnceLock::new();
    EXPORT.get_or_init(|| {
        let mut text = Vec::new();
        let mut heads = Vec::new();
        let mut prev = [0; 32];
        for seq in 1..=12u64 {
            let n = seq as u8;
            let actor = match seq % 5 {
                0 => Actor::System,
                1 => Actor::User(UserId([n; 16])),
                2 => Actor::Token(UserId([n; 16]), TokenId([n ^ 0xff; 16])),
                3 => Actor::Share(ShareId([n; 16])),
                _ => Actor::Anonymous,
            };
            let rec = AuditRecord {
                seq,
                time: Timestamp(1_800_000_000 + seq),
                actor,
                action: "share.download".into(),
                object: format!("share:{seq}"),
                client: "203.0.113.7".into(),
                outcome: if seq % 2 == 0 {
                    Outcome::Allowed
                } else {
                    Outcome::Refused("download limit reached".into())
                },
                detail: format!("downloads={seq}/12 \"quoted\" ünïcode"),
                prev,
            };
            prev = rec.hash();
            heads.push(prev);
            text.extend_from_slice(rec.to_json().to_string().as_bytes());
            text.push(b'\n');
            if matches!(seq, 5 | 10 | 12) {
                let c = Checkpoint::sign(&audit_key(), seq, prev, rec.time);
                text.extend_from_slice(c.to_json().to_string().as_bytes());
                text.push(b'\n');
            }
        }
        AuditExport { text, heads }
    })
}

/// Audit export verification: what a third party runs on a file anyone may have edited. First
/// byte 0: the data is an export. Otherwise the data edits the reference export (XOR mask at
/// an offset, then a cut or an append). Must never panic, and whatever verifies must be the
/// reference chain up to one of its checkpoints (fuzz bytes cannot forge a signature).
pub fn audit_export(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let reference = reference_export();
    let text = if mode == 0 {
        rest.to_vec()
    } else {
        edited(&reference.text, mode, rest)
    };
    let key = audit_key().verifying_key();
    if let Ok(report) = crate::vault::audit::verify_export(&mut &text[..], &key) {
        let records = usize::try_from(report.records).expect("small");
        assert!(
            matches!(records, 5 | 10 | 12),
            "an edited export verified with {records} records"
        );
        assert_eq!(report.head, reference.heads[records - 1]);
        assert_eq!(report.signed_through, report.records);
    }
}

/// `reference` edited by fuzz bytes: `rest[..4]` picks an offset and a cut, the remaining
/// bytes are XORed in from the offset; mode bit 0 cuts the tail, bit 1 appends the bytes.
fn edited(reference: &[u8], mode: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = reference.to_vec();
    if rest.len() >= 4 {
        let at = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % out.len();
        let cut = usize::from(u16::from_le_bytes([rest[2], rest[3]]));
        for (i, b) in rest[4..].iter().enumerate() {
            if let Some(x) = out.get_mut(at + i) {
                *x ^= b;
            }
        }
        if mode & 1 == 1 {
            out.truncate(out.len().saturating_sub(cut % 64));
        } else if mode & 2 == 2 {
            out.extend_from_slice(&rest[4..]);
        }
    }
    out
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
        // The reference export verifies whole and cut at each checkpoint; edits do not.
        let export = &super::reference_export().text;
        let key = super::audit_key().verifying_key();
        let whole = crate::vault::audit::verify_export(&mut &export[..], &key).unwrap();
        assert_eq!(whole.records, 12);
        let mut raw = vec![0];
        raw.extend_from_slice(export);
        super::audit_export(&raw);
        for mode in 1..8u8 {
            super::audit_export(&[mode, 0, 0, 0, 0]);
            super::audit_export(&[mode, 50, 0, 9, 0, 1, 2, 3]);
            super::audit_export(&[mode, 0xff, 0x01, 0x40, 0, b'x']);
        }
        super::keys(
            crate::keys::Identity::from_secret_bytes([1; 32])
                .to_public()
                .to_string()
                .as_bytes(),
        );
    }
}
