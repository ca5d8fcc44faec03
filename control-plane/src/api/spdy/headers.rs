//! SPDY/3 header blocks: a count and length-prefixed name/value pairs,
//! compressed with one zlib stream per direction of a connection, primed
//! with the protocol's dictionary and flushed (sync) after each block.

use std::sync::OnceLock;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::SpdyError;

/// Header names and values, names lowercase as SPDY/3 requires.
pub type Headers = Vec<(String, String)>;

/// Largest decompressed header block accepted (a hostile peer could
/// otherwise make a few bytes expand without bound).
const MAX_BLOCK: usize = 256 * 1024;

/// The SPDY/3 zlib dictionary (draft 3, section 2.6.10.1): common header
/// names as length-prefixed strings, then common values run together.
fn dictionary() -> &'static [u8] {
    static DICTIONARY: OnceLock<Vec<u8>> = OnceLock::new();
    DICTIONARY.get_or_init(|| {
        const NAMES: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const VALUES: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505",
            "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request",
            "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service Unavailable",
            "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ",
            "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT",
            "chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,",
            "text/plain,text/javascript,publicprivatemax-age=gzip,deflate,sdch",
            "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::with_capacity(1423);
        for name in NAMES {
            d.extend_from_slice(&(name.len() as u32).to_be_bytes());
            d.extend_from_slice(name.as_bytes());
        }
        d.extend_from_slice(VALUES.as_bytes());
        d
    })
}

/// The compression state of one connection (both directions).
pub struct HeaderCodec {
    compress: Compress,
    decompress: Decompress,
}

impl HeaderCodec {
    /// A fresh codec for a new connection.
    pub fn new() -> Result<Self, SpdyError> {
        let mut compress = Compress::new(Compression::default(), true);
        compress
            .set_dictionary(dictionary())
            .map_err(|e| SpdyError::Compression(e.to_string()))?;
        Ok(Self {
            compress,
            decompress: Decompress::new(true),
        })
    }

    /// Serialises and compresses one header block.
    pub fn encode(&mut self, headers: &[(String, String)]) -> Result<Vec<u8>, SpdyError> {
        let mut plain = Vec::new();
        plain.extend_from_slice(&(headers.len() as u32).to_be_bytes());
        for (name, value) in headers {
            for s in [name, value] {
                plain.extend_from_slice(&(s.len() as u32).to_be_bytes());
                plain.extend_from_slice(s.as_bytes());
            }
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input = &plain[..];
        loop {
            out.reserve(256);
            let before = self.compress.total_in();
            self.compress
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Compression(e.to_string()))?;
            let used = (self.compress.total_in() - before) as usize;
            input = &input[used..];
            // A sync flush is complete once the input is consumed and the
            // output buffer was not filled to the brim.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }

    /// Decompresses and parses one header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let plain = self.inflate(block)?;
        parse_block(&plain)
    }

    fn inflate(&mut self, mut input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out = Vec::with_capacity(block_guess(input.len()));
        loop {
            if out.len() >= MAX_BLOCK {
                return Err(SpdyError::Protocol("header block too large".into()));
            }
            out.reserve(1024);
            let before = self.decompress.total_in();
            let result = self
                .decompress
                .decompress_vec(input, &mut out, FlushDecompress::Sync);
            let used = (self.decompress.total_in() - before) as usize;
            input = &input[used..];
            match result {
                Ok(Status::StreamEnd) => return Ok(out),
                Ok(_) if input.is_empty() && out.len() < out.capacity() => return Ok(out),
                Ok(Status::BufError) if input.is_empty() => return Ok(out),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.decompress
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Compression(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Compression(e.to_string())),
            }
        }
    }
}

fn block_guess(compressed: usize) -> usize {
    (compressed * 4).clamp(256, MAX_BLOCK)
}

fn parse_block(plain: &[u8]) -> Result<Headers, SpdyError> {
    let mut rest = plain;
    let mut take = |n: usize| -> Result<&[u8], SpdyError> {
        if rest.len() < n {
            return Err(SpdyError::Protocol("truncated header block".into()));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let number = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let count = number(take(4)?);
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let n = number(take(4)?);
        let name = String::from_utf8_lossy(take(n)?).to_ascii_lowercase();
        let n = number(take(4)?);
        let value = String::from_utf8_lossy(take(n)?).into_owned();
        headers.push((name, value));
    }
    Ok(headers)
}

/// The first value of header `name`.
pub fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.split('\0').next().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dictionary_is_the_protocols() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert_eq!(&d[..11], b"\0\0\0\x07options");
        assert!(d.ends_with(b",*,enq=0."));
    }

    #[test]
    fn blocks_round_trip_through_one_shared_stream_per_direction() {
        let mut client = HeaderCodec::new().expect("codec");
        let mut server = HeaderCodec::new().expect("codec");
        // The decoding side of one codec reads what the other's encoder wrote.
        for port in ["80", "8080", "9090"] {
            let headers = vec![
                ("streamtype".to_string(), "data".to_string()),
                ("port".to_string(), port.to_string()),
                ("requestid".to_string(), "0".to_string()),
            ];
            let block = client.encode(&headers).expect("encode");
            assert_eq!(server.decode(&block).expect("decode"), headers);
        }
    }

    #[test]
    fn a_block_with_lengths_past_its_end_is_an_error() {
        let mut plain = 1u32.to_be_bytes().to_vec();
        plain.extend_from_slice(&100u32.to_be_bytes());
        plain.extend_from_slice(b"port");
        assert!(parse_block(&plain).is_err());
    }

    #[test]
    fn values_are_read_up_to_the_first_nul() {
        let h = vec![("port".to_string(), "80\x0081".to_string())];
        assert_eq!(get(&h, "port"), Some("80"));
        assert_eq!(get(&h, "other"), None);
    }
}
