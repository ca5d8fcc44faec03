//! The server side of one SPDY/3.1 connection over any byte stream: streams
//! the client opens are replied to and handed out with their headers, a
//! receiver of their data and a writer; pings are answered.
//!
//! Flow control is not enforced in either direction: the peers this serves
//! (Kubernetes' spdystream) neither send nor wait for WINDOW_UPDATE.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

use super::SpdyError;
use super::frame::{self, Frame};
use super::headers::{HeaderCodec, Headers};

/// Largest DATA frame sent.
const MAX_DATA: usize = 32 * 1024;

/// A stream the client opened.
pub struct Stream {
    /// Its id.
    pub id: u32,
    /// Its headers (names lowercase).
    pub headers: Headers,
    /// What the client sends on it; ends at the client's FIN or reset.
    pub data: mpsc::Receiver<Bytes>,
    /// Writes back on it.
    pub writer: StreamWriter,
}

/// Sends on one stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

impl StreamWriter {
    /// Sends `data` (split into frames); `false` once the connection is gone.
    pub async fn send(&self, data: &[u8]) -> bool {
        for chunk in data.chunks(MAX_DATA) {
            let frame = Frame::Data {
                stream_id: self.id,
                fin: false,
                data: Bytes::copy_from_slice(chunk),
            };
            if self.out.send(frame).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Half-closes the stream from this side (an empty DATA frame with FIN).
    pub async fn finish(&self) {
        let _ = self
            .out
            .send(Frame::Data {
                stream_id: self.id,
                fin: true,
                data: Bytes::new(),
            })
            .await;
    }

    /// Ends the stream abnormally.
    pub async fn reset(&self, status: u32) {
        let _ = self
            .out
            .send(Frame::RstStream {
                stream_id: self.id,
                status,
            })
            .await;
    }
}

/// Serves one connection until the client closes it or breaks the
/// protocol; each stream the client opens goes to `streams`.
pub async fn serve<IO>(io: IO, streams: mpsc::Sender<Stream>) -> Result<(), SpdyError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(io);
    let (out, outgoing) = mpsc::channel::<Frame>(64);
    let writing = tokio::spawn(write_frames(writer, outgoing));
    let result = read_frames(&mut reader, out, streams).await;
    // The writer ends once every StreamWriter is dropped; a closed peer
    // cannot be written to anyway.
    writing.abort();
    result
}

async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut frames: mpsc::Receiver<Frame>,
) -> Result<(), SpdyError> {
    let mut codec = HeaderCodec::new()?;
    let mut wire = Vec::new();
    while let Some(first) = frames.recv().await {
        wire.clear();
        frame::encode(&first, &mut codec, &mut wire)?;
        // Batch whatever else is queued into one write.
        while wire.len() < 64 * 1024 {
            match frames.try_recv() {
                Ok(next) => frame::encode(&next, &mut codec, &mut wire)?,
                Err(_) => break,
            }
        }
        writer.write_all(&wire).await?;
        writer.flush().await?;
    }
    Ok(())
}

async fn read_frames<R: AsyncRead + Unpin>(
    reader: &mut R,
    out: mpsc::Sender<Frame>,
    streams: mpsc::Sender<Stream>,
) -> Result<(), SpdyError> {
    let mut codec = HeaderCodec::new()?;
    let mut buffer = BytesMut::with_capacity(16 * 1024);
    let mut open: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        while let Some(frame) = frame::decode(&mut buffer, &mut codec)? {
            match frame {
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                } => {
                    let (tx, rx) = mpsc::channel(64);
                    if !fin {
                        open.insert(stream_id, tx);
                    }
                    let reply = Frame::SynReply {
                        stream_id,
                        fin: false,
                        headers: Vec::new(),
                    };
                    if out.send(reply).await.is_err() {
                        return Ok(());
                    }
                    let stream = Stream {
                        id: stream_id,
                        headers,
                        data: rx,
                        writer: StreamWriter {
                            id: stream_id,
                            out: out.clone(),
                        },
                    };
                    if streams.send(stream).await.is_err() {
                        return Ok(());
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    if let Some(tx) = open.get(&stream_id) {
                        // A consumer that stopped listening just drops data.
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            open.remove(&stream_id);
                        }
                        if fin {
                            open.remove(&stream_id);
                        }
                    } else {
                        debug!(stream_id, "data for a stream that is not open");
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    open.remove(&stream_id);
                }
                Frame::Ping { id } => {
                    if out.send(Frame::Ping { id }).await.is_err() {
                        return Ok(());
                    }
                }
                Frame::GoAway { .. } => return Ok(()),
                Frame::SynReply { .. }
                | Frame::Settings
                | Frame::Headers { .. }
                | Frame::WindowUpdate
                | Frame::Unknown => {}
            }
        }
        if reader.read_buf(&mut buffer).await? == 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client side good enough to drive the server in tests.
    struct Client {
        codec: HeaderCodec,
        io: tokio::io::DuplexStream,
        buffer: BytesMut,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            let mut wire = Vec::new();
            frame::encode(&frame, &mut self.codec, &mut wire).expect("encode");
            self.io.write_all(&wire).await.expect("write");
        }

        async fn next(&mut self) -> Frame {
            loop {
                if let Some(frame) =
                    frame::decode(&mut self.buffer, &mut self.codec).expect("decode")
                {
                    return frame;
                }
                let n = self.io.read_buf(&mut self.buffer).await.expect("read");
                assert!(n > 0, "server closed");
            }
        }
    }

    fn data(stream_id: u32, fin: bool, data: &'static [u8]) -> Frame {
        Frame::Data {
            stream_id,
            fin,
            data: Bytes::from_static(data),
        }
    }

    #[tokio::test]
    async fn streams_are_replied_to_and_carry_data_both_ways() {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let (tx, mut streams) = mpsc::channel(4);
        let server = tokio::spawn(serve(server_io, tx));
        let mut client = Client {
            codec: HeaderCodec::new().expect("codec"),
            io: client_io,
            buffer: BytesMut::new(),
        };
        let headers = vec![
            ("streamtype".to_string(), "data".to_string()),
            ("port".to_string(), "80".to_string()),
        ];
        client
            .send(Frame::SynStream {
                stream_id: 1,
                fin: false,
                headers: headers.clone(),
            })
            .await;
        assert_eq!(
            client.next().await,
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Vec::new()
            }
        );
        let mut stream = streams.recv().await.expect("stream");
        assert_eq!((stream.id, stream.headers.clone()), (1, headers));

        client.send(Frame::Ping { id: 1 }).await;
        assert_eq!(client.next().await, Frame::Ping { id: 1 });

        client.send(data(1, true, b"ping")).await;
        assert_eq!(stream.data.recv().await.as_deref(), Some(&b"ping"[..]));
        assert_eq!(stream.data.recv().await, None, "FIN ends the data");

        assert!(stream.writer.send(b"pong").await);
        stream.writer.finish().await;
        assert_eq!(client.next().await, data(1, false, b"pong"));
        assert_eq!(client.next().await, data(1, true, b""), "FIN, no data");
        drop(client);
        server.await.expect("join").expect("clean end");
    }
}
