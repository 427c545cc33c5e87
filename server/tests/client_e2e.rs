//! The `kinko` client commands against a real `kinko serve --dev` (tests/support): real
//! processes, real TCP on 127.0.0.1, each person on their own "machine" (a working directory
//! and a client configuration of their own). Time moves only through the server's test clock.

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use support::{
    KINKO, TestServer, assert_ended_by, data, send_signal, terminate, wait_for_temp_output,
};
use tempfile::TempDir;

// Exit codes, as documented in `kinko --help`.
const EXIT_USAGE: i32 = 1;
const EXIT_UNREACHABLE: i32 = 15;
const EXIT_UNAUTHENTICATED: i32 = 16;
const EXIT_FORBIDDEN: i32 = 17;
const EXIT_NOT_FOUND: i32 = 18;
const EXIT_LINK_REFUSED: i32 = 19;
const EXIT_PASSWORD: i32 = 20;
const EXIT_REFUSED: i32 = 22;
const EXIT_AUDIT_BROKEN: i32 = 23;

/// 64 KiB chunks: 17 full chunks and a partial one.
const MULTI_CHUNK: usize = 17 * 65536 + 1234;

/// One person's machine: a working directory with its own client configuration file, and
/// none of the environment variables that could hand `kinko` a server, token or secret.
struct Machine {
    dir: TempDir,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            dir: TempDir::new().unwrap(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }

    fn write(&self, name: &str, contents: &[u8]) {
        fs::write(self.file(name), contents).unwrap();
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn kinko(&self) -> Command {
        let mut cmd = Command::new(KINKO);
        support::isolate(&mut cmd, self.path());
        cmd
    }

    /// Runs `kinko ARGS` with `env` added and `stdin` as its input.
    fn run_with(&self, args: &[&str], env: &[(&str, &str)], stdin: &[u8]) -> Output {
        let mut cmd = self.kinko();
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kinko runs");
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[], b"")
    }

    /// Runs and expects success; returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_ok(&out, args);
        String::from_utf8(out.stdout).unwrap()
    }

    /// Logs in to `srv` with `token` (through a token file, as a script would).
    #[track_caller]
    fn login(&self, srv: &TestServer, token: &str) {
        self.write("login.token", format!("{token}\n").as_bytes());
        let out = self.run(&["login", "--server", &srv.url, "--token-file", "login.token"]);
        assert_ok(&out, &["login"]);
        fs::remove_file(self.file("login.token")).unwrap();
    }

    /// Shares `name` with extra `args`; returns the link (the only line on stdout).
    #[track_caller]
    fn share(&self, name: &str, args: &[&str]) -> String {
        let mut all = vec!["share", name];
        all.extend_from_slice(args);
        let stdout = self.ok(&all);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 1, "share prints exactly the link: {stdout:?}");
        lines[0].to_owned()
    }

    /// The id in the first column of the `kinko files` row for `name`.
    #[track_caller]
    fn file_id(&self, name: &str) -> String {
        let table = self.ok(&["files"]);
        table
            .lines()
            .find(|l| l.contains(name))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{name} not in {table}"))
            .to_owned()
    }

    /// The `kinko shares` row of `share`.
    #[track_caller]
    fn share_row(&self, share: &str) -> String {
        let table = self.ok(&["shares"]);
        table
            .lines()
            .find(|l| l.starts_with(share))
            .unwrap_or_else(|| panic!("{share} not in {table}"))
            .to_owned()
    }

    /// The names in the working directory.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Makes an identity file; returns its public key.
    fn keygen(&self, name: &str) -> String {
        let out = self.run(&["keygen", "-o", name]);
        assert_ok(&out, &["keygen"]);
        stderr(&out)
            .trim()
            .strip_prefix("Public key: ")
            .expect("keygen prints the public key")
            .to_owned()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_ok(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "kinko {args:?} failed ({:?}): {}",
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

/// The share id and the secret of a link.
fn split_link(link: &str) -> (String, String) {
    let (page, secret) = link.split_once('#').expect("a link has a secret");
    let id = page.rsplit('/').next().unwrap().to_owned();
    (id, secret.to_owned())
}

#[test]
fn login_share_list_and_get_a_plain_file() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();

    alice.login(&srv, &srv.admin_token);
    let config = fs::read_to_string(alice.file("client.toml")).unwrap();
    assert!(
        config.contains(&format!("server = \"{}\"", srv.url)),
        "{config}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(alice.file("client.toml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let content = data(300_000, 1);
    alice.write("Q3 plan.pdf", &content);
    let link = alice.share("Q3 plan.pdf", &["--expires", "2d", "--max-downloads", "2"]);
    assert!(link.starts_with(&format!("{}/s/", srv.url)), "{link}");
    let (share, secret) = split_link(&link);

    let row = alice.share_row(&share);
    for w in ["Q3 plan.pdf", "0/2", "active", "UTC"] {
        assert!(row.contains(w), "{w}: {row}");
    }
    let files = alice.ok(&["files"]);
    assert!(files.contains("Q3 plan.pdf"), "{files}");

    // The partner, with nothing but the link: the file under its own name.
    let out = partner.run(&["get", &link]);
    assert_ok(&out, &["get"]);
    assert!(out.stdout.is_empty());
    assert_eq!(partner.read("Q3 plan.pdf"), content);
    assert!(alice.share_row(&share).contains("1/2"));

    // An existing file is never replaced without --force, and the refusal costs nothing.
    let out = partner.run(&["get", &link]);
    assert_fails(&out, EXIT_USAGE, &["already exists", "--force"]);
    assert!(alice.share_row(&share).contains("1/2"));

    // To stdout.
    let out = partner.run(&["get", &link, "-o", "-"]);
    assert_ok(&out, &["get -o -"]);
    assert_eq!(out.stdout, content);
    let row = alice.share_row(&share);
    assert!(row.contains("2/2") && row.contains("exhausted"), "{row}");

    // Used up: refused, and the existing file is untouched.
    let out = partner.run(&["get", &link, "--force"]);
    assert_fails(
        &out,
        EXIT_LINK_REFUSED,
        &["link is not valid", "ask the sender for a new one"],
    );
    assert_eq!(partner.entries(), vec!["Q3 plan.pdf".to_owned()]);

    // From stdin (chunked upload), with a name.
    let piped = data(70_000, 2);
    let out = alice.run_with(
        &["share", "-", "--name", "notes.txt", "--expires", "1h"],
        &[],
        &piped,
    );
    assert_ok(&out, &["share -"]);
    let link2 = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    partner.ok(&["get", &link2, "-o", "notes-copy.txt"]);
    assert_eq!(partner.read("notes-copy.txt"), piped);

    srv.assert_log_free_of(&[&secret, &srv.admin_token, split_link(&link2).1.as_str()]);
    srv.assert_no_server_errors();
}

#[test]
fn a_password_share_needs_the_right_password() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);

    // Spaces, percent signs, plus and non-ASCII all survive the header encoding.
    let password = "pässwörd %41 + & ok";
    alice.write("pw.txt", format!("{password}\n").as_bytes());
    let content = data(100_000, 3);
    alice.write("contract.pdf", &content);
    let link = alice.share(
        "contract.pdf",
        &[
            "--password",
            "--password-file",
            "pw.txt",
            "--max-downloads",
            "5",
        ],
    );
    let (share, secret) = split_link(&link);
    assert!(alice.share_row(&share).contains("password"));

    let out = partner.run_with(
        &["get", &link],
        &[("KINKO_SHARE_PASSWORD", "pässwörd %41 + & no")],
        b"",
    );
    assert_fails(&out, EXIT_PASSWORD, &["wrong password", "locking"]);
    assert!(partner.entries().is_empty(), "{:?}", partner.entries());

    partner.write("pw.txt", format!("{password}\n").as_bytes());
    partner.ok(&["get", &link, "--password-file", "pw.txt"]);
    assert_eq!(partner.read("contract.pdf"), content);

    let out = partner.run_with(
        &["get", &link, "-o", "again.pdf"],
        &[("KINKO_SHARE_PASSWORD", password)],
        b"",
    );
    assert_ok(&out, &["get with KINKO_SHARE_PASSWORD"]);
    assert_eq!(partner.read("again.pdf"), content);

    srv.assert_log_free_of(&[&secret, password, "pässwörd"]);
    srv.assert_no_server_errors();
}

#[test]
fn a_recipient_bound_share_opens_only_with_the_partners_identity() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    let partner_key = partner.keygen("partner.key");
    partner.keygen("other.key");

    let content = data(MULTI_CHUNK, 4);
    alice.write("secret.bin", &content);
    let link = alice.share(
        "secret.bin",
        &["--to", &partner_key, "--max-downloads", "3"],
    );
    let (share, secret) = split_link(&link);
    assert!(alice.share_row(&share).contains("bound to 1"));

    // Without an identity: refused before a download is counted.
    let out = partner.run(&["get", &link]);
    assert_fails(
        &out,
        EXIT_USAGE,
        &["bound to the recipient's key", "-i FILE"],
    );
    assert!(alice.share_row(&share).contains("0/3"));

    // With someone else's key: refused before a download is counted, nothing is written.
    let out = partner.run(&["get", &link, "-i", "other.key"]);
    assert_fails(
        &out,
        EXIT_LINK_REFUSED,
        &["other keys than yours", "No download was counted"],
    );
    assert_eq!(partner.entries(), vec!["other.key", "partner.key"]);
    assert!(alice.share_row(&share).contains("0/3"));

    // With the partner's key: opened while it streams, every chunk verified.
    let out = partner.run(&["get", &link, "-i", "partner.key"]);
    assert_ok(&out, &["get -i"]);
    assert!(
        stderr(&out).contains("opened with your key"),
        "{}",
        stderr(&out)
    );
    assert_eq!(partner.read("secret.bin"), content);

    // Kept sealed, it opens later with kinko open.
    partner.ok(&["get", &link, "--sealed"]);
    let sealed = partner.read("secret.bin.kinko");
    assert_ne!(sealed[..], content[..]);
    partner.ok(&[
        "open",
        "-i",
        "partner.key",
        "secret.bin.kinko",
        "-o",
        "opened.bin",
    ]);
    assert_eq!(partner.read("opened.bin"), content);
    assert!(alice.share_row(&share).contains("2/3"));

    srv.assert_log_free_of(&[&secret]);
    srv.assert_no_server_errors();
}

#[test]
fn revoke_and_rm_stop_links_at_once() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("a.txt", b"first file");
    alice.write("b.txt", b"second file");
    let link1 = alice.share("a.txt", &[]);
    let a_id = alice.file_id("a.txt");
    // A second share of the same file, without uploading it again.
    let out = alice.run(&["share", "--file-id", &a_id, "--expires", "1d"]);
    assert_ok(&out, &["share --file-id"]);
    let link2 = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(alice.ok(&["files"]).matches("a.txt").count(), 1);
    let link3 = alice.share("b.txt", &[]);
    let b_id = alice.file_id("b.txt");

    // Revoke one share by its whole link (the secret is not needed, nor sent).
    let out = alice.run(&["revoke", &link1]);
    assert_ok(&out, &["revoke"]);
    assert!(stderr(&out).contains(&split_link(&link1).0));
    let out = partner.run(&["get", &link1]);
    assert_fails(&out, EXIT_LINK_REFUSED, &["ask the sender"]);
    assert!(alice.share_row(&split_link(&link1).0).contains("revoked"));
    partner.ok(&["get", &link2]);
    assert_eq!(partner.read("a.txt"), b"first file");

    // Every share of a file at once.
    let out = alice.run(&["revoke", "--file", &a_id]);
    assert_ok(&out, &["revoke --file"]);
    assert!(stderr(&out).contains("Revoked 1 share"), "{}", stderr(&out));
    let out = partner.run(&["get", &link2, "--force"]);
    assert_fails(&out, EXIT_LINK_REFUSED, &[]);

    // Deleting a file kills its links too.
    alice.ok(&["rm", &b_id]);
    let out = partner.run(&["get", &link3]);
    assert_fails(&out, EXIT_LINK_REFUSED, &[]);
    assert!(!alice.ok(&["files"]).contains("b.txt"));
    let out = alice.run(&["rm", &b_id]);
    assert_fails(&out, EXIT_NOT_FOUND, &["not found", "kinko files"]);
    let out = alice.run(&["revoke", &split_link(&link3).0]);
    assert_fails(&out, EXIT_NOT_FOUND, &[]);
    srv.assert_no_server_errors();
}

#[test]
fn admin_manages_users_and_freezes_every_share() {
    let srv = TestServer::start();
    let admin = Machine::new();
    let dave = Machine::new();
    let partner = Machine::new();
    admin.login(&srv, &srv.admin_token);

    let id = admin.ok(&["admin", "add-user", "dave", "--role", "member"]);
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let out = admin.run(&["admin", "add-user", "dave", "--role", "member"]);
    assert_fails(&out, EXIT_REFUSED, &["already exists"]);
    let token = admin.ok(&["admin", "token", &id, "--label", "laptop", "--ttl", "30d"]);
    let token = token.trim().to_owned();
    assert!(token.starts_with("kinko_"), "token line");
    let users = admin.ok(&["admin", "users"]);
    let row = users.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("dave") && row.contains("member") && row.contains("active"));

    // Dave works from the environment, as a script would.
    let env = [
        ("KINKO_SERVER", srv.url.as_str()),
        ("KINKO_TOKEN", token.as_str()),
    ];
    dave.write("d.txt", b"dave's file");
    let out = dave.run_with(&["share", "d.txt"], &env, b"");
    assert_ok(&out, &["share as dave"]);
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = dave.run_with(&["admin", "users"], &env, b"");
    assert_fails(
        &out,
        EXIT_FORBIDDEN,
        &["not allowed: this needs", "ask an admin"],
    );
    assert!(
        !stderr(&out).contains("not allowed: not allowed"),
        "{}",
        stderr(&out)
    );

    // A lost device: its token is found by its label and revoked alone.
    let phone = admin.ok(&["admin", "token", &id, "--label", "phone"]);
    let phone = phone.trim().to_owned();
    let tokens = admin.ok(&["admin", "tokens", &id]);
    let rows: Vec<&str> = tokens.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{tokens}");
    assert!(
        !tokens.contains("kinko_"),
        "a listing never shows a token: {tokens}"
    );
    // (Issued in the same second, the two may list in either order.)
    assert!(rows.iter().any(|r| r.contains(" laptop ")), "{tokens}");
    let phone_row = rows.iter().find(|r| r.contains(" phone ")).unwrap();
    let phone_id = phone_row.split_whitespace().next().unwrap();
    admin.ok(&["admin", "revoke-token", phone_id]);
    let phone_env = [
        ("KINKO_SERVER", srv.url.as_str()),
        ("KINKO_TOKEN", phone.as_str()),
    ];
    let out = dave.run_with(&["shares"], &phone_env, b"");
    assert_fails(&out, EXIT_UNAUTHENTICATED, &[]);
    let out = dave.run_with(&["shares"], &env, b"");
    assert_ok(&out, &["the laptop's token still works"]);
    assert_eq!(admin.ok(&["admin", "tokens", &id]).lines().count(), 2);
    let out = dave.run_with(&["admin", "tokens", &id], &env, b"");
    assert_fails(&out, EXIT_FORBIDDEN, &[]);

    // Freeze: every share refused until lifted.
    admin.ok(&["admin", "freeze"]);
    assert!(
        admin
            .ok(&["admin", "freeze", "--status"])
            .starts_with("frozen")
    );
    let out = partner.run(&["get", &link]);
    assert_fails(&out, EXIT_LINK_REFUSED, &[]);
    // Those who share see it: a new link says so, and the listing shows its shares frozen.
    let out = dave.run_with(&["share", "d.txt"], &env, b"");
    assert_ok(&out, &["share while frozen"]);
    let note = String::from_utf8_lossy(&out.stderr);
    assert!(note.contains("the deployment is frozen"), "{note}");
    let listing = dave.run_with(&["shares"], &env, b"");
    let listing = String::from_utf8(listing.stdout).unwrap();
    assert_eq!(listing.matches("frozen").count(), 2, "{listing}");
    admin.ok(&["admin", "unfreeze"]);
    assert!(
        admin
            .ok(&["admin", "freeze", "--status"])
            .starts_with("not frozen")
    );
    partner.ok(&["get", &link]);
    assert_eq!(partner.read("d.txt"), b"dave's file");

    // Disable: dave's token and every share dave made die at once.
    admin.ok(&["admin", "disable", &id]);
    let out = dave.run_with(&["shares"], &env, b"");
    assert_fails(&out, EXIT_UNAUTHENTICATED, &["kinko login"]);
    let out = partner.run(&["get", &link, "--force"]);
    assert_fails(&out, EXIT_LINK_REFUSED, &[]);
    assert!(admin.ok(&["admin", "users"]).contains("disabled"));
    // Enabled again, the old token stays dead.
    admin.ok(&["admin", "enable", &id]);
    let out = dave.run_with(&["shares"], &env, b"");
    assert_fails(&out, EXIT_UNAUTHENTICATED, &[]);

    srv.assert_log_free_of(&[&token, &srv.admin_token, &split_link(&link).1]);
    srv.assert_no_server_errors();
}

#[test]
fn expired_shares_are_refused() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("soon.txt", b"gone in an hour");
    let link = alice.share("soon.txt", &["--expires", "1h"]);
    let (share, _) = split_link(&link);
    partner.ok(&["get", &link, "-o", "-"]);

    srv.advance(2 * 3600);
    let out = partner.run(&["get", &link, "-o", "late.txt"]);
    assert_fails(&out, EXIT_LINK_REFUSED, &[]);
    assert!(!partner.file("late.txt").exists());
    assert!(alice.share_row(&share).contains("expired"));
    let sweep = alice.ok(&["admin", "sweep"]);
    assert!(sweep.starts_with("visited "), "{sweep}");
    srv.assert_no_server_errors();
}

#[test]
fn audit_log_and_retention_through_the_admin_commands() {
    let srv = TestServer::start();
    let admin = Machine::new();
    let auditor = Machine::new();
    admin.login(&srv, &srv.admin_token);
    admin.write("x.txt", b"x");
    admin.share("x.txt", &[]);

    let verify = admin.ok(&["admin", "audit", "verify"]);
    assert!(verify.starts_with("ok: "), "{verify}");
    let key = admin.ok(&["admin", "audit", "key"]);
    let key = key.trim();
    assert!(
        key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()),
        "{key}"
    );
    admin.ok(&["admin", "audit", "export", "-o", "audit.ndjson"]);
    let export = String::from_utf8(admin.read("audit.ndjson")).unwrap();
    assert!(export.lines().count() > 1);
    assert!(
        export
            .lines()
            .all(|l| l.starts_with('{') && l.ends_with('}'))
    );
    let to_stdout = admin.ok(&["admin", "audit", "export"]);
    assert!(to_stdout.starts_with(export.lines().next().unwrap()));

    // Anyone with the export and the key verifies it offline: no server, no token.
    let third_party = Machine::new();
    third_party.write("audit.ndjson", export.as_bytes());
    let ok = third_party.ok(&["verify-audit", "audit.ndjson", "--key", key]);
    assert!(
        ok.starts_with("ok: ") && ok.contains("signed checkpoints"),
        "{ok}"
    );
    let edited = export.replacen("\"client\":\"127.0.0.1\"", "\"client\":\"10.9.9.9\"", 1);
    assert_ne!(edited, export);
    third_party.write("edited.ndjson", edited.as_bytes());
    let out = third_party.run(&["verify-audit", "edited.ndjson", "--key", key]);
    assert_fails(&out, EXIT_AUDIT_BROKEN, &["was modified"]);
    let other = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    let out = third_party.run(&["verify-audit", "audit.ndjson", "--key", other]);
    assert_fails(&out, EXIT_AUDIT_BROKEN, &["bad signature"]);
    let out = third_party.run(&["verify-audit", "audit.ndjson", "--key", "not-a-key"]);
    assert_fails(&out, EXIT_USAGE, &["not an audit public key"]);
    let out = third_party.run(&["verify-audit", "missing.ndjson", "--key", key]);
    assert_fails(&out, 2, &["missing.ndjson"]);

    let policy = admin.ok(&["admin", "retention", "--default", "10d"]);
    assert!(
        policy.starts_with("default 10d (864000 s), max "),
        "{policy}"
    );
    assert_eq!(admin.ok(&["admin", "retention"]), policy);

    // An auditor reads the audit log and nothing else.
    let id = admin.ok(&["admin", "add-user", "ann", "--role", "auditor"]);
    let token = admin.ok(&["admin", "token", id.trim()]);
    auditor.login(&srv, token.trim());
    assert!(
        auditor
            .ok(&["admin", "audit", "verify"])
            .starts_with("ok: ")
    );
    let out = auditor.run(&["admin", "users"]);
    assert_fails(&out, EXIT_FORBIDDEN, &[]);
    srv.assert_no_server_errors();
}

#[test]
fn logout_revoke_kills_the_token() {
    let srv = TestServer::start();
    let (_, token) = srv.member("eve");
    let eve = Machine::new();
    eve.login(&srv, &token);
    assert!(eve.ok(&["files"]).is_empty());
    let out = eve.run(&["logout", "--revoke"]);
    assert_ok(&out, &["logout --revoke"]);
    let config = fs::read_to_string(eve.file("client.toml")).unwrap();
    assert!(!config.contains("kinko_"), "token still saved");
    assert!(config.contains(&srv.url));
    let out = eve.run(&["files"]);
    assert_fails(&out, EXIT_UNAUTHENTICATED, &["no API token for"]);
    let out = eve.run_with(
        &["files"],
        &[("KINKO_SERVER", &srv.url), ("KINKO_TOKEN", &token)],
        b"",
    );
    assert_fails(
        &out,
        EXIT_UNAUTHENTICATED,
        &["does not accept the API token"],
    );
    srv.assert_log_free_of(&[&token]);
}

#[test]
fn a_stopped_server_is_reported_as_unreachable() {
    let mut srv = TestServer::start();
    let alice = Machine::new();
    alice.login(&srv, &srv.admin_token);
    let url = srv.url.clone();
    assert!(srv.stop().success());
    let out = alice.run(&["files"]);
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &["cannot reach", &url, "kinko serve"],
    );
}

/// Runs `openssl` in `dir`; these tests need the command.
#[track_caller]
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("this test needs the openssl command to make a test CA");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA (`ca.pem`) and a certificate for 127.0.0.1 it issued (`leaf.pem`, `leaf.key`).
fn make_test_ca(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Kinko Test CA",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

/// A `kinko serve --dev` speaking TLS (the test clock is refused with TLS, so this one runs
/// outside the shared harness). Stopped with SIGTERM when dropped.
struct TlsServer {
    child: std::process::Child,
    url: String,
    admin_token: String,
}

impl TlsServer {
    fn start(dir: &Path) -> TlsServer {
        use std::io::BufRead;
        let mut child = Command::new(KINKO)
            .current_dir(dir)
            .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
            .args(["--tls-cert", "leaf.pem", "--tls-key", "leaf.key"])
            .arg("--data-dir")
            .arg(dir.join("dev/data"))
            .env("KINKO_LOG", "warn")
            .env_remove("KINKO_SERVE_CONFIG")
            .env_remove("KINKO_KEK")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(dir.join("server.log")).unwrap())
            .spawn()
            .expect("kinko serve starts");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let (mut url, mut token) = (None, None);
        while url.is_none() || token.is_none() {
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "kinko serve exited early: {}",
                    fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            };
            if let Some(u) = line.trim().strip_prefix("URL:") {
                url = Some(u.trim().to_owned());
            }
            if let Some(t) = line.trim().strip_prefix("Admin token:") {
                token = Some(t.trim().to_owned());
            }
        }
        std::thread::spawn(move || for _ in lines {});
        TlsServer {
            child,
            url: url.unwrap(),
            admin_token: token.unwrap(),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        terminate(&self.child);
        let _ = self.child.wait();
    }
}

#[test]
fn tls_with_a_private_ca_needs_its_certificate() {
    let certs = TempDir::new().unwrap();
    make_test_ca(certs.path());
    let srv = TlsServer::start(certs.path());
    assert!(srv.url.starts_with("https://127.0.0.1:"), "{}", srv.url);
    let alice = Machine::new();
    let partner = Machine::new();
    let ca = certs.path().join("ca.pem");
    let ca = ca.to_str().unwrap();

    // The built-in public roots do not know the test CA: refused, and nothing is saved.
    alice.write("admin.token", srv.admin_token.as_bytes());
    let out = alice.run(&["login", "--server", &srv.url, "--token-file", "admin.token"]);
    assert_fails(&out, EXIT_UNREACHABLE, &["TLS", "certificate"]);
    assert!(!alice.file("client.toml").exists());

    let out = alice.run(&[
        "login",
        "--server",
        &srv.url,
        "--token-file",
        "admin.token",
        "--ca-file",
        ca,
    ]);
    assert_ok(&out, &["login --ca-file"]);
    let content = data(200_000, 7);
    alice.write("tls.bin", &content);
    let out = alice.run_with(&["share", "tls.bin"], &[("KINKO_CA_FILE", ca)], b"");
    assert_ok(&out, &["share with KINKO_CA_FILE"]);
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(link.starts_with("https://"), "{link}");

    let out = partner.run(&["get", &link]);
    assert_fails(&out, EXIT_UNREACHABLE, &["TLS"]);
    partner.ok(&["get", &link, "--ca-file", ca]);
    assert_eq!(partner.read("tls.bin"), content);
}

/// A recipient-bound download resumes too, opened while it streams (`-i`) or kept sealed: the
/// server gives every request for the share the same envelope, so the pieces fit together,
/// and the whole is one counted download each time.
#[test]
fn get_resumes_a_broken_recipient_bound_download() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    let partner_key = partner.keygen("partner.key");
    let content = data(3 * 1024 * 1024 + 77, 5);
    alice.write("big.bin", &content);
    let link = alice.share("big.bin", &["--to", &partner_key, "--max-downloads", "2"]);
    let (share, _) = split_link(&link);
    for (args, saved, counted) in [
        (&["-i", "partner.key"][..], "big.bin", "1/2"),
        (&["--sealed"][..], "big.bin.kinko", "2/2"),
    ] {
        let relay = cutting_relay(&srv.url, 1024 * 1024);
        let relayed = link.replacen(&srv.url, &relay, 1);
        let mut get = vec!["get", relayed.as_str()];
        get.extend_from_slice(args);
        assert_ok(&partner.run(&get), &["get"]);
        assert!(alice.share_row(&share).contains(counted), "{args:?}");
        if saved == "big.bin" {
            assert!(partner.read(saved) == content, "the resumed file differs");
        }
    }
    partner.ok(&[
        "open",
        "-i",
        "partner.key",
        "big.bin.kinko",
        "-o",
        "again.bin",
    ]);
    assert!(
        partner.read("again.bin") == content,
        "the resumed envelope opens"
    );
    let metrics = srv.request("GET", "/metrics", &[], None).text();
    let ranges = metrics
        .lines()
        .find(|l| l.contains("links/{share}/content") && l.contains("status=\"206\""))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    assert_eq!(ranges, Some(2), "each download resumed once: {metrics}");
    srv.assert_no_server_errors();
}

/// What a test relay does to the answers it carries.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Cuts the first `times` answers longer than `after` bytes at that point (both directions
    /// closed), then relays faithfully: a network that drops a long transfer.
    Cut { after: usize, times: usize },
    /// Forwards each answer up to `after` bytes, then sends nothing more while keeping the
    /// connection open: a download that hangs half-way.
    Stall { after: usize },
}

/// A relay that cuts the first answer longer than `cut_after` bytes ([`Fault::Cut`]).
fn cutting_relay(target: &str, cut_after: usize) -> String {
    relay(
        target,
        Fault::Cut {
            after: cut_after,
            times: 1,
        },
    )
}

/// A TCP relay on 127.0.0.1 in front of `target` that applies `fault` to every answer.
/// Returns its `http://` base URL.
fn relay(target: &str, fault: Fault) -> String {
    use std::io::Read;
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let target = target.trim_start_matches("http://").to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let cuts_left = Arc::new(AtomicUsize::new(match fault {
        Fault::Cut { times, .. } => times,
        Fault::Stall { .. } => 0,
    }));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = TcpStream::connect(&target) else {
                return;
            };
            let (mut c_read, mut s_write) =
                (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_read, &mut s_write);
                let _ = s_write.shutdown(Shutdown::Write);
            });
            let cuts_left = cuts_left.clone();
            std::thread::spawn(move || {
                let (mut s_read, mut c_write) = (server, client);
                let mut buf = vec![0u8; 16 * 1024];
                let mut sent = 0;
                loop {
                    let n = match s_read.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let keep = match fault {
                        Fault::Cut { after, .. }
                            if sent + n > after
                                && cuts_left
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok() =>
                        {
                            let _ = c_write.write_all(&buf[..after - sent]);
                            let _ = c_write.shutdown(Shutdown::Both);
                            let _ = s_read.shutdown(Shutdown::Both);
                            return;
                        }
                        Fault::Cut { .. } => n,
                        Fault::Stall { after } => n.min(after.saturating_sub(sent)),
                    };
                    if c_write.write_all(&buf[..keep]).is_err() {
                        return;
                    }
                    sent += keep;
                }
                if let Fault::Stall { after } = fault
                    && sent >= after
                {
                    // Stalled: hold the connection open, silent, until the client goes away.
                    let mut c_read = c_write;
                    let _ = c_read.read(&mut buf);
                    return;
                }
                let _ = c_write.shutdown(Shutdown::Write);
            });
        }
    });
    url
}

/// `kinko get -` reads the link from standard input, so its secret stays out of the process
/// list; an empty input is a usage error.
#[test]
fn get_reads_the_link_from_stdin() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("memo.txt", b"piped");
    let link = alice.share("memo.txt", &["--expires", "1d"]);
    let out = partner.run_with(&["get", "-"], &[], format!("\n  {link}\n").as_bytes());
    assert_ok(&out, &["get -"]);
    assert_eq!(partner.read("memo.txt"), b"piped");
    let out = partner.run_with(&["get", "-"], &[], b"\n");
    assert_fails(&out, EXIT_USAGE, &["no link on standard input"]);
}

/// A server URL with a path where no Kinko API answers (a typo, or a pasted share page) is
/// refused at login as "not a Kinko server here" (exit code 24), not with the hint for an
/// unknown file or share id (18) that a 404 gets elsewhere.
#[test]
fn login_to_a_url_without_the_api_says_so() {
    let srv = TestServer::start();
    let alice = Machine::new();
    alice.write("login.token", format!("{}\n", srv.admin_token).as_bytes());
    let url = format!("{}/kinko", srv.url);
    let out = alice.run(&["login", "--server", &url, "--token-file", "login.token"]);
    assert_fails(&out, 24, &[&url, "Kinko server"]);
    assert!(!stderr(&out).contains("Check the id"), "{}", stderr(&out));
    assert!(!alice.file("client.toml").exists());
}

/// `kinko get -` takes the first non-empty line as the link, without waiting for the end of
/// its input: a link pasted at a terminal and ended with Enter is used at once (it used to
/// wait for Ctrl-D).
#[test]
fn get_uses_the_first_line_of_stdin_without_waiting_for_its_end() {
    use std::time::{Duration, Instant};

    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("memo.txt", b"typed");
    let link = alice.share("memo.txt", &["--expires", "1d"]);
    let mut child = partner
        .kinko()
        .args(["get", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kept open, as a terminal is.
    let mut input = child.stdin.take().unwrap();
    input.write_all(format!("\n {link}\n").as_bytes()).unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still waiting for more input: {}", stderr(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert_ok(&out, &["get -"]);
    assert_eq!(partner.read("memo.txt"), b"typed");
}

/// `kinko get` resumes a plaintext download whose connection breaks half-way: the rest comes
/// with `Range` under the same ticket, the file is complete and identical, and the share
/// counts one download.
#[test]
fn get_resumes_a_broken_download_and_it_counts_once() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    let content = data(3 * 1024 * 1024 + 77, 9);
    alice.write("big.bin", &content);
    let link = alice.share("big.bin", &["--expires", "1d", "--max-downloads", "1"]);
    let (share, _) = split_link(&link);
    // The partner reaches the server through a relay that breaks the first long answer
    // after 1 MiB.
    let relay = cutting_relay(&srv.url, 1024 * 1024);
    let relayed = link.replacen(&srv.url, &relay, 1);
    assert_ne!(relayed, link);
    let out = partner.run(&["get", &relayed, "-o", "copy.bin"]);
    assert_ok(&out, &["get"]);
    assert!(
        partner.read("copy.bin") == content,
        "the resumed file differs from the original"
    );
    assert!(alice.share_row(&share).contains("1/1"), "counted once");
    let metrics = srv.request("GET", "/metrics", &[], None).text();
    assert!(
        metrics
            .lines()
            .any(|l| l.contains("links/{share}/content") && l.contains("status=\"206\"")),
        "the rest came as a range: {metrics}"
    );
    srv.assert_no_server_errors();
}

/// An output `kinko get` could not write is refused before the ticket counts a download: a
/// missing directory, a directory given as OUT (with or without a trailing slash), a file
/// used as a directory. The refusal names the problem, and the share's count is unchanged.
#[test]
fn get_refuses_an_unwritable_output_before_counting() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("memo.txt", b"memo");
    let link = alice.share("memo.txt", &["--max-downloads", "3"]);
    let (share, _) = split_link(&link);
    fs::create_dir(partner.file("folder")).unwrap();
    partner.write("plain", b"x");
    for (out, words) in [
        ("nodir/x.txt", "nodir"),
        ("folder", "is a directory"),
        ("folder/", "names a directory"),
        ("plain/x.txt", "plain is not a directory"),
    ] {
        let res = partner.run(&["get", &link, "-o", out]);
        assert_fails(&res, EXIT_USAGE, &[words, "-o DIR/NAME"]);
        assert!(
            alice.share_row(&share).contains("0/3"),
            "-o {out} counted a download"
        );
    }
    // A default name taken by a directory is refused the same way.
    fs::create_dir(partner.file("memo.txt")).unwrap();
    let res = partner.run(&["get", &link]);
    assert_fails(&res, EXIT_USAGE, &["memo.txt is a directory"]);
    assert!(alice.share_row(&share).contains("0/3"));
    assert_eq!(partner.entries(), ["folder", "memo.txt", "plain"]);
    partner.ok(&["get", &link, "-o", "folder/memo.txt"]);
    assert_eq!(partner.read("folder/memo.txt"), b"memo");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(partner.file("folder/memo.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "as its help says");
    }
    assert!(alice.share_row(&share).contains("1/3"));
}

/// `kinko get` ended by SIGTERM, SIGINT or SIGHUP in the middle of a download deletes its
/// temporary file (partial plaintext), then ends by the signal, for a plain share and for one
/// opened while it downloads (`-i`).
#[test]
fn an_interrupted_get_leaves_no_temporary_file() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    let partner_key = partner.keygen("partner.key");
    let content = data(3 * 1024 * 1024, 4);
    alice.write("big.bin", &content);
    let plain = alice.share("big.bin", &[]);
    let bound = alice.share("big.bin", &["--to", &partner_key]);
    let before = partner.entries();
    for (link, args, signal) in [
        (&plain, &[][..], "TERM"),
        (&plain, &[][..], "INT"),
        (&plain, &[][..], "HUP"),
        (&bound, &["-i", "partner.key"][..], "INT"),
    ] {
        if support::inherited_as_ignored(signal) {
            continue;
        }
        let relay = relay(&srv.url, Fault::Stall { after: 1024 * 1024 });
        let relayed = link.replacen(&srv.url, &relay, 1);
        let mut child = partner
            .kinko()
            .args(["get", &relayed, "-o", "out.bin"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_temp_output(partner.path(), &mut child);
        send_signal(child.id(), signal);
        let out = child.wait_with_output().unwrap();
        assert_ended_by(out.status, signal, &stderr(&out));
        assert_eq!(
            partner.entries(),
            before,
            "SIG{signal} {args:?}: left behind"
        );
    }
}

/// A share asked to outlive its file ends with the file: the summary gives the real lifetime
/// and a note says why, instead of the lifetime asked for.
#[test]
fn share_reports_a_lifetime_cut_short_by_retention() {
    let srv = TestServer::start();
    let alice = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("memo.txt", b"memo");
    let out = alice.run(&["share", "memo.txt", "--retention", "2d", "--expires", "7d"]);
    assert_ok(&out, &["share"]);
    let err = stderr(&out);
    assert!(err.contains("(2d)") && !err.contains("(7d)"), "{err}");
    assert!(
        err.contains("note: the link ends before the 7d asked") && err.contains("retention"),
        "{err}"
    );
    // Within the retention: the lifetime asked, no note.
    let out = alice.run(&["share", "memo.txt", "--retention", "2d", "--expires", "1d"]);
    assert_ok(&out, &["share"]);
    let err = stderr(&out);
    assert!(err.contains("(1d)") && !err.contains("note:"), "{err}");
}

/// Without a terminal, a password share needs the password given another way: the refusal
/// is the documented "needs a password" (exit code 20), says how, and counts nothing.
#[test]
fn a_password_share_without_a_terminal_exits_20() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("pw.txt", b"hunter2 hunter2\n");
    alice.write("memo.txt", b"memo");
    let link = alice.share(
        "memo.txt",
        &[
            "--password",
            "--password-file",
            "pw.txt",
            "--max-downloads",
            "2",
        ],
    );
    let (share, _) = split_link(&link);
    // setsid: no controlling terminal to ask on.
    let mut cmd = Command::new("setsid");
    cmd.arg("-w").arg(KINKO);
    support::isolate(&mut cmd, partner.path());
    let out = cmd
        .args(["get", &link])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_fails(
        &out,
        EXIT_PASSWORD,
        &[
            "needs a password",
            "KINKO_SHARE_PASSWORD",
            "--password-file",
        ],
    );
    assert!(alice.share_row(&share).contains("0/2"));
    assert!(partner.entries().is_empty());
}

/// --sealed on a share that is not bound to a key saves what comes (plaintext): a note says
/// so, as -i's does.
#[test]
fn get_sealed_on_a_plain_share_says_it_arrives_unencrypted() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("memo.txt", b"memo");
    let link = alice.share("memo.txt", &[]);
    let out = partner.run(&["get", &link, "--sealed"]);
    assert_ok(&out, &["get --sealed"]);
    let err = stderr(&out);
    assert!(
        err.contains("note: this share is not bound to a key, so it arrives unencrypted"),
        "{err}"
    );
    assert_eq!(partner.read("memo.txt"), b"memo");
    // -q silences notes.
    let out = partner.run(&["get", &link, "--sealed", "-q", "-o", "again.txt"]);
    assert_ok(&out, &["get --sealed -q"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// A download that keeps breaking gives up (exit 15), and the hint says it was counted: a
/// retry counts another download.
#[test]
fn a_download_that_gives_up_says_a_retry_counts_again() {
    let srv = TestServer::start();
    let alice = Machine::new();
    let partner = Machine::new();
    alice.login(&srv, &srv.admin_token);
    alice.write("big.bin", &data(3 * 1024 * 1024, 6));
    let link = alice.share("big.bin", &["--max-downloads", "3"]);
    let (share, _) = split_link(&link);
    let relay = relay(
        &srv.url,
        Fault::Cut {
            after: 256 * 1024,
            times: usize::MAX,
        },
    );
    let relayed = link.replacen(&srv.url, &relay, 1);
    let out = partner.run(&["get", &relayed]);
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &["connection lost", "already counted", "counts another"],
    );
    assert!(alice.share_row(&share).contains("1/3"));
    assert!(partner.entries().is_empty(), "{:?}", partner.entries());
    // A refusal before the ticket says nothing of the kind.
    let out = partner.run(&["get", &link.replacen(&srv.url, &relay_closed(), 1)]);
    assert_fails(&out, EXIT_UNREACHABLE, &["not answering"]);
    assert!(!stderr(&out).contains("already counted"));
}

/// A loopback URL where nothing listens.
fn relay_closed() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

/// Messages that must match what happened: enabling a user who was never disabled changes
/// nothing (their tokens still work), and a member deleting someone else's file is told it is
/// not theirs, not that they lack a role.
#[test]
fn enable_and_rm_messages_match_what_happened() {
    let srv = TestServer::start();
    let admin = Machine::new();
    let bob = Machine::new();
    admin.login(&srv, &srv.admin_token);
    let (bob_id, bob_token) = srv.member("bob");
    let (_, carol_token) = srv.member("carol");

    let out = admin.run(&["admin", "enable", &bob_id]);
    assert_ok(&out, &["admin enable"]);
    let err = stderr(&out);
    assert!(
        err.contains("is not disabled") && !err.contains("stay dead"),
        "{err}"
    );
    let env = [
        ("KINKO_SERVER", srv.url.as_str()),
        ("KINKO_TOKEN", bob_token.as_str()),
    ];
    assert_ok(&bob.run_with(&["files"], &env, b""), &["bob's token works"]);

    // Carol's file and share, in bob's hands: the server refuses (403), and the message
    // says whose they are rather than blaming bob's role.
    let carols = srv.upload(&carol_token, "carol.txt", b"carol's");
    let (carols_share, _, _) = srv.share(
        &carol_token,
        &carols,
        serde_json::json!({"expires_in": 3600}),
    );
    for args in [
        vec!["rm", carols.as_str()],
        vec!["revoke", "--file", carols.as_str()],
        vec!["revoke", carols_share.as_str()],
    ] {
        let out = bob.run_with(&args, &env, b"");
        assert_fails(
            &out,
            EXIT_FORBIDDEN,
            &["only its owner or an admin", "belongs to another user"],
        );
        assert!(
            !stderr(&out).contains("another role"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // An admin's own role problem keeps the role hint.
    let out = bob.run_with(&["admin", "users"], &env, b"");
    assert_fails(&out, EXIT_FORBIDDEN, &["another role"]);

    // Disabled, then enabled: the old tokens stay dead, and the message says so.
    admin.ok(&["admin", "disable", &bob_id]);
    let out = admin.run(&["admin", "enable", &bob_id]);
    assert_ok(&out, &["admin enable"]);
    assert!(
        stderr(&out).contains("the old ones stay dead"),
        "{}",
        stderr(&out)
    );
    let out = bob.run_with(&["files"], &env, b"");
    assert_fails(&out, EXIT_UNAUTHENTICATED, &[]);
}

/// https:// to a server that speaks plain HTTP fails the TLS handshake on a non-TLS answer:
/// the hint says the server may speak plain HTTP, not that its certificate is untrusted.
#[test]
fn https_to_a_plain_http_server_says_it_may_speak_http() {
    let srv = TestServer::start();
    let partner = Machine::new();
    let base = srv.url.replacen("http://", "https://", 1);
    let link = format!("{base}/s/{}#{}", "ab".repeat(16), "cd".repeat(32));
    let out = partner.run(&["get", &link]);
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &["TLS", "may speak plain HTTP", "http://"],
    );
    assert!(!stderr(&out).contains("certificate"), "{}", stderr(&out));
}
