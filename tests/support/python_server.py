"""The start-up every Python test server shares, the other half of tests/support/python.rs.

`run(handler)` listens on 127.0.0.1 (`port`, 0: any free port), prints the port as the
first line of stdout (PythonServer::start waits for it), and serves until the process is
killed. Test servers import it as `from python_server import run`: PythonServer::start
puts this directory on PYTHONPATH.
"""
import asyncio
import sys

from websockets.asyncio.server import serve


def run(handler, port=0, **options):
    async def main():
        async with serve(handler, "127.0.0.1", port, **options) as server:
            print(server.sockets[0].getsockname()[1], flush=True)
            await asyncio.get_running_loop().create_future()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
