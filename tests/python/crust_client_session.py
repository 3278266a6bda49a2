"""Crust's Python client (clients/python) against `crust serve`.

Usage: crust_client_session.py URL TOKEN TEXT_COMPLETION.wasm ECHO.wasm
Prints one JSON object of what it observed; the Rust test checks it.
"""

import asyncio
import json
import sys

from crust_client import Client, Event


async def main(url, token, text_completion, echo):
    seen = {}
    async with await Client.connect(url) as client:
        seen["server"] = client.server_info
        seen["user"] = await client.authenticate_token(token)
        program = await client.ensure_program(open(text_completion, "rb").read())
        instance = await client.launch(program, ["--prompt", "What is the capital of France?", "--max-tokens", "16"])
        stdout, chunks = b"", 0
        async for event in instance:
            if event.kind == Event.STDOUT:
                stdout += event.data
                chunks += 1
            elif event.terminal:
                seen["text_completion_end"] = [event.kind, event.text]
        seen["text_completion_stdout"] = [stdout.decode(), chunks]

        echo_program = await client.ensure_program(open(echo, "rb").read())
        instance = await client.launch(echo_program, [], detached=True)
        await instance.send("one")
        seen["first"] = (await instance.next()).text
        await instance.detach()
        await instance.send("two")
        await instance.send("three")
        echo_id = instance.id
    # A new connection: what the detached instance said meanwhile is waiting.
    async with await Client.connect(url) as client:
        await client.authenticate_token(token)
        seen["listed"] = [(row.id == echo_id, row.state, row.attached) for row in await client.list()]
        instance = await client.attach(echo_id)
        seen["buffered"] = [(await instance.next()).text, (await instance.next()).text]
        await instance.send("/exit")
        end = await instance.next()
        seen["echo_end"] = [end.kind, end.text]
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
