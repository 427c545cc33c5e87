//! The `kinko` client commands without a server: argument checks, where server and token
//! come from, refusals that happen before any request, and what errors say (never a secret).
//! Real processes, real files in temporary directories, exact exit codes.

mod support;

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tempfile::TempDir;

const KINKO: &str = env!("CARGO_BIN_EXE_kinko");

// Exit codes, as documented in `kinko --help`.
const EXIT_USAGE: i32 = 1;
const EXIT_BAD_KEY: i32 = 3;
const EXIT_UNREACHABLE: i32 = 15;
const EXIT_UNAUTHENTICATED: i32 = 16;

const SHARE_ID: &str = "00112233445566778899aabbccddeeff";
const LINK_SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A well-formed token nobody issued.
fn fake_token() -> String {
    format!("kinko_{}{}", "ab".repeat(16), "cd".repeat(32))
}

/// A loopback address where nothing listens (a port just released).
fn closed_port_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

/// A `kinko` command in `dir`, with its own (absent) client configuration and none of the
/// variables that could give it a server, a token or a secret.
fn kinko(dir: &Path) -> Command {
    let mut cmd = Command::new(KINKO);
    support::isolate(&mut cmd, dir);
    cmd
}

/// The same, without a controlling terminal (`setsid`), so nothing can be asked for.
fn kinko_no_tty(dir: &Path) -> Command {
    let mut cmd = Command::new("setsid");
    cmd.arg("-w").arg(KINKO);
    support::isolate(&mut cmd, dir);
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("kinko runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
    assert!(out.stdout.is_empty(), "stdout: {:?}", out.stdout);
}

fn link(base: &str) -> String {
    format!("{base}/s/{SHARE_ID}#{LINK_SECRET}")
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::File::create(&p).unwrap().write_all(contents).unwrap();
    p
}

#[test]
fn help_lists_the_client_commands_and_the_new_exit_codes() {
    let dir = TempDir::new().unwrap();
    let out = run(kinko(dir.path()).arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in [
        "login", "logout", "share", "files", "shares", "revoke", "rm", "get", "admin",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(cmd)),
            "{cmd} missing: {help}"
        );
    }
    for code in 15..=24 {
        assert!(
            help.contains(&format!("  {code}  ")),
            "exit code {code}: {help}"
        );
    }
    for cmd in [
        "login", "share", "get", "shares", "revoke", "rm", "files", "admin",
    ] {
        let out = run(kinko(dir.path()).args([cmd, "--help"]));
        assert!(out.status.success(), "{cmd} --help");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("Example"), "{cmd} --help has no examples");
    }
}

/// Output files are created with mode 0600 whatever the umask (they hold documents), and
/// every command that writes one says so in its help.
#[test]
fn help_says_output_files_are_private() {
    let dir = TempDir::new().unwrap();
    for args in [
        vec!["get", "--help"],
        vec!["open", "--help"],
        vec!["seal", "--help"],
        vec!["admin", "audit", "export", "--help"],
    ] {
        let out = run(kinko(dir.path()).args(&args));
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("mode 0600"), "{args:?}: {text}");
    }
}

#[test]
fn tokens_and_passwords_are_never_command_line_values() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    for args in [
        vec!["login", "--server", "http://127.0.0.1:1", "--token", "x"],
        vec!["share", "--password=hunter2", "f"],
        vec!["get", "l", "--password=hunter2"],
    ] {
        let out = run(kinko(d).args(&args));
        assert_eq!(
            out.status.code(),
            Some(EXIT_USAGE),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn malformed_links_are_refused_before_any_request_and_never_echoed() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let base = "https://files.example.com";
    let cases = [
        (format!("{base}/s/{SHARE_ID}"), "no secret"),
        (
            format!("{base}/s/{SHARE_ID}#{}", &LINK_SECRET[..60]),
            "expected 64 hex digits",
        ),
        (
            format!("{base}/s/{}#{LINK_SECRET}", &SHARE_ID[..20]),
            "share id",
        ),
        (
            format!("{base}/x/{SHARE_ID}#{LINK_SECRET}"),
            "not a Kinko share link",
        ),
        (
            format!("ftp://files.example.com/s/{SHARE_ID}#{LINK_SECRET}"),
            "unsupported URL scheme",
        ),
        (
            format!("{base}/s/{SHARE_ID}?secret=1#{LINK_SECRET}"),
            "query string",
        ),
    ];
    for (text, words) in cases {
        let out = run(kinko(d).args(["get", &text]));
        assert_fails(&out, EXIT_USAGE, &["invalid link", words, "part after #"]);
        assert!(
            !stderr(&out).contains(&LINK_SECRET[..40]),
            "{}",
            stderr(&out)
        );
    }
    assert!(fs::read_dir(d).unwrap().next().is_none(), "nothing written");
}

#[test]
fn an_unreachable_server_is_named_with_what_to_do() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let url = closed_port_url();

    let out = run(kinko(d)
        .arg("shares")
        .env("KINKO_SERVER", &url)
        .env("KINKO_TOKEN", fake_token()));
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &["cannot reach", &url, "connection refused", "kinko serve"],
    );
    assert!(!stderr(&out).contains("cdcdcdcd"));

    // A partner's link to a server that is down.
    let out = run(kinko(d).args(["get", &link(&url)]));
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &["cannot reach", "connection refused"],
    );
    assert!(!stderr(&out).contains(&LINK_SECRET[..40]));

    // A host name that does not resolve (.invalid never does, RFC 6761) is named as such,
    // with what to check: the URL, or the link.
    let nowhere = "https://kinko-test.invalid:1";
    let out = run(kinko(d)
        .arg("shares")
        .env("KINKO_SERVER", nowhere)
        .env("KINKO_TOKEN", fake_token()));
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &[
            "cannot reach",
            "host name not found: kinko-test.invalid",
            "Check the host name in https://kinko-test.invalid:1",
        ],
    );
    let out = run(kinko(d).args(["get", &link(nowhere)]));
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &["host name not found: kinko-test.invalid", "Check the link"],
    );
    assert!(!stderr(&out).contains(&LINK_SECRET[..40]));

    // login checks the token with the server before saving anything.
    write(d, "tok", fake_token().as_bytes());
    let out = run(kinko(d).args(["login", "--server", &url, "--token-file", "tok"]));
    assert_fails(&out, EXIT_UNREACHABLE, &["cannot reach"]);
    assert!(!d.join("client.toml").exists());
}

#[test]
fn without_a_server_or_token_commands_say_to_log_in() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    for args in [
        vec!["files"],
        vec!["shares"],
        vec!["rm", SHARE_ID],
        vec!["revoke", SHARE_ID],
        vec!["admin", "users"],
    ] {
        let out = run(kinko(d).args(&args));
        assert_fails(
            &out,
            EXIT_UNAUTHENTICATED,
            &["not logged in", "kinko login"],
        );
    }
    // A server but no token for it.
    let out = run(kinko(d).args(["files", "--server", "https://files.example.com"]));
    assert_fails(
        &out,
        EXIT_UNAUTHENTICATED,
        &["no API token for https://files.example.com"],
    );
    // A malformed KINKO_TOKEN is refused without repeating it.
    let out = run(kinko(d)
        .args(["files", "--server", "https://files.example.com"])
        .env("KINKO_TOKEN", "kinko_nothexnothexsecretvalue"));
    assert_fails(&out, EXIT_UNAUTHENTICATED, &["KINKO_TOKEN is malformed"]);
    assert!(!stderr(&out).contains("nothexsecretvalue"));
    // A malformed server URL.
    let out = run(kinko(d)
        .args(["files", "--server", "files.example.com"])
        .env("KINKO_TOKEN", fake_token()));
    assert_fails(&out, EXIT_USAGE, &["invalid server URL", "https://"]);
}

#[test]
fn the_saved_token_goes_only_to_the_saved_server() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    fs::write(
        d.join("client.toml"),
        format!(
            "server = \"https://files.example.com\"\ntoken = \"{}\"\n",
            fake_token()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(d.join("client.toml"), fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = run(kinko(d).args(["files", "--server", "https://other.example.com"]));
    assert_fails(
        &out,
        EXIT_UNAUTHENTICATED,
        &["no API token for https://other.example.com"],
    );
    // A broken configuration file is named, with a line number and without its contents.
    fs::write(
        d.join("client.toml"),
        format!(
            "server = \"https://files.example.com\"\ntoken = {}\n",
            fake_token()
        ),
    )
    .unwrap();
    let out = run(kinko(d).arg("files"));
    assert_fails(&out, EXIT_USAGE, &["client.toml", "line 2"]);
    assert!(!stderr(&out).contains("abababab"), "{}", stderr(&out));
}

#[test]
fn share_arguments_are_checked_before_anything_is_sent() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "plan.pdf", b"plan");
    fs::create_dir(d.join("folder")).unwrap();
    let url = closed_port_url();
    let share = |args: &[&str]| {
        run(kinko(d)
            .arg("share")
            .args(args)
            .env("KINKO_SERVER", &url)
            .env("KINKO_TOKEN", fake_token()))
    };
    for (args, words) in [
        (
            vec!["plan.pdf", "--expires", "7x"],
            "invalid duration for --expires",
        ),
        (vec!["plan.pdf", "--expires", "0"], "longer than zero"),
        // The server's maximum share lifetime, checked before the upload (a closed port
        // would answer 15).
        (
            vec!["plan.pdf", "--expires", "91d"],
            "longer than a share may live (90d)",
        ),
        (vec!["plan.pdf", "--retention", "soon"], "--retention"),
        (vec!["folder"], "is a directory"),
        // A directory without a name of its own is still a directory (not "give --name").
        (vec!["."], "is a directory"),
        (vec!["-"], "needs a name"),
        (vec!["plan.pdf", "--name", ""], "the name is empty"),
    ] {
        assert_fails(&share(&args), EXIT_USAGE, &[words]);
    }
    // clap's own refusals: no limit of zero, a FILE or --file-id (not both, and no upload
    // options with --file-id).
    for args in [
        vec!["plan.pdf", "--max-downloads", "0"],
        vec![],
        vec!["plan.pdf", "--file-id", SHARE_ID],
        vec!["--file-id", SHARE_ID, "--name", "x"],
    ] {
        let out = share(&args);
        assert_eq!(
            out.status.code(),
            Some(EXIT_USAGE),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert_fails(
        &share(&["--file-id", "nothex"]),
        EXIT_USAGE,
        &["not a file id"],
    );
    // A recipient is named by position, never repeated (it might be a pasted secret key).
    let out = share(&["plan.pdf", "--to", "AGE-SECRET-KEY-1NOTAKEYATALL"]);
    assert_fails(&out, EXIT_BAD_KEY, &["recipient #1 given with --to"]);
    assert!(!stderr(&out).contains("NOTAKEYATALL"));
    // A missing file.
    let out = share(&["missing.pdf"]);
    assert_fails(&out, 2, &["cannot read missing.pdf"]);
}

#[test]
fn a_share_password_is_never_asked_for_without_a_terminal() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "plan.pdf", b"plan");
    let out = run(kinko_no_tty(d)
        .args(["share", "plan.pdf", "--password"])
        .env("KINKO_SERVER", closed_port_url())
        .env("KINKO_TOKEN", fake_token()));
    // Asked before the upload, so the server is never contacted.
    assert_fails(
        &out,
        EXIT_USAGE,
        &[
            "share password is needed",
            "KINKO_SHARE_PASSWORD",
            "--password-file",
        ],
    );
    // An empty password file is refused.
    write(d, "empty", b"\n");
    let out = run(kinko(d)
        .args([
            "share",
            "plan.pdf",
            "--password",
            "--password-file",
            "empty",
        ])
        .env("KINKO_SERVER", closed_port_url())
        .env("KINKO_TOKEN", fake_token()));
    assert_fails(&out, EXIT_BAD_KEY, &["share password is empty"]);
}

#[test]
fn ids_are_checked_before_anything_is_sent() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let env = |cmd: &mut Command| {
        cmd.env("KINKO_SERVER", closed_port_url())
            .env("KINKO_TOKEN", fake_token());
    };
    for (args, words) in [
        (vec!["rm", "nothex"], "not a file id"),
        (vec!["revoke", "nothex"], "not a share id or link"),
        (vec!["revoke", "--file", "nothex"], "not a file id"),
        (vec!["admin", "disable", "bob"], "not a user id"),
        (vec!["admin", "token", "bob"], "not a user id"),
        (
            vec!["admin", "token", SHARE_ID, "--ttl", "forever"],
            "invalid duration for --ttl",
        ),
    ] {
        let mut cmd = kinko(d);
        cmd.args(&args);
        env(&mut cmd);
        assert_fails(&run(&mut cmd), EXIT_USAGE, &[words]);
    }
    // revoke needs a share or --file, not both.
    for args in [vec!["revoke"], vec!["revoke", SHARE_ID, "--file", SHARE_ID]] {
        let mut cmd = kinko(d);
        cmd.args(&args);
        env(&mut cmd);
        assert_eq!(run(&mut cmd).status.code(), Some(EXIT_USAGE), "{args:?}");
    }
    // Unknown roles are clap's usage errors.
    let out = run(kinko(d).args(["admin", "add-user", "bob", "--role", "owner"]));
    assert_eq!(out.status.code(), Some(EXIT_USAGE));
}

#[test]
fn get_refuses_sealed_with_identities() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let out = run(kinko(d).args(["keygen", "-o", "k.txt"]));
    assert!(out.status.success());
    let out = run(kinko(d).args(["get", &link("https://a.example"), "--sealed", "-i", "k.txt"]));
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{}", stderr(&out));
    // An identity file that is not one is refused before the link is used.
    write(d, "bad.txt", b"AGE-SECRET-KEY-1NOPE\n");
    let out = run(kinko(d).args(["get", &link(&closed_port_url()), "-i", "bad.txt"]));
    assert_fails(&out, EXIT_BAD_KEY, &["identity file bad.txt"]);
    assert!(!stderr(&out).contains("NOPE"));
}

#[test]
fn logout_without_login_is_not_an_error() {
    let dir = TempDir::new().unwrap();
    let out = run(kinko(dir.path()).arg("logout"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Not logged in"));
}

/// Plain `http://` to another machine is refused before anything is sent (the address is a
/// documentation one nobody answers at: a connection attempt would hang or fail with another
/// code), with why and how to opt in; this machine and the opt-in are allowed.
#[test]
fn plain_http_to_another_host_is_refused_before_connecting() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let remote = "http://192.0.2.1:9";
    write(d, "tok", fake_token().as_bytes());
    let refusals = [
        run(kinko(d).args(["login", "--server", remote, "--token-file", "tok"])),
        run(kinko(d)
            .arg("files")
            .env("KINKO_SERVER", remote)
            .env("KINKO_TOKEN", fake_token())),
        run(kinko(d).args(["get", &link(remote)])),
        run(kinko(d)
            .args(["get", &link(remote)])
            .env("KINKO_ALLOW_HTTP", "0")),
    ];
    for out in &refusals {
        assert_fails(
            out,
            EXIT_USAGE,
            &[
                "over plain http://",
                "192.0.2.1",
                "KINKO_ALLOW_HTTP=1",
                "https://",
            ],
        );
        let err = stderr(out);
        assert!(
            !err.contains(&LINK_SECRET[..40]) && !err.contains("cdcdcdcd"),
            "{err}"
        );
    }
    assert!(stderr(&refusals[0]).contains("the API token"));
    assert!(stderr(&refusals[2]).contains("the link's secret"));
    assert!(!d.join("client.toml").exists());

    // This machine, by name or address: allowed (nothing listens there, so unreachable).
    let local = closed_port_url();
    for base in [local.clone(), local.replace("127.0.0.1", "localhost")] {
        let out = run(kinko(d).args(["get", &link(&base)]));
        assert_fails(&out, EXIT_UNREACHABLE, &["cannot reach"]);
    }
    // The opt-in lets kinko try another host (this name never resolves).
    let out = run(kinko(d)
        .args(["get", &link("http://kinko-test.invalid:9")])
        .env("KINKO_ALLOW_HTTP", "1"));
    assert_fails(
        &out,
        EXIT_UNREACHABLE,
        &["cannot reach", "kinko-test.invalid"],
    );
}

/// An id argument that is really a link or an API token (pasted in the wrong place) is
/// refused without repeating it: the refusal says what it looks like, never its secret.
#[test]
fn id_refusals_never_echo_a_link_or_a_token() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let the_link = link("https://files.example.com");
    let token = fake_token();
    for (input, looks) in [
        (the_link.as_str(), "looks like a link"),
        (token.as_str(), "looks like an API token"),
    ] {
        for (args, words) in [
            (vec!["rm", input], "not a file id"),
            (vec!["revoke", "--file", input], "not a file id"),
            (vec!["share", "--file-id", input], "not a file id"),
            (vec!["admin", "disable", input], "not a user id"),
            (vec!["admin", "enable", input], "not a user id"),
            (vec!["admin", "token", input], "not a user id"),
        ] {
            let out = run(kinko(d)
                .args(&args)
                .env("KINKO_SERVER", closed_port_url())
                .env("KINKO_TOKEN", fake_token()));
            assert_fails(&out, EXIT_USAGE, &[words, looks]);
            let err = stderr(&out);
            assert!(
                !err.contains(LINK_SECRET) && !err.contains(&LINK_SECRET[..16]),
                "{args:?}: {err}"
            );
            assert!(
                !err.contains("cdcdcdcd") && !err.contains("abababab"),
                "{args:?}: {err}"
            );
        }
    }
    // A link's share id works for revoke; a link whose id is mangled is not echoed either.
    let mangled = format!(
        "https://files.example.com/s/{}#{LINK_SECRET}",
        &SHARE_ID[..20]
    );
    let out = run(kinko(d)
        .args(["revoke", &mangled])
        .env("KINKO_SERVER", closed_port_url())
        .env("KINKO_TOKEN", fake_token()));
    assert_fails(&out, EXIT_USAGE, &["not a share id or link"]);
    assert!(!stderr(&out).contains(&LINK_SECRET[..16]));
}

/// The file to share is opened before the password is asked for (twice, on a terminal): one
/// that cannot be read is named first. Without a terminal, the old order said "no terminal to
/// ask" instead. A Unix socket stands for a file that exists but cannot be opened.
#[test]
fn share_opens_its_file_before_asking_for_a_password() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    let _socket = std::os::unix::net::UnixListener::bind(d.join("plan.sock")).unwrap();
    let out = run(kinko_no_tty(d)
        .args(["share", "plan.sock", "--password"])
        .env("KINKO_SERVER", closed_port_url())
        .env("KINKO_TOKEN", fake_token()));
    assert_fails(&out, 2, &["cannot read plan.sock"]);
    assert!(!stderr(&out).contains("terminal"), "{}", stderr(&out));
}

/// An empty API token is a malformed one (exit code 16, as `kinko --help` says), and the hint
/// says where a token comes from: nobody chooses one.
#[test]
fn an_empty_api_token_is_refused_as_malformed() {
    let dir = TempDir::new().unwrap();
    let d = dir.path();
    write(d, "empty.token", b"\n");
    let url = closed_port_url();
    let from_file = run(kinko(d).args(["login", "--server", &url, "--token-file", "empty.token"]));
    let from_env = run(kinko(d)
        .args(["login", "--server", &url])
        .env("KINKO_TOKEN", ""));
    for out in [from_file, from_env] {
        assert_fails(
            &out,
            EXIT_UNAUTHENTICATED,
            &["API token", "empty", "kinko admin token"],
        );
        assert!(!stderr(&out).contains("Choose"), "{}", stderr(&out));
    }
    assert!(!d.join("client.toml").exists());
}
