//! `kinko inspect`: what an envelope's header says, without any key.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, ValueHint};
use kinko_core::envelope::{Header, Stanza, StanzaKind, Suite, VERSION};

use super::error::CliError;
use super::io::InputArg;

const AFTER_HELP: &str = "\
Shows the public part of an envelope: format version, payload suite, chunk size, each
stanza's kind (with the key id of a symmetric-key stanza and the Argon2id parameters of a
passphrase stanza), and the lengths of header and payload with the plaintext length they imply.
Nothing is decrypted and no key is needed; the file name and other metadata stay encrypted.

The header MAC and the chunks are not checked (that needs a key: use kinko open). A payload
whose length no envelope can have is reported as inconsistent (truncated or extended); the
exit code is still 0 once the header parsed.

Examples:
  kinko inspect report.pdf.kinko
  kinko inspect --json report.pdf.kinko | jq .plaintext_len
  curl -s https://example.invalid/f | kinko inspect -";

/// Raw arguments of `kinko inspect`.
#[derive(Debug, Args)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct InspectArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,

    /// The envelope ("-" for stdin).
    #[arg(value_name = "FILE", value_hint = ValueHint::FilePath)]
    file: PathBuf,
}

/// A validated `kinko inspect`.
#[derive(Debug)]
pub(crate) struct InspectConfig {
    json: bool,
    input: InputArg,
}

impl InspectArgs {
    /// Nothing to check beyond what clap did.
    pub(crate) fn validate(self) -> Result<InspectConfig, CliError> {
        Ok(InspectConfig {
            json: self.json,
            input: InputArg::from_arg(Some(self.file)),
        })
    }
}

/// What `inspect` found.
#[derive(Debug)]
pub(crate) struct Report {
    name: String,
    header: Header,
    payload_len: u64,
}

impl Report {
    fn plaintext_len(&self) -> Option<u64> {
        self.header.plaintext_len(self.payload_len)
    }

    fn chunks(&self, plaintext_len: u64) -> u64 {
        plaintext_len
            .div_ceil(self.header.chunk_size() as u64)
            .max(1)
    }

    /// The human-readable report.
    pub(crate) fn to_text(&self) -> String {
        let h = &self.header;
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "file:        {}", self.name);
        let _ = writeln!(s, "version:     {VERSION}");
        let _ = writeln!(s, "suite:       {}", h.suite());
        let _ = writeln!(s, "chunk size:  {} bytes", h.chunk_size());
        let _ = writeln!(s, "stanzas:     {}", h.stanzas().len());
        for (i, stanza) in h.stanzas().iter().enumerate() {
            let _ = writeln!(s, "  {}. {}", i + 1, stanza_text(stanza));
        }
        let _ = writeln!(s, "metadata:    {} bytes (encrypted)", h.metadata_len());
        let _ = writeln!(s, "header:      {} bytes", h.len());
        let _ = writeln!(s, "payload:     {} bytes", self.payload_len);
        match self.plaintext_len() {
            Some(n) => {
                let chunks = self.chunks(n);
                let plural = if chunks == 1 { "" } else { "s" };
                let _ = writeln!(s, "plaintext:   {n} bytes in {chunks} chunk{plural}");
            }
            None => {
                let _ = writeln!(
                    s,
                    "plaintext:   unknown: the payload length is inconsistent (the file is \
                     truncated or has bytes appended)"
                );
            }
        }
        s
    }

    /// The JSON report (one object, keys in a fixed order).
    pub(crate) fn to_json(&self) -> String {
        let h = &self.header;
        let mut s = String::from("{");
        let _ = write!(s, "\"file\":{}", json_string(&self.name));
        let _ = write!(s, ",\"version\":{VERSION}");
        let _ = write!(s, ",\"suite\":{}", json_string(suite_id(h.suite())));
        let _ = write!(s, ",\"chunk_size\":{}", h.chunk_size());
        s.push_str(",\"stanzas\":[");
        for (i, stanza) in h.stanzas().iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "{{\"kind\":{}", json_string(&stanza.kind().to_string()));
            if let Some(id) = stanza.key_id() {
                let _ = write!(s, ",\"key_id\":\"{id}\"");
            }
            if let Some(p) = stanza.argon2_params() {
                let _ = write!(
                    s,
                    ",\"argon2id\":{{\"m_cost_kib\":{},\"t_cost\":{},\"p_cost\":{},\
                     \"within_bounds\":{}}}",
                    p.m_cost,
                    p.t_cost,
                    p.p_cost,
                    p.within_bounds()
                );
            }
            s.push('}');
        }
        s.push(']');
        let _ = write!(s, ",\"metadata_len\":{}", h.metadata_len());
        let _ = write!(s, ",\"header_len\":{}", h.len());
        let _ = write!(s, ",\"payload_len\":{}", self.payload_len);
        match self.plaintext_len() {
            Some(n) => {
                let _ = write!(
                    s,
                    ",\"plaintext_len\":{n},\"chunks\":{},\"consistent\":true",
                    self.chunks(n)
                );
            }
            None => s.push_str(",\"plaintext_len\":null,\"chunks\":null,\"consistent\":false"),
        }
        s.push_str("}\n");
        s
    }
}

fn suite_id(suite: Suite) -> &'static str {
    match suite {
        Suite::Aes256Gcm => "aes-256-gcm",
        Suite::ChaCha20Poly1305 => "chacha20-poly1305",
    }
}

fn stanza_text(stanza: &Stanza) -> String {
    match stanza.kind() {
        StanzaKind::Symmetric => match stanza.key_id() {
            Some(id) => format!("symmetric-key  key id {id}"),
            None => "symmetric-key".into(),
        },
        StanzaKind::Passphrase => match stanza.argon2_params() {
            Some(p) => format!(
                "passphrase     Argon2id m={} KiB, t={}, p={}{}",
                p.m_cost,
                p.t_cost,
                p.p_cost,
                if p.within_bounds() {
                    ""
                } else {
                    " (out of bounds: will be refused)"
                }
            ),
            None => "passphrase".into(),
        },
        StanzaKind::X25519 => "x25519".into(),
        other => format!(
            "{other}  ({} bytes, not understood by this build)",
            stanza.body().len()
        ),
    }
}

/// A JSON string literal for `s`.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Reads the header and measures the payload.
///
/// # Errors
///
/// [`CliError::Open`] if the header does not parse; read errors.
pub(crate) fn inspect(input: &InputArg) -> Result<Report, CliError> {
    let name = input.display_name();
    let (mut reader, meta) = input.open()?;
    let header = Header::read(&mut reader).map_err(|source| CliError::Open {
        input: name.clone(),
        source,
    })?;
    let payload_len = match meta {
        Some(meta) => meta.len().saturating_sub(header.len() as u64),
        // Not a regular file: count what is left.
        None => io::copy(&mut reader, &mut io::sink()).map_err(|source| CliError::Read {
            path: name.clone().into(),
            source,
        })?,
    };
    Ok(Report {
        name,
        header,
        payload_len,
    })
}

/// Prints the report.
///
/// # Errors
///
/// As [`inspect`], and write errors on stdout.
pub(crate) fn run(config: InspectConfig) -> Result<(), CliError> {
    let report = inspect(&config.input)?;
    let text = if config.json {
        report.to_json()
    } else {
        report.to_text()
    };
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| CliError::Write {
            path: "<stdout>".into(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn inconsistent_payload_is_reported() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../core/tests/vectors/x25519_two_recipients_aes.kinko"
        );
        let mut report = inspect(&InputArg::File(path.into())).unwrap();
        assert_eq!(report.plaintext_len(), Some(10_000));
        // One full encrypted chunk (4096 + 16), then 10 bytes: too short for a tag.
        report.payload_len = 4112 + 10;
        assert!(report.to_text().contains("inconsistent"));
        assert!(report.to_json().contains("\"consistent\":false"));
    }
}
