"""Route features seen through the official SDKs: guardrails and the exact-match response cache.

tests/sdk_conformance.rs routes `guarded` (request guardrails: `no-cards` denies credit cards,
`no-email` redacts e-mail addresses) and `cached` (exact-match cache, scoped to the caller) to the
OpenAI-compatible mock, and `guarded-claude` to the Anthropic mock with the same guardrails. It
checks afterwards what reached the mocks.
"""

import anthropic
import openai
import pytest

from conftest import KEY, URL, require_gateway

require_gateway()

CARD = "4111 1111 1111 1111"


def oai():
    return openai.OpenAI(base_url=URL + "/v1", api_key=KEY, max_retries=0, timeout=30)


def ant():
    return anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0, timeout=30)


def test_guardrail_denial_is_a_bad_request_naming_the_rule():
    with pytest.raises(openai.BadRequestError) as e:
        oai().chat.completions.create(model="guarded", messages=[{"role": "user", "content": f"my card is {CARD}"}])
    assert e.value.status_code == 400
    assert 'request blocked by guardrail "no-cards" (CreditCard)' in e.value.message


def test_guardrail_denial_in_anthropic_format():
    with pytest.raises(anthropic.BadRequestError) as e:
        ant().messages.create(
            model="guarded-claude", max_tokens=8, messages=[{"role": "user", "content": f"card {CARD}"}]
        )
    assert e.value.body["error"]["type"] == "invalid_request_error"
    assert 'request blocked by guardrail "no-cards" (CreditCard)' in e.value.body["error"]["message"]


def test_guardrail_redaction_lets_the_request_through():
    # The mock must receive "[REDACTED:no-email]" instead of the address (checked by the runner).
    r = oai().chat.completions.create(
        model="guarded", messages=[{"role": "user", "content": "write to redact-me@example.com please"}]
    )
    assert r.choices[0].message.content == "from openai"


def test_identical_requests_are_served_from_the_cache():
    msgs = [{"role": "user", "content": "cache me"}]
    first = oai().chat.completions.with_raw_response.create(model="cached", messages=msgs, temperature=0)
    second = oai().chat.completions.with_raw_response.create(model="cached", messages=msgs, temperature=0)
    assert first.headers.get("x-cairn-cache") != "hit"
    assert second.headers.get("x-cairn-cache") == "hit"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    # Streaming requests bypass the cache.
    chunks = list(oai().chat.completions.create(model="cached", messages=msgs, temperature=0, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) != ""


def test_response_guardrails_redact_whole_and_streamed_answers():
    # The `leaky` mock answers "from leaky 078-05-1120"; its route redacts SSNs and the word tok1.
    r = oai().chat.completions.create(model="leaky", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "from leaky [REDACTED:no-ssn]"
    chunks = list(oai().chat.completions.create(model="leaky", messages=[{"role": "user", "content": "hi"}], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 [REDACTED:no-tok1] tok2 tok3 "
