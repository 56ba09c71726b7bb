#!/usr/bin/env python3
"""The soak's driver and its A2A agent (standard library only; run by benches/soak.sh).

  drive.py agent --port P
      a mock A2A agent: its card, and JSON-RPC `message/send` answered with a completed task
      (a new task id each time, so the gateway's task-ownership map sees a steady stream of tasks)

  drive.py drive --pid PID --ai URL --mcp URL --a2a URL --key K --rate R --duration S --out CSV
      a fixed rate R (requests/s) on each of the three layers for S seconds, open loop (a request
      is due at start + i/R whether or not the previous one has finished; `--workers` threads per
      layer send them): AI chat completions (every other one streamed), MCP tools/call in sessions
      of 200 calls (then DELETE and a new session), A2A message/send. Every 10 s one CSV row: the
      gateway process's RSS, open file descriptors and threads, and per layer the requests that
      succeeded, failed and were sent late (a worker was free only after the due time) in the
      window, with the window's p50/p99 latency. A summary goes to stderr at the end.

Nothing here asserts: the soak is a measurement (docs/reliability.md, Soak)."""

import argparse
import http.client
import json
import os
import queue
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SAMPLE_S = 10


# --- the A2A agent ---------------------------------------------------------------------------

class Agent(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counter = 0
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        port = self.server.server_address[1]
        self.reply(200, {
            "name": "worker", "description": "soak agent", "version": "1.0.0",
            "url": f"http://127.0.0.1:{port}", "protocolVersion": "0.3.0",
            "preferredTransport": "JSONRPC",
            "capabilities": {"streaming": False, "pushNotifications": False},
            "defaultInputModes": ["text/plain"], "defaultOutputModes": ["text/plain"],
            "skills": [{"id": "echo", "name": "echo", "description": "echoes", "tags": ["echo"]}],
        })

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        with Agent.lock:
            Agent.counter += 1
            n = Agent.counter
        if body.get("method") not in ("message/send", "SendMessage"):
            self.reply(200, {"jsonrpc": "2.0", "id": body.get("id"), "error": {"code": -32601, "message": "method not found"}})
            return
        self.reply(200, {"jsonrpc": "2.0", "id": body.get("id"), "result": {
            "kind": "task", "id": f"task-{n}", "contextId": f"ctx-{n}",
            "status": {"state": "completed"},
            "artifacts": [{"artifactId": f"a-{n}", "parts": [{"kind": "text", "text": "done"}]}],
        }})


def serve_agent(port):
    ThreadingHTTPServer(("127.0.0.1", port), Agent).serve_forever()


# --- the clients ----------------------------------------------------------------------------

class Conn:
    """One keep-alive HTTP/1.1 connection, reopened after an error."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        self.host, self.port, self.path = u.hostname, u.port, u.path.rstrip("/")
        self.c = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.c is None:
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                data = json.dumps(body).encode() if body is not None else None
                self.c.request(method, self.path + path, body=data, headers=headers or {})
                r = self.c.getresponse()
                return r.status, r.getheaders(), r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                # A keep-alive connection the server closed between requests: retry once on a new
                # one; anything else is a failure.
                self.c.close()
                self.c = None
                if attempt:
                    raise e
            except Exception:
                self.c.close()
                self.c = None
                raise


class AiClient:
    def __init__(self, url, key):
        self.conn, self.key, self.n = Conn(url), key, 0

    def call(self):
        self.n += 1
        stream = self.n % 2 == 0
        status, _, body = self.conn.request("POST", "/v1/chat/completions", {
            "model": "gpt-4o-mini", "stream": stream,
            "messages": [{"role": "user", "content": f"soak {self.n}"}],
        }, {"content-type": "application/json", "authorization": f"Bearer {self.key}"})
        if status != 200:
            return f"status {status}: {body[:200]!r}"
        if stream and not body.rstrip().endswith(b"data: [DONE]"):
            return "stream did not end with [DONE]"
        return None


class McpClient:
    SESSION_CALLS = 200

    def __init__(self, url, key):
        self.conn, self.key, self.session, self.calls, self.id = Conn(url), key, None, 0, 0

    def headers(self):
        h = {"content-type": "application/json", "accept": "application/json, text/event-stream",
             "authorization": f"Bearer {self.key}", "mcp-protocol-version": "2025-06-18"}
        if self.session:
            h["mcp-session-id"] = self.session
        return h

    def rpc(self, method, params, notify=False):
        self.id += 1
        msg = {"jsonrpc": "2.0", "method": method, "params": params}
        if not notify:
            msg["id"] = self.id
        return self.conn.request("POST", "", msg, self.headers())

    def open(self):
        self.session = None
        status, headers, body = self.rpc("initialize", {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "soak", "version": "1"}})
        if status != 200:
            return f"initialize: status {status}: {body[:200]!r}"
        self.session = dict((k.lower(), v) for k, v in headers).get("mcp-session-id")
        status, _, body = self.rpc("notifications/initialized", {}, notify=True)
        if status not in (200, 202):
            return f"initialized: status {status}"
        self.calls = 0
        return None

    def call(self):
        if self.session is None or self.calls >= self.SESSION_CALLS:
            if self.session:
                self.conn.request("DELETE", "", None, self.headers())
            err = self.open()
            if err:
                self.session = None
                return err
        self.calls += 1
        status, _, body = self.rpc("tools/call", {"name": "mock__echo", "arguments": {"text": "soak"}})
        if status != 200 or b'"result"' not in body or b'"isError":true' in body:
            if status == 404:
                self.session = None
            return f"tools/call: status {status}: {body[:200]!r}"
        return None


class A2aClient:
    def __init__(self, url, key):
        self.conn, self.key, self.n = Conn(url), key, 0

    def call(self):
        self.n += 1
        status, _, body = self.conn.request("POST", "/agents/worker", {
            "jsonrpc": "2.0", "id": self.n, "method": "message/send",
            "params": {"message": {"kind": "message", "messageId": f"m-{self.n}", "role": "user",
                                   "parts": [{"kind": "text", "text": "soak"}]}},
        }, {"content-type": "application/json", "authorization": f"Bearer {self.key}"})
        if status != 200 or b'"result"' not in body:
            return f"status {status}: {body[:200]!r}"
        return None


# --- load and sampling -----------------------------------------------------------------------

class Window:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.ok, self.err, self.late, self.lat = 0, 0, 0, []

    def add(self, ok, latency, late):
        with self.lock:
            if ok:
                self.ok += 1
            else:
                self.err += 1
            self.late += late
            self.lat.append(latency)

    def take(self):
        with self.lock:
            ok, err, late, lat = self.ok, self.err, self.late, sorted(self.lat)
            self.reset()
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000 if lat else 0.0
        return ok, err, late, pct(0.5), pct(0.99)


def layer(name, make, rate, duration, workers, window, errors, stop):
    due = queue.Queue()

    def worker():
        client = make()
        while True:
            t = due.get()
            if t is None:
                return
            now = time.monotonic()
            try:
                err = client.call()
            except Exception as e:  # connection refused, timeout: a failed request
                err = f"{type(e).__name__}: {e}"
            if err:
                errors.append((name, time.time(), err))
            window.add(err is None, time.monotonic() - t, now - t > 0.05)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for th in threads:
        th.start()
    start = time.monotonic()
    i = 0
    while not stop.is_set():
        t = start + i / rate
        if t - start >= duration:
            break
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        due.put(t)
        i += 1
    for _ in threads:
        due.put(None)
    for th in threads:
        th.join()


def proc(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    rss = int(status["VmRSS"].split()[0])
    threads = int(status["Threads"])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def drive(a):
    layers = {
        "ai": lambda: AiClient(a.ai, a.key),
        "mcp": lambda: McpClient(a.mcp, a.key),
        "a2a": lambda: A2aClient(a.a2a, a.key),
    }
    windows = {k: Window() for k in layers}
    errors, stop = [], threading.Event()
    runners = [threading.Thread(target=layer, args=(k, f, a.rate, a.duration, a.workers, windows[k], errors, stop))
               for k, f in layers.items()]
    out = open(a.out, "w")
    cols = ["t_s", "rss_kib", "fds", "threads"]
    for k in layers:
        cols += [f"{k}_ok", f"{k}_err", f"{k}_late", f"{k}_p50_ms", f"{k}_p99_ms"]
    out.write(",".join(cols) + "\n")
    start = time.monotonic()

    last = [0.0]

    def sample():
        last[0] = time.monotonic()
        rss, fds, threads = proc(a.pid)
        row = [f"{time.monotonic() - start:.1f}", str(rss), str(fds), str(threads)]
        for k in layers:
            ok, err, late, p50, p99 = windows[k].take()
            row += [str(ok), str(err), str(late), f"{p50:.2f}", f"{p99:.2f}"]
        out.write(",".join(row) + "\n")
        out.flush()
        print(" ".join(f"{c}={v}" for c, v in zip(cols, row)), file=sys.stderr, flush=True)

    sample()
    for r in runners:
        r.start()
    next_sample = start + SAMPLE_S
    while any(r.is_alive() for r in runners):
        time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
        if time.monotonic() >= next_sample:
            sample()
            next_sample += SAMPLE_S
    if time.monotonic() - last[0] > 1.0:
        sample()  # the last, partial window
    out.close()
    by_layer = {}
    for k, _, _ in errors:
        by_layer[k] = by_layer.get(k, 0) + 1
    print(f"soak: done; failed requests per layer: {by_layer or 'none'}", file=sys.stderr)
    for e in errors[:20]:
        print(f"  {e}", file=sys.stderr)
    return 1 if errors else 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    ag = sub.add_parser("agent")
    ag.add_argument("--port", type=int, required=True)
    d = sub.add_parser("drive")
    d.add_argument("--pid", type=int, required=True)
    d.add_argument("--ai", required=True)
    d.add_argument("--mcp", required=True)
    d.add_argument("--a2a", required=True)
    d.add_argument("--key", required=True)
    d.add_argument("--rate", type=float, default=50.0)
    d.add_argument("--duration", type=float, default=1800.0)
    d.add_argument("--workers", type=int, default=8)
    d.add_argument("--out", required=True)
    a = p.parse_args()
    if a.cmd == "agent":
        serve_agent(a.port)
    else:
        sys.exit(drive(a))


if __name__ == "__main__":
    main()
