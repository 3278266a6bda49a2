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

    errors = {}
    try:
        client.chat.completions.create(model="no-such-model", messages=question)
    except openai.NotFoundError as e:
        errors["unknown_model"] = [e.status_code, e.code]
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
    seen["errors"] = errors
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:])
