//! SPDY/3.1, server side, as far as Kubernetes' streaming protocols use
//! it (`kubectl port-forward` upgrades to it, or tunnels it through
//! WebSocket binary frames): frames ([`frame`]), zlib-compressed header
//! blocks with the protocol's dictionary ([`headers`]) and a connection
//! that hands out the streams a client opens ([`session`]).

pub mod frame;
pub mod headers;
pub mod session;

/// Why a SPDY connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// The peer broke the protocol.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// A header block could not be (de)compressed.
    #[error("SPDY header compression: {0}")]
    Compression(String),
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
