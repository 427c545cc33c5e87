//! How values are put into URLs and headers.
//!
//! Query values (a file's name) and the `Kinko-Password` header are percent-encoded UTF-8:
//! every byte except the unreserved characters of RFC 3986 (`A–Z a–z 0–9 - . _ ~`) becomes
//! `%XX`. A decoder that knows `%XX` gets back exactly the bytes, whatever the text holds
//! (spaces, `%`, `+`, `&`, non-ASCII, control characters).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// Everything but RFC 3986's unreserved characters.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` for a query value.
pub(crate) fn component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// The `Kinko-Password` header value for `password`, in a buffer wiped on drop.
pub fn password_header(password: &SecretString) -> Zeroizing<String> {
    let pw = password.expose_secret();
    // At most three bytes out per byte in: sized up front so the buffer never reallocates
    // and leaves a copy of the password behind.
    let mut out = Zeroizing::new(String::with_capacity(pw.len() * 3));
    for piece in utf8_percent_encode(pw, COMPONENT) {
        out.push_str(piece);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Vec<u8> {
        percent_encoding::percent_decode_str(s).collect()
    }

    #[test]
    fn password_header_is_percent_encoded_utf8() {
        for (pw, expected) in [
            ("correct horse", "correct%20horse"),
            ("a%b+c&d=e", "a%25b%2Bc%26d%3De"),
            ("pässwörd", "p%C3%A4ssw%C3%B6rd"),
            ("日本", "%E6%97%A5%E6%9C%AC"),
            ("line\r\nbreak", "line%0D%0Abreak"),
            ("-._~AZaz09", "-._~AZaz09"),
            ("", ""),
        ] {
            let header = password_header(&SecretString::from(pw));
            assert_eq!(header.as_str(), expected, "{pw:?}");
            assert_eq!(decode(&header), pw.as_bytes());
            // Always a valid header value: visible ASCII only.
            assert!(header.bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn query_components_round_trip() {
        for name in [
            "plan.pdf",
            "Q3 report (final).pdf",
            "a&b=c?d#e/f",
            "résumé.txt",
        ] {
            let enc = component(name);
            assert!(!enc.contains(['&', '=', '?', '#', '/', ' ']), "{enc}");
            assert_eq!(decode(&enc), name.as_bytes());
        }
    }
}
