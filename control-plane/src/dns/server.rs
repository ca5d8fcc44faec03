//! The DNS server: a `hickory-server` [`RequestHandler`] over the shared
//! [`DnsIndex`], on one address over UDP and TCP.
//!
//! hickory parses the packets (a message shorter than a header gets no
//! answer, one that does not decode gets FORMERR, responses are dropped)
//! and cuts UDP answers that do not fit at the client's size with TC set;
//! this handler decides the rest: NOTIMP for opcodes other than QUERY,
//! FORMERR unless exactly one question, REFUSED for classes other than IN
//! and zone transfers, the [`answer`] otherwise, or, for a name outside
//! the cluster when upstreams are configured, the upstream's answer. A hand-made response
//! carries no EDNS of its own, so the client's OPT is answered with ours
//! (its payload size, at most 1,232 bytes, the DNS flag day's size):
//! without it every UDP answer would be cut at 512 bytes.
//!
//! The index is read under a lock held only while the answer is built
//! (no await inside), so the feed's writes never wait for a slow client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{DNSClass, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, info, warn};

use super::answer::{DnsConfig, answer};
use super::forward::forward;
use super::index::DnsIndex;

/// The index as the server and the feed share it.
pub type SharedIndex = Arc<RwLock<DnsIndex>>;

/// The largest UDP answer given to an EDNS client (RFC 9715's advice,
/// the DNS flag day 2020 value, CoreDNS's default buffer).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// How long a TCP connection may stay idle between queries.
const TCP_IDLE: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    /// Binding the UDP socket or TCP listener failed.
    #[error("binding the DNS server to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Query counters (Prometheus text through [`DnsMetrics::render`]).
#[derive(Debug, Default)]
pub struct DnsMetrics {
    udp: AtomicU64,
    tcp: AtomicU64,
    noerror: AtomicU64,
    nxdomain: AtomicU64,
    refused: AtomicU64,
    formerr: AtomicU64,
    notimp: AtomicU64,
    servfail: AtomicU64,
}

impl DnsMetrics {
    fn count(&self, tcp: bool, rcode: ResponseCode) {
        let proto = if tcp { &self.tcp } else { &self.udp };
        proto.fetch_add(1, Ordering::Relaxed);
        let by_code = match rcode {
            ResponseCode::NoError => &self.noerror,
            ResponseCode::NXDomain => &self.nxdomain,
            ResponseCode::Refused => &self.refused,
            ResponseCode::FormErr => &self.formerr,
            ResponseCode::NotImp => &self.notimp,
            _ => &self.servfail,
        };
        by_code.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters as Prometheus text, in CoreDNS's metric names.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP coredns_dns_requests_total Counter of DNS requests made per protocol.\n\
             # TYPE coredns_dns_requests_total counter\n",
        );
        for (proto, v) in [("udp", &self.udp), ("tcp", &self.tcp)] {
            out.push_str(&format!(
                "coredns_dns_requests_total{{proto=\"{proto}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out.push_str(
            "# HELP coredns_dns_responses_total Counter of response status codes.\n\
             # TYPE coredns_dns_responses_total counter\n",
        );
        for (rcode, v) in [
            ("NOERROR", &self.noerror),
            ("NXDOMAIN", &self.nxdomain),
            ("REFUSED", &self.refused),
            ("FORMERR", &self.formerr),
            ("NOTIMP", &self.notimp),
            ("SERVFAIL", &self.servfail),
        ] {
            out.push_str(&format!(
                "coredns_dns_responses_total{{rcode=\"{rcode}\"}} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        out
    }
}

/// The request handler: answers from the index.
pub struct DnsHandler {
    index: SharedIndex,
    config: DnsConfig,
    metrics: Arc<DnsMetrics>,
}

impl DnsHandler {
    /// A handler over `index`.
    pub fn new(index: SharedIndex, config: DnsConfig, metrics: Arc<DnsMetrics>) -> Self {
        Self {
            index,
            config,
            metrics,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for DnsHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        // Our OPT, echoing the client's: its size within ours.
        let edns = request.edns.as_ref().map(|theirs| {
            let mut ours = Edns::new();
            ours.set_max_payload(theirs.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            ours.set_dnssec_ok(theirs.flags().dnssec_ok);
            ours
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let tcp = matches!(request.protocol(), hickory_server::net::xfer::Protocol::Tcp);
        let queries = request.queries.queries();
        let early = if request.metadata.op_code != OpCode::Query {
            Some(ResponseCode::NotImp)
        } else if queries.len() != 1 {
            Some(ResponseCode::FormErr)
        } else if queries[0].query_class() != DNSClass::IN
            || matches!(queries[0].query_type(), RecordType::AXFR | RecordType::IXFR)
        {
            // Other classes and zone transfers are not served.
            Some(ResponseCode::Refused)
        } else {
            None
        };
        let result = if let Some(code) = early {
            metadata.response_code = code;
            self.metrics.count(tcp, code);
            response_handle
                .send_response(builder.build_no_records(metadata))
                .await
        } else {
            let query = &queries[0];
            let found = {
                let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
                answer(
                    &index,
                    &self.config,
                    query.original().name(),
                    query.query_type(),
                )
            };
            if found.outside && !self.config.upstreams.is_empty() {
                let upstream = forward(
                    &self.config.upstreams,
                    request.as_slice(),
                    request.metadata.id,
                    tcp,
                )
                .await;
                match upstream {
                    Some(m) => {
                        metadata.response_code = m.metadata.response_code;
                        metadata.recursion_available = m.metadata.recursion_available;
                        self.metrics.count(tcp, m.metadata.response_code);
                        let response = builder.build(
                            metadata,
                            m.answers.iter(),
                            m.authorities.iter(),
                            std::iter::empty(),
                            m.additionals.iter(),
                        );
                        response_handle.send_response(response).await
                    }
                    None => {
                        metadata.response_code = ResponseCode::ServFail;
                        self.metrics.count(tcp, ResponseCode::ServFail);
                        response_handle
                            .send_response(builder.build_no_records(metadata))
                            .await
                    }
                }
            } else {
                metadata.response_code = found.rcode;
                metadata.authoritative = found.authoritative;
                self.metrics.count(tcp, found.rcode);
                debug!(name = %query.name(), qtype = %query.query_type(), rcode = %found.rcode, "dns query");
                let response = builder.build(
                    metadata,
                    found.answers.iter(),
                    found.authorities.iter(),
                    std::iter::empty(),
                    found.additionals.iter(),
                );
                response_handle.send_response(response).await
            }
        };
        match result {
            Ok(info) => info,
            Err(error) => {
                debug!(%error, "sending a DNS response failed");
                let mut failed = Metadata::response_from_request(&request.metadata);
                failed.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata: failed,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

/// A running server: its addresses and the handle that stops it.
pub struct RunningDns {
    /// The UDP address it answers on.
    pub udp: SocketAddr,
    /// The TCP address it answers on (the same port as UDP).
    pub tcp: SocketAddr,
    server: Server<DnsHandler>,
}

impl RunningDns {
    /// Stops accepting queries and waits for the tasks to end.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            warn!(%error, "DNS server stopped with an error");
        }
    }

    /// Runs until the server stops (it stops only on shutdown or a socket
    /// failure).
    pub async fn wait(mut self) {
        if let Err(error) = self.server.block_until_done().await {
            warn!(%error, "DNS server stopped with an error");
        }
    }
}

/// How many UDP sockets share the port: one per core, at most
/// [`MAX_UDP_SOCKETS`].
fn udp_sockets() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_UDP_SOCKETS)
}

/// The most UDP sockets bound to the DNS port.
const MAX_UDP_SOCKETS: usize = 8;

/// A UDP socket on `addr` with `SO_REUSEPORT`, so that several can share
/// the port and the kernel spreads clients over them (by source address
/// and port).
fn reuseport_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}

/// Binds `addr` over UDP and TCP (port 0: a free port, the same for both)
/// and serves queries from `index`.
///
/// UDP is served by one socket per core on the same port
/// (`SO_REUSEPORT`): hickory receives and sends each socket's datagrams
/// from one task, so a single socket would put all of a busy server's
/// packet I/O on one core.
pub async fn serve(
    addr: SocketAddr,
    index: SharedIndex,
    config: DnsConfig,
    metrics: Arc<DnsMetrics>,
) -> Result<RunningDns, DnsServerError> {
    let bind_error = |source| DnsServerError::Bind { addr, source };
    // The TCP listener first: it holds the port alone, so the UDP sockets
    // that share it (SO_REUSEPORT) can never join another server's group,
    // which a UDP bind to port 0 with SO_REUSEPORT might pick (the kernel
    // counts a port shared that way as free for the same user).
    let mut attempt = 0;
    let (sockets, tcp) = loop {
        attempt += 1;
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(bind_error)?;
        let tcp_addr = tcp.local_addr().map_err(bind_error)?;
        let sockets: std::io::Result<Vec<_>> = (0..udp_sockets())
            .map(|_| reuseport_udp(tcp_addr))
            .collect();
        match sockets {
            Ok(sockets) => break (sockets, tcp),
            // A free TCP port whose UDP twin is taken: try another.
            Err(_) if addr.port() == 0 && attempt < 20 => continue,
            Err(e) => return Err(bind_error(e)),
        }
    };
    let tcp_addr = tcp.local_addr().map_err(bind_error)?;
    let udp_addr = sockets
        .first()
        .map_or(Ok(tcp_addr), |s| s.local_addr())
        .map_err(bind_error)?;
    let mut server = Server::new(DnsHandler::new(index, config, metrics));
    let udp_sockets = sockets.len();
    for socket in sockets {
        server.register_socket(socket);
    }
    server.register_listener(tcp, TCP_IDLE, 16);
    info!(udp = %udp_addr, udp_sockets, tcp = %tcp_addr, "serving cluster DNS");
    Ok(RunningDns {
        udp: udp_addr,
        tcp: tcp_addr,
        server,
    })
}

/// Serves `GET /metrics` (the counters as Prometheus text) on `listener`
/// until the task is dropped.
pub async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<DnsMetrics>) {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { metrics.render() }
        }),
    );
    if let Err(error) = axum::serve(listener, app).await {
        warn!(%error, "DNS metrics server stopped");
    }
}
