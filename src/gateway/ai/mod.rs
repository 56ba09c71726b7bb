//! Layer 1: the AI (LLM) gateway.
//!
//! Front ends: OpenAI's `POST /v1/chat/completions` (stream and not), `POST /v1/embeddings`,
//! `GET /v1/models`, `POST /v1/responses` (passed through to OpenAI-type backends), and
//! Anthropic's `POST /v1/messages` (passed through to Anthropic backends).
//!
//! A request passes each stage once, in order, each in its own file: [`front`] (path, caller,
//! body, policy, rule, request guardrails, limits and budgets, cache) → [`attempts`] (backend
//! order, retries, fallback, timeouts; [`upstream`] sends one) → [`deliver`] (the whole answer,
//! or the stream handed to [`relay`]) → [`account`] (usage charged) and [`record`] (access log,
//! metrics). [`layer`] is what the core serves; [`runtime`] one config version ready to serve.
//! Beside them: [`prompt`] (the request body), [`answer`] (what a request ends with), [`error`]
//! (every error in the caller's format), [`routing`], [`backend`], [`op`], [`exchange`],
//! [`health`], [`cache`], [`guardrails`] and [`pii`], [`translate`] (OpenAI ⇄ Anthropic),
//! [`usage`] (tokens and cost; [`meter`] for streams, [`tokens`] counted locally), [`echo`] (the offline backend) and [`metrics`].

pub mod account;
pub mod answer;
pub mod attempts;
pub mod backend;
pub mod cache;
pub mod deliver;
pub mod echo;
pub mod error;
pub mod exchange;
pub mod front;
pub mod guardrails;
pub mod health;
pub mod layer;
pub mod meter;
pub mod metrics;
pub mod op;
pub mod pii;
pub mod prompt;
pub mod record;
pub mod relay;
pub mod routing;
pub mod runtime;
pub mod tokens;
pub mod translate;
pub mod upstream;
pub mod usage;

pub use layer::AiLayer;
pub use runtime::AiRuntime;
