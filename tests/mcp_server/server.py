"""An MCP server for kkrun's tests, built on the official Python SDK (`mcp`).

Usage:
    server.py stdio [--fail-start]
    server.py http --port-file FILE [--token TOKEN]

Tools:
    lookup(key)              read-only (readOnlyHint): a value from a fixed table
    show_env(name)           read-only: the value of an environment variable
    write_note(path, text)   writes a file under $NOTES_DIR, else the working directory
    slow(seconds)            read-only: sleeps, then answers
    spawn_sleeper()          read-only: starts a background `sleep 600`, answers its pid
    big(size)                read-only: `size` bytes of text
    fail(message)            read-only: raises, so the result is an MCP tool error
    crash()                  the server exits at once, mid-call

On stdio the server logs a line to stderr at start. `--fail-start` prints an
error to stderr and exits with status 3 before speaking MCP. Over HTTP the
server binds 127.0.0.1 on a free port and writes it to FILE; with `--token`
every request must carry `Authorization: Bearer TOKEN`.
"""

import argparse
import os
import pathlib
import socket
import sys
import subprocess

import anyio

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

READ_ONLY = ToolAnnotations(readOnlyHint=True)
WRITES = ToolAnnotations(readOnlyHint=False, destructiveHint=False)

TABLE = {"alpha": "first letter", "omega": "last letter"}

server = MCPServer("kkrun-test-server")


@server.tool(annotations=READ_ONLY)
def lookup(key: str) -> str:
    """Look a key up in the test table (alpha, omega)."""
    return TABLE.get(key, f"no entry for {key!r}")


@server.tool(annotations=READ_ONLY)
def show_env(name: str) -> str:
    """The value of an environment variable of the server process."""
    value = os.environ.get(name)
    return f"{name} is not set" if value is None else f"{name}={value}"


@server.tool(annotations=WRITES)
def write_note(path: str, text: str) -> str:
    """Write `text` to `path`, relative to $NOTES_DIR or else the server's working directory."""
    target = pathlib.Path(os.environ.get("NOTES_DIR") or pathlib.Path.cwd()) / path
    target.write_text(text)
    return f"wrote {len(text)} bytes to {path}"


@server.tool(annotations=READ_ONLY)
async def slow(seconds: float) -> str:
    """Sleep for `seconds`, then answer."""
    await anyio.sleep(seconds)
    return f"slept {seconds}s"


@server.tool(annotations=READ_ONLY)
def spawn_sleeper() -> str:
    """Start a background `sleep` that outlives this call; answer its pid."""
    child = subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(child.pid)


@server.tool(annotations=READ_ONLY)
def big(size: int) -> str:
    """Answer with `size` bytes of text."""
    line = "0123456789abcdef" * 4 + "\n"
    return (line * (size // len(line) + 1))[:size]


@server.tool(annotations=READ_ONLY)
def fail(message: str) -> str:
    """Fail with `message`."""
    raise ToolError(message)


@server.tool()
def crash() -> str:
    """Exit the server process at once."""
    print("test server: crashing on request", file=sys.stderr, flush=True)
    os._exit(7)


def serve_http(port_file: str, token: str | None) -> None:
    import uvicorn

    app = server.streamable_http_app()
    if token is not None:
        inner = app

        async def app(scope, receive, send):  # noqa: F811 - wraps the app
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                if headers.get(b"authorization") != f"Bearer {token}".encode():
                    await send({"type": "http.response.start", "status": 401,
                                "headers": [(b"content-type", b"text/plain")]})
                    await send({"type": "http.response.body", "body": b"missing or wrong token"})
                    return
            await inner(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, port_file)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("transport", choices=["stdio", "http"])
    parser.add_argument("--fail-start", action="store_true")
    parser.add_argument("--port-file")
    parser.add_argument("--token")
    args = parser.parse_args()
    if args.fail_start:
        print("test server: cannot start: configuration missing (on purpose)", file=sys.stderr, flush=True)
        sys.exit(3)
    print("test server: starting", file=sys.stderr, flush=True)
    if args.transport == "stdio":
        server.run("stdio")
    else:
        serve_http(args.port_file, args.token)


if __name__ == "__main__":
    main()
