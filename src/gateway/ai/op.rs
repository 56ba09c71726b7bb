//! What a client asks the AI gateway for ([`Op`]), and which operation each provider family is
//! sent for it.

use crate::config::ProviderKind;

/// What the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embeddings,
    /// `POST /v1/responses`.
    Responses,
    /// `POST /v1/messages` (Anthropic).
    Messages,
}

impl Op {
    /// For logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Chat => "chat",
            Op::Embeddings => "embeddings",
            Op::Responses => "responses",
            Op::Messages => "messages",
        }
    }
}

/// Whether a backend speaks the OpenAI API family.
pub fn openai_family(p: ProviderKind) -> bool {
    matches!(
        p,
        ProviderKind::Openai
            | ProviderKind::AzureOpenai
            | ProviderKind::Gemini
            | ProviderKind::OpenaiCompatible
            | ProviderKind::Echo
    )
}

/// Whether `backend` can serve `op`: chat and messages on both API families (translated when
/// they differ), embeddings and responses on OpenAI-type backends (Echo included) only. Bedrock
/// is not served yet.
pub fn serves(backend: ProviderKind, op: Op) -> bool {
    match op {
        Op::Chat | Op::Messages => openai_family(backend) || backend == ProviderKind::Anthropic,
        Op::Embeddings | Op::Responses => openai_family(backend),
    }
}

/// The operation sent upstream for `op` on `backend`: chat to Anthropic backends becomes
/// messages, messages to OpenAI-type backends becomes chat.
pub fn upstream_op(backend: ProviderKind, op: Op) -> Op {
    match op {
        Op::Chat if backend == ProviderKind::Anthropic => Op::Messages,
        Op::Messages if backend != ProviderKind::Anthropic => Op::Chat,
        other => other,
    }
}
