//! End-to-end vault operations on a real sled store and a real filesystem.

mod vault_common;

use std::io::{Read, Seek, SeekFrom};

use kinko_core::envelope::{self, Keyring, SymmetricKey};
use kinko_core::keys::Identity;
use kinko_core::vault::store::Op;
use kinko_core::vault::{
    AccessError, AccessKind, ApiToken, Download, Durability, FileState, KeyRing, LinkSecret,
    MasterKey, Metadata, Retention, Role, ShareOptions, Timestamp, UserRecord, Vault, VaultError,
};
use secrecy::{ExposeSecret, SecretString};
use vault_common::*;

fn meta(name: &str) -> Metadata {
    Metadata {
        name: name.into(),
        content_type: "text/plain".into(),
        ..Default::default()
    }
}

fn upload(env: &Env, data: &[u8]) -> kinko_core::vault::FileId {
    env.vault
        .upload(&env.member, &meta("report.txt"), None, &mut &data[..])
        .unwrap()
}

fn share(
    env: &Env,
    file: &kinko_core::vault::FileId,
    opts: ShareOptions,
) -> kinko_core::vault::NewShare {
    env.vault.create_share(&env.member, file, opts).unwrap()
}

fn opts(expires_in: u64, max: Option<u32>) -> ShareOptions {
    ShareOptions {
        expires_in,
        max_downloads: max,
        ..Default::default()
    }
}

fn read_all(d: Download) -> Vec<u8> {
    match d {
        Download::Plaintext(mut r) => {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        }
        Download::Bound { .. } => panic!("expected plaintext"),
    }
}

#[test]
fn upload_share_download_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [1; 32]);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let file = upload(&env, &data);
    let rec = env.vault.meta().file(&file).unwrap().unwrap();
    assert_eq!(rec.size, data.len() as u64);
    assert!(
        rec.blob_size > rec.size,
        "the blob holds ciphertext with tags"
    );
    // The blob on disk is not the plaintext.
    let mut blob = Vec::new();
    env.vault
        .blobs()
        .open(&file)
        .unwrap()
        .read_to_end(&mut blob)
        .unwrap();
    assert!(!blob.windows(64).any(|w| w == &data[1000..1064]));

    let s = share(&env, &file, opts(DAY, Some(2)));
    let g = env
        .vault
        .access(&s.id, &s.secret, None, AccessKind::View, "1.2.3.4", T0)
        .unwrap();
    assert_eq!(env.vault.grant_meta(&g).unwrap().name, "report.txt");
    assert!(
        env.vault.download(&g).is_err(),
        "a view grant does not download"
    );

    let g = env
        .vault
        .access(&s.id, &s.secret, None, AccessKind::Download, "1.2.3.4", T0)
        .unwrap();
    assert_eq!(g.downloads_left, Some(1));
    assert_eq!(read_all(env.vault.download(&g).unwrap()), data);

    // Random access: a range decrypts only what it covers.
    let Download::Plaintext(mut r) = env.vault.download(&g).unwrap() else {
        panic!()
    };
    r.seek(SeekFrom::Start(150_000)).unwrap();
    let mut buf = vec![0; 1000];
    r.read_exact(&mut buf).unwrap();
    assert_eq!(buf, data[150_000..151_000]);

    // The owner reads it back too.
    let mut back = Vec::new();
    env.vault
        .open_file(&env.member, &file)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
}

#[test]
fn refusals_look_identical_outward() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [2; 32]);
    let file = upload(&env, b"secret plans");
    let s = share(&env, &file, opts(DAY, Some(1)));
    let denied = |r: Result<_, AccessError>| matches!(r, Err(AccessError::Denied));
    let v = &env.vault;
    // Unknown share.
    assert!(denied(v.access(
        &kinko_core::vault::ShareId::random(),
        &s.secret,
        None,
        AccessKind::Download,
        "",
        T0
    )));
    // Wrong secret.
    assert!(denied(v.access(
        &s.id,
        &LinkSecret::generate(),
        None,
        AccessKind::Download,
        "",
        T0
    )));
    // Expired: refused at access time, before any sweep.
    assert!(denied(v.access(
        &s.id,
        &s.secret,
        None,
        AccessKind::Download,
        "",
        s.expires
    )));
    // Exhausted.
    v.access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
        .unwrap();
    assert!(denied(v.access(
        &s.id,
        &s.secret,
        None,
        AccessKind::Download,
        "",
        T0
    )));
    // Revoked.
    let s2 = share(&env, &file, opts(DAY, None));
    v.revoke_share(&env.member, &s2.id).unwrap();
    assert!(denied(v.access(
        &s2.id,
        &s2.secret,
        None,
        AccessKind::View,
        "",
        T0
    )));
    // The audit log has every precise reason.
    let mut out = Vec::new();
    v.export_audit(&env.admin, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    for reason in [
        "unknown share",
        "wrong link secret",
        "share expired",
        "download limit reached",
        "share revoked",
    ] {
        assert!(text.contains(reason), "audit log lacks {reason:?}");
    }
}

#[test]
fn password_lockout_after_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [3; 32]);
    let file = upload(&env, b"x");
    let pw = SecretString::from("correct horse");
    let s = share(
        &env,
        &file,
        ShareOptions {
            expires_in: DAY,
            password: Some(pw.clone()),
            ..Default::default()
        },
    );
    let v = &env.vault;
    assert!(matches!(
        v.access(&s.id, &s.secret, None, AccessKind::Download, "", T0),
        Err(AccessError::PasswordRequired)
    ));
    // A view needs no password.
    v.access(&s.id, &s.secret, None, AccessKind::View, "", T0)
        .unwrap();
    // Whether the password decides (what the server asks before an Argon2 turn).
    let decides = |secret: &LinkSecret, kind, now| v.password_decides(&s.id, secret, &kind, now);
    assert!(decides(&s.secret, AccessKind::Download, T0).unwrap());
    assert!(!decides(&s.secret, AccessKind::View, T0).unwrap());
    assert!(!decides(&LinkSecret::generate(), AccessKind::Download, T0).unwrap());
    assert!(!decides(&s.secret, AccessKind::Download, T0.plus(DAY)).unwrap());
    let wrong = SecretString::from("wrong");
    for _ in 0..4 {
        assert!(matches!(
            v.access(&s.id, &s.secret, Some(&wrong), AccessKind::Download, "", T0),
            Err(AccessError::WrongPassword)
        ));
    }
    // A wrong *secret* with a wrong password does not count toward the lock.
    assert!(matches!(
        v.access(
            &s.id,
            &LinkSecret::generate(),
            Some(&wrong),
            AccessKind::Download,
            "",
            T0
        ),
        Err(AccessError::Denied)
    ));
    v.access(&s.id, &s.secret, Some(&pw), AccessKind::Download, "", T0)
        .unwrap();
    assert!(matches!(
        v.access(&s.id, &s.secret, Some(&wrong), AccessKind::Download, "", T0),
        Err(AccessError::WrongPassword)
    ));
    // Fifth wrong password: locked, and now even the right password is refused, opaquely.
    assert!(matches!(
        v.access(&s.id, &s.secret, Some(&pw), AccessKind::Download, "", T0),
        Err(AccessError::Denied)
    ));
    assert!(v.meta().share(&s.id).unwrap().unwrap().locked());
    assert!(!decides(&s.secret, AccessKind::Download, T0).unwrap());
}

/// A counted download the server failed to serve is given back, once per grant that
/// counted; a further range counted nothing and gives nothing back.
#[test]
fn give_back_returns_the_download_a_grant_counted() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [12; 32]);
    let file = upload(&env, b"served or not");
    let s = share(&env, &file, opts(DAY, Some(1)));
    let v = &env.vault;
    let downloads = || v.meta().share(&s.id).unwrap().unwrap().downloads;
    let g = v
        .access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
        .unwrap();
    assert_eq!(downloads(), 1);
    let ticket = g.ticket.clone().unwrap();
    let resume = v
        .access(&s.id, &s.secret, None, AccessKind::Resume(ticket), "", T0)
        .unwrap();
    v.give_back(&resume, "", T0).unwrap();
    assert_eq!(downloads(), 1, "a range counted nothing");
    v.give_back(&g, "", T0).unwrap();
    assert_eq!(downloads(), 0);
    // The share is whole again: its one download can be made.
    v.access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
        .unwrap();
    assert!(
        v.access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
            .is_err()
    );
}

#[test]
fn range_requests_of_one_download_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [4; 32]);
    let file = upload(&env, &[7u8; 100_000]);
    let s = share(&env, &file, opts(DAY, Some(1)));
    let v = &env.vault;
    let g = v
        .access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
        .unwrap();
    let ticket = g.ticket.clone().unwrap();
    let ticket = kinko_core::vault::DownloadTicket::parse(&ticket.encode()).unwrap();
    for i in 0..5 {
        let g2 = v
            .access(
                &s.id,
                &s.secret,
                None,
                AccessKind::Resume(ticket.clone()),
                "",
                T0.plus(i),
            )
            .unwrap();
        v.download(&g2).unwrap();
    }
    assert_eq!(v.meta().share(&s.id).unwrap().unwrap().downloads, 1);
    // A fresh download is refused: the limit of 1 was taken by the first request.
    assert!(
        v.access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
            .is_err()
    );
    // The ticket expires; it is bound to its share; revocation still cuts it off.
    assert!(
        v.access(
            &s.id,
            &s.secret,
            None,
            AccessKind::Resume(ticket.clone()),
            "",
            ticket.expires
        )
        .is_err()
    );
    let other = share(&env, &file, opts(DAY, None));
    assert!(
        v.access(
            &other.id,
            &other.secret,
            None,
            AccessKind::Resume(ticket.clone()),
            "",
            T0
        )
        .is_err()
    );
    v.revoke_share(&env.member, &s.id).unwrap();
    assert!(
        v.access(&s.id, &s.secret, None, AccessKind::Resume(ticket), "", T0)
            .is_err()
    );
}

#[test]
fn revocation_of_file_shares_user_and_freeze() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [5; 32]);
    let v = &env.vault;
    let file = upload(&env, b"data");
    let a = share(&env, &file, opts(DAY, None));
    let b = share(&env, &file, opts(DAY, None));
    let ok = |s: &kinko_core::vault::NewShare| {
        v.access(&s.id, &s.secret, None, AccessKind::View, "", T0)
            .is_ok()
    };
    assert!(ok(&a) && ok(&b));

    // Emergency freeze suspends every share; lifting it restores them.
    v.freeze(&env.admin).unwrap();
    assert!(v.frozen().unwrap());
    assert!(!ok(&a) && !ok(&b));
    assert!(matches!(v.freeze(&env.member), Err(VaultError::Forbidden)));
    v.unfreeze(&env.admin).unwrap();
    assert!(ok(&a) && ok(&b));

    assert_eq!(v.my_shares(&env.member).unwrap().len(), 2);
    assert_eq!(v.shares_of_file(&env.member, &file).unwrap().len(), 2);
    assert_eq!(v.users(&env.admin).unwrap().len(), 2);
    assert!(v.users(&env.member).is_err());
    assert_eq!(v.revoke_file_shares(&env.member, &file).unwrap(), 2);
    assert!(!ok(&a) && !ok(&b));

    // Disabling a user kills their tokens and every share at once.
    let c = share(&env, &file, opts(DAY, None));
    let token = v
        .issue_token(&env.admin, &env.member_id, "laptop", DAY)
        .unwrap();
    let parsed = ApiToken::parse(token.expose_secret().expose_secret()).unwrap();
    assert_eq!(v.authenticate(&parsed, "", T0).unwrap().user, env.member_id);
    assert!(ok(&c));
    v.disable_user(&env.admin, &env.member_id).unwrap();
    assert!(!ok(&c));
    assert!(matches!(
        v.authenticate(&parsed, "", T0),
        Err(VaultError::Unauthenticated)
    ));
    assert!(v.meta().tokens_of(&env.member_id).unwrap().is_empty());
    // Re-enabling does not bring back old shares or tokens.
    v.enable_user(&env.admin, &env.member_id).unwrap();
    assert!(!ok(&c));
    assert!(matches!(
        v.authenticate(&parsed, "", T0),
        Err(VaultError::Unauthenticated)
    ));
}

/// A departing admin's shares of other people's files end with the admin: disabling an admin
/// revokes the shares they created of a member's file, and the member's own shares of it
/// stay. (A share used to record only its file's owner, so those outlived the admin.)
#[test]
fn disabling_an_admin_revokes_the_shares_they_made_of_others_files() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [11; 32]);
    let v = &env.vault;
    let file = upload(&env, b"member's report");
    let departing = v.create_user(&env.admin, "departing", Role::Admin).unwrap();
    let departing = ctx(departing, Role::Admin, T0);
    let theirs = v.create_share(&departing, &file, opts(DAY, None)).unwrap();
    let members = share(&env, &file, opts(DAY, None));
    let ok = |s: &kinko_core::vault::NewShare| {
        v.access(&s.id, &s.secret, None, AccessKind::View, "", T0)
            .is_ok()
    };
    assert!(ok(&theirs) && ok(&members));
    let stored = v.meta().share(&theirs.id).unwrap().unwrap();
    assert_eq!(
        (stored.owner, stored.creator),
        (env.member_id, departing.principal.user)
    );
    // The member lists it (their file), the admin does not own it.
    assert_eq!(v.my_shares(&env.member).unwrap().len(), 2);
    assert!(v.my_shares(&departing).unwrap().is_empty());

    v.disable_user(&env.admin, &departing.principal.user)
        .unwrap();
    assert!(!ok(&theirs), "the departed admin's share still works");
    assert!(ok(&members), "the member's own share was revoked");
    assert!(
        v.meta()
            .share(&theirs.id)
            .unwrap()
            .unwrap()
            .revoked
            .is_some()
    );
    let mut out = Vec::new();
    v.export_audit(&env.admin, &mut out).unwrap();
    let log = String::from_utf8(out).unwrap();
    assert!(log.contains("shares_revoked=1"), "{log}");
}

#[test]
fn tokens_hash_only_expiry_and_roles() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [6; 32]);
    let v = &env.vault;
    let token = v
        .issue_token(&env.admin, &env.member_id, "ci", 100)
        .unwrap();
    let text = token.expose_secret();
    let stored = v.meta().token(&token.id()).unwrap().unwrap();
    // Only a keyed hash is stored: the secret part appears nowhere in the record.
    assert_ne!(&stored.hash[..], &text.expose_secret().as_bytes()[38..70]);
    let parsed = ApiToken::parse(text.expose_secret()).unwrap();
    let p = v.authenticate(&parsed, "", T0.plus(99)).unwrap();
    assert_eq!(p.role, Role::Member);
    assert!(
        v.authenticate(&parsed, "", T0.plus(100)).is_err(),
        "expired at its expiry instant"
    );
    // A token with a guessed secret and a real id is refused.
    let forged = format!("kinko_{}{}", token.id(), "00".repeat(32));
    assert!(
        v.authenticate(&ApiToken::parse(&forged).unwrap(), "", T0)
            .is_err()
    );
    // Members cannot administer; auditors cannot upload.
    assert!(matches!(
        v.create_user(&env.member, "mallory", Role::Admin),
        Err(VaultError::Forbidden)
    ));
    let aud = v.create_user(&env.admin, "audrey", Role::Auditor).unwrap();
    let aud = ctx(aud, Role::Auditor, T0);
    assert!(matches!(
        v.upload(&aud, &meta("x"), None, &mut &b"x"[..]),
        Err(VaultError::Forbidden)
    ));
    assert!(v.verify_audit(&aud).is_ok());
    assert!(matches!(
        v.create_user(&env.admin, "alice", Role::Member),
        Err(VaultError::Exists(_))
    ));
    // Another member cannot touch alice's file.
    let bob = v.create_user(&env.admin, "bob", Role::Member).unwrap();
    let bob = ctx(bob, Role::Member, T0);
    let file = upload(&env, b"alice's");
    assert!(v.create_share(&bob, &file, opts(DAY, None)).is_err());
    assert!(v.delete_file(&bob, &file).is_err());
    v.revoke_token(&env.admin, &token.id()).unwrap();
    assert!(v.authenticate(&parsed, "", T0).is_err());
}

/// A user name cannot forge audit text or look like another: control characters and
/// surrounding spaces are refused, and the name is quoted in the audit record.
#[test]
fn user_names_are_printable_and_quoted_in_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [13; 32]);
    let v = &env.vault;
    for bad in [
        "x\nrole=admin",
        "tab\there",
        " alice",
        "alice ",
        "esc\u{1b}[2J",
        "",
    ] {
        assert!(
            matches!(
                v.create_user(&env.admin, bad, Role::Member),
                Err(VaultError::Invalid(_))
            ),
            "{bad:?}"
        );
    }
    v.create_user(&env.admin, "x role=admin", Role::Member)
        .unwrap();
    let mut out = Vec::new();
    v.export_audit(&env.admin, &mut out).unwrap();
    let log = String::from_utf8(out).unwrap();
    assert!(
        log.contains(r#""detail":"name=\"x role=admin\" role=member""#),
        "{log}"
    );
}

/// A new user name cannot hide zero-width, text-direction or line-separator characters
/// (Unicode Cf, Zl, Zp): "alice\u{200B}" would list like "alice". Names in other scripts
/// are fine.
#[test]
fn user_names_without_invisible_formatting_characters() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [14; 32]);
    let v = &env.vault;
    for bad in [
        "alice\u{200B}",
        "al\u{200D}ice",
        "\u{FEFF}alice",
        "bob\u{202E}ecila",
        "bob\u{2066}x\u{2069}",
        "eve\u{2060}",
        "eve\u{00AD}",
        "line\u{2028}role=admin",
        "tag\u{E0041}",
    ] {
        let err = v.create_user(&env.admin, bad, Role::Member).unwrap_err();
        assert!(
            matches!(&err, VaultError::Invalid(m) if m.contains("invisible formatting")),
            "{bad:?}: {err:?}"
        );
        assert!(
            v.recover_admin(bad, DAY, T0).is_err(),
            "recover_admin created {bad:?}"
        );
    }
    for good in ["Jürgen", "山田", "Zoë O'Brien", "محمد", "Ελένη"] {
        v.create_user(&env.admin, good, Role::Member)
            .unwrap_or_else(|e| panic!("{good:?}: {e:?}"));
    }
    let dir2 = tempfile::tempdir().unwrap();
    let (fresh, _) =
        Vault::open(dir2.path(), config(KeyRing::new(kek_from([15; 32]))), T0).unwrap();
    assert!(matches!(
        fresh.bootstrap_admin("root\u{200B}", DAY, T0),
        Err(VaultError::Invalid(_))
    ));
}

/// The rule above is for new names only: a user stored before it (written here straight to
/// the store) still decodes, lists, gets tokens and signs in, after a reopen too; an admin
/// of that name can still be recovered.
#[test]
fn a_stored_name_from_before_the_rule_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [16; 32]);
    let name = "old\u{200B}admin";
    let old = UserRecord::new(name, Role::Admin, T0);
    env.vault
        .meta()
        .commit(&[], vec![Op::PutUser(old.clone())], Durability::Sync)
        .unwrap();
    let admin = env.admin.clone();
    drop(env);
    let (v, _) = Vault::open(dir.path(), config(KeyRing::new(kek_from([16; 32]))), T0).unwrap();
    let users = v.users(&admin).unwrap();
    assert!(
        users.iter().any(|u| u.id == old.id && u.name == name),
        "{users:?}"
    );
    let token = v.issue_token(&admin, &old.id, "laptop", DAY).unwrap();
    assert_eq!(v.authenticate(&token, "", T0.plus(1)).unwrap().user, old.id);
    let r = v.recover_admin(name, DAY, T0.plus(2)).unwrap();
    assert_eq!((r.user, r.created), (old.id, false));
}

/// The operator's way back in: the admin named gets a new token (re-enabled if disabled), a
/// new name makes a new admin, a member's name is refused; each is audited.
#[test]
fn recover_admin_issues_a_working_token() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [10; 32]);
    let v = &env.vault;
    let root = env.admin.principal.user;
    // The last enabled admin cannot be disabled; a second admin can disable the first, and
    // is then the last one.
    assert!(matches!(
        v.disable_user(&env.admin, &root),
        Err(VaultError::Invalid(_))
    ));
    let second = v.create_user(&env.admin, "second", Role::Admin).unwrap();
    let second = ctx(second, Role::Admin, T0);
    v.disable_user(&second, &root).unwrap();
    assert!(matches!(
        v.disable_user(&second, &second.principal.user),
        Err(VaultError::Invalid(_))
    ));
    let r = v.recover_admin("root", DAY, T0.plus(5)).unwrap();
    assert_eq!((r.user, r.created, r.revoked), (root, false, 0));
    let who = v.authenticate(&r.token, "", T0.plus(6)).unwrap();
    assert_eq!((who.user, who.role), (root, Role::Admin));
    assert!(!v.meta().user(&root).unwrap().unwrap().disabled);
    assert!(
        v.authenticate(&r.token, "", T0.plus(5 + DAY)).is_err(),
        "the token expires"
    );
    // A second recovery revokes the first one's token (and any other the admin had).
    let other = v
        .issue_token(&ctx(root, Role::Admin, T0.plus(7)), &root, "laptop", DAY)
        .unwrap();
    let again = v.recover_admin("root", DAY, T0.plus(8)).unwrap();
    assert_eq!((again.user, again.created, again.revoked), (root, false, 2));
    for old in [&r.token, &other] {
        assert!(v.authenticate(old, "", T0.plus(9)).is_err());
    }
    assert_eq!(
        v.authenticate(&again.token, "", T0.plus(9)).unwrap().user,
        root
    );
    assert_eq!(v.meta().tokens_of(&root).unwrap().len(), 1);

    let r = v.recover_admin("ops", DAY, T0).unwrap();
    let id = r.user;
    assert!(r.created && r.revoked == 0);
    assert_eq!(v.authenticate(&r.token, "", T0).unwrap().user, id);
    assert_eq!(v.meta().user(&id).unwrap().unwrap().role, Role::Admin);
    assert!(matches!(
        v.recover_admin("alice", DAY, T0),
        Err(VaultError::Invalid(_))
    ));
    assert_eq!(v.meta().tokens_of(&env.member_id).unwrap().len(), 0);
    let mut out = Vec::new();
    let admin = ctx(id, Role::Admin, T0);
    v.export_audit(&admin, &mut out).unwrap();
    let log = String::from_utf8(out).unwrap();
    assert_eq!(log.matches("\"action\":\"user.recover\"").count(), 3);
    assert!(log.contains("tokens_deleted=2"), "{log}");
}

#[test]
fn delete_crypto_shreds_then_removes_blob_and_shares() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [7; 32]);
    let v = &env.vault;
    let file = upload(&env, b"to be destroyed");
    let s = share(&env, &file, opts(DAY, None));
    v.delete_file(&env.member, &file).unwrap();
    assert!(v.meta().file(&file).unwrap().is_none());
    assert!(v.meta().share(&s.id).unwrap().is_none());
    assert!(!v.blobs().exists(&file).unwrap());
    assert!(matches!(
        v.access(&s.id, &s.secret, None, AccessKind::View, "", T0),
        Err(AccessError::Denied)
    ));
    let mut out = Vec::new();
    v.export_audit(&env.admin, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let shred = text.find("key shredded").unwrap();
    let purge = text.find("blob deleted").unwrap();
    assert!(shred < purge, "the key is destroyed before the blob");
}

#[test]
fn retention_default_max_and_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [8; 32]);
    let v = &env.vault;
    v.set_retention(
        &env.admin,
        Retention {
            default: 10 * DAY,
            max: 20 * DAY,
        },
    )
    .unwrap();
    assert!(
        v.set_retention(&env.member, Retention { default: 1, max: 2 })
            .is_err()
    );
    assert!(matches!(
        v.upload(&env.member, &meta("x"), Some(21 * DAY), &mut &b"x"[..]),
        Err(VaultError::Invalid(_))
    ));
    let long = v
        .upload(&env.member, &meta("x"), Some(20 * DAY), &mut &b"x"[..])
        .unwrap();
    let short = upload(&env, b"short-lived");
    assert_eq!(
        v.meta().file(&short).unwrap().unwrap().retain_until,
        T0.plus(10 * DAY)
    );
    // A share never outlives its file.
    let s = share(&env, &short, opts(30 * DAY, None));
    assert_eq!(s.expires, T0.plus(10 * DAY));
    let r = v.sweep(T0.plus(10 * DAY - 1)).unwrap();
    assert_eq!((r.visited, r.shares_removed, r.files_removed), (0, 0, 0));
    let r = v.sweep(T0.plus(10 * DAY)).unwrap();
    assert_eq!((r.shares_removed, r.files_removed), (1, 1));
    assert!(v.meta().file(&short).unwrap().is_none());
    assert!(!v.blobs().exists(&short).unwrap());
    assert_eq!(
        v.meta().file(&long).unwrap().unwrap().state,
        FileState::Active
    );
}

/// From its `retain_until` on, a file is gone to its readers even before the sweeper has
/// shredded it: no metadata, no plaintext, no listing, no new share. Its owner can still
/// delete it.
#[test]
fn a_file_past_its_retention_is_gone_before_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [9; 32]);
    let v = &env.vault;
    let file = v
        .upload(&env.member, &meta("x"), Some(DAY), &mut &b"x"[..])
        .unwrap();
    let last = at(&env.member, T0.plus(DAY - 1));
    assert!(v.file_info(&last, &file).is_ok());
    assert_eq!(v.my_files(&last).unwrap().len(), 1);
    let over = at(&env.member, T0.plus(DAY));
    let gone = |r: Result<(), VaultError>| matches!(r, Err(VaultError::NotFound("file")));
    assert!(gone(v.file_info(&over, &file).map(drop)));
    assert!(gone(v.file_meta(&over, &file).map(drop)));
    assert!(gone(v.open_file(&over, &file).map(drop)));
    assert!(gone(v.shares_of_file(&over, &file).map(drop)));
    assert!(gone(
        v.create_share(&over, &file, opts(DAY, None)).map(drop)
    ));
    assert!(v.my_files(&over).unwrap().is_empty());
    // Not shredded yet: the record is there, and deleting it is still allowed.
    assert_eq!(
        v.meta().file(&file).unwrap().unwrap().state,
        FileState::Active
    );
    v.delete_file(&over, &file).unwrap();
    assert!(v.meta().file(&file).unwrap().is_none());
}

#[test]
fn recipient_bound_download_opens_only_for_the_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [9; 32]);
    let v = &env.vault;
    let partner = Identity::generate();
    let data = b"for the partner's eyes only".repeat(1000);
    let file = upload(&env, &data);
    let s = share(
        &env,
        &file,
        ShareOptions {
            expires_in: DAY,
            recipients: vec![*partner.to_public().as_bytes()],
            ..Default::default()
        },
    );
    let g = v
        .access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
        .unwrap();
    let Download::Bound {
        header,
        mut payload,
    } = v.download(&g).unwrap()
    else {
        panic!("expected bound")
    };
    let mut sealed = header.clone();
    payload.read_to_end(&mut sealed).unwrap();
    let mut out = Vec::new();
    envelope::open(&sealed[..], &mut out, &Keyring::new().identity(partner)).unwrap();
    assert_eq!(out, data);
    // Not even the server's KEK opens the bound copy; a stranger's key neither.
    let kek = SymmetricKey::from_bytes([9; 32]);
    assert!(envelope::open(&sealed[..], &mut Vec::new(), &Keyring::new().symmetric(kek)).is_err());
    assert!(
        envelope::open(
            &sealed[..],
            &mut Vec::new(),
            &Keyring::new().identity(Identity::generate())
        )
        .is_err()
    );
}

/// Every download of a bound share gets the same header, so a broken download can resume with
/// a range; another share of the same file, or other recipients, get other ephemeral keys.
#[test]
fn a_bound_share_gives_the_same_header_every_time_and_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [9; 32]);
    let v = &env.vault;
    let (partner, other) = (Identity::generate(), Identity::generate());
    let data = b"twice the same".repeat(100);
    let file = upload(&env, &data);
    let bound_to = |keys: Vec<[u8; 32]>| {
        share(
            &env,
            &file,
            ShareOptions {
                expires_in: DAY,
                recipients: keys,
                ..Default::default()
            },
        )
    };
    let header = |s: &kinko_core::vault::NewShare| {
        let g = v
            .access(&s.id, &s.secret, None, AccessKind::Download, "", T0)
            .unwrap();
        match v.download(&g).unwrap() {
            Download::Bound { header, .. } => header,
            Download::Plaintext(_) => panic!("expected bound"),
        }
    };
    let p = *partner.to_public().as_bytes();
    let o = *other.to_public().as_bytes();
    let first = bound_to(vec![p]);
    let h1 = header(&first);
    assert_eq!(header(&first), h1, "a second download has the same bytes");
    let h2 = header(&bound_to(vec![p]));
    let h3 = header(&bound_to(vec![p, o]));
    // The X25519 stanza (its ephemeral share and wrapped DEK) differs between shares; the
    // encrypted metadata, which every copy shares, is the same.
    let stanza = |h: &[u8]| {
        envelope::Header::from_bytes(h).unwrap().stanzas()[0]
            .body()
            .to_vec()
    };
    assert_ne!(
        stanza(&h1),
        stanza(&h2),
        "another share, other ephemeral keys"
    );
    assert_ne!(
        stanza(&h1),
        stanza(&h3),
        "other recipients, other ephemeral keys"
    );
    for (h, id) in [(&h1, &partner), (&h2, &partner), (&h3, &other)] {
        let mut sealed = h.clone();
        v.blobs()
            .open(&file)
            .unwrap()
            .read_to_end(&mut sealed)
            .unwrap();
        let mut out = Vec::new();
        envelope::open(&sealed[..], &mut out, &Keyring::new().identity(id.clone())).unwrap();
        assert_eq!(out, data);
    }
}

/// A download that names the wrong key is refused before it is counted, and says why.
#[test]
fn a_download_for_the_wrong_key_is_refused_and_not_counted() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [9; 32]);
    let v = &env.vault;
    let partner = Identity::generate();
    let stranger = Identity::generate();
    let file = upload(&env, b"bound");
    let s = share(
        &env,
        &file,
        ShareOptions {
            expires_in: DAY,
            max_downloads: Some(1),
            recipients: vec![*partner.to_public().as_bytes()],
            ..Default::default()
        },
    );
    let for_key = |id: &Identity| AccessKind::DownloadFor(vec![*id.to_public().as_bytes()]);
    for _ in 0..3 {
        assert!(matches!(
            v.access(&s.id, &s.secret, None, for_key(&stranger), "", T0),
            Err(AccessError::NotRecipient)
        ));
    }
    assert_eq!(v.meta().share(&s.id).unwrap().unwrap().downloads, 0);
    let g = v
        .access(&s.id, &s.secret, None, for_key(&partner), "", T0)
        .unwrap();
    assert!(g.ticket.is_some());
    assert_eq!(v.meta().share(&s.id).unwrap().unwrap().downloads, 1);
    // The limit is now reached: the wrong key learns nothing more than anyone else.
    assert!(matches!(
        v.access(&s.id, &s.secret, None, for_key(&stranger), "", T0),
        Err(AccessError::Denied)
    ));
    let mut log = Vec::new();
    v.export_audit(&env.admin, &mut log).unwrap();
    let log = String::from_utf8(log).unwrap();
    assert_eq!(log.matches("not bound to the named keys").count(), 3);
}

#[test]
fn kek_rotation_rewraps_everything_and_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = [10u8; 32];
    let new = [11u8; 32];
    let files: Vec<_>;
    let share_link;
    let token_text;
    {
        let env = setup(dir.path(), old);
        files = (0..20)
            .map(|i| upload(&env, format!("file {i}").as_bytes()))
            .collect();
        let s = share(&env, &files[3], opts(DAY, None));
        share_link = (s.id, s.secret);
        token_text = env
            .vault
            .issue_token(&env.admin, &env.member_id, "t", DAY)
            .unwrap()
            .expose_secret();
        let blob_before: Vec<u8> = {
            let mut b = Vec::new();
            env.vault
                .blobs()
                .open(&files[0])
                .unwrap()
                .read_to_end(&mut b)
                .unwrap();
            b
        };
        drop(env);
        // Reopen with the new key as primary, the old one retiring.
        let ring = KeyRing::new(MasterKey::from_bytes(new)).with_old(MasterKey::from_bytes(old));
        let (v, _) = Vault::open(dir.path(), config(ring), T0).unwrap();
        let admin = v.meta().user_by_name("root").unwrap().unwrap();
        let admin = ctx(admin.id, Role::Admin, T0);
        let r = v.rotate_kek(&admin).unwrap();
        assert_eq!(
            (r.rewrapped, r.already_current, r.seed_rewrapped),
            (20, 0, true)
        );
        let r = v.rotate_kek(&admin).unwrap();
        assert_eq!(
            (r.rewrapped, r.already_current, r.seed_rewrapped),
            (0, 20, false)
        );
        let mut b = Vec::new();
        v.blobs()
            .open(&files[0])
            .unwrap()
            .read_to_end(&mut b)
            .unwrap();
        assert_eq!(b, blob_before, "payloads are not touched");
    }
    // The old key is no longer needed: open with the new key alone.
    let (v, _) = Vault::open(
        dir.path(),
        config(KeyRing::new(MasterKey::from_bytes(new))),
        T0,
    )
    .unwrap();
    let alice = v.meta().user_by_name("alice").unwrap().unwrap();
    let alice = ctx(alice.id, Role::Member, T0);
    for (i, f) in files.iter().enumerate() {
        let mut out = Vec::new();
        v.open_file(&alice, f)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, format!("file {i}").as_bytes());
    }
    // Tokens and link secrets (keyed by the seed) still work.
    assert!(
        v.authenticate(
            &ApiToken::parse(token_text.expose_secret()).unwrap(),
            "",
            T0
        )
        .is_ok()
    );
    assert!(
        v.access(
            &share_link.0,
            &share_link.1,
            None,
            AccessKind::Download,
            "",
            T0
        )
        .is_ok()
    );
    // And the old key alone opens nothing.
    drop(v);
    assert!(
        Vault::open(
            dir.path(),
            config(KeyRing::new(MasterKey::from_bytes(old))),
            T0
        )
        .is_err()
    );
    let _ = Timestamp(0);
}

#[test]
fn my_files_lists_only_the_callers_active_files_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [8; 32]);
    let v = &env.vault;
    let older = upload(&env, b"first");
    let newer = v
        .upload(
            &at(&env.member, T0.plus(10)),
            &meta("later.txt"),
            None,
            &mut &b"second!"[..],
        )
        .unwrap();
    let admins = v
        .upload(&env.admin, &meta("admin.txt"), None, &mut &b"x"[..])
        .unwrap();

    let mine = v.my_files(&env.member).unwrap();
    let ids: Vec<_> = mine.iter().map(|f| f.id).collect();
    assert_eq!(ids, vec![newer, older]);
    assert_eq!(mine[0].meta.name, "later.txt");
    assert_eq!(mine[0].size, 7);
    assert_eq!(mine[0].retain_until, T0.plus(10 + 30 * DAY));
    assert_eq!(
        v.my_files(&env.admin)
            .unwrap()
            .iter()
            .map(|f| f.id)
            .collect::<Vec<_>>(),
        vec![admins]
    );
    // Not the member's: looks like it does not exist.
    assert!(matches!(
        v.file_info(&env.member, &admins),
        Err(VaultError::NotFound(_))
    ));
    assert_eq!(
        v.file_info(&env.admin, &older).unwrap().meta.name,
        "report.txt"
    );

    v.delete_file(&env.member, &older).unwrap();
    let ids: Vec<_> = v
        .my_files(&env.member)
        .unwrap()
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, vec![newer]);
}

/// `decide_access` commits without flushing and says which outcomes must wait for a flush:
/// under `SyncCounted`, exactly the decisions that change the share (a counted download, a
/// wrong password). The audit record and the counter are in the store either way, and the
/// chain verifies.
#[test]
fn decide_access_names_the_decisions_that_must_be_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let env = setup(dir.path(), [7; 32]);
    let file = upload(&env, b"quarterly numbers");
    let s = share(&env, &file, opts(DAY, Some(3)));
    let decide = |secret: &LinkSecret, pw: Option<&SecretString>, kind| {
        env.vault
            .decide_access(&s.id, secret, pw, kind, "1.2.3.4", T0)
    };

    let d = decide(&s.secret, None, AccessKind::View);
    assert!(d.outcome.is_ok() && !d.must_flush, "a view changes nothing");
    let d = decide(&s.secret, None, AccessKind::Download);
    let g = d.outcome.unwrap();
    assert!(d.must_flush, "a counted download must be on disk first");
    assert_eq!(g.downloads_left, Some(2));
    let wrong = LinkSecret::generate();
    let d = decide(&wrong, None, AccessKind::Download);
    assert!(matches!(d.outcome, Err(AccessError::Denied)) && !d.must_flush);
    let d = decide(
        &s.secret,
        None,
        AccessKind::Resume(g.ticket.clone().unwrap()),
    );
    assert!(
        d.outcome.is_ok() && !d.must_flush,
        "a resume is not counted"
    );
    assert_eq!(
        env.vault.meta().share(&s.id).unwrap().unwrap().downloads,
        1,
        "the counter was committed without a flush"
    );

    let pw = env
        .vault
        .create_share(
            &env.member,
            &file,
            ShareOptions {
                password: Some(SecretString::from("correct horse")),
                ..opts(DAY, None)
            },
        )
        .unwrap();
    let d = env.vault.decide_access(
        &pw.id,
        &pw.secret,
        Some(&SecretString::from("wrong")),
        AccessKind::Download,
        "1.2.3.4",
        T0,
    );
    assert!(matches!(d.outcome, Err(AccessError::WrongPassword)) && d.must_flush);

    let report = env.vault.verify_audit(&env.admin).unwrap();
    assert!(report.records >= 6, "{report:?}");
}

/// A configured password limit of 0 is taken as 1: shares with and without a password still
/// open, and one wrong password then locks the password share.
#[test]
fn a_password_limit_of_zero_does_not_lock_every_share() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(KeyRing::new(kek_from([3; 32])));
    cfg.max_password_attempts = 0;
    let meta = kinko_core::vault::SledMetaStore::open(&dir.path().join("meta"), None).unwrap();
    let env = setup_over(dir.path(), cfg, Box::new(meta));
    let v = &env.vault;
    let file = upload(&env, b"limited");
    let open = share(&env, &file, opts(DAY, None));
    v.access(&open.id, &open.secret, None, AccessKind::Download, "", T0)
        .expect("a share without a password is never locked");
    let guarded = share(
        &env,
        &file,
        ShareOptions {
            expires_in: DAY,
            password: Some(SecretString::from("right")),
            ..Default::default()
        },
    );
    let try_with = |pw: &str| {
        v.access(
            &guarded.id,
            &guarded.secret,
            Some(&SecretString::from(pw)),
            AccessKind::Download,
            "",
            T0,
        )
    };
    try_with("right").expect("the right password opens it");
    assert!(matches!(try_with("wrong"), Err(AccessError::WrongPassword)));
    assert!(
        try_with("right").is_err(),
        "locked after one wrong password"
    );
}
