"""A WebSocket server written with Python's `websockets`, for ws-reconnect's peer tests.

Prints its port on the first line of stdout. Paths:
  /echo-close   echo; close (1000) after the first message of a connection
  /push         first connection: send "a", "b", close; later ones: send "c"
  /hello        reply to every message with "<connection>:<text>"
  /reject400    refuse the handshake with 400
  /flaky503     refuse the first two handshakes with 503, then upgrade and echo
  /count/<p>    send the number of handshake attempts seen for path /<p>, then close
"""
from python_server import run

attempts = {}
connections = {}


async def process_request(connection, request):
    path = request.path
    attempts[path] = attempts.get(path, 0) + 1
    if path == "/reject400":
        return connection.respond(400, "rejected\n")
    if path == "/flaky503" and attempts[path] <= 2:
        return connection.respond(503, "try later\n")
    return None


async def handler(ws):
    path = ws.request.path
    n = connections.get(path, 0)
    connections[path] = n + 1
    if path.startswith("/count/"):
        await ws.send(str(attempts.get("/" + path[len("/count/"):], 0)))
        return
    if path == "/push":
        if n == 0:
            await ws.send("a")
            await ws.send("b")
            await ws.close(1000)
        else:
            await ws.send("c")
            await ws.wait_closed()
        return
    async for message in ws:
        if path == "/hello":
            await ws.send(f"{n}:{message}")
        else:
            await ws.send(message)
            if path == "/echo-close":
                await ws.close(1000)


if __name__ == "__main__":
    run(handler, process_request=process_request)
