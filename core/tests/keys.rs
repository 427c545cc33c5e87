//! Tests of `kinko_core::keys`: age interop, fixed vectors, strict decoding, key files,
//! Wycheproof X25519 vectors and property tests.

use std::io::{self, Read};
use std::str::FromStr;

use bech32::{Bech32, Bech32m, ByteIterExt, Fe32, Fe32IterExt, Hrp};
use kinko_core::keys::{
    Identity, KeyError, Recipient, parse_identity_file, parse_recipients_file, x25519_agree_bytes,
};
use proptest::prelude::*;
use secrecy::ExposeSecret;

/// age's own unit-test key (`age/src/x25519.rs`, `TEST_SK`/`TEST_PK`).
const AGE_TEST_SK: &str =
    "AGE-SECRET-KEY-1GQ9778VQXMMJVE8SK7J6VT8UJ4HDQAJUVSFCWCM02D8GEWQ72PVQ2Y5J33";
const AGE_TEST_PK: &str = "age1t7rxyev2z3rw82stdlrrepyc39nvn86l5078zqkf5uasdy86jp6svpy7pa";
/// Raw bytes of the two keys above, decoded independently (Python reference Bech32 + OpenSSL).
const AGE_TEST_SK_HEX: &str = "400bef1d8036f72664f0b7a5a62cfc956ed0765c641387636f534e8cb81e5058";
const AGE_TEST_PK_HEX: &str = "5f8662658a1446e3aa0b6fc63c84988966c99f5fa3fc7102c9a73b0690fa9075";

/// The identity of the C2SP age testkit (`testdata/testkit/x25519*`).
const TESTKIT_SK: &str =
    "AGE-SECRET-KEY-1EGTZVFFV20835NWYV6270LXYVK2VKNX2MMDKWYKLMGR48UAWX40Q2P2LM0";
const TESTKIT_SK_HEX: &str = "ca1626252c53cf1a4dc46695e7fcc46594cb4ccadedb6712dfda0753f3ae355e";
const TESTKIT_PK: &str = "age1xmwwc06ly3ee5rytxm9mflaz2u56jjj36s0mypdrwsvlul66mv4q47ryef";

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn b64_32(s: &str) -> [u8; 32] {
    // Tiny standard base64 decoder (no padding) for the testkit's 43-character shares.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
        }
    }
    out.try_into().unwrap()
}

fn secret(id: &Identity) -> String {
    id.to_string().expose_secret().to_owned()
}

/// Encodes `fes` (5-bit groups) with `hrp` and a Bech32 checksum.
fn encode_fes(hrp: &str, fes: Vec<Fe32>) -> String {
    let hrp = Hrp::parse(hrp).unwrap();
    fes.into_iter()
        .with_checksum::<Bech32>(&hrp)
        .chars()
        .collect()
}

fn recipient_err(s: &str) -> &'static str {
    match Recipient::from_str(s) {
        Err(KeyError::InvalidRecipient { reason }) => reason,
        other => panic!("expected InvalidRecipient for {s:?}, got {other:?}"),
    }
}

fn identity_err(s: &str) -> &'static str {
    match Identity::from_str(s) {
        Err(KeyError::InvalidIdentity { reason }) => reason,
        Err(e) => panic!("expected InvalidIdentity, got {e:?}"),
        Ok(_) => panic!("expected InvalidIdentity, parsed a key"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixed vectors

#[test]
fn age_unit_test_key() {
    let id: Identity = AGE_TEST_SK.parse().unwrap();
    assert_eq!(secret(&id), AGE_TEST_SK);
    assert_eq!(id.to_public().to_string(), AGE_TEST_PK);
    assert_eq!(id.to_public().as_bytes(), &hex32(AGE_TEST_PK_HEX));

    let id = Identity::from_secret_bytes(hex32(AGE_TEST_SK_HEX));
    assert_eq!(secret(&id), AGE_TEST_SK);
    assert_eq!(id.to_public().to_string(), AGE_TEST_PK);

    let r: Recipient = AGE_TEST_PK.parse().unwrap();
    assert_eq!(r, id.to_public());
    assert_eq!(r.to_string(), AGE_TEST_PK);
    assert_eq!(Recipient::from_bytes(hex32(AGE_TEST_PK_HEX)), r);
}

#[test]
fn c2sp_testkit_identity() {
    let id: Identity = TESTKIT_SK.parse().unwrap();
    assert_eq!(secret(&id), TESTKIT_SK);
    assert_eq!(id.to_public().to_string(), TESTKIT_PK);
    assert_eq!(
        secret(&Identity::from_secret_bytes(hex32(TESTKIT_SK_HEX))),
        TESTKIT_SK
    );

    let sk = hex32(TESTKIT_SK_HEX);
    // testkit `x25519`: a valid ephemeral share. Expected value from OpenSSL.
    let share = b64_32("TEiF0ypqr+bpvcqXNyCVJpL7OuwPdVwPL7KQEbFDOCc");
    assert_eq!(
        x25519_agree_bytes(sk, share),
        Some(hex32(
            "3e6809a7c389ed0a1462d2e3a283ef87f1e205393ce0036916c2ddca6622a370"
        ))
    );
    // testkit `x25519_low_order` and `x25519_identity`: low-order shares, all-zero secret.
    for share in [
        "X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEdc",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        assert_eq!(x25519_agree_bytes(sk, b64_32(share)), None, "{share}");
    }
}

#[test]
fn rfc7748_section_6_1() {
    let alice_sk = hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    let alice_pk = hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    let bob_sk = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    let bob_pk = hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    let shared = hex32("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");

    let alice = Identity::from_secret_bytes(alice_sk);
    assert_eq!(alice.to_public().as_bytes(), &alice_pk);
    // Encodings computed independently (Python reference Bech32).
    assert_eq!(
        secret(&alice),
        "AGE-SECRET-KEY-1WURK6ZNNRZJH60QKC9E9RVNXGH05CTU8A0QFJ243WLA628DE9S4QRFH26J"
    );
    assert_eq!(
        alice.to_public().to_string(),
        "age1s5s0qzvfxzn4gayt0hwtg0hhtgxm7wsdycup4a8t5j5ca25mfe4qt4hs7q"
    );
    assert_eq!(
        Identity::from_secret_bytes(bob_sk).to_public().as_bytes(),
        &bob_pk
    );
    assert_eq!(x25519_agree_bytes(alice_sk, bob_pk), Some(shared));
    assert_eq!(x25519_agree_bytes(bob_sk, alice_pk), Some(shared));
}

// ---------------------------------------------------------------------------------------------
// Interop with the age crate

#[test]
fn age_keys_parse_in_kinko() {
    for _ in 0..32 {
        let age_id = age::x25519::Identity::generate();
        let age_sk = age_id.to_string().expose_secret().to_owned();
        let age_pk = age_id.to_public().to_string();

        let id: Identity = age_sk.parse().unwrap();
        assert_eq!(secret(&id), age_sk);
        assert_eq!(id.to_public().to_string(), age_pk);

        let r: Recipient = age_pk.parse().unwrap();
        assert_eq!(r.to_string(), age_pk);
        assert_eq!(r, id.to_public());
    }
}

#[test]
fn kinko_keys_parse_in_age() {
    for _ in 0..32 {
        let id = Identity::generate();
        let sk = secret(&id);
        let pk = id.to_public().to_string();

        let age_id: age::x25519::Identity = sk.parse().unwrap();
        assert_eq!(age_id.to_string().expose_secret(), sk.as_str());
        assert_eq!(age_id.to_public().to_string(), pk);

        let age_r: age::x25519::Recipient = pk.parse().unwrap();
        assert_eq!(age_r.to_string(), pk);
    }
}

#[test]
fn age_encrypts_to_kinko_identity_file() {
    // A file written by Kinko's keygen format is read by age, and decrypts what age
    // encrypted to the Kinko recipient.
    let id = Identity::generate();
    let contents = id.identity_file_contents("2024-05-01T12:00:00+02:00");
    let age_r: age::x25519::Recipient = id.to_public().to_string().parse().unwrap();
    let ciphertext = age::encrypt(&age_r, b"hello kinko").unwrap();

    let file = age::IdentityFile::from_buffer(contents.expose_secret().as_bytes()).unwrap();
    let identities = file.into_identities().unwrap();
    assert_eq!(identities.len(), 1);
    let decryptor = age::Decryptor::new(&ciphertext[..]).unwrap();
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .unwrap();
    let mut plaintext = Vec::new();
    reader.read_to_end(&mut plaintext).unwrap();
    assert_eq!(plaintext, b"hello kinko");
}

#[test]
fn age_keygen_file_parses_in_kinko() {
    // The layout age-keygen writes.
    let age_id = age::x25519::Identity::generate();
    let file = format!(
        "# created: 2024-05-01T12:00:00+02:00\n# public key: {}\n{}\n",
        age_id.to_public(),
        age_id.to_string().expose_secret()
    );
    let ids = parse_identity_file(file.as_bytes()).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(secret(&ids[0]), age_id.to_string().expose_secret());
    assert_eq!(
        ids[0].to_public().to_string(),
        age_id.to_public().to_string()
    );
}

// ---------------------------------------------------------------------------------------------
// Formatting

#[test]
fn identity_file_contents_layout() {
    let id: Identity = TESTKIT_SK.parse().unwrap();
    let contents = id.identity_file_contents("2024-05-01T12:00:00+02:00");
    assert_eq!(
        contents.expose_secret(),
        format!("# created: 2024-05-01T12:00:00+02:00\n# public key: {TESTKIT_PK}\n{TESTKIT_SK}\n")
    );
    // A line break in `created` cannot inject a line.
    let contents = id.identity_file_contents("x\nAGE-SECRET-KEY-1\r\n");
    let ids = parse_identity_file(contents.expose_secret().as_bytes()).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(contents.expose_secret().lines().count(), 3);
}

#[test]
fn debug_shows_only_public_key() {
    let id: Identity = TESTKIT_SK.parse().unwrap();
    assert_eq!(format!("{id:?}"), format!("Identity({TESTKIT_PK})"));
    assert_eq!(
        format!("{id:#?}"),
        format!("Identity(\n    {TESTKIT_PK},\n)")
    );
    assert_eq!(
        format!("{:?}", id.to_public()),
        format!("Recipient({TESTKIT_PK})")
    );
    assert_eq!(format!("{}", id.to_public()), TESTKIT_PK);
}

#[test]
fn generate_gives_distinct_keys() {
    let a = Identity::generate();
    let b = Identity::generate();
    assert_ne!(a.to_public(), b.to_public());
    assert_ne!(secret(&a), secret(&b));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn empty_and_garbage() {
    assert_eq!(recipient_err(""), "empty string");
    assert_eq!(identity_err(""), "empty string");
    for s in [
        "age",
        "hello",
        "age1",
        "1",
        " ",
        "age1\u{e9}",
        "age1bbbbbbbbbbb",
    ] {
        assert!(Recipient::from_str(s).is_err(), "{s:?}");
        assert!(Identity::from_str(s).is_err(), "{s:?}");
    }
    // Surrounding whitespace is only trimmed by the file parsers, not by `from_str`.
    assert!(Recipient::from_str(&format!(" {TESTKIT_PK}")).is_err());
    assert!(Recipient::from_str(&format!("{TESTKIT_PK}\n")).is_err());
    assert!(Identity::from_str(&format!("{TESTKIT_SK} ")).is_err());
}

#[test]
fn bad_checksum() {
    for i in [4, 20, TESTKIT_PK.len() - 1] {
        let mut s = TESTKIT_PK.as_bytes().to_vec();
        s[i] = if s[i] == b'q' { b'p' } else { b'q' };
        let s = String::from_utf8(s).unwrap();
        assert_eq!(recipient_err(&s), "bad Bech32 checksum", "{s}");
    }
    for i in [16, 40, TESTKIT_SK.len() - 1] {
        let mut s = TESTKIT_SK.as_bytes().to_vec();
        s[i] = if s[i] == b'Q' { b'P' } else { b'Q' };
        let s = String::from_utf8(s).unwrap();
        assert_eq!(identity_err(&s), "bad Bech32 checksum");
    }
    // A truncated key fails the checksum too.
    assert_eq!(
        recipient_err(&TESTKIT_PK[..TESTKIT_PK.len() - 1]),
        "bad Bech32 checksum"
    );
}

#[test]
fn bech32m_checksum_is_rejected() {
    let bytes = hex32(TESTKIT_SK_HEX);
    let s = bech32::encode::<Bech32m>(Hrp::parse("age").unwrap(), &bytes).unwrap();
    assert_eq!(recipient_err(&s), "bad Bech32 checksum");
    let s =
        bech32::encode_upper::<Bech32m>(Hrp::parse("age-secret-key-").unwrap(), &bytes).unwrap();
    assert_eq!(identity_err(&s), "bad Bech32 checksum");
}

#[test]
fn mixed_case() {
    let mut s = TESTKIT_PK.to_owned();
    s.replace_range(5..6, &s[5..6].to_uppercase());
    assert_eq!(recipient_err(&s), "mixes upper and lower case");
    let s = format!("{}{}", &TESTKIT_SK[..20], TESTKIT_SK[20..].to_lowercase());
    assert_eq!(identity_err(&s), "mixes upper and lower case");
    let s = format!("age-secret-key-{}", &TESTKIT_SK[15..]);
    assert_eq!(identity_err(&s), "mixes upper and lower case");
}

#[test]
fn case_rules() {
    // age prints identities in upper case and accepts lower case too; so does Kinko.
    let id: Identity = TESTKIT_SK.to_lowercase().parse().unwrap();
    assert_eq!(secret(&id), TESTKIT_SK);
    // Recipients are lower case only.
    assert_eq!(
        recipient_err(&TESTKIT_PK.to_uppercase()),
        "recipients must be lower case (age1...)"
    );
}

#[test]
fn wrong_hrp() {
    let bytes = hex32(TESTKIT_SK_HEX);
    for hrp in ["agf", "ag", "age-secret-key", "bc", "age-plugin-x-"] {
        let s = bech32::encode::<Bech32>(Hrp::parse(hrp).unwrap(), &bytes).unwrap();
        assert_eq!(
            recipient_err(&s),
            "not an X25519 recipient (expected age1...)",
            "{s}"
        );
        assert_eq!(
            identity_err(&s.to_uppercase()),
            "not an X25519 identity (expected AGE-SECRET-KEY-1...)",
            "{s}"
        );
    }
    // A plugin recipient (`age1<name>1...`) has HRP `age1<name>`.
    let s = bech32::encode::<Bech32>(Hrp::parse("age1yubikey").unwrap(), &[1u8; 33]).unwrap();
    assert_eq!(
        recipient_err(&s),
        "not an X25519 recipient (expected age1...)"
    );
}

#[test]
fn key_of_the_wrong_kind() {
    let identity_as_recipient =
        "this is a secret key (AGE-SECRET-KEY-1...), not a recipient; use its public key (age1...)";
    assert_eq!(recipient_err(TESTKIT_SK), identity_as_recipient);
    assert_eq!(
        recipient_err(&TESTKIT_SK.to_lowercase()),
        identity_as_recipient
    );
    // Even a damaged secret key is recognised as one.
    assert_eq!(
        recipient_err(&TESTKIT_SK[..TESTKIT_SK.len() - 2]),
        identity_as_recipient
    );
    let recipient_as_identity =
        "this is a recipient (age1...), not an identity (AGE-SECRET-KEY-1...)";
    assert_eq!(identity_err(TESTKIT_PK), recipient_as_identity);
    assert_eq!(
        identity_err(&TESTKIT_PK.to_uppercase()),
        recipient_as_identity
    );
}

#[test]
fn wrong_length() {
    for len in [0usize, 1, 16, 31, 33, 40] {
        let data = vec![0x5a; len];
        let r = bech32::encode::<Bech32>(Hrp::parse("age").unwrap(), &data).unwrap();
        assert_eq!(recipient_err(&r), "key is not 32 bytes", "{len}");
        let i =
            bech32::encode_upper::<Bech32>(Hrp::parse("age-secret-key-").unwrap(), &data).unwrap();
        assert_eq!(identity_err(&i), "key is not 32 bytes", "{len}");
    }
    // Longer than Bech32's 90-character limit.
    let r = format!("age1{}", "q".repeat(100));
    assert!(Recipient::from_str(&r).is_err());
}

#[test]
fn non_canonical_padding_is_rejected() {
    // 32 bytes = 52 groups of 5 bits with 4 padding bits that must be zero. Set one and
    // recompute the checksum: the string is valid Bech32 but a second encoding of the key.
    let bytes = hex32(TESTKIT_SK_HEX);
    let mut fes: Vec<Fe32> = bytes.iter().copied().bytes_to_fes().collect();
    assert_eq!(fes.len(), 52);
    let last = fes.last_mut().unwrap();
    assert_eq!(last.to_u8() & 0x0f, 0);
    *last = Fe32::try_from(last.to_u8() | 1).unwrap();

    let r = encode_fes("age", fes.clone());
    assert_eq!(recipient_err(&r), "key is not 32 bytes");
    // age (bech32 0.9) rejects it as well.
    assert!(r.parse::<age::x25519::Recipient>().is_err());
    let i = encode_fes("age-secret-key-", fes).to_uppercase();
    assert_eq!(identity_err(&i), "key is not 32 bytes");
    assert!(i.parse::<age::x25519::Identity>().is_err());
}

#[test]
fn error_messages_do_not_repeat_the_input() {
    let mut bad = TESTKIT_SK.to_owned();
    bad.replace_range(30..31, "Q");
    let err = Identity::from_str(&bad).unwrap_err();
    let msg = err.to_string();
    assert!(!msg.contains(&bad[16..]), "{msg}");
    assert!(!format!("{err:?}").contains(&bad[16..]));
    assert_eq!(msg, "invalid identity: bad Bech32 checksum");
}

// ---------------------------------------------------------------------------------------------
// Key files

#[test]
fn identity_file_with_comments_and_blank_lines() {
    let a = Identity::generate();
    let file = format!(
        "# created: now\n\n   # indented comment\n{}\r\n\t\n  {}  \n#last",
        secret(&a),
        TESTKIT_SK
    );
    let ids = parse_identity_file(file.as_bytes()).unwrap();
    assert_eq!(ids.len(), 2);
    assert_eq!(secret(&ids[0]), secret(&a));
    assert_eq!(secret(&ids[1]), TESTKIT_SK);
}

#[test]
fn identity_file_bad_line_number() {
    let file = format!("# comment\n\n{TESTKIT_SK}\nnot a key\n{TESTKIT_SK}\n");
    match parse_identity_file(file.as_bytes()) {
        Err(KeyError::BadLine { line, reason }) => {
            assert_eq!(line, 4);
            assert_eq!(reason, "not a Bech32 string");
        }
        other => panic!("expected BadLine, got {other:?}"),
    }
    // A recipient in an identity file.
    let file = format!("{TESTKIT_SK}\n{TESTKIT_PK}\n");
    let err = parse_identity_file(file.as_bytes()).unwrap_err();
    assert!(matches!(err, KeyError::BadLine { line: 2, .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "line 2: this is a recipient (age1...), not an identity (AGE-SECRET-KEY-1...)"
    );
    // A damaged identity: the message names the line, not its contents.
    let mut bad = TESTKIT_SK.to_owned();
    bad.replace_range(30..31, "Q");
    let err = parse_identity_file(format!("\n\n\n{bad}").as_bytes()).unwrap_err();
    assert_eq!(err.to_string(), "line 4: bad Bech32 checksum");
}

#[test]
fn empty_files_have_no_keys() {
    for file in ["", "\n", "# only a comment\n", "  \n\t\n# x\n"] {
        assert!(
            matches!(parse_identity_file(file.as_bytes()), Err(KeyError::NoKeys)),
            "{file:?}"
        );
        assert!(
            matches!(
                parse_recipients_file(file.as_bytes()),
                Err(KeyError::NoKeys)
            ),
            "{file:?}"
        );
    }
}

#[test]
fn recipients_file() {
    let a = Identity::generate().to_public();
    let file = format!("# team\n{a}\n\n  {TESTKIT_PK}\r\n# end\n");
    let rs = parse_recipients_file(file.as_bytes()).unwrap();
    assert_eq!(rs, vec![a, TESTKIT_PK.parse().unwrap()]);

    // An identity in a recipients file.
    let file = format!("{a}\n# ok\n{TESTKIT_SK}\n");
    match parse_recipients_file(file.as_bytes()) {
        Err(KeyError::BadLine { line: 3, reason }) => assert!(reason.contains("secret key")),
        other => panic!("expected BadLine at line 3, got {other:?}"),
    }
}

#[test]
fn key_file_rejects_non_utf8_and_long_lines() {
    let mut file = format!("{TESTKIT_PK}\n").into_bytes();
    file.extend_from_slice(b"\xff\xfe\n");
    assert!(matches!(
        parse_recipients_file(&file[..]),
        Err(KeyError::BadLine {
            line: 2,
            reason: "not valid UTF-8"
        })
    ));
    let file = format!("{TESTKIT_PK}\n# {}\n", "x".repeat(10_000));
    assert!(matches!(
        parse_recipients_file(file.as_bytes()),
        Err(KeyError::BadLine {
            line: 2,
            reason: "line too long"
        })
    ));
    // A line of 4000 characters (a long comment) is fine.
    let file = format!("# {}\n{TESTKIT_PK}\n", "x".repeat(4000));
    assert_eq!(parse_recipients_file(file.as_bytes()).unwrap().len(), 1);
}

#[test]
fn key_file_read_error_is_io() {
    struct Failing;
    impl io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("disk on fire"))
        }
    }
    let err = parse_identity_file(io::BufReader::new(Failing)).unwrap_err();
    assert!(matches!(err, KeyError::Io(_)), "{err:?}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn key_file_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.txt");
    let id = Identity::generate();
    std::fs::write(&path, id.identity_file_contents("today").expose_secret()).unwrap();
    let file = io::BufReader::new(std::fs::File::open(&path).unwrap());
    let ids = parse_identity_file(file).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].to_public(), id.to_public());
    // The same file through age.
    let age_file = age::IdentityFile::from_file(path.to_str().unwrap().to_owned()).unwrap();
    assert_eq!(age_file.into_identities().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Wycheproof X25519

#[test]
fn wycheproof_x25519() {
    use wycheproof::xdh::{TestName, TestSet};
    let set = TestSet::load(TestName::X25519).unwrap();
    let (mut run, mut matched, mut zero) = (0, 0, 0);
    for group in &set.test_groups {
        for test in &group.tests {
            // Every x25519 vector has 32-byte keys; anything else would be a test bug.
            let sk: [u8; 32] = test.private_key[..].try_into().unwrap();
            let pk: [u8; 32] = test.public_key[..].try_into().unwrap();
            let expected: [u8; 32] = test.shared_secret[..].try_into().unwrap();
            let got = x25519_agree_bytes(sk, pk);
            run += 1;
            if expected == [0; 32] {
                assert_eq!(got, None, "tcId {} ({})", test.tc_id, test.comment);
                zero += 1;
            } else {
                assert!(
                    !test.result.must_fail(),
                    "tcId {} must fail but has a non-zero secret",
                    test.tc_id
                );
                assert_eq!(
                    got,
                    Some(expected),
                    "tcId {} ({})",
                    test.tc_id,
                    test.comment
                );
                matched += 1;
            }
        }
    }
    eprintln!("wycheproof x25519: {run} vectors, {matched} matched, {zero} all-zero rejected");
    assert_eq!(run, set.number_of_tests);
    assert_eq!(run, 518);
    assert_eq!(zero, 31);
}

// ---------------------------------------------------------------------------------------------
// Properties

proptest! {
    #[test]
    fn identity_round_trips(bytes in any::<[u8; 32]>()) {
        let id = Identity::from_secret_bytes(bytes);
        let s = secret(&id);
        prop_assert_eq!(s.len(), 74);
        prop_assert!(s.starts_with("AGE-SECRET-KEY-1"));
        let back: Identity = s.parse().unwrap();
        prop_assert_eq!(secret(&back), s.clone());
        prop_assert_eq!(back.to_public(), id.to_public());
        // age reads it to the same key.
        let age_id: age::x25519::Identity = s.parse().unwrap();
        let age_sk = age_id.to_string();
        prop_assert_eq!(age_sk.expose_secret(), s.as_str());
        prop_assert_eq!(age_id.to_public().to_string(), id.to_public().to_string());
    }

    #[test]
    fn recipient_round_trips(bytes in any::<[u8; 32]>()) {
        let r = Recipient::from_bytes(bytes);
        let s = r.to_string();
        prop_assert_eq!(s.len(), 62);
        let back: Recipient = s.parse().unwrap();
        prop_assert_eq!(back, r);
        prop_assert_eq!(back.as_bytes(), &bytes);
        let age_r: age::x25519::Recipient = s.parse().unwrap();
        prop_assert_eq!(age_r.to_string(), s);
    }

    #[test]
    fn debug_never_shows_the_secret(bytes in any::<[u8; 32]>()) {
        let id = Identity::from_secret_bytes(bytes);
        let s = secret(&id);
        for debug in [format!("{id:?}"), format!("{id:#?}"), format!("{:?}", vec![&id])] {
            prop_assert!(!debug.contains(&s));
            prop_assert!(!debug.to_uppercase().contains("AGE-SECRET-KEY"));
            prop_assert!(!debug.contains(&s[16..40]));
            prop_assert!(!debug.contains(&s[16..40].to_lowercase()));
            prop_assert!(!debug.contains(&hex::encode(bytes)));
            prop_assert!(debug.contains(&id.to_public().to_string()));
        }
    }

    #[test]
    fn parsers_never_panic(s in "\\PC{0,120}") {
        let _ = Recipient::from_str(&s);
        let _ = Identity::from_str(&s);
        let _ = parse_identity_file(s.as_bytes());
        let _ = parse_recipients_file(s.as_bytes());
    }

    #[test]
    fn single_character_edits_are_rejected(
        pos in 16usize..74,
        c in "[qpzry9x8gf2tvdw0s3jn54khce6mua7l]",
    ) {
        let c = c.to_uppercase();
        let mut s = TESTKIT_SK.to_owned();
        prop_assume!(s[pos..pos + 1] != c);
        s.replace_range(pos..pos + 1, &c);
        prop_assert!(Identity::from_str(&s).is_err());
    }
}
