"""An asyncio client for `crust serve`.

The wire format is Pie's client protocol (msgpack maps with a ``type`` field
over a WebSocket) plus Crust's additions; see docs/server.md in the Crust
repository.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field, fields
from typing import Any, AsyncIterator, Dict, List, Optional, Tuple

import blake3
import msgpack
import websockets

__all__ = ["Client", "Event", "Instance", "InstanceInfo", "ServerRefused", "content_hash"]

CHUNK_SIZE = 256 * 1024
PROTOCOL_VERSION = 1
CHALLENGE_PREFIX = b"crust-auth-v1:"


class ServerRefused(Exception):
    """The server answered a request with ``successful: false``; the message says why."""


def content_hash(data: bytes) -> str:
    """The BLAKE3 hex digest that names programs and blobs."""
    return blake3.blake3(data).hexdigest()


@dataclass
class Event:
    """One thing an instance did. ``terminal`` events come once, last."""

    MESSAGE = "message"
    COMPLETED = "completed"
    ABORTED = "aborted"
    EXCEPTION = "exception"
    SERVER_ERROR = "server_error"
    OUT_OF_RESOURCES = "out_of_resources"
    BLOB = "blob"
    STDOUT = "stdout"
    STDERR = "stderr"

    kind: str
    text: str = ""
    data: bytes = b""

    @property
    def terminal(self) -> bool:
        return self.kind in (Event.COMPLETED, Event.ABORTED, Event.EXCEPTION, Event.SERVER_ERROR, Event.OUT_OF_RESOURCES)


_CODES = [Event.MESSAGE, Event.COMPLETED, Event.ABORTED, Event.EXCEPTION, Event.SERVER_ERROR, Event.OUT_OF_RESOURCES]


@dataclass
class InstanceInfo:
    id: str
    state: str
    owner: str
    age_secs: float
    program: str
    arguments: List[str] = field(default_factory=list)
    attached: bool = False
    # What the launch called the program (a file name), if anything.
    name: Optional[str] = None


class Instance:
    """A launched or attached instance. Iterate it for its events."""

    def __init__(self, client: "Client", instance_id: str, events: "asyncio.Queue[Event]") -> None:
        self.client = client
        self.id = instance_id
        self._events = events
        self._ended = False

    async def next(self) -> Event:
        """The next event; raises ``ConnectionError`` if the connection closed first."""
        event = await self._events.get()
        if event.kind == "closed":
            raise ConnectionError(f"the connection closed before instance {self.id} ended")
        self._ended = event.terminal
        return event

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while not self._ended:
            yield await self.next()

    async def send(self, message: str) -> None:
        """A message for the instance's ``message.receive``."""
        await self.client._send({"type": "signal_instance", "instance_id": self.id, "message": message})

    async def upload_blob(self, data: bytes) -> None:
        """A blob for the instance's ``message.receive-blob``."""
        await self.client._upload("upload_blob", data, {"instance_id": self.id, "blob_hash": content_hash(data)})

    async def terminate(self) -> None:
        """Ends the instance; its last event is ``aborted``."""
        await self.client._send({"type": "terminate_instance", "instance_id": self.id})

    async def detach(self) -> None:
        """Lets it run on without this connection; its events wait for ``Client.attach``."""
        await self.client._request({"type": "detach_instance", "instance_id": self.id})


class Client:
    """One connection. Use ``await Client.connect(url)``, ideally as ``async with``."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._next_corr_id = 1
        self._pending: Dict[int, "asyncio.Future[Tuple[bool, str]]"] = {}
        self._queues: Dict[str, "asyncio.Queue[Event]"] = {}
        self._downloads: Dict[Tuple[str, str], bytearray] = {}
        self._closed = False
        self._listener = asyncio.ensure_future(self._listen())
        self.server_info: Dict[str, Any] = {}

    @classmethod
    async def connect(cls, url: str) -> "Client":
        ws = await websockets.connect(url, max_size=None)
        client = cls(ws)
        client.server_info = json.loads(await client._request({"type": "hello", "protocol": PROTOCOL_VERSION}))
        return client

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._ws.close()
        self._listener.cancel()
        try:
            await self._listener
        except asyncio.CancelledError:
            pass

    # Logging in.
    async def authenticate_token(self, token: str) -> str:
        """Pie's login: a token the server's config trusts. Returns the user."""
        return await self._request({"type": "authenticate", "token": token})

    async def authenticate_key(self, user: str, secret_key_file: str) -> str:
        """Crust's login with a key from ``crust keygen`` (needs the ``keys`` extra)."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        tag, seed = open(secret_key_file).read().split()
        if tag != "crust-ed25519-secret":
            raise ValueError(f"{secret_key_file}: not a Crust secret key")
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
        nonce = bytes.fromhex(await self._request({"type": "challenge", "user": user}))
        signature = key.sign(CHALLENGE_PREFIX + nonce)
        return await self._request({"type": "prove", "user": user, "signature": signature})

    # Programs.
    async def query(self, subject: str, record: str = "") -> str:
        return await self._request({"type": "query", "subject": subject, "record": record})

    async def program_exists(self, program_hash: str) -> bool:
        return await self.query("program_exists", program_hash) == "true"

    async def upload_program(self, wasm: bytes) -> str:
        program_hash = content_hash(wasm)
        await self._upload("upload_program", wasm, {"program_hash": program_hash})
        return program_hash

    async def ensure_program(self, wasm: bytes) -> str:
        """Uploads unless the server has it; returns its hash."""
        program_hash = content_hash(wasm)
        if not await self.program_exists(program_hash):
            await self.upload_program(wasm)
        return program_hash

    # Instances.
    async def launch(self, program_hash: str, arguments: Optional[List[str]] = None, detached: bool = False) -> Instance:
        """Launches an uploaded program. A detached instance outlives this connection."""
        message = {"type": "launch_instance", "program_hash": program_hash, "arguments": arguments or [], "detached": detached}
        return self._instance(await self._request(message))

    async def launch_reference(self, reference: str, arguments: Optional[List[str]] = None, detached: bool = False) -> Instance:
        """Launches a program the server pulls from an OCI registry."""
        message = {"type": "launch_reference", "reference": reference, "arguments": arguments or [], "detached": detached}
        return self._instance(await self._request(message))

    async def attach(self, instance_id: str) -> Instance:
        """Follows one of your instances: what it buffered, then what it does."""
        instance = self._instance(instance_id)
        try:
            await self._request({"type": "attach_instance", "instance_id": instance_id})
        except Exception:
            self._queues.pop(instance_id, None)
            raise
        return instance

    async def list(self) -> List[InstanceInfo]:
        rows = json.loads(await self._request({"type": "list_instances"}))
        # Fields a newer server adds are left out rather than refused.
        known = {f.name for f in fields(InstanceInfo)}
        return [InstanceInfo(**{k: v for k, v in row.items() if k in known}) for row in rows]

    # The wire.
    def _instance(self, instance_id: str) -> Instance:
        queue = self._queues.setdefault(instance_id, asyncio.Queue())
        return Instance(self, instance_id, queue)

    async def _send(self, message: Dict[str, Any]) -> None:
        await self._ws.send(msgpack.packb(message, use_bin_type=True))

    def _expect(self) -> Tuple[int, "asyncio.Future[Tuple[bool, str]]"]:
        if self._closed:
            raise ConnectionError("the connection to the server is closed")
        corr_id = self._next_corr_id
        self._next_corr_id += 1
        future: "asyncio.Future[Tuple[bool, str]]" = asyncio.get_running_loop().create_future()
        self._pending[corr_id] = future
        return corr_id, future

    async def _answer(self, future: "asyncio.Future[Tuple[bool, str]]") -> str:
        successful, result = await future
        if not successful:
            raise ServerRefused(result)
        return result

    async def _request(self, message: Dict[str, Any]) -> str:
        corr_id, future = self._expect()
        await self._send({**message, "corr_id": corr_id})
        return await self._answer(future)

    async def _upload(self, kind: str, data: bytes, fields: Dict[str, Any]) -> str:
        corr_id, future = self._expect()
        chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]
        for index, chunk in enumerate(chunks):
            message = {"type": kind, "corr_id": corr_id, **fields, "chunk_index": index, "total_chunks": len(chunks), "chunk_data": chunk}
            await self._send(message)
        return await self._answer(future)

    async def _listen(self) -> None:
        try:
            async for frame in self._ws:
                if isinstance(frame, bytes):
                    self._route(msgpack.unpackb(frame, raw=False))
        except websockets.ConnectionClosed:
            pass
        finally:
            self._closed = True
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the connection to the server closed"))
            for queue in self._queues.values():
                queue.put_nowait(Event("closed"))

    def _route(self, message: Dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "response":
            future = self._pending.pop(message["corr_id"], None)
            if future is not None and not future.done():
                future.set_result((message["successful"], message["result"]))
            return
        if kind == "instance_event":
            code = message["event"]
            event = Event(_CODES[code] if code < len(_CODES) else Event.SERVER_ERROR, text=message["message"])
        elif kind == "instance_output":
            event = Event(message["stream"], data=message["data"])
        elif kind == "download_blob":
            key = (message["instance_id"], message["blob_hash"])
            buffer = self._downloads.setdefault(key, bytearray())
            buffer.extend(message["chunk_data"])
            if message["chunk_index"] + 1 < message["total_chunks"]:
                return
            data = bytes(self._downloads.pop(key))
            if content_hash(data) != message["blob_hash"]:
                return
            event = Event(Event.BLOB, data=data)
        else:
            return
        self._instance(message["instance_id"])._events.put_nowait(event)
