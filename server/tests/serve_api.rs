//! End-to-end tests of `kinko serve` over real TCP on 127.0.0.1: uploads, shares, link
//! downloads, passwords, limits, expiry, revocation, recipient-bound downloads and Range.

mod support;

use serde_json::json;
use support::{Options, TestServer, data};

/// 64 KiB chunks: this is 17 chunks and a partial one.
const MULTI_CHUNK: usize = 17 * 65536 + 1234;

#[test]
fn upload_share_and_download_by_link_for_empty_small_and_multi_chunk_files() {
    let srv = TestServer::start();
    #[cfg(unix)]
    {
        // What the server creates is private to its user.
        use std::os::unix::fs::PermissionsExt;
        let data = srv.data_dir();
        for d in [data.clone(), data.join("meta"), data.join("blobs")] {
            let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
    }
    let (_, alice) = srv.member("alice");
    let mut secrets = vec![alice.clone(), srv.admin_token.clone()];
    for (i, len) in [0usize, 1, 65536, MULTI_CHUNK].into_iter().enumerate() {
        let content = data(len, i as u8);
        let name = format!("report {i}.bin");
        let file = srv.upload(&alice, &name, &content);
        let info = srv.authed(&alice, "GET", &format!("/api/v1/files/{file}"), None);
        assert_eq!(info.status, 200);
        assert_eq!(info.json()["size"], len);
        assert_eq!(info.json()["name"], name);

        let (share, secret, link) = srv.share(&alice, &file, json!({"expires_in": 3600}));
        assert!(link.starts_with(&format!("{}/s/{share}#", srv.url)));
        let view = srv.link_info(&share, &secret);
        assert_eq!(view.status, 200, "{}", view.text());
        assert_eq!(view.json()["name"], name);
        assert_eq!(view.json()["size"], len);
        assert_eq!(view.json()["password_required"], false);
        assert_eq!(view.json()["recipient_bound"], false);

        let got = srv.link_download(&share, &secret, None);
        assert_eq!(got.status, 200, "{}", got.text());
        assert_eq!(got.body, content, "length {len}");
        assert_eq!(got.header("content-length"), Some(len.to_string().as_str()));
        assert!(
            got.header("content-disposition")
                .unwrap()
                .contains("report")
        );

        // The owner reads it back too.
        let own = srv.authed(
            &alice,
            "GET",
            &format!("/api/v1/files/{file}/content"),
            None,
        );
        assert_eq!(own.body, content);
        secrets.push(secret);
    }
    let files = srv.authed(&alice, "GET", "/api/v1/files", None).json();
    assert_eq!(files["files"].as_array().unwrap().len(), 4);
    // The admin uploaded nothing: listings are per owner.
    let mine = srv.admin("GET", "/api/v1/files", None).json();
    assert_eq!(mine["files"].as_array().unwrap().len(), 0);

    srv.assert_no_server_errors();
    let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
    srv.assert_log_free_of(&refs);
}

/// A name with characters that reorder text (`invoice\u{202E}fdp.exe` shows as
/// `invoiceexe.pdf`) reaches the partner in its safe form: the link's details, which the
/// partner page shows, name the file exactly as its download is saved, with `_` for each such
/// character. The owner still sees the name as uploaded.
#[test]
fn the_partner_sees_a_name_that_reorders_text_as_it_is_saved() {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    for (name, shown) in [
        ("invoice\u{202E}fdp.exe", "invoice_fdp.exe"),
        ("\u{2067}x\u{2069} \u{202A}y\u{202C}.txt", "_x_ _y_.txt"),
        (
            "2024\u{200F}-01\u{200E}-\u{061C}02.txt",
            "2024_-01_-_02.txt",
        ),
        ("שלום.txt", "שלום.txt"),
    ] {
        let encoded = utf8_percent_encode(name, NON_ALPHANUMERIC).to_string();
        let file = srv.upload(&alice, &encoded, b"contents");
        let own = srv.authed(&alice, "GET", &format!("/api/v1/files/{file}"), None);
        assert_eq!(
            own.json()["name"],
            name,
            "the stored name is the uploaded one"
        );

        let (share, secret, _) = srv.share(&alice, &file, json!({"expires_in": 3600}));
        let view = srv.link_info(&share, &secret);
        assert_eq!(view.status, 200, "{}", view.text());
        assert_eq!(view.json()["name"], shown, "{name:?}");
        let got = srv.link_download(&share, &secret, None);
        assert_eq!(got.status, 200, "{}", got.text());
        let saved = utf8_percent_encode(shown, NON_ALPHANUMERIC).to_string();
        let disposition = got.header("content-disposition").unwrap();
        assert!(
            disposition.ends_with(&format!("filename*=UTF-8''{saved}")),
            "{name:?} is saved otherwise than shown: {disposition}"
        );
    }
    srv.assert_no_server_errors();
}

#[test]
fn password_limit_and_lockout() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "plan.pdf", b"the plan");

    // Download limit: exactly two downloads.
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 3600, "max_downloads": 2}),
    );
    for _ in 0..2 {
        assert_eq!(srv.link_download(&share, &secret, None).body, b"the plan");
    }
    let third = srv.link_download(&share, &secret, None);
    assert_eq!((third.status, third.code().as_str()), (404, "link_invalid"));

    // Password: required, wrong (counted toward the lock), right.
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 3600, "password": "correct horse ☃"}),
    );
    let view = srv.link_info(&share, &secret);
    assert_eq!(view.json()["password_required"], true);
    let none = srv.link_download(&share, &secret, None);
    assert_eq!(
        (none.status, none.code().as_str()),
        (401, "password_required")
    );
    let wrong = srv.link_download(&share, &secret, Some("battery"));
    assert_eq!(
        (wrong.status, wrong.code().as_str()),
        (403, "wrong_password")
    );
    let right = srv.link_download(&share, &secret, Some("correct%20horse%20%E2%98%83"));
    assert_eq!(right.status, 200, "{}", right.text());
    assert_eq!(right.body, b"the plan");

    // Brute force: the share locks after 5 wrong passwords, then even the right one fails.
    for _ in 0..4 {
        assert_eq!(
            srv.link_download(&share, &secret, Some("guess")).status,
            403
        );
    }
    let locked = srv.link_download(&share, &secret, Some("correct%20horse%20%E2%98%83"));
    assert_eq!(
        (locked.status, locked.code().as_str()),
        (404, "link_invalid")
    );
    let shares = srv.authed(&alice, "GET", "/api/v1/shares", None).json();
    let states: Vec<&str> = shares["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"locked") && states.contains(&"exhausted"),
        "{states:?}"
    );

    // Every counted download and wrong password above waited for a durable flush (the default
    // access_durability = "sync"), and one flush may serve several of them.
    let metrics = srv.request("GET", "/metrics", &[], None).text();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    let (waits, flushes) = (
        value("kinko_vault_flush_waits_total"),
        value("kinko_vault_flushes_total"),
    );
    assert!(waits >= 7, "{waits} waits");
    assert!((1..=waits).contains(&flushes), "{flushes} flushes");
    assert_eq!(value("kinko_vault_flush_failures_total"), 0);

    srv.assert_no_server_errors();
    srv.assert_log_free_of(&[&secret, "correct horse", "battery", &alice]);
}

#[test]
fn expiry_by_the_test_clock_and_the_sweeper() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "a.txt", b"soon gone");
    let (share, secret, _) = srv.share(&alice, &file, json!({"expires_in": 60}));
    assert_eq!(srv.link_download(&share, &secret, None).status, 200);

    srv.advance(61);
    // Refused at access time, before any sweep.
    let r = srv.link_download(&share, &secret, None);
    assert_eq!((r.status, r.code().as_str()), (404, "link_invalid"));
    let listed = srv.authed(&alice, "GET", "/api/v1/shares", None).json();
    assert_eq!(listed["shares"][0]["state"], "expired");

    let swept = srv.admin("POST", "/api/v1/admin/sweep", None);
    assert_eq!(swept.status, 200, "{}", swept.text());
    assert_eq!(swept.json()["shares_removed"], 1);
    let listed = srv.authed(&alice, "GET", "/api/v1/shares", None).json();
    assert_eq!(listed["shares"].as_array().unwrap().len(), 0);

    // Retention: after 30 days (the default) the file itself is shredded.
    srv.advance(31 * 86_400);
    let swept = srv.admin("POST", "/api/v1/admin/sweep", None).json();
    assert_eq!(swept["files_removed"], 1);
    assert_eq!(
        srv.authed(&alice, "GET", &format!("/api/v1/files/{file}"), None)
            .status,
        404
    );
    assert!(srv.blob_files().is_empty(), "{:?}", srv.blob_files());
    let metrics = srv.request("GET", "/metrics", &[], None).text();
    assert!(metrics.contains("kinko_sweeper_removed_total{kind=\"file\"} 1"));
    srv.assert_no_server_errors();
}

#[test]
fn revoke_share_file_user_and_freeze() {
    let srv = TestServer::start();
    let (bob_id, bob) = srv.member("bob");
    let (_, carol) = srv.member("carol");
    let f1 = srv.upload(&bob, "one.txt", b"1");
    let f2 = srv.upload(&bob, "two.txt", b"2");
    let (s1, k1, _) = srv.share(&bob, &f1, json!({"expires_in": 3600}));
    let (s2, k2, _) = srv.share(&bob, &f2, json!({"expires_in": 3600}));
    let (s3, k3, _) = srv.share(&bob, &f2, json!({"expires_in": 3600}));
    let cf = srv.upload(&carol, "carol.txt", b"c");
    let (s4, k4, _) = srv.share(&carol, &cf, json!({"expires_in": 3600}));

    // Another member can neither see nor revoke bob's share.
    let r = srv.authed(&carol, "DELETE", &format!("/api/v1/shares/{s1}"), None);
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        srv.authed(&carol, "GET", &format!("/api/v1/files/{f1}"), None)
            .status,
        404
    );

    // One share.
    assert_eq!(
        srv.authed(&bob, "DELETE", &format!("/api/v1/shares/{s1}"), None)
            .status,
        204
    );
    assert_eq!(srv.link_download(&s1, &k1, None).code(), "link_invalid");
    assert_eq!(srv.link_download(&s2, &k2, None).status, 200);

    // Every share of a file.
    let r = srv.authed(&bob, "POST", &format!("/api/v1/files/{f2}/revoke"), None);
    assert_eq!(r.json()["revoked"], 2);
    assert_eq!(srv.link_download(&s3, &k3, None).code(), "link_invalid");

    // Freeze stops every share of the deployment, and lifting it restores them.
    let (s5, k5, _) = srv.share(&bob, &f1, json!({"expires_in": 3600}));
    assert_eq!(srv.admin("POST", "/api/v1/admin/freeze", None).status, 204);
    assert_eq!(
        srv.admin("GET", "/api/v1/admin/freeze", None).json()["frozen"],
        true
    );
    assert_eq!(srv.link_download(&s4, &k4, None).code(), "link_invalid");
    assert_eq!(srv.link_download(&s5, &k5, None).code(), "link_invalid");
    // Only an admin may freeze.
    assert_eq!(
        srv.authed(&bob, "DELETE", "/api/v1/admin/freeze", None)
            .status,
        403
    );
    assert_eq!(
        srv.admin("DELETE", "/api/v1/admin/freeze", None).status,
        204
    );
    assert_eq!(srv.link_download(&s4, &k4, None).status, 200);

    // Disabling a user kills their tokens and every share they made, at once.
    let r = srv.admin(
        "POST",
        &format!("/api/v1/admin/users/{bob_id}/disable"),
        None,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(srv.authed(&bob, "GET", "/api/v1/me", None).status, 401);
    assert_eq!(srv.link_download(&s5, &k5, None).code(), "link_invalid");
    assert_eq!(
        srv.link_download(&s4, &k4, None).status,
        200,
        "carol is unaffected"
    );

    srv.assert_no_server_errors();
}

#[test]
fn recipient_bound_share_downloads_an_envelope_only_the_partner_opens() {
    use kinko_core::envelope::{self, Keyring};
    use kinko_core::keys::Identity;

    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let content = data(MULTI_CHUNK, 9);
    let file = srv.upload(&alice, "contract.pdf", &content);
    let partner = Identity::generate();
    let outsider = Identity::generate();
    let (partner_key, outsider_key) = (
        partner.to_public().to_string(),
        outsider.to_public().to_string(),
    );
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 3600, "recipients": [partner_key]}),
    );
    let view = srv.link_info(&share, &secret);
    assert_eq!(view.json()["recipient_bound"], true);
    let got = srv.link_download(&share, &secret, None);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("kinko-recipient-bound"), Some("1"));
    assert!(
        got.header("content-disposition")
            .unwrap()
            .contains("contract.pdf.kinko")
    );
    assert_ne!(got.body, content);

    let mut opened = Vec::new();
    let (meta, _) = envelope::open(
        &got.body[..],
        &mut opened,
        &Keyring::new().identity(partner),
    )
    .expect("the partner opens it");
    assert_eq!(opened, content);
    assert_eq!(meta.name, "contract.pdf");
    let mut nothing = Vec::new();
    assert!(
        envelope::open(
            &got.body[..],
            &mut nothing,
            &Keyring::new().identity(outsider)
        )
        .is_err()
    );

    // A download that names the keys it will be opened with: the outsider's is refused before
    // it counts, the partner's (among others) is served, a malformed key is a clear 400.
    let named = |method, route: &str, keys: &str| {
        srv.request(
            method,
            &format!("/api/v1/links/{share}/{route}"),
            &[("kinko-link-secret", &secret), ("kinko-recipient", keys)],
            None,
        )
    };
    let downloads = || {
        srv.authed(&alice, "GET", "/api/v1/shares", None).json()["shares"][0]["downloads"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(downloads(), 1);
    for (method, route) in [("POST", "ticket"), ("GET", "content")] {
        let r = named(method, route, &outsider_key);
        assert_eq!(
            (r.status, r.code().as_str()),
            (403, "not_recipient"),
            "{route}"
        );
        let r = named(method, route, "age1notakey");
        assert_eq!((r.status, r.code().as_str()), (400, "invalid"), "{route}");
    }
    assert_eq!(downloads(), 1);
    let r = named("POST", "ticket", &format!("{outsider_key}, {partner_key}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = named("GET", "content", &partner_key);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("kinko-recipient-bound"), Some("1"));
    assert_eq!(downloads(), 3);

    // A bad recipient is a clear 400.
    let r = srv.authed(
        &alice,
        "POST",
        &format!("/api/v1/files/{file}/shares"),
        Some(&json!({"expires_in": 60, "recipients": ["age1notakey"]})),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid"));
    assert!(r.text().contains("recipient 1"));
    srv.assert_no_server_errors();
}

/// Every request for a bound share gets the same envelope, so ranges of it (inside the
/// header, across its end, inside the payload) fit together into the one envelope.
#[test]
fn ranges_of_a_bound_envelope_fit_together() {
    use kinko_core::envelope::{self, Keyring};
    use kinko_core::keys::Identity;

    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let content = data(MULTI_CHUNK, 4);
    let file = srv.upload(&alice, "plan.pdf", &content);
    let partner = Identity::generate();
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 3600, "max_downloads": 1,
               "recipients": [partner.to_public().to_string()]}),
    );
    let t = srv.request(
        "POST",
        &format!("/api/v1/links/{share}/ticket"),
        &[("kinko-link-secret", &secret)],
        None,
    );
    let ticket = t.json()["ticket"].as_str().unwrap().to_owned();
    let get = |range: Option<&str>| {
        let mut headers = vec![
            ("kinko-link-secret", secret.as_str()),
            ("kinko-ticket", &ticket),
        ];
        headers.extend(range.map(|r| ("range", r)));
        srv.request(
            "GET",
            &format!("/api/v1/links/{share}/content"),
            &headers,
            None,
        )
    };
    let whole = get(None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(get(None).body, whole.body, "the same bytes every time");
    let size = whole.body.len();
    let head = envelope::Header::read(&mut &whole.body[..]).unwrap().len();
    let mut pieces = Vec::new();
    for (a, b) in [
        (0, 9),
        (10, head - 1),
        (head, head + 70_000),
        (head + 70_001, size - 1),
    ] {
        let r = get(Some(&format!("bytes={a}-{b}")));
        assert_eq!(r.status, 206, "{a}-{b}: {}", r.text());
        assert_eq!(r.header("kinko-recipient-bound"), Some("1"));
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{size}").as_str())
        );
        pieces.extend_from_slice(&r.body);
    }
    assert_eq!(pieces, whole.body);
    let across = get(Some(&format!("bytes={}-{}", head - 5, head + 5)));
    assert_eq!(across.body, &whole.body[head - 5..=head + 5]);
    let r = get(Some(&format!("bytes={size}-")));
    assert_eq!(
        (r.status, r.code().as_str()),
        (416, "range_not_satisfiable")
    );
    let mut opened = Vec::new();
    envelope::open(&pieces[..], &mut opened, &Keyring::new().identity(partner)).unwrap();
    assert_eq!(opened, content);
    // All of it was the one counted download.
    let shares = srv.authed(&alice, "GET", "/api/v1/shares", None).json();
    assert_eq!(shares["shares"][0]["downloads"], 1);
    srv.assert_no_server_errors();
}

/// A counted download whose range misses the file still counts, so its answer (416) carries
/// the ticket: the client can ask for a range that fits without counting again.
#[test]
fn a_counted_download_answered_416_still_gives_its_ticket() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "short.txt", b"0123456789");
    let (share, secret, _) = srv.share(&alice, &file, json!({"expires_in": 3600}));
    let path = format!("/api/v1/links/{share}/content");
    let r = srv.request(
        "GET",
        &path,
        &[("kinko-link-secret", &secret), ("range", "bytes=10-")],
        None,
    );
    assert_eq!(
        (r.status, r.code().as_str()),
        (416, "range_not_satisfiable")
    );
    assert_eq!(r.header("content-range"), Some("bytes */10"));
    let ticket = r.header("kinko-ticket").expect("the ticket").to_owned();
    let r = srv.request(
        "GET",
        &path,
        &[
            ("kinko-link-secret", &secret),
            ("kinko-ticket", &ticket),
            ("range", "bytes=5-"),
        ],
        None,
    );
    assert_eq!((r.status, &r.body[..]), (206, &b"56789"[..]));
    let shares = srv.authed(&alice, "GET", "/api/v1/shares", None).json();
    assert_eq!(shares["shares"][0]["downloads"], 1);
    srv.assert_no_server_errors();
}

/// A counted download that cannot be served (its blob is missing: a disk fault, a restore
/// gone wrong) is given back: the partner got nothing, and the limited share keeps its
/// downloads for when the file is readable again.
#[test]
fn a_download_the_server_cannot_serve_is_not_spent() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "fragile.txt", b"needs its blob");
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 600, "max_downloads": 2}),
    );
    let blob = srv.data_dir().join("blobs").join(&file[..2]).join(&file);
    let away = blob.with_extension("away");
    std::fs::rename(&blob, &away).unwrap();
    // The ticket first (what the page and `kinko get` do), and a counted GET of its own.
    let content = format!("/api/v1/links/{share}/content");
    for _ in 0..3 {
        let r = srv.link_download(&share, &secret, None);
        assert_eq!((r.status, r.code().as_str()), (500, "internal"));
        let r = srv.request("GET", &content, &[("kinko-link-secret", &secret)], None);
        assert_eq!((r.status, r.code().as_str()), (500, "internal"));
        assert!(r.header("kinko-ticket").is_none());
    }
    let shares = srv.authed(&alice, "GET", "/api/v1/shares", None).json();
    assert_eq!(shares["shares"][0]["downloads"], 0, "{shares}");
    std::fs::rename(&away, &blob).unwrap();
    for _ in 0..2 {
        let r = srv.link_download(&share, &secret, None);
        assert_eq!((r.status, r.body.as_slice()), (200, &b"needs its blob"[..]));
    }
    assert_eq!(srv.link_download(&share, &secret, None).status, 404);
    let log = srv.admin("GET", "/api/v1/admin/audit/export", None).text();
    assert_eq!(
        log.matches("\"action\":\"share.download.undone\"").count(),
        6
    );
}

#[test]
fn range_requests_read_parts_and_one_ticket_counts_once() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let content = data(MULTI_CHUNK, 3);
    let file = srv.upload(&alice, "video.bin", &content);
    let (share, secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 3600, "max_downloads": 1}),
    );
    // A plain share ignores the keys a download names.
    let someone = kinko_core::keys::Identity::generate()
        .to_public()
        .to_string();
    let t = srv.request(
        "POST",
        &format!("/api/v1/links/{share}/ticket"),
        &[
            ("kinko-link-secret", &secret),
            ("kinko-recipient", &someone),
        ],
        None,
    );
    assert_eq!(t.status, 200, "{}", t.text());
    assert_eq!(t.json()["downloads_left"], 0);
    let ticket = t.json()["ticket"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/links/{share}/content");
    let size = content.len();
    let cases: [(String, usize, usize); 4] = [
        ("bytes=0-0".into(), 0, 0),
        ("bytes=65530-65545".into(), 65530, 65545), // across a chunk boundary
        (format!("bytes={}-", size - 10), size - 10, size - 1),
        ("bytes=-70000".into(), size - 70000, size - 1),
    ];
    for (range, a, b) in &cases {
        let r = srv.ranged_by_ticket(&share, &secret, &ticket, range);
        assert_eq!(r.status, 206, "{range}: {}", r.text());
        assert_eq!(r.body, &content[*a..=*b], "{range}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {a}-{b}/{size}").as_str())
        );
    }
    let r = srv.ranged_by_ticket(&share, &secret, &ticket, &format!("bytes={size}-"));
    assert_eq!(
        (r.status, r.code().as_str()),
        (416, "range_not_satisfiable")
    );
    // The whole file with the same ticket: still the one counted download.
    let full = srv.request(
        "GET",
        &path,
        &[("kinko-link-secret", &secret), ("kinko-ticket", &ticket)],
        None,
    );
    assert_eq!(full.body, content);
    // A new download is refused: the limit was one.
    assert_eq!(
        srv.link_download(&share, &secret, None).code(),
        "link_invalid"
    );
    // A ticket does not work without the secret, nor for another share.
    let r = srv.request("GET", &path, &[("kinko-ticket", &ticket)], None);
    assert_eq!(r.code(), "invalid");

    // The owner's own download supports ranges too.
    let r = srv.request(
        "GET",
        &format!("/api/v1/files/{file}/content"),
        &[
            ("authorization", &format!("Bearer {alice}")),
            ("range", "bytes=100-199"),
        ],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &content[100..200]);
    srv.assert_no_server_errors();
}

#[test]
fn user_names_that_would_look_like_another_are_refused() {
    let srv = TestServer::start();
    // A name that would read like "admin" (a zero-width space, a right-to-left override) is
    // refused and says why; names in any script are taken as they are.
    for name in ["admin\u{200B}", "\u{202E}nimda"] {
        let r = srv.admin(
            "POST",
            "/api/v1/admin/users",
            Some(&json!({"name": name, "role": "admin"})),
        );
        assert_eq!((r.status, r.code().as_str()), (400, "invalid"), "{name:?}");
        assert!(r.text().contains("invisible formatting"), "{}", r.text());
    }
    for name in ["Jürgen", "山田"] {
        let r = srv.admin(
            "POST",
            "/api/v1/admin/users",
            Some(&json!({"name": name, "role": "member"})),
        );
        assert_eq!(r.status, 201, "{name:?}: {}", r.text());
        assert_eq!(r.json()["name"], name);
    }
    let users = srv.admin("GET", "/api/v1/admin/users", None).json();
    assert_eq!(users["users"].as_array().unwrap().len(), 3, "{users}");
    srv.assert_no_server_errors();
}

#[test]
fn admin_users_tokens_roles_and_the_audit_log() {
    let srv = TestServer::start();
    let r = srv.admin(
        "POST",
        "/api/v1/admin/users",
        Some(&json!({"name": "audra", "role": "auditor"})),
    );
    assert_eq!(r.status, 201);
    let auditor_id = r.json()["id"].as_str().unwrap().to_owned();
    let tok = srv
        .admin(
            "POST",
            &format!("/api/v1/admin/users/{auditor_id}/tokens"),
            Some(&json!({"label": "laptop", "ttl": 3600})),
        )
        .json();
    let auditor = tok["token"].as_str().unwrap().to_owned();
    let token_id = tok["id"].as_str().unwrap().to_owned();
    let (_, member) = srv.member("mallory");
    // A token ends within 366 days: none is issued past that, nor for 0 s.
    for (ttl, status) in [
        (0, 400),
        (366 * 86_400, 201),
        (366 * 86_400 + 1, 400),
        (u64::MAX, 400),
    ] {
        let r = srv.admin(
            "POST",
            &format!("/api/v1/admin/users/{auditor_id}/tokens"),
            Some(&json!({"label": "long", "ttl": ttl})),
        );
        assert_eq!(r.status, status, "ttl {ttl}: {}", r.text());
    }

    // Taken names and bad roles are clear 4xx.
    let r = srv.admin(
        "POST",
        "/api/v1/admin/users",
        Some(&json!({"name": "audra", "role": "member"})),
    );
    assert_eq!((r.status, r.code().as_str()), (409, "exists"));
    let r = srv.admin(
        "POST",
        "/api/v1/admin/users",
        Some(&json!({"name": "x", "role": "root"})),
    );
    assert_eq!((r.status, r.code().as_str()), (400, "invalid"));

    // Roles: a member cannot administer or read the audit; an auditor reads but cannot upload.
    assert_eq!(
        srv.authed(&member, "GET", "/api/v1/admin/users", None)
            .status,
        403
    );
    assert_eq!(
        srv.authed(&member, "GET", "/api/v1/admin/audit/verify", None)
            .status,
        403
    );
    let r = srv.request(
        "POST",
        "/api/v1/files?name=x",
        &[("authorization", &format!("Bearer {auditor}"))],
        Some(b"x"),
    );
    assert_eq!(r.status, 403);
    let v = srv.authed(&auditor, "GET", "/api/v1/admin/audit/verify", None);
    assert_eq!(v.status, 200, "{}", v.text());
    assert!(v.json()["records"].as_u64().unwrap() > 5);
    // HEAD answers the headers without exporting: an export ends at a checkpoint, which it
    // signs and stores when records follow the last one.
    let checkpoints = || {
        srv.authed(&auditor, "GET", "/api/v1/admin/audit/verify", None)
            .json()["checkpoints"]
            .as_u64()
            .unwrap()
    };
    let before = checkpoints();
    let head = srv.authed(&auditor, "HEAD", "/api/v1/admin/audit/export", None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(checkpoints(), before, "HEAD exported");
    let export = srv.authed(&auditor, "GET", "/api/v1/admin/audit/export", None);
    assert_eq!(export.status, 200);
    assert_eq!(export.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(checkpoints(), before + 1, "GET signed no checkpoint");
    let lines: Vec<serde_json::Value> = export
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 5);
    let text = export.text();
    assert!(text.contains("user.create") && text.contains("file.upload"));
    let key = srv
        .authed(&auditor, "GET", "/api/v1/admin/audit/key", None)
        .json();
    assert_eq!(key["public_key"].as_str().unwrap().len(), 64);

    // The token can be revoked by its own user; then it is dead.
    let r = srv.authed(
        &auditor,
        "DELETE",
        &format!("/api/v1/tokens/{token_id}"),
        None,
    );
    assert_eq!(r.status, 204);
    assert_eq!(srv.authed(&auditor, "GET", "/api/v1/me", None).status, 401);

    let users = srv.admin("GET", "/api/v1/admin/users", None).json();
    assert_eq!(users["users"].as_array().unwrap().len(), 3);
    let r = srv.admin(
        "PUT",
        "/api/v1/admin/retention",
        Some(&json!({"default": 86400, "max": 864000})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        srv.admin("GET", "/api/v1/admin/retention", None).json()["max"],
        864000
    );
    srv.assert_no_server_errors();
    srv.assert_log_free_of(&[&auditor, &member, &srv.admin_token]);
}

/// `kinko serve --recover-admin NAME` with the server's own configuration: refused while the
/// server holds the data directory; once it is stopped, prints a new admin token that the
/// restarted server accepts (and, with --dev, shows again) and revokes the older one, audited
/// as `user.recover`.
#[test]
fn recover_admin_gives_a_working_token_back() {
    let mut srv = TestServer::start();
    let _ = srv.member("alice");
    let (root, data_dir) = (srv.dir.path().to_owned(), srv.data_dir());
    // `kinko serve ARGS` in the server's folder, with nothing from the environment.
    let serve = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(support::KINKO)
            .current_dir(&root)
            .arg("serve")
            .args(args)
            .env_remove("KINKO_SERVE_CONFIG")
            .env_remove("KINKO_KEK")
            .env_remove("KINKO_TLS_CERT")
            .env_remove("KINKO_TLS_KEY")
            .output()
            .unwrap()
    };
    let dev_recover = |name: &str, dir: &std::path::Path| {
        serve(&[
            "--dev".as_ref(),
            "--recover-admin".as_ref(),
            name.as_ref(),
            "--data-dir".as_ref(),
            dir.as_os_str(),
        ])
    };
    let recover = |name: &str| dev_recover(name, &data_dir);
    let busy = recover("admin");
    assert_eq!(busy.status.code(), Some(1));
    let err = String::from_utf8_lossy(&busy.stderr);
    assert!(err.contains("cannot open the vault"), "{err}");
    assert!(
        err.contains("no other kinko server uses this data directory"),
        "{err}"
    );
    assert!(busy.stdout.is_empty());

    assert!(srv.stop().success());
    let old_token = srv.admin_token.clone();
    let member_name = recover("alice");
    assert_eq!(member_name.status.code(), Some(1));
    let err = String::from_utf8_lossy(&member_name.stderr);
    assert!(err.contains("is a member, not an admin"), "{err}");
    let nowhere = dev_recover("admin", "typo/data".as_ref());
    assert_eq!(nowhere.status.code(), Some(1));
    let err = String::from_utf8_lossy(&nowhere.stderr);
    assert!(err.contains("no vault to recover in typo/data"), "{err}");
    assert!(!root.join("typo/data").exists());
    // An existing directory that holds no vault (the parent of the real one) stays as it is.
    let parent = dev_recover("admin", ".".as_ref());
    assert_eq!(parent.status.code(), Some(1));
    assert!(!root.join("meta").exists() && !root.join("blobs").exists());
    // Outside --dev, with the key file and no TLS settings (recovery never serves).
    let kek = root.join("dev/dev.kek");
    let outside_dev = serve(&[
        "--recover-admin".as_ref(),
        "nobody-yet".as_ref(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--kek-file".as_ref(),
        kek.as_os_str(),
    ]);
    let out = String::from_utf8_lossy(&outside_dev.stdout);
    assert!(
        outside_dev.status.success() && out.starts_with("Admin \"nobody-yet\" created."),
        "{out}{}",
        String::from_utf8_lossy(&outside_dev.stderr)
    );
    let out = recover("admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with("Admin \"admin\" recovered; its older token is revoked."),
        "{stdout}"
    );
    let token = stdout.lines().nth(1).unwrap().trim().to_owned();
    assert!(
        token.starts_with("kinko_") && token != old_token,
        "{stdout}"
    );

    let srv = srv.restart(Default::default());
    assert_eq!(srv.admin_token, token, "--dev shows the recovered token");
    let me = srv.authed(&token, "GET", "/api/v1/me", None);
    assert_eq!(me.status, 200);
    let old = srv.authed(&old_token, "GET", "/api/v1/me", None);
    assert_eq!(old.status, 401, "the older token is revoked");
    assert_eq!(
        (me.json()["name"].as_str(), me.json()["role"].as_str()),
        (Some("admin"), Some("admin"))
    );
    let users = srv.admin("GET", "/api/v1/admin/users", None).json()["users"].clone();
    let created = users
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["name"] == "nobody-yet" && u["role"] == "admin");
    assert!(created, "{users}");
    let log = srv.admin("GET", "/api/v1/admin/audit/export", None).text();
    assert_eq!(log.matches("\"action\":\"user.recover\"").count(), 2);
    srv.assert_log_free_of(&[&token]);
}

/// `KINKO_LOG=trace`, the most a server logs, through every way a secret reaches it: bearer
/// tokens (the admin's, a member's), an upload, the owner's download, link downloads with
/// `Kinko-Link-Secret` (through a ticket, and counted directly), a wrong and the right
/// `Kinko-Password`, and the page's form download (secret and ticket in the body). None of
/// them, and none of the file's contents, appears on the server's stderr or stdout, except
/// the admin token that `--dev` prints on stdout at start. (Other crates are capped below
/// debug whatever `KINKO_LOG` says: docs/SERVER.md.)
#[test]
fn kinko_log_trace_puts_no_secret_on_stderr_or_stdout() {
    let mut srv = TestServer::start_with(Options {
        log: Some("trace".into()),
        ..Options::default()
    });
    let (_, alice) = srv.member("alice");
    let marker = "kinko-log-canary-5be0c6d2";
    // Several chunks of it, so every chunk of the stream holds the marker.
    let content = format!("{marker} ").repeat(MULTI_CHUNK / (marker.len() + 1));
    let file = srv.upload(&alice, "canary.txt", content.as_bytes());
    let own = srv.authed(
        &alice,
        "GET",
        &format!("/api/v1/files/{file}/content"),
        None,
    );
    assert!(own.body == content.as_bytes(), "the owner's download");

    let (share, secret, _) = srv.share(&alice, &file, json!({"expires_in": 3600}));
    let t = srv.request(
        "POST",
        &format!("/api/v1/links/{share}/ticket"),
        &[("kinko-link-secret", &secret)],
        None,
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let ticket = t.json()["ticket"].as_str().unwrap().to_owned();
    let got = srv.request(
        "GET",
        &format!("/api/v1/links/{share}/content"),
        &[("kinko-link-secret", &secret), ("kinko-ticket", &ticket)],
        None,
    );
    assert!(got.body == content.as_bytes(), "the link download");
    let counted = srv.request(
        "GET",
        &format!("/api/v1/links/{share}/content"),
        &[("kinko-link-secret", &secret), ("range", "bytes=0-99")],
        None,
    );
    assert_eq!(counted.status, 206, "{}", counted.text());
    let counted_ticket = counted.header("kinko-ticket").unwrap().to_owned();

    let password = "trace-password-Zebra-4471";
    let wrong = "trace-wrong-Walrus-9125";
    let (pw_share, pw_secret, _) = srv.share(
        &alice,
        &file,
        json!({"expires_in": 3600, "password": password}),
    );
    let refused = srv.link_download(&pw_share, &pw_secret, Some(wrong));
    assert_eq!(refused.code(), "wrong_password", "{}", refused.text());
    let t = srv.request(
        "POST",
        &format!("/api/v1/links/{pw_share}/ticket"),
        &[
            ("kinko-link-secret", &pw_secret),
            ("kinko-password", password),
        ],
        None,
    );
    assert_eq!(t.status, 200, "{}", t.text());
    let pw_ticket = t.json()["ticket"].as_str().unwrap().to_owned();
    let form = format!("secret={pw_secret}&ticket={pw_ticket}");
    let page_download = srv.request(
        "POST",
        &format!("/s/{pw_share}/download"),
        &[("content-type", "application/x-www-form-urlencoded")],
        Some(form.as_bytes()),
    );
    assert!(
        page_download.body == content.as_bytes(),
        "the form download: {}",
        page_download.status
    );

    assert!(srv.stop().success(), "stopped cleanly");
    let (log, stdout) = (srv.log(), srv.stdout());
    // It is the trace log, and it saw these requests.
    for route in [
        "route=/api/v1/files ",
        "route=/api/v1/links/{share}/content ",
        "route=/api/v1/links/{share}/ticket ",
        "route=/s/{share}/download ",
    ] {
        assert!(log.contains(route), "no {route:?} line in the log:\n{log}");
    }
    let secrets = [
        alice.as_str(),
        &secret,
        &pw_secret,
        password,
        wrong,
        &ticket,
        &counted_ticket,
        &pw_ticket,
        marker,
    ];
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!log.contains(s), "{s:?} is on stderr:\n{log}");
        assert!(!stdout.contains(s), "{s:?} is on stdout:\n{stdout}");
    }
    assert!(
        !log.contains(&srv.admin_token),
        "the admin token is on stderr"
    );
    for line in stdout.lines().filter(|l| l.contains(&srv.admin_token)) {
        let line = line.trim();
        assert!(
            line.starts_with("Admin token:") || line.starts_with("export KINKO_SERVER="),
            "the admin token on stdout outside the start banner: {line}"
        );
    }
}

/// A HEAD of a file's content answers the headers a GET would, with no content and no
/// `file.read` in the audit log: the log says who read a file's content, and a HEAD reads
/// none (it used to run the GET and record a read). It ignores `Range` (RFC 9110: range
/// handling is defined for GET only).
#[test]
fn a_head_of_file_content_answers_the_headers_and_records_no_read() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let file = srv.upload(&alice, "plan 1.txt", b"the plan");
    let path = format!("/api/v1/files/{file}/content");
    let reads = || {
        srv.admin("GET", "/api/v1/admin/audit/export", None)
            .text()
            .matches("\"action\":\"file.read\"")
            .count()
    };
    let head = srv.authed(&alice, "HEAD", &path, None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(reads(), 0, "a HEAD was recorded as a read");
    let auth = format!("Bearer {alice}");
    let ranged = srv.request(
        "HEAD",
        &path,
        &[("authorization", &auth), ("range", "bytes=2-3")],
        None,
    );
    assert_eq!(ranged.status, 200);
    assert_eq!(ranged.header("content-range"), None);
    assert_eq!(reads(), 0, "a HEAD was recorded as a read");

    let get = srv.authed(&alice, "GET", &path, None);
    assert_eq!((get.status, &get.body[..]), (200, &b"the plan"[..]));
    for name in [
        "content-length",
        "content-type",
        "content-disposition",
        "accept-ranges",
    ] {
        assert!(get.header(name).is_some(), "{name}");
        assert_eq!(head.header(name), get.header(name), "{name}");
        assert_eq!(ranged.header(name), get.header(name), "{name}");
    }
    assert_eq!(reads(), 1, "the GET is recorded");

    // Another member's HEAD is the GET's 404, recording nothing either.
    let (_, bob) = srv.member("bob");
    let r = srv.authed(&bob, "HEAD", &path, None);
    assert_eq!(r.status, 404);
    assert_eq!(reads(), 1);
    srv.assert_no_server_errors();
}

/// A suffix range of an empty file is satisfiable (RFC 9110, 14.1.2) but no `Content-Range`
/// can name a byte of it, so the Range is ignored: `200` with the empty body, for the owner
/// and through a link (it used to be `416`). Ranges that really miss stay `416`.
#[test]
fn a_suffix_range_of_an_empty_file_answers_200_empty() {
    let srv = TestServer::start();
    let (_, alice) = srv.member("alice");
    let auth = format!("Bearer {alice}");
    let empty = srv.upload(&alice, "empty.txt", b"");
    let short = srv.upload(&alice, "short.txt", b"0123456789");
    let owner = |file: &str, range: &str| {
        srv.request(
            "GET",
            &format!("/api/v1/files/{file}/content"),
            &[("authorization", &auth), ("range", range)],
            None,
        )
    };
    let r = owner(&empty, "bytes=-5");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("content-range"), None);
    for (file, range) in [
        (&empty, "bytes=0-"),
        (&empty, "bytes=-0"),
        (&short, "bytes=10-"),
    ] {
        let r = owner(file, range);
        assert_eq!(
            (r.status, r.code().as_str()),
            (416, "range_not_satisfiable"),
            "{range}"
        );
    }

    // Through a link: a counted download of its own, then with its ticket.
    let (share, secret, _) = srv.share(&alice, &empty, json!({"expires_in": 600}));
    let path = format!("/api/v1/links/{share}/content");
    let r = srv.request(
        "GET",
        &path,
        &[("kinko-link-secret", &secret), ("range", "bytes=-5")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-range"), None);
    let ticket = r.header("kinko-ticket").expect("the ticket").to_owned();
    let with_ticket = |range: &str| srv.ranged_by_ticket(&share, &secret, &ticket, range);
    let r = with_ticket("bytes=-1");
    assert_eq!((r.status, r.body.len()), (200, 0));
    assert_eq!(r.header("content-range"), None);
    let r = with_ticket("bytes=0-");
    assert_eq!(
        (r.status, r.code().as_str()),
        (416, "range_not_satisfiable")
    );
    assert_eq!(r.header("content-range"), Some("bytes */0"));
    let shares = srv.authed(&alice, "GET", "/api/v1/shares", None).json();
    assert_eq!(shares["shares"][0]["downloads"], 1);
    srv.assert_no_server_errors();
}
