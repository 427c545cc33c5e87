//! Round trips, tampering, truncation, splicing and error precision for the envelope.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use proptest::prelude::*;
use secrecy::SecretString;

use super::*;
use crate::keys::Identity;

const SMALL_CHUNK: usize = 4096;

fn data(len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new()
        .update(&[seed])
        .update(&(len as u64).to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn options(suite: Suite, chunk_size: usize) -> SealOptions {
    SealOptions {
        suite,
        chunk_size,
        metadata: Metadata::default(),
    }
}

fn seal_to(plain: &[u8], recipients: &Recipients, opts: SealOptions) -> Vec<u8> {
    seal(plain, Vec::new(), recipients, opts).unwrap()
}

fn open_with(envelope: &[u8], keyring: &Keyring) -> Result<Vec<u8>, OpenError> {
    let mut out = Vec::new();
    open(envelope, &mut out, keyring)?;
    Ok(out)
}

fn fast_passphrase() -> Argon2Params {
    Argon2Params {
        m_cost: 64,
        t_cost: 1,
        p_cost: 1,
    }
}

struct Pair {
    alice: Identity,
    bob: Identity,
}

fn pair() -> Pair {
    Pair {
        alice: Identity::from_secret_bytes([1; 32]),
        bob: Identity::from_secret_bytes([2; 32]),
    }
}

fn to_alice() -> (Recipients, Keyring) {
    let p = pair();
    (
        Recipients::new().x25519(p.alice.to_public()),
        Keyring::new().identity(p.alice),
    )
}

#[test]
fn round_trips_at_chunk_edges_both_suites_and_both_write_paths() {
    let (recipients, keyring) = to_alice();
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        for len in [
            0,
            1,
            SMALL_CHUNK - 1,
            SMALL_CHUNK,
            SMALL_CHUNK + 1,
            3 * SMALL_CHUNK,
            5 * SMALL_CHUNK + 7,
            // Several pipeline batches (64 chunks each at this chunk size).
            200 * SMALL_CHUNK,
            200 * SMALL_CHUNK + 3,
        ] {
            let plain = data(len, 1);
            // Pull path: seal() reads straight into chunk buffers.
            let a = seal_to(&plain, &recipients, options(suite, SMALL_CHUNK));
            // Push path: odd-sized writes through the Write impl.
            let mut sealer =
                Sealer::new(Vec::new(), &recipients, options(suite, SMALL_CHUNK)).unwrap();
            for piece in plain.chunks(1000) {
                sealer.write_all(piece).unwrap();
            }
            let b = sealer.finish().unwrap();
            assert_eq!(a.len(), b.len(), "len {len}");
            let header = Header::read(&mut &a[..]).unwrap();
            assert_eq!(
                a.len() as u64,
                header.len() as u64 + header.payload_len(len as u64).unwrap()
            );
            for env in [&a, &b] {
                assert_eq!(
                    open_with(env, &keyring).unwrap(),
                    plain,
                    "len {len} {suite}"
                );
                // Through the Read impl with a small buffer.
                let mut opener = Opener::new(&env[..], &keyring).unwrap();
                let mut out = Vec::new();
                let mut buf = [0u8; 777];
                loop {
                    let n = opener.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[..n]);
                }
                assert_eq!(out, plain);
            }
        }
    }
}

#[test]
fn every_recipient_opens_and_strangers_do_not() {
    let p = pair();
    let carol = Identity::from_secret_bytes([3; 32]);
    let recipients = Recipients::new()
        .x25519(p.alice.to_public())
        .x25519(p.bob.to_public());
    let env = seal_to(b"for both", &recipients, SealOptions::default());
    assert_eq!(
        open_with(&env, &Keyring::new().identity(p.alice)).unwrap(),
        b"for both"
    );
    assert_eq!(
        open_with(&env, &Keyring::new().identity(p.bob)).unwrap(),
        b"for both"
    );
    assert!(matches!(
        open_with(&env, &Keyring::new().identity(carol)),
        Err(OpenError::NoMatchingStanza)
    ));
}

#[test]
fn passphrase_and_symmetric_stanzas() {
    let key = SymmetricKey::from_bytes([9; 32]);
    let recipients = Recipients::new()
        .passphrase_with_params(SecretString::from("correct horse"), fast_passphrase())
        .symmetric(&key);
    let env = seal_to(b"secret", &recipients, SealOptions::default());
    let by_pass = Keyring::new().passphrase(SecretString::from("correct horse"));
    assert_eq!(open_with(&env, &by_pass).unwrap(), b"secret");
    assert_eq!(
        open_with(&env, &Keyring::new().symmetric(key)).unwrap(),
        b"secret"
    );
    let wrong = Keyring::new()
        .passphrase(SecretString::from("battery staple"))
        .symmetric(SymmetricKey::from_bytes([8; 32]));
    assert!(matches!(
        open_with(&env, &wrong),
        Err(OpenError::NoMatchingStanza)
    ));
}

#[test]
fn seal_refuses_bad_recipient_lists_and_options() {
    let pass = || SecretString::from("x");
    assert!(matches!(
        seal(
            &b""[..],
            Vec::new(),
            &Recipients::new(),
            SealOptions::default()
        ),
        Err(SealError::NoRecipients)
    ));
    let two = Recipients::new()
        .passphrase_with_params(pass(), fast_passphrase())
        .passphrase_with_params(pass(), fast_passphrase());
    assert!(matches!(
        seal(&b""[..], Vec::new(), &two, SealOptions::default()),
        Err(SealError::TooManyPassphrases)
    ));
    let heavy = Recipients::new().passphrase_with_params(
        pass(),
        Argon2Params {
            m_cost: 1 << 20,
            t_cost: 1,
            p_cost: 1,
        },
    );
    assert!(matches!(
        seal(&b""[..], Vec::new(), &heavy, SealOptions::default()),
        Err(SealError::Argon2ParamsOutOfBounds { .. })
    ));
    let (recipients, _) = to_alice();
    for bad in [0, 1000, 2048, 1 << 23, 65537] {
        assert!(matches!(
            seal(
                &b""[..],
                Vec::new(),
                &recipients,
                options(Suite::Aes256Gcm, bad)
            ),
            Err(SealError::InvalidChunkSize(_))
        ));
    }
    // A low-order point as recipient: the shared secret would be all zero.
    let low_order = crate::keys::Recipient::from_bytes([0; 32]);
    assert!(matches!(
        seal(
            &b""[..],
            Vec::new(),
            &Recipients::new().x25519(low_order),
            SealOptions::default()
        ),
        Err(SealError::InvalidRecipient(_))
    ));
}

#[test]
fn metadata_round_trips_and_size_is_enforced() {
    let (recipients, keyring) = to_alice();
    let metadata = Metadata {
        name: "plan.pdf".into(),
        content_type: "application/pdf".into(),
        size: Some(5),
        modified: Some(1_700_000_000),
    };
    let opts = SealOptions {
        metadata: metadata.clone(),
        ..SealOptions::default()
    };
    let env = seal(&b"12345"[..], Vec::new(), &recipients, opts.clone()).unwrap();
    let opener = Opener::new(&env[..], &keyring).unwrap();
    assert_eq!(opener.metadata(), &metadata);
    assert!(matches!(
        seal(&b"123456"[..], Vec::new(), &recipients, opts),
        Err(SealError::SizeMismatch {
            declared: 5,
            actual: 6
        })
    ));
}

/// A detached sealer's header comes only from `finish_detached`: `finish` refuses rather than
/// return a payload that opens for nobody. And `Header::metadata` checks the header MAC
/// itself, whatever the DEK's origin: a header whose MAC byte changed does not decrypt.
#[test]
fn detached_finish_is_refused_and_metadata_checks_the_mac() {
    let (recipients, keyring) = to_alice();
    let opts = || options(Suite::Aes256Gcm, SMALL_CHUNK);
    let mut sealer = Sealer::detached(Vec::new(), &recipients, opts()).unwrap();
    sealer.write_all(b"abc").unwrap();
    assert!(
        matches!(sealer.finish(), Err(SealError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidInput)
    );

    let mut sealer = Sealer::detached(Vec::new(), &recipients, opts()).unwrap();
    sealer.write_all(b"abc").unwrap();
    let (header, _) = sealer.finish_detached().unwrap();
    let dek = header.unwrap_key(&keyring).unwrap();
    assert!(header.metadata(&dek).is_ok());
    let mut bytes = header.to_bytes();
    *bytes.last_mut().unwrap() ^= 1;
    let tampered = Header::from_bytes(&bytes).unwrap();
    assert!(matches!(
        tampered.metadata(&dek),
        Err(OpenError::HeaderAuthFailed)
    ));
}

#[test]
fn detached_header_plus_payload_equals_an_envelope() {
    let (recipients, keyring) = to_alice();
    let plain = data(3 * SMALL_CHUNK + 5, 2);
    let mut sealer = Sealer::detached(
        Vec::new(),
        &recipients,
        options(Suite::Aes256Gcm, SMALL_CHUNK),
    )
    .unwrap();
    sealer.write_all(&plain).unwrap();
    let (header, payload) = sealer.finish_detached().unwrap();
    let dek = header.unwrap_key(&keyring).unwrap();
    assert_eq!(
        header.metadata(&dek).unwrap().size,
        Some(plain.len() as u64)
    );
    let mut env = header.to_bytes();
    env.extend_from_slice(&payload);
    assert_eq!(open_with(&env, &keyring).unwrap(), plain);
    let mut out = Vec::new();
    Opener::from_parts(header, dek, &payload[..])
        .unwrap()
        .copy_to(&mut out)
        .unwrap();
    assert_eq!(out, plain);
}

#[test]
fn rewrap_changes_who_opens_without_touching_the_payload() {
    let p = pair();
    let kek_old = SymmetricKey::from_bytes([5; 32]);
    let kek_new = SymmetricKey::from_bytes([6; 32]);
    let plain = data(2 * SMALL_CHUNK + 1, 3);
    let env = seal_to(
        &plain,
        &Recipients::new().symmetric(&kek_old),
        options(Suite::ChaCha20Poly1305, SMALL_CHUNK),
    );
    let header = Header::read(&mut &env[..]).unwrap();
    let payload = &env[header.len()..];
    let dek = header
        .unwrap_key(&Keyring::new().symmetric(kek_old.clone()))
        .unwrap();
    let old_id = kek_old.key_id();
    let rotated = header
        .rewrap(
            &dek,
            |s| s.key_id() != Some(old_id),
            &Recipients::new()
                .symmetric(&kek_new)
                .x25519(p.bob.to_public()),
        )
        .unwrap();
    let mut env2 = rotated.to_bytes();
    env2.extend_from_slice(payload);
    assert_eq!(
        open_with(&env2, &Keyring::new().symmetric(kek_new)).unwrap(),
        plain
    );
    assert_eq!(
        open_with(&env2, &Keyring::new().identity(p.bob)).unwrap(),
        plain
    );
    assert!(matches!(
        open_with(&env2, &Keyring::new().symmetric(kek_old)),
        Err(OpenError::NoMatchingStanza)
    ));
    // A DEK from another file cannot re-sign this header.
    let other = DataKey::from_bytes([0; 32]);
    assert!(matches!(
        header.rewrap(&other, |_| true, &Recipients::new()),
        Err(RewrapError::Open(OpenError::HeaderAuthFailed))
    ));
    // Removing everything is refused: nobody could open it.
    assert!(matches!(
        header.rewrap(&dek, |_| false, &Recipients::new()),
        Err(RewrapError::Seal(SealError::NoRecipients))
    ));
}

/// An envelope of 2.5 chunks sealed to alice, for the exhaustive tamper tests.
fn tamper_fixture(suite: Suite) -> (Vec<u8>, Vec<u8>, Keyring) {
    let (recipients, keyring) = to_alice();
    let plain = data(2 * SMALL_CHUNK + SMALL_CHUNK / 2, 4);
    let env = seal_to(&plain, &recipients, options(suite, SMALL_CHUNK));
    (plain, env, keyring)
}

#[test]
fn every_flipped_byte_fails() {
    for suite in [Suite::Aes256Gcm, Suite::ChaCha20Poly1305] {
        let (_, env, keyring) = tamper_fixture(suite);
        let header_len = Header::read(&mut &env[..]).unwrap().len();
        for i in 0..env.len() {
            for bit in [0x01, 0x80] {
                let mut bad = env.clone();
                bad[i] ^= bit;
                let err = open_with(&bad, &keyring).expect_err("flipped byte opened");
                if i >= header_len {
                    let index = ((i - header_len) / (SMALL_CHUNK + TAG_BYTES)) as u64;
                    assert!(
                        matches!(err, OpenError::ChunkAuthFailed { index: j } if j == index),
                        "byte {i}: {err:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn header_errors_are_precise() {
    let (_, env, keyring) = tamper_fixture(Suite::Aes256Gcm);
    let header = Header::read(&mut &env[..]).unwrap();
    let mut bad = env.clone();
    bad[0] = b'a';
    assert!(matches!(
        open_with(&bad, &keyring),
        Err(OpenError::NotAnEnvelope)
    ));
    let mut bad = env.clone();
    bad[8] = 2;
    assert!(matches!(
        open_with(&bad, &keyring),
        Err(OpenError::UnsupportedVersion(2))
    ));
    let mut bad = env.clone();
    bad[9] = 7;
    assert!(matches!(
        open_with(&bad, &keyring),
        Err(OpenError::UnsupportedSuite(7))
    ));
    let mut bad = env.clone();
    bad[10] = 30;
    assert!(matches!(
        open_with(&bad, &keyring),
        Err(OpenError::MalformedHeader(_))
    ));
    // A byte of the metadata or the MAC: the DEK unwraps but the MAC does not verify.
    for i in [header.len() - 1, header.len() - 40] {
        let mut bad = env.clone();
        bad[i] ^= 1;
        assert!(
            matches!(open_with(&bad, &keyring), Err(OpenError::HeaderAuthFailed)),
            "byte {i}"
        );
    }
    // Changing the suite byte to the other suite: the MAC catches it.
    let mut bad = env.clone();
    bad[9] = 2;
    assert!(matches!(
        open_with(&bad, &keyring),
        Err(OpenError::HeaderAuthFailed)
    ));
    assert!(matches!(
        open_with(b"", &keyring),
        Err(OpenError::NotAnEnvelope)
    ));
    assert!(matches!(
        open_with(b"hello world", &keyring),
        Err(OpenError::NotAnEnvelope)
    ));
}

#[test]
fn hostile_argon2_parameters_are_refused_before_any_work() {
    let recipients =
        Recipients::new().passphrase_with_params(SecretString::from("pw"), fast_passphrase());
    let env = seal_to(b"x", &recipients, SealOptions::default());
    // Stanza 0 body starts at 28 + 2 + 3; m_cost is after the 16-byte salt.
    let m_at = 28 + 2 + 3 + 16;
    let mut bad = env.clone();
    bad[m_at..m_at + 4].copy_from_slice(&(4u32 << 20).to_be_bytes()); // 4 GiB
    let keyring = Keyring::new().passphrase(SecretString::from("pw"));
    assert!(matches!(
        open_with(&bad, &keyring),
        Err(OpenError::Argon2ParamsOutOfBounds { m_cost, .. }) if m_cost == 4 << 20
    ));
    let mut bad = env.clone();
    bad[m_at + 4..m_at + 8].copy_from_slice(&1000u32.to_be_bytes());
    assert!(matches!(
        Header::read(&mut &bad[..]),
        Err(OpenError::Argon2ParamsOutOfBounds { t_cost: 1000, .. })
    ));
}

#[test]
fn every_truncation_fails() {
    let (_, env, keyring) = tamper_fixture(Suite::ChaCha20Poly1305);
    let header_len = Header::read(&mut &env[..]).unwrap().len();
    for cut in 0..env.len() {
        let err = open_with(&env[..cut], &keyring).expect_err("truncated envelope opened");
        if cut > header_len {
            assert!(
                matches!(
                    err,
                    OpenError::Truncated | OpenError::ChunkAuthFailed { .. }
                ),
                "cut {cut}: {err:?}"
            );
        } else if cut >= 8 {
            assert!(
                matches!(err, OpenError::TruncatedHeader | OpenError::Truncated),
                "cut {cut}: {err:?}"
            );
        }
    }
    // Cut exactly at a chunk boundary: the chunk before is intact but not the last.
    let boundary = header_len + 2 * (SMALL_CHUNK + TAG_BYTES);
    assert!(matches!(
        open_with(&env[..boundary], &keyring),
        Err(OpenError::Truncated)
    ));
    assert!(matches!(
        open_with(&env[..header_len], &keyring),
        Err(OpenError::Truncated)
    ));
}

#[test]
fn trailing_data_fails() {
    let (recipients, keyring) = to_alice();
    // After a full final chunk, appended bytes are recognised as such.
    let full = seal_to(
        &data(2 * SMALL_CHUNK, 5),
        &recipients,
        options(Suite::Aes256Gcm, SMALL_CHUNK),
    );
    for extra in [
        &b"x"[..],
        &[0; 16],
        &[0; 17],
        &[0; SMALL_CHUNK + TAG_BYTES],
        &[0; 3 * SMALL_CHUNK],
    ] {
        let mut bad = full.clone();
        bad.extend_from_slice(extra);
        assert!(
            matches!(open_with(&bad, &keyring), Err(OpenError::TrailingData)),
            "{} extra bytes",
            extra.len()
        );
    }
    // After a short final chunk they merge into it and shift its tag: indistinguishable
    // from damage, so the final chunk fails authentication (docs/FORMAT.md).
    let (_, short, keyring) = tamper_fixture(Suite::Aes256Gcm);
    for extra in [&b"x"[..], &[0; 16], &[0; SMALL_CHUNK + TAG_BYTES]] {
        let mut bad = short.clone();
        bad.extend_from_slice(extra);
        assert!(
            matches!(
                open_with(&bad, &keyring),
                Err(OpenError::ChunkAuthFailed { index: 2 })
            ),
            "{} extra bytes",
            extra.len()
        );
    }
}

#[test]
fn reordered_duplicated_and_spliced_chunks_fail() {
    let (plain, env, keyring) = tamper_fixture(Suite::Aes256Gcm);
    let header_len = Header::read(&mut &env[..]).unwrap().len();
    let enc = SMALL_CHUNK + TAG_BYTES;
    let chunk = |e: &[u8], i: usize| {
        e[header_len + i * enc..(header_len + (i + 1) * enc).min(e.len())].to_vec()
    };
    let header = env[..header_len].to_vec();
    let build = |parts: &[Vec<u8>]| {
        let mut out = header.clone();
        for p in parts {
            out.extend_from_slice(p);
        }
        out
    };
    let (c0, c1, c2) = (chunk(&env, 0), chunk(&env, 1), chunk(&env, 2));
    assert_eq!(
        open_with(&build(&[c0.clone(), c1.clone(), c2.clone()]), &keyring).unwrap(),
        plain
    );
    let swapped = build(&[c1.clone(), c0.clone(), c2.clone()]);
    assert!(matches!(
        open_with(&swapped, &keyring),
        Err(OpenError::ChunkAuthFailed { index: 0 })
    ));
    let duplicated = build(&[c0.clone(), c0.clone(), c1.clone(), c2.clone()]);
    assert!(matches!(
        open_with(&duplicated, &keyring),
        Err(OpenError::ChunkAuthFailed { index: 1 })
    ));
    let dropped = build(&[c0.clone(), c2.clone()]);
    assert!(matches!(
        open_with(&dropped, &keyring),
        Err(OpenError::ChunkAuthFailed { index: 1 })
    ));
    // A chunk from another file to the same recipient, at the same position.
    let (_, other, _) = tamper_fixture(Suite::Aes256Gcm);
    let spliced = build(&[c0.clone(), chunk(&other, 1), c2.clone()]);
    assert!(matches!(
        open_with(&spliced, &keyring),
        Err(OpenError::ChunkAuthFailed { index: 1 })
    ));
    // This file's header on the other file's payload.
    let mut swapped_header = header.clone();
    swapped_header.extend_from_slice(&other[Header::read(&mut &other[..]).unwrap().len()..]);
    assert!(matches!(
        open_with(&swapped_header, &keyring),
        Err(OpenError::ChunkAuthFailed { index: 0 })
    ));
}

#[test]
fn no_plaintext_of_a_failed_chunk_is_released() {
    let (plain, env, keyring) = tamper_fixture(Suite::Aes256Gcm);
    let header_len = Header::read(&mut &env[..]).unwrap().len();
    let mut bad = env.clone();
    bad[header_len + SMALL_CHUNK + TAG_BYTES + 10] ^= 1; // inside chunk 1
    let mut out = Vec::new();
    let err = Opener::new(&bad[..], &keyring)
        .unwrap()
        .copy_to(&mut out)
        .unwrap_err();
    assert!(matches!(err, OpenError::ChunkAuthFailed { index: 1 }));
    assert_eq!(out, &plain[..SMALL_CHUNK], "only chunk 0 may come out");
    // The Read impl reports the same error, wrapped, and keeps failing.
    let mut opener = Opener::new(&bad[..], &keyring).unwrap();
    let mut sink = Vec::new();
    let io_err = opener.read_to_end(&mut sink).unwrap_err();
    assert!(matches!(
        OpenError::from_io(&io_err),
        Some(OpenError::ChunkAuthFailed { index: 1 })
    ));
    assert!(opener.read(&mut [0; 10]).is_err());
}

#[test]
fn seek_reads_only_what_it_needs_and_matches_plaintext() {
    let (recipients, keyring) = to_alice();
    let plain = data(10 * SMALL_CHUNK + 123, 6);
    let env = seal_to(&plain, &recipients, options(Suite::Aes256Gcm, SMALL_CHUNK));
    let mut opener = Opener::new_seekable(Cursor::new(&env), &keyring).unwrap();
    assert_eq!(opener.plaintext_len().unwrap(), plain.len() as u64);
    for (start, len) in [
        (0, 10),
        (4095, 2),
        (4096, 4096),
        (40000, 1000),
        (40960, 123),
        (5, 0),
    ] {
        opener.seek(SeekFrom::Start(start as u64)).unwrap();
        opener.set_end(Some((start + len) as u64));
        let mut got = Vec::new();
        opener.read_to_end(&mut got).unwrap();
        assert_eq!(got, &plain[start..start + len], "range {start}+{len}");
    }
    opener.set_end(None);
    assert_eq!(
        opener.seek(SeekFrom::End(-3)).unwrap(),
        plain.len() as u64 - 3
    );
    let mut tail = Vec::new();
    opener.read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &plain[plain.len() - 3..]);
    // A limit that was reached, then lifted: reading goes on.
    opener.seek(SeekFrom::Start(0)).unwrap();
    opener.set_end(Some(0));
    assert_eq!(opener.read(&mut [0; 8]).unwrap(), 0);
    opener.set_end(None);
    let mut all = Vec::new();
    opener.read_to_end(&mut all).unwrap();
    assert_eq!(all, plain);
    // Past the end: nothing, after the final chunk verified.
    opener
        .seek(SeekFrom::Start(plain.len() as u64 + 100))
        .unwrap();
    assert_eq!(opener.read(&mut [0; 8]).unwrap(), 0);

    // A range read touches only its chunks: a damaged chunk elsewhere does not matter.
    let header_len = Header::read(&mut &env[..]).unwrap().len();
    let mut bad = env.clone();
    bad[header_len + 7 * (SMALL_CHUNK + TAG_BYTES) + 1] ^= 1;
    let mut opener = Opener::new_seekable(Cursor::new(&bad), &keyring).unwrap();
    opener
        .seek(SeekFrom::Start(2 * SMALL_CHUNK as u64))
        .unwrap();
    opener.set_end(Some(3 * SMALL_CHUNK as u64));
    let mut got = Vec::new();
    opener.read_to_end(&mut got).unwrap();
    assert_eq!(got, &plain[2 * SMALL_CHUNK..3 * SMALL_CHUNK]);
    opener.set_end(None);
    let err = opener.read_to_end(&mut got).unwrap_err();
    assert!(matches!(
        OpenError::from_io(&err),
        Some(OpenError::ChunkAuthFailed { index: 7 })
    ));
}

/// Seals `plain` as the vault does: detached, so the metadata records its size.
fn seal_sized(plain: &[u8]) -> (Header, Vec<u8>, Keyring) {
    let (recipients, keyring) = to_alice();
    let mut sealer = Sealer::detached(
        Vec::new(),
        &recipients,
        options(Suite::Aes256Gcm, SMALL_CHUNK),
    )
    .unwrap();
    sealer.write_all(plain).unwrap();
    let (header, payload) = sealer.finish_detached().unwrap();
    (header, payload, keyring)
}

/// A seekable opener over a payload stored apart from its header (the vault's way).
fn open_payload(
    header: &Header,
    payload: Vec<u8>,
    keyring: &Keyring,
) -> Result<Opener<Cursor<Vec<u8>>>, OpenError> {
    let dek = header.unwrap_key(keyring).unwrap();
    Opener::from_parts_seekable(header.clone(), dek, Cursor::new(payload))
}

/// The `OpenError` inside an error from the `Read` impl.
fn unwrap_io(err: std::io::Error) -> OpenError {
    if OpenError::from_io(&err).is_none() {
        return OpenError::Io(err);
    }
    *err.into_inner().unwrap().downcast::<OpenError>().unwrap()
}

/// Reads as the server's download does: the length from `plaintext_len`, then `range`
/// (inclusive) or the whole file, with `set_end` at its end.
fn serve<R: Read + Seek>(
    opener: Result<Opener<R>, OpenError>,
    range: Option<(u64, u64)>,
) -> Result<Vec<u8>, OpenError> {
    let mut opener = opener?;
    let size = opener.plaintext_len()?;
    match range {
        Some((start, last)) => {
            opener.seek(SeekFrom::Start(start))?;
            opener.set_end(Some(last + 1));
        }
        None => opener.set_end(Some(size)),
    }
    let mut out = Vec::new();
    opener.read_to_end(&mut out).map_err(unwrap_io)?;
    Ok(out)
}

#[test]
fn payload_len_is_checked() {
    let header = Header::read(&mut &tamper_fixture(Suite::Aes256Gcm).1[..]).unwrap();
    let c = SMALL_CHUNK as u64;
    assert_eq!(header.payload_len(0), Some(16));
    assert_eq!(header.payload_len(c), Some(c + 16));
    assert_eq!(header.payload_len(c + 1), Some(c + 1 + 32));
    assert_eq!(header.payload_len(u64::MAX), None);
    assert_eq!(header.payload_len(u64::MAX - 100), None);
    for len in [0, 1, c - 1, c, c + 1, 7 * c + 3] {
        let payload = header.payload_len(len).unwrap();
        assert_eq!(header.plaintext_len(payload), Some(len), "len {len}");
    }
}

#[test]
fn seekable_open_refuses_a_payload_replaced_by_16_bytes() {
    let plain = data(10 * 1024, 9);
    // With the size in the metadata: refused before any chunk is read.
    let (header, _, keyring) = seal_sized(&plain);
    let err = open_payload(&header, vec![0; 16], &keyring).unwrap_err();
    assert!(matches!(err, OpenError::Truncated), "{err:?}");
    let mut env = header.to_bytes();
    env.extend_from_slice(&[0; 16]);
    let err = serve(Opener::new_seekable(Cursor::new(&env), &keyring), None).unwrap_err();
    assert!(matches!(err, OpenError::Truncated), "{err:?}");
    // Without a size, 16 bytes look like an empty file: reading to the end still opens
    // that "empty" final chunk and its tag fails.
    let (recipients, keyring) = to_alice();
    let unsized_env = seal_to(&plain, &recipients, options(Suite::Aes256Gcm, SMALL_CHUNK));
    let header_len = Header::read(&mut &unsized_env[..]).unwrap().len();
    let mut env = unsized_env[..header_len].to_vec();
    env.extend_from_slice(&[0; 16]);
    let opener = Opener::new_seekable(Cursor::new(&env), &keyring);
    assert_eq!(opener.as_ref().unwrap().plaintext_len().unwrap(), 0);
    let err = serve(opener, None).unwrap_err();
    assert!(
        matches!(err, OpenError::ChunkAuthFailed { index: 0 }),
        "{err:?}"
    );
}

#[test]
fn seekable_open_refuses_a_payload_cut_short() {
    let plain = data(10 * SMALL_CHUNK + 123, 10);
    let (header, payload, keyring) = seal_sized(&plain);
    let enc = SMALL_CHUNK + TAG_BYTES;
    // At every chunk boundary and inside chunks: a range inside what is left fails too.
    let cuts = (0..=10)
        .map(|k| k * enc)
        .chain([1, enc + 17, payload.len() - 1]);
    for cut in cuts {
        let prefix = payload[..cut].to_vec();
        let err = open_payload(&header, prefix.clone(), &keyring).unwrap_err();
        assert!(matches!(err, OpenError::Truncated), "cut {cut}: {err:?}");
        let err = serve(open_payload(&header, prefix, &keyring), Some((0, 9))).unwrap_err();
        assert!(matches!(err, OpenError::Truncated), "cut {cut}: {err:?}");
    }
    // Without a size, a read to the end meets the cut: the new final chunk was not sealed
    // as the last one.
    let (recipients, keyring) = to_alice();
    let env = seal_to(&plain, &recipients, options(Suite::Aes256Gcm, SMALL_CHUNK));
    let header_len = Header::read(&mut &env[..]).unwrap().len();
    let cut = &env[..header_len + 3 * enc];
    let err = serve(Opener::new_seekable(Cursor::new(cut), &keyring), None).unwrap_err();
    assert!(matches!(err, OpenError::Truncated), "{err:?}");
}

#[test]
fn seekable_open_refuses_trailing_bytes() {
    for len in [2 * SMALL_CHUNK, 2 * SMALL_CHUNK + SMALL_CHUNK / 2, 0] {
        let plain = data(len, 11);
        let (header, payload, keyring) = seal_sized(&plain);
        for extra in [1, 16, 17, SMALL_CHUNK + TAG_BYTES] {
            let mut longer = payload.clone();
            longer.extend(std::iter::repeat_n(0, extra));
            let err = open_payload(&header, longer, &keyring).unwrap_err();
            assert!(
                matches!(err, OpenError::TrailingData),
                "len {len} + {extra}: {err:?}"
            );
        }
    }
    // Without a size, a read to the end fails whatever was appended.
    let (recipients, keyring) = to_alice();
    let env = seal_to(
        &data(2 * SMALL_CHUNK, 11),
        &recipients,
        options(Suite::Aes256Gcm, SMALL_CHUNK),
    );
    for extra in [1, 16, 17, SMALL_CHUNK + TAG_BYTES] {
        let mut bad = env.clone();
        bad.extend(std::iter::repeat_n(0, extra));
        let err = serve(Opener::new_seekable(Cursor::new(&bad), &keyring), None).unwrap_err();
        assert!(
            matches!(err, OpenError::TrailingData | OpenError::Truncated),
            "{extra} extra bytes: {err:?}"
        );
    }
}

#[test]
fn hostile_size_near_u64_max_is_refused_without_overflow() {
    let (recipients, keyring) = to_alice();
    for size in [u64::MAX, u64::MAX - 100, u64::MAX / 2] {
        // The header goes out first; the sealer is dropped before it could notice the lie.
        let mut env = Vec::new();
        let opts = SealOptions {
            metadata: Metadata {
                size: Some(size),
                ..Metadata::default()
            },
            ..options(Suite::Aes256Gcm, SMALL_CHUNK)
        };
        drop(Sealer::new(&mut env, &recipients, opts).unwrap());
        env.extend_from_slice(&[0; 16]);
        let err = Opener::new_seekable(Cursor::new(&env), &keyring).unwrap_err();
        assert!(matches!(err, OpenError::Truncated), "size {size}: {err:?}");
    }
}

#[test]
fn seekable_open_with_a_size_serves_ranges_and_whole_files() {
    let c = SMALL_CHUNK;
    for len in [0, 1, c - 1, c, c + 1, 3 * c, 10 * 1024, 5 * c + 7] {
        let plain = data(len, 12);
        let (header, payload, keyring) = seal_sized(&plain);
        let open = || open_payload(&header, payload.clone(), &keyring);
        assert_eq!(open().unwrap().plaintext_len().unwrap(), len as u64);
        assert_eq!(serve(open(), None).unwrap(), plain, "len {len}");
        let mut env = header.to_bytes();
        env.extend_from_slice(&payload);
        let whole = serve(Opener::new_seekable(Cursor::new(&env), &keyring), None);
        assert_eq!(whole.unwrap(), plain, "len {len}");
        if len == 0 {
            continue;
        }
        let last = len as u64 - 1;
        for (start, end) in [(0, 0), (0, last), (last, last), (last / 2, last)] {
            let got = serve(open(), Some((start, end))).unwrap();
            assert_eq!(got, &plain[start as usize..=end as usize], "len {len}");
        }
        // An end past the length reads to the end.
        let mut opener = open().unwrap();
        opener.seek(SeekFrom::End(-1)).unwrap();
        opener.set_end(Some(len as u64 + 100));
        let mut tail = Vec::new();
        opener.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &plain[len - 1..]);
    }
}

#[test]
fn set_end_at_the_length_still_verifies_the_final_chunk() {
    // An empty file's only chunk is its final chunk: `set_end(Some(0))` must not skip it.
    let (header, payload, keyring) = seal_sized(&[]);
    let (recipients, _) = to_alice();
    let unsized_env = seal_to(b"", &recipients, options(Suite::Aes256Gcm, SMALL_CHUNK));
    let mut unsized_bad = unsized_env.clone();
    *unsized_bad.last_mut().unwrap() ^= 1;
    let mut sized_bad = payload.clone();
    sized_bad[3] ^= 1;
    assert_eq!(
        serve(open_payload(&header, payload, &keyring), None).unwrap(),
        b""
    );
    assert_eq!(
        serve(
            Opener::new_seekable(Cursor::new(&unsized_env), &keyring),
            None
        )
        .unwrap(),
        b""
    );
    for result in [
        serve(open_payload(&header, sized_bad, &keyring), None),
        serve(
            Opener::new_seekable(Cursor::new(&unsized_bad), &keyring),
            None,
        ),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(err, OpenError::ChunkAuthFailed { index: 0 }),
            "{err:?}"
        );
    }
    // The same for a damaged final chunk of a longer file read up to its length.
    let plain = data(3 * SMALL_CHUNK, 13);
    let (header, mut payload, keyring) = seal_sized(&plain);
    *payload.last_mut().unwrap() ^= 1;
    let err = serve(open_payload(&header, payload, &keyring), None).unwrap_err();
    assert!(
        matches!(err, OpenError::ChunkAuthFailed { index: 2 }),
        "{err:?}"
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let key = SymmetricKey::from_bytes([0x42; 32]);
    let keyring = Keyring::new()
        .symmetric(key.clone())
        .passphrase(SecretString::from("hunter2"))
        .identity(Identity::from_secret_bytes([0x42; 32]));
    let shown = format!("{keyring:?} {:?}", Recipients::new().symmetric(&key));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(!shown.contains("4242"), "{shown}");
    assert!(!shown.contains("AGE-SECRET-KEY"), "{shown}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_round_trip(
        len in 0usize..40_000,
        exp in 12u8..=14,
        chacha in any::<bool>(),
        recipients in 1usize..4,
        which in 0usize..4,
    ) {
        let suite = if chacha { Suite::ChaCha20Poly1305 } else { Suite::Aes256Gcm };
        let ids: Vec<Identity> = (0..recipients).map(|i| Identity::from_secret_bytes([i as u8 + 10; 32])).collect();
        let mut r = Recipients::new();
        for id in &ids {
            r = r.x25519(id.to_public());
        }
        let plain = data(len, 7);
        let env = seal_to(&plain, &r, options(suite, 1 << exp));
        let who = Identity::from_secret_bytes([(which % recipients) as u8 + 10; 32]);
        prop_assert_eq!(open_with(&env, &Keyring::new().identity(who)).unwrap(), plain);
    }

    #[test]
    fn prop_range_reads(
        len in 1usize..60_000,
        start_frac in 0.0f64..1.0,
        range_len in 0usize..20_000,
    ) {
        let (recipients, keyring) = to_alice();
        let plain = data(len, 8);
        let env = seal_to(&plain, &recipients, options(Suite::Aes256Gcm, SMALL_CHUNK));
        let start = ((len as f64) * start_frac) as usize;
        let end = (start + range_len).min(len);
        let mut opener = Opener::new_seekable(Cursor::new(&env), &keyring).unwrap();
        opener.seek(SeekFrom::Start(start as u64)).unwrap();
        opener.set_end(Some(end as u64));
        let mut got = Vec::new();
        opener.read_to_end(&mut got).unwrap();
        prop_assert_eq!(&got[..], &plain[start..end]);
    }
}
