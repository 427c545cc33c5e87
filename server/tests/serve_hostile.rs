//! `kinko serve` against bad, slow, greedy and hostile clients: every answer is a clear 4xx,
//! never a 5xx, and nothing is stored half-way. Also startup configuration, concurrency,
//! graceful shutdown and TLS.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::json;
use support::{KINKO, Options, TestServer, data};

/// Host and port of a server URL.
fn addr(srv: &TestServer) -> String {
    srv.url.trim_start_matches("http://").to_owned()
}

/// Sends raw bytes and returns everything the server answers until it closes or goes quiet
/// for `quiet`.
fn raw(srv: &TestServer, bytes: &[u8], quiet: Duration) -> String {
    let mut s = TcpStream::connect(addr(srv)).unwrap();
    s.set_read_timeout(Some(quiet)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for: {what}");
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?}"))
}

#[test]
fn malformed_requests_get_clear_4xx_answers() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "x.txt", b"x");
    let auth = format!("Bearer {alice}");
    let shares = format!("/api/v1/files/{file}/shares");
    for (body, why) in [
        (&b"{"[..], "truncated JSON"),
        (b"[]", "wrong type"),
        (b"{\"expires_in\": \"soon\"}", "wrong field type"),
        (b"{\"expires_in\": 60, \"secret\": 1}", "unknown field"),
        (b"{\"expires_in\": 0}", "zero lifetime"),
        (
            b"{\"expires_in\": 60, \"max_downloads\": 0}",
            "zero downloads",
        ),
        (
            b"{\"expires_in\": 60, \"password\": \"\"}",
            "empty password",
        ),
        (
            b"{\"expires_in\": 999999999}",
            "beyond the maximum lifetime",
        ),
    ] {
        let r = srv.request(
            "POST",
            &shares,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            Some(body),
        );
        assert_eq!(r.status, 400, "{why}: {}", r.text());
        assert_eq!(r.code(), "invalid", "{why}");
    }
    // A JSON body past `max_json_bytes` (64 KiB by default): 413, before it is parsed.
    let padded = format!("{{\"expires_in\": 60{}}}", " ".repeat(70_000));
    let r = srv.request(
        "POST",
        &shares,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Some(padded.as_bytes()),
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (413, "too_large"),
        "{}",
        r.text()
    );
    // Ids and paths.
    for (path, status) in [
        ("/api/v1/files/not-an-id", 400),
        ("/api/v1/files/..%2F..%2Fetc%2Fpasswd", 400),
        ("/api/v1/files/%00", 400),
        ("/api/v1/files/00000000000000000000000000000000", 404),
        ("/api/v1/nothing/here", 404),
    ] {
        let r = srv.request("GET", path, &[("authorization", &auth)], None);
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
    // What axum's own extractors refuse is a JSON error too, with a code to act on.
    for (method, path) in [
        ("GET", "/api/v1/files/%FF"),
        ("POST", "/api/v1/files?name=x&retention=-1"),
    ] {
        let r = srv.request(method, path, &[("authorization", &auth)], Some(b"x"));
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "invalid"),
            "{path}: {}",
            r.text()
        );
    }
    for raw_path in [
        "/s/../../etc/passwd",
        "/api/v1/files/../../../etc/passwd",
        "/%2e%2e/%2e%2e/",
    ] {
        let resp = raw(
            &srv,
            format!("GET {raw_path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(5),
        );
        let st = status_of(&resp);
        assert!((400..500).contains(&st), "{raw_path}: {resp}");
    }
    // A huge header block.
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200_000)
    );
    let resp = raw(&srv, big.as_bytes(), Duration::from_secs(5));
    // 431, or (if the server closed while the rest was still in flight) a reset; never served.
    assert!(resp.is_empty() || status_of(&resp) == 431, "{resp}");
    // Upload without a name.
    let r = srv.request(
        "POST",
        "/api/v1/files",
        &[("authorization", &auth)],
        Some(b"x"),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid"));
    srv.assert_no_server_errors();
}

/// An upload whose name is not UTF-8 once percent-decoded is refused with a `400 invalid` that
/// says so, before its body is read: no file record, no blob. (Decoded lossily, `%FF%FEa.pdf`
/// was stored as `\u{FFFD}\u{FFFD}a.pdf`, a name the uploader never chose.) Valid names decode
/// as before, a real U+FFFD included.
#[test]
fn an_upload_name_that_is_not_utf8_is_refused_and_nothing_is_stored() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let auth = format!("Bearer {alice}");
    let upload = |query: &str| {
        srv.request(
            "POST",
            &format!("/api/v1/files?{query}"),
            &[("authorization", &auth), ("content-type", "text/plain")],
            Some(b"never stored"),
        )
    };
    for query in [
        "name=%FF%FEa.pdf",
        "name=a%C3.pdf",
        "retention=60&name=%ED%A0%80.txt",
    ] {
        let r = upload(query);
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "invalid"),
            "{query}: {}",
            r.text()
        );
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("not valid UTF-8"), "{query}: {message}");
    }
    let r = upload("name=a.txt&name=b.txt");
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "invalid"),
        "{}",
        r.text()
    );
    let files = srv.authed(&alice, "GET", "/api/v1/files", None).json();
    assert_eq!(files["files"], json!([]), "a refused upload left a file");
    assert_eq!(srv.blob_files(), Vec::<std::path::PathBuf>::new());

    for (query, name) in [
        ("name=%EF%BF%BDa.pdf", "\u{FFFD}a.pdf"),
        ("name=a+b%2Bc.txt", "a b+c.txt"),
        ("retention=60&name=%E9%87%91%E5%BA%AB.txt", "金庫.txt"),
    ] {
        let r = upload(query);
        assert_eq!(r.status, 201, "{query}: {}", r.text());
        assert_eq!(r.json()["name"], name, "{query}");
    }
    srv.assert_no_server_errors();
}

/// A method a path does not take is the JSON error every refusal is, with its `Allow` header;
/// a HEAD of a link's content is refused rather than counted as a download (link checkers and
/// download managers send one first).
#[test]
fn wrong_methods_and_head_on_a_link_are_refused_as_json() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let auth = format!("Bearer {alice}");
    let r = srv.request("PUT", "/api/v1/files", &[("authorization", &auth)], None);
    assert_eq!((r.status, r.code().as_str()), (405, "method_not_allowed"));
    let allow = r.header("allow").unwrap_or_default();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let file = srv.upload(&alice, "once.txt", b"one download only");
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 600, "max_downloads": 1}),
    );
    let path = format!("/api/v1/links/{share}/content");
    for _ in 0..3 {
        let r = srv.request("HEAD", &path, &[("kinko-link-secret", &secret)], None);
        assert_eq!(r.status, 405);
        assert_eq!(r.header("allow"), Some("GET"));
        assert!(r.header("kinko-ticket").is_none());
    }
    // Nor does a HEAD of the page decide anything: it is the same static page for every share.
    let r = srv.request("HEAD", &format!("/s/{share}"), &[], None);
    assert_eq!(r.status, 200);
    assert!(r.header("kinko-ticket").is_none());
    let log = srv.admin("GET", "/api/v1/admin/audit/export", None).text();
    assert!(!log.contains("\"action\":\"share.download"), "{log}");
    let r = srv.link_download(&share, &secret, None);
    assert_eq!(r.status, 200, "the HEADs counted nothing");
    assert_eq!(r.body, b"one download only");
    srv.assert_no_server_errors();
}

/// Link headers the server cannot read as sent are refused, never taken as absent: a
/// `Kinko-Ticket` that is not ASCII is a bad ticket (it used to start, and count, a download of
/// its own), a `Kinko-Password` that is not ASCII (raw UTF-8, not percent-encoded) is `400
/// invalid` (it used to be answered `password_required`, as if none had been sent), and an
/// empty `Kinko-Password`, which no share password can be, counts no wrong attempt toward the
/// lock (five of them used to lock the share for good).
#[test]
fn unreadable_or_empty_link_headers_count_nothing() {
    let srv = TestServer::start();
    let (alice, file, share, secret) = one_download_share(&srv);
    let get = |extra: &[u8]| {
        let mut req = format!(
            "GET /api/v1/links/{share}/content HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Kinko-Link-Secret: {secret}\r\n"
        )
        .into_bytes();
        req.extend_from_slice(extra);
        req.extend_from_slice(b"\r\n");
        raw(&srv, &req, Duration::from_secs(10))
    };
    let resp = get("Kinko-Ticket: caf\u{e9}\r\n".as_bytes());
    assert_eq!(status_of(&resp), 404, "{resp}");
    assert!(resp.contains("link_invalid"), "{resp}");
    let resp = get(b"Kinko-Ticket: \xff\xfe\r\n");
    assert_eq!(status_of(&resp), 404, "{resp}");
    assert_eq!(
        srv.link_info(&share, &secret).json()["downloads_left"],
        1,
        "an unreadable ticket counted a download"
    );
    let r = srv.link_download(&share, &secret, None);
    assert_eq!(r.body, b"one download only");

    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 600, "password": "pässword"}),
    );
    let ticket = |password: &[u8]| {
        let mut req = format!(
            "POST /api/v1/links/{share}/ticket HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: 0\r\nKinko-Link-Secret: {secret}\r\nKinko-Password: "
        )
        .into_bytes();
        req.extend_from_slice(password);
        req.extend_from_slice(b"\r\n\r\n");
        raw(&srv, &req, Duration::from_secs(10))
    };
    let resp = ticket("pässword".as_bytes());
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("percent-encoded"), "{resp}");
    for _ in 0..6 {
        let r = srv.request(
            "POST",
            &format!("/api/v1/links/{share}/ticket"),
            &[("kinko-link-secret", &secret), ("kinko-password", "")],
            None,
        );
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "password_required"),
            "{}",
            r.text()
        );
    }
    let r = srv.link_download(&share, &secret, Some("p%C3%A4ssword"));
    assert_eq!(r.status, 200, "the share was locked: {}", r.text());
    assert_eq!(r.body, b"one download only");
    srv.assert_no_server_errors();
}

/// A member "alice" who shares "once.txt" (`one download only`) for one download: her token,
/// the file, the share and its secret.
fn one_download_share(srv: &TestServer) -> (String, String, String, String) {
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "once.txt", b"one download only");
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 600, "max_downloads": 1}),
    );
    (alice, file, share, secret)
}

/// A link request without `Kinko-Link-Secret` is told what it forgot (`400 invalid`, naming
/// the header), on every link route, and counts nothing; one whose secret cannot be read is
/// refused as every wrong secret is (`404 link_invalid`).
#[test]
fn a_link_request_without_its_secret_says_so_and_counts_nothing() {
    let srv = TestServer::start();
    let (_, _, share, secret) = one_download_share(&srv);
    for (method, path) in [
        ("POST", format!("/api/v1/links/{share}")),
        ("POST", format!("/api/v1/links/{share}/ticket")),
        ("GET", format!("/api/v1/links/{share}/content")),
    ] {
        let r = srv.request(method, &path, &[], None);
        assert_eq!((r.status, r.code().as_str()), (400, "invalid"), "{path}");
        assert!(
            r.text().contains("Kinko-Link-Secret"),
            "{path}: {}",
            r.text()
        );
        // Even with a ticket: the ticket never stands in for the secret.
        let r = srv.request(method, &path, &[("kinko-ticket", "t")], None);
        assert_eq!((r.status, r.code().as_str()), (400, "invalid"), "{path}");
        // A secret that cannot be read is a wrong one, not a missing one.
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Length: 0\r\nKinko-Link-Secret: "
        )
        .into_bytes();
        req.extend_from_slice(b"\xe9\r\n\r\n");
        let resp = raw(&srv, &req, Duration::from_secs(10));
        assert_eq!(status_of(&resp), 404, "{path}: {resp}");
        assert!(resp.contains("link_invalid"), "{path}: {resp}");
    }
    assert_eq!(srv.link_info(&share, &secret).json()["downloads_left"], 1);
    assert_eq!(
        srv.link_download(&share, &secret, None).body,
        b"one download only"
    );
    srv.assert_no_server_errors();
}

#[test]
fn wrong_tokens_are_refused_and_rate_limited_per_address() {
    let srv = TestServer::start_with(Options {
        config: Some("[limits]\nauth_failures_per_minute = 5\n".into()),
        ..Options::default()
    });
    let forged = format!("kinko_{}{}", "ab".repeat(16), "cd".repeat(32));
    for (header, why) in [
        (None, "no token"),
        (Some("Bearer".to_owned()), "empty bearer"),
        (Some("Bearer not-a-token".to_owned()), "garbage"),
        (Some(format!("Bearer {forged}")), "unknown token"),
        (Some(format!("Basic {forged}")), "wrong scheme"),
    ] {
        let h: Vec<(&str, &str)> = header
            .iter()
            .map(|h| ("authorization", h.as_str()))
            .collect();
        let r = srv.request("GET", "/api/v1/me", &h, None);
        assert_eq!(
            (r.status, r.code().as_str()),
            (401, "unauthenticated"),
            "{why}"
        );
    }
    // The address has used up its failures: even a good token waits now.
    let r = srv.admin("GET", "/api/v1/me", None);
    assert_eq!((r.status, r.code().as_str()), (429, "rate_limited"));
    assert!(r.header("retry-after").is_some());
    srv.assert_no_server_errors();
    srv.assert_log_free_of(&[&forged[6..]]);
}

#[test]
fn link_routes_refuse_secrets_in_urls_and_rate_limit_guessing() {
    let srv = TestServer::start_with(Options {
        config: Some("[limits]\nlink_requests_per_minute = 8\n".into()),
        ..Options::default()
    });
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "x.txt", b"x");
    let (share, secret, _) = srv.share(&alice, &file, json!({"expires_in": 600}));
    for path in [
        format!("/s/{share}?secret={secret}"),
        format!("/api/v1/links/{share}?{secret}"),
        format!("/api/v1/links/{share}/content?s={secret}"),
    ] {
        let method = if path.contains("/content") || path.starts_with("/s/") {
            "GET"
        } else {
            "POST"
        };
        let r = srv.request(method, &path, &[("kinko-link-secret", &secret)], None);
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "secret_in_url"),
            "{path}"
        );
    }
    // Wrong secrets, malformed ids and secrets: one opaque answer.
    let wrong = "0".repeat(64);
    for (id, s) in [
        (share.as_str(), wrong.as_str()),
        ("0123", secret.as_str()),
        (share.as_str(), "short"),
    ] {
        let r = srv.request(
            "POST",
            &format!("/api/v1/links/{id}"),
            &[("kinko-link-secret", s)],
            None,
        );
        assert_eq!((r.status, r.code().as_str()), (404, "link_invalid"));
    }
    // 8 per minute: the 3 wrong ones above, 5 more, then the address waits. (The query
    // string refusals happen before the limiter.)
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(srv.link_info(&share, &secret).status);
    }
    assert_eq!(statuses, [200; 5]);
    let r = srv.link_info(&share, &secret);
    assert_eq!((r.status, r.code().as_str()), (429, "rate_limited"));
    srv.assert_no_server_errors();
    srv.assert_log_free_of(&[&secret]);
}

/// Behind a trusted proxy the client is the first untrusted X-Forwarded-For hop from the
/// right: each partner gets its own link limit and audit address, and a client cannot escape
/// its limit by writing addresses of its own on the left. Without trusted proxies the header
/// changes nothing.
#[test]
fn forwarded_for_names_the_client_only_behind_trusted_proxies() {
    let link = |srv: &TestServer, share: &str, secret: &str, xff: Option<&str>| {
        let mut h = vec![("kinko-link-secret", secret)];
        if let Some(x) = xff {
            h.push(("x-forwarded-for", x));
        }
        srv.request("POST", &format!("/api/v1/links/{share}"), &h, None)
            .status
    };
    let proxied = TestServer::start_with(Options {
        config: Some(
            "trusted_proxies = [\"127.0.0.1\"]\n[limits]\nlink_requests_per_minute = 3\n".into(),
        ),
        ..Options::default()
    });
    let (_, alice) = proxied.member("alice");
    let file = proxied.upload(&alice, "x.txt", b"x");
    let (share, secret, _) = proxied.share(&alice, &file, json!({"expires_in": 600}));
    let a = Some("203.0.113.7");
    let statuses: Vec<u16> = (0..4).map(|_| link(&proxied, &share, &secret, a)).collect();
    assert_eq!(statuses, [200, 200, 200, 429], "203.0.113.7's own limit");
    assert_eq!(
        link(&proxied, &share, &secret, Some("9.9.9.9, 203.0.113.7")),
        429,
        "a spoofed hop on the left does not escape the limit"
    );
    assert_eq!(
        link(&proxied, &share, &secret, Some("198.51.100.2")),
        200,
        "another partner behind the same proxy is not limited"
    );
    assert_eq!(
        link(&proxied, &share, &secret, None),
        200,
        "the proxy's own requests"
    );
    let audit = proxied
        .admin("GET", "/api/v1/admin/audit/export", None)
        .text();
    assert!(
        audit.contains("203.0.113.7") && audit.contains("198.51.100.2"),
        "the audit log names the clients, not the proxy"
    );
    assert!(
        !audit.contains("9.9.9.9"),
        "client-written hops are never recorded"
    );
    proxied.assert_no_server_errors();

    let direct = TestServer::start_with(Options {
        config: Some("[limits]\nlink_requests_per_minute = 3\n".into()),
        ..Options::default()
    });
    let (_, bob) = direct.member("bob");
    let file = direct.upload(&bob, "y.txt", b"y");
    let (share, secret, _) = direct.share(&bob, &file, json!({"expires_in": 600}));
    let statuses: Vec<u16> = ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]
        .into_iter()
        .map(|x| link(&direct, &share, &secret, Some(x)))
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "untrusted peers' headers are ignored"
    );
    let audit = direct
        .admin("GET", "/api/v1/admin/audit/export", None)
        .text();
    assert!(!audit.contains("1.1.1.1"));

    // A bad entry is a configuration error at startup.
    dev_start_fails(
        &["--trusted-proxy", "proxy.internal"],
        "trusted proxy \"proxy.internal\"",
    );
}

/// `kinko serve --dev` with `args` refuses to start and says `why` on stderr.
fn dev_start_fails(args: &[&str], why: &str) {
    let out = std::process::Command::new(KINKO)
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(why), "{err}");
}

/// /metrics answers the configured networks only; behind a trusted proxy that means the
/// forwarded client, and a client cannot get in by writing an allowed address on the left.
#[test]
fn metrics_are_served_only_to_metrics_from() {
    let srv = TestServer::start_with(Options {
        config: Some("trusted_proxies = [\"127.0.0.1\"]\nmetrics_from = [\"10.0.0.0/8\"]\n".into()),
        ..Options::default()
    });
    let get = |xff: Option<&str>| {
        let h: Vec<(&str, &str)> = xff.map(|x| ("x-forwarded-for", x)).into_iter().collect();
        srv.request("GET", "/metrics", &h, None)
    };
    let ok = get(Some("10.1.2.3"));
    assert_eq!(ok.status, 200);
    assert!(ok.text().contains("kinko_http_requests_total"));
    for refused in [None, Some("203.0.113.9"), Some("10.1.2.3, 203.0.113.9")] {
        let r = get(refused);
        assert_eq!(
            (r.status, r.code()),
            (403, "forbidden".into()),
            "{refused:?}"
        );
        assert!(!r.text().contains("kinko_http"), "{refused:?}");
    }

    // The default is this host only; a bad entry is a configuration error at startup.
    let local = TestServer::start();
    assert_eq!(local.request("GET", "/metrics", &[], None).status, 200);
    dev_start_fails(
        &["--metrics-from", "prometheus.internal"],
        "metrics_from entry \"prometheus.internal\"",
    );
}

#[test]
fn oversized_slow_and_aborted_uploads_leave_nothing_behind() {
    let srv = TestServer::start_with(Options {
        args: vec!["--max-upload".into(), "100000".into()],
        config: Some("[limits]\nheader_timeout_secs = 1\nidle_timeout_secs = 2\n".into()),
        ..Options::default()
    });
    let (_, alice) = srv.member("alice");
    let auth = format!("Bearer {alice}");

    // Declared too large: refused before reading.
    let r = srv.request(
        "POST",
        "/api/v1/files?name=big",
        &[("authorization", &auth)],
        Some(&data(100_001, 1)),
    );
    assert_eq!((r.status, r.code().as_str()), (413, "too_large"));
    // Chunked and too large: refused once the limit is crossed.
    let mut req = format!(
        "POST /api/v1/files?name=big HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..4 {
        req.extend_from_slice(format!("{:x}\r\n", 40_000).as_bytes());
        req.extend_from_slice(&data(40_000, 2));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let resp = raw(&srv, &req, Duration::from_secs(10));
    assert_eq!(status_of(&resp), 413, "{resp}");

    // A client that stops sending its body: 408 after the idle timeout.
    let mut s = TcpStream::connect(addr(&srv)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /api/v1/files?name=slow HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Length: 50000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&data(1000, 3)).unwrap();
    // The server must end it: a read that times out on our side would mean it never did.
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .expect("the server closes a connection whose body stalls");
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(status_of(&answer), 408, "slow body: {answer}");

    // A client that never finishes its request head is disconnected.
    let mut s = TcpStream::connect(addr(&srv)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .expect("the server closes a connection whose request head stalls");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || status_of(&answer) == 408,
        "slow head: {answer}"
    );

    // A client that disconnects in the middle of its upload.
    let mut s = TcpStream::connect(addr(&srv)).unwrap();
    write!(
        s,
        "POST /api/v1/files?name=cut HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Length: 90000\r\n\r\n"
    )
    .unwrap();
    s.write_all(&data(70_000, 4)).unwrap();
    drop(s);

    // Nothing was stored: no file, no blob, no temporary.
    eventually("the aborted uploads are cleaned up", || {
        srv.blob_files().is_empty()
    });
    let files = srv.authed(&alice, "GET", "/api/v1/files", None).json();
    assert_eq!(files["files"].as_array().unwrap().len(), 0);
    // The server is fine and a normal upload still works.
    srv.upload(&alice, "ok.txt", b"fine");
    assert_eq!(srv.blob_files().len(), 1);
    srv.assert_no_server_errors();
}

/// The idle timeout counts progress in both directions: a download read slowly for many times
/// the timeout completes, while a client that stops reading is cut.
#[test]
fn a_slow_download_outlives_the_idle_timeout_and_a_stalled_one_does_not() {
    let srv = TestServer::start_with(Options {
        config: Some("[limits]\nidle_timeout_secs = 1\n".into()),
        ..Options::default()
    });
    let (_, alice) = srv.member("alice");
    let content = data(24 * 1024 * 1024, 6);
    let file = srv.upload(&alice, "film.bin", &content);
    let get = |s: &mut TcpStream| {
        write!(
            s,
            "GET /api/v1/files/{file}/content HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {alice}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
    };
    let body_len = |answer: &[u8]| {
        let head = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        answer.len() - head
    };

    // Slow: 256 KiB every 40 ms, about 4 s in all, never a second without progress.
    let mut s = TcpStream::connect(addr(&srv)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    get(&mut s);
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(40));
    }
    assert_eq!(
        body_len(&answer),
        content.len(),
        "the slow download was cut"
    );
    assert!(answer.ends_with(&content[content.len() - 1000..]));

    // Stalled: nothing read for 4 s, more than the socket buffers hold. The server gives up
    // on it; what arrives afterwards ends short of the 24 MiB.
    let mut s = TcpStream::connect(addr(&srv)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    get(&mut s);
    std::thread::sleep(Duration::from_secs(4));
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    assert!(
        body_len(&answer) < content.len(),
        "a client that stopped reading kept its connection"
    );
    srv.assert_no_server_errors();
}

/// An upload streams for as long as its client sends: a user disabled, or a token revoked,
/// while it streams must not get the file stored once it ends (401, nothing left behind).
#[test]
fn an_upload_outlived_by_its_user_or_its_token_stores_nothing() {
    let srv = TestServer::start();
    let blobs = srv.data_dir().join("blobs");
    let stored = || {
        std::fs::read_dir(&blobs)
            .unwrap()
            .flatten()
            .filter(|d| d.file_name() != ".tmp")
            .map(|d| std::fs::read_dir(d.path()).unwrap().count())
            .sum::<usize>()
    };
    let in_progress = || srv.uploads_in_progress();
    for ending in ["token revoked", "user disabled"] {
        let (user, token) = srv.member(&ending.replace(' ', "-"));
        let token_id = srv.authed(&token, "GET", "/api/v1/me", None).json()["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = data(256 * 1024, 3);
        let mut s = TcpStream::connect(addr(&srv)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "POST /api/v1/files?name=late.bin HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {token}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        s.write_all(&body[..1000]).unwrap();
        // Authenticated and streaming: its blob is being written.
        eventually("the upload to start", || in_progress() == 1);
        let r = match ending {
            "token revoked" => srv.admin("DELETE", &format!("/api/v1/tokens/{token_id}"), None),
            _ => srv.admin("POST", &format!("/api/v1/admin/users/{user}/disable"), None),
        };
        assert!(r.status < 300, "{ending}: {}", r.text());
        s.write_all(&body[1000..]).unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert_eq!(status_of(&answer), 401, "{ending}: {answer}");
        assert_eq!((stored(), in_progress()), (0, 0), "{ending}: nothing left");
    }
    let log = srv.admin("GET", "/api/v1/admin/audit/export", None).text();
    let uploads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"file.upload\""))
        .collect();
    assert_eq!(uploads.len(), 2, "{log}");
    assert!(
        uploads
            .iter()
            .all(|l| l.contains("\"outcome\":\"refused\"")),
        "{uploads:?}"
    );
    srv.assert_no_server_errors();
}

/// Uploads have their own limit: with `max_uploads = 1`, an upload that is still streaming
/// leaves no room for a second (503 before its body is read, nothing stored), while other
/// requests go on; room comes back once the first ends, stored.
#[test]
fn uploads_over_max_uploads_are_refused_before_their_body() {
    let srv = TestServer::start_with(Options {
        config: Some("[limits]\nmax_uploads = 1\n".into()),
        ..Options::default()
    });
    let (_, alice) = srv.member("alice");
    let auth = format!("Bearer {alice}");
    let in_progress = || srv.uploads_in_progress();
    let body = data(256 * 1024, 5);
    let mut first = TcpStream::connect(addr(&srv)).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        first,
        "POST /api/v1/files?name=first.bin HTTP/1.1\r\nHost: x\r\n\
         Authorization: {auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    first.write_all(&body[..1000]).unwrap();
    eventually("the first upload to start", || in_progress() == 1);

    let second = srv.request(
        "POST",
        "/api/v1/files?name=second.bin",
        &[("authorization", &auth)],
        Some(&data(1000, 6)),
    );
    assert_eq!(
        (second.status, second.code().as_str()),
        (503, "unavailable")
    );
    assert!(second.text().contains("uploads"), "{}", second.text());
    assert_eq!(in_progress(), 1, "the refused upload wrote nothing");
    let listed = srv.authed(&alice, "GET", "/api/v1/files", None);
    assert_eq!(listed.status, 200, "other requests are served meanwhile");

    first.write_all(&body[1000..]).unwrap();
    let mut answer = String::new();
    let _ = first.read_to_string(&mut answer);
    assert_eq!(status_of(&answer), 201, "{answer}");
    let third = srv.upload(&alice, "third.bin", &data(1000, 7));
    let names: Vec<String> = srv.authed(&alice, "GET", "/api/v1/files", None).json()["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n != "second.bin"),
        "{names:?} ({third})"
    );
}

/// A streamed download is in flight until its body is sent, not only until its head is: with
/// `max_in_flight = 2`, two downloads whose clients read nothing leave no room for a third
/// request (503, with its request id and counted as a refusal), and room comes back once they
/// go. The health check is answered throughout: a busy server is not a dead one.
#[test]
fn streamed_downloads_count_against_max_in_flight_until_they_end() {
    let srv = TestServer::start_with(Options {
        config: Some("[limits]\nmax_in_flight = 2\n".into()),
        ..Options::default()
    });
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "big.bin", &data(24 * 1024 * 1024, 7));
    let request = format!(
        "GET /api/v1/files/{file}/content HTTP/1.1\r\nHost: x\r\n\
         Authorization: Bearer {alice}\r\nConnection: close\r\n\r\n"
    );
    let stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(addr(&srv)).unwrap();
            s.write_all(request.as_bytes()).unwrap();
            // The answer has started (its head arrived); the body waits for us.
            let mut head = [0u8; 12];
            s.read_exact(&mut head).unwrap();
            assert_eq!(&head, b"HTTP/1.1 200");
            s
        })
        .collect();
    let r = srv.request("GET", "/openapi.json", &[], None);
    assert_eq!((r.status, r.code().as_str()), (503, "unavailable"));
    assert!(r.header("x-request-id").is_some(), "{:?}", r.headers);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(srv.request("GET", "/healthz", &[], None).status, 200);
    drop(stalled);
    eventually("the closed downloads give their places back", || {
        srv.request("GET", "/openapi.json", &[], None).status == 200
    });
    // Counted as refusals (the wait above may have met more than the one asked for).
    let metrics = srv.request("GET", "/metrics", &[], None).text();
    let refused = metrics
        .lines()
        .find_map(|l| l.strip_prefix("kinko_refusals_total{reason=\"unavailable\"} "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(refused.is_some_and(|n| n >= 1), "{metrics}");
    // (No assert_no_server_errors: the 503s are this test's point.)
}

#[test]
fn a_download_limit_of_three_under_many_concurrent_requests_gives_exactly_three() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "hot.txt", b"everyone wants this");
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 600, "max_downloads": 3}),
    );
    let srv = std::sync::Arc::new(srv);
    let handles: Vec<_> = (0..60)
        .map(|_| {
            let (srv, share, secret) = (srv.clone(), share.clone(), secret.clone());
            std::thread::spawn(move || srv.link_download(&share, &secret, None).status)
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        3,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 404),
        "{statuses:?}"
    );
    srv.assert_no_server_errors();
}

#[test]
fn shutdown_finishes_the_transfer_in_flight_and_refuses_new_connections() {
    let mut srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let content = data(8 << 20, 5);
    let file = srv.upload(&alice, "big.bin", &content);
    let (share, secret, _) = srv.share(&alice, &file, json!({"expires_in": 600}));

    let mut s = TcpStream::connect(addr(&srv)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /api/v1/links/{share}/content HTTP/1.1\r\nHost: x\r\nKinko-Link-Secret: {secret}\r\n\r\n"
    )
    .unwrap();
    let mut first = vec![0u8; 4096];
    let n = s.read(&mut first).unwrap();
    assert!(n > 0);
    first.truncate(n);

    support::terminate_pid(srv.pid());
    eventually("the listener closes", || {
        TcpStream::connect(addr(&srv)).is_err()
    });

    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    first.extend_from_slice(&rest);
    let split = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&first[..split]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(&first[split..], &content[..], "the whole file arrived");
    let status = srv.stop();
    assert!(status.success(), "{status:?}");
}

/// A second SIGTERM ends the grace period at once: the transfer still in flight is cut and
/// the server exits cleanly (vault flushed), instead of waiting out a long grace period.
#[test]
fn a_second_signal_cuts_the_grace_period_short() {
    let mut srv = TestServer::start_with(Options {
        config: Some("[limits]\nshutdown_grace_secs = 3600\n".into()),
        ..Options::default()
    });
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "big.bin", &data(32 << 20, 6));
    let (share, secret, _) = srv.share(&alice, &file, json!({"expires_in": 600}));

    // A download the client stops reading: it stays in flight.
    let mut s = TcpStream::connect(addr(&srv)).unwrap();
    write!(
        s,
        "GET /api/v1/links/{share}/content HTTP/1.1\r\nHost: x\r\nKinko-Link-Secret: {secret}\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 64];
    assert!(s.read(&mut head).unwrap() > 0);

    support::terminate_pid(srv.pid());
    eventually("the listener closes", || {
        TcpStream::connect(addr(&srv)).is_err()
    });
    eventually("the shutdown is logged", || {
        srv.log().contains("shutting down")
    });
    let status = srv.stop();
    assert!(status.success(), "{status:?}");
    let log = srv.log();
    assert!(log.contains("second signal"), "{log}");
    assert!(log.contains("stopped"), "the vault was flushed: {log}");
}

/// A SIGTERM that arrives right after the banner (the moment a supervisor or a script may
/// send it) is a graceful shutdown, not a death by the signal.
#[test]
fn a_signal_right_after_the_banner_is_a_graceful_shutdown() {
    for _ in 0..3 {
        let mut srv = TestServer::start();
        let status = srv.stop();
        assert!(status.success(), "{status:?}");
        assert!(srv.log().contains("stopped"), "{}", srv.log());
    }
}

/// Makes a key file readable by its owner only, as the server requires.
fn private(path: &std::path::Path) {
    chmod(path, 0o600);
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn startup_configuration_errors_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(KINKO)
            .current_dir(dir.path())
            .args(args)
            .env_remove("KINKO_KEK")
            .env_remove("KINKO_DATA_DIR")
            .output()
            .unwrap()
    };
    let out = run(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no data directory"));

    let out = run(&["serve", "--data-dir", "d", "--listen", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TLS"));

    std::fs::create_dir_all(dir.path().join("d")).unwrap();
    std::fs::write(dir.path().join("d/kek"), "00".repeat(32)).unwrap();
    private(&dir.path().join("d/kek"));
    let out = run(&[
        "serve",
        "--data-dir",
        "d",
        "--plain-http",
        "--kek-file",
        "d/kek",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("master key") && err.contains("data"), "{err}");

    std::fs::write(dir.path().join("bad.toml"), "listen = 5\n").unwrap();
    let out = run(&["serve", "--config", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml"));
}

#[test]
fn tls_is_served_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    std::fs::write(dir.path().join("kek"), "11".repeat(32)).unwrap();
    private(&dir.path().join("kek"));
    let mut child = std::process::Command::new(KINKO)
        .current_dir(dir.path())
        .args([
            "serve",
            "--data-dir",
            "data",
            "--kek-file",
            "kek",
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "cert.pem",
            "--tls-key",
            "key.pem",
        ])
        .env("KINKO_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (url, mut lines) = served_url(&mut child);
    assert!(url.starts_with("https://127.0.0.1:"));
    let token_line = lines.next().unwrap().unwrap();
    assert!(token_line.contains("created the admin"), "{token_line}");
    std::thread::spawn(move || for _ in lines {});

    assert_eq!(tls_healthz(dir.path(), &url, true), "ok\n");
    // Plain HTTP to the TLS port gets nowhere.
    let plain: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    assert!(
        plain
            .get(url.replace("https", "http") + "/healthz")
            .call()
            .is_err()
    );
    support::terminate_pid(child.id());
    assert!(child.wait().unwrap().success());
}

/// The URL of the first line a server prints ("Kinko is serving on URL"), and its further
/// lines.
fn served_url(
    child: &mut std::process::Child,
) -> (
    String,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("Kinko is serving on ")
        .unwrap_or_else(|| panic!("{first}"))
        .to_owned();
    (url, lines)
}

/// The body of `GET /healthz` at `url` over TLS, trusting `cert.pem` in `dir` (and checking
/// the certificate's name when `verify`).
fn tls_healthz(dir: &std::path::Path, url: &str, verify: bool) -> String {
    let pem = std::fs::read(dir.join("cert.pem")).unwrap();
    let cert = ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::new_with_certs(&[cert]))
        .disable_verification(!verify)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    agent
        .get(format!("{url}/healthz"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// A self-signed certificate and its key (`cert.pem`, `key.pem`) for 127.0.0.1 in `dir`.
fn self_signed(dir: &std::path::Path) {
    let st = std::process::Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .output()
        .expect("openssl is installed (apt-get install openssl)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

/// A master key or TLS private key that every user of the machine can read protects nothing:
/// the server refuses it, names the file and says how to fix it, before it creates anything.
/// Readable by the server's group is still fine (a `root:kinko 0640` key).
#[test]
fn a_master_key_or_tls_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    self_signed(dir.path());
    let kek = dir.path().join("kek.hex");
    std::fs::write(&kek, "22".repeat(32)).unwrap();
    // The exit of a server that should refuse to start; one that starts is stopped, and fails
    // the test.
    let start = |extra: &[&str]| {
        let mut child = std::process::Command::new(KINKO)
            .current_dir(dir.path())
            .args(["serve", "--data-dir", "data", "--kek-file", "kek.hex"])
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("KINKO_KEK")
            .env_remove("KINKO_SERVE_CONFIG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        for _ in 0..300 {
            if child.try_wait().unwrap().is_some() {
                return child.wait_with_output().unwrap();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        support::terminate_pid(child.id());
        let out = child.wait_with_output().unwrap();
        panic!(
            "the server started: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let tls = ["--tls-cert", "cert.pem", "--tls-key", "key.pem"];

    // With the master key and the TLS key at these modes, the server refuses `named`.
    let refused = |kek_mode: u32, tls_key_mode: u32, named: &str| {
        chmod(&kek, kek_mode);
        chmod(&dir.path().join("key.pem"), tls_key_mode);
        let out = start(&tls);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(named) && err.contains("other users") && err.contains("chmod"),
            "{err}"
        );
        assert!(!dir.path().join("data").exists(), "nothing was created");
    };
    refused(0o644, 0o600, "kek.hex");
    refused(0o640, 0o604, "key.pem");

    // Group-readable keys start.
    chmod(&dir.path().join("key.pem"), 0o640);
    let mut child = std::process::Command::new(KINKO)
        .current_dir(dir.path())
        .args(["serve", "--data-dir", "data", "--kek-file", "kek.hex"])
        .args(["--listen", "127.0.0.1:0"])
        .args(tls)
        .env_remove("KINKO_KEK")
        .env("KINKO_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (url, lines) = served_url(&mut child);
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(tls_healthz(dir.path(), &url, false), "ok\n");
    support::terminate_pid(child.id());
    assert!(child.wait().unwrap().success());
}

/// The master key follows the documented precedence: flags, then the environment, then the
/// file. `KINKO_KEK` set beside a configuration file that names `kek_file` is the key used,
/// not silently ignored.
#[test]
fn kinko_kek_in_the_environment_wins_over_kek_file_in_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kinko.toml"),
        "data_dir = \"data\"\nkek_file = \"missing.hex\"\nplain_http = true\n\
         listen = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(KINKO)
        .current_dir(dir.path())
        .args(["serve", "--config", "kinko.toml"])
        .env("KINKO_KEK", "33".repeat(32))
        .env("KINKO_LOG", "warn")
        .env_remove("KINKO_KEK_FILE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
    let first = match lines.next() {
        Some(Ok(line)) => line,
        _ => {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("the server did not start: {err}");
        }
    };
    assert!(first.starts_with("Kinko is serving on http://"), "{first}");
    std::thread::spawn(move || for _ in lines {});
    support::terminate_pid(child.id());
    assert!(child.wait().unwrap().success());

    // A --kek-file flag still wins over KINKO_KEK.
    let out = std::process::Command::new(KINKO)
        .current_dir(dir.path())
        .args(["serve", "--config", "kinko.toml", "--kek-file", "flag.hex"])
        .env("KINKO_KEK", "33".repeat(32))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("flag.hex"), "{err}");
}

/// `KINKO_PLAIN_HTTP` takes the usual spellings of a boolean, in any case (it took only `true`
/// and `false`: `KINKO_PLAIN_HTTP=1` stopped the server), its `0` wins over the file's
/// `plain_http = true` as the environment wins over the file for every setting, and any other
/// value is refused with the variable's name.
#[test]
fn kinko_plain_http_takes_the_usual_boolean_spellings() {
    let dir = tempfile::tempdir().unwrap();
    // The server's first line on stdout, once it serves (then it is stopped), or its exit code
    // and stderr when it refuses to start.
    let serve = |file_plain_http: bool, value: &str| -> Result<String, (Option<i32>, String)> {
        std::fs::write(
            dir.path().join("kinko.toml"),
            format!(
                "data_dir = \"data\"\nlisten = \"127.0.0.1:0\"\nplain_http = {file_plain_http}\n"
            ),
        )
        .unwrap();
        let mut child = std::process::Command::new(KINKO)
            .current_dir(dir.path())
            .args(["serve", "--config", "kinko.toml"])
            .env("KINKO_PLAIN_HTTP", value)
            .env("KINKO_KEK", "33".repeat(32))
            .env("KINKO_LOG", "warn")
            .env_remove("KINKO_KEK_FILE")
            .env_remove("KINKO_DATA_DIR")
            .env_remove("KINKO_LISTEN")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stdout.take().unwrap()));
        match lines.next() {
            Some(Ok(first)) => {
                std::thread::spawn(move || for _ in lines {});
                // How it ends is not this test's business: a SIGTERM this early can come
                // before the server listens for it.
                support::terminate_pid(child.id());
                child.wait().unwrap();
                Ok(first)
            }
            _ => {
                let mut err = String::new();
                let mut stderr = child.stderr.take().unwrap();
                stderr.read_to_string(&mut err).unwrap();
                Err((child.wait().unwrap().code(), err))
            }
        }
    };
    for value in ["1", "true", "YES", "On"] {
        let first = serve(false, value).unwrap_or_else(|e| panic!("{value}: {e:?}"));
        assert!(first.starts_with("Kinko is serving on http://"), "{first}");
    }
    for value in ["0", "false", "No", "OFF"] {
        let (code, err) = serve(true, value).expect_err(value);
        assert_eq!(code, Some(1), "{value}: {err}");
        assert!(err.contains("TLS"), "{value}: {err}");
    }
    for value in ["maybe", "2", ""] {
        let (code, err) = serve(true, value).expect_err(value);
        assert_eq!(code, Some(1), "{value:?}: {err}");
        assert!(
            err.contains("KINKO_PLAIN_HTTP takes 1, true"),
            "{value:?}: {err}"
        );
    }
}
