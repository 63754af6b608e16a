//! A minimal HTTP/1.1 client (RFC 9112): one request with `Connection: close`, the
//! status line, and, only when the check looks into it, up to 64 KiB of the body.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::ProbeError;

/// Header sections above this are refused: a health endpoint has no reason to send
/// more, and the limit bounds memory per probe.
const MAX_HEAD: usize = 16 * 1024;
/// How much of the body `body_contains` searches.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Longest chunk-size line accepted (size, extensions and CRLF).
const MAX_CHUNK_LINE: usize = 1024;

pub(super) struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub host: &'a str,
    pub expect: &'a [u16],
    pub body_contains: Option<&'a str>,
}

impl Request<'_> {
    /// The request head. Refuses values that would break the request line or
    /// smuggle a header (RFC 9112 §3, §5): config loading should have caught them.
    pub fn head(&self) -> Result<Vec<u8>, ProbeError> {
        let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic());
        if !token(self.method) {
            return Err(ProbeError::BadCheck(format!("method {:?}", self.method)));
        }
        let path = if self.path.is_empty() { "/" } else { self.path };
        if !token(path) {
            return Err(ProbeError::BadCheck(format!("path {path:?}")));
        }
        if !token(self.host) {
            return Err(ProbeError::BadCheck(format!("host {:?}", self.host)));
        }
        Ok(format!(
            "{} {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: signpost-health\r\n\
             Accept: */*\r\nConnection: close\r\n\r\n",
            self.method, self.host
        )
        .into_bytes())
    }

    fn status_ok(&self, status: u16) -> bool {
        if self.expect.is_empty() {
            (200..=399).contains(&status)
        } else {
            self.expect.contains(&status)
        }
    }
}

/// Parsed response head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    pub framing: Framing,
}

/// How the body's end is found (RFC 9112 §6.3).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    Chunked,
    Length(u64),
    UntilClose,
}

/// Sends the request and judges the response.
pub(super) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &[u8],
    req: &Request<'_>,
) -> Result<String, ProbeError> {
    stream.write_all(head).await.map_err(ProbeError::send)?;
    stream.flush().await.map_err(ProbeError::send)?;

    let mut reader = Reader {
        stream,
        buf: Vec::with_capacity(4096),
    };
    let (resp, mut rest) = loop {
        let (resp, rest) = reader.head().await?;
        // Interim responses (RFC 9110 §15.2) precede the real one; 101 would switch
        // protocols, which we never asked for, so it is judged as a final status.
        if (100..200).contains(&resp.status) && resp.status != 101 {
            reader.buf = rest;
            continue;
        }
        break (resp, rest);
    };
    if !req.status_ok(resp.status) {
        return Err(ProbeError::Status(resp.status));
    }
    let Some(needle) = req.body_contains else {
        return Ok(format!("HTTP {}", resp.status));
    };
    let no_body = req.method.eq_ignore_ascii_case("HEAD")
        || resp.status == 204
        || resp.status == 304
        || (100..200).contains(&resp.status);
    let body = if no_body {
        Vec::new()
    } else {
        reader
            .body(&resp.framing, std::mem::take(&mut rest), needle.as_bytes())
            .await?
    };
    if contains(&body, needle.as_bytes()) {
        Ok(format!("HTTP {}, body has {needle:?}", resp.status))
    } else {
        Err(ProbeError::Body {
            status: resp.status,
            needle: needle.to_string(),
        })
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

struct Reader<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    /// Reads more bytes into `buf`; 0 at end of stream.
    async fn fill(&mut self) -> Result<usize, ProbeError> {
        let mut chunk = [0u8; 8192];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(ProbeError::receive)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads one response head; returns it and the bytes after it.
    async fn head(&mut self) -> Result<(Head, Vec<u8>), ProbeError> {
        let mut searched = 0;
        loop {
            if let Some(end) = head_end(&self.buf, searched) {
                let head = parse_head(&self.buf[..end])?;
                return Ok((head, self.buf.split_off(end)));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(ProbeError::BadHttp(format!(
                    "header section over {} KiB",
                    MAX_HEAD / 1024
                )));
            }
            // The end marker may straddle two reads: search again from just before.
            searched = self.buf.len().saturating_sub(3);
            if self.fill().await? == 0 {
                return Err(ProbeError::Closed(if self.buf.is_empty() {
                    "a response"
                } else {
                    "the end of the response head"
                }));
            }
        }
    }

    /// Reads up to [`MAX_BODY`] bytes of body that start with `start`, stopping as
    /// soon as `needle` is seen so that a server that ignores `Connection: close`
    /// does not hold a passing probe until its timeout.
    async fn body(
        &mut self,
        framing: &Framing,
        start: Vec<u8>,
        needle: &[u8],
    ) -> Result<Vec<u8>, ProbeError> {
        match framing {
            Framing::Chunked => {
                let mut dec = Chunked::default();
                self.buf.clear();
                dec.feed(&start)?;
                while !dec.complete() && !contains(&dec.body, needle) {
                    self.buf.clear();
                    if self.fill().await? == 0 {
                        break;
                    }
                    dec.feed(&self.buf)?;
                }
                Ok(dec.body)
            }
            Framing::Length(len) => {
                let want = usize::try_from(*len).unwrap_or(usize::MAX).min(MAX_BODY);
                self.buf = start;
                while self.buf.len() < want && !contains(&self.buf, needle) {
                    if self.fill().await? == 0 {
                        break;
                    }
                }
                self.buf.truncate(want);
                Ok(std::mem::take(&mut self.buf))
            }
            Framing::UntilClose => {
                self.buf = start;
                while self.buf.len() < MAX_BODY && !contains(&self.buf, needle) {
                    if self.fill().await? == 0 {
                        break;
                    }
                }
                self.buf.truncate(MAX_BODY);
                Ok(std::mem::take(&mut self.buf))
            }
        }
    }
}

/// The offset just past the empty line that ends a response head, searching from
/// `from`. Bare LF line ends are accepted (RFC 9112 §2.2 allows a recipient to).
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            // A line ended at i: the head ends if the next line is empty.
            match buf.get(i + 1) {
                Some(b'\n') => return Some(i + 2),
                Some(b'\r') if buf.get(i + 2) == Some(&b'\n') => return Some(i + 3),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Parses a status line and the headers that decide the body's framing.
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, ProbeError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.lines();
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(ProbeError::BadHttp(format!(
            "status line {:?}",
            truncate(status_line)
        )));
    }
    let status = parts
        .next()
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse::<u16>().ok())
        .filter(|c| (100..=999).contains(c))
        .ok_or_else(|| ProbeError::BadHttp(format!("status line {:?}", truncate(status_line))))?;

    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("transfer-encoding") {
            // Chunked is always the last coding when present (RFC 9112 §6.1).
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
        } else if name.trim().eq_ignore_ascii_case("content-length") {
            let n = value.parse::<u64>().map_err(|_| {
                ProbeError::BadHttp(format!("Content-Length {:?}", truncate(value)))
            })?;
            length = Some(n);
        }
    }
    // Transfer-Encoding overrides Content-Length (RFC 9112 §6.3 item 3).
    let framing = match (chunked, length) {
        (true, _) => Framing::Chunked,
        (false, Some(n)) => Framing::Length(n),
        (false, None) => Framing::UntilClose,
    };
    Ok(Head { status, framing })
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Incremental decoder of the chunked transfer coding (RFC 9112 §7.1). Keeps at
/// most [`MAX_BODY`] bytes of body and ignores trailers: once the last chunk or the
/// limit is reached there is nothing left that a check looks at.
#[derive(Debug, Default)]
pub(crate) struct Chunked {
    state: ChunkState,
    line: Vec<u8>,
    pub body: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum ChunkState {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// Inside chunk data, with this many bytes left.
    Data(u64),
    /// After chunk data, reading its CRLF.
    DataEnd,
    /// The last chunk (size 0) was seen.
    Done,
}

impl Chunked {
    pub fn complete(&self) -> bool {
        self.state == ChunkState::Done || self.body.len() >= MAX_BODY
    }

    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), ProbeError> {
        while !input.is_empty() && !self.complete() {
            match self.state {
                ChunkState::Size => {
                    let Some((&b, rest)) = input.split_first() else {
                        break;
                    };
                    input = rest;
                    if b != b'\n' {
                        if self.line.len() >= MAX_CHUNK_LINE {
                            return Err(ProbeError::BadHttp("chunk size line too long".into()));
                        }
                        self.line.push(b);
                        continue;
                    }
                    let size = parse_chunk_size(&self.line)?;
                    self.line.clear();
                    self.state = if size == 0 {
                        ChunkState::Done
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    let room = MAX_BODY - self.body.len();
                    self.body.extend_from_slice(&input[..take.min(room)]);
                    input = &input[take..];
                    // take <= left, so this cannot underflow.
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::DataEnd => {
                    let Some((&b, rest)) = input.split_first() else {
                        break;
                    };
                    input = rest;
                    match b {
                        b'\r' => {}
                        b'\n' => self.state = ChunkState::Size,
                        _ => {
                            return Err(ProbeError::BadHttp(
                                "chunk data longer than its size".into(),
                            ))
                        }
                    }
                }
                ChunkState::Done => break,
            }
        }
        Ok(())
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, ProbeError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Chunk extensions follow a ';' and mean nothing to us.
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex).unwrap_or_default().trim();
    if hex.is_empty() || hex.len() > 16 {
        return Err(ProbeError::BadHttp(format!(
            "chunk size {:?}",
            String::from_utf8_lossy(&line[..line.len().min(32)])
        )));
    }
    u64::from_str_radix(hex, 16).map_err(|_| ProbeError::BadHttp(format!("chunk size {hex:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_with_crlf_and_lf() {
        let r = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody";
        assert_eq!(head_end(r, 0), Some(r.len() - 4));
        let r = b"HTTP/1.1 200 OK\nA: b\n\nbody";
        assert_eq!(head_end(r, 0), Some(r.len() - 4));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
    }

    #[test]
    fn parses_status_and_framing() {
        let h =
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!(
            h,
            Head {
                status: 503,
                framing: Framing::Length(12)
            }
        );
        let h = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        )
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_head(b"HTTP/1.0 204\r\n\r\n").unwrap();
        assert_eq!((h.status, h.framing), (204, Framing::UntilClose));
    }

    #[test]
    fn rejects_bad_heads() {
        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 20 OK\r\n\r\n",
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunked_decodes_across_any_split() {
        let wire =
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: y\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Chunked::default();
            d.feed(&wire[..split]).unwrap();
            d.feed(&wire[split..]).unwrap();
            assert!(d.complete());
            assert_eq!(d.body, b"Wikipedia in\r\n\r\nchunks.");
        }
        // One byte at a time.
        let mut d = Chunked::default();
        for b in wire {
            d.feed(&[*b]).unwrap();
        }
        assert_eq!(d.body, b"Wikipedia in\r\n\r\nchunks.");
    }

    #[test]
    fn chunked_stops_at_the_body_limit() {
        let mut wire = Vec::new();
        for _ in 0..20 {
            wire.extend_from_slice(b"1000\r\n");
            wire.extend_from_slice(&[b'x'; 0x1000]);
            wire.extend_from_slice(b"\r\n");
        }
        let mut d = Chunked::default();
        d.feed(&wire).unwrap();
        assert!(d.complete());
        assert_eq!(d.body.len(), MAX_BODY);
    }

    #[test]
    fn chunked_rejects_garbage() {
        assert!(Chunked::default().feed(b"zz\r\n").is_err());
        assert!(Chunked::default().feed(b"2\r\nabc\r\n").is_err());
        assert!(Chunked::default().feed(&[b'1'; 2000]).is_err());
    }

    #[test]
    fn request_head_refuses_injection() {
        let req = |method, path, host| Request {
            method,
            path,
            host,
            expect: &[],
            body_contains: None,
        };
        let head = req("GET", "", "a.example").head().unwrap();
        assert!(head.starts_with(b"GET / HTTP/1.1\r\nHost: a.example\r\n"));
        assert!(req("GET", "/x\r\nEvil: 1", "a").head().is_err());
        assert!(req("GET", "/", "a\r\nEvil: 1").head().is_err());
        assert!(req("GE T", "/", "a").head().is_err());
    }

    #[test]
    fn expected_statuses() {
        let mut r = Request {
            method: "GET",
            path: "/",
            host: "h",
            expect: &[],
            body_contains: None,
        };
        assert!(r.status_ok(200) && r.status_ok(302) && r.status_ok(399));
        assert!(!r.status_ok(404) && !r.status_ok(199));
        r.expect = &[204, 503];
        assert!(r.status_ok(503) && !r.status_ok(200));
    }
}
