//! Sealing, opening and inspecting envelopes: files by path (streaming) and byte buffers.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use kinko_core::envelope::{
    self as core, DEFAULT_CHUNK_SIZE, Header, Keyring, Metadata, OpenError, Opener, Recipients,
    SealError, Sealer, StanzaKind as CoreStanzaKind, Suite as CoreSuite,
};

use crate::output::AtomicOutput;
use crate::progress::{CancelToken, ProgressListener, Watch, Watched};
use crate::{Identity, KinkoError, Recipient, Secret};

/// Who may open a new file: any number of X25519 recipients and at most one passphrase.
#[derive(Debug, Clone, uniffi::Record)]
pub struct SealTo {
    /// The recipients (`age1…` public keys).
    #[uniffi(default)]
    pub recipients: Vec<Arc<Recipient>>,
    /// A passphrase that also opens the file (Argon2id, 64 MiB, 3 passes).
    #[uniffi(default = None)]
    pub passphrase: Option<Arc<Secret>>,
}

impl SealTo {
    fn to_core(&self) -> Result<Recipients, KinkoError> {
        let mut recipients = Recipients::new();
        for r in &self.recipients {
            recipients = recipients.x25519(r.inner);
        }
        if let Some(p) = &self.passphrase {
            if p.is_empty() {
                return Err(KinkoError::invalid_argument("the passphrase is empty"));
            }
            recipients = recipients.passphrase(p.to_secret_string());
        }
        if recipients.is_empty() {
            return Err(KinkoError::NoRecipients);
        }
        Ok(recipients)
    }
}

/// What to open a file with: identities and/or a passphrase. The file opens if any of them
/// matches.
#[derive(Debug, Clone, uniffi::Record)]
pub struct OpenWith {
    /// X25519 identities (secret keys).
    #[uniffi(default)]
    pub identities: Vec<Arc<Identity>>,
    /// The passphrase, for files sealed with one.
    #[uniffi(default = None)]
    pub passphrase: Option<Arc<Secret>>,
}

impl OpenWith {
    pub(crate) fn to_keyring(&self) -> Keyring {
        let mut keyring =
            Keyring::new().identities(self.identities.iter().map(|i| i.inner.clone()));
        if let Some(p) = &self.passphrase {
            keyring = keyring.passphrase(p.to_secret_string());
        }
        keyring
    }
}

/// The AEAD that seals the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum Suite {
    /// AES-256-GCM: fast where the CPU has AES instructions.
    Aes256Gcm,
    /// ChaCha20-Poly1305: fast and constant time in software.
    Chacha20Poly1305,
}

impl From<Suite> for CoreSuite {
    fn from(s: Suite) -> Self {
        match s {
            Suite::Aes256Gcm => CoreSuite::Aes256Gcm,
            Suite::Chacha20Poly1305 => CoreSuite::ChaCha20Poly1305,
        }
    }
}

impl From<CoreSuite> for Suite {
    fn from(s: CoreSuite) -> Self {
        match s {
            CoreSuite::Aes256Gcm => Suite::Aes256Gcm,
            CoreSuite::ChaCha20Poly1305 => Suite::Chacha20Poly1305,
        }
    }
}

/// How to seal. Every field is optional.
#[derive(Debug, Clone, Default, uniffi::Record)]
pub struct SealOptions {
    /// Payload suite. Default: AES-256-GCM where the CPU accelerates AES, else
    /// ChaCha20-Poly1305.
    #[uniffi(default = None)]
    pub suite: Option<Suite>,
    /// Plaintext bytes per chunk: a power of two from 4096 to 4194304. Default 65536.
    #[uniffi(default = None)]
    pub chunk_size: Option<u32>,
    /// File name recorded (encrypted) in the envelope. Default: the input file's name when
    /// sealing a file, none for a buffer.
    #[uniffi(default = None)]
    pub name: Option<String>,
    /// MIME content type recorded (encrypted) in the envelope. Default: none.
    #[uniffi(default = None)]
    pub content_type: Option<String>,
}

impl SealOptions {
    fn to_core(&self, mut metadata: Metadata) -> core::SealOptions {
        if let Some(name) = &self.name {
            metadata.name = name.clone();
        }
        if let Some(ct) = &self.content_type {
            metadata.content_type = ct.clone();
        }
        core::SealOptions {
            suite: self
                .suite
                .map_or_else(CoreSuite::preferred, CoreSuite::from),
            chunk_size: self
                .chunk_size
                .map_or(DEFAULT_CHUNK_SIZE, |c| usize::try_from(c).unwrap_or(0)),
            metadata,
        }
    }
}

/// What sealing wrote.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Sealed {
    /// Plaintext bytes sealed.
    pub plaintext_len: u64,
    /// Bytes of the envelope written (header and payload).
    pub envelope_len: u64,
}

/// What an opened file's envelope says about it (decrypted; only key holders see it).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FileInfo {
    /// File name given when it was sealed (no directories), or empty.
    pub name: String,
    /// MIME content type, or empty.
    pub content_type: String,
    /// Plaintext length in bytes (verified).
    pub size: u64,
    /// Modification time of the original, seconds since the Unix epoch, if recorded.
    pub modified: Option<i64>,
}

impl FileInfo {
    fn new(metadata: &Metadata, size: u64) -> Self {
        FileInfo {
            name: metadata.name.clone(),
            content_type: metadata.content_type.clone(),
            size,
            modified: metadata.modified,
        }
    }
}

/// The plaintext of an envelope opened in memory, and what its envelope says about it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct Opened {
    /// The plaintext.
    pub data: Vec<u8>,
    /// Name, content type, size and modification time.
    pub info: FileInfo,
}

/// Seals the file at `input` into an envelope at `output`, streaming: memory stays flat
/// for any file size. The file's name, size and modification time are recorded, encrypted,
/// in the envelope.
///
/// The envelope is written to a temporary file beside `output` and renamed over it only
/// once complete: on any error or cancellation `output` is not created (and an existing
/// `output` is left as it was).
///
/// `progress` is told about the plaintext bytes read ([`ProgressListener`]); `cancel` stops
/// the operation from another thread.
///
/// # Errors
///
/// [`KinkoError::NoRecipients`], [`KinkoError::InvalidArgument`] (bad options, `output` is
/// `input` or a directory), [`KinkoError::InvalidKey`] (a low-order recipient key), [`KinkoError::Io`],
/// [`KinkoError::SizeMismatch`] (the input changed size while it was read),
/// [`KinkoError::Cancelled`], [`KinkoError::CallbackFailed`].
// A bare `options` (the type's default) must come last: uniffi 0.32 parses it only there.
#[uniffi::export(default(progress = None, cancel = None, options))]
pub fn seal_file(
    input: String,
    output: String,
    to: SealTo,
    options: SealOptions,
    progress: Option<Arc<dyn ProgressListener>>,
    cancel: Option<Arc<CancelToken>>,
) -> Result<Sealed, KinkoError> {
    let recipients = to.to_core()?;
    let read_err = |e: &io::Error| KinkoError::io("read", &input, e);
    let file = File::open(&input).map_err(|e| read_err(&e))?;
    let meta = file.metadata().map_err(|e| read_err(&e))?;
    check_distinct(&input, &output)?;

    let mut metadata = Metadata::default();
    if let Some(name) = Path::new(&input).file_name() {
        metadata.name = name.to_string_lossy().into_owned();
    }
    let size = meta.is_file().then_some(meta.len());
    if size.is_some() {
        metadata.size = size;
        metadata.modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok());
    }
    let options = options.to_core(metadata);

    let mut input_reader = Watched::new(
        file,
        Watch {
            listener: progress,
            cancel,
        },
        size,
    );
    input_reader.check(true)?;
    let out = AtomicOutput::new(&output)?;
    let write_err = |e: SealError| match e {
        SealError::Io(e) => KinkoError::io("write", &output, &e),
        other => other.into(),
    };
    let mut sealer = Sealer::new(out, &recipients, options).map_err(write_err)?;
    // The recipients (and the passphrase in them) are no longer needed.
    drop(recipients);
    if let Err(e) = sealer.copy_from(&mut input_reader) {
        return Err(match input_reader.take_stop() {
            Some(stop) => stop,
            None if input_reader.failed() => read_err(&e),
            None => KinkoError::io("write", &output, &e),
        });
    }
    let plaintext_len = sealer.bytes_written();
    let out = sealer.finish().map_err(write_err)?;
    // A cancellation that came in after the last read still counts: nothing is published.
    input_reader.check(false)?;
    let envelope_len = out.written();
    out.commit()?;
    Ok(Sealed {
        plaintext_len,
        envelope_len,
    })
}

/// Opens the envelope at `input` into `output`, streaming: memory stays flat for any file
/// size. Every chunk is authenticated before its plaintext is written.
///
/// The plaintext goes to a temporary file beside `output` (mode 0600), renamed over `output`
/// only once the whole envelope has verified: a damaged, truncated or cancelled file leaves
/// no partial plaintext behind and an existing `output` untouched. `output` is not created
/// at all unless the header verified.
///
/// `progress` is told about the envelope bytes read ([`ProgressListener`]); `cancel` stops
/// the operation from another thread.
///
/// # Errors
///
/// [`KinkoError::NoIdentityMatches`] when the file was sealed to someone else, and every
/// envelope error: [`KinkoError::NotAnEnvelope`], [`KinkoError::UnsupportedVersion`],
/// [`KinkoError::HeaderAuthFailed`], [`KinkoError::ChunkAuthFailed`],
/// [`KinkoError::Truncated`], [`KinkoError::TrailingData`]...; [`KinkoError::Io`],
/// [`KinkoError::InvalidArgument`] (`output` is `input` or a directory),
/// [`KinkoError::Cancelled`],
/// [`KinkoError::CallbackFailed`].
#[uniffi::export(default(progress = None, cancel = None))]
pub fn open_file(
    input: String,
    output: String,
    keys: OpenWith,
    progress: Option<Arc<dyn ProgressListener>>,
    cancel: Option<Arc<CancelToken>>,
) -> Result<FileInfo, KinkoError> {
    let read_err = |e: &io::Error| KinkoError::io("read", &input, e);
    let file = File::open(&input).map_err(|e| read_err(&e))?;
    let meta = file.metadata().map_err(|e| read_err(&e))?;
    check_distinct(&input, &output)?;
    let size = meta.is_file().then_some(meta.len());

    let mut input_reader = Watched::new(
        file,
        Watch {
            listener: progress,
            cancel,
        },
        size,
    );
    input_reader.check(true)?;
    open_stream(&mut input_reader, &input, &output, &keys.to_keyring())
}

/// Opens the envelope read from `input` into a temporary file published at `output` on
/// success. `input_name` names the input in error messages.
pub(crate) fn open_stream<R: Read>(
    input: &mut Watched<R>,
    input_name: &str,
    output: &str,
    keyring: &Keyring,
) -> Result<FileInfo, KinkoError> {
    let fail = |input: &mut Watched<R>, e: OpenError| match (e, input.take_stop()) {
        (_, Some(stop)) => stop,
        (OpenError::Io(e), None) if input.failed() => KinkoError::io("read", input_name, &e),
        (OpenError::Io(e), None) => KinkoError::io("write", output, &e),
        (other, None) => other.into(),
    };
    // The header first: nothing is created for a file that is not ours to open.
    let header = Header::read(input).map_err(|e| fail(input, e))?;
    let dek = header.unwrap_key(keyring).map_err(|e| fail(input, e))?;
    let mut opener = match Opener::from_parts(header, dek, &mut *input) {
        Ok(opener) => opener,
        Err(e) => return Err(fail(input, e)),
    };
    let mut out = AtomicOutput::new(output)?;
    let result = opener.copy_to(&mut out);
    let metadata = opener.metadata().clone();
    drop(opener);
    let size = result.map_err(|e| fail(input, e))?;
    input.check(false)?;
    out.commit()?;
    Ok(FileInfo::new(&metadata, size))
}

/// Seals `data` in memory and returns the envelope. For small data (a note, a key, a
/// message): the plaintext and the envelope are both held whole. Use [`seal_file`] for
/// files.
///
/// # Errors
///
/// [`KinkoError::NoRecipients`], [`KinkoError::InvalidArgument`], [`KinkoError::InvalidKey`]
/// (a low-order recipient key).
#[uniffi::export(default(options))]
pub fn seal_bytes(data: Vec<u8>, to: SealTo, options: SealOptions) -> Result<Vec<u8>, KinkoError> {
    let recipients = to.to_core()?;
    let metadata = Metadata {
        size: Some(data.len() as u64),
        ..Metadata::default()
    };
    let options = options.to_core(metadata);
    let mut out = Vec::with_capacity(data.len() + data.len() / 64 + 4096);
    core::seal(&data[..], &mut out, &recipients, options)?;
    Ok(out)
}

/// Opens an envelope held in memory and returns its plaintext. For small data; use
/// [`open_file`] for files. Nothing is returned unless the whole envelope verified.
///
/// # Errors
///
/// As [`open_file`], without the file and cancellation errors.
#[uniffi::export]
pub fn open_bytes(envelope: Vec<u8>, keys: OpenWith) -> Result<Opened, KinkoError> {
    let mut data = Vec::new();
    let (metadata, size) = core::open(&envelope[..], &mut data, &keys.to_keyring())?;
    Ok(Opened {
        data,
        info: FileInfo::new(&metadata, size),
    })
}

/// The kind of a stanza (one way to open the file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum StanzaKind {
    /// Sealed to an X25519 recipient.
    X25519,
    /// Sealed with a passphrase (Argon2id).
    Passphrase,
    /// Sealed to a symmetric key (a server's master key or a link secret).
    Symmetric,
    /// A kind this build does not know.
    Unknown {
        /// The kind byte.
        kind: u8,
    },
}

/// Argon2id parameters of a passphrase stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Argon2Params {
    /// Memory cost in KiB.
    pub m_cost_kib: u32,
    /// Number of passes.
    pub t_cost: u32,
    /// Degree of parallelism.
    pub p_cost: u32,
    /// Whether every opener accepts these parameters (if not, opening is refused).
    pub within_bounds: bool,
}

/// One stanza of a header, as far as it is public.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct StanzaInfo {
    /// The kind.
    pub kind: StanzaKind,
    /// The key id (32 hex digits) of a symmetric-key stanza.
    pub key_id: Option<String>,
    /// The Argon2id parameters of a passphrase stanza.
    pub argon2: Option<Argon2Params>,
}

/// The public part of an envelope (no key needed; name and other metadata stay encrypted).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct EnvelopeInfo {
    /// Format version.
    pub version: u8,
    /// Payload suite.
    pub suite: Suite,
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// The stanzas, in header order.
    pub stanzas: Vec<StanzaInfo>,
    /// Length of the encrypted metadata field.
    pub metadata_len: u32,
    /// Length of the header in bytes.
    pub header_len: u64,
    /// Length of the payload in bytes.
    pub payload_len: u64,
    /// Plaintext length the payload length implies; `None` if no envelope can have this
    /// payload length (the file is truncated or has bytes appended). Neither the header MAC
    /// nor the chunks are checked: that needs a key.
    pub plaintext_len: Option<u64>,
    /// Number of chunks, when `plaintext_len` is known.
    pub chunks: Option<u64>,
}

impl EnvelopeInfo {
    fn new(header: &Header, payload_len: u64) -> Self {
        let plaintext_len = header.plaintext_len(payload_len);
        let stanzas = header
            .stanzas()
            .iter()
            .map(|s| StanzaInfo {
                kind: match s.kind() {
                    CoreStanzaKind::X25519 => StanzaKind::X25519,
                    CoreStanzaKind::Passphrase => StanzaKind::Passphrase,
                    CoreStanzaKind::Symmetric => StanzaKind::Symmetric,
                    CoreStanzaKind::Unknown(kind) => StanzaKind::Unknown { kind },
                },
                key_id: s.key_id().map(|id| id.to_string()),
                argon2: s.argon2_params().map(|p| Argon2Params {
                    m_cost_kib: p.m_cost,
                    t_cost: p.t_cost,
                    p_cost: p.p_cost,
                    within_bounds: p.within_bounds(),
                }),
            })
            .collect();
        EnvelopeInfo {
            version: core::VERSION,
            suite: header.suite().into(),
            // At most 4 MiB (MAX_CHUNK_EXPONENT) and 64 KiB (MAX_METADATA_BYTES).
            chunk_size: u32::try_from(header.chunk_size()).unwrap_or(u32::MAX),
            stanzas,
            metadata_len: u32::try_from(header.metadata_len()).unwrap_or(u32::MAX),
            header_len: header.len() as u64,
            payload_len,
            plaintext_len,
            chunks: plaintext_len.map(|n| n.div_ceil(header.chunk_size() as u64).max(1)),
        }
    }
}

/// Reads the header of the envelope at `path` and measures its payload, without any key.
///
/// # Errors
///
/// [`KinkoError::Io`]; [`KinkoError::NotAnEnvelope`], [`KinkoError::UnsupportedVersion`],
/// [`KinkoError::MalformedHeader`], [`KinkoError::TruncatedHeader`]... if the header does
/// not parse.
#[uniffi::export]
pub fn inspect_file(path: String) -> Result<EnvelopeInfo, KinkoError> {
    let read_err = |e: &io::Error| KinkoError::io("read", &path, e);
    let mut file = File::open(&path).map_err(|e| read_err(&e))?;
    let meta = file.metadata().map_err(|e| read_err(&e))?;
    let header = Header::read(&mut file).map_err(|e| match e {
        OpenError::Io(e) => read_err(&e),
        other => other.into(),
    })?;
    let payload_len = if meta.is_file() {
        meta.len().saturating_sub(header.len() as u64)
    } else {
        io::copy(&mut file, &mut io::sink()).map_err(|e| read_err(&e))?
    };
    Ok(EnvelopeInfo::new(&header, payload_len))
}

/// Reads the header of an envelope held in memory, without any key.
///
/// # Errors
///
/// As [`inspect_file`], without the I/O errors.
#[uniffi::export]
pub fn inspect_bytes(envelope: Vec<u8>) -> Result<EnvelopeInfo, KinkoError> {
    let mut reader = &envelope[..];
    let header = Header::read(&mut reader)?;
    Ok(EnvelopeInfo::new(&header, reader.len() as u64))
}

/// Refuses an output that is the input file (it would be replaced by the result).
fn check_distinct(input: &str, output: &str) -> Result<(), KinkoError> {
    if let (Ok(i), Ok(o)) = (fs::canonicalize(input), fs::canonicalize(output))
        && i == o
    {
        return Err(KinkoError::invalid_argument(format!(
            "the output {output} is the input file"
        )));
    }
    Ok(())
}
