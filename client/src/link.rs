//! Server addresses and share links.
//!
//! A [`BaseUrl`] is where a Kinko server answers: `https://host[:port][/prefix]`. A [`Link`] is
//! what a partner receives: `BASE/s/<share id>#<link secret>`. The secret lives in the URL
//! fragment, so browsers never send it; this client sends it only in the `Kinko-Link-Secret`
//! header.
//!
//! Neither type leaks the secret by accident: [`Link`] has no `Display`, its `Debug` prints
//! `LinkSecret(..)`, and the full link is only available through [`Link::expose_secret`].

use std::fmt;
use std::str::FromStr;

use kinko_core::vault::{LinkSecret, ShareId};
use secrecy::{ExposeSecret, SecretString};

/// Hex digits in a share id (128 bits).
const SHARE_ID_HEX: usize = 32;
/// Hex digits in a link secret (256 bits).
const LINK_SECRET_HEX: usize = 64;
/// The path segment between the base URL and the share id.
const SHARE_PATH: &str = "/s/";

/// Why a server URL or a share link was refused.
///
/// No variant repeats the text that failed: a mangled link can still hold its secret, and a
/// URL with a user name can hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// No `scheme://` at the start.
    #[error("the URL does not start with https:// (or http://)")]
    MissingScheme,
    /// A scheme other than `https` or `http`.
    #[error("unsupported URL scheme {0:?}: Kinko servers speak https (or http on a test machine)")]
    UnsupportedScheme(String),
    /// Nothing between `scheme://` and the path.
    #[error("the URL has no host name")]
    MissingHost,
    /// `user[:password]@` before the host.
    #[error("the URL contains a user name or password before the host (user@host)")]
    HasUserinfo,
    /// A port that is not a number from 1 to 65535.
    #[error("the URL's port is not a number from 1 to 65535")]
    BadPort,
    /// A `?query` part. Server addresses have none, and links never have one: the server
    /// refuses any query string on a link route.
    #[error("the URL has a query string (a ?… part)")]
    HasQuery,
    /// A `#fragment` on a server address.
    #[error("the server URL has a # part")]
    HasFragment,
    /// Characters a URL may not contain, or another syntax error.
    #[error("the URL is malformed: {0}")]
    Malformed(&'static str),
    /// A link without `/s/<share id>` in its path.
    #[error("not a Kinko share link: it has no /s/<share id> part")]
    NotAShareLink,
    /// The part after `/s/` is not 32 hex digits.
    #[error("the share id after /s/ is malformed: expected 32 hex digits")]
    BadShareId,
    /// No `#` part: the link's secret is missing.
    #[error("the link has no secret: the #… part at its end is missing")]
    MissingSecret,
    /// The part after `#` is not 64 hex digits.
    #[error(
        "the link's secret (after #) is malformed: expected 64 hex digits, found {found} characters"
    )]
    BadSecret {
        /// How many characters were there (never which).
        found: usize,
    },
}

/// The address of a Kinko server: `http[s]://host[:port][/prefix]`, stored without a trailing
/// slash. It carries no secret, so it prints (`Display`) as itself.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Parses and normalizes a server address: the scheme and host are lower-cased and any
    /// trailing `/` is removed.
    ///
    /// # Errors
    ///
    /// A [`UrlError`] naming the part that is wrong.
    pub fn parse(text: &str) -> Result<BaseUrl, UrlError> {
        let text = text.trim();
        if text.contains('#') {
            return Err(UrlError::HasFragment);
        }
        parse_base(text)
    }

    /// The address as text, e.g. `https://files.example.com` (no trailing slash).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the scheme is `https`.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }

    /// The host and port as written in the address, e.g. `files.example.com:8443` or
    /// `[::1]:8750` (lower-cased, no port when none was given).
    pub fn authority(&self) -> &str {
        let rest = self.0.split_once("://").map_or(&self.0[..], |(_, r)| r);
        rest.split('/').next().unwrap_or_default()
    }

    /// Whether the host is this machine: `localhost`, an address in 127.0.0.0/8 (also written
    /// as an IPv4-mapped IPv6 address, `[::ffff:127.0.0.1]`), or `::1`. Plain `http://` to it
    /// never leaves the machine (see [`Client`](crate::Client)). Other names, `*.localhost`
    /// included, count as remote: the system resolver may send them to DNS.
    pub fn is_loopback(&self) -> bool {
        let authority = self.authority();
        let host = if let Some(v6) = authority.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            authority.rsplit_once(':').map_or(authority, |(h, _)| h)
        };
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
    }

    /// `self` followed by `path` (which starts with `/`).
    pub(crate) fn join(&self, path: &str) -> String {
        debug_assert!(path.starts_with('/'));
        format!("{}{path}", self.0)
    }
}

impl FromStr for BaseUrl {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        BaseUrl::parse(s)
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BaseUrl({:?})", self.0)
    }
}

/// Checks `scheme://authority[/path]` (no fragment left at this point).
fn parse_base(text: &str) -> Result<BaseUrl, UrlError> {
    let (scheme, rest) = text.split_once("://").ok_or(UrlError::MissingScheme)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        if scheme.is_empty()
            || scheme.len() > 16
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(UrlError::MissingScheme);
        }
        return Err(UrlError::UnsupportedScheme(scheme));
    }
    if rest.contains('?') {
        return Err(UrlError::HasQuery);
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(UrlError::HasUserinfo);
    }
    if authority.is_empty() {
        return Err(UrlError::MissingHost);
    }
    // The port: the part after the last ':' unless it sits inside an IPv6 literal's brackets.
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => {
            let port = &authority[i + 1..];
            match port.parse::<u16>() {
                Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
                _ => return Err(UrlError::BadPort),
            }
            &authority[..i]
        }
        _ => authority,
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let path = path.trim_end_matches('/');
    let normalized = format!("{scheme}://{}{path}", authority.to_ascii_lowercase());
    // The http crate's parser is what the request will go through: anything it refuses
    // (spaces, control characters, a malformed IPv6 literal) is refused here already.
    if let Err(e) = normalized.parse::<ureq::http::Uri>() {
        // Its messages name the kind of problem, never the input.
        return Err(UrlError::Malformed(uri_error_kind(&e)));
    }
    Ok(BaseUrl(normalized))
}

fn uri_error_kind(e: &ureq::http::uri::InvalidUri) -> &'static str {
    let text = e.to_string();
    for known in [
        "invalid uri character",
        "invalid scheme",
        "invalid authority",
        "invalid port",
        "uri too long",
    ] {
        if text.contains(known) {
            return known;
        }
    }
    "invalid URL syntax"
}

/// A share link: the server's address, the share id, and the link secret.
///
/// `Debug` shows the address and id but never the secret. There is no `Display`: printing the
/// link (which hands out the file) takes an explicit [`Link::expose_secret`].
pub struct Link {
    base: BaseUrl,
    share: ShareId,
    secret: LinkSecret,
}

impl Link {
    /// Parses `https://host[:port][/prefix]/s/<32 hex share id>#<64 hex secret>`. Surrounding
    /// white space is ignored (links get pasted with a trailing newline).
    ///
    /// # Errors
    ///
    /// A [`UrlError`] for the first part that is wrong: the secret, the share id, then the
    /// server address.
    pub fn parse(text: &str) -> Result<Link, UrlError> {
        let text = text.trim();
        let (before, fragment) = text.split_once('#').ok_or(UrlError::MissingSecret)?;
        if fragment.is_empty() {
            return Err(UrlError::MissingSecret);
        }
        let secret = parse_secret(fragment)?;
        if before.contains('?') {
            return Err(UrlError::HasQuery);
        }
        let at = before.rfind(SHARE_PATH).ok_or(UrlError::NotAShareLink)?;
        let id = &before[at + SHARE_PATH.len()..];
        let share = parse_share_id(id)?;
        let base = parse_base(&before[..at])?;
        Ok(Link {
            base,
            share,
            secret,
        })
    }

    /// A link from its parts, e.g. to rebuild one kept in an app's storage.
    pub fn from_parts(base: BaseUrl, share: ShareId, secret: LinkSecret) -> Link {
        Link {
            base,
            share,
            secret,
        }
    }

    /// The server's address.
    pub fn base_url(&self) -> &BaseUrl {
        &self.base
    }

    /// The share id (public: it is in the link's path).
    pub fn share_id(&self) -> ShareId {
        self.share
    }

    /// The link secret, for the `Kinko-Link-Secret` header.
    pub fn secret(&self) -> &LinkSecret {
        &self.secret
    }

    /// The link without its secret, `BASE/s/<share id>`: safe to print in messages and logs.
    pub fn page_url(&self) -> String {
        self.base.join(&format!("{SHARE_PATH}{}", self.share))
    }

    /// The whole link, secret included, to hand to the person it is for.
    pub fn expose_secret(&self) -> SecretString {
        let page = self.page_url();
        let secret = self.secret.expose_secret();
        // Sized exactly, so neither pushing nor the conversion to a boxed str reallocates and
        // leaves a copy of the secret behind; `secret` is wiped when it drops.
        let mut text = String::with_capacity(page.len() + 1 + LINK_SECRET_HEX);
        text.push_str(&page);
        text.push('#');
        text.push_str(secret.expose_secret());
        SecretString::from(text)
    }
}

impl Clone for Link {
    fn clone(&self) -> Self {
        let hex = self.secret.expose_secret();
        let secret = LinkSecret::parse(hex.expose_secret())
            .expect("a LinkSecret's own encoding parses back");
        Link {
            base: self.base.clone(),
            share: self.share,
            secret,
        }
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("base", &self.base)
            .field("share", &self.share)
            .field("secret", &self.secret)
            .finish()
    }
}

impl FromStr for Link {
    type Err = UrlError;
    fn from_str(s: &str) -> Result<Self, UrlError> {
        Link::parse(s)
    }
}

fn parse_share_id(text: &str) -> Result<ShareId, UrlError> {
    if text.len() != SHARE_ID_HEX || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UrlError::BadShareId);
    }
    text.to_ascii_lowercase()
        .parse()
        .map_err(|_| UrlError::BadShareId)
}

fn parse_secret(text: &str) -> Result<LinkSecret, UrlError> {
    let found = text.chars().count();
    if found != LINK_SECRET_HEX || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(UrlError::BadSecret { found });
    }
    LinkSecret::parse(text).ok_or(UrlError::BadSecret { found })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "00112233445566778899aabbccddeeff";
    const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn link(base: &str) -> String {
        format!("{base}/s/{ID}#{SECRET}")
    }

    #[test]
    fn good_links() {
        for (text, base) in [
            (
                link("https://files.example.com"),
                "https://files.example.com",
            ),
            (
                link("https://files.example.com:8443"),
                "https://files.example.com:8443",
            ),
            (
                link("https://example.com/kinko"),
                "https://example.com/kinko",
            ),
            (link("http://127.0.0.1:8080"), "http://127.0.0.1:8080"),
            (link("http://[::1]:8080"), "http://[::1]:8080"),
            (
                link("HTTPS://Files.Example.COM"),
                "https://files.example.com",
            ),
            (format!("  {}\n", link("https://a.b")), "https://a.b"),
        ] {
            let l = Link::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(l.base_url().as_str(), base, "{text}");
            assert_eq!(l.share_id().to_string(), ID);
            assert_eq!(l.secret().expose_secret().expose_secret(), SECRET);
            assert_eq!(l.page_url(), format!("{base}/s/{ID}"));
            assert_eq!(
                l.expose_secret().expose_secret(),
                format!("{base}/s/{ID}#{SECRET}")
            );
        }
        // Upper-case hex is read (some tools upper-case what they copy).
        let upper = format!(
            "https://a.b/s/{}#{}",
            ID.to_uppercase(),
            SECRET.to_uppercase()
        );
        let l = Link::parse(&upper).unwrap();
        assert_eq!(l.share_id().to_string(), ID);
        assert_eq!(l.secret().expose_secret().expose_secret(), SECRET);
    }

    #[test]
    fn every_malformed_part_has_its_own_error() {
        let cases: Vec<(String, UrlError)> = vec![
            (format!("https://a.b/s/{ID}"), UrlError::MissingSecret),
            (format!("https://a.b/s/{ID}#"), UrlError::MissingSecret),
            (
                format!("https://a.b/s/{ID}#{}", &SECRET[..63]),
                UrlError::BadSecret { found: 63 },
            ),
            (
                format!("https://a.b/s/{ID}#{SECRET}0"),
                UrlError::BadSecret { found: 65 },
            ),
            (
                format!("https://a.b/s/{ID}#{}g", &SECRET[..63]),
                UrlError::BadSecret { found: 64 },
            ),
            (
                format!("https://a.b/s/{ID}#é{}", &SECRET[..63]),
                UrlError::BadSecret { found: 64 },
            ),
            (
                format!("https://a.b/s/{ID}?x=1#{SECRET}"),
                UrlError::HasQuery,
            ),
            (
                format!("https://a.b/files/{ID}#{SECRET}"),
                UrlError::NotAShareLink,
            ),
            (
                format!("https://a.b/s/{}#{SECRET}", &ID[..31]),
                UrlError::BadShareId,
            ),
            (
                format!("https://a.b/s/{ID}0#{SECRET}"),
                UrlError::BadShareId,
            ),
            (
                format!("https://a.b/s/{ID}/#{SECRET}"),
                UrlError::BadShareId,
            ),
            (
                format!("https://a.b/s/{}x#{SECRET}", &ID[..31]),
                UrlError::BadShareId,
            ),
            (format!("a.b/s/{ID}#{SECRET}"), UrlError::MissingScheme),
            (
                format!("ftp://a.b/s/{ID}#{SECRET}"),
                UrlError::UnsupportedScheme("ftp".into()),
            ),
            (format!("https:///s/{ID}#{SECRET}"), UrlError::MissingHost),
            (
                format!("https://:443/s/{ID}#{SECRET}"),
                UrlError::MissingHost,
            ),
            (
                format!("https://user:pw@a.b/s/{ID}#{SECRET}"),
                UrlError::HasUserinfo,
            ),
            (format!("https://a.b:0/s/{ID}#{SECRET}"), UrlError::BadPort),
            (
                format!("https://a.b:99999/s/{ID}#{SECRET}"),
                UrlError::BadPort,
            ),
            (format!("https://a.b:x/s/{ID}#{SECRET}"), UrlError::BadPort),
            (format!("https://a.b:/s/{ID}#{SECRET}"), UrlError::BadPort),
        ];
        for (text, expected) in cases {
            let got = Link::parse(&text).err();
            assert_eq!(got.as_ref(), Some(&expected), "{text}");
            // No error message repeats the secret.
            assert!(!expected.to_string().contains(&SECRET[..16]));
        }
        assert!(matches!(
            Link::parse(&format!("https://a b/s/{ID}#{SECRET}")),
            Err(UrlError::Malformed(_))
        ));
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            BaseUrl::parse("https://Files.example.com/")
                .unwrap()
                .as_str(),
            "https://files.example.com"
        );
        assert_eq!(
            BaseUrl::parse("http://127.0.0.1:8080/kinko//")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8080/kinko"
        );
        assert!(BaseUrl::parse("https://a.b").unwrap().is_https());
        assert!(!BaseUrl::parse("http://a.b").unwrap().is_https());
        assert_eq!(
            BaseUrl::parse("HTTP://[::1]:8750/x").unwrap().authority(),
            "[::1]:8750"
        );
        assert_eq!(BaseUrl::parse("https://a.b").unwrap().authority(), "a.b");
        assert_eq!(BaseUrl::parse("https://a.b/#x"), Err(UrlError::HasFragment));
        assert_eq!(BaseUrl::parse("https://a.b/?x"), Err(UrlError::HasQuery));
        assert_eq!(BaseUrl::parse("a.b:8080"), Err(UrlError::MissingScheme));
        assert_eq!(BaseUrl::parse(""), Err(UrlError::MissingScheme));
        assert_eq!(BaseUrl::parse("https://u@a.b"), Err(UrlError::HasUserinfo));
    }

    #[test]
    fn loopback_is_localhost_127_and_ipv6_one() {
        for local in [
            "http://127.0.0.1:8750",
            "http://127.1.2.3",
            "http://localhost:8750/prefix",
            "http://LOCALHOST",
            "http://[::1]:8750",
            "https://[::1]",
            "http://[::ffff:127.0.0.1]:8750",
            "http://[::FFFF:7f00:2]",
        ] {
            assert!(BaseUrl::parse(local).unwrap().is_loopback(), "{local}");
        }
        for remote in [
            "http://192.0.2.1:9",
            "http://files.example.com",
            "http://localhost.example.com",
            "http://[2001:db8::1]:80",
            "http://10.0.0.1/127.0.0.1",
            "http://128.0.0.1",
            "http://[::ffff:192.0.2.1]",
            "http://[::127.0.0.1]",
            "http://app.localhost:8750",
        ] {
            assert!(!BaseUrl::parse(remote).unwrap().is_loopback(), "{remote}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let l = Link::parse(&link("https://a.b")).unwrap();
        let debug = format!("{l:?}");
        assert!(debug.contains(ID), "{debug}");
        assert!(debug.contains("LinkSecret(..)"), "{debug}");
        assert!(!debug.contains(&SECRET[..8]), "{debug}");
        let clone = l.clone();
        assert_eq!(
            clone.expose_secret().expose_secret(),
            l.expose_secret().expose_secret()
        );
    }
}
