"""The Python floor of `cargo xtask bench`: what one Python process costs per call.

The least a Python function platform can do per warm call, measured in the same base image
(`sebs-local/base:python-3.11`) as our functions: one Python 3.11 process, a minimal
HTTP/1.1 server on a socket (keep-alive, Content-Length only), `json.loads` of the body, a
no-op `handler(event)`, `json.dumps` of `{"result": {"output": ...}}`. No worker process, no
pipe, no timeout, no pool: a figure of ours over this one is what our platform adds.

Usage: `python3 floor.py [PORT]` (default 8080). Exits 0 on SIGTERM or SIGINT (as PID 1 a
process without a handler would ignore SIGTERM). Every request gets 200, also `GET /alive`.
"""

import json
import os
import signal
import socket
import sys
import threading


def handler(event):
    return {}


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"


def connection(conn):
    """Answers requests on one connection until the peer closes it or asks to."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv, send = conn.recv, conn.sendall
    buf = b""
    try:
        while True:
            end = buf.find(b"\r\n\r\n")
            while end < 0:
                chunk = recv(65536)
                if not chunk:
                    return
                buf += chunk
                end = buf.find(b"\r\n\r\n")
            length, close = 0, False
            for line in buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            start = end + 4
            while len(buf) < start + length:
                chunk = recv(65536)
                if not chunk:
                    return
                buf += chunk
            body, buf = buf[start : start + length], buf[start + length :]
            event = json.loads(body) if length else {}
            out = json.dumps({"result": {"output": handler(event)}}).encode()
            send(HEAD % len(out) + out)
            if close:
                return
    except (OSError, ValueError):
        # A reset connection or a body that is not JSON ends that connection only.
        return
    finally:
        conn.close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8080
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(128)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
