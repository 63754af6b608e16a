//! The etcd v3 client the store task and the key-set sync (`keys`) use: the
//! few calls they make (KV range, put and delete, and a put-if-absent Txn;
//! Watch; Lease grant, keep-alive and revoke; Auth's authenticate), over gRPC
//! stubs generated from etcd's own .proto files.
//!
//! The generated code is checked in (`pb/`, from `proto/` by
//! contrib/regen-etcd-proto.sh, which records what it read and wrote in
//! `pb/SHA256SUMS`), so that building signpost needs the Rust toolchain alone:
//! no protoc, no build script. tests/fleet.rs checks those sums.
//!
//! Behaviour kept from the client crate this replaced: one balanced channel
//! over every endpoint; each request gives up after `timeout`, and so does each
//! connect; HTTP/2 keep-alive pings every `timeout`, also while idle; an etcd
//! user's token is taken once at connect and sent with every call after it (a
//! rejected token ends the session, and the next one authenticates anew);
//! `https://` endpoints use rustls with the operator's CA and client identity.

use std::time::Duration;

use thiserror::Error;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status, Streaming};

/// The generated messages and client stubs, as prost and tonic wrote them.
#[allow(
    clippy::all,
    clippy::pedantic,
    dead_code,
    missing_docs,
    unreachable_pub,
    rustdoc::all
)]
mod pb {
    pub(crate) mod authpb {
        include!("pb/authpb.rs");
    }
    pub(crate) mod mvccpb {
        include!("pb/mvccpb.rs");
    }
    pub(crate) mod etcdserverpb {
        include!("pb/etcdserverpb.rs");
    }
}

use pb::etcdserverpb::{
    auth_client::AuthClient, kv_client::KvClient, lease_client::LeaseClient,
    watch_client::WatchClient, watch_request::RequestUnion, AuthenticateRequest,
    DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, PutRequest, RangeRequest, RangeResponse, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use pb::etcdserverpb::{
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op, response_op, Compare, RequestOp, TxnRequest,
};
pub(super) use pb::mvccpb::event::EventType;

#[derive(Debug, Error)]
pub(crate) enum Error {
    #[error("{0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("{}: {}", .0.code(), .0.message())]
    Status(#[from] Status),
    #[error("{0}")]
    Invalid(String),
    #[error("the {0} stream's request side is gone")]
    Closed(&'static str),
}

impl Error {
    /// An answer over the size a message may have here (tonic's 4 MiB
    /// default): a smaller request may get through.
    pub(super) fn too_large(&self) -> bool {
        matches!(self, Error::Status(s) if s.code() == tonic::Code::OutOfRange
            && s.message().contains("message length too large"))
    }
}

/// TLS towards etcd, as PEM bytes read at start.
#[derive(Debug, Clone, Default)]
pub(super) struct Tls {
    pub(super) ca: Option<Vec<u8>>,
    /// Client certificate chain and its key.
    pub(super) identity: Option<(Vec<u8>, Vec<u8>)>,
}

#[derive(Debug, Clone)]
pub(super) struct Options {
    /// Per request, per connect, and the keep-alive ping's interval and timeout.
    pub(super) timeout: Duration,
    /// etcd user and password.
    pub(super) user: Option<(String, String)>,
    pub(super) tls: Option<Tls>,
}

/// Adds the user's token, when there is one, to every call.
#[derive(Clone)]
pub(super) struct Token(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            req.metadata_mut().insert("token", t.clone());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Channel, Token>;

/// One connection (balanced over the endpoints) with its user's token.
pub(super) struct Client {
    kv: KvClient<Svc>,
    watch: WatchClient<Svc>,
    lease: LeaseClient<Svc>,
}

/// The first key after `key` in etcd's order.
pub(super) fn next_key(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    k.push(0);
    k
}

/// The end of `key`'s prefix range: the key after every key that starts
/// with it (etcd's `range_end`); `\0` (every key) when there is none.
pub(super) fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn endpoint(url: &str, o: &Options) -> Result<Endpoint, Error> {
    let mut e = Endpoint::from_shared(url.to_string())?;
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(t) = &o.tls {
            if let Some(ca) = &t.ca {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &t.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
        }
        e = e.tls_config(tls)?;
    } else if o.tls.is_some() {
        return Err(Error::Invalid(format!(
            "{url}: TLS settings need https:// endpoints"
        )));
    }
    Ok(e.keep_alive_while_idle(true)
        .http2_keep_alive_interval(o.timeout)
        .keep_alive_timeout(o.timeout)
        .timeout(o.timeout)
        .connect_timeout(o.timeout))
}

impl Client {
    /// Sets up the channel; with a user, authenticates (the first call that
    /// reaches etcd); without one, the first call connects.
    pub(super) async fn connect(endpoints: &[String], o: &Options) -> Result<Client, Error> {
        let list = endpoints
            .iter()
            .map(|u| endpoint(u, o))
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err(Error::Invalid("no endpoints".to_string()));
        }
        let channel = Channel::balance_list(list.into_iter());
        let token = match &o.user {
            None => None,
            Some((name, password)) => {
                let r = AuthClient::new(channel.clone())
                    .authenticate(AuthenticateRequest {
                        name: name.clone(),
                        password: password.clone(),
                    })
                    .await?
                    .into_inner();
                let t = MetadataValue::try_from(r.token.as_str()).map_err(|_| {
                    Error::Invalid("etcd gave a token that is not a header value".to_string())
                })?;
                Some(t)
            }
        };
        let svc = InterceptedService::new(channel, Token(token));
        Ok(Client {
            kv: KvClient::new(svc.clone()),
            watch: WatchClient::new(svc.clone()),
            lease: LeaseClient::new(svc),
        })
    }

    /// Up to `limit` keys from `from` (inclusive) to `end` (exclusive), in
    /// key order, at `revision` (0: the latest); `keys_only` leaves values out.
    pub(super) async fn range(
        &mut self,
        from: &[u8],
        end: &[u8],
        limit: i64,
        revision: i64,
        keys_only: bool,
    ) -> Result<RangeResponse, Error> {
        let req = RangeRequest {
            key: from.to_vec(),
            range_end: end.to_vec(),
            limit,
            revision,
            keys_only,
            ..RangeRequest::default()
        };
        Ok(self.kv.range(req).await?.into_inner())
    }

    /// The value at `key`; `None` when there is no such key.
    pub(super) async fn get(&mut self, key: impl Into<Vec<u8>>) -> Result<Option<Vec<u8>>, Error> {
        let req = RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        };
        let r = self.kv.range(req).await?.into_inner();
        Ok(r.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Puts `value` at `key` (with no lease) if no value is there, in one
    /// transaction: "if `key`'s create_revision is 0, put; else range". Of two
    /// instances racing, exactly one creates the key; the other gets the
    /// winner's value back in the same answer.
    pub(super) async fn put_if_absent(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Result<Created, Error> {
        self.put_if_absent_leased(key, value, 0).await
    }

    /// [`Client::put_if_absent`] under `lease` (0: none): a lock that goes
    /// with its holder's lease.
    pub(super) async fn put_if_absent_leased(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<Created, Error> {
        let key = key.into();
        let req = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: CompareTarget::Create as i32,
                key: key.clone(),
                target_union: Some(TargetUnion::CreateRevision(0)),
                ..Compare::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: value.into(),
                    lease,
                    ..PutRequest::default()
                })),
            }],
            failure: vec![RequestOp {
                request: Some(request_op::Request::RequestRange(RangeRequest {
                    key,
                    ..RangeRequest::default()
                })),
            }],
        };
        let r = self.kv.txn(req).await?.into_inner();
        if r.succeeded {
            return Ok(Created::Yes);
        }
        let found = r.responses.into_iter().find_map(|op| match op.response {
            Some(response_op::Response::ResponseRange(range)) => {
                range.kvs.into_iter().next().map(|kv| kv.value)
            }
            _ => None,
        });
        match found {
            Some(v) => Ok(Created::No(v)),
            // Created and deleted between the compare and the range cannot
            // happen inside one transaction; a reply without it is etcd's bug.
            None => Err(Error::Invalid(
                "the transaction failed its compare but read no value".to_string(),
            )),
        }
    }

    /// Puts `value` at `key`, under `lease` unless it is 0.
    pub(super) async fn put(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        lease: i64,
    ) -> Result<(), Error> {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            ..PutRequest::default()
        };
        self.kv.put(req).await?;
        Ok(())
    }

    pub(super) async fn delete(&mut self, key: impl Into<Vec<u8>>) -> Result<(), Error> {
        let req = DeleteRangeRequest {
            key: key.into(),
            ..DeleteRangeRequest::default()
        };
        self.kv.delete_range(req).await?;
        Ok(())
    }

    /// A new lease of `ttl` seconds; its id.
    pub(super) async fn lease_grant(&mut self, ttl: i64) -> Result<i64, Error> {
        let r = self
            .lease
            .lease_grant(LeaseGrantRequest { ttl, id: 0 })
            .await?
            .into_inner();
        if !r.error.is_empty() {
            return Err(Error::Invalid(format!("lease grant: {}", r.error)));
        }
        Ok(r.id)
    }

    pub(super) async fn lease_revoke(&mut self, id: i64) -> Result<(), Error> {
        self.lease.lease_revoke(LeaseRevokeRequest { id }).await?;
        Ok(())
    }

    /// Opens the keep-alive stream of lease `id`, having sent one keep-alive.
    pub(super) async fn lease_keep_alive(&mut self, id: i64) -> Result<KeepAlive, Error> {
        let (tx, rx) = mpsc::channel(4);
        tx.send(LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| Error::Closed("keep-alive"))?;
        let answers = self
            .lease
            .lease_keep_alive(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(KeepAlive { id, tx, answers })
    }

    /// Watches every key starting with `prefix` from `start_revision` on.
    pub(super) async fn watch_prefix(
        &mut self,
        prefix: &[u8],
        start_revision: i64,
    ) -> Result<Watch, Error> {
        let (tx, rx) = mpsc::channel(1);
        let create = WatchCreateRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            start_revision,
            ..WatchCreateRequest::default()
        };
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        })
        .await
        .map_err(|_| Error::Closed("watch"))?;
        let events = self
            .watch
            .watch(ReceiverStream::new(rx))
            .await?
            .into_inner();
        Ok(Watch { _tx: tx, events })
    }
}

/// What [`Client::put_if_absent`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Created {
    /// The key was absent; the value is there now.
    Yes,
    /// Another value was there already (left as it was): this one.
    No(Vec<u8>),
}

/// A lease's keep-alive stream: [`KeepAlive::send`] asks, [`KeepAlive::message`]
/// reads the answers (a TTL of 0 or less: the lease is gone).
pub(super) struct KeepAlive {
    id: i64,
    tx: mpsc::Sender<LeaseKeepAliveRequest>,
    answers: Streaming<LeaseKeepAliveResponse>,
}

impl KeepAlive {
    pub(super) async fn send(&mut self) -> Result<(), Error> {
        self.tx
            .send(LeaseKeepAliveRequest { id: self.id })
            .await
            .map_err(|_| Error::Closed("keep-alive"))
    }

    /// The next answer; `None` once etcd closed the stream.
    pub(super) async fn message(&mut self) -> Result<Option<LeaseKeepAliveResponse>, Error> {
        Ok(self.answers.message().await?)
    }
}

/// A watch stream; dropping it ends the watch.
pub(super) struct Watch {
    /// Held so that the request side stays open (closing it ends the stream).
    _tx: mpsc::Sender<WatchRequest>,
    events: Streaming<WatchResponse>,
}

impl Watch {
    /// The next batch of events; `None` once etcd closed the stream.
    pub(super) async fn message(&mut self) -> Result<Option<WatchResponse>, Error> {
        Ok(self.events.message().await?)
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_is_the_key_after_the_prefix() {
        assert_eq!(prefix_end(b"/signpost/"), b"/signpost0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }
}
