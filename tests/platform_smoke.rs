//! The test platform itself works: the control plane answers with the pinned version, kubectl and
//! helm are the built ones, redis-server starts and stops, and the Python SDKs import.

mod support;

use std::process::Command;

#[tokio::test]
async fn control_plane_kubectl_and_helm_have_the_pinned_versions() {
    let p = support::platform().await;
    let v = p.client.apiserver_version().await.unwrap();
    assert_eq!(v.major, "1");
    assert_eq!(v.minor, "35", "k8s-openapi is built for v1_35; server is {}", v.git_version);
    let client = p.kubectl_ok(&["version", "--client", "-o", "json"]);
    let client: serde_json::Value = serde_json::from_str(&client).unwrap();
    assert_eq!(client["clientVersion"]["gitVersion"], v.git_version.as_str());
    let out = p.helm().args(["version", "--template", "{{.Version}}"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("v3."));
}

#[test]
fn redis_starts_and_is_killed_on_drop() {
    let redis = support::Redis::start();
    redis.ping().unwrap();
    let port = redis.port;
    assert_eq!(redis.url, format!("redis://127.0.0.1:{port}"));
    drop(redis);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "redis-server still listens on {port} after drop"
    );
}

#[test]
fn python_venv_has_the_official_sdks() {
    let out = Command::new(support::python())
        .args(["-c", "import openai, anthropic, mcp, a2a; print('ok')"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
