//! Bridges between the vault's blocking `Read`/`Write` world and hyper's async bodies, with
//! bounded channels so memory stays flat at any file size.
//!
//! - Downloads: a blocking task reads the decrypting opener in 256 KiB pieces into a channel
//!   of [`PIPE_DEPTH`] pieces; the response body drains it. A slow client fills the channel
//!   and the reader waits: at most `PIPE_DEPTH × 256 KiB` (2 MiB) per transfer is buffered.
//! - Uploads: the handler copies body frames into 256 KiB pieces and forwards them into a
//!   channel that a blocking [`ChannelReader`] feeds to the sealer. Size limit and idle timeout
//!   are enforced on the async side, which aborts the upload by sending an error into the
//!   reader: the sealer fails, the temporary blob is dropped, and nothing is stored.
//!
//! Pieces come from a per-transfer [`Pool`] and go back to it when the other side drops them,
//! so a long transfer cycles through a few allocations. Without it, every piece was a fresh
//! allocation that glibc handed back to the kernel and faulted in again (50–110 thousand page
//! faults per GiB uploaded); and an upload that held on to hyper's frames made hyper allocate
//! a new read buffer instead of reusing its own.

use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Buf, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use kinko_core::vault::PlainRead;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::metrics::Metrics;

/// Pieces in flight per transfer.
pub(crate) const PIPE_DEPTH: usize = 8;
/// Size of one download piece. Each piece is a hand-off between threads (the reader, the
/// connection's task): with 64 KiB pieces a 1 GiB download over loopback cost the server
/// 730 ms of CPU and ran at 1,800 MB/s; with 256 KiB pieces, 550 ms and 2,250 MB/s.
pub(crate) const PIECE: usize = 256 * 1024;
/// Size of one upload piece: larger, so the sealer's thread is woken a quarter as often.
const UPLOAD_PIECE: usize = 256 * 1024;

/// A transfer's piece buffers: a buffer handed out as a [`Bytes`] comes back here when the
/// last reference to it drops, on whichever thread that is.
#[derive(Debug)]
pub(crate) struct Pool {
    home: std::sync::mpsc::Sender<Vec<u8>>,
    back: std::sync::mpsc::Receiver<Vec<u8>>,
    piece: usize,
}

/// A pooled buffer lent out as [`Bytes`].
struct Lent {
    buf: Vec<u8>,
    home: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        // The pool may be gone (the transfer ended); then the buffer is simply freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

impl Pool {
    /// A pool of buffers of `piece` bytes.
    pub(crate) fn new(piece: usize) -> Self {
        let (home, back) = std::sync::mpsc::channel();
        Pool { home, back, piece }
    }

    /// A returned buffer, with whatever length it came back with, or a new empty one with room
    /// for a piece.
    pub(crate) fn take(&self) -> Vec<u8> {
        self.back
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.piece))
    }

    /// Lends `buf` out; it comes back when the returned bytes are dropped.
    pub(crate) fn lend(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Lent {
            buf,
            home: self.home.clone(),
        })
    }
}

/// A response body fed by a channel.
#[derive(Debug)]
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    remaining: Option<u64>,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some(r) = &mut self.remaining {
                    *r = r.saturating_sub(b.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Answers of at most this many bytes are read whole in the vault task that opened them, and
/// go out as one buffer: no reader thread, no channel.
pub(crate) const INLINE_MAX: u64 = 64 * 1024;

/// The bytes of a download: read already (small), or a reader to stream from.
#[derive(Debug)]
pub(crate) enum Source {
    /// Read and authenticated, with the time reading took.
    Inline(Bytes, Duration),
    /// To be streamed by [`reader_body`].
    Reader(Box<dyn PlainRead>),
}

impl Source {
    /// Reads `len` bytes of `reader` now if that is at most [`INLINE_MAX`], else keeps the
    /// reader for streaming. Blocking.
    ///
    /// # Errors
    /// Reading failed, or ended before `len` bytes.
    pub(crate) fn read(mut reader: Box<dyn PlainRead>, len: u64) -> io::Result<Source> {
        if len > INLINE_MAX {
            return Ok(Source::Reader(reader));
        }
        let started = Instant::now();
        let mut buf = vec![0; usize::try_from(len).expect("at most INLINE_MAX")];
        reader.read_exact(&mut buf)?;
        Ok(Source::Inline(Bytes::from(buf), started.elapsed()))
    }

    /// The response body of these `len` bytes.
    pub(crate) fn into_body(self, len: u64, metrics: Arc<Metrics>) -> Body {
        match self {
            Source::Reader(r) => reader_body(Vec::new(), r, Some(len), metrics),
            Source::Inline(bytes, took) => {
                metrics.bytes_sent.fetch_add(len, Ordering::Relaxed);
                metrics.transfer("download", took);
                Body::from(bytes)
            }
        }
    }
}

/// Streams `prefix` then `len` bytes of `reader` (all of it with `None`) as a response body.
/// A read error ends the body early with an error, so hyper cuts the connection and the client
/// sees a truncated transfer, never unverified bytes.
pub(crate) fn reader_body<R>(
    prefix: Vec<u8>,
    mut reader: R,
    len: Option<u64>,
    metrics: Arc<Metrics>,
) -> Body
where
    R: Read + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(PIPE_DEPTH);
    let total = len.map(|n| n + prefix.len() as u64);
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        if !prefix.is_empty() && tx.blocking_send(Ok(Bytes::from(prefix))).is_err() {
            return;
        }
        let pool = Pool::new(PIECE);
        let mut left = len.unwrap_or(u64::MAX);
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(PIECE).min(PIECE);
            // A returned buffer keeps its length: only a longer piece zeroes the difference.
            let mut buf = pool.take();
            buf.resize(want, 0);
            let mut filled = 0;
            let res = loop {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        filled += n;
                        if filled == want {
                            break Ok(());
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            if let Err(e) = res {
                tracing::warn!(error = %e, "download stopped: reading the stored file failed");
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            left -= filled as u64;
            metrics
                .bytes_sent
                .fetch_add(filled as u64, Ordering::Relaxed);
            if tx.blocking_send(Ok(pool.lend(buf))).is_err() {
                return; // the client went away
            }
            if filled < want {
                break;
            }
        }
        metrics.transfer("download", started.elapsed());
    });
    channel_body(rx, total)
}

/// A response body that yields what arrives on `rx` (`len`: the exact total, when known).
pub(crate) fn channel_body(rx: mpsc::Receiver<io::Result<Bytes>>, len: Option<u64>) -> Body {
    Body::new(ChannelBody { rx, remaining: len })
}

/// The blocking side of an upload: reads what the handler forwards.
///
/// The body's end is an explicit marker (an empty piece), never the channel closing: a handler
/// that is dropped mid-body (a shutdown whose grace period ran out) closes the channel, and
/// that must fail the upload rather than store the part that arrived as if it were the file.
#[derive(Debug)]
pub(crate) struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
    ended: bool,
}

impl ChannelReader {
    fn new(rx: mpsc::Receiver<io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            current: Bytes::new(),
            ended: false,
        }
    }
}

/// The piece that marks the end of an upload's body.
const END_OF_BODY: Bytes = Bytes::new();

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(b)) if b.is_empty() => self.ended = true,
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the upload stopped before its body ended",
                    ));
                }
            }
        }
        let n = self.current.len().min(buf.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Forwards an upload body into a [`ChannelReader`] running `consume` on a blocking thread,
/// enforcing `max` bytes and `idle` between frames. Returns `consume`'s result, or the reason
/// the upload was aborted.
pub(crate) async fn feed_upload<T, F>(
    body: Body,
    max: u64,
    idle: Duration,
    metrics: &Metrics,
    consume: F,
) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&mut ChannelReader) -> T + Send + 'static,
{
    use http_body_util::BodyExt;

    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(PIPE_DEPTH);
    let task = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader::new(rx);
        consume(&mut reader)
    });
    let started = Instant::now();
    let mut body = body;
    let mut received: u64 = 0;
    let mut abort: Option<ApiError> = None;
    let pool = Pool::new(UPLOAD_PIECE);
    let mut filling: Vec<u8> = Vec::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                abort = Some(ApiError::timeout());
                break;
            }
            Ok(None) => {
                if !filling.is_empty() {
                    let _ = tx.send(Ok(pool.lend(filling))).await;
                }
                let _ = tx.send(Ok(END_OF_BODY)).await;
                break;
            }
            Ok(Some(Err(e))) => {
                abort = Some(if is_timeout(&e) {
                    ApiError::timeout()
                } else {
                    tracing::info!(error = %e, "upload aborted by the client");
                    ApiError::invalid("the upload was interrupted")
                });
                break;
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        received += data.len() as u64;
        if received > max {
            abort = Some(ApiError::too_large(max));
            break;
        }
        metrics
            .bytes_received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        // Copied out and dropped here, so hyper can reuse its read buffer for the next frame.
        let mut data: &[u8] = &data;
        let mut gone = false;
        while !data.is_empty() {
            if filling.capacity() == 0 {
                filling = pool.take();
                filling.clear();
            }
            let n = (UPLOAD_PIECE - filling.len()).min(data.len());
            filling.extend_from_slice(&data[..n]);
            data = &data[n..];
            if filling.len() == UPLOAD_PIECE {
                let piece = pool.lend(std::mem::take(&mut filling));
                if tx.send(Ok(piece)).await.is_err() {
                    gone = true;
                    break;
                }
            }
        }
        if gone {
            break; // the consumer stopped early (it failed); its error is the answer
        }
    }
    if abort.is_some() {
        let _ = tx.send(Err(io::Error::other("upload aborted"))).await;
    }
    drop(tx);
    let out = task.await.map_err(|e| {
        tracing::error!(error = %e, "upload task failed");
        ApiError::internal()
    })?;
    match abort {
        Some(a) => Err(a),
        None => {
            metrics.transfer("upload", started.elapsed());
            Ok(out)
        }
    }
}

/// Whether an error was caused by a socket timeout (the connection's idle timeout).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::TimedOut
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// One parsed `Range: bytes=…` header, resolved against the file size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeReq {
    /// No usable Range header (absent, several ranges, other units, a suffix of an empty
    /// file): the whole file.
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// Outside the file.
    Unsatisfiable,
}

/// Parses a single byte range (`a-b`, `a-`, `-n`). Anything else is ignored (RFC 9110 allows
/// a server to ignore Range).
pub(crate) fn parse_range(value: Option<&str>, size: u64) -> RangeReq {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return RangeReq::Full;
    };
    if spec.contains(',') {
        return RangeReq::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeReq::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let (start, end) = if a.is_empty() {
        // Suffix: the last n bytes.
        let Some(n) = parse(b) else {
            return RangeReq::Full;
        };
        if n == 0 {
            return RangeReq::Unsatisfiable;
        }
        if size == 0 {
            // Satisfiable (RFC 9110, 14.1.2: "a suffix-range with a non-zero suffix-length"
            // is, even of an empty representation), yet no Content-Range can name a byte of
            // it: the Range is ignored (14.2 allows that) and the empty file is sent whole.
            return RangeReq::Full;
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let Some(start) = parse(a) else {
            return RangeReq::Full;
        };
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            match parse(b) {
                Some(e) if e >= start => e.min(size.saturating_sub(1)),
                _ => return RangeReq::Full,
            }
        };
        if start >= size {
            return RangeReq::Unsatisfiable;
        }
        (start, end)
    };
    RangeReq::Part { start, end }
}

/// A file name as a partner sees and saves it (on the partner page, in the link's details and
/// in `Content-Disposition`): the characters that reorder text
/// ([`reorders_text`](crate::cli::human::reorders_text)) become `_`, since
/// `invoice\u{202E}fdp.exe` would otherwise show as `invoiceexe.pdf` while it stays an `.exe`.
pub(crate) fn partner_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if crate::cli::human::reorders_text(c) {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// `attachment; filename="ascii"; filename*=UTF-8''percent-encoded`, safe for any name, which
/// is saved as its [`partner_name`].
pub(crate) fn content_disposition(name: &str) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let name = partner_name(name);
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ascii = if ascii.trim().is_empty() {
        "download".to_owned()
    } else {
        ascii
    };
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(&name, NON_ALPHANUMERIC)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader_of(pieces: &[&'static [u8]], end: bool) -> ChannelReader {
        let (tx, rx) = mpsc::channel(pieces.len() + 1);
        for p in pieces {
            tx.try_send(Ok(Bytes::from_static(p))).unwrap();
        }
        if end {
            tx.try_send(Ok(END_OF_BODY)).unwrap();
        }
        ChannelReader::new(rx)
    }

    #[test]
    fn an_upload_ends_only_at_its_end_marker() {
        let mut all = Vec::new();
        reader_of(&[b"ab", b"c"], true)
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, b"abc");
        let mut part = Vec::new();
        let err = reader_of(&[b"ab", b"c"], false)
            .read_to_end(&mut part)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    /// A body that sends one frame, then nothing, ever.
    struct Stalls(Option<Bytes>);

    impl HttpBody for Stalls {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            match self.0.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Poll::Pending,
            }
        }
    }

    /// The shutdown case: the handler is dropped in the middle of the body. The sealer's
    /// reader must fail, not see the end of a (shorter) file.
    #[tokio::test]
    async fn an_upload_dropped_mid_body_fails_its_consumer() {
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let metrics = Metrics::default();
        let upload = feed_upload(
            Body::new(Stalls(Some(Bytes::from_static(b"the first part")))),
            1 << 20,
            Duration::from_secs(3600),
            &metrics,
            move |r: &mut ChannelReader| {
                let mut all = Vec::new();
                let _ = seen_tx.send(r.read_to_end(&mut all));
            },
        );
        // Runs until it waits for the next frame, then is dropped.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), upload)
                .await
                .is_err()
        );
        let seen = tokio::task::spawn_blocking(move || seen_rx.recv().unwrap())
            .await
            .unwrap();
        assert_eq!(seen.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn ranges() {
        use RangeReq::*;
        assert_eq!(parse_range(None, 10), Full);
        assert_eq!(
            parse_range(Some("bytes=0-0"), 10),
            Part { start: 0, end: 0 }
        );
        assert_eq!(parse_range(Some("bytes=2-"), 10), Part { start: 2, end: 9 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Part { start: 7, end: 9 });
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-100"), 10),
            Part { start: 5, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-1"), 0), Full);
        assert_eq!(parse_range(Some("bytes=-100"), 0), Full);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Full);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Full);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Full);
    }

    #[test]
    fn dispositions_never_break_the_header() {
        assert_eq!(
            content_disposition("plan.pdf"),
            "attachment; filename=\"plan.pdf\"; filename*=UTF-8''plan%2Epdf"
        );
        let d = content_disposition("a\"b\r\nc/é.txt");
        assert!(
            d.starts_with("attachment; filename=\"a_b__c/_.txt\";"),
            "{d}"
        );
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(content_disposition("").contains("filename=\"download\""));
        // A right-to-left override cannot disguise an extension in the saved name.
        let d = content_disposition("invoice\u{202E}fdp.exe");
        assert!(d.ends_with("filename*=UTF-8''invoice%5Ffdp%2Eexe"), "{d}");
        let d = content_disposition("\u{2067}x\u{2069}.txt");
        assert!(d.ends_with("filename*=UTF-8''%5Fx%5F%2Etxt"), "{d}");
        // So do the invisible directional marks (LRM, RLM, ALM).
        let d = content_disposition("1\u{200F}2\u{200E}3\u{061C}.txt");
        assert!(d.ends_with("filename*=UTF-8''1%5F2%5F3%5F%2Etxt"), "{d}");
        // Right-to-left text itself stays as it is.
        assert!(content_disposition("שלום.txt").contains("%D7%A9%D7%9C%D7%95%D7%9D%2Etxt"));
    }

    #[test]
    fn lent_buffers_come_back_to_their_pool() {
        let pool = Pool::new(PIECE);
        let mut buf = pool.take();
        assert!(buf.capacity() >= PIECE);
        buf.extend_from_slice(b"piece");
        let at = buf.as_ptr();
        let lent = pool.lend(buf);
        let part = lent.slice(1..3);
        drop(lent);
        assert_eq!(&part[..], b"ie");
        drop(part);
        let again = pool.take();
        assert_eq!(again.as_ptr(), at, "the same allocation is reused");
        assert_eq!(
            &again[..],
            b"piece",
            "a returned buffer keeps its contents and length"
        );
    }

    /// A request body made of the given frames.
    struct Frames(std::collections::VecDeque<Bytes>);

    impl HttpBody for Frames {
        type Data = Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[tokio::test]
    async fn uploads_arrive_whole_whatever_the_frame_sizes() {
        let sizes = [0, 1, 70_000, UPLOAD_PIECE - 1, 2, UPLOAD_PIECE, 300_000, 5];
        let mut all = Vec::new();
        let frames = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let frame: Vec<u8> = (0..n).map(|j| (i * 31 + j * 7) as u8).collect();
                all.extend_from_slice(&frame);
                Bytes::from(frame)
            })
            .collect();
        let metrics = Metrics::default();
        let got = feed_upload(
            Body::new(Frames(frames)),
            u64::MAX,
            Duration::from_secs(60),
            &metrics,
            |r| {
                let mut out = Vec::new();
                r.read_to_end(&mut out).map(|_| out)
            },
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(got.len(), all.len());
        assert!(got == all, "the bytes differ");
        assert_eq!(
            metrics.bytes_received.load(Ordering::Relaxed),
            all.len() as u64
        );
    }
}
