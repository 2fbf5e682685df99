//! What a bench's roost asked of PostgreSQL: a counting proxy between
//! roost and the server, and the bytes of WAL the server wrote.
//!
//! Why: on a shared virtual machine the same work runs faster or slower
//! from one hour to the next, so runs per second alone mix the cost of
//! coordination with the machine's speed. The round trips, statements and
//! WAL bytes a run costs do not depend on the machine; they say what
//! coordination costs, and the rate says what the machine made of it.
//!
//! The proxy listens on 127.0.0.1 and forwards every byte unchanged, both
//! ways, to the real server. It reads the frontend (client → server)
//! stream of protocol 3.0 and counts, over all its connections:
//!
//! - round trips: `Sync` (`S`) and simple `Query` (`Q`) messages. Each
//!   ends a request the client then waits on (the server answers it with
//!   `ReadyForQuery`): sqlx sends one `Sync` per statement outside a
//!   pipeline (two the first time a statement is prepared on a
//!   connection: `Parse`/`Describe`/`Sync`, then `Bind`/`Execute`/`Sync`),
//!   and statements without parameters (`BEGIN`, `COMMIT`) as a simple
//!   `Query`. A client that pipelines several `Sync`s waits once for
//!   them all, so there the count is an upper bound on the waits.
//! - statements: `Execute` (`E`) and simple `Query` messages (one query
//!   string each, which may in principle hold several statements).
//!
//! Before the startup message the frontend's messages have no type byte:
//! an `SSLRequest` or `GSSENCRequest` (8 bytes) gets a one-byte answer
//! from the server, `N` (go on in the clear: then the startup message
//! follows) or `S`/`G` (encryption: the proxy then forwards the
//! connection without counting anything on it); a `CancelRequest` is
//! forwarded and nothing else is counted on its connection. roost's sqlx
//! is built without TLS, so its connections stay in the clear and are
//! counted; psql asks for TLS and gets it where the server has
//! `ssl = on` (pass `sslmode=disable` to count it), and the proxy says on
//! stderr when a connection goes encrypted.
//!
//! WAL bytes are the distance between two readings of
//! `pg_current_wal_insert_lsn()` (where the next WAL record goes, so the
//! WAL generated, whether or not it was flushed yet). WAL is the whole
//! cluster's: anything else writing to the same server in between
//! (another database, autovacuum, a checkpoint's full-page images after
//! it) is counted too. The readings go straight to PostgreSQL, not
//! through the proxy.
//!
//! The proxy runs on a small tokio runtime of its own (threads named
//! `pg-wire`), so its CPU is neither roost's nor the bench clients' in
//! support/cpu.rs's account, when started before the server. It adds a
//! hop on loopback to every round trip, so a rate measured through it is
//! a little below one measured without it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;
const CANCEL_REQUEST: u32 = 80_877_102;
/// Longest startup-phase packet the proxy parses (a startup message with
/// its parameters is well under it); anything longer is not protocol 3.0
/// as the proxy knows it, and is forwarded without counting.
const MAX_STARTUP_PACKET: usize = 10_000;

/// Counts so far, over every connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireCounts {
    pub round_trips: u64,
    pub statements: u64,
}

#[derive(Default)]
struct Counters {
    round_trips: AtomicU64,
    statements: AtomicU64,
}

/// The counting proxy; stops when dropped.
pub struct PgCounter {
    counters: Arc<Counters>,
    /// The real server's URL, for the WAL readings.
    direct_url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for PgCounter {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A point to count from.
pub struct CostMark {
    wire: WireCounts,
    wal_lsn: String,
}

/// What PostgreSQL was asked for between a mark and now.
#[derive(Clone, Copy, Debug)]
pub struct PgCost {
    pub round_trips: u64,
    pub statements: u64,
    pub wal_bytes: i64,
}

impl PgCounter {
    /// Starts a proxy in front of the server `database_url` names (a
    /// `postgres://` URL with a TCP host); returns it and the same URL
    /// with the proxy's host and port.
    pub fn start(database_url: &str) -> (PgCounter, String) {
        let (host_port, proxied) = split_url(database_url);
        let server: SocketAddr = host_port
            .to_socket_addrs()
            .unwrap_or_else(|e| panic!("resolving {host_port}: {e}"))
            .next()
            .unwrap_or_else(|| panic!("{host_port} has no address"));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pg-wire")
            .enable_all()
            .build()
            .unwrap();
        let counters = Arc::new(Counters::default());
        let accepting = counters.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let counters = accepting.clone();
                tokio::spawn(async move {
                    if let Ok(upstream) = TcpStream::connect(server).await {
                        let _ = proxy(client, upstream, &counters).await;
                    }
                });
            }
        });
        let url = proxied(&format!("127.0.0.1:{port}"));
        (
            PgCounter {
                counters,
                direct_url: database_url.to_string(),
                runtime: Some(runtime),
            },
            url,
        )
    }

    /// Round trips and statements so far.
    pub fn counts(&self) -> WireCounts {
        WireCounts {
            round_trips: self.counters.round_trips.load(Ordering::Relaxed),
            statements: self.counters.statements.load(Ordering::Relaxed),
        }
    }

    pub async fn mark(&self) -> CostMark {
        CostMark {
            wal_lsn: wal_lsn(&self.direct_url).await,
            wire: self.counts(),
        }
    }

    pub async fn since(&self, mark: &CostMark) -> PgCost {
        let wire = self.counts();
        let wal_lsn = wal_lsn(&self.direct_url).await;
        PgCost {
            round_trips: wire.round_trips - mark.wire.round_trips,
            statements: wire.statements - mark.wire.statements,
            wal_bytes: wal_bytes_between(&self.direct_url, &mark.wal_lsn, &wal_lsn).await,
        }
    }
}

impl PgCost {
    /// One line for a bench's table: the cost per `item`.
    pub fn describe(&self, items: usize, item: &str) -> String {
        let per = |n: f64| n / items as f64;
        format!(
            "PostgreSQL per {item}: {:.2} round trips, {:.2} statements, {:.0} bytes of WAL",
            per(self.round_trips as f64),
            per(self.statements as f64),
            per(self.wal_bytes as f64)
        )
    }

    pub fn json(&self, items: usize) -> serde_json::Value {
        let per = |n: f64| n / items as f64;
        serde_json::json!({
            "round_trips_per_item": per(self.round_trips as f64),
            "statements_per_item": per(self.statements as f64),
            "wal_bytes_per_item": per(self.wal_bytes as f64),
            "round_trips": self.round_trips,
            "statements": self.statements,
            "wal_bytes": self.wal_bytes,
        })
    }
}

/// The server's WAL insert position, as text (`0/16B3748`).
pub async fn wal_lsn(url: &str) -> String {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let lsn = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let _ = db.close().await;
    lsn
}

/// Bytes of WAL from position `a` to `b`.
pub async fn wal_bytes_between(url: &str, a: &str, b: &str) -> i64 {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(url).await.unwrap();
    let bytes = sqlx::query_scalar("SELECT pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::bigint")
        .bind(a)
        .bind(b)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let _ = db.close().await;
    bytes
}

/// The `host:port` of a `postgres://` URL (port 5432 if none), and a
/// function that puts another `host:port` in its place.
fn split_url(url: &str) -> (String, impl Fn(&str) -> String + use<>) {
    let scheme_end = url
        .find("://")
        .unwrap_or_else(|| panic!("{url:?} is not a URL"))
        + 3;
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host_start = authority.rfind('@').map_or(0, |at| at + 1);
    let host_port = &authority[host_start..];
    assert!(
        !host_port.is_empty() && !host_port.contains(','),
        "the PostgreSQL URL {url:?} names no single TCP host"
    );
    // A port follows the last ':' unless that ':' is inside [an IPv6 host].
    let has_port = host_port
        .rfind(':')
        .is_some_and(|colon| !host_port[colon..].contains(']'));
    let target = if has_port {
        host_port.to_string()
    } else {
        format!("{host_port}:5432")
    };
    let before = url[..scheme_end + host_start].to_string();
    let after = rest[authority_end..].to_string();
    (target, move |proxy: &str| format!("{before}{proxy}{after}"))
}

/// One connection: the startup phase packet by packet, then the rest of
/// the frontend stream through a [`MessageScanner`], the backend stream
/// as it comes.
async fn proxy(
    mut client: TcpStream,
    mut server: TcpStream,
    counters: &Counters,
) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let counted = loop {
        // Length (including itself), then a code or protocol version.
        let mut head = [0u8; 8];
        client.read_exact(&mut head).await?;
        server.write_all(&head).await?;
        let len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        let code = u32::from_be_bytes(head[4..].try_into().unwrap());
        if !(8..=MAX_STARTUP_PACKET).contains(&len) {
            break false;
        }
        let mut body = vec![0u8; len - 8];
        client.read_exact(&mut body).await?;
        server.write_all(&body).await?;
        match code {
            SSL_REQUEST | GSSENC_REQUEST => {
                let mut answer = [0u8; 1];
                server.read_exact(&mut answer).await?;
                client.write_all(&answer).await?;
                if answer[0] != b'N' {
                    eprintln!(
                        "pg_wire: a connection went encrypted; nothing on it is counted \
                         (roost's sqlx has no TLS, so roost's connections are not among them)"
                    );
                    break false;
                }
            }
            CANCEL_REQUEST => break false,
            _ => break true,
        }
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let backend = async {
        let copied = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
        copied
    };
    let frontend = async {
        let mut scanner = MessageScanner::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                let _ = server_write.shutdown().await;
                return Ok::<_, std::io::Error>(());
            }
            if counted {
                let seen = scanner.feed(&buf[..n]);
                counters
                    .round_trips
                    .fetch_add(seen.round_trips, Ordering::Relaxed);
                counters
                    .statements
                    .fetch_add(seen.statements, Ordering::Relaxed);
            }
            server_write.write_all(&buf[..n]).await?;
        }
    };
    // Either side ending ends the connection (PostgreSQL's protocol has no
    // use for a half-closed one), so that a client gone without a word does
    // not leave the server's side open.
    tokio::select! {
        copied = backend => copied.map(drop),
        ended = frontend => ended,
    }
}

/// Reads the frontend's typed messages (1 type byte, a 4-byte big-endian
/// length that counts itself, the body) out of a stream that arrives in
/// pieces of any size. Keeps only the 5-byte header between pieces.
#[derive(Default)]
pub struct MessageScanner {
    header: [u8; 5],
    /// Header bytes read so far.
    have: usize,
    /// Body bytes of the current message still to pass.
    skip: usize,
}

impl MessageScanner {
    /// Counts the round trips and statements that start in `bytes`.
    pub fn feed(&mut self, mut bytes: &[u8]) -> WireCounts {
        let mut seen = WireCounts::default();
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have == 5 {
                match self.header[0] {
                    b'S' => seen.round_trips += 1,
                    b'Q' => {
                        seen.round_trips += 1;
                        seen.statements += 1;
                    }
                    b'E' => seen.statements += 1,
                    _ => {}
                }
                let len = u32::from_be_bytes(self.header[1..].try_into().unwrap()) as usize;
                self.skip = len.saturating_sub(4);
                self.have = 0;
            }
        }
        seen
    }
}
