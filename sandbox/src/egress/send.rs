use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::uri::Scheme;
use http_body_util::BodyExt;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::body::BetweenBytesTimeout;
use super::{DeniedRequest, EgressPolicy};

/// The outcome of the policy check, before any packet leaves the host.
pub(super) enum Refusal {
    HostNotAllowed(String),
    AddressNotAllowed {
        host: String,
        addresses: Vec<IpAddr>,
    },
}

impl Refusal {
    pub(super) fn record(&self) -> DeniedRequest {
        match self {
            Self::HostNotAllowed(host) => DeniedRequest {
                host: host.clone(),
                reason: "host is not in the run's egress policy".into(),
            },
            Self::AddressNotAllowed { host, addresses } => DeniedRequest {
                host: host.clone(),
                reason: format!(
                    "resolves only to private, loopback or link-local addresses ({}) that the \
                     egress policy does not allow",
                    addresses
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        }
    }

    pub(super) fn error(&self) -> Error {
        match self {
            Self::HostNotAllowed(_) => Error::HttpRequestDenied,
            Self::AddressNotAllowed { .. } => Error::DestinationIpProhibited,
        }
    }
}

pub(super) enum SendError {
    Refused(Refusal),
    Failed(Error),
}

impl From<Error> for SendError {
    fn from(err: Error) -> Self {
        Self::Failed(err)
    }
}

impl From<hyper::Error> for SendError {
    fn from(err: hyper::Error) -> Self {
        Self::Failed(Error::from(err))
    }
}

/// The effective timeouts: what the guest asked for, never above the policy.
fn clamp(asked: Option<Duration>, ceiling: Duration) -> Duration {
    asked.map_or(ceiling, |asked| asked.min(ceiling))
}

/// Sends one request on behalf of a guest, enforcing the policy.
///
/// The body is taken out of `body` only once the request goes out; when the
/// request fails before that, the caller still holds it (see
/// [`super::hooks`] for why that matters).
pub(super) async fn send(
    policy: &EgressPolicy,
    parts: http::request::Parts,
    body: &mut Option<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<http::Response<WasiBody>, SendError> {
    let uri = &parts.uri;
    let use_tls = uri.scheme() == Some(&Scheme::HTTPS);
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?.to_string();
    let port = uri.port_u16().unwrap_or(if use_tls { 443 } else { 80 });
    // `Uri::host` keeps IPv6 brackets; the checks want the bare address.
    let bare_host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if !policy.allows(&bare_host, Some(port)) {
        return Err(SendError::Refused(Refusal::HostNotAllowed(bare_host)));
    }

    let connect_timeout = clamp(
        options.and_then(|o| o.connect_timeout),
        policy.timeouts.connect,
    );
    let first_byte_timeout = clamp(
        options.and_then(|o| o.first_byte_timeout),
        policy.timeouts.first_byte,
    );
    let between_bytes_timeout = clamp(
        options.and_then(|o| o.between_bytes_timeout),
        policy.timeouts.between_bytes,
    );

    let addresses = resolve(&bare_host, port, connect_timeout).await?;
    let permitted: Vec<SocketAddr> = addresses
        .iter()
        .copied()
        .filter(|addr| policy.ip_allowed(addr.ip()))
        .collect();
    if permitted.is_empty() {
        return Err(SendError::Refused(Refusal::AddressNotAllowed {
            host: bare_host,
            addresses: addresses.iter().map(SocketAddr::ip).collect(),
        }));
    }

    let tcp = connect_any(&permitted, connect_timeout).await?;
    let io: Box<dyn Stream> = if use_tls {
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone())
            .map_err(|_| Error::HttpRequestUriInvalid)?;
        let tls = tokio::time::timeout(connect_timeout, tls_connector().connect(name, tcp))
            .await
            .map_err(|_| Error::ConnectionTimeout)?
            .map_err(Error::Tls)?;
        Box::new(tls)
    } else {
        Box::new(tcp)
    };

    let (mut sender, connection) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(io)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // The connection task ends when the response body and the sender are
    // dropped, which happens at the latest when the run's store is dropped.
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "outbound connection closed with an error");
        }
    });

    // On the wire the request line carries only the path; the host travels
    // in the Host header that wasmtime-wasi-http already set.
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let body = body.take().ok_or(Error::InternalError(Some(
        "the request body was already sent".into(),
    )))?;
    let mut request = http::Request::from_parts(parts, body);
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;

    let response = tokio::time::timeout(first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| Error::ConnectionReadTimeout)??;
    Ok(response
        .map(|incoming| BetweenBytesTimeout::new(incoming, between_bytes_timeout).boxed_unsync()))
}

trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> Stream for T {}

async fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<SocketAddr>, Error> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Err(_) => Err(Error::DnsTimeout),
        Ok(Err(err)) => Err(Error::DnsError {
            rcode: Some(err.to_string()),
            info_code: None,
        }),
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                Err(Error::DestinationNotFound)
            } else {
                Ok(addrs)
            }
        }
    }
}

async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Error> {
    let mut last = Error::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(err)) => last = Error::Connect(err),
            Err(_) => last = Error::ConnectionTimeout,
        }
    }
    Err(last)
}

fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    });
    tokio_rustls::TlsConnector::from(config.clone())
}
