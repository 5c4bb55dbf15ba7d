//! The stdio side: newline framing with a line bound, and the one stdout writer.
//!
//! Only [`spawn_writer`]'s task ever touches stdout (S-STDOUT), so messages from many
//! concurrent requests never interleave. Its channel is bounded: a slow reader of our
//! stdout pushes back on the HTTP streams instead of growing memory.

use bytes::Bytes;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// What the reader produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One line without its terminator (`\n` or `\r\n`). Never empty.
    Line(Vec<u8>),
    /// A line longer than the bound; it was skipped without being buffered whole. `head`
    /// keeps its first bytes, where the request id usually is ([`crate::jsonrpc::id_from_prefix`]).
    TooLong { len: usize, head: Vec<u8> },
}

/// Reads newline-delimited frames with a length bound (S-FRAME).
///
/// Cancel-safe: the line being assembled lives in the reader, not in the `next` future,
/// so the proxy loop can select on `next` beside its other events and lose nothing when
/// another branch wins.
pub struct LineReader<R> {
    inner: R,
    max: usize,
    /// The line read so far.
    line: Vec<u8>,
    /// Bytes of an over-long line counted so far (0: within the bound).
    skipped: usize,
    /// The first bytes of an over-long line, to find its id.
    head: Vec<u8>,
}

impl<R: AsyncBufRead + Unpin> LineReader<R> {
    pub fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            max,
            line: Vec::new(),
            skipped: 0,
            head: Vec::new(),
        }
    }

    /// The next non-blank frame, or `None` at EOF. A final line without a newline is
    /// still returned.
    pub async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            let eof = self.read_line().await?;
            let mut line = std::mem::take(&mut self.line);
            if self.skipped > 0 {
                let len = std::mem::take(&mut self.skipped);
                let head = std::mem::take(&mut self.head);
                return Ok(Some(Frame::TooLong { len, head }));
            }
            if line.last() == Some(&b'\n') {
                line.pop();
            }
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > self.max {
                let len = line.len();
                line.truncate(HEAD);
                return Ok(Some(Frame::TooLong { len, head: line }));
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                if eof {
                    return Ok(None);
                }
                continue; // blank lines are ignored
            }
            return Ok(Some(Frame::Line(line)));
        }
    }

    /// Read up to and including the next newline into `self.line` (or count it, over the
    /// bound). Returns whether the input ended. Every await point leaves the state whole.
    async fn read_line(&mut self) -> std::io::Result<bool> {
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return Ok(true);
            }
            let (take, done) = match memchr::memchr(b'\n', buf) {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            // +2: the bound is on the message, not its `\r\n`.
            if self.skipped > 0 || self.line.len() + take > self.max + 2 {
                // Over the bound: count, but stop buffering (a 100 MB line must not be held).
                // Its first bytes are kept (for the id); the rest is only counted.
                let seen = self.line.len() + take;
                if self.skipped == 0 {
                    self.line.truncate(HEAD);
                    self.head = std::mem::take(&mut self.line);
                }
                let more = HEAD.saturating_sub(self.head.len()).min(take);
                self.head.extend_from_slice(&buf[..more]);
                self.skipped += seen;
            } else {
                self.line.extend_from_slice(&buf[..take]);
            }
            self.inner.consume(take);
            if done {
                return Ok(false);
            }
        }
    }
}

/// Stdin for the proxy. When it is a pipe or a socket (how MCP clients spawn us), it is
/// read as a non-blocking fd on tokio's reactor; otherwise (a terminal, a file) through
/// tokio's blocking-pool `Stdin`. The pool costs a thread hand-off per read, which was the
/// largest part of our per-message latency (bench/README.md). Like Node's libuv, this sets
/// O_NONBLOCK on the pipe, which only the reading end's description sees.
pub(crate) fn input() -> Box<dyn AsyncRead + Send + Unpin> {
    #[cfg(unix)]
    if let Some(r) = unix::reader() {
        return r;
    }
    Box::new(tokio::io::stdin())
}

/// Stdout for the proxy: a non-blocking pipe or socket when possible (see [`input`]),
/// except when stderr shares it (`2>&1`), because our logs on stderr are written with
/// blocking writes that must not meet `EAGAIN`.
pub(crate) fn output() -> Box<dyn AsyncWrite + Send + Unpin> {
    #[cfg(unix)]
    if let Some(w) = unix::writer() {
        return w;
    }
    Box::new(tokio::io::stdout())
}

#[cfg(unix)]
mod unix {
    use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    use tokio::io::{AsyncRead, AsyncWrite};

    enum Kind {
        Fifo,
        Socket,
    }

    /// A duplicate of `fd` (safe: no raw fd juggling) and what it is, if it can go on the
    /// reactor.
    fn pollable(fd: BorrowedFd<'_>) -> Option<(std::fs::File, Kind)> {
        let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
        let kind = file.metadata().ok()?.file_type();
        if kind.is_fifo() {
            Some((file, Kind::Fifo))
        } else if kind.is_socket() {
            Some((file, Kind::Socket))
        } else {
            None
        }
    }

    fn socket(file: std::fs::File) -> Option<tokio::net::UnixStream> {
        // Any stream socket reads and writes alike at the fd level; tokio's UnixStream is
        // just the reactor registration for it (libuv hands children socketpairs).
        let s = std::os::unix::net::UnixStream::from(OwnedFd::from(file));
        s.set_nonblocking(true).ok()?;
        tokio::net::UnixStream::from_std(s).ok()
    }

    pub(super) fn reader() -> Option<Box<dyn AsyncRead + Send + Unpin>> {
        match pollable(std::io::stdin().as_fd())? {
            (f, Kind::Fifo) => Some(Box::new(
                tokio::net::unix::pipe::Receiver::from_file(f).ok()?,
            )),
            (f, Kind::Socket) => Some(Box::new(socket(f)?)),
        }
    }

    pub(super) fn writer() -> Option<Box<dyn AsyncWrite + Send + Unpin>> {
        let (file, kind) = pollable(std::io::stdout().as_fd())?;
        let same =
            |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().ok();
        if let Some(err) = stderr.map(std::fs::File::from)
            && let (Ok(a), Ok(b)) = (file.metadata(), err.metadata())
            && same(&a, &b)
        {
            return None;
        }
        match kind {
            Kind::Fifo => {
                // Best effort (the system's pipe-max-size may be lower): large messages
                // then cross in fewer, larger writes, each a wake-up of the client.
                #[cfg(target_os = "linux")]
                if let Err(e) = rustix::pipe::fcntl_setpipe_size(&file, 1 << 20) {
                    tracing::debug!("stdout pipe keeps its size: {e}");
                }
                Some(Box::new(
                    tokio::net::unix::pipe::Sender::from_file(file).ok()?,
                ))
            }
            Kind::Socket => Some(Box::new(socket(file)?)),
        }
    }
}

/// How much of an over-long line is kept to find its id.
const HEAD: usize = 4096;

/// The handle other tasks use to write a message line to stdout.
pub(crate) type Out = mpsc::Sender<Bytes>;

/// How many lines may wait for stdout before senders are made to wait.
const OUT_QUEUE: usize = 256;

/// Spawn the single stdout writer. The returned join handle finishes when every
/// sender is gone (after flushing) or when stdout is closed (EPIPE: a quiet end).
pub(crate) fn spawn_writer<W>(w: W) -> (Out, tokio::task::JoinHandle<std::io::Result<()>>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(OUT_QUEUE);
    // Buffered, so a line and its newline (and every line already queued) reach the
    // underlying stdout in one write: tokio's stdout is a blocking-pool hop per call.
    let mut w = tokio::io::BufWriter::with_capacity(64 * 1024, w);
    let task = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            let mut result = write_line(&mut w, &line).await;
            // Drain what is already queued before paying for a flush.
            while result.is_ok() {
                match rx.try_recv() {
                    Ok(line) => result = write_line(&mut w, &line).await,
                    Err(_) => break,
                }
            }
            if let Err(e) = result.and(w.flush().await) {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    tracing::debug!("stdout closed by the client");
                    return Ok(());
                }
                return Err(e);
            }
        }
        w.flush().await.or_else(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                Ok(())
            } else {
                Err(e)
            }
        })
    });
    (tx, task)
}

async fn write_line<W: AsyncWrite + Unpin>(w: &mut W, line: &[u8]) -> std::io::Result<()> {
    debug_assert!(!line.contains(&b'\n'));
    w.write_all(line).await?;
    w.write_all(b"\n").await
}

/// Make a validated server message safe for one stdout line (S-FRAME): drop raw CR/LF
/// bytes. In valid JSON those can only be insignificant whitespace (strings must escape
/// them), so removing them keeps the message intact without a re-serialization. The
/// common case, a compact message, is passed through without a copy.
pub fn one_line(body: Bytes) -> Bytes {
    if memchr::memchr2(b'\n', b'\r', &body).is_some() {
        Bytes::from(
            body.iter()
                .copied()
                .filter(|&b| b != b'\n' && b != b'\r')
                .collect::<Vec<u8>>(),
        )
    } else {
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8], max: usize) -> Vec<Frame> {
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(8, input), max);
        let mut out = Vec::new();
        while let Some(f) = r.next().await.unwrap() {
            out.push(f);
        }
        out
    }

    #[tokio::test]
    async fn framing() {
        let got = frames(b"a\r\n\n  \nbc\nlast", 100).await;
        assert_eq!(
            got,
            vec![
                Frame::Line(b"a".to_vec()),
                Frame::Line(b"bc".to_vec()),
                Frame::Line(b"last".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn too_long_is_skipped_and_reading_goes_on() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\nok\n");
        let got = frames(&input, 10).await;
        assert_eq!(
            got[0],
            Frame::TooLong {
                len: 1001,
                head: vec![b'x'; 1000]
                    .into_iter()
                    .chain([b'\n'])
                    .take(HEAD)
                    .collect()
            }
        );
        assert_eq!(got[1], Frame::Line(b"ok".to_vec()));
        // Exactly at the bound is fine, with or without \r\n.
        let got = frames(b"0123456789\r\n", 10).await;
        assert_eq!(got, vec![Frame::Line(b"0123456789".to_vec())]);
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_nothing() {
        use futures_util::FutureExt;
        use tokio::io::AsyncWriteExt;
        let (mut tx, rx) = tokio::io::duplex(64);
        let mut r = LineReader::new(tokio::io::BufReader::with_capacity(4, rx), 100);
        for piece in [&b"{\"a\""[..], b":1", b"}"] {
            tx.write_all(piece).await.unwrap();
            // The proxy loop drops `next` whenever another event wins the select.
            assert!(r.next().now_or_never().is_none(), "no whole line yet");
        }
        tx.write_all(b"\nnext\n").await.unwrap();
        assert_eq!(
            r.next().await.unwrap(),
            Some(Frame::Line(b"{\"a\":1}".to_vec()))
        );
        assert_eq!(r.next().await.unwrap(), Some(Frame::Line(b"next".to_vec())));
    }

    #[test]
    fn one_line_strips_whitespace_newlines() {
        assert_eq!(
            &one_line(Bytes::from_static(b"{\n  \"a\": \"x\\ny\"\r\n}"))[..],
            b"{  \"a\": \"x\\ny\"}"
        );
    }
}
