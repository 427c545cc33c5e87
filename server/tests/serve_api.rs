//! End-to-end tests of `kinko serve` over real TCP on 127.0.0.1: uploads, shares, link
//! downloads, passwords, limits, expiry, revocation, recipient-bound downloads and Range.

mod support;

use serde_json::json;
use support::{TestServer, data};

/// 64 KiB chunks: this is 17 chunks and a partial one.
const MULTI_CHUNK: usize = 17 * 65536 + 1234;

#[test]
fn upload_share_and_download_by_link_for_empty_small_and_multi_chunk_files() {
    let srv = TestServer::start();
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
        let view = srv.request(
            "POST",
            &format!("/api/v1/links/{share}"),
            &[("kinko-link-secret", &secret)],
            None,
        );
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
