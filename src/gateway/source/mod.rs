//! Where a gateway process gets its compiled configs: [`file`] (a config and credentials file,
//! polled) or [`kube`] (the gateway's ConfigMaps and Secret, watched through the Kubernetes API).
//! Both hand complete configs to the [`crate::gateway::supervisor::Supervisor`], which swaps them
//! in or keeps the last good one.

pub mod file;
pub mod kube;
