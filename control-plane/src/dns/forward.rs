//! Forwarding names the cluster does not answer to the operator's
//! upstream resolvers (CoreDNS's `forward . /etc/resolv.conf`), only when
//! `--cluster-dns-upstream` names some: off by default, so nothing leaves
//! the machine unless asked.
//!
//! Deliberately small: the client's query is sent as it came (its id,
//! flags and OPT), over the protocol it came on, to each upstream in turn
//! until one answers within the timeout; the answer's records are then
//! re-sent by the server (which cuts them to the client's size). No
//! cache, no health checks, no concurrency limit: CoreDNS's `cache` and
//! `forward` do more.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::debug;

/// How long one upstream has to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The first upstream answer to `query` (raw bytes, id `id`), `None` if
/// none answered.
pub async fn forward(
    upstreams: &[SocketAddr],
    query: &[u8],
    id: u16,
    tcp: bool,
) -> Option<Message> {
    for upstream in upstreams {
        let reply = if tcp {
            tokio::time::timeout(TIMEOUT, over_tcp(*upstream, query)).await
        } else {
            tokio::time::timeout(TIMEOUT, over_udp(*upstream, query, id)).await
        };
        match reply {
            Ok(Ok(bytes)) => match Message::from_vec(&bytes) {
                Ok(message) if message.metadata.id == id => return Some(message),
                Ok(_) => debug!(%upstream, "upstream answered another id"),
                Err(error) => debug!(%upstream, %error, "undecodable upstream answer"),
            },
            Ok(Err(error)) => debug!(%upstream, %error, "upstream failed"),
            Err(_) => debug!(%upstream, "upstream timed out"),
        }
    }
    None
}

async fn over_udp(upstream: SocketAddr, query: &[u8], id: u16) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65_535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Anything else on this port is not our answer.
        if n >= 2 && buf[..2] == id.to_be_bytes() {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = tokio::net::TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "query too long"))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(query).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}
