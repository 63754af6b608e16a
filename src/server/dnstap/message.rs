//! One sampled query as the socket thread hands it over, and its two dnstap
//! messages (AUTH_QUERY, AUTH_RESPONSE) in protobuf, written by hand with prost's
//! wire helpers (the schema is dnstap.proto; the test decodes with derived structs).

use std::net::IpAddr;

use prost::encoding::{encode_key, encode_varint, WireType};

/// dnstap's `SocketProtocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Udp = 1,
    Tcp = 2,
    Dot = 3,
    Doh = 4,
}

impl Proto {
    /// From the transport as the query log names it.
    pub(crate) fn from_label(label: &str) -> Proto {
        match label {
            "dot" => Proto::Dot,
            "doh" => Proto::Doh,
            "udp" => Proto::Udp,
            _ => Proto::Tcp,
        }
    }
}

/// Seconds and nanoseconds since the Unix epoch.
pub type Stamp = (u64, u32);

/// One sampled query: everything its messages are written from.
#[derive(Debug)]
pub(crate) struct Event {
    pub proto: Proto,
    pub client: IpAddr,
    pub port: Option<u16>,
    pub query_time: Stamp,
    pub response_time: Stamp,
    /// The query, then the response (when one was sent), then `extra`.
    pub bytes: Vec<u8>,
    pub query_len: u32,
    /// None: no response went out (dropped by rate limiting, or not a query).
    pub response_len: Option<u32>,
}

const AUTH_QUERY: u64 = 1;
const AUTH_RESPONSE: u64 = 2;

fn bytes_field(tag: u32, v: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(v.len() as u64, out);
    out.extend_from_slice(v);
}

fn varint_field(tag: u32, v: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, out);
    encode_varint(v, out);
}

fn fixed32_field(tag: u32, v: u32, out: &mut Vec<u8>) {
    encode_key(tag, WireType::ThirtyTwoBit, out);
    out.extend_from_slice(&v.to_le_bytes());
}

/// Reused buffers of the writer.
#[derive(Default)]
pub(crate) struct Encoder {
    inner: Vec<u8>,
    outer: Vec<u8>,
}

impl Encoder {
    /// Appends the event's messages, each as a Frame Streams data frame, to `out`.
    pub fn frames(&mut self, e: &Event, identity: &[u8], version: &[u8], out: &mut Vec<u8>) {
        let q_end = e.query_len as usize;
        let query = e.bytes.get(..q_end).unwrap_or_default();
        let r_end = q_end + e.response_len.unwrap_or(0) as usize;
        let extra = e.bytes.get(r_end..).unwrap_or_default();
        self.message(e, AUTH_QUERY, query, &[], identity, version, out);
        if e.response_len.is_some() {
            let response = e.bytes.get(q_end..r_end).unwrap_or_default();
            self.message(e, AUTH_RESPONSE, response, extra, identity, version, out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn message(
        &mut self,
        e: &Event,
        kind: u64,
        dns: &[u8],
        extra: &[u8],
        identity: &[u8],
        version: &[u8],
        out: &mut Vec<u8>,
    ) {
        let m = &mut self.inner;
        m.clear();
        varint_field(1, kind, m);
        let mut octets = [0u8; 16];
        let (family, len) = match e.client {
            IpAddr::V4(a) => {
                octets[..4].copy_from_slice(&a.octets());
                (1, 4)
            }
            IpAddr::V6(a) => {
                octets = a.octets();
                (2, 16)
            }
        };
        let addr = &octets[..len];
        varint_field(2, family, m);
        varint_field(3, e.proto as u64, m);
        bytes_field(4, addr, m);
        if let Some(p) = e.port {
            varint_field(6, u64::from(p), m);
        }
        varint_field(8, e.query_time.0, m);
        fixed32_field(9, e.query_time.1, m);
        if kind == AUTH_QUERY {
            bytes_field(10, dns, m);
        } else {
            varint_field(12, e.response_time.0, m);
            fixed32_field(13, e.response_time.1, m);
            bytes_field(14, dns, m);
        }
        let d = &mut self.outer;
        d.clear();
        if !identity.is_empty() {
            bytes_field(1, identity, d);
        }
        if !version.is_empty() {
            bytes_field(2, version, d);
        }
        if !extra.is_empty() {
            bytes_field(3, extra, d);
        }
        bytes_field(14, m, d);
        varint_field(15, 1, d);
        super::fstrm::data(out, d);
    }
}
