//! End-to-end tests of the `kinko` binary: real processes, real files in temporary
//! directories, exact exit codes and the key words of each message.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::{assert_ended_by, send_signal, wait_for_temp_output};
use tempfile::TempDir;

mod support;

const KINKO: &str = env!("CARGO_BIN_EXE_kinko");

// Exit codes, as documented in `kinko --help`.
const EXIT_USAGE: i32 = 1;
const EXIT_BAD_KEY: i32 = 3;
const EXIT_NOT_ENVELOPE: i32 = 4;
const EXIT_UNSUPPORTED_VERSION: i32 = 5;
const EXIT_NO_MATCH: i32 = 8;
const EXIT_HEADER_AUTH: i32 = 9;
const EXIT_CHUNK_AUTH: i32 = 10;
const EXIT_TRUNCATED: i32 = 11;
const EXIT_TRAILING_DATA: i32 = 12;

/// Identity 1 of the test vectors (secret bytes `01` × 32, core/tests/vectors/README.md).
const VECTOR_IDENTITY_1: &str =
    "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZ9K4CN";
const VECTOR_PASSPHRASE: &str = "kinko test vector passphrase";

fn vector(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/vectors")
        .join(name)
}

/// A `kinko` command with no passphrase in its environment.
fn kinko(dir: &Path) -> Command {
    let mut cmd = Command::new(KINKO);
    cmd.current_dir(dir).env_remove("KINKO_PASSPHRASE");
    cmd
}

/// Runs `cmd` with `stdin` as its input and captures everything.
fn run(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kinko runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // The command may exit before reading everything (an error); that is fine.
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "kinko failed ({:?}): {}",
        out.status.code(),
        stderr(out)
    );
}

#[track_caller]
fn assert_fails(out: &Output, code: i32, words: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    for w in words {
        assert!(err.contains(w), "stderr lacks {w:?}: {err}");
    }
    assert!(
        err.lines().any(|l| l.starts_with("kinko: hint: ")),
        "no hint line: {err}"
    );
}

/// Deterministic non-repeating test data.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Makes an identity file `name` in `dir` and returns its path and public key.
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let out = run(kinko(dir).args(["keygen", "-o", name]), b"");
    assert_ok(&out);
    let public = stderr(&out)
        .trim()
        .strip_prefix("Public key: ")
        .expect("keygen prints the public key")
        .to_owned();
    (dir.join(name), public)
}

/// Seals `plain` (written to `dir/plain`) to one fresh identity with 4 KiB chunks, and
/// returns (identity path, envelope bytes).
fn sealed_4k(dir: &Path, plain: &[u8]) -> (PathBuf, Vec<u8>) {
    let (id, public) = keygen(dir, "id.txt");
    fs::write(dir.join("plain"), plain).unwrap();
    let out = run(
        kinko(dir).args([
            "seal",
            "-r",
            &public,
            "--chunk-size",
            "4096",
            "plain",
            "-o",
            "plain.kinko",
        ]),
        b"",
    );
    assert_ok(&out);
    (id, fs::read(dir.join("plain.kinko")).unwrap())
}

/// The header length of an envelope, from `kinko inspect --json`.
fn header_len(dir: &Path, file: &str) -> usize {
    let out = run(kinko(dir).args(["inspect", "--json", file]), b"");
    assert_ok(&out);
    let json = String::from_utf8(out.stdout).unwrap();
    let rest = &json[json.find("\"header_len\":").unwrap() + 13..];
    rest[..rest.find(',').unwrap()].parse().unwrap()
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn keygen_creates_a_0600_file_and_refuses_to_overwrite() {
    let dir = TempDir::new().unwrap();
    let (path, public) = keygen(dir.path(), "key.txt");
    assert!(public.starts_with("age1"));
    let contents = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = contents.lines().collect();
    assert_eq!(lines.len(), 3, "{contents}");
    assert!(lines[0].starts_with("# created: ") && lines[0].ends_with('Z'));
    assert_eq!(lines[1], format!("# public key: {public}"));
    assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = run(kinko(dir.path()).args(["keygen", "-o", "key.txt"]), b"");
    assert_fails(&out, EXIT_USAGE, &["key.txt already exists"]);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        contents,
        "key overwritten"
    );
    assert!(!stderr(&out).contains("AGE-SECRET-KEY"));
}

#[test]
fn keygen_to_stdout_writes_the_identity_and_never_prints_it_on_stderr() {
    let dir = TempDir::new().unwrap();
    let out = run(kinko(dir.path()).arg("keygen"), b"");
    assert_ok(&out);
    let identity = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(identity.contains("\nAGE-SECRET-KEY-1"));
    let err = stderr(&out);
    assert!(err.starts_with("Public key: age1"), "{err}");
    assert!(!err.contains("AGE-SECRET-KEY"));
}

#[test]
fn seal_to_two_recipients_opens_with_either_identity() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (alice, alice_pub) = keygen(d, "alice.txt");
    let (bob, bob_pub) = keygen(d, "bob.txt");
    fs::write(d.join("team.txt"), format!("# team\n\n{bob_pub}\n")).unwrap();
    let plain = data(300_000);
    fs::write(d.join("report.pdf"), &plain).unwrap();

    let out = run(
        kinko(d).args([
            "seal",
            "-r",
            &alice_pub,
            "-R",
            "team.txt",
            "report.pdf",
            "-o",
            "report.pdf.kinko",
        ]),
        b"",
    );
    assert_ok(&out);
    assert!(out.stdout.is_empty());

    for (who, id) in [("alice", &alice), ("bob", &bob)] {
        let target = format!("{who}.pdf");
        let out = run(
            kinko(d)
                .args(["open", "-i"])
                .arg(id)
                .args(["report.pdf.kinko", "-o", &target]),
            b"",
        );
        assert_ok(&out);
        assert_eq!(fs::read(d.join(&target)).unwrap(), plain, "{who}");
    }
}

#[test]
fn seal_and_open_through_stdin_and_stdout() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (id, public) = keygen(d, "id.txt");
    let plain = data(200_001);
    let sealed = run(kinko(d).args(["seal", "-r", &public]), &plain);
    assert_ok(&sealed);
    assert!(sealed.stdout.starts_with(b"\x89KNK\r\n\x1a\n"));

    let opened = run(
        kinko(d).args(["open", "-i"]).arg(&id).arg("-"),
        &sealed.stdout,
    );
    assert_ok(&opened);
    assert_eq!(opened.stdout, plain);

    // Empty input round-trips too.
    let sealed = run(kinko(d).args(["seal", "-r", &public, "-"]), b"");
    assert_ok(&sealed);
    let opened = run(kinko(d).args(["open", "-i"]).arg(&id), &sealed.stdout);
    assert_ok(&opened);
    assert!(opened.stdout.is_empty());
}

#[test]
fn passphrase_seal_and_open_via_kinko_passphrase() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let plain = data(50_000);
    let sealed = run(
        kinko(d)
            .env("KINKO_PASSPHRASE", "correct horse battery staple")
            .args(["seal", "-p", "--suite", "chacha"]),
        &plain,
    );
    assert_ok(&sealed);
    fs::write(d.join("p.kinko"), &sealed.stdout).unwrap();

    let opened = run(
        kinko(d)
            .env("KINKO_PASSPHRASE", "correct horse battery staple")
            .args(["open", "p.kinko"]),
        b"",
    );
    assert_ok(&opened);
    assert_eq!(opened.stdout, plain);

    // The same passphrase from a file (first line; the newline is not part of it).
    fs::write(d.join("pass.txt"), "correct horse battery staple\n").unwrap();
    let opened = run(
        kinko(d).args(["open", "--passphrase-file", "pass.txt", "p.kinko"]),
        b"",
    );
    assert_ok(&opened);
    assert_eq!(opened.stdout, plain);

    let wrong = run(
        kinko(d)
            .env("KINKO_PASSPHRASE", "wrong")
            .args(["open", "p.kinko"]),
        b"",
    );
    assert_fails(&wrong, EXIT_NO_MATCH, &["sealed with a passphrase"]);
    assert!(wrong.stdout.is_empty());
    assert!(!stderr(&wrong).contains("wrong\n"));
}

#[test]
fn passphrase_vector_opens_with_the_vector_passphrase() {
    let dir = TempDir::new().unwrap();
    let out = run(
        kinko(dir.path())
            .env("KINKO_PASSPHRASE", VECTOR_PASSPHRASE)
            .arg("open")
            .arg(vector("passphrase_empty_chacha.kinko")),
        b"",
    );
    assert_ok(&out);
    assert!(out.stdout.is_empty());
}

#[test]
fn open_with_a_wrong_identity_names_the_problem() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (_, public) = keygen(d, "alice.txt");
    let (mallory, _) = keygen(d, "mallory.txt");
    let sealed = run(kinko(d).args(["seal", "-r", &public]), b"secret");
    assert_ok(&sealed);
    let out = run(kinko(d).args(["open", "-i"]).arg(&mallory), &sealed.stdout);
    assert_fails(
        &out,
        EXIT_NO_MATCH,
        &[
            "sealed to 1 X25519 recipient",
            "Did you pass the right identity with -i?",
        ],
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn open_without_any_identity_is_a_usage_error() {
    let dir = TempDir::new().unwrap();
    let out = run(
        kinko(dir.path())
            .arg("open")
            .arg(vector("x25519_two_recipients_aes.kinko")),
        b"",
    );
    assert_fails(&out, EXIT_USAGE, &["no identity given", "-i FILE"]);
}

#[test]
fn tampered_bad_magic() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (id, mut sealed) = sealed_4k(d, &data(10_000));
    sealed[1] ^= 0x20;
    fs::write(d.join("bad.kinko"), &sealed).unwrap();
    let out = run(kinko(d).args(["open", "-i"]).arg(&id).arg("bad.kinko"), b"");
    assert_fails(
        &out,
        EXIT_NOT_ENVELOPE,
        &["bad.kinko", "not a Kinko envelope"],
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn tampered_unsupported_version() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    fs::write(d.join("id.txt"), format!("{VECTOR_IDENTITY_1}\n")).unwrap();
    let out = run(
        kinko(d)
            .args(["open", "-i", "id.txt"])
            .arg(vector("bad_version.kinko")),
        b"",
    );
    assert_fails(
        &out,
        EXIT_UNSUPPORTED_VERSION,
        &["unsupported envelope version 2", "upgrade kinko"],
    );
}

#[test]
fn tampered_header_mac_byte() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (id, mut sealed) = sealed_4k(d, &data(10_000));
    let hlen = header_len(d, "plain.kinko");
    sealed[hlen - 1] ^= 0x01; // the last byte of the header MAC
    fs::write(d.join("bad.kinko"), &sealed).unwrap();
    let out = run(kinko(d).args(["open", "-i"]).arg(&id).arg("bad.kinko"), b"");
    assert_fails(
        &out,
        EXIT_HEADER_AUTH,
        &["header authentication failed", "do not trust this file"],
    );
    assert!(out.stdout.is_empty());

    // The checked-in vector says the same.
    fs::write(d.join("v1.txt"), format!("{VECTOR_IDENTITY_1}\n")).unwrap();
    let out = run(
        kinko(d)
            .args(["open", "-i", "v1.txt"])
            .arg(vector("bad_header_mac.kinko")),
        b"",
    );
    assert_fails(&out, EXIT_HEADER_AUTH, &["header authentication failed"]);
}

#[test]
fn tampered_payload_byte_names_the_chunk() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let plain = data(5 * 4096 + 100);
    let (id, mut sealed) = sealed_4k(d, &plain);
    let hlen = header_len(d, "plain.kinko");
    sealed[hlen + 3 * (4096 + 16) + 77] ^= 0x80; // inside chunk 3
    fs::write(d.join("bad.kinko"), &sealed).unwrap();
    let out = run(kinko(d).args(["open", "-i"]).arg(&id).arg("bad.kinko"), b"");
    assert_fails(
        &out,
        EXIT_CHUNK_AUTH,
        &["payload chunk 3 failed authentication", "fresh copy"],
    );
    // Only verified chunks reach stdout: at most chunks 0..3, never a byte of chunk 3.
    assert!(out.stdout.len() <= 3 * 4096);
    assert_eq!(out.stdout, plain[..out.stdout.len()]);
}

#[test]
fn tampered_truncated_at_a_chunk_boundary() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (id, sealed) = sealed_4k(d, &data(3 * 4096 + 5));
    let hlen = header_len(d, "plain.kinko");
    fs::write(d.join("cut.kinko"), &sealed[..hlen + 2 * (4096 + 16)]).unwrap();
    let out = run(kinko(d).args(["open", "-i"]).arg(&id).arg("cut.kinko"), b"");
    assert_fails(&out, EXIT_TRUNCATED, &["truncated", "cut short"]);

    // Cut inside the header.
    fs::write(d.join("cut.kinko"), &sealed[..hlen - 10]).unwrap();
    let out = run(kinko(d).args(["open", "-i"]).arg(&id).arg("cut.kinko"), b"");
    assert_fails(&out, EXIT_TRUNCATED, &["header is truncated"]);
}

#[test]
fn tampered_trailing_data_after_a_full_final_chunk() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    // A plaintext that is an exact multiple of the chunk size: the final chunk is full, so
    // appended bytes read as a chunk of their own (docs/FORMAT.md, "Payload").
    let (id, mut sealed) = sealed_4k(d, &data(2 * 4096));
    sealed.extend_from_slice(&[0u8; 100]);
    fs::write(d.join("long.kinko"), &sealed).unwrap();
    let out = run(
        kinko(d).args(["open", "-i"]).arg(&id).arg("long.kinko"),
        b"",
    );
    assert_fails(&out, EXIT_TRAILING_DATA, &["trailing data", "appended"]);
}

#[test]
fn failed_open_to_a_file_leaves_the_output_untouched_and_no_temp_files() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let plain = data(8 * 4096 + 1);
    let (id, mut sealed) = sealed_4k(d, &plain);
    let hlen = header_len(d, "plain.kinko");
    sealed[hlen + 6 * (4096 + 16)] ^= 1; // chunk 6: chunks 0..6 verify first
    fs::write(d.join("bad.kinko"), &sealed).unwrap();
    fs::write(d.join("out.bin"), b"precious").unwrap();
    let before = dir_entries(d);

    let out = run(
        kinko(d)
            .args(["open", "-i"])
            .arg(&id)
            .args(["bad.kinko", "-o", "out.bin"]),
        b"",
    );
    assert_fails(&out, EXIT_CHUNK_AUTH, &["chunk 6"]);
    assert_eq!(fs::read(d.join("out.bin")).unwrap(), b"precious");
    assert_eq!(dir_entries(d), before, "temporary files left behind");

    // A successful open replaces it.
    let out = run(
        kinko(d)
            .args(["open", "-i"])
            .arg(&id)
            .args(["plain.kinko", "-o", "out.bin"]),
        b"",
    );
    assert_ok(&out);
    assert_eq!(fs::read(d.join("out.bin")).unwrap(), plain);
    assert_eq!(dir_entries(d), before);
}

#[test]
fn inspect_a_known_vector() {
    let dir = TempDir::new().unwrap();
    let file = vector("x25519_two_recipients_aes.kinko");
    let out = run(kinko(dir.path()).arg("inspect").arg(&file), b"");
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    for line in [
        "version:     1",
        "suite:       AES-256-GCM",
        "chunk size:  4096 bytes",
        "stanzas:     2",
        "  1. x25519",
        "  2. x25519",
        "header:      301 bytes",
        "payload:     10048 bytes",
        "plaintext:   10000 bytes in 3 chunks",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
    }
    // The metadata (file name "report.txt") stays encrypted.
    assert!(!text.contains("report.txt"));

    let out = run(
        kinko(dir.path()).args(["inspect", "--json"]).arg(&file),
        b"",
    );
    assert_ok(&out);
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(json.contains(
        "\"suite\":\"aes-256-gcm\",\"chunk_size\":4096,\
         \"stanzas\":[{\"kind\":\"x25519\"},{\"kind\":\"x25519\"}]"
    ));
    assert!(json.contains("\"header_len\":301,\"payload_len\":10048,\"plaintext_len\":10000"));
}

#[test]
fn inspect_shows_passphrase_and_symmetric_stanzas_and_truncation() {
    let dir = TempDir::new().unwrap();
    let out = run(
        kinko(dir.path())
            .arg("inspect")
            .arg(vector("passphrase_empty_chacha.kinko")),
        b"",
    );
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("suite:       ChaCha20-Poly1305"));
    assert!(text.contains("passphrase     Argon2id m=64 KiB, t=1, p=1"));
    assert!(text.contains("plaintext:   0 bytes in 1 chunk"));

    let out = run(
        kinko(dir.path())
            .arg("inspect")
            .arg(vector("symmetric_one_chunk_exact_aes.kinko")),
        b"",
    );
    assert_ok(&out);
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("symmetric-key  key id ")
    );

    // Cut inside a tag: no payload can have that length.
    let sealed = fs::read(vector("x25519_two_recipients_aes.kinko")).unwrap();
    let out = run(
        kinko(dir.path()).args(["inspect", "-"]),
        &sealed[..301 + 4112 + 10],
    );
    assert_ok(&out);
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("inconsistent")
    );

    let out = run(kinko(dir.path()).args(["inspect", "-"]), b"hello, world");
    assert_fails(&out, EXIT_NOT_ENVELOPE, &["<stdin>: not a Kinko envelope"]);
}

#[test]
fn recipient_errors_never_echo_the_argument() {
    let dir = TempDir::new().unwrap();
    let out = run(
        kinko(dir.path()).args(["seal", "-r", VECTOR_IDENTITY_1]),
        b"x",
    );
    assert_fails(
        &out,
        EXIT_BAD_KEY,
        &["recipient #1 given with -r", "secret key"],
    );
    assert!(!stderr(&out).contains(VECTOR_IDENTITY_1));
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let out = run(kinko(d).arg("seal"), b"x");
    assert_fails(&out, EXIT_USAGE, &["no recipients", "-r age1"]);

    let out = run(kinko(d).args(["seal", "--no-such-flag"]), b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE));

    let out = run(kinko(d).args(["seal", "-p", "--chunk-size", "1000"]), b"");
    assert_fails(&out, EXIT_USAGE, &["invalid chunk size"]);

    // A passphrase can only come with -p.
    let out = run(kinko(d).args(["seal", "--passphrase-file", "f"]), b"");
    assert_eq!(out.status.code(), Some(EXIT_USAGE));

    let out = run(kinko(d).arg("--help"), b"");
    assert_ok(&out);
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("Exit codes:"));
    assert!(help.contains(" 10  payload chunk authentication failed"));
}

/// `--dev` keeps its master key beside the data, prints an admin token and speaks plain HTTP:
/// it refuses any address but loopback, before it creates anything.
#[test]
fn serve_dev_refuses_to_listen_beyond_loopback() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8750"] {
        let out = run(
            kinko(d)
                .args(["serve", "--dev", "--listen", addr])
                .env_remove("KINKO_SERVE_CONFIG")
                .env_remove("KINKO_DATA_DIR")
                .env_remove("KINKO_KEK_FILE"),
            b"",
        );
        assert_fails(
            &out,
            EXIT_USAGE,
            &[
                &format!("--dev listens on loopback only (127.0.0.0/8 or ::1), not {addr}"),
                "without --dev",
                "--config",
                "master key",
            ],
        );
        assert!(out.stdout.is_empty(), "no banner, no token");
    }
    assert!(dir_entries(d).is_empty(), "created {:?}", dir_entries(d));
}

#[test]
fn same_input_and_output_is_refused() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (_, public) = keygen(d, "id.txt");
    fs::write(d.join("f"), b"data").unwrap();
    let out = run(
        kinko(d).args(["seal", "-r", &public, "f", "-o", "./f"]),
        b"",
    );
    assert_fails(&out, EXIT_USAGE, &["same file"]);
    assert_eq!(fs::read(d.join("f")).unwrap(), b"data");
}

#[test]
fn a_closed_stdout_pipe_exits_0_quietly() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let (id, sealed) = sealed_4k(d, &data(2 * 1024 * 1024));
    drop(sealed);
    let mut child = kinko(d)
        .args(["open", "-i"])
        .arg(&id)
        .arg("plain.kinko")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read a little, then hang up, as `| head -c 10` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
}

/// `-o` naming something that is not a regular file (`/dev/null`, a FIFO) writes into it:
/// renaming a temporary file over it would replace the device node itself. Tested on a
/// FIFO, never on the real /dev/null.
#[test]
fn output_to_a_fifo_writes_through_and_keeps_the_fifo() {
    use std::os::unix::fs::FileTypeExt;

    let dir = TempDir::new().unwrap();
    let plain = data(10_000);
    let (id, _) = sealed_4k(dir.path(), &plain);
    let fifo = dir.path().join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || fs::read(fifo).unwrap())
    };
    let out = run(
        kinko(dir.path()).args([
            "open",
            "-i",
            id.to_str().unwrap(),
            "-o",
            "fifo",
            "plain.kinko",
        ]),
        b"",
    );
    assert_ok(&out);
    assert_eq!(reader.join().unwrap(), plain);
    assert!(
        fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced"
    );
}

/// `kinko open` and `kinko seal` ended by a signal half-way through their input delete their
/// temporary output (no partial plaintext left behind), then end by the signal (which shells
/// show as 130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
#[test]
fn a_signal_mid_write_leaves_no_temporary_output() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let plain = data(64 * 4096);
    let (id, sealed) = sealed_4k(d, &plain);
    let (_, public) = keygen(d, "other.txt");
    let before = dir_entries(d);
    let id = id.to_str().unwrap().to_owned();
    let open: &[&str] = &["open", "-i", &id, "-o", "out.bin"];
    let seal: &[&str] = &[
        "seal",
        "-r",
        &public,
        "--chunk-size",
        "4096",
        "-o",
        "out.bin",
    ];
    for (args, input, signal) in [
        (open, &sealed, "INT"),
        (open, &sealed, "TERM"),
        (open, &sealed, "HUP"),
        (seal, &plain, "TERM"),
    ] {
        if support::inherited_as_ignored(signal) {
            continue;
        }
        let mut child = kinko(d)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Half the input, and the pipe stays open: the command waits for the rest.
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&input[..input.len() / 2]).unwrap();
        wait_for_temp_output(d, &mut child);
        send_signal(child.id(), signal);
        let status = child.wait().unwrap();
        drop(stdin);
        assert_ended_by(status, signal, &format!("{args:?}"));
        assert_eq!(dir_entries(d), before, "{args:?} SIG{signal}: left behind");
    }
}

/// Ctrl-C in a shell script stops the script, not only the `kinko` command it was running. The
/// terminal sends SIGINT to the whole foreground group; bash, waiting for its child, goes on
/// with the script when the child *exits* (even with 130: it assumes the child handled the
/// signal) and stops when the signal ended it. So `kinko` ends by the signal after its
/// clean-up: an exit with 130 made `for f in *; do kinko ...; done` skip to the next file.
#[test]
fn ctrl_c_stops_the_shell_script_running_kinko() {
    use std::os::unix::process::CommandExt;

    if support::inherited_as_ignored("INT") {
        return;
    }

    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let plain = data(64 * 4096);
    let (id, sealed) = sealed_4k(d, &plain);
    let before = dir_entries(d);
    let mut shell = Command::new("bash")
        .args([
            "-c",
            r#"for i in 1 2; do "$KINKO" open -i "$ID" -o out.bin; echo "went on after $?"; done"#,
        ])
        .env("KINKO", KINKO)
        .env("ID", &id)
        .env_remove("KINKO_PASSPHRASE")
        .current_dir(d)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Half the input, and the pipe stays open: the first `kinko open` waits for the rest.
    let mut stdin = shell.stdin.take().unwrap();
    stdin.write_all(&sealed[..sealed.len() / 2]).unwrap();
    wait_for_temp_output(d, &mut shell);
    // What a Ctrl-C does: SIGINT to the foreground process group (bash and kinko).
    let group = format!("-{}", shell.id());
    let kill = Command::new("kill").args(["-INT", "--", &group]).status();
    assert!(kill.unwrap().success(), "kill -INT -- {group}");
    drop(stdin);
    let out = shell.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("went on"), "the script went on: {said}");
    assert_ended_by(out.status, "INT", "bash");
    assert_eq!(dir_entries(d), before, "left behind");
}

/// Ctrl-C at a passphrase prompt, typed or sent as SIGINT, ends the command by SIGINT quietly
/// (the shell shows 130) and leaves the terminal as it found it. The prompt turns echo, line editing and the signal keys off while
/// it reads; a signal that ended the process there used to leave them off, and the user's
/// shell without echo. The command runs in a pseudo-terminal of its own, which `setsid
/// --ctty` makes its controlling terminal (the one prompts use), so this test is Linux only.
#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_at_a_prompt_puts_the_terminal_back() {
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;

    use rustix::fs::OFlags;
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    use rustix::termios::{LocalModes, tcgetattr};

    let dir = TempDir::new().unwrap();
    let d = dir.path();
    fs::write(d.join("plain"), b"plans").unwrap();
    let stderr_of = |child: &mut std::process::Child| {
        let mut err = String::new();
        let mut pipe = child.stderr.take().expect("stderr is piped and read once");
        pipe.read_to_string(&mut err).unwrap();
        err
    };
    let before = dir_entries(d);
    for typed in [true, false] {
        // A typed Ctrl-C reaches kinko's own prompt even where SIGINT is ignored.
        if !typed && support::inherited_as_ignored("INT") {
            continue;
        }
        let master =
            openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let terminal = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(OFlags::NOCTTY.bits() as i32)
            .open(name.to_str().unwrap())
            .unwrap();
        let modes = tcgetattr(&terminal).unwrap().local_modes;
        assert!(modes.contains(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG));

        // A child is no process group leader, so setsid execs kinko without forking: the
        // child's id is kinko's.
        let mut child = Command::new("setsid")
            .arg("--ctty")
            .arg(KINKO)
            .args(["seal", "-p", "-o", "out.kinko", "plain"])
            .current_dir(d)
            .env_remove("KINKO_PASSPHRASE")
            .stdin(terminal.try_clone().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The prompt is up once it has turned echo off (at most 30 s).
        let mut prompting = false;
        for _ in 0..3000 {
            if !tcgetattr(&terminal)
                .unwrap()
                .local_modes
                .contains(LocalModes::ECHO)
            {
                prompting = true;
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                let err = stderr_of(&mut child);
                panic!("kinko ended before it prompted ({status}): {err}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(prompting, "no prompt turned echo off");

        if typed {
            fs::File::from(master.try_clone().unwrap())
                .write_all(b"\x03")
                .unwrap();
        } else {
            send_signal(child.id(), "INT");
        }
        let status = child.wait().unwrap();
        let err = stderr_of(&mut child);
        let how = if typed { "typed" } else { "SIGINT" };
        assert_eq!(
            tcgetattr(&terminal).unwrap().local_modes,
            modes,
            "{how}: terminal modes not restored"
        );
        assert_ended_by(status, "INT", &format!("{how}, stderr: {err}"));
        assert_eq!(err, "", "{how}");
        assert_eq!(dir_entries(d), before, "{how}: left behind");
    }
}

/// A missing or unreadable input, or a directory, is named before anyone is asked for a
/// passphrase (twice, on a terminal). Without a terminal, the old order said "no terminal to
/// ask" instead of naming the file.
#[test]
fn seal_checks_its_input_before_asking_for_a_passphrase() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    fs::create_dir(d.join("folder")).unwrap();
    for (input, words) in [
        ("missing", ["cannot read missing", "No such file"]),
        ("folder", ["cannot read folder", "directory"]),
    ] {
        // setsid: no controlling terminal, so a prompt would fail.
        let mut cmd = Command::new("setsid");
        cmd.arg("-w")
            .arg(KINKO)
            .args(["seal", "-p", input, "-o", "out.kinko"])
            .current_dir(d)
            .env_remove("KINKO_PASSPHRASE");
        let out = run(&mut cmd, b"");
        assert_fails(&out, 2, &words);
        assert!(!stderr(&out).contains("terminal"), "{}", stderr(&out));
    }
    assert_eq!(dir_entries(d), ["folder"]);
}

/// Standard output redirected into the input file (`kinko seal f >> f`, or `> f`) is refused as
/// `-o f` is, before anything is written: appending would grow the input while it is read (and
/// put plaintext into an envelope with `open`).
#[test]
fn stdout_that_is_the_input_file_is_refused() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let plain = data(10_000);
    let (id, sealed) = sealed_4k(d, &plain);
    let (_, public) = keygen(d, "other.txt");
    // Runs `cmd` with stdin from `input` (or none) and stdout appending to `name`.
    let run_into = |cmd: &mut Command, input: Option<&str>, name: &str| {
        let stdin = match input {
            Some(i) => Stdio::from(fs::File::open(d.join(i)).unwrap()),
            None => Stdio::null(),
        };
        let stdout = fs::OpenOptions::new()
            .append(true)
            .open(d.join(name))
            .unwrap();
        cmd.stdin(stdin)
            .stdout(stdout)
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    // The input by name, stdout appending to it.
    let out = run_into(
        kinko(d).args(["seal", "-r", &public, "plain"]),
        None,
        "plain",
    );
    assert_fails(&out, EXIT_USAGE, &["same file", "<stdout>"]);
    assert_eq!(fs::read(d.join("plain")).unwrap(), plain);
    let out = run_into(
        kinko(d).args(["open", "-i"]).arg(&id).arg("plain.kinko"),
        None,
        "plain.kinko",
    );
    assert_fails(&out, EXIT_USAGE, &["same file", "<stdout>"]);
    assert_eq!(fs::read(d.join("plain.kinko")).unwrap(), sealed);
    // Standard input and standard output the same file.
    let out = run_into(
        kinko(d).args(["seal", "-r", &public]),
        Some("plain"),
        "plain",
    );
    assert_fails(&out, EXIT_USAGE, &["same file"]);
    assert_eq!(fs::read(d.join("plain")).unwrap(), plain);
    // Another file on stdout is fine.
    fs::write(d.join("out.kinko"), b"").unwrap();
    let out = run_into(
        kinko(d).args(["seal", "-r", &public, "plain"]),
        None,
        "out.kinko",
    );
    assert_ok(&out);
}

/// The hint of a failed audit export verification reads as one sentence (it had runs of spaces
/// from a string continued without a backslash).
#[test]
fn verify_audit_hint_is_well_formed() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    fs::write(d.join("audit.ndjson"), b"").unwrap();
    // RFC 8032's first test public key: a valid Ed25519 key that signed nothing here.
    let key = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let out = run(
        kinko(d).args(["verify-audit", "audit.ndjson", "--key", key]),
        b"",
    );
    assert_fails(&out, 23, &["no signed checkpoint", "cut short"]);
    assert!(!stderr(&out).contains("  "), "{}", stderr(&out));
}
