//! A blocking HTTP/1.1 client just big enough for the bridge's control API: one request per
//! connection (`Connection: close`), a bearer token, JSON in and out. Setup and teardown use
//! it, never the media loop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// The largest response we read; the API's answers are a few kilobytes.
const MAX_RESPONSE: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct Client {
    addr: SocketAddr,
    secret: String,
    timeout: Duration,
}

/// A response: status and JSON body (`Null` when empty or not JSON).
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Client {
    pub fn new(addr: SocketAddr, secret: String, timeout: Duration) -> Self {
        Self { addr, secret, timeout }
    }

    /// `method path` with an optional JSON body. Errors are transport failures and malformed
    /// responses; any HTTP status comes back as a [`Response`].
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Response, String> {
        let what = || format!("{method} http://{}{path}", self.addr);
        let mut stream =
            TcpStream::connect_timeout(&self.addr, self.timeout).map_err(|e| format!("{}: {e}", what()))?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|e| e.to_string())?;
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\n",
            self.addr,
            self.secret,
            body.len()
        );
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str("\r\n");
        request.push_str(&body);
        stream.write_all(request.as_bytes()).map_err(|e| format!("{}: {e}", what()))?;
        let mut raw = Vec::new();
        stream.take(MAX_RESPONSE as u64).read_to_end(&mut raw).map_err(|e| format!("{}: {e}", what()))?;
        parse_response(&raw).map_err(|e| format!("{}: {e}", what()))
    }

    /// [`call`](Self::call), requiring status `expected`.
    pub fn expect(
        &self,
        expected: u16,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let response = self.call(method, path, body)?;
        if response.status != expected {
            return Err(format!(
                "{method} {path}: status {} (expected {expected}): {}",
                response.status, response.body
            ));
        }
        Ok(response.body)
    }
}

/// Status line, headers, and a body framed by Content-Length, chunked encoding, or the
/// connection's end.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers in the response")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "response headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let rest = &raw[split + 4..];
    let body =
        if chunked { dechunk(rest)? } else { rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec() };
    Ok(Response { status, body: serde_json::from_slice(&body).unwrap_or(Value::Null) })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size")?;
        let size = std::str::from_utf8(&rest[..end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or_default().trim(), 16).ok());
        let size = size.ok_or("bad chunk size")?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_and_chunked_bodies() {
        let plain = b"HTTP/1.1 201 Created\r\ncontent-length: 12\r\n\r\n{\"id\":\"ab\"}\n";
        let response = parse_response(plain).unwrap();
        assert_eq!((response.status, response.body["id"].as_str()), (201, Some("ab")));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked).unwrap().body["a"], 1);
        let empty = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_response(empty).unwrap().status, 204);
        assert!(parse_response(b"garbage").is_err());
    }
}
