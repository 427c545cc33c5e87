//! The access decision as a pure function: a table of cases, no clock, no I/O.

use kinko_core::vault::policy::{
    AccessKind, Credentials, Decision, PasswordCheck, PasswordCost, PolicyEnv, Refusal,
    check_password, decide, decide_lazily, hash_password, next_state,
};
use kinko_core::vault::{FileId, ShareId, ShareRecord, Timestamp, UserId};
use secrecy::SecretString;

const NOW: Timestamp = Timestamp(1_000_000);

fn share() -> ShareRecord {
    ShareRecord {
        id: ShareId([1; 16]),
        file: FileId([2; 16]),
        owner: UserId([3; 16]),
        creator: UserId([3; 16]),
        created: Timestamp(0),
        expires: Timestamp(NOW.0 + 100),
        secret_hash: [0; 32],
        password: None,
        max_downloads: Some(3),
        downloads: 0,
        failed_attempts: 0,
        max_attempts: 5,
        recipients: vec![],
        revoked: None,
        version: 1,
    }
}

const ENV: PolicyEnv = PolicyEnv {
    frozen: false,
    owner_enabled: true,
    file_active: true,
};
const CREDS: Credentials = Credentials {
    secret_ok: true,
    password: PasswordCheck::NotRequired,
    ticket_ok: false,
};

const ALICE: [u8; 32] = [7; 32];

/// Argon2 parameters small enough for tests.
const CHEAP: PasswordCost = PasswordCost {
    m_cost: 64,
    t_cost: 1,
    p_cost: 1,
};

fn bound(s: &mut ShareRecord) {
    s.recipients = vec![[8; 32], ALICE];
}

fn ticket() -> AccessKind {
    // Any ticket value: validity is an input (`ticket_ok`), checked by the vault.
    AccessKind::Resume(kinko_core::vault::DownloadTicket::parse(&"00".repeat(56)).unwrap())
}

struct Case {
    name: &'static str,
    share: Option<ShareRecord>,
    env: PolicyEnv,
    creds: Credentials,
    kind: AccessKind,
    now: Timestamp,
    want: Decision,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        share: Some(share()),
        env: ENV,
        creds: CREDS,
        kind: AccessKind::Download,
        now: NOW,
        want: Decision::Allow { counted: true },
    }
}

impl Case {
    fn share(mut self, f: impl FnOnce(&mut ShareRecord)) -> Self {
        let mut s = self.share.take().unwrap();
        f(&mut s);
        self.share = Some(s);
        self
    }
    fn refuse(mut self, r: Refusal) -> Self {
        self.want = Decision::Refuse(r);
        self
    }
    fn allow(mut self, counted: bool) -> Self {
        self.want = Decision::Allow { counted };
        self
    }
}

#[test]
fn decision_table() {
    use Refusal::*;
    let pw = |p| Credentials {
        password: p,
        ..CREDS
    };
    let cases = vec![
        case("plain download is allowed and counted"),
        case("view is allowed, not counted")
            .allow(false)
            .with_kind(AccessKind::View),
        Case {
            share: None,
            ..case("unknown share")
        }
        .refuse(UnknownShare),
        Case {
            creds: Credentials {
                secret_ok: false,
                ..CREDS
            },
            ..case("wrong secret")
        }
        .refuse(WrongSecret),
        Case {
            env: PolicyEnv {
                frozen: true,
                ..ENV
            },
            ..case("frozen")
        }
        .refuse(Frozen),
        case("revoked")
            .share(|s| s.revoked = Some(Timestamp(5)))
            .refuse(Revoked),
        Case {
            env: PolicyEnv {
                owner_enabled: false,
                ..ENV
            },
            ..case("owner disabled")
        }
        .refuse(OwnerDisabled),
        Case {
            env: PolicyEnv {
                file_active: false,
                ..ENV
            },
            ..case("file gone")
        }
        .refuse(FileGone),
        // Expiry boundary: allowed one second before, refused at the instant.
        Case {
            now: Timestamp(NOW.0 + 99),
            ..case("one second before expiry")
        },
        Case {
            now: Timestamp(NOW.0 + 100),
            ..case("at expiry")
        }
        .refuse(Expired),
        Case {
            now: Timestamp(NOW.0 + 101),
            ..case("after expiry")
        }
        .refuse(Expired),
        Case {
            now: Timestamp(NOW.0 + 100),
            ..case("view at expiry")
        }
        .with_kind(AccessKind::View)
        .refuse(Expired),
        // Download limit boundary.
        case("second-to-last download").share(|s| s.downloads = 2),
        case("limit reached")
            .share(|s| s.downloads = 3)
            .refuse(Exhausted),
        case("past limit")
            .share(|s| s.downloads = 9)
            .refuse(Exhausted),
        case("unlimited").share(|s| {
            s.max_downloads = None;
            s.downloads = 1_000_000
        }),
        case("view of an exhausted share")
            .share(|s| s.downloads = 3)
            .with_kind(AccessKind::View)
            .allow(false),
        // Lock boundary.
        case("one attempt short of the lock").share(|s| s.failed_attempts = 4),
        case("locked")
            .share(|s| s.failed_attempts = 5)
            .refuse(Locked),
        case("locked, even with the right password")
            .share(|s| s.failed_attempts = 5)
            .with_creds(pw(PasswordCheck::Correct))
            .refuse(Locked),
        case("locked view")
            .share(|s| s.failed_attempts = 5)
            .with_kind(AccessKind::View)
            .refuse(Locked),
        // Passwords.
        case("password missing")
            .with_creds(pw(PasswordCheck::Missing))
            .refuse(PasswordRequired),
        case("password wrong")
            .with_creds(pw(PasswordCheck::Wrong))
            .refuse(WrongPassword),
        case("password right").with_creds(pw(PasswordCheck::Correct)),
        case("view without password")
            .with_creds(pw(PasswordCheck::Missing))
            .with_kind(AccessKind::View)
            .allow(false),
        case("exhausted beats password prompt")
            .share(|s| s.downloads = 3)
            .with_creds(pw(PasswordCheck::Missing))
            .refuse(Exhausted),
        // Range requests of a counted download.
        case("resume with a valid ticket")
            .with_kind(ticket())
            .with_creds(Credentials {
                ticket_ok: true,
                ..CREDS
            })
            .allow(false),
        case("resume on exhausted share still allowed")
            .share(|s| s.downloads = 3)
            .with_kind(ticket())
            .with_creds(Credentials {
                ticket_ok: true,
                ..CREDS
            })
            .allow(false),
        case("resume with a bad ticket")
            .with_kind(ticket())
            .refuse(BadTicket),
        case("resume after revocation")
            .share(|s| s.revoked = Some(Timestamp(1)))
            .with_kind(ticket())
            .with_creds(Credentials {
                ticket_ok: true,
                ..CREDS
            })
            .refuse(Revoked),
        Case {
            now: Timestamp(NOW.0 + 100),
            ..case("resume after expiry")
        }
        .with_kind(ticket())
        .with_creds(Credentials {
            ticket_ok: true,
            ..CREDS
        })
        .refuse(Expired),
        // Ordering: without the secret, nothing about the share's state shows.
        Case {
            creds: Credentials {
                secret_ok: false,
                ..CREDS
            },
            env: PolicyEnv {
                frozen: true,
                ..ENV
            },
            ..case("wrong secret on frozen")
        }
        .share(|s| {
            s.revoked = Some(Timestamp(1));
            s.downloads = 3;
        })
        .refuse(WrongSecret),
        Case {
            env: PolicyEnv {
                frozen: true,
                ..ENV
            },
            ..case("frozen beats revoked")
        }
        .share(|s| s.revoked = Some(Timestamp(1)))
        .refuse(Frozen),
        case("revoked beats expired")
            .share(|s| {
                s.revoked = Some(Timestamp(1));
                s.expires = Timestamp(0);
            })
            .refuse(Revoked),
        // A download that names the keys it will be opened with.
        case("bound share, one named key is a recipient")
            .share(bound)
            .with_kind(AccessKind::DownloadFor(vec![[9; 32], ALICE])),
        case("bound share, no named key is a recipient")
            .share(bound)
            .with_kind(AccessKind::DownloadFor(vec![[9; 32]]))
            .refuse(NotRecipient),
        case("bound share, no key named at all")
            .share(bound)
            .with_kind(AccessKind::DownloadFor(vec![]))
            .refuse(NotRecipient),
        case("plaintext share ignores the named keys")
            .with_kind(AccessKind::DownloadFor(vec![[9; 32]])),
        case("wrong key, password missing: the password comes first")
            .share(bound)
            .with_kind(AccessKind::DownloadFor(vec![[9; 32]]))
            .with_creds(pw(PasswordCheck::Missing))
            .refuse(PasswordRequired),
        case("wrong key, password wrong: the password comes first")
            .share(bound)
            .with_kind(AccessKind::DownloadFor(vec![[9; 32]]))
            .with_creds(pw(PasswordCheck::Wrong))
            .refuse(WrongPassword),
        case("wrong key, password right")
            .share(bound)
            .with_kind(AccessKind::DownloadFor(vec![[9; 32]]))
            .with_creds(pw(PasswordCheck::Correct))
            .refuse(NotRecipient),
        case("wrong key on an exhausted share")
            .share(|s| {
                bound(s);
                s.downloads = 3;
            })
            .with_kind(AccessKind::DownloadFor(vec![[9; 32]]))
            .refuse(Exhausted),
        Case {
            creds: Credentials {
                secret_ok: false,
                ..CREDS
            },
            ..case("wrong key and wrong secret")
        }
        .share(bound)
        .with_kind(AccessKind::DownloadFor(vec![[9; 32]]))
        .refuse(WrongSecret),
    ];
    let n = cases.len();
    let a_password = hash_password(&SecretString::from("pw"), CHEAP);
    for c in cases {
        let got = decide(c.share.as_ref(), &c.env, &c.creds, &c.kind, c.now);
        assert_eq!(got, c.want, "case {:?}", c.name);
        // Deterministic: the same inputs give the same answer.
        assert_eq!(
            decide(c.share.as_ref(), &c.env, &c.creds, &c.kind, c.now),
            got
        );
        // The vault's form gives the same answer, and runs the (Argon2) password check only
        // when the answer depends on it: never for a share refused for another reason.
        let has_password = c.creds.password != PasswordCheck::NotRequired;
        let mut share = c.share.clone();
        if let Some(s) = share.as_mut().filter(|_| has_password) {
            s.password = Some(a_password.clone());
        }
        let mut checks = 0;
        let lazy = decide_lazily(share.as_ref(), &c.env, &c.creds, &c.kind, c.now, || {
            checks += 1;
            c.creds.password
        });
        assert_eq!(lazy, c.want, "lazily: case {:?}", c.name);
        let password_decides = has_password
            && matches!(
                c.want,
                Decision::Allow { counted: true }
                    | Decision::Refuse(PasswordRequired | WrongPassword | NotRecipient)
            );
        assert_eq!(
            checks,
            usize::from(password_decides),
            "checks: case {:?}",
            c.name
        );
    }
    assert!(n >= 30);
}

trait With {
    fn with_kind(self, k: AccessKind) -> Self;
    fn with_creds(self, c: Credentials) -> Self;
}
impl With for Case {
    fn with_kind(mut self, k: AccessKind) -> Self {
        self.kind = k;
        self
    }
    fn with_creds(mut self, c: Credentials) -> Self {
        self.creds = c;
        self
    }
}

#[test]
fn every_refusal_but_the_password_and_recipient_ones_is_opaque() {
    use Refusal::*;
    use kinko_core::vault::Outward;
    for r in [
        UnknownShare,
        WrongSecret,
        Frozen,
        Revoked,
        OwnerDisabled,
        FileGone,
        Expired,
        Locked,
        Exhausted,
        BadTicket,
    ] {
        assert_eq!(r.outward(), Outward::Denied, "{r:?}");
    }
    assert_eq!(PasswordRequired.outward(), Outward::PasswordRequired);
    assert_eq!(WrongPassword.outward(), Outward::WrongPassword);
    assert_eq!(NotRecipient.outward(), Outward::NotRecipient);
}

#[test]
fn next_state_counts_downloads_and_wrong_passwords_only() {
    let s = share();
    let n = next_state(&s, &Decision::Allow { counted: true }).unwrap();
    assert_eq!((n.downloads, n.version), (1, 2));
    assert!(next_state(&s, &Decision::Allow { counted: false }).is_none());
    let n = next_state(&s, &Decision::Refuse(Refusal::WrongPassword)).unwrap();
    assert_eq!((n.failed_attempts, n.downloads, n.version), (1, 0, 2));
    for r in [
        Refusal::Expired,
        Refusal::WrongSecret,
        Refusal::Exhausted,
        Refusal::PasswordRequired,
        Refusal::NotRecipient,
    ] {
        assert!(next_state(&s, &Decision::Refuse(r)).is_none(), "{r:?}");
    }
    // The lock engages exactly at max_attempts.
    let mut s = share();
    for i in 0..5 {
        assert!(!s.locked(), "attempt {i}");
        s = next_state(&s, &Decision::Refuse(Refusal::WrongPassword)).unwrap();
    }
    assert!(s.locked());
}

#[test]
fn password_check() {
    let cost = CHEAP;
    let mut s = share();
    assert_eq!(
        check_password(&s, Some(&SecretString::from("x"))),
        PasswordCheck::NotRequired
    );
    s.password = Some(hash_password(&SecretString::from("hunter2"), cost));
    assert_eq!(check_password(&s, None), PasswordCheck::Missing);
    assert_eq!(
        check_password(&s, Some(&SecretString::from("hunter3"))),
        PasswordCheck::Wrong
    );
    assert_eq!(
        check_password(&s, Some(&SecretString::from("hunter2"))),
        PasswordCheck::Correct
    );
    // Debug never shows the hash.
    assert!(format!("{:?}", s.password.unwrap()).contains(".."));
}
