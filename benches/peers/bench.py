#!/usr/bin/env python3
"""Side-by-side peer benchmark (issue 5): nginx, HAProxy, stock Pingora and Palisade, each with
one worker, bare and with the equivalent security work, measured in one run on this machine.

`make bench-peers` runs this script; `python3 benches/peers/bench.py --help` lists the knobs.
What it does, in order:

1. installs what is missing (Debian packages in $PEER_BENCH_PACKAGES, via apt-get, as root or
   through sudo) and builds the release binaries (palisade, examples/stock_pingora);
2. writes every configuration into a temporary directory: a self-signed certificate, a
   10,000-CIDR deny list (one entry, 127.0.0.2/32, is loopback so that the deny path can be
   checked), nginx, HAProxy and Palisade configurations, on ports picked now;
3. starts a fixed-response origin (nginx, one worker, `return 200` plus a 1 MiB file) and
   every proxy, all on 127.0.0.1. Proxies are pinned to CPU 0 and the origin and the load
   generators to CPU 1 (with `taskset`, when there are two cores or more), so that each proxy
   gets the same single core;
4. checks each proxy answers 200, and that the policy variants refuse a client on the deny
   list (source address 127.0.0.2) with 403;
5. measures: wrk HTTP/1.1 keep-alive rounds (proxies alternate within each round), h2load
   HTTP/2 over TLS rounds, 1 MiB response rounds, p99 at half of Palisade's maximum rate
   (examples/paced_load, evenly spaced requests, every proxy and the origin alone at the same
   rate; then the same rate from h2load --rps, which sends it in bursts), and memory with
   10,000 idle keep-alive client connections (each proxy started afresh);
   then a cache-hit round: nginx-policy with `proxy_cache` and Palisade with `cache:` on its
   route, both serving a page the origin marks `Cache-Control: public, max-age=3600` from
   their caches (checked: nginx says HIT in `X-Cache-Status`, Palisade's telemetry says `hit`);
   then a gzip round: nginx-policy with `gzip on` and Palisade with `compression:` on its route,
   both compressing a 24 KiB HTML page at gzip level 5 for a client that sends
   `Accept-Encoding: gzip` (checked: both answer gzip that inflates to the origin's page);
6. writes benches/peers/RESULTS.md and replaces the README's table between
   `<!-- peers:begin -->` and `<!-- peers:end -->` (skipped with a warning when absent).

CPU per request is utime+stime of all of a proxy's processes and threads, read from
/proc/PID/stat before and after each measurement, divided by the requests completed.
Absolute numbers move with whatever else the machine runs; ratios against nginx-with-policy
computed within the same run are what to read.

Every process started here is killed on exit (normal, error or Ctrl-C). Load goes only to
127.0.0.1, and every load step is bounded in time.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import ipaddress
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DEFAULT_PACKAGES = "nginx-light haproxy wrk nghttp2-client openssl libmodsecurity3 modsecurity-crs"
CLK_TCK = os.sysconf("SC_CLK_TCK")
BIG_SIZE = 1 << 20
SMALL_BODY = "hello from the origin\n"
DENY_ENTRIES = 10_000
# The client address the deny-path check connects from; it is on every deny list.
DENIED_CLIENT = "127.0.0.2"
BASELINE = "nginx-policy"
# The page the cache-hit round requests: the origin allows caching it for an hour.
CACHED_PATH = "/cached"
CACHED_BODY = "a page the origin lets proxies cache\n"
# The page the gzip round requests: HTML text, compressible as pages are (about 5:1 at level 5).
GZIP_PATH = "/page.html"
GZIP_LEVEL = 5
MARK_BEGIN = "<!-- peers:begin -->"
MARK_END = "<!-- peers:end -->"


def log(msg: str) -> None:
    print(f"[peers {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# processes: every one we start is in its own process group and is killed on exit


class Procs:
    def __init__(self) -> None:
        self.live: list[tuple[subprocess.Popen, int]] = []

    def start(self, argv, *, cpus: str | None, stop=signal.SIGTERM, stdout=None, stderr=None,
              stdin=subprocess.DEVNULL, env=None, cwd=None) -> subprocess.Popen:
        if cpus is not None:
            argv = ["taskset", "-c", cpus, *argv]
        p = subprocess.Popen(argv, stdout=stdout or subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL,
                             stdin=stdin, env=env, cwd=cwd, start_new_session=True)
        self.live.append((p, stop))
        return p

    def stop(self, p: subprocess.Popen) -> None:
        for i, (q, sig) in enumerate(self.live):
            if q is p:
                del self.live[i]
                _terminate(q, sig)
                return

    def stop_all(self) -> None:
        while self.live:
            p, sig = self.live.pop()
            _terminate(p, sig)


def _terminate(p: subprocess.Popen, sig: int) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left of the group (nginx workers, stray children) goes too.
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


PROCS = Procs()


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# /proc readings


def tree_pids(root: int) -> list[int]:
    """The process and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(rest[1]), []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(root: int) -> int:
    """utime+stime of a process tree, in clock ticks (all threads, dead ones included)."""
    total = 0
    for p in tree_pids(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            total += int(rest[11]) + int(rest[12])
        except OSError:
            pass
    return total


def rss_kib(root: int) -> int:
    total = 0
    for p in tree_pids(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def thread_counters(root: int) -> dict[int, tuple[int, int, int]]:
    """Per thread of a process tree: (voluntary switches, involuntary switches, CPU ticks)."""
    out = {}
    for p in tree_pids(root):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{p}/task/{tid}/status") as f:
                    st = dict(line.split(":", 1) for line in f if ":" in line)
                with open(f"/proc/{p}/task/{tid}/stat") as f:
                    rest = f.read().rsplit(")", 1)[1].split()
                out[int(tid)] = (int(st["voluntary_ctxt_switches"]), int(st["nonvoluntary_ctxt_switches"]),
                                 int(rest[11]) + int(rest[12]))
            except (OSError, KeyError, ValueError):
                pass
    return out


def switches(before: dict, after: dict) -> dict:
    """Context switches over a step: all threads', and the voluntary ones (each a sleep ended by a
    wake-up) of threads other than the busiest (the worker)."""
    d = {t: tuple(a - b for a, b in zip(v, before.get(t, (0, 0, 0)))) for t, v in after.items()}
    worker = max(d, key=lambda t: d[t][2], default=None)
    return {"vcsw": sum(v[0] for v in d.values()), "ivcsw": sum(v[1] for v in d.values()),
            "other_wakeups": sum(v[0] for t, v in d.items() if t != worker)}


class SyscallCounter:
    """`perf stat -e raw_syscalls:sys_enter` attached to a process tree for one step; counts
    nothing (NaN) where perf or the tracepoint is missing."""
    available: bool | None = None

    def __init__(self, root: int | None):
        self.proc = None
        if root is None or not self.usable():
            return
        pids = ",".join(str(p) for p in tree_pids(root))
        self.proc = subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", pids],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.2)

    @classmethod
    def usable(cls) -> bool:
        if cls.available is None:
            r = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "true"],
                               capture_output=True, text=True) if shutil.which("perf") else None
            cls.available = bool(r and r.returncode == 0 and re.search(r"^\d+,", r.stderr, re.M))
            if not cls.available:
                log("perf with the raw_syscalls tracepoint is not usable here: syscalls are not counted")
        return cls.available

    def stop(self) -> float:
        if self.proc is None:
            return float("nan")
        self.proc.send_signal(signal.SIGINT)
        err = self.proc.communicate(timeout=30)[1]
        m = re.search(r"^(\d+),", err, re.M)
        return float(m.group(1)) if m else float("nan")


def cpu_times() -> dict[str, tuple[int, int]]:
    """Per-CPU (busy, total) ticks from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            name, *vals = line.split()
            v = [int(x) for x in vals]
            idle = v[3] + v[4]
            out[name] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


# ---------------------------------------------------------------------------------------------
# setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_packages(packages: list[str]) -> None:
    missing = [p for p in packages
               if subprocess.run(["dpkg", "-s", p], capture_output=True).returncode != 0]
    if not missing:
        log(f"packages present: {' '.join(packages)}")
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    log(f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-q"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing],
                   check=True, env=env)


def build() -> None:
    log("building release binaries (cargo build --release --bin palisade --example stock_pingora "
        "--example paced_load)")
    subprocess.run(["cargo", "build", "--release", "--bin", "palisade", "--example", "stock_pingora",
                    "--example", "paced_load"], check=True, cwd=REPO)


def deny_list(seed: int = 5) -> list[str]:
    """10,000 CIDRs from public unicast space (never 127.0.0.1), plus the loopback check entry."""
    rng = random.Random(seed)
    out = {f"{DENIED_CLIENT}/32"}
    reserved = [ipaddress.ip_network(n) for n in
                ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                 "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3")]
    while len(out) < DENY_ENTRIES:
        plen = rng.choice((16, 20, 22, 24, 24, 24, 28, 32, 32))
        net = ipaddress.ip_network((rng.getrandbits(32), plen), strict=False)
        if any(net.overlaps(r) for r in reserved):
            continue
        out.add(str(net))
    return sorted(out)


@dataclass
class Proxy:
    name: str
    kind: str                    # nginx | haproxy | pingora
    policy: bool
    port: int
    tls_port: int | None
    argv: list[str]
    stop: int = signal.SIGTERM
    logs: list[Path] = field(default_factory=list)
    env: dict | None = None
    proc: subprocess.Popen | None = None


class Setup:
    def __init__(self, args, tmp: Path):
        self.args = args
        self.tmp = tmp
        self.two_cores = (os.cpu_count() or 1) >= 2 and not args.no_pin
        self.proxy_cpus = "0" if self.two_cores else None
        self.load_cpus = "1" if self.two_cores else None
        self.origin_port = free_port()
        self.cert = tmp / "cert.pem"
        self.key = tmp / "key.pem"
        self.proxies: list[Proxy] = []

    # -- files ------------------------------------------------------------------------------
    def write_files(self) -> None:
        t = self.tmp
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(self.key), "-out", str(self.cert), "-days", "2",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, capture_output=True)
        (t / "haproxy.pem").write_text(self.cert.read_text() + self.key.read_text())
        cidrs = deny_list()
        (t / "deny.txt").write_text("\n".join(cidrs) + "\n")
        (t / "deny-nginx.conf").write_text("".join(f"{c} 1;\n" for c in cidrs))
        www = t / "www"
        www.mkdir()
        (www / "1m").write_bytes(os.urandom(BIG_SIZE))
        (www / GZIP_PATH.lstrip("/")).write_bytes(html_page())
        for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (t / "nginx-temp" / d).mkdir(parents=True, exist_ok=True)

    def nginx_common(self, name: str) -> str:
        t = self.tmp
        # Run as root, nginx's workers would become `nobody`, who cannot enter the private
        # working directory (the cache's files are opened by the workers).
        user = "user root;" if os.geteuid() == 0 else ""
        return f"""
{user}
daemon off;
pid {t}/{name}.pid;
error_log {t}/{name}-error.log warn;
worker_processes 1;
worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
"""

    def nginx_temp_paths(self) -> str:
        t = self.tmp / "nginx-temp"
        return (f"client_body_temp_path {t}/client_body; proxy_temp_path {t}/proxy; "
                f"fastcgi_temp_path {t}/fastcgi; uwsgi_temp_path {t}/uwsgi; scgi_temp_path {t}/scgi;")

    def origin_conf(self) -> Path:
        conf = self.nginx_common("origin") + f"""
master_process off;
http {{
    {self.nginx_temp_paths()}
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{self.origin_port} backlog=4096;
        location = /1m {{ root {self.tmp}/www; default_type application/octet-stream; }}
        location = {GZIP_PATH} {{ root {self.tmp}/www; default_type text/html; }}
        location = {CACHED_PATH} {{
            default_type text/plain;
            add_header Cache-Control "public, max-age=3600";
            return 200 "{CACHED_BODY.strip()}\n";
        }}
        location / {{ default_type text/plain; return 200 "{SMALL_BODY.strip()}\\n"; }}
    }}
}}
"""
        p = self.tmp / "origin.conf"
        p.write_text(conf)
        return p

    def nginx_proxy(self, policy: bool, cache: bool = False, gzip: bool = False) -> Proxy:
        name = ("nginx-policy" if policy else "nginx") + ("-cache" if cache else "") + ("-gzip" if gzip else "")
        port, tls_port = free_port(), free_port()
        t = self.tmp
        access = t / f"{name}-access.jsonl"
        http_policy = ""
        server_policy = ""
        if policy:
            # The same work Palisade does: deny list, per-IP rate limit that never triggers,
            # request id and forwarding headers, one JSON line per request (buffered, as
            # Palisade's telemetry writer batches its writes).
            http_policy = f"""
    geo $denied {{ default 0; include {t}/deny-nginx.conf; }}
    limit_req_zone $binary_remote_addr zone=perip:16m rate=1000000r/s;
    log_format palisade_like escape=json '{{"@timestamp":"$time_iso8601","id":"$request_id",'
        '"client":"$remote_addr","port":"$remote_port","method":"$request_method","host":"$host",'
        '"path":"$uri","query":"$args","version":"$server_protocol","status":$status,'
        '"bytes_sent":$body_bytes_sent,"bytes_read":$request_length,"duration":$request_time,'
        '"upstream":"$upstream_addr","upstream_time":"$upstream_response_time",'
        '"user_agent":"$http_user_agent","referer":"$http_referer","denied":"$denied",'
        '"limit":"$limit_req_status"}}';
    access_log {access} palisade_like buffer=64k flush=1s;"""
            server_policy = """
        if ($denied) { return 403; }
        limit_req zone=perip burst=1000000 nodelay;
        limit_req_status 429;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Request-ID $request_id;
        add_header X-Request-ID $request_id always;"""
        if cache:
            # What Palisade's `cache: {}` does: a bounded cache, a lock against stampedes,
            # stale answers while updating and on errors.
            http_policy += f"""
    proxy_cache_path {t}/{name}-store levels=1:2 keys_zone=pc:10m max_size=64m inactive=1h use_temp_path=off;"""
            server_policy += """
        proxy_cache pc;
        proxy_cache_lock on;
        proxy_cache_use_stale error timeout updating;
        proxy_cache_background_update on;
        add_header X-Cache-Status $upstream_cache_status always;"""
        if gzip:
            # What Palisade's `compression: {codings: [gzip], level: 5}` does (its default
            # min_size and Vary; nginx always compresses text/html).
            http_policy += f"""
    gzip on; gzip_comp_level {GZIP_LEVEL}; gzip_min_length 1024; gzip_vary on; gzip_proxied any;"""
        conf = self.nginx_common(name) + f"""
master_process on;
http {{
    {self.nginx_temp_paths()}
    {"" if policy else "access_log off;"}
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    upstream origin {{
        server 127.0.0.1:{self.origin_port};
        keepalive 128;
        keepalive_requests 1000000000;
        keepalive_timeout 600s;
    }}{http_policy}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        listen 127.0.0.1:{tls_port} ssl http2 backlog=4096;
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_buffers 16 64k;
        proxy_busy_buffers_size 128k;
        proxy_max_temp_file_size 0;{server_policy}
        location / {{ proxy_pass http://origin; }}
    }}
}}
"""
        path = t / f"{name}.conf"
        path.write_text(conf)
        return Proxy(name, "nginx", policy, port, tls_port, ["nginx", "-c", str(path), "-p", str(t)],
                     logs=[access] if policy else [])

    def haproxy_proxy(self, policy: bool) -> Proxy:
        name = "haproxy-policy" if policy else "haproxy"
        port, tls_port = free_port(), free_port()
        t = self.tmp
        access = t / f"{name}-access.jsonl"
        glob_log = ""
        fe_policy = ""
        if policy:
            # HAProxy logs through a syslog target; `log stdout format raw` writes each line to
            # its standard output, which this script sends to a file.
            glob_log = "    log stdout format raw local0 info\n"
            fe_policy = f"""
    log global
    option forwardfor
    unique-id-format %{{+X}}o%ci%cp%Ts%rt%pid
    unique-id-header X-Request-ID
    acl denied src -f {t}/deny.txt
    http-request deny deny_status 403 if denied
    stick-table type ip size 100k expire 60s store http_req_rate(1s)
    http-request track-sc0 src
    http-request deny deny_status 429 if {{ sc_http_req_rate(0) gt 100000000 }}
    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}
    http-request set-header X-Forwarded-Proto http if !{{ ssl_fc }}
    http-after-response set-header X-Request-ID %[unique-id]
    log-format '{{"@timestamp":"%t","id":"%ID","client":"%ci","port":%cp,"method":"%HM","host":"%[capture.req.hdr(0)]","path":"%HP","query":"%HQ","version":"%HV","status":%ST,"bytes_sent":%B,"bytes_read":%U,"duration_ms":%Ta,"upstream":"%si:%sp","upstream_ms":%Tr,"user_agent":"%[capture.req.hdr(1)]","referer":"%[capture.req.hdr(2)]"}}'
    http-request capture req.hdr(host) len 64
    http-request capture req.hdr(user-agent) len 128
    http-request capture req.hdr(referer) len 128"""
        conf = f"""global
    nbthread 1
    maxconn 10500
    no strict-limits
{glob_log}    tune.ssl.default-dh-param 2048

defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 600s
    timeout http-request 60s

frontend fe
    bind 127.0.0.1:{port}
    bind 127.0.0.1:{tls_port} ssl crt {t}/haproxy.pem alpn h2,http/1.1{fe_policy}
    default_backend origin

backend origin
    server o 127.0.0.1:{self.origin_port}
"""
        path = t / f"{name}.cfg"
        path.write_text(conf)
        return Proxy(name, "haproxy", policy, port, tls_port, ["haproxy", "-db", "-f", str(path)],
                     logs=[access] if policy else [])

    def stock_pingora(self, binary: Path) -> Proxy:
        port, tls_port = free_port(), free_port()
        return Proxy("stock-pingora", "pingora", False, port, tls_port,
                     [str(binary), f"127.0.0.1:{port}", f"127.0.0.1:{self.origin_port}",
                      f"127.0.0.1:{tls_port}", str(self.cert), str(self.key)], stop=signal.SIGINT)

    def palisade(self, name: str, binary: Path, policy: bool = True, env: dict | None = None,
                 waf: str | None = None, cache: bool = False, gzip: bool = False,
                 lean: bool = False) -> Proxy:
        """Palisade with the peers' policy; `waf`: None, "builtin" (the built-in WAF tier on every
        request, as policies/waf.yaml) or "crs" (the built-in tier plus the Core Rule Set tier at
        paranoia level 1, as policies/waf-crs.yaml); `cache`: the route keeps responses in the
        response cache; `gzip`: the route compresses responses with gzip; `lean`: the switchable
        per-request headers off (X-Forwarded-For, X-Forwarded-Proto, the request id both ways)."""
        port, tls_port = free_port(), free_port()
        t = self.tmp / name
        t.mkdir(exist_ok=True)
        telemetry = t / "telemetry.jsonl"
        if policy:
            (t / "policy.yaml").write_text(f"""# The same work as nginx-policy and haproxy-policy.
lists:
  denied:
    files: [{self.tmp}/deny.txt]
rules:
  - id: deny-listed-ip
    match: {{ ip_lists: [denied] }}
    action: block
limits:
  - id: per-ip
    key: client_ip
    requests: 100000000
    per: 1s
    action: throttle
offenders:
  strikes: 30
  window: 60s
  throttle_at: 15
  ban_for: 15m
""" + {None: "", "builtin": "waf: { mode: enforce, threshold: 5 }\n",
       "crs": "waf: { mode: enforce, threshold: 5, crs: { paranoia: 1, threshold: 5 } }\n"}[waf])
        else:
            (t / "policy.yaml").write_text("{}\n")
        tele = (f"{{ sink: file, path: {telemetry}, max_file_size: 1GiB, keep_files: 0 }}"
                if policy else "{ sink: off }")
        # The route's own keys first, then top-level sections.
        route_extra = f"\n    compression: {{ codings: [gzip], level: {GZIP_LEVEL} }}" if gzip else ""
        if cache:
            route_extra += "\n    cache: {}\ncache: { max_size: 64MiB }"
        (t / "palisade.yaml").write_text(f"""server:
  threads: 1
  pid_file: {t}/palisade.pid
  upgrade_sock: {t}/upgrade.sock
listeners:
  - address: 127.0.0.1:{port}
  - address: 127.0.0.1:{tls_port}
    tls:
      certificates: [{{ cert: {self.cert}, key: {self.key} }}]
      http2: true
upstreams:
  origin:
    backends: [127.0.0.1:{self.origin_port}]
routes:
  - name: all
    upstream: origin{route_extra}
policies: [policy.yaml]
telemetry: {tele}
reload: {{ watch: false }}
# Every benchmark client is 127.0.0.1: the per-address connection cap stays on (its counting
# is part of the work measured) but high enough for the 10,000 idle connections.
limits: {{ max_connections_per_ip: 1000000 }}
""" + ("forwarding: { x_forwarded_for: false, x_forwarded_proto: false }\n"
       "request_id: { to_origin: false, to_client: false }\n" if lean else ""))
        full_env = dict(os.environ, RUST_LOG="warn", **(env or {}))
        return Proxy(name, "pingora", policy, port, tls_port,
                     [str(binary), "run", "-c", str(t / "palisade.yaml")], stop=signal.SIGINT,
                     logs=[telemetry] if policy else [], env=full_env)

    # -- processes --------------------------------------------------------------------------
    def start_origin(self) -> subprocess.Popen:
        conf = self.origin_conf()
        p = PROCS.start(["nginx", "-c", str(conf), "-p", str(self.tmp)], cpus=self.load_cpus)
        wait_http(self.origin_port, "origin", p)
        return p

    def start_proxy(self, px: Proxy) -> None:
        out = open(px.logs[0], "ab") if px.kind == "haproxy" and px.logs else None
        err = open(self.tmp / f"{px.name}.stderr", "ab")
        px.proc = PROCS.start(px.argv, cpus=self.proxy_cpus, stop=px.stop, stdout=out, stderr=err, env=px.env)
        wait_http(px.port, px.name, px.proc)

    def stop_proxy(self, px: Proxy) -> None:
        if px.proc is not None:
            PROCS.stop(px.proc)
            px.proc = None


def wait_http(port: int, name: str, p: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if p.poll() is not None:
            raise SystemExit(f"{name} exited with {p.returncode} at start (see the temp dir's logs)")
        try:
            if http_get(port, "/")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{name} did not answer on 127.0.0.1:{port} within {timeout:.0f}s")


def http_get(port: int, path: str, source: str | None = None, headers: str = "",
             with_head: bool = False):
    """Status and body (de-chunked) of one request; also the lower-cased head with `with_head`."""
    with socket.create_connection(("127.0.0.1", port), timeout=5,
                                  source_address=(source, 0) if source else None) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    head = head.lower()
    if b"\r\ntransfer-encoding: chunked" in head:
        body = dechunk(body)
    status = int(head.split()[1])
    return (status, body, head) if with_head else (status, body)


def dechunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def html_page() -> bytes:
    """About 24 KiB of HTML made of varied words, as a listing page is: gzip -5 takes it to ~1/5."""
    rnd = random.Random(7)
    words = ("stream chat moderator viewer channel profile settings follow subscribe live clip emote "
             "schedule category language mature tags title description panel donation raid host").split()
    rows = []
    while sum(map(len, rows)) < 24 * 1024:
        title = " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 8)))
        rows.append(f'<li class="card"><a href="/c/{rnd.randint(1000, 99999)}">{title}</a>'
                    f'<span class="viewers">{rnd.randint(1, 50000)} viewers</span></li>\n')
    return ("<!doctype html><html><head><title>Live channels</title></head><body><ul>\n"
            + "".join(rows) + "</ul></body></html>\n").encode()


def sanity(px: Proxy) -> None:
    status, body = http_get(px.port, "/")
    if status != 200 or body.decode(errors="replace") != SMALL_BODY:
        raise SystemExit(f"{px.name}: GET / gave {status} {body[:80]!r}")
    status, body = http_get(px.port, "/1m")
    if status != 200 or len(body) != BIG_SIZE:
        raise SystemExit(f"{px.name}: GET /1m gave {status} with {len(body)} bytes")
    if px.policy:
        status, _ = http_get(px.port, "/", source=DENIED_CLIENT)
        if status != 403:
            raise SystemExit(f"{px.name}: a client on the deny list got {status}, not 403")


def gzip_sanity(setup: "Setup", px: Proxy) -> None:
    """A client that asks for gzip gets gzip that inflates to the origin's page; one that does
    not gets the page as it is."""
    page = (setup.tmp / "www" / GZIP_PATH.lstrip("/")).read_bytes()
    status, body, head = http_get(px.port, GZIP_PATH, headers="Accept-Encoding: gzip\r\n", with_head=True)
    if status != 200 or b"\r\ncontent-encoding: gzip" not in head:
        raise SystemExit(f"{px.name}: GET {GZIP_PATH} with Accept-Encoding: gzip gave {status}, head {head!r}")
    if zlib.decompress(body, 16 + zlib.MAX_WBITS) != page:
        raise SystemExit(f"{px.name}: the gzip answer does not inflate to the origin's page")
    status, body = http_get(px.port, GZIP_PATH)
    if status != 200 or body != page:
        raise SystemExit(f"{px.name}: GET {GZIP_PATH} without Accept-Encoding gave {status}, {len(body)} bytes")


def cache_sanity(px: Proxy) -> None:
    """The cacheable page comes back, and from the cache, once it has been fetched."""
    for _ in range(3):
        status, body = http_get(px.port, CACHED_PATH)
        if status != 200 or body.decode(errors="replace") != CACHED_BODY:
            raise SystemExit(f"{px.name}: GET {CACHED_PATH} gave {status} {body[:80]!r}")
    if px.kind == "nginx":
        with socket.create_connection(("127.0.0.1", px.port), timeout=5) as s:
            s.sendall(f"GET {CACHED_PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(65536).split(b"\r\n\r\n")[0].lower()
        if b"x-cache-status: hit" not in head:
            raise SystemExit(f"{px.name}: {CACHED_PATH} was not a cache hit: {head!r}")
    else:
        deadline = time.time() + 5
        while time.time() < deadline:
            if any(b'"cache":"hit"' in lf.read_bytes() for lf in px.logs if lf.exists()):
                return
            time.sleep(0.2)
        raise SystemExit(f"{px.name}: telemetry shows no cache hit for {CACHED_PATH}")


# ---------------------------------------------------------------------------------------------
# load generators


def parse_duration_us(s: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        raise ValueError(s)
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 60e6}[m.group(2)]


@dataclass
class Sample:
    rps: float
    p50_us: float
    p99_us: float
    requests: int
    errors: int
    cpu_us_per_req: float
    proxy_util: float            # proxy CPU seconds per second of wall time
    load_core_busy: float        # busy fraction of the load generators' core
    other_cores: float           # CPU (in cores) used by processes that are not ours
    mbps: float = 0.0
    # Per request, counted in the proxy's processes (they move between hosts less than CPU time):
    syscalls: float = float("nan")    # system calls entered
    vcsw: float = float("nan")        # voluntary context switches, all threads
    ivcsw: float = float("nan")       # involuntary context switches, all threads
    other_wakeups: float = float("nan")   # voluntary switches of threads other than the worker
    p999_us: float = float("nan")
    lag99_us: float = float("nan")    # paced_load: how late the 99th-percentile send left


def wrk(port: int, path: str, seconds: int, conns: int, cpus: str | None,
        headers: list[str] | None = None) -> dict:
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "10s",
            *[a for h in headers or [] for a in ("-H", h)], f"http://127.0.0.1:{port}{path}"]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+), ([\d.]+)(\w+) read", out)
    if not m or "50" not in lat:
        raise RuntimeError(f"cannot read wrk output:\n{out}")
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}
    mb = float(m.group(4)) * unit.get(m.group(5), 1) / (1 << 20)
    return {"requests": int(m.group(1)), "rps": rps, "p50": parse_duration_us(lat["50"]),
            "p99": parse_duration_us(lat["99"]), "errors": errors, "mb": mb}


def h2load(url: str, seconds: int, clients: int, streams: int, cpus: str | None, logfile: Path,
           extra: list[str] | None = None) -> dict:
    argv = ["h2load", "-t1", f"-c{clients}", f"-m{streams}", f"-D{seconds}", f"--log-file={logfile}",
            *(extra or []), url]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored", out)
    f = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    st = re.search(r"status codes: (\d+) 2xx", out)
    if not m or not f:
        raise RuntimeError(f"cannot read h2load output:\n{out}")
    lats = []
    with open(logfile) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 3:
                lats.append(int(parts[2]))
    logfile.unlink(missing_ok=True)
    lats.sort()
    pct = (lambda q: lats[min(len(lats) - 1, int(q * len(lats)))] if lats else float("nan"))
    done = int(m.group(3))
    ok = int(st.group(1)) if st else 0
    return {"requests": done, "rps": float(f.group(2)), "p50": pct(0.50), "p99": pct(0.99),
            "errors": int(m.group(5)) + int(m.group(6)) + (done - ok), "mb": 0.0}


def paced(binary: Path, port: int, rate: float, conns: int, seconds: int, cpus: str | None) -> dict:
    """examples/paced_load: requests at evenly spaced times, latency counted from when each was due."""
    argv = [str(binary), str(port), "/", f"{rate:.1f}", str(conns), str(seconds), "1"]
    if cpus is not None:
        argv = ["taskset", "-c", cpus, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    try:
        r = json.loads(out.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"cannot read paced_load output:\n{out.stdout}{out.stderr}") from None
    return {"requests": r["requests"], "rps": r["rps"], "p50": r["p50_us"], "p99": r["p99_us"],
            "p999": r["p999_us"], "lag99": r["send_lag_p99_us"], "errors": r["errors"], "mb": 0.0}


def measure(px_root: int | None, load_pids: list[int], run) -> tuple[dict, dict]:
    """Run one load step and read CPU of the proxy, of our other processes and of the machine."""
    sc = SyscallCounter(px_root)
    th0 = thread_counters(px_root) if px_root else {}
    c0 = cpu_ticks(px_root) if px_root else 0
    o0 = sum(cpu_ticks(p) for p in load_pids)
    s0 = cpu_times()
    t0 = time.time()
    res = run()
    wall = time.time() - t0
    c1 = cpu_ticks(px_root) if px_root else 0
    o1 = sum(cpu_ticks(p) for p in load_pids)
    s1 = cpu_times()
    th1 = thread_counters(px_root) if px_root else {}
    return res, {"proxy_s": (c1 - c0) / CLK_TCK, "ours_s": (o1 - o0) / CLK_TCK, "wall": wall, "s0": s0, "s1": s1,
                 "syscalls": sc.stop(), **switches(th0, th1)}


def to_sample(res: dict, m: dict, load_cpu: str | None, loadgen_s: float) -> Sample:
    s0, s1 = m["s0"], m["s1"]
    busy_all = (s1["cpu"][0] - s0["cpu"][0]) / CLK_TCK
    core = f"cpu{load_cpu}" if load_cpu is not None else "cpu"
    b = s1[core][0] - s0[core][0]
    tot = s1[core][1] - s0[core][1]
    other = max(0.0, busy_all - m["proxy_s"] - m["ours_s"] - loadgen_s) / m["wall"]
    n = max(res["requests"], 1)
    return Sample(rps=res["rps"], p50_us=res["p50"], p99_us=res["p99"], requests=res["requests"],
                  errors=res["errors"], cpu_us_per_req=m["proxy_s"] * 1e6 / n, proxy_util=m["proxy_s"] / m["wall"],
                  load_core_busy=b / tot if tot else 0.0, other_cores=other, mbps=res["mb"] / m["wall"],
                  syscalls=m["syscalls"] / n, vcsw=m["vcsw"] / n, ivcsw=m["ivcsw"] / n,
                  other_wakeups=m["other_wakeups"] / n,
                  p999_us=res.get("p999", float("nan")), lag99_us=res.get("lag99", float("nan")))


def run_loadgen(setup: Setup, origin: subprocess.Popen, px_root: int | None, fn) -> Sample:
    """Run a load generator (fn returns (result, its own CPU seconds)) and sample everything."""
    box = {}

    def call():
        t0 = os.times()
        r = fn()
        t1 = os.times()
        box["gen_s"] = (t1.children_user - t0.children_user) + (t1.children_system - t0.children_system)
        return r

    res, m = measure(px_root, [origin.pid], call)
    return to_sample(res, m, setup.load_cpus, box["gen_s"])


def profile(px: Proxy, setup: Setup, out_dir: Path, load) -> None:
    """perf record (software clock, call graphs) of one proxy under load; a flat report beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = out_dir / f"perf-{px.name}.data"
    rec = PROCS.start(["perf", "record", "-e", "cpu-clock", "-F", "2000", "-g", "-o", str(data),
                       "-p", str(px.proc.pid)], cpus=setup.load_cpus, stop=signal.SIGINT)
    time.sleep(0.5)
    load()
    PROCS.stop(rec)
    for kind, extra in (("flat", ["--no-children"]), ("children", ["--children"])):
        with open(out_dir / f"perf-{px.name}-{kind}.txt", "w") as f:
            subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--sort", "dso,symbol",
                            "--percent-limit", "0.3", "-g", "none", *extra], stdout=f, stderr=subprocess.DEVNULL,
                           timeout=600)
    log(f"profile of {px.name}: {out_dir}/perf-{px.name}-{{flat,children}}.txt (data in {data})")


# ---------------------------------------------------------------------------------------------
# idle connections (runs as its own process: `bench.py _idle PORT N SECONDS`)


def idle_main(port: int, n: int, hold: float) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    req = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    socks = []
    failed = 0
    for _ in range(n):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("closed")
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            cl = re.search(rb"(?i)content-length:\s*(\d+)", head)
            want = int(cl.group(1)) if cl else 0
            while len(body) < want:
                chunk = s.recv(4096)
                if not chunk:
                    raise OSError("closed")
                body += chunk
            socks.append(s)
        except OSError:
            failed += 1
    print(f"ready {len(socks)} {failed}", flush=True)
    # Hold the connections until told to stop (stdin closes) or `hold` seconds pass.
    import select
    select.select([sys.stdin], [], [], hold)
    for s in socks:
        s.close()


def feature_rounds(setup: Setup, origin, proxies: list[Proxy], label: str, path: str, headers: list[str],
                   rounds: int, seconds: int, conns: int, check) -> tuple[list[str], dict[str, list[Sample]]]:
    """Rounds of wrk on `path` against proxies doing one feature (cache, gzip), alternating their
    order each round; `check(px)` first proves each does it."""
    order = [p.name for p in proxies]
    samples: dict[str, list[Sample]] = {n: [] for n in order}
    for px in proxies:
        setup.start_proxy(px)
        check(px)
    log(f"{label}: {', '.join(order)} pass the check")
    for px in proxies:
        wrk(px.port, path, 2, conns, setup.load_cpus, headers)
    for r in range(rounds):
        for name in order[r % 2:] + order[:r % 2]:
            px = next(p for p in proxies if p.name == name)
            for lf in px.logs:
                if lf.exists():
                    os.truncate(lf, 0)
            s = run_loadgen(setup, origin, px.proc.pid,
                            lambda: wrk(px.port, path, seconds, conns, setup.load_cpus, headers))
            samples[name].append(s)
            log(f"{label} round {r + 1}/{rounds} {name:18} {s.rps:9,.0f} req/s  p99 "
                f"{fmt_us(s.p99_us):>9}  {s.cpu_us_per_req:5.1f} µs/req  proxy {s.proxy_util * 100:3.0f}%  "
                f"err {s.errors}")
    for px in proxies:
        setup.stop_proxy(px)
    return order, samples


def idle_rss(setup: Setup, px: Proxy, n: int) -> dict:
    setup.start_proxy(px)
    time.sleep(1.0)
    before = rss_kib(px.proc.pid)
    opener = PROCS.start([sys.executable, str(Path(__file__).resolve()), "_idle", str(px.port), str(n), "120"],
                         cpus=setup.load_cpus, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    line = opener.stdout.readline().decode().split()
    opened = int(line[1]) if len(line) == 3 else 0
    failed = int(line[2]) if len(line) == 3 else n
    time.sleep(3.0)
    during = rss_kib(px.proc.pid)
    opener.stdin.close()
    PROCS.stop(opener)
    setup.stop_proxy(px)
    return {"before_mib": before / 1024, "during_mib": during / 1024, "opened": opened, "failed": failed}


# ---------------------------------------------------------------------------------------------
# report


def med(xs):
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def spread(xs):
    return (min(xs), max(xs)) if xs else (float("nan"), float("nan"))


def fmt_us(us: float) -> str:
    if us != us:
        return "n/a"
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def summarize(samples: dict[str, list[Sample]]) -> dict[str, dict]:
    out = {}
    for name, ss in samples.items():
        cpu = [s.cpu_us_per_req for s in ss]
        out[name] = {
            "rps": med([s.rps for s in ss]), "p50": med([s.p50_us for s in ss]), "p99": med([s.p99_us for s in ss]),
            "cpu": med(cpu), "cpu_lo": spread(cpu)[0], "cpu_hi": spread(cpu)[1],
            "util": med([s.proxy_util for s in ss]), "load_busy": med([s.load_core_busy for s in ss]),
            "other": med([s.other_cores for s in ss]), "errors": sum(s.errors for s in ss),
            "mbps": med([s.mbps for s in ss]), "n": len(ss),
            "syscalls": med([s.syscalls for s in ss]), "vcsw": med([s.vcsw for s in ss]),
            "ivcsw": med([s.ivcsw for s in ss]), "other_wakeups": med([s.other_wakeups for s in ss]),
        }
    return out


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b and b == b and a == a else "n/a"


def table(summary: dict[str, dict], order: list[str], big: bool = False) -> list[str]:
    base = summary.get(BASELINE)
    head = ("| proxy | req/s | p50 | p99 | CPU µs/req (min–max) | CPU/req vs nginx-policy | req/s vs nginx-policy "
            "| proxy core busy | load core busy | errors |")
    if big:
        head = head.replace("| errors |", "| MiB/s | errors |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for name in order:
        s = summary.get(name)
        if not s:
            continue
        row = (f"| {name} | {s['rps']:,.0f} | {fmt_us(s['p50'])} | {fmt_us(s['p99'])} | "
               f"{s['cpu']:.1f} ({s['cpu_lo']:.1f}–{s['cpu_hi']:.1f}) | "
               f"{ratio(s['cpu'], base['cpu']) if base else 'n/a'} | {ratio(s['rps'], base['rps']) if base else 'n/a'} | "
               f"{s['util'] * 100:.0f}% | {s['load_busy'] * 100:.0f}% |")
        if big:
            row += f" {s['mbps']:,.0f} |"
        row += f" {s['errors']} |"
        lines.append(row)
    return lines


def feature_section(title: str, text: str, samples: dict[str, list[Sample]], order: list[str], h1s: dict,
                    compare: str) -> list[str]:
    """A feature round's report (cache, gzip): its table, with ratios against nginx-policy's
    small-response rounds when they ran, and the two contenders (nginx's first) compared."""
    fs = summarize({k: v for k, v in samples.items() if v})
    base = {BASELINE: h1s[BASELINE]} if BASELINE in h1s else {}
    text += (" The ratio columns are against nginx-policy without the feature, from the rounds above; "
             if base else " ") + "the line below compares the two."
    out = [title, "", text, ""] + table({**fs, **base}, order) + [""]
    theirs, ours = (fs.get(n) for n in order)
    if theirs and ours:
        out += [f"{compare}: CPU/request {ratio(ours['cpu'], theirs['cpu'])}, "
                f"req/s {ratio(ours['rps'], theirs['rps'])}.", ""]
    return out


def counters_table(summary: dict[str, dict], order: list[str]) -> list[str]:
    """What moves between hosts, per request: system calls, context switches, other threads' wake-ups."""
    lines = ["| proxy | syscalls/req | voluntary switches/req | involuntary switches/req "
             "| wake-ups of other threads/req |", "|---|---|---|---|---|"]
    f = (lambda x: f"{x:.3f}" if x == x else "n/a")
    for name in order:
        s = summary.get(name)
        if s:
            lines.append(f"| {name} | {f(s['syscalls'])} | {f(s['vcsw'])} | {f(s['ivcsw'])} | {f(s['other_wakeups'])} |")
    return lines


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} × {model}, Linux {os.uname().release}"


def versions() -> str:
    def first(argv):
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    wrk_v = " ".join(first(["wrk", "-v"]).split()[:2])
    return "; ".join([first(["nginx", "-v"]).replace("nginx version: ", ""), " ".join(first(["haproxy", "-v"]).split()[:3]),
                      wrk_v, first(["h2load", "--version"]), first(["rustc", "--version"]),
                      "Pingora 0.9.1 (Cargo.lock)"])


# ---------------------------------------------------------------------------------------------
# main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="HTTP/1.1 rounds (each proxy once per round)")
    ap.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--h2-rounds", type=int, default=2)
    ap.add_argument("--big-rounds", type=int, default=2, help="1 MiB response rounds")
    ap.add_argument("--half-rounds", type=int, default=3, help="paced half-load rounds (the median p99 is kept)")
    ap.add_argument("--idle-connections", type=int, default=10_000)
    ap.add_argument("--cache-rounds", type=int, default=3, help="cache-hit rounds (nginx proxy_cache vs Palisade cache)")
    ap.add_argument("--gzip-rounds", type=int, default=3, help="gzip rounds (nginx gzip vs Palisade compression)")
    ap.add_argument("--skip", default="", help="comma list of steps to skip: h1,h2,big,half,cache,gzip,rss")
    ap.add_argument("--palisade", action="append", default=[], metavar="NAME=BINARY",
                    help="an extra Palisade build to measure beside target/release/palisade (A/B runs); a "
                         "NAME containing 'bare' or 'lean' runs it as palisade-bare or palisade-lean is run")
    ap.add_argument("--palisade-env", action="append", default=[], metavar="NAME=VAR=VALUE,...",
                    help="an extra Palisade contender: the default binary with these environment variables")
    ap.add_argument("--only", default="", metavar="NAME,...",
                    help="measure only these contenders (A/B runs); the README is then left alone")
    ap.add_argument("--with-bare-palisade", action="store_true",
                    help="also measure Palisade with an empty policy and telemetry off (palisade-bare), and "
                         "the same with the switchable per-request headers off (palisade-lean)")
    ap.add_argument("--profile", action="append", default=[], metavar="PROXY",
                    help="after the HTTP/1.1 rounds, record a perf profile (software clock) of PROXY under "
                         "the same load into --profile-dir")
    ap.add_argument("--profile-dir", type=Path, default=REPO / "target/peers-profile")
    ap.add_argument("--target-dir", type=Path, default=REPO / "target",
                    help="where the release binaries are (with --no-build, e.g. a build of another tree)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--no-install", action="store_true")
    ap.add_argument("--no-pin", action="store_true", help="do not pin proxies and load to separate cores")
    ap.add_argument("--no-write", action="store_true", help="print the results only")
    ap.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--readme", type=Path, default=REPO / "README.md")
    ap.add_argument("--keep-tmp", action="store_true")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(PROCS.stop_all)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < args.idle_connections + 1000 and "rss" not in skip:
        log(f"open-file limit {hard} is too low for {args.idle_connections} idle connections; "
            f"using {hard - 1000}")
        args.idle_connections = hard - 1000

    if not args.no_install:
        ensure_packages(os.environ.get("PEER_BENCH_PACKAGES", DEFAULT_PACKAGES).split())
    if not args.no_build:
        build()
    palisade_bin = args.target_dir / "release/palisade"
    stock_bin = args.target_dir / "release/examples/stock_pingora"
    paced_bin = args.target_dir / "release/examples/paced_load"
    for b in (palisade_bin, stock_bin, paced_bin):
        if not b.exists():
            raise SystemExit(f"{b} is missing: build it (or run without --no-build)")

    tmp = Path(tempfile.mkdtemp(prefix="palisade-peers-"))
    if not args.keep_tmp:
        atexit.register(shutil.rmtree, tmp, True)
    log(f"working directory {tmp}")
    setup = Setup(args, tmp)
    setup.write_files()
    started = datetime.datetime.now().astimezone()

    proxies = [setup.nginx_proxy(False), setup.nginx_proxy(True), setup.haproxy_proxy(False),
               setup.haproxy_proxy(True), setup.stock_pingora(stock_bin), setup.palisade("palisade", palisade_bin),
               setup.palisade("palisade-waf", palisade_bin, waf="builtin"),
               setup.palisade("palisade-crs", palisade_bin, waf="crs")]
    if args.with_bare_palisade:
        proxies.append(setup.palisade("palisade-bare", palisade_bin, policy=False))
        proxies.append(setup.palisade("palisade-lean", palisade_bin, policy=False, lean=True))
    for spec in args.palisade:
        name, _, path = spec.partition("=")
        bare = "bare" in name or "lean" in name
        proxies.append(setup.palisade(name, Path(path).resolve(), policy=not bare, lean="lean" in name))
    for spec in args.palisade_env:
        name, _, vars_ = spec.partition("=")
        env = dict(v.split("=", 1) for v in vars_.split(",") if v)
        proxies.append(setup.palisade(name, palisade_bin, env=env))
    if args.only:
        keep = set(args.only.split(","))
        proxies = [p for p in proxies if p.name in keep]
        args.no_write = True
    order = [p.name for p in proxies]

    origin = setup.start_origin()
    for px in proxies:
        setup.start_proxy(px)
        sanity(px)
    log("every proxy answers; policy variants refuse the denied client with 403")
    if setup.load_cpus is not None:
        log("pinning: proxies on CPU 0; origin and load generators on CPU 1")

    h1: dict[str, list[Sample]] = {n: [] for n in order}
    h2: dict[str, list[Sample]] = {n: [] for n in order}
    big: dict[str, list[Sample]] = {n: [] for n in order}
    half: dict[str, Sample] = {}
    bursts: dict[str, Sample] = {}
    rss: dict[str, dict] = {}
    D, C = args.duration, args.connections

    def truncate_logs():
        for px in proxies:
            for lf in px.logs:
                if lf.exists():
                    os.truncate(lf, 0)

    if "h1" not in skip:
        log("warm-up: 2 s of wrk per proxy")
        for px in proxies:
            wrk(px.port, "/", 2, C, setup.load_cpus)
        for r in range(args.rounds):
            rot = order[r % len(order):] + order[:r % len(order)]
            for name in rot:
                px = next(p for p in proxies if p.name == name)
                truncate_logs()
                s = run_loadgen(setup, origin, px.proc.pid, lambda: wrk(px.port, "/", D, C, setup.load_cpus))
                h1[name].append(s)
                time.sleep(1.2)  # let buffered access logs flush before they are measured
                log_bytes = sum(lf.stat().st_size for lf in px.logs if lf.exists())
                if px.logs and log_bytes < 100 * s.requests:
                    log(f"warning: {name} wrote only {log_bytes} log bytes for {s.requests} requests")
                log(f"h1 round {r + 1}/{args.rounds} {name:16} {s.rps:9,.0f} req/s  p99 {fmt_us(s.p99_us):>9}  "
                    f"{s.cpu_us_per_req:5.1f} µs/req  proxy {s.proxy_util * 100:3.0f}%  "
                    f"load core {s.load_core_busy * 100:3.0f}%  others {s.other_cores:.2f} cores  err {s.errors}")

    for name in args.profile:
        px = next((p for p in proxies if p.name == name), None)
        if px is None:
            log(f"--profile {name}: no such proxy")
            continue
        profile(px, setup, args.profile_dir, lambda: wrk(px.port, "/", D, C, setup.load_cpus))

    if "h2" not in skip:
        for r in range(args.h2_rounds):
            rot = order[r % len(order):] + order[:r % len(order)]
            for name in rot:
                px = next(p for p in proxies if p.name == name)
                truncate_logs()
                url = f"https://127.0.0.1:{px.tls_port}/"
                s = run_loadgen(setup, origin, px.proc.pid,
                                lambda: h2load(url, D, 16, 8, setup.load_cpus, tmp / "h2.log"))
                h2[name].append(s)
                log(f"h2 round {r + 1}/{args.h2_rounds} {name:16} {s.rps:9,.0f} req/s  p99 {fmt_us(s.p99_us):>9}  "
                    f"{s.cpu_us_per_req:5.1f} µs/req  proxy {s.proxy_util * 100:3.0f}%  err {s.errors}")

    if "big" not in skip:
        for r in range(args.big_rounds):
            rot = order[r % len(order):] + order[:r % len(order)]
            for name in rot:
                px = next(p for p in proxies if p.name == name)
                truncate_logs()
                s = run_loadgen(setup, origin, px.proc.pid, lambda: wrk(px.port, "/1m", D, 16, setup.load_cpus))
                big[name].append(s)
                log(f"1MiB round {r + 1}/{args.big_rounds} {name:16} {s.rps:7,.0f} req/s  {s.mbps:6,.0f} MiB/s  "
                    f"{s.cpu_us_per_req:6.1f} µs/req  proxy {s.proxy_util * 100:3.0f}%  err {s.errors}")

    h1s = summarize({k: v for k, v in h1.items() if v})
    half_rate = 0.0
    half_skipped: list[str] = []
    if "half" not in skip and "palisade" in h1s:
        half_rate = h1s["palisade"]["rps"] / 2
        # A proxy whose maximum is not well above the rate would only show its queue growing.
        half_skipped = [p.name for p in proxies if h1s.get(p.name, {}).get("rps", float("inf")) < 1.2 * half_rate]
        if half_skipped:
            log(f"half load: skipping {', '.join(half_skipped)} (maximum below 1.2 × the rate)")
        targets = [("origin (direct)", setup.origin_port, None)] + [(p.name, p.port, p.proc.pid) for p in proxies
                                                                    if p.name not in half_skipped]
        log(f"half load: {half_rate:,.0f} req/s (half of Palisade's maximum), {C} connections, evenly paced "
            f"(examples/paced_load), {args.half_rounds} rounds")
        runs: dict[str, list[Sample]] = {name: [] for name, _, _ in targets}
        for r in range(args.half_rounds):
            for name, port, pid in targets[r % len(targets):] + targets[:r % len(targets)]:
                truncate_logs()
                s = run_loadgen(setup, origin, pid, lambda: paced(paced_bin, port, half_rate, C, D, setup.load_cpus))
                runs[name].append(s)
                log(f"half round {r + 1}/{args.half_rounds} {name:16} p50 {fmt_us(s.p50_us):>9}  "
                    f"p99 {fmt_us(s.p99_us):>9}  p99.9 {fmt_us(s.p999_us):>9}  send lag p99 {fmt_us(s.lag99_us):>9}  "
                    f"{s.cpu_us_per_req:5.1f} µs/req  err {s.errors}")
        # The round with the median p99 stands for each target; its CPU per request is the
        # median of the rounds (every proxy at the same rate: see cpu_at_rate_section).
        for name, ss in runs.items():
            half[name] = dataclasses.replace(sorted(ss, key=lambda x: x.p99_us)[(len(ss) - 1) // 2],
                                             cpu_us_per_req=statistics.median(x.cpu_us_per_req for x in ss))
        per_client = half_rate / C
        log("bursts: the same rate from h2load --rps (each client's timer fires every 10 ms, together)")
        for name, port, pid in targets:
            truncate_logs()
            s = run_loadgen(setup, origin, pid,
                            lambda: h2load(f"http://127.0.0.1:{port}/", D, C, 1, setup.load_cpus, tmp / "half.log",
                                           ["--h1", f"--rps={per_client:.2f}"]))
            bursts[name] = s
            log(f"burst {name:16} {s.rps:9,.0f} req/s  p50 {fmt_us(s.p50_us):>9}  p99 {fmt_us(s.p99_us):>9}  "
                f"err {s.errors}")

    for px in proxies:
        setup.stop_proxy(px)
    cache_order: list[str] = []
    cached: dict[str, list[Sample]] = {}
    if "cache" not in skip and not args.only:
        cache_order, cached = feature_rounds(
            setup, origin, [setup.nginx_proxy(True, cache=True), setup.palisade("palisade-cache", palisade_bin, cache=True)],
            "cache", CACHED_PATH, [], args.cache_rounds, D, C, cache_sanity)
    gzip_order: list[str] = []
    gzipped: dict[str, list[Sample]] = {}
    gzip_palisade = None
    if "gzip" not in skip and not args.only:
        gzip_palisade = setup.palisade("palisade-gzip", palisade_bin, gzip=True)
        gzip_order, gzipped = feature_rounds(
            setup, origin, [setup.nginx_proxy(True, gzip=True), gzip_palisade],
            "gzip", GZIP_PATH, ["Accept-Encoding: gzip"], args.gzip_rounds, D, C,
            lambda px: gzip_sanity(setup, px))
    if "rss" not in skip:
        n = args.idle_connections
        # With compression on as well: an encoder exists only while a response is being
        # compressed, so idle connections must cost what they cost without it.
        for px in proxies + ([gzip_palisade] if gzip_palisade else []):
            rss[px.name] = idle_rss(setup, px, n)
            r = rss[px.name]
            log(f"idle {px.name:16} {r['before_mib']:7.1f} MiB before, {r['during_mib']:7.1f} MiB with "
                f"{r['opened']} idle connections ({r['failed']} failed)")

    # -- report ------------------------------------------------------------------------------
    h2s = summarize({k: v for k, v in h2.items() if v})
    bigs = summarize({k: v for k, v in big.items() if v})
    out = [f"# Peer benchmark results", "",
           f"Generated by `make bench-peers` (benches/peers/bench.py) on {started:%Y-%m-%d %H:%M %Z}.",
           f"Machine: {machine()}.", f"Software: {versions()}.", "",
           "Every proxy has one worker (nginx `worker_processes 1`, HAProxy `nbthread 1`, Pingora "
           "`threads: 1`) and is pinned to CPU 0; the origin (nginx, `return 200`, one worker) and the "
           "load generators share CPU 1." if setup.load_cpus is not None else
           "Every proxy has one worker; nothing is pinned (fewer than two cores, or --no-pin).",
           "CPU µs/req is utime+stime of all the proxy's processes and threads over the measurement, "
           "divided by the requests completed; the median over rounds is shown with the range. "
           "Ratios are against nginx-policy, measured in the same run. Read ratios, not absolute "
           "numbers: the machine is shared.", "",
           "The contenders (configurations are written by the script; `--keep-tmp` keeps them):", "",
           "- **nginx**, **haproxy**: plain reverse proxies with upstream keep-alive.",
           "- **nginx-policy**: a 10,000-CIDR `geo` deny list, `limit_req` per client address (1M r/s, never "
           "triggers), a JSON `access_log` line per request (buffered 64 KiB, flushed every second), "
           "X-Forwarded-For/-Proto and a request id upstream and back.",
           "- **haproxy-policy**: the same list as an ACL from a file, a stick table tracking each source's "
           "request rate (deny above 100M/s, never), a JSON `log-format` line per request written by "
           "`log stdout format raw` (the script sends HAProxy's stdout to a file: one write per line), "
           "`option forwardfor` and a `unique-id` request id.",
           "- **stock-pingora**: examples/stock_pingora.rs, a minimal `ProxyHttp`, same Pingora, release "
           "profile and allocator (mimalloc) as Palisade: the floor.",
           "- **palisade**: the same deny list as a policy list file, a per-address limit (100M per second), "
           "repeat-offender tracking (`offenders:`), telemetry of every request to the file sink, "
           "the per-address connection cap on but set to 1M (every client is 127.0.0.1), "
           "`threads: 1`, default metrics, default limits otherwise.",
           "- **palisade-waf**: palisade plus the built-in WAF tier on every request (`waf:` enforcing, "
           "threshold 5, as policies/waf.yaml). The benchmark's request is `GET /` with no query or body, "
           "so this is the tier's floor; docs/waf.md has its cost on a typical request.",
           "- **palisade-crs**: palisade-waf plus the OWASP Core Rule Set tier at paranoia level 1 "
           "(libmodsecurity3 and Debian's CRS 3.3.4, as policies/waf-crs.yaml); same request.",
           "- **palisade-bare** (with `--with-bare-palisade`): palisade with an empty policy and telemetry off; "
           "**palisade-lean**: bare with the switchable per-request headers off (`forwarding:` and "
           "`request_id: {to_origin, to_client}` false).",
           "- Other `palisade-*` rows are A/B builds or settings given with `--palisade`/`--palisade-env`.", ""]
    if h1s:
        out += [f"## HTTP/1.1 keep-alive, small response ({args.rounds} rounds × {D} s, wrk, {C} connections)", ""]
        out += table(h1s, order)
        others = med([s.other_cores for v in h1.values() for s in v])
        out += ["", f"Noise: CPU used by processes other than these during the rounds: median {others:.2f} "
                    f"cores (of {os.cpu_count()}).", ""]
        out += ["Per request, in the same rounds (medians): system calls the proxy's processes entered "
                "(`perf stat -e raw_syscalls:sys_enter`), their threads' context switches (from "
                "`/proc/PID/task/*/status`), and the voluntary switches of threads other than the busiest one "
                "(the worker), each a wake-up of a helper thread. These counts depend on the code, not on the "
                "host's speed, so they compare across machines where CPU time does not.", ""]
        out += counters_table(h1s, order) + [""]
    if h2s:
        out += [f"## HTTP/2 over TLS, small response ({args.h2_rounds} rounds × {D} s, h2load, 16 connections × "
                f"8 streams)", ""]
        out += table(h2s, order) + [""]
    if bigs:
        out += [f"## 1 MiB response ({args.big_rounds} rounds × {D} s, wrk, 16 connections)", ""]
        out += table(bigs, order, big=True) + [""]
    if half:
        out += [f"## Latency at half load ({half_rate:,.0f} req/s = half of Palisade's maximum, evenly paced, "
                f"{C} connections, {args.half_rounds} rounds × {D} s, the round with the median p99)", "",
                "examples/paced_load sends the requests at evenly spaced times over the connections (open loop) "
                "and counts each latency from when the request was due, so a proxy that falls behind is charged "
                "for the queue it builds. Added = the proxy's percentile minus the origin's own at the same rate. "
                "Send lag is how late the 99th-percentile request left: late when the generator's core was busy, "
                "or when its connection was still waiting on the previous answer (HTTP/1.1, one request at a time "
                "per connection), so it grows with the target's own stalls."
                + (f" Not run for {', '.join(half_skipped)}: its maximum is below 1.2 × this rate." if half_skipped else ""),
                ""]
        out += latency_table(half, paced=True) + [""]
    if bursts:
        out += [f"## The same rate in bursts (h2load --h1 --rps, {C} connections, {D} s)", "",
                "h2load fires each client's rate timer at most every 10 ms and the clients' timers run together, "
                f"so this rate arrives as about {half_rate / 100:,.0f} requests at the start of every 10 ms: "
                "this measures how fast a proxy drains a burst of that size, not latency at half load. "
                "Kept for comparison with earlier runs.", ""]
        out += latency_table(bursts, paced=False) + [""]
    if cached:
        out += feature_section(
            f"## Cache hits ({args.cache_rounds} rounds × {D} s, wrk, {C} connections)",
            f"`GET {CACHED_PATH}`, which the origin marks `Cache-Control: public, max-age=3600`, answered from "
            "the proxy's cache: nginx-policy plus `proxy_cache` (a 64 MiB file cache with `proxy_cache_lock` "
            "and stale answers while updating or on errors), against Palisade's policy plus `cache: {}` on its "
            "route (the 64 MiB in-memory store).",
            cached, cache_order, h1s, "Palisade cache vs nginx proxy_cache")
    if gzipped:
        page = (setup.tmp / "www" / GZIP_PATH.lstrip("/")).read_bytes()
        packed = len(zlib.compress(page, GZIP_LEVEL))
        out += feature_section(
            f"## Compression ({args.gzip_rounds} rounds × {D} s, wrk, {C} connections)",
            f"`GET {GZIP_PATH}` with `Accept-Encoding: gzip`: a {len(page) / 1024:.0f} KiB HTML page (about "
            f"{packed / 1024:.1f} KiB at gzip level {GZIP_LEVEL}) compressed by the proxy for every request: "
            f"nginx-policy plus `gzip on; gzip_comp_level {GZIP_LEVEL}`, against Palisade's policy plus "
            f"`compression: {{codings: [gzip], level: {GZIP_LEVEL}}}` on its route.",
            gzipped, gzip_order, h1s, "Palisade gzip vs nginx gzip")
    if rss:
        out += [f"## Memory with {args.idle_connections:,} idle keep-alive connections", "",
                "Each proxy is started afresh; each connection sends one request, reads the answer and stays "
                "open. RSS is VmRSS summed over the proxy's processes, 3 s after the last connection opened.", "",
                "| proxy | RSS before | RSS with idle connections | per connection | opened | failed |",
                "|---|---|---|---|---|---|"]
        for name, r in rss.items():
            per = (r["during_mib"] - r["before_mib"]) * 1024 / max(r["opened"], 1)
            out.append(f"| {name} | {r['before_mib']:.1f} MiB | {r['during_mib']:.1f} MiB | {per:.1f} KiB | "
                       f"{r['opened']} | {r['failed']} |")
        out.append("")
    out += targets_section(h1s, half, rss)
    text = "\n".join(out) + "\n"
    print(text)
    if not args.no_write:
        args.results.write_text(text)
        log(f"wrote {args.results}")
        update_readme(args.readme, readme_block(started, h1s, h2s, half, rss, order, args))
    return 0


def latency_table(rows: dict[str, Sample], paced: bool) -> list[str]:
    """Latency per target; "added" is against the origin measured alone at the same rate."""
    base = rows.get("origin (direct)")
    head = "| target | req/s | p50 | p99 | added p99 |" + (" p99.9 | added p99.9 | send lag p99 | CPU µs/req |"
                                                          if paced else "")
    head += " errors |"
    out = [head, "|---" * (head.count("|") - 1) + "|"]
    for name, s in rows.items():
        def added(field: str) -> str:
            return fmt_us(getattr(s, field) - getattr(base, field)) if base and s is not base else "—"
        line = f"| {name} | {s.rps:,.0f} | {fmt_us(s.p50_us)} | {fmt_us(s.p99_us)} | {added('p99_us')} |"
        if paced:
            cpu = "—" if s is base or s.cpu_us_per_req != s.cpu_us_per_req else f"{s.cpu_us_per_req:.1f}"
            line += f" {fmt_us(s.p999_us)} | {added('p999_us')} | {fmt_us(s.lag99_us)} | {cpu} |"
        out.append(line + f" {s.errors} |")
    return out


def targets_section(h1s, half, rss) -> list[str]:
    out = ["## Issue 5 targets", "", "| target | measured | met |", "|---|---|---|"]
    p, n, s = h1s.get("palisade"), h1s.get(BASELINE), h1s.get("stock-pingora")
    yes = lambda ok: "yes" if ok else "**no**"
    if p and n:
        out.append(f"| Palisade CPU/req ≤ nginx-policy | {p['cpu']:.1f} vs {n['cpu']:.1f} µs "
                   f"({p['cpu'] / n['cpu']:.2f}×) | {yes(p['cpu'] <= n['cpu'])} |")
        out.append(f"| Palisade req/s ≥ nginx-policy | {p['rps']:,.0f} vs {n['rps']:,.0f} "
                   f"({p['rps'] / n['rps']:.2f}×) | {yes(p['rps'] >= n['rps'])} |")
    if p and s:
        out.append(f"| interim: Palisade CPU/req ≤ 1.10× stock Pingora | {p['cpu']:.1f} vs {s['cpu']:.1f} µs "
                   f"({p['cpu'] / s['cpu']:.2f}×) | {yes(p['cpu'] <= 1.10 * s['cpu'])} |")
    if "palisade" in half and "origin (direct)" in half:
        added = half["palisade"].p99_us - half["origin (direct)"].p99_us
        out.append(f"| p99 added latency ≤ 1 ms at half load (evenly paced) | {fmt_us(added)} | "
                   f"{yes(added <= 1000)} |")
    if "palisade" in rss:
        r = rss["palisade"]["during_mib"]
        out.append(f"| RSS ≤ 100 MB with 10k idle keep-alive connections | {r:.0f} MiB | "
                   f"{yes(r * 1.048576 <= 100)} |")
    out += ["", "## Issue 17 targets", "", "| target | measured | met |", "|---|---|---|"]
    for name, bound in (("palisade-bare", 1.10), ("palisade", 1.20)):
        x = h1s.get(name)
        if x and s:
            out.append(f"| {name} CPU/req ≤ {bound:.2f}× stock Pingora | {x['cpu']:.1f} vs {s['cpu']:.1f} µs "
                       f"({x['cpu'] / s['cpu']:.2f}×) | {yes(x['cpu'] <= bound * s['cpu'])} |")
        # The same ratio with every proxy at one rate (the paced half-load step): at its maximum a
        # slower proxy leaves the load core idler, and waking an idle core costs the sender more
        # (docs/performance.md), which the maximum-rate ratio above includes. Shown beside it,
        # not instead of it.
        h, hs = half.get(name), half.get("stock-pingora")
        if h and hs:
            out.append(f"| (same rate for both: {name} CPU/req at the half-load rate) | {h.cpu_us_per_req:.1f} vs "
                       f"{hs.cpu_us_per_req:.1f} µs ({h.cpu_us_per_req / hs.cpu_us_per_req:.2f}×) | — |")
    if "palisade" in rss:
        r = rss["palisade"]
        per = (r["during_mib"] - r["before_mib"]) * 1024 / max(r["opened"], 1)
        out.append(f"| ≤ 2 KiB per idle keep-alive connection | {per:.2f} KiB | {yes(per <= 2)} |")
        out.append(f"| ≤ 45 MB RSS with 10k idle keep-alive connections | {r['during_mib'] * 1.048576:.1f} MB "
                   f"| {yes(r['during_mib'] * 1.048576 <= 45)} |")
    if "palisade" in half and BASELINE in half and "origin (direct)" in half:
        o = half["origin (direct)"].p99_us
        pa, ng = half["palisade"].p99_us - o, half[BASELINE].p99_us - o
        out.append(f"| added p99 at half load ≤ nginx-policy's | {fmt_us(pa)} vs {fmt_us(ng)} | {yes(pa <= ng)} |")
    return out + [""]


def readme_block(started, h1s, h2s, half, rss, order, args) -> str:
    base = h1s.get(BASELINE) or {}
    lines = [f"Measured by `make bench-peers` on {started:%Y-%m-%d} ({machine()}); one worker per proxy, "
             f"HTTP/1.1 keep-alive through wrk with {args.connections} connections, the median of "
             f"{args.rounds} rounds. Ratios are against nginx with the same security work, measured in the "
             "same run; full results, the HTTP/2 + TLS and 1 MiB rounds and the method are in "
             "[benches/peers/RESULTS.md](benches/peers/RESULTS.md).", "",
             "| proxy | req/s | CPU µs/request | CPU vs nginx-policy | p99 at half load (paced) | RSS, 10k idle conns |",
             "|---|---|---|---|---|---|"]
    for name in order:
        s = h1s.get(name)
        if not s:
            continue
        hp = fmt_us(half[name].p99_us) if name in half else "—"
        rs = f"{rss[name]['during_mib']:.0f} MiB" if name in rss else "—"
        lines.append(f"| {name} | {s['rps']:,.0f} | {s['cpu']:.1f} | "
                     f"{ratio(s['cpu'], base.get('cpu', 0))} | {hp} | {rs} |")
    return "\n".join(lines)


def update_readme(readme: Path, block: str) -> None:
    text = readme.read_text()
    a, b = text.find(MARK_BEGIN), text.find(MARK_END)
    if a < 0 or b < 0 or b < a:
        log(f"warning: {readme} has no {MARK_BEGIN} … {MARK_END} markers; README not updated")
        return
    new = text[: a + len(MARK_BEGIN)] + "\n" + block + "\n" + text[b:]
    readme.write_text(new)
    log(f"updated the table between the markers in {readme}")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "_idle":
        idle_main(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
