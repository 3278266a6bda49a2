"""Pie's own client (PyPI pie-client 0.1.0, unmodified) against `crust serve`.

Usage: pie_client_session.py URL TOKEN TEXT_COMPLETION.wasm CHAT.wasm ECHO.wasm HTTP_HELLO.wasm PORT
Prints one JSON object of what it observed; the Rust test checks it.
"""

import asyncio
import json
import sys
import urllib.request

import blake3
from pie import Event, PieClient


async def collect(instance):
    """Events until the terminal one, as [name, text or byte count]."""
    events = []
    while True:
        event, message = await instance.recv()
        events.append([event.name, message if isinstance(message, str) else len(message)])
        if event not in (Event.Message, Event.Blob):
            return events


async def main(url, token, text_completion, chat, echo, http_hello, port):
    seen = {}
    async with PieClient(url) as client:
        seen["auth"] = list(await client.authenticate(token))
        seen["version"] = list(await client.query("version", ""))
        programs = {}
        for name, path in [("text_completion", text_completion), ("chat", chat), ("echo", echo), ("http_hello", http_hello)]:
            wasm = open(path, "rb").read()
            program_hash = blake3.blake3(wasm).hexdigest()
            before = await client.program_exists(program_hash)
            await client.upload_program(wasm)
            seen[name + "_exists"] = [before, await client.program_exists(program_hash)]
            programs[name] = program_hash

        arguments = ["--prompt", "What is the capital of France?", "--max-tokens", "16", "--return"]
        instance = await client.launch_instance(programs["text_completion"], arguments)
        seen["text_completion"] = await collect(instance)

        instance = await client.launch_instance(programs["chat"], ["--max-tokens", "16"])
        await instance.send("What is the capital of France? Answer in one word.")
        event, message = await instance.recv()
        seen["chat_answer"] = [event.name, message]
        await instance.send("/exit")
        seen["chat_end"] = await collect(instance)

        instance = await client.launch_instance(programs["echo"], [])
        await instance.send("hello")
        event, message = await instance.recv()
        seen["echo_message"] = [event.name, message]
        blob = bytes(range(256)) * 1200  # 300 KiB: two chunks each way
        await instance.send("blob")
        await instance.upload_blob(blob)
        event, data = await instance.recv()
        seen["echo_blob"] = [event.name, data == blob[::-1], len(data)]
        await instance.terminate()
        seen["terminated"] = await collect(instance)

        await client.launch_server_instance(programs["http_hello"], int(port), ["served", "by", "pie"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/pie?q=1") as response:
            seen["http"] = response.read().decode()
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
