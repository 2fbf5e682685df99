//! A lean HTTP/1.1 client for the benches' load: keep-alive connections on
//! tokio's `TcpStream`, each request written from a prepared head, each
//! response read by its `Content-Length`.
//!
//! Why not reqwest for the load: the benches run the server and the load
//! on the same two cores, so whatever the load generator spends is taken
//! from roost. reqwest (URL parsing, header maps, its pool, a `Value` per
//! reply) cost 48–80 µs of CPU per event on these machines, up to a sixth
//! of the whole budget per run; this client does one write and one or two reads per request,
//! as wrk does. The rest of the benches' calls stay on reqwest.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// POSTs JSON bodies to one path of one server, with a bearer token, over
/// as many keep-alive connections as there are requests in flight.
pub struct LeanPoster {
    addr: SocketAddr,
    /// The request up to the body's length: method, path, headers.
    head: String,
    idle: Mutex<Vec<Connection>>,
}

/// A server's answer: its status and body.
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

struct Connection {
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
}

impl LeanPoster {
    pub fn new(addr: SocketAddr, path: &str, token: &str) -> Self {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: "
        );
        Self {
            addr,
            head,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// Sends `body` on an idle connection (or a new one) and reads the
    /// whole reply; the connection is kept for the next request.
    pub async fn post(&self, body: &[u8]) -> Reply {
        let idle = self.idle.lock().unwrap().pop();
        let mut conn = match idle {
            Some(conn) => conn,
            None => Connection::open(self.addr).await,
        };
        let mut request = Vec::with_capacity(self.head.len() + 8 + body.len());
        request.extend_from_slice(self.head.as_bytes());
        request.extend_from_slice(format!("{}\r\n\r\n", body.len()).as_bytes());
        request.extend_from_slice(body);
        // The server closes a connection left idle past its header deadline
        // (after a long paced phase) without reading what comes next: the
        // request is sent again once on a new one, as HTTP clients do with
        // a stale keep-alive connection.
        let reply = match conn.exchange(&request).await {
            Some(reply) => reply,
            None => {
                conn = Connection::open(self.addr).await;
                conn.exchange(&request)
                    .await
                    .expect("the server closed a new connection before replying")
            }
        };
        self.idle.lock().unwrap().push(conn);
        reply
    }
}

impl Connection {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::with_capacity(1024),
        }
    }

    /// Writes `request` and reads its reply; `None` if the server had
    /// closed the connection (nothing of a reply came).
    async fn exchange(&mut self, request: &[u8]) -> Option<Reply> {
        if self.stream.write_all(request).await.is_err() {
            return None;
        }
        if self.buf.is_empty() && !self.try_fill().await {
            return None;
        }
        Some(self.read_reply().await)
    }

    /// Reads one response: the head up to the blank line, then exactly
    /// `Content-Length` bytes of body. (roost's JSON replies all carry a
    /// length; a chunked one fails loudly rather than being misread.)
    async fn read_reply(&mut self) -> Reply {
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at + 4;
            }
            self.fill().await;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).expect("an ASCII response head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP status line: {head:?}"));
        let length: usize = head
            .split("\r\n")
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("a response without Content-Length: {head:?}"));
        while self.buf.len() < head_end + length {
            self.fill().await;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Reply { status, body }
    }

    async fn fill(&mut self) {
        assert!(
            self.try_fill().await,
            "the server closed a keep-alive connection mid-reply"
        );
    }

    /// Reads what has come; false if the server closed the connection.
    async fn try_fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(n) if n > 0 => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            _ => false,
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
