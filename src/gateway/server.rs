//! The listener: serving one gateway (any layer, or the MCP bridge) on its port with raw hyper
//! (HTTP/1.1 and h2c), TCP_NODELAY, graceful shutdown; and reading a request body whole.

use crate::gateway::limits;
use crate::gateway::response::Body;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long open connections may take to finish after shutdown was asked.
pub const DRAIN: Duration = Duration::from_secs(10);

/// A shutdown signal: `true` once shutdown began.
pub type Shutdown = watch::Receiver<bool>;

/// Serves `handler` on `listener` until `shutdown` (every layer and the MCP bridge): HTTP/1.1
/// and h2c, TCP_NODELAY; on shutdown it stops accepting and gives open connections [`DRAIN`]
/// to finish.
pub async fn serve<H, F>(listener: TcpListener, handler: H, mut shutdown: Shutdown)
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let mut conns = JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            _ = stopped(&mut shutdown) => break,
            a = listener.accept() => a,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let mut stop = shutdown.clone();
        conns.spawn(async move {
            let service = service_fn(move |req| {
                // Boxed: a handler's future is kilobytes, and hyper moves the future it gets
                // (a copy of all of it per move); a box moves as a pointer.
                let f = Box::pin(handler(req));
                async move { Ok::<_, Infallible>(f.await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            // Room above the core's header limits, so the layers answer those in their format.
            builder.http1().max_headers(limits::HYPER_MAX_HEADERS);
            builder.http2().max_header_list_size(limits::HYPER_MAX_HEADER_LIST_BYTES);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn.as_mut()).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, async { while conns.join_next().await.is_some() {} }).await;
}

/// Why a request body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Over the size bound.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    /// The connection failed mid-body (the transport's message).
    #[error("{0}")]
    Read(String),
}

/// Reads a request body whole, at most `max` bytes, in a task of its own rather than in the
/// connection's. Taking a chunk from hyper's body channel wakes the channel's sender, which is
/// the connection task itself when the handler runs in it; tokio requeues a task woken while it
/// runs as if it yielded, and wakes another worker to steal it: a futex wake-up and a thread hop
/// per request. From a task of its own the wake finds the connection task idle, and the reader's
/// completion wakes it as an ordinary wake, on this thread (docs/benchmarks.md).
pub async fn read_body<B>(body: B, max: usize) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let read = tokio::spawn(async move {
        let body = body.map_err(|e| BodyError::Read(e.into().to_string()));
        match http_body_util::Limited::new(body, max).collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) => Err(match e.downcast::<BodyError>() {
                Ok(e) => *e,
                Err(e) if e.is::<http_body_util::LengthLimitError>() => BodyError::TooLarge(max),
                Err(e) => BodyError::Read(e.to_string()),
            }),
        }
    });
    read.await.unwrap_or_else(|e| Err(BodyError::Read(e.to_string())))
}

/// Resolves once shutdown began.
pub async fn stopped(rx: &mut Shutdown) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Resolves on SIGINT or SIGTERM.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
