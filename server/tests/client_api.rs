//! `kinko-client` as a library against a real `kinko serve` (tests/support): every call the
//! CLI does not make for itself, the typed errors each refusal maps to, and streaming in both
//! directions.

mod support;

use std::io::{self, Read};

use kinko_client::{
    Client, ClientError, DownloadAuth, Link, Progress, Retention, ShareOptions, UploadOptions,
};
use kinko_core::keys::Identity;
use kinko_core::vault::{ApiToken, FileId, Role, ShareId};
use secrecy::{ExposeSecret, SecretString};
use support::{TestServer, data};

fn admin(srv: &TestServer) -> Client {
    Client::new(&srv.url, Some(ApiToken::parse(&srv.admin_token).unwrap())).unwrap()
}

fn upload(client: &Client, name: &str, bytes: &[u8]) -> kinko_client::FileInfo {
    let mut options = UploadOptions::default();
    options.size = Some(bytes.len() as u64);
    options.content_type = Some("application/pdf".into());
    client.upload(name, bytes, &options, |_| {}).unwrap()
}

/// A reader that yields `good` bytes, then fails.
struct Failing {
    left: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(7);
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn files_round_trip_with_progress_and_typed_refusals() {
    let srv = TestServer::start();
    let client = admin(&srv);
    client.health().unwrap();
    let me = client.me().unwrap();
    assert_eq!(me.role, Role::Admin);
    assert_eq!(Some(me.token), client.token_id());

    // A known size goes as Content-Length; progress reaches the total.
    let content = data(200_000, 9);
    let mut seen: Vec<Progress> = Vec::new();
    let mut options = UploadOptions::default();
    options.size = Some(content.len() as u64);
    options.content_type = Some("application/pdf".into());
    let info = client
        .upload("plan v2 + draft.pdf", &content[..], &options, |p| {
            seen.push(p)
        })
        .unwrap();
    assert_eq!(info.name, "plan v2 + draft.pdf");
    assert_eq!(info.size, content.len() as u64);
    assert_eq!(info.content_type.as_deref(), Some("application/pdf"));
    let last = seen.last().unwrap();
    assert_eq!((last.done, last.total), (200_000, Some(200_000)));
    assert_eq!(client.file(&info.id).unwrap(), info);

    // Unknown size: chunked.
    let chunked = client
        .upload(
            "chunked.bin",
            &content[..1000],
            &UploadOptions::default(),
            |_| {},
        )
        .unwrap();
    assert_eq!(chunked.size, 1000);
    assert_eq!(client.files().unwrap().len(), 2);

    let mut back = Vec::new();
    let d = client.download_file(&info.id, &mut back, |_| {}).unwrap();
    assert_eq!(back, content);
    assert_eq!(d.bytes, content.len() as u64);
    assert!(!d.recipient_bound);
    assert_eq!(d.file_name.as_deref(), Some("plan v2 + draft.pdf"));

    // A failing source is the caller's I/O error, and the server keeps nothing.
    let err = client
        .upload(
            "broken.bin",
            Failing { left: 100_000 },
            &UploadOptions::default(),
            |_| {},
        )
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Io(e) if e.to_string() == "disk on fire"),
        "{err:?}"
    );
    // A source shorter than its declared size never reaches the server as complete.
    let mut options = UploadOptions::default();
    options.size = Some(10);
    let err = client
        .upload("short.bin", &b"12345"[..], &options, |_| {})
        .unwrap_err();
    assert!(matches!(&err, ClientError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof));
    assert_eq!(client.files().unwrap().len(), 2);

    // Typed refusals.
    let missing = FileId([0x11; 16]);
    assert!(matches!(
        client.file(&missing),
        Err(ClientError::NotFound { .. })
    ));
    assert!(matches!(
        client.create_share(&info.id, &ShareOptions::new(0)),
        Err(ClientError::Invalid { .. })
    ));
    let stranger = Client::new(
        &srv.url,
        Some(ApiToken::parse(&format!("kinko_{}{}", "ab".repeat(16), "cd".repeat(32))).unwrap()),
    )
    .unwrap();
    assert!(matches!(
        stranger.me(),
        Err(ClientError::Unauthenticated { .. })
    ));
    let anonymous = Client::new(&srv.url, None).unwrap();
    assert!(matches!(
        anonymous.files(),
        Err(ClientError::Unauthenticated { .. })
    ));

    client.delete_file(&chunked.id).unwrap();
    assert!(matches!(
        client.delete_file(&chunked.id),
        Err(ClientError::NotFound { .. })
    ));
    srv.assert_no_server_errors();
}

#[test]
fn link_calls_with_passwords_tickets_and_recipients() {
    let srv = TestServer::start();
    let client = admin(&srv);
    let content = data(150_000, 3);
    let file = upload(&client, "contract.pdf", &content);

    let mut options = ShareOptions::new(3600);
    options.max_downloads = Some(3);
    options.password = Some(SecretString::from("pässword + 100%"));
    let share = client.create_share(&file.id, &options).unwrap();
    assert_eq!(share.file, file.id);
    assert_eq!(share.link.share_id(), share.id);
    let text = share.link.expose_secret();
    assert!(
        !format!("{share:?}").contains(&text.expose_secret()[text.expose_secret().len() - 64..])
    );
    let link = Link::parse(text.expose_secret()).unwrap();
    let partner = Client::for_link(&link);

    let info = partner.link_info(&link).unwrap();
    assert_eq!(info.name, "contract.pdf");
    assert_eq!(info.size, content.len() as u64);
    assert!(info.password_required && !info.recipient_bound);
    assert_eq!(info.downloads_left, Some(3));

    assert!(matches!(
        partner.link_ticket(&link, None),
        Err(ClientError::PasswordRequired)
    ));
    assert!(matches!(
        partner.link_ticket(&link, Some(&SecretString::from("wrong"))),
        Err(ClientError::WrongPassword)
    ));
    let mut out = Vec::new();
    assert!(matches!(
        partner.link_download(&link, DownloadAuth::LinkOnly, &mut out, |_| {}),
        Err(ClientError::PasswordRequired)
    ));
    assert!(out.is_empty());

    // The password on the content request: counted there, with a ticket in the answer.
    let pw = SecretString::from("pässword + 100%");
    let d = partner
        .link_download(&link, DownloadAuth::Password(&pw), &mut out, |_| {})
        .unwrap();
    assert_eq!(out, content);
    let ticket = d.ticket.expect("a password download returns its ticket");
    assert!(!format!("{ticket:?}").contains(ticket.expose_secret()));
    // That ticket fetches the same download again without counting.
    let mut again = Vec::new();
    partner
        .link_download(&link, DownloadAuth::Ticket(&ticket), &mut again, |_| {})
        .unwrap();
    assert_eq!(again, content);
    let t = partner.link_ticket(&link, Some(&pw)).unwrap();
    assert_eq!(t.downloads_left, Some(1));
    assert!(t.expires.is_some());

    let shares = client.file_shares(&file.id).unwrap();
    assert_eq!(shares.len(), 1);
    assert_eq!(shares[0].downloads, 2);
    assert!(shares[0].password);

    // Revoked: one opaque refusal.
    client.revoke_share(&share.id).unwrap();
    assert!(matches!(
        partner.link_info(&link),
        Err(ClientError::LinkInvalid)
    ));
    assert!(matches!(
        client.revoke_share(&ShareId([9; 16])),
        Err(ClientError::NotFound { .. })
    ));

    // Recipient-bound: the envelope comes marked, and opens with the identity.
    let partner_key = Identity::generate();
    let mut options = ShareOptions::new(3600);
    options.recipients = vec![partner_key.to_public()];
    let bound = client.create_share(&file.id, &options).unwrap();
    let bound_link = Link::parse(bound.link.expose_secret().expose_secret()).unwrap();
    assert!(partner.link_info(&bound_link).unwrap().recipient_bound);
    let mut sealed = Vec::new();
    let d = partner
        .link_download(&bound_link, DownloadAuth::LinkOnly, &mut sealed, |_| {})
        .unwrap();
    assert!(d.recipient_bound);
    assert_eq!(d.file_name.as_deref(), Some("contract.pdf.kinko"));
    let mut opened = Vec::new();
    kinko_core::envelope::open(
        &sealed[..],
        &mut opened,
        &kinko_core::envelope::Keyring::new().identity(partner_key),
    )
    .unwrap();
    assert_eq!(opened, content);
    assert_eq!(client.revoke_file_shares(&file.id).unwrap(), 1);
    srv.assert_no_server_errors();
}

#[test]
fn admin_calls_and_token_revocation() {
    let srv = TestServer::start();
    let client = admin(&srv);
    let user = client.create_user("mia", Role::Member).unwrap();
    assert_eq!(
        (user.name.as_str(), user.role, user.disabled),
        ("mia", Role::Member, false)
    );
    assert!(matches!(
        client.create_user("mia", Role::Member),
        Err(ClientError::Exists { .. })
    ));
    let issued = client.issue_token(&user.id, "laptop", Some(3600)).unwrap();
    assert_eq!(issued.token.id(), issued.id);
    assert!(!format!("{issued:?}").contains(issued.token.expose_secret().expose_secret()));
    let mia = Client::new(&srv.url, Some(issued.token)).unwrap();
    assert_eq!(mia.me().unwrap().name, "mia");
    assert!(matches!(mia.users(), Err(ClientError::Forbidden { .. })));
    assert!(matches!(mia.freeze(), Err(ClientError::Forbidden { .. })));
    // A user revokes their own token.
    mia.revoke_token(&issued.id).unwrap();
    assert!(matches!(mia.me(), Err(ClientError::Unauthenticated { .. })));

    assert!(!client.frozen().unwrap());
    client.freeze().unwrap();
    assert!(client.frozen().unwrap());
    client.unfreeze().unwrap();
    assert!(!client.frozen().unwrap());

    let r = client
        .set_retention(Retention {
            default: 86_400,
            max: 7 * 86_400,
        })
        .unwrap();
    assert_eq!(client.retention().unwrap(), r);
    assert!(matches!(
        client.set_retention(Retention {
            default: 10 * 86_400,
            max: 86_400,
        }),
        Err(ClientError::Invalid { .. })
    ));

    client.disable_user(&user.id).unwrap();
    assert!(
        client
            .users()
            .unwrap()
            .iter()
            .any(|u| u.id == user.id && u.disabled)
    );
    client.enable_user(&user.id).unwrap();

    let sweep = client.sweep().unwrap();
    assert_eq!(sweep.files_removed, 0);
    client.rotate_kek().unwrap();
    let report = client.verify_audit().unwrap();
    assert!(report.records > 0);
    let mut export = Vec::new();
    let bytes = client.export_audit(&mut export, |_| {}).unwrap();
    assert_eq!(bytes, export.len() as u64);
    assert!(String::from_utf8(export).unwrap().lines().count() as u64 >= report.records);
    assert_eq!(client.audit_key().unwrap().len(), 64);
    srv.assert_no_server_errors();
}
