//! Frame Streams (the framing dnstap travels in), bidirectional mode, writer side.
//!
//! Every frame starts with a 32-bit big-endian length. A data frame is that length
//! and the payload; a control frame is a zero length (the escape), its own length,
//! its type, and fields (a type, a length, the bytes; only CONTENT_TYPE is
//! defined). The writer sends READY with its content type, the reader answers
//! ACCEPT with the content types it takes, the writer sends START, then data
//! frames; at the end the writer sends STOP and waits for FINISH.

use std::io::{self, Read, Write};

/// dnstap's content type.
pub(crate) const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

pub(crate) const ACCEPT: u32 = 0x01;
pub(crate) const START: u32 = 0x02;
pub(crate) const STOP: u32 = 0x03;
pub(crate) const READY: u32 = 0x04;
pub(crate) const FINISH: u32 = 0x05;
const FIELD_CONTENT_TYPE: u32 = 0x01;

/// The longest control frame read (the specification's own bound is 512).
const CONTROL_MAX: usize = 512;

/// A control frame of `kind`, with the content type when given.
pub(crate) fn control(kind: u32, content_type: Option<&[u8]>) -> Vec<u8> {
    let mut body = kind.to_be_bytes().to_vec();
    if let Some(ct) = content_type {
        body.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        body.extend_from_slice(ct);
    }
    let mut f = 0u32.to_be_bytes().to_vec();
    f.extend_from_slice(&(body.len() as u32).to_be_bytes());
    f.extend_from_slice(&body);
    f
}

fn bad(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

/// Reads one control frame: its type and the content types it names.
pub(crate) fn read_control(r: &mut impl Read) -> io::Result<(u32, Vec<Vec<u8>>)> {
    if read_u32(r)? != 0 {
        return Err(bad(
            "the collector sent a data frame, not a control frame".into()
        ));
    }
    let len = read_u32(r)? as usize;
    if !(4..=CONTROL_MAX).contains(&len) {
        return Err(bad(format!(
            "the collector sent a control frame of {len} bytes"
        )));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    let kind = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let mut types = Vec::new();
    let mut rest = &body[4..];
    while !rest.is_empty() {
        let (Some(t), Some(l)) = (rest.get(0..4), rest.get(4..8)) else {
            return Err(bad("a control frame's field is cut short".into()));
        };
        let t = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
        let l = u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize;
        let Some(v) = rest.get(8..8 + l) else {
            return Err(bad(
                "a control frame's field is longer than the frame".into()
            ));
        };
        if t == FIELD_CONTENT_TYPE {
            types.push(v.to_vec());
        }
        rest = &rest[8 + l..];
    }
    Ok((kind, types))
}

/// READY, ACCEPT, START: after it, data frames may follow.
pub(crate) fn open(s: &mut (impl Read + Write)) -> io::Result<()> {
    s.write_all(&control(READY, Some(CONTENT_TYPE)))?;
    s.flush()?;
    let (kind, types) = read_control(s)?;
    if kind != ACCEPT {
        return Err(bad(format!(
            "the collector answered READY with control frame {kind}, not ACCEPT"
        )));
    }
    if !types.iter().any(|t| t == CONTENT_TYPE) {
        return Err(bad(
            "the collector does not accept protobuf:dnstap.Dnstap".into()
        ));
    }
    s.write_all(&control(START, Some(CONTENT_TYPE)))?;
    s.flush()
}

/// STOP, then wait for FINISH.
pub(crate) fn close(s: &mut (impl Read + Write)) -> io::Result<()> {
    s.write_all(&control(STOP, None))?;
    s.flush()?;
    let (kind, _) = read_control(s)?;
    if kind != FINISH {
        return Err(bad(format!(
            "the collector answered STOP with control frame {kind}, not FINISH"
        )));
    }
    Ok(())
}

/// Appends a data frame holding `payload`.
pub(crate) fn data(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn handshake_and_close_as_a_reader_sees_them() {
        let (mut w, mut r) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let (k, t) = read_control(&mut r).unwrap();
            assert_eq!((k, t), (READY, vec![CONTENT_TYPE.to_vec()]));
            r.write_all(&control(ACCEPT, Some(CONTENT_TYPE))).unwrap();
            assert_eq!(read_control(&mut r).unwrap().0, START);
            let mut len = [0u8; 4];
            r.read_exact(&mut len).unwrap();
            let mut p = vec![0u8; u32::from_be_bytes(len) as usize];
            r.read_exact(&mut p).unwrap();
            assert_eq!(p, b"hello");
            assert_eq!(read_control(&mut r).unwrap().0, STOP);
            r.write_all(&control(FINISH, None)).unwrap();
        });
        open(&mut w).unwrap();
        let mut f = Vec::new();
        data(&mut f, b"hello");
        w.write_all(&f).unwrap();
        close(&mut w).unwrap();
        reader.join().unwrap();
    }

    #[test]
    fn a_reader_of_another_content_type_is_refused() {
        let (mut w, mut r) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            read_control(&mut r).unwrap();
            r.write_all(&control(ACCEPT, Some(b"protobuf:other")))
                .unwrap();
        });
        assert!(open(&mut w).is_err());
        reader.join().unwrap();
        // A lying length is refused before anything is allocated for it.
        let mut huge = 0u32.to_be_bytes().to_vec();
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_control(&mut huge.as_slice()).is_err());
    }
}
