//! Layer 3: the agent gateway, an A2A proxy with a directory, per-agent authorization, task
//! ownership and identity propagation.
//!
//! # What it serves (one gateway listener)
//!
//! | path | what |
//! |---|---|
//! | `POST /agents/{name}` (or `/agents/{name}/`) | A2A JSON-RPC binding of agent `name` |
//! | `/agents/{name}/message:send`, `/tasks/{id}`, … | A2A HTTP+JSON (REST) binding of agent `name` |
//! | `/agents/{name}/{tenant}/message:send`, … | the same with an A2A 1.0 tenant, passed through ([`method::rest_route`]) |
//! | `GET /agents/{name}/.well-known/agent-card.json` | the agent's card, rewritten and re-signed ([`card`]) |
//! | `GET /agents` | the directory: the cards of every agent the caller may use |
//! | `GET /.well-known/jwks.json` | the gateway's public key ([`sign`]) |
//!
//! Every A2A 1.0 method (`SendMessage`, `SendStreamingMessage`, `GetTask`, `ListTasks`,
//! `CancelTask`, `SubscribeToTask`, the four push-notification config methods,
//! `GetExtendedAgentCard`) and its 0.3 name (`message/send`, `message/stream`, `tasks/get`,
//! `tasks/cancel`, `tasks/resubscribe`, `tasks/pushNotificationConfig/*`,
//! `agent/getAuthenticatedExtendedCard`) is recognised ([`method`]); the body is forwarded to the
//! agent unchanged, as is `A2A-Version` (an absent header means 0.3; a version other than 0.3 or
//! 1.x is refused with VersionNotSupported). Streams are relayed frame by frame as they arrive.
//!
//! # Per call ([`front`] → [`call`] → [`authorize`] → [`forward`] → [`audit`])
//!
//! Before anything, every request's `Origin` is checked ([`crate::gateway::origin`]): one that
//! is present and neither the gateway's own host nor in `allowedOrigins` is refused with 403.
//!
//! 1. The caller is identified (virtual key, JWT, ServiceAccount token; [`crate::gateway::identity`]).
//! 2. Policy: `SendMessage`/`SendStreamingMessage` are checked with
//!    [`PolicyIndex::check_agent`] for the skill the message names in its metadata
//!    ([`view::SKILL_KEYS`]; none named: only grants without a skill list allow it). Calls on a
//!    task are checked for the skill the task was created with. `ListTasks`, the extended card,
//!    the card and the directory need any grant on the agent; the cards (served, listed and
//!    extended) show only the skills the caller may invoke, and are signed once per agent,
//!    public base and visible skill set, not per caller. Request-per-minute limits of the
//!    grants that allow the call are counted in the gateway's store.
//! 3. Task ownership ([`owners`]): calls on a task that the caller did not create through this
//!    gateway are answered TaskNotFound, exactly as for a task that does not exist; `ListTasks`
//!    answers are filtered to the caller's tasks.
//! 4. Push-notification webhook URLs are checked against the gateway's egress rule as URLs that
//!    arrive at run time ([`crate::gateway::egress::check_run_time_url`]), and agents are reached
//!    through the client that applies the rule where it connects.
//! 5. The agent receives, instead of the caller's credentials (never forwarded), a JWT signed by
//!    the gateway in the configured header (`identityTokenHeader`): `iss`
//!    `urn:cairn:agent-gateway:{namespace}:{name}`, `sub` the caller, `aud` the agent, `gateway`,
//!    `agent`, `task_id` when known, `skill` when known, `exp` = now + `identityTokenTtlMs`;
//!    verifiable with `/.well-known/jwks.json`. A token is reused for calls with the same caller,
//!    agent, task and skill during the first half of its lifetime. The call's upstream span
//!    (a child of the call's span, itself a child of the caller's `traceparent`) is what the
//!    agent receives as `traceparent`, with `tracestate` and `baggage`
//!    ([`crate::gateway::telemetry`]).
//! 6. One audit line per call (caller, agent, method, binding, skill, task id, context id,
//!    outcome, status, latency_ms, trace and span id): a `tracing` event with these fields (target `cairn::audit`), and, when
//!    `telemetry.accessLog` is on, the same as one JSON object (`"kind": "a2a.call"`) on stdout
//!    like the other layers' lines; and the metrics `cairn_agent_requests_total` and
//!    `cairn_agent_request_duration_seconds`.

pub mod audit;
pub mod authorize;
pub mod call;
pub mod card;
pub mod directory;
pub mod error;
pub mod forward;
pub mod front;
pub mod layer;
pub mod method;
pub mod metrics;
pub mod owners;
pub mod runtime;
pub mod shared;
pub mod sign;
pub mod stream;
pub mod token;
pub mod view;

pub use front::handle;
pub use layer::AgentLayer;
pub use runtime::AgentRuntime;
