//! SPDY/3.1 frames on the wire: an 8-byte header (control bit, version and
//! type, or stream id; flags; 24-bit length) and the frame's payload.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::SpdyError;
use super::headers::{HeaderCodec, Headers};

/// The only version spoken.
const VERSION: u16 = 3;
/// Last frame of its stream from this side.
pub const FLAG_FIN: u8 = 0x01;
/// Largest frame accepted (control frames carry at most a header block).
pub const MAX_FRAME: usize = 1 << 20;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status: the stream is not known.
pub const INVALID_STREAM: u32 = 2;
/// RST_STREAM status: the stream was refused.
pub const REFUSED_STREAM: u32 = 3;
/// RST_STREAM status: something failed on this side.
pub const INTERNAL_ERROR: u32 = 6;

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A peer opens a stream.
    SynStream {
        /// Stream id (odd from the client).
        stream_id: u32,
        /// No more data follows from the opener.
        fin: bool,
        /// The stream's headers.
        headers: Headers,
    },
    /// The answer to a SYN_STREAM.
    SynReply {
        /// Stream id.
        stream_id: u32,
        /// No data follows.
        fin: bool,
        /// Reply headers.
        headers: Headers,
    },
    /// Abnormal end of a stream.
    RstStream {
        /// Stream id.
        stream_id: u32,
        /// Why.
        status: u32,
    },
    /// Connection settings (read and ignored: nothing here depends on them).
    Settings,
    /// Liveness check; the receiver echoes the peer's.
    Ping {
        /// Ping id.
        id: u32,
    },
    /// The sender will open no more streams.
    GoAway {
        /// Last stream the sender processed.
        last_good: u32,
        /// Why.
        status: u32,
    },
    /// More headers for a stream (ignored).
    Headers {
        /// Stream id.
        stream_id: u32,
    },
    /// Flow control credit (ignored: Kubernetes' SPDY peers never wait for it).
    WindowUpdate,
    /// Payload of a stream.
    Data {
        /// Stream id.
        stream_id: u32,
        /// Last data of the stream from the sender.
        fin: bool,
        /// Bytes.
        data: Bytes,
    },
    /// A frame type this side does not know (skipped, as the spec requires).
    Unknown,
}

/// Takes one frame off the front of `buffer`, or `None` until it is whole.
pub fn decode(buffer: &mut BytesMut, codec: &mut HeaderCodec) -> Result<Option<Frame>, SpdyError> {
    if buffer.len() < 8 {
        return Ok(None);
    }
    let length = u32::from_be_bytes([0, buffer[5], buffer[6], buffer[7]]) as usize;
    if length > MAX_FRAME {
        return Err(SpdyError::Protocol(format!(
            "frame of {length} bytes is too large"
        )));
    }
    if buffer.len() < 8 + length {
        return Ok(None);
    }
    let head = buffer.split_to(8);
    let mut payload = buffer.split_to(length).freeze();
    let flags = head[4];
    let fin = flags & FLAG_FIN != 0;
    if head[0] & 0x80 == 0 {
        let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) & 0x7fff_ffff;
        return Ok(Some(Frame::Data {
            stream_id,
            fin,
            data: payload,
        }));
    }
    let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
    if version != VERSION {
        return Err(SpdyError::Protocol(format!(
            "unsupported SPDY version {version}"
        )));
    }
    let kind = u16::from_be_bytes([head[2], head[3]]);
    let need = |payload: &Bytes, n: usize| {
        if payload.len() < n {
            Err(SpdyError::Protocol(format!(
                "control frame {kind} is too short"
            )))
        } else {
            Ok(())
        }
    };
    let frame = match kind {
        SYN_STREAM | SYN_REPLY => {
            let opens = kind == SYN_STREAM;
            // SYN_STREAM's associated stream id, priority and slot: unused here.
            let unused = if opens { 6 } else { 0 };
            need(&payload, 4 + unused)?;
            let stream_id = payload.get_u32() & 0x7fff_ffff;
            payload.advance(unused);
            let headers = codec.decode(&payload)?;
            if opens {
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                }
            } else {
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers,
                }
            }
        }
        RST_STREAM => {
            need(&payload, 8)?;
            Frame::RstStream {
                stream_id: payload.get_u32() & 0x7fff_ffff,
                status: payload.get_u32(),
            }
        }
        SETTINGS => Frame::Settings,
        PING => {
            need(&payload, 4)?;
            Frame::Ping {
                id: payload.get_u32(),
            }
        }
        GOAWAY => {
            need(&payload, 8)?;
            Frame::GoAway {
                last_good: payload.get_u32() & 0x7fff_ffff,
                status: payload.get_u32(),
            }
        }
        HEADERS => {
            need(&payload, 4)?;
            let stream_id = payload.get_u32() & 0x7fff_ffff;
            // The block must still pass through the shared zlib stream.
            codec.decode(&payload)?;
            Frame::Headers { stream_id }
        }
        WINDOW_UPDATE => Frame::WindowUpdate,
        _ => Frame::Unknown,
    };
    Ok(Some(frame))
}

fn control(out: &mut Vec<u8>, kind: u16, flags: u8, payload: &[u8]) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u8(flags);
    let length = payload.len() as u32;
    out.put_slice(&length.to_be_bytes()[1..]);
    out.put_slice(payload);
}

/// Appends `frame` in wire form to `out`.
pub fn encode(frame: &Frame, codec: &mut HeaderCodec, out: &mut Vec<u8>) -> Result<(), SpdyError> {
    let flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
    match frame {
        Frame::SynStream {
            stream_id,
            fin,
            headers,
        }
        | Frame::SynReply {
            stream_id,
            fin,
            headers,
        } => {
            let mut payload = stream_id.to_be_bytes().to_vec();
            let kind = if matches!(frame, Frame::SynStream { .. }) {
                // No associated stream (4 bytes), priority and slot (2).
                payload.put_u32(0);
                payload.put_u16(0);
                SYN_STREAM
            } else {
                SYN_REPLY
            };
            payload.extend_from_slice(&codec.encode(headers)?);
            control(out, kind, flag(*fin), &payload);
        }
        Frame::RstStream { stream_id, status } => {
            let mut payload = stream_id.to_be_bytes().to_vec();
            payload.put_u32(*status);
            control(out, RST_STREAM, 0, &payload);
        }
        Frame::Ping { id } => control(out, PING, 0, &id.to_be_bytes()),
        Frame::GoAway { last_good, status } => {
            let mut payload = last_good.to_be_bytes().to_vec();
            payload.put_u32(*status);
            control(out, GOAWAY, 0, &payload);
        }
        Frame::Settings => control(out, SETTINGS, 0, &0u32.to_be_bytes()),
        Frame::Data {
            stream_id,
            fin,
            data,
        } => {
            out.put_u32(stream_id & 0x7fff_ffff);
            out.put_u8(flag(*fin));
            out.put_slice(&(data.len() as u32).to_be_bytes()[1..]);
            out.put_slice(data);
        }
        Frame::Headers { .. } | Frame::WindowUpdate | Frame::Unknown => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(frame: Frame) -> Frame {
        let mut sender = HeaderCodec::new().expect("codec");
        let mut receiver = HeaderCodec::new().expect("codec");
        let mut wire = Vec::new();
        encode(&frame, &mut sender, &mut wire).expect("encode");
        let mut buffer = BytesMut::from(&wire[..]);
        let decoded = decode(&mut buffer, &mut receiver)
            .expect("decode")
            .expect("whole frame");
        assert!(buffer.is_empty(), "the frame is consumed whole");
        decoded
    }

    #[test]
    fn control_and_data_frames_round_trip() {
        let headers = vec![
            ("streamtype".to_string(), "error".to_string()),
            ("port".to_string(), "8080".to_string()),
            ("requestid".to_string(), "0".to_string()),
        ];
        for frame in [
            Frame::SynStream {
                stream_id: 1,
                fin: false,
                headers: headers.clone(),
            },
            Frame::SynReply {
                stream_id: 3,
                fin: true,
                headers: Vec::new(),
            },
            Frame::RstStream {
                stream_id: 5,
                status: INTERNAL_ERROR,
            },
            Frame::Ping { id: 7 },
            Frame::GoAway {
                last_good: 9,
                status: 0,
            },
            Frame::Data {
                stream_id: 11,
                fin: true,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
        ] {
            assert_eq!(round_trip(frame.clone()), frame);
        }
    }

    #[test]
    fn a_partial_frame_waits_for_the_rest() {
        let mut codec = HeaderCodec::new().expect("codec");
        let mut wire = Vec::new();
        let data = Frame::Data {
            stream_id: 1,
            fin: false,
            data: Bytes::from_static(b"hello"),
        };
        encode(&data, &mut codec, &mut wire).expect("encode");
        let mut buffer = BytesMut::from(&wire[..wire.len() - 1]);
        assert_eq!(decode(&mut buffer, &mut codec).expect("decode"), None);
        buffer.extend_from_slice(&wire[wire.len() - 1..]);
        assert_eq!(decode(&mut buffer, &mut codec).expect("decode"), Some(data));
    }

    #[test]
    fn settings_and_unknown_frames_are_skipped_and_bad_ones_refused() {
        let mut codec = HeaderCodec::new().expect("codec");
        // SETTINGS with one entry, then an unknown type 0x7f.
        let mut wire = vec![
            0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 7, 0, 1, 0, 0,
        ];
        wire.extend_from_slice(&[0x80, 3, 0, 0x7f, 0, 0, 0, 2, 1, 2]);
        let mut buffer = BytesMut::from(&wire[..]);
        assert_eq!(
            decode(&mut buffer, &mut codec).expect("settings"),
            Some(Frame::Settings)
        );
        assert_eq!(
            decode(&mut buffer, &mut codec).expect("unknown"),
            Some(Frame::Unknown)
        );
        // SPDY/2 and a truncated RST_STREAM are protocol errors, not panics.
        let mut v2 = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(decode(&mut v2, &mut codec).is_err());
        let mut short = BytesMut::from(&[0x80, 3, 0, 3, 0, 0, 0, 2, 0, 1][..]);
        assert!(decode(&mut short, &mut codec).is_err());
        let mut huge = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(decode(&mut huge, &mut codec).is_err());
    }
}
