//! The command line of `cairn operator`: the subcommand, its flags and the environment it reads,
//! in one place. `main.rs` flattens [`Command`] into `cairn`'s subcommands; the chart's test
//! parses the operator container's args with it (tests/chart.rs), so the two cannot drift apart.

use super::Options;
use crate::config::{OtlpConfig, OtlpProtocol};
use std::net::{IpAddr, SocketAddr};

/// Environment read outside the flags: the log filter (`RUST_LOG`, read by
/// `EnvFilter::try_from_default_env` in `main.rs`).
pub const LOG_FILTER_ENV: &str = tracing_subscriber::EnvFilter::DEFAULT_ENV;

/// The `operator` subcommand of `cairn`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Command {
    /// Run the operator: watch the Cairn kinds and keep every gateway's objects and config
    /// written, and every object's status true. Logs JSON to stderr.
    Operator(Args),
}

/// Flags of `cairn operator`.
#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// Namespace to watch (repeat for more). Default: all namespaces.
    #[arg(long = "namespace", short = 'n')]
    pub namespaces: Vec<String>,
    /// The Cairn image gateway pods (and MCP bridge init containers) run; its entrypoint is
    /// `cairn`.
    #[arg(long, env = "CAIRN_GATEWAY_IMAGE", default_value = concat!("cairn:", env!("CARGO_PKG_VERSION")))]
    pub gateway_image: String,
    /// Pull policy of that image (Always, IfNotPresent, Never). Default: the cluster's.
    #[arg(long, env = "CAIRN_GATEWAY_IMAGE_PULL_POLICY", value_parser = ["Always", "IfNotPresent", "Never"])]
    pub gateway_image_pull_policy: Option<String>,
    /// Cluster DNS domain, for the addresses of deployed MCP servers.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Port of /metrics, /healthz and /readyz.
    #[arg(long, default_value_t = 9090)]
    pub admin_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub address: IpAddr,
    /// Elect one writing replica through a Lease (`--leader-elect=false`: always write).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the Lease. Default: the pod's (POD_NAMESPACE, then the in-cluster
    /// ServiceAccount's namespace), else `default`.
    #[arg(long, env = "POD_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// Name of the Lease (one per installation: two operators sharing it elect one leader
    /// between them).
    #[arg(long, default_value = "cairn-operator")]
    pub lease_name: String,
    /// This replica's identity in the Lease and in Events. Default: POD_NAME, else
    /// hostname-pid.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Log format.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,
    /// OTLP endpoint the operator's spans (one per reconcile and per namespace compile) are
    /// exported to: for `grpc` the collector's URL (`http://otel-collector:4317`), for
    /// `http/protobuf` its base URL (`/v1/traces` is appended, as for the variable). Default:
    /// none, nothing is exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_parser = otlp_endpoint)]
    pub otlp_endpoint: Option<String>,
    /// OTLP transport.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_PROTOCOL", default_value = "grpc", value_parser = ["grpc", "http/protobuf"])]
    pub otlp_protocol: String,
}

/// An OTLP endpoint: an `http://` or `https://` URL, or empty (none).
fn otlp_endpoint(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        _ if s.is_empty() => Ok(String::new()),
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(s.to_string()),
        _ => Err("an OTLP endpoint is an http:// or https:// URL, such as http://otel-collector:4317".into()),
    }
}

impl Args {
    /// Where the operator's spans are exported (every span is sampled), if anywhere.
    pub fn otlp(&self) -> Option<OtlpConfig> {
        let endpoint = self.otlp_endpoint.as_deref().filter(|e| !e.is_empty())?;
        let (endpoint, protocol) = match self.otlp_protocol.as_str() {
            "http/protobuf" => {
                (format!("{}/v1/traces", endpoint.trim_end_matches('/')), OtlpProtocol::HttpProtobuf)
            }
            _ => (endpoint.to_string(), OtlpProtocol::Grpc),
        };
        Some(OtlpConfig { endpoint, protocol, sampling_ratio: 1.0 })
    }

    /// The operator's options; the defaults that depend on where it runs are resolved here.
    pub fn options(self) -> Options {
        Options {
            namespaces: self.namespaces,
            settings: super::render::Settings {
                image: self.gateway_image,
                image_pull_policy: self.gateway_image_pull_policy,
            },
            cluster_domain: self.cluster_domain,
            http_address: SocketAddr::new(self.address, self.admin_port),
            leader_elect: self.leader_elect,
            lease_namespace: crate::serve::cluster_namespace(self.lease_namespace)
                .unwrap_or_else(|_| "default".into()),
            lease_name: self.lease_name,
            identity: self.identity.filter(|s| !s.is_empty()).unwrap_or_else(default_identity),
        }
    }
}

/// hostname-pid.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_else(|_| "cairn".into());
    format!("{}-{}", host.trim(), std::process::id())
}
