"""A WebSocket server written with Python's `websockets`, for ws-reconnect's crash tests.

The tests kill it with SIGKILL and start it again on the same port, so that the client
meets a server process that really dies. Prints its port on the first line of stdout.

Usage: server.py [--port P] [--tag T] [--log FILE]

Paths:
  /push   send "<tag>:<n>" every 10 ms, n = 0, 1, ... on each connection
  /echo   echo every message
  /ack    to a message "<n>": append "<n>" to the log file (flushed), then reply "ack:<n>"
"""
import argparse
import asyncio

from python_server import run


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tag", default="0")
    parser.add_argument("--log")
    return parser.parse_args()


ARGS = parse_args()


async def handler(ws):
    path = ws.request.path
    if path == "/push":
        n = 0
        while True:
            await ws.send(f"{ARGS.tag}:{n}")
            n += 1
            await asyncio.sleep(0.01)
    elif path == "/echo":
        async for message in ws:
            await ws.send(message)
    elif path == "/ack":
        with open(ARGS.log, "a") as log:
            async for message in ws:
                # Logged before it is acknowledged: an acknowledged message was processed.
                log.write(f"{message}\n")
                log.flush()
                await ws.send(f"ack:{message}")
    else:
        await ws.close(1008, f"no such path {path}")


if __name__ == "__main__":
    run(handler, ARGS.port)
