//! Outbound HTTP goes only where the egress policy says, checked after DNS
//! resolution, and a refused request never reaches the network.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use roost_sandbox::{EgressPolicy, RunLimits, Termination};
use serde_json::json;
use support::{PongServer, invocation, load, sandbox};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// forbidden-egress exits with this when the policy refused its request.
const EXIT_DENIED: i32 = 10;

#[tokio::test]
async fn allowed_loopback_host_is_reached() {
    let server = PongServer::start().await;
    let sandbox = sandbox();
    let guest = load(&sandbox, "forbidden-egress");
    let policy = EgressPolicy::allow_hosts(["127.0.0.1"]).allow_restricted_ip(LOCALHOST);
    let url = format!("http://127.0.0.1:{}/ping", server.port);
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!({ "url": url })),
            &RunLimits::default(),
            &policy,
        )
        .await
        .unwrap();
    assert!(
        outcome.succeeded(),
        "{outcome:?}\n{}",
        outcome.stderr.to_text()
    );
    assert_eq!(outcome.stdout.to_text(), "status 200\nbody pong\n");
    assert!(outcome.denied_requests.is_empty());
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn host_outside_the_policy_is_denied_before_connecting() {
    let server = PongServer::start().await;
    let sandbox = sandbox();
    let guest = load(&sandbox, "forbidden-egress");
    // The address would be allowed, but the host is not in the policy.
    let policy = EgressPolicy::allow_hosts(["api.slack.com"]).allow_restricted_ip(LOCALHOST);
    let url = format!("http://127.0.0.1:{}/ping", server.port);
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!({ "url": url })),
            &RunLimits::default(),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.termination,
        Termination::Exited { code: EXIT_DENIED },
        "{}",
        outcome.stderr.to_text()
    );
    assert!(
        outcome
            .stderr
            .to_text()
            .contains("denied by roost's egress policy")
    );
    assert_eq!(outcome.denied_requests.len(), 1);
    assert_eq!(outcome.denied_requests[0].host, "127.0.0.1");
    assert_eq!(
        server.accepted(),
        0,
        "a denied request must not reach the server"
    );
}

#[tokio::test]
async fn default_forbidden_host_is_denied() {
    let sandbox = sandbox();
    let guest = load(&sandbox, "forbidden-egress");
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!(null)),
            &RunLimits::default(),
            &EgressPolicy::deny_all(),
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.termination,
        Termination::Exited { code: EXIT_DENIED }
    );
    assert_eq!(outcome.denied_requests[0].host, "forbidden.example.com");
    assert!(
        outcome.denied_requests[0]
            .reason
            .contains("not in the run's egress policy")
    );
}

#[tokio::test]
async fn private_address_behind_an_allowed_name_is_denied() {
    let server = PongServer::start().await;
    let sandbox = sandbox();
    let guest = load(&sandbox, "forbidden-egress");
    // `localhost` is an allowed host, but it resolves to loopback, which the
    // policy does not allow.
    let policy = EgressPolicy::allow_hosts(["localhost"]);
    let url = format!("http://localhost:{}/ping", server.port);
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!({ "url": url })),
            &RunLimits::default(),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.termination,
        Termination::Exited { code: EXIT_DENIED },
        "{}",
        outcome.stderr.to_text()
    );
    assert_eq!(outcome.denied_requests[0].host, "localhost");
    assert!(
        outcome.denied_requests[0]
            .reason
            .contains("private, loopback or link-local")
    );
    assert_eq!(server.accepted(), 0);

    // A literal private address is refused the same way.
    let policy = EgressPolicy::allow_hosts(["127.0.0.1"]);
    let url = format!("http://127.0.0.1:{}/ping", server.port);
    let outcome = sandbox
        .run(
            &guest,
            &invocation(&[], json!({ "url": url })),
            &RunLimits::default(),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(
        outcome.termination,
        Termination::Exited { code: EXIT_DENIED }
    );
    assert_eq!(server.accepted(), 0);
}
