"""A loopback relay from plain TCP to TLS, so that Autobahn's client
(kosoku, which has no TLS) can run every case against switchboard's TLS
port: each connection to the relay becomes a TLS connection to the
server, verified against the test certificate, and bytes are copied both
ways unchanged. The WebSocket frames the cases check are the server's
own, decrypted; only the transport differs.

Usage: tls_relay.py HOST:PORT CAFILE   (prints "relay: PORT" when ready)
"""

import select
import socket
import ssl
import sys
import threading


def relay(client, server):
    """Copies both ways on one thread, until either side ends. One thread
    per connection because an OpenSSL session must not be read and
    written from two threads at once; `pending()` covers what the
    session has decrypted but `select` cannot see."""
    client.setblocking(False)
    server.setblocking(False)
    to_server, to_client = b"", b""
    open_ = True
    while open_ or to_server or to_client:
        want_read = [client, server] if open_ else []
        want_write = ([server] if to_server else []) + ([client] if to_client else [])
        if server.pending():
            readable = [server]
        else:
            readable, _, _ = select.select(want_read, [], [], 0 if want_write else 60)
        try:
            for side in readable:
                try:
                    chunk = side.recv(65536)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    continue
                if not chunk:
                    open_ = False
                    break
                if side is client:
                    to_server += chunk
                else:
                    to_client += chunk
            if to_server:
                try:
                    to_server = to_server[server.send(to_server):]
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
            if to_client:
                try:
                    to_client = to_client[client.send(to_client):]
                except BlockingIOError:
                    pass
            if want_write and not readable:
                select.select([], want_write, [], 1)
        except OSError:
            break
    for side in (client, server):
        try:
            side.close()
        except OSError:
            pass


def serve(client, target, context):
    host, port = target
    try:
        raw = socket.create_connection((host, port), timeout=30)
        raw.settimeout(None)
        server = context.wrap_socket(raw, server_hostname="localhost")
    except OSError as error:
        print(f"relay: cannot reach {host}:{port} over TLS: {error}", file=sys.stderr)
        client.close()
        return
    relay(client, server)


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    context = ssl.create_default_context(cafile=sys.argv[2])
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"relay: {listener.getsockname()[1]}", flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(
            target=serve, args=(client, (host, int(port)), context), daemon=True
        ).start()


if __name__ == "__main__":
    main()
