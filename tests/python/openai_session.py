"""The `openai` package against `crust serve`'s OpenAI-compatible API.

Usage: openai_session.py BASE_URL API_KEY MODEL
Prints one JSON object of what it observed; the Rust test checks it.
"""

import json
import sys
import urllib.error
import urllib.request

import openai
from openai import OpenAI


def main(base_url, key, model):
    client = OpenAI(base_url=base_url, api_key=key, max_retries=0)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    seen = {"models": [m.id for m in client.models.list().data]}

    answer = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=24)
    choice = answer.choices[0]
    seen["chat"] = [choice.message.content, choice.finish_reason, answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.object]

    parts, finish = [], None
    for chunk in client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=24, stream=True):
        for c in chunk.choices:
            parts.append(c.delta.content or "")
            finish = c.finish_reason or finish
    seen["streamed"] = ["".join(parts), finish, len([p for p in parts if p])]

    short = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=3)
    seen["length"] = [short.choices[0].finish_reason, short.usage.completion_tokens]
    stopped = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=24, stop=["Paris"])
    seen["stop"] = [stopped.choices[0].message.content, stopped.choices[0].finish_reason]
    three = client.chat.completions.create(model=model, messages=question, temperature=0, max_tokens=24, n=3)
    seen["n"] = [c.message.content for c in three.choices]
    system = [{"role": "system", "content": "Answer in one word."}] + question
    seen["system"] = client.chat.completions.create(model=model, messages=system, temperature=0, max_tokens=8).choices[0].message.content
    completion = client.completions.create(model=model, prompt="The capital of France is", temperature=0, max_tokens=4)
    seen["completion"] = [completion.choices[0].text, completion.choices[0].finish_reason, completion.object]

    detailed = client.chat.completions.create(
        model=model, messages=question, temperature=0, max_tokens=24, logprobs=True, top_logprobs=3
    )
    content = detailed.choices[0].logprobs.content
    seen["logprobs"] = {
        "text": detailed.choices[0].message.content,
        "joined": "".join(t.token for t in content),
        "count": [len(content), detailed.usage.completion_tokens],
        "alternatives": sorted({len(t.top_logprobs) for t in content}),
        "greedy_is_top": all(t.token == t.top_logprobs[0].token and t.logprob == t.top_logprobs[0].logprob for t in content),
        "at_most_zero": all(t.logprob <= 0 for t in content),
        "bytes": all(bytes(t.bytes).decode() == t.token for t in content),
    }
    legacy = client.completions.create(model=model, prompt="The capital of France is", temperature=0, max_tokens=4, logprobs=2)
    lp = legacy.choices[0].logprobs
    seen["completion_logprobs"] = [legacy.choices[0].text, "".join(lp.tokens), len(lp.token_logprobs), sorted({len(t) for t in lp.top_logprobs}), lp.text_offset]

    cut = client.completions.create(model=model, prompt="The capital of France is", temperature=0, max_tokens=8, logprobs=1, stop=["Paris"])
    seen["stop_logprobs"] = [cut.choices[0].text, "".join(cut.choices[0].logprobs.tokens)]

    story = [{"role": "user", "content": "Tell me a story."}]
    # top_p 1: no truncation, draws as varied as the model's distribution.
    seeded = lambda seed: client.chat.completions.create(model=model, messages=story, temperature=1.0, top_p=1.0, max_tokens=16, seed=seed).choices[0].message.content
    seen["seed"] = {"same": [seeded(42), seeded(42)], "others": [seeded(s) for s in (1, 2, 3)]}
    two = client.chat.completions.create(model=model, messages=story, temperature=1.0, top_p=1.0, max_tokens=16, seed=42, n=2)
    seen["seed"]["choices"] = [c.message.content for c in two.choices]
    seen["top_p_zero"] = client.chat.completions.create(model=model, messages=question, temperature=1.0, top_p=0, max_tokens=24).choices[0].message.content
    # vLLM's and llama-server's sampling fields; one candidate left is greedy at any temperature.
    answer_with = lambda **kw: client.chat.completions.create(model=model, messages=question, max_tokens=24, **kw).choices[0].message.content
    seen["sampling"] = {
        "top_k_one": answer_with(temperature=1.0, extra_body={"top_k": 1}),
        "min_p_one": answer_with(temperature=1.0, extra_body={"min_p": 1.0}),
        # The model's configured defaults (temperature 0 in this test's config).
        "defaults": answer_with(),
    }
    seen["retrieve"] = client.models.retrieve(model).id

    # A tool's result in the conversation, as an agent framework sends it.
    weather = [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"},
    ]
    seen["tool_message"] = client.chat.completions.create(model=model, messages=weather, temperature=0, max_tokens=8).usage.prompt_tokens

    def raw(method, path, body=None, headers=()):
        """A request without the openai package: (status, headers, JSON body or None)."""
        request = urllib.request.Request(base_url.removesuffix("/v1") + path, data=body and json.dumps(body).encode(), method=method,
                                         headers={"Authorization": "Bearer " + key, "Content-Type": "application/json", **dict(headers)})
        try:
            with urllib.request.urlopen(request) as response:
                status, got, data = response.status, response.headers, response.read()
        except urllib.error.HTTPError as e:
            status, got, data = e.code, e.headers, e.read()
        return status, got, json.loads(data) if data else None

    # What LangChain's and LlamaIndex's OpenAI-compatible clients send for a local model.
    langchain = {
        "model": model, "messages": [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "What is the capital of France?"}],
        "stream": False, "n": 1, "temperature": 0.0, "top_p": 0.95, "top_k": 40, "min_p": 0.05, "repetition_penalty": 1.0,
        "frequency_penalty": 0.0, "presence_penalty": 0.0, "max_tokens": 16, "logit_bias": {},
    }
    status, _, body = raw("POST", "/v1/chat/completions", langchain)
    seen["langchain"] = [status, body["choices"][0]["message"]["content"] if status == 200 else body]
    status, _, body = raw("GET", "/health")
    seen["health"] = [status, body]
    status, _, body = raw("GET", "/v1/nothing-here")
    seen["no_route"] = [status, body["error"]["code"]]
    status, _, body = raw("DELETE", "/v1/models")
    seen["wrong_method"] = [status, body["error"]["code"]]
    preflight = {"Origin": "http://app.test", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
    status, got, _ = raw("OPTIONS", "/v1/chat/completions", headers=preflight.items())
    seen["cors"] = {"preflight": [status, got.get("Access-Control-Allow-Origin"), got.get("Access-Control-Allow-Headers")]}
    status, got, _ = raw("GET", "/v1/models", headers=[("Origin", "http://app.test")])
    seen["cors"]["allowed"] = [status, got.get("Access-Control-Allow-Origin")]
    status, got, _ = raw("GET", "/v1/models", headers=[("Origin", "http://elsewhere.test")])
    seen["cors"]["other"] = [status, got.get("Access-Control-Allow-Origin")]

    # A long shared system prompt: the second request imports its pages.
    rules = "You are a careful assistant for a travel agency. Answer briefly and truthfully. " * 8
    shared = lambda q: client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": rules}, {"role": "user", "content": q}], temperature=0, max_tokens=8
    )
    first, again, other = shared("What is the capital of France?"), shared("What is the capital of France?"), shared("Name a city in Spain.")
    cached = lambda r: r.usage.prompt_tokens_details.cached_tokens
    seen["prefix"] = {
        "cached": [cached(first), cached(again), cached(other)],
        "prompt_tokens": [first.usage.prompt_tokens, other.usage.prompt_tokens],
        "answers": [first.choices[0].message.content, again.choices[0].message.content],
    }

    usage_chunks = [c.usage for c in client.chat.completions.create(
        model=model, messages=question, temperature=0, max_tokens=3, stream=True, stream_options={"include_usage": True}
    ) if c.usage]
    seen["stream_usage"] = [[u.prompt_tokens, u.completion_tokens] for u in usage_chunks]

    errors = {}
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 5000}], stream=True)
    except openai.BadRequestError as e:
        errors["too_long"] = [e.status_code, e.code, e.param]
    try:
        client.chat.completions.create(model="no-such-model", messages=question)
    except openai.NotFoundError as e:
        errors["unknown_model"] = [e.status_code, e.code]
    try:
        client.models.retrieve("no-such-model")
    except openai.NotFoundError as e:
        errors["retrieve_unknown"] = [e.status_code, e.code]
    try:
        OpenAI(base_url=base_url, api_key="not-a-key-we-know", max_retries=0).models.list()
    except openai.AuthenticationError as e:
        errors["bad_key"] = [e.status_code, e.code]
    try:
        client.chat.completions.create(model=model, messages=[])
    except openai.BadRequestError as e:
        errors["no_messages"] = [e.status_code, e.param]
    try:
        client.chat.completions.create(model=model, messages=question, temperature=5)
    except openai.BadRequestError as e:
        errors["temperature"] = [e.status_code, e.param]
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=b"{not json",
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"},
    )
    try:
        urllib.request.urlopen(request)
    except urllib.error.HTTPError as e:
        errors["malformed"] = [e.code, json.loads(e.read())["error"]["type"]]
    try:
        client.chat.completions.create(model=model, messages=question, stream_options={"include_usage": True})
    except openai.BadRequestError as e:
        errors["stream_options"] = [e.status_code, e.param]
    # Fields the endpoint does not honour: refused when they would change the answer, by name.
    for name, extra in [
        ("tools", {"tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}),
        ("response_format", {"response_format": {"type": "json_object"}}),
        ("unknown", {"top_a": 5}),
    ]:
        try:
            client.chat.completions.create(model=model, messages=question, max_tokens=2, stream=True, extra_body=extra)
        except openai.BadRequestError as e:
            errors[name] = [e.status_code, e.code, e.param]
    # ... and taken at their neutral values, or when they change nothing in the answer.
    neutral = client.chat.completions.create(
        model=model, messages=question, temperature=0, max_tokens=8, user="someone", metadata={"run": "test"},
        presence_penalty=0, response_format={"type": "text"}, tool_choice="none",
    )
    seen["neutral_fields"] = neutral.choices[0].message.content
    seen["errors"] = errors
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:])
