//! The ceiling: a bare hyper reverse proxy (HTTP/1.1 in, pooled HTTP/1.1 out, TCP_NODELAY both
//! ways, bodies streamed frame by frame both ways). No auth, no parsing, no limits, no accounting:
//! what any gateway on this machine pays before doing anything of its own.

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::time::Duration;
use tokio::net::TcpListener;

type Body = http_body_util::Either<Incoming, http_body_util::Full<bytes::Bytes>>;

pub async fn run(port: u16, upstream: &str) -> std::io::Result<()> {
    let up: Uri = upstream.parse().map_err(std::io::Error::other)?;
    let authority: Authority =
        up.authority().cloned().ok_or_else(|| std::io::Error::other("upstream needs host:port"))?;
    let host = HeaderValue::from_str(authority.as_str()).map_err(std::io::Error::other)?;
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(4096)
        .build(conn);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let (client, authority, host) = (client.clone(), authority.clone(), host.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let (client, authority, host) = (client.clone(), authority.clone(), host.clone());
                async move {
                    let (mut parts, body) = req.into_parts();
                    let mut uri = parts.uri.into_parts();
                    uri.scheme = Some(Scheme::HTTP);
                    uri.authority = Some(authority);
                    parts.uri = Uri::from_parts(uri).expect("valid uri");
                    parts.headers.insert(http::header::HOST, host);
                    let resp: Response<Body> = match client.request(Request::from_parts(parts, body)).await {
                        Ok(r) => r.map(http_body_util::Either::Left),
                        Err(e) => Response::builder()
                            .status(502)
                            .body(http_body_util::Either::Right(http_body_util::Full::new(
                                e.to_string().into(),
                            )))
                            .expect("static response"),
                    };
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
