//! A layer as the core serves it. Each layer (`ai`, `mcp`, `agent`) is a value implementing
//! [`Layer`]: it builds a compiled config into a runtime (one config version, ready to serve) and
//! answers a request with a runtime. The core holds each gateway's current runtime in an
//! [`ArcSwap`] and swaps it atomically on reload: requests in flight finish on the version they
//! started with. The core knows layers only through this trait; which layers a process serves is
//! decided above the gateway (`crate::serve`), in a [`Layers`] list.

use crate::config::{CompiledGateway, GatewayId};
use crate::gateway::response::Body;
use crate::gateway::server::{self, Shutdown};
use crate::gateway::store::StoreSetupError;
use crate::gateway::telemetry;
use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::Instrument;

/// One gateway layer.
pub trait Layer: Send + Sync + 'static {
    /// One config version, ready to serve.
    type Runtime: Send + Sync + 'static;
    /// The layer of the configs it serves.
    const KIND: crate::config::Layer;

    /// Builds a config version; an error leaves the version in service as it is.
    fn build(&self, gw: &CompiledGateway) -> Result<Self::Runtime, BuildError>;

    /// Answers one request with a config version. Never fails: every error is a response in
    /// the protocol's own format.
    fn handle(
        rt: Arc<Self::Runtime>,
        req: Request<Incoming>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static;
}

/// Why a config version cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The config is for another layer.
    #[error("gateway {gateway} is not a gateway of the {layer} layer")]
    WrongLayer {
        /// The config's gateway.
        gateway: GatewayId,
        /// The layer asked to build it.
        layer: crate::config::Layer,
    },
    /// A credential the config names is not in the bundle.
    #[error("{owner}: credential {id:?} is missing")]
    MissingCredential {
        /// What needs it (`backend openai`, `MCP server 'github'`).
        owner: String,
        /// The credential id.
        id: String,
    },
    /// A value of the config cannot be used.
    #[error("{owner}: {what}")]
    Invalid {
        /// Where it is (`backend openai`, `identityTokenHeader`).
        owner: String,
        /// What is wrong with it.
        what: String,
    },
    /// The store cannot be set up.
    #[error(transparent)]
    Store(#[from] StoreSetupError),
}

impl From<crate::gateway::egress::EgressConfigError> for BuildError {
    fn from(e: crate::gateway::egress::EgressConfigError) -> Self {
        BuildError::invalid("egress", e.0)
    }
}

impl BuildError {
    /// A value of `owner` that cannot be used.
    pub fn invalid(owner: impl Into<String>, what: impl Into<String>) -> BuildError {
        BuildError::Invalid { owner: owner.into(), what: what.into() }
    }

    /// Low-cardinality name for metrics and events.
    pub fn category(&self) -> &'static str {
        match self {
            BuildError::WrongLayer { .. } => "wrong_layer",
            BuildError::MissingCredential { .. } => "missing_credential",
            BuildError::Invalid { .. } => "invalid",
            BuildError::Store(_) => "store",
        }
    }

    /// Refuses a config of another layer than `L`'s.
    pub fn check_layer<L: Layer>(gw: &CompiledGateway) -> Result<(), BuildError> {
        if gw.config.gateway.layer == L::KIND {
            Ok(())
        } else {
            Err(BuildError::WrongLayer { gateway: gw.config.gateway.clone(), layer: L::KIND })
        }
    }
}

/// Serves `L` on `listener` with the config version in `current` (loaded per request) until
/// `shutdown`; each request runs in its span ([`telemetry::span::request`]), which the layer
/// fills in and keeps until the request's record is written.
pub async fn serve<L: Layer>(
    listener: TcpListener,
    gateway: Arc<str>,
    current: Arc<ArcSwap<L::Runtime>>,
    shutdown: Shutdown,
) {
    server::serve(
        listener,
        move |req: Request<Incoming>| {
            let span =
                telemetry::span::request(&gateway, L::KIND, req.method(), req.uri().path(), req.headers());
            L::handle(current.load_full(), req).instrument(span)
        },
        shutdown,
    )
    .await
}

/// A served gateway's config holder, whatever its layer.
pub trait Holder: Send + Sync {
    /// Builds `gw` and swaps it in; an error leaves the version in service.
    fn swap(&self, gw: &CompiledGateway) -> Result<(), BuildError>;
}

struct Held<L: Layer> {
    layer: Arc<L>,
    current: Arc<ArcSwap<L::Runtime>>,
}

impl<L: Layer> Holder for Held<L> {
    fn swap(&self, gw: &CompiledGateway) -> Result<(), BuildError> {
        self.current.store(Arc::new(self.layer.build(gw)?));
        Ok(())
    }
}

/// A layer as the supervisor drives it, whatever its runtime type.
pub trait Serves: Send + Sync {
    /// The layer of the configs it serves.
    fn kind(&self) -> crate::config::Layer;

    /// Builds `gw` and serves it on `listener` until `shutdown`: the holder to swap its config
    /// with, and the serving task.
    fn start(
        &self,
        listener: TcpListener,
        gw: &CompiledGateway,
        shutdown: Shutdown,
    ) -> Result<(Box<dyn Holder>, JoinHandle<()>), BuildError>;
}

impl<L: Layer> Serves for Arc<L> {
    fn kind(&self) -> crate::config::Layer {
        L::KIND
    }

    fn start(
        &self,
        listener: TcpListener,
        gw: &CompiledGateway,
        shutdown: Shutdown,
    ) -> Result<(Box<dyn Holder>, JoinHandle<()>), BuildError> {
        let current = Arc::new(ArcSwap::from_pointee(self.build(gw)?));
        let gateway: Arc<str> =
            Arc::from(format!("{}/{}", gw.config.gateway.namespace, gw.config.gateway.name));
        let task = tokio::spawn(serve::<L>(listener, gateway, current.clone(), shutdown));
        Ok((Box::new(Held { layer: self.clone(), current }), task))
    }
}

/// The layers a process serves.
#[derive(Clone, Default)]
pub struct Layers(Vec<Arc<dyn Serves>>);

impl Layers {
    /// No layer yet.
    pub fn new() -> Layers {
        Layers::default()
    }

    /// Adds a layer.
    pub fn with<L: Layer>(mut self, layer: L) -> Layers {
        self.0.push(Arc::new(Arc::new(layer)));
        self
    }

    /// The layer serving configs of `kind`.
    pub fn get(&self, kind: crate::config::Layer) -> Option<&dyn Serves> {
        self.0.iter().find(|l| l.kind() == kind).map(|l| &**l)
    }
}
