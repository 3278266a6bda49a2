"""``python -m crust_client``: upload an inferlet if needed, launch it, stream its events.

Exits 0 when it completes, 1 when it fails or is killed, 2 when it cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import List, Optional

from . import Client, Event, ServerRefused


async def submit(args: argparse.Namespace) -> int:
    try:
        client = await Client.connect(args.server)
        if args.token:
            await client.authenticate_token(args.token)
        elif args.user and args.key:
            await client.authenticate_key(args.user, args.key)
        wasm = open(args.inferlet, "rb").read()
        instance = await client.launch(await client.ensure_program(wasm), args.arguments)
    except (OSError, ServerRefused) as error:
        print(f"error: {args.inferlet}: {error}", file=sys.stderr)
        return 2
    async with client:
        async for event in instance:
            if event.kind == Event.STDOUT:
                sys.stdout.write(event.data.decode(errors="replace"))
                sys.stdout.flush()
            elif event.kind == Event.STDERR:
                sys.stderr.write(event.data.decode(errors="replace"))
            elif event.kind == Event.MESSAGE:
                print(event.text, flush=True)
            elif event.kind == Event.BLOB:
                print(f"[blob: {len(event.data)} bytes]", flush=True)
            elif event.kind == Event.COMPLETED:
                if event.text:
                    print(event.text)
                return 0
            else:
                print(f"error: {instance.id}: {event.kind}: {event.text}", file=sys.stderr)
                return 1
    return 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="crust-submit", description=__doc__)
    parser.add_argument("--server", default=os.environ.get("CRUST_SERVER", "ws://127.0.0.1:8080"))
    parser.add_argument("--token", default=os.environ.get("CRUST_TOKEN"))
    parser.add_argument("--user", default=os.environ.get("CRUST_USER"))
    parser.add_argument("--key", default=os.environ.get("CRUST_KEY"))
    parser.add_argument("inferlet")
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.arguments[:1] == ["--"]:
        args.arguments = args.arguments[1:]
    return asyncio.run(submit(args))


if __name__ == "__main__":
    sys.exit(main())
