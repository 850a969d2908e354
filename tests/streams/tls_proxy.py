"""A TLS-terminating proxy for tests: TLS on a loopback port, plain TCP to the broker behind
it, as a TLS listener in front of Kafka would be. Runs its own event loop on a thread."""

from __future__ import annotations

import asyncio
import ssl
import threading


class TlsProxy:
    def __init__(self, port: int, target_port: int, context: ssl.SSLContext) -> None:
        self.port, self.target_port, self.context = port, target_port, context
        self.connections = 0          # TLS sessions that completed the handshake
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tls-proxy")

    def __enter__(self) -> "TlsProxy":
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("TLS proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.set_exception_handler(lambda loop, ctx: None)   # failed handshakes are expected
        self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context))
        self._ready.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer), return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()
