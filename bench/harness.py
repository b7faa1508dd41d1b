"""Benchmark harness for gemauth (issue 7); bench/run.sh sets things up and calls it.

Every comparison runs side by side in one process tree: in each round the commands of a group
run once each, in a shuffled order, so that a noisy neighbour or a frequency change hits all of
them alike. We report medians and ratios, never absolute numbers from different runs.

  python harness.py main     --gemauth BIN --python VENV_PYTHON [--quick] [--strict]
                             [--no-analyze] [--symbols UNSTRIPPED_GEMAUTH]
  python harness.py profiles --python VENV_PYTHON NAME=BIN [NAME=BIN ...] [--quick]

VENV_PYTHON must have google-auth, google-auth-oauthlib and requests (bench/py_token.py).

Only the standard library is used here. Processes are started with os.posix_spawn (vfork +
exec, the cheapest way Python has) and timed from just before the spawn to the end of
waitpid; stdin, stdout and stderr go to /dev/null unless a test reads the output.
"""

import argparse
import collections
import glob
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

# Fake OAuth client and grant; the token server accepts exactly these.
CLIENT_ID = "bench-client.apps.googleusercontent.com"
CLIENT_SECRET = "bench-client-secret"
REFRESH_TOKEN = "1//bench-refresh-token"
SCOPES = ["https://www.googleapis.com/auth/generative-language.retriever"]
CONCURRENCY = 50


class BenchError(Exception):
    pass


def fmt_ms(ms):
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def pct(values, q):
    """The q-quantile (0..1) of values, by linear interpolation."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def tool(name):
    path = shutil.which(name)
    if not path:
        raise BenchError(f"missing tool: {name}")
    return path


# Where the system's root certificates are (the bundle file and the hashed directory), as
# gemauth (rustls-native-certs, via openssl-probe) and curl find them without configuration.
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                  "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")
SYSTEM_CERT_DIR = "/etc/ssl/certs"


class Sandbox:
    """A temporary HOME/XDG_CACHE_HOME/CLOUDSDK_CONFIG, the token server, and the files.

    With tls=True the token endpoint is https://127.0.0.1:PORT/token, as Google's is https: its
    certificate comes from a CA made for this run, appended to a copy of the system's root bundle,
    so that gemauth (SSL_CERT_FILE, with SSL_CERT_DIR the system's directory) and curl (--cacert)
    load the same roots they load in production, plus one."""

    def __init__(self, python, tls=False):
        self.python = python
        self.tls = tls
        self.tmp = tempfile.mkdtemp(prefix="gemauth-bench-")
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.server = None
        self.curl_args = []
        self.ssl_context = None
        home = os.path.join(self.tmp, "home")
        self.cache_home = os.path.join(self.tmp, "cache")
        gcloud = os.path.join(self.tmp, "gcloud")
        for d in (home, self.cache_home, gcloud):
            os.makedirs(d, mode=0o700)
        # The same small environment for every command we time: no proxies, no RUST_LOG.
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "XDG_CACHE_HOME": self.cache_home,
            "CLOUDSDK_CONFIG": gcloud,
            "LANG": "C.UTF-8",
        }
        self.tokens_dir = os.path.join(self.cache_home, "gemauth", "tokens")

    def make_certificates(self):
        """A CA and a certificate for 127.0.0.1 (ECDSA P-256, like Google's), with openssl."""
        openssl = tool("openssl")
        d = os.path.join(self.tmp, "tls")
        os.makedirs(d, mode=0o700)
        f = lambda name: os.path.join(d, name)  # noqa: E731
        run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True)  # noqa: E731
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run("req", "-x509", *ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2",
            "-subj", "/CN=gemauth bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
        run("req", *ec, "-keyout", f("leaf.key"), "-out", f("leaf.csr"), "-subj", "/CN=127.0.0.1")
        with open(f("leaf.ext"), "w") as out:
            out.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n"
                      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", f("leaf.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
            "-CAcreateserial", "-out", f("leaf.pem"), "-days", "2", "-extfile", f("leaf.ext"))
        system = next((b for b in SYSTEM_BUNDLES if os.path.exists(b)), None)
        if system is None:
            log("warning: no system root bundle found; the TLS clients load the bench CA only")
        with open(f("bundle.pem"), "wb") as out:
            if system:
                with open(system, "rb") as sysb:
                    out.write(sysb.read())
            with open(f("ca.pem"), "rb") as ca:
                out.write(ca.read())
        self.env["SSL_CERT_FILE"] = f("bundle.pem")
        if os.path.isdir(SYSTEM_CERT_DIR):
            self.env["SSL_CERT_DIR"] = SYSTEM_CERT_DIR
        self.curl_args = ["--cacert", f("bundle.pem")]
        import ssl
        self.ssl_context = ssl.create_default_context(cafile=f("ca.pem"))
        return f("leaf.pem"), f("leaf.key")

    def start_server(self):
        env = dict(
            self.env,
            BENCH_CLIENT_ID=CLIENT_ID,
            BENCH_CLIENT_SECRET=CLIENT_SECRET,
            BENCH_REFRESH_TOKEN=REFRESH_TOKEN,
        )
        if self.tls:
            env["BENCH_TLS_CERT"], env["BENCH_TLS_KEY"] = self.make_certificates()
        self.server = subprocess.Popen(
            [self.python, os.path.join(HERE, "token_server.py")],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        line = self.server.stdout.readline().strip()
        if not line.isdigit():
            raise BenchError("the token server did not start")
        self.port = int(line)
        self.scheme = "https" if self.tls else "http"
        self.token_uri = f"{self.scheme}://127.0.0.1:{self.port}/token"
        # The gemauth credential file (authorized_user), mode 0600 like `gemauth login` writes.
        self.cred = self.write_private(
            "credentials.json",
            {
                "type": "authorized_user",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH_TOKEN,
                "token_uri": self.token_uri,
            },
        )

    def write_private(self, name, obj):
        path = os.path.join(self.tmp, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        return path

    def token_requests(self):
        """How many POST /token the server has answered so far."""
        url = f"{self.scheme}://127.0.0.1:{self.port}/stats"
        handlers = [urllib.request.ProxyHandler({})]
        if self.ssl_context:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        opener = urllib.request.build_opener(*handlers)
        with opener.open(url, timeout=10) as r:
            return json.load(r)["token_requests"]

    def close(self):
        if self.server and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        os.close(self.devnull)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- running commands ---------------------------------------------------------------------

    def spawn(self, argv, stdout=None):
        actions = [
            (os.POSIX_SPAWN_DUP2, self.devnull, 0),
            (os.POSIX_SPAWN_DUP2, self.devnull if stdout is None else stdout, 1),
            (os.POSIX_SPAWN_DUP2, self.devnull, 2),
        ]
        return os.posix_spawn(argv[0], argv, self.env, file_actions=actions)

    def timed(self, argv):
        """Runs argv once and returns its wall time in milliseconds."""
        t0 = time.perf_counter_ns()
        pid = self.spawn(argv)
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter_ns() - t0) / 1e6
        if os.waitstatus_to_exitcode(status) != 0:
            self.explain_failure(argv)
        return elapsed

    def explain_failure(self, argv):
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True)
        raise BenchError(
            f"{' '.join(argv)} failed (exit {r.returncode}): {r.stderr.strip()[:500]}"
        )

    def output(self, argv):
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed (exit {r.returncode}): {r.stderr.strip()[:500]}")
        return r.stdout

    # -- cache states -------------------------------------------------------------------------

    def empty_cache(self):
        shutil.rmtree(self.tokens_dir, ignore_errors=True)

    def cache_file(self):
        files = glob.glob(os.path.join(self.tokens_dir, "*.json"))
        if len(files) != 1:
            raise BenchError(f"expected one cached token in {self.tokens_dir}, found {files}")
        return files[0]

    def expire_cache(self):
        """Rewrites the cached token so that it expired a minute ago (atomically)."""
        path = self.cache_file()
        with open(path) as f:
            token = json.load(f)
        now = int(time.time())
        token["obtained_at"] = now - 3659
        token["expires_at"] = now - 60
        tmp = path + ".bench-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(token, f)
        os.replace(tmp, path)

    def concurrent(self, argv, n=CONCURRENCY):
        """Starts n copies of argv at once; returns (wall ms, token requests made, outputs)."""
        outdir = tempfile.mkdtemp(dir=self.tmp, prefix="conc-")
        fds = [
            os.open(os.path.join(outdir, f"{i}.out"), os.O_RDWR | os.O_CREAT, 0o600)
            for i in range(n)
        ]
        before = self.token_requests()
        pids = []
        try:
            t0 = time.perf_counter_ns()
            for fd in fds:
                pids.append(self.spawn(argv, stdout=fd))
            statuses = [os.waitpid(pid, 0)[1] for pid in pids]
            elapsed = (time.perf_counter_ns() - t0) / 1e6
        finally:
            for pid in pids:  # only reached with live children if interrupted
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        outputs = []
        for fd in fds:
            os.lseek(fd, 0, os.SEEK_SET)
            outputs.append(os.read(fd, 4096).decode())
            os.close(fd)
        shutil.rmtree(outdir)
        failed = [os.waitstatus_to_exitcode(s) for s in statuses if os.waitstatus_to_exitcode(s)]
        if failed:
            raise BenchError(f"{len(failed)} of {n} concurrent calls failed: exit codes {failed[:5]}")
        return elapsed, self.token_requests() - before, outputs

    def max_rss_kib(self, argv):
        """Peak resident memory of one run of argv, from GNU time's %M (KiB)."""
        out = os.path.join(self.tmp, "time.out")
        r = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", out] + argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if r.returncode != 0:
            raise BenchError(f"{' '.join(argv)} failed under /usr/bin/time: {r.stderr.strip()[:300]}")
        with open(out) as f:
            return int(f.read().strip().splitlines()[-1])


def curl_post_argv(sb):
    """A bare curl POST of the refresh request gemauth makes (same form, same Accept header)."""
    return [
        tool("curl"), "--silent", "--show-error", "--fail", "--noproxy", "*", *sb.curl_args,
        "--output", os.devnull, "--header", "Accept: application/json",
        "--data-urlencode", "grant_type=refresh_token",
        "--data-urlencode", f"client_id={CLIENT_ID}",
        "--data-urlencode", f"client_secret={CLIENT_SECRET}",
        "--data-urlencode", f"refresh_token={REFRESH_TOKEN}",
        sb.token_uri,
    ]  # fmt: skip


def interleave(rounds, commands, rng, every=None, progress=None):
    """Runs `rounds` rounds; in each, every command (a name -> callable returning ms) runs once,
    in a shuffled order. Commands listed in `every` (name -> k) run only every k-th round.
    Returns name -> list of samples."""
    samples = {name: [] for name in commands}
    every = every or {}
    for r in range(rounds):
        names = [n for n in commands if r % every.get(n, 1) == 0]
        rng.shuffle(names)
        for name in names:
            value = commands[name]()
            if value is not None:
                samples[name].append(value)
        if progress and (r + 1) % max(1, rounds // 4) == 0:
            progress(f"  {r + 1}/{rounds} rounds")
    return samples


def requests_summary(counts):
    """"1 in all 40 trials", or each count with how many trials saw it."""
    seen = collections.Counter(counts)
    if len(seen) == 1:
        (n, k), = seen.items()
        return f"{n} in all {k} trials"
    return ", ".join(f"{n} in {k} trials" for n, k in sorted(seen.items()))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def verdict(ok):
    return "PASS" if ok else "**FAIL**"


# -- the main benchmark --------------------------------------------------------------------------


def run_main(args):
    rng = random.Random(7)
    scale = 4 if args.quick else 1
    # The endpoint as in production (https), and the same over plain http for comparison.
    sb = Sandbox(args.python, tls=True)
    plain = Sandbox(args.python, tls=False)
    try:
        return main_body(args, sb, plain, rng, scale)
    finally:
        sb.close()
        plain.close()


def main_body(args, sb, plain, rng, scale):
    gemauth = os.path.abspath(args.gemauth)
    cat = tool("cat")
    true = tool("true")
    load_before = os.getloadavg()[0]
    sb.start_server()
    plain.start_server()
    log(f"token endpoints: {sb.token_uri} and {plain.token_uri}; sandboxes: {sb.tmp}, {plain.tmp}")

    pat = [gemauth, "print-access-token", "--credential-file", sb.cred]
    curl_post = curl_post_argv(sb)
    plain_pat = [gemauth, "print-access-token", "--credential-file", plain.cred]
    plain_curl = curl_post_argv(plain)
    token = plain.output(plain_pat).strip()
    if not token.startswith("ya29.bench-") or plain.token_requests() != 1:
        raise BenchError(f"unexpected token from gemauth over http: {token!r}")

    # A first call refreshes (empty cache) and fills the cache; then check every command's output.
    token = sb.output(pat).strip()
    if not token.startswith("ya29.bench-"):
        raise BenchError(f"unexpected token from gemauth: {token!r}")
    if sb.output(pat).strip() != token or sb.token_requests() != 1:
        raise BenchError("the second call did not use the cached token")
    cache_file = sb.cache_file()
    token_json = sb.write_private(
        "token.json",
        {
            "token": token,
            "refresh_token": REFRESH_TOKEN,
            "token_uri": sb.token_uri,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "scopes": SCOPES,
            "expiry": "2099-01-01T00:00:00Z",
        },
    )
    py_min = [args.python, os.path.join(HERE, "py_token.py"), "minimal", token_json]
    py_qs = [args.python, os.path.join(HERE, "py_token.py"), "quickstart", token_json]
    for argv in (py_min, py_qs):
        if sb.output(argv).strip() != token:
            raise BenchError(f"{' '.join(argv)} did not print the token")
    curl_check = [a for a in curl_post if a not in ("--output", os.devnull)]
    if not json.loads(sb.output(curl_check))["access_token"].startswith("ya29.bench-"):
        raise BenchError("curl got no token")

    # 1. Cached token: gemauth vs cat vs Python, interleaved.
    rounds = 400 // scale
    log(f"[1/4] cached path: {rounds} interleaved rounds (Python every 10th round)")
    cached = interleave(
        rounds,
        {
            "true": lambda: sb.timed([true]),
            "cat": lambda: sb.timed([cat, cache_file]),
            "gemauth": lambda: sb.timed(pat),
            "py_start": lambda: sb.timed([args.python, "-c", "pass"]),
            "py_min": lambda: sb.timed(py_min),
            "py_qs": lambda: sb.timed(py_qs),
        },
        rng,
        every={"py_start": 10, "py_min": 10, "py_qs": 10},
        progress=log,
    )
    if sb.token_requests() != 2:  # the first call and the curl check above
        raise BenchError("the cached path made a token request")

    # 2 + 3. Forced refresh vs curl POST, with the 50-concurrent trials interleaved; over https
    # (as in production) and over plain http.
    rounds = 160 // scale
    every = 4 // (2 if args.quick else 1)  # 40 trials per endpoint (20 with --quick)
    conc = {
        key: {"expired": [], "fresh": [], "requests": [], "tokens_shared": []}
        for key in ("https", "http")
    }
    conc_true = []

    def forced_refresh(box, argv):
        box.empty_cache()
        return box.timed(argv)

    def concurrent_trials(key, box, argv):
        c = conc[key]
        box.expire_cache()
        wall, requests, outs = box.concurrent(argv)
        c["expired"].append(wall)
        c["requests"].append(requests)
        c["tokens_shared"].append(len(set(outs)) == 1 and outs[0].startswith("ya29.bench-"))
        # The floor: 50 calls that all find a fresh token (50 process starts, no refresh).
        wall, requests, _ = box.concurrent(argv)
        if requests:
            raise BenchError("50 calls on a fresh cache made a token request")
        c["fresh"].append(wall)

    def concurrent_https():
        concurrent_trials("https", sb, pat)
        # The floor of the floor: starting 50 empty processes from this harness.
        conc_true.append(sb.concurrent([true])[0])

    log(f"[2-3/4] forced refresh vs curl (https and http): {rounds} interleaved rounds, "
        f"{CONCURRENCY}-concurrent trials every {every}th round")
    before = sb.token_requests(), plain.token_requests()
    refresh = interleave(
        rounds,
        {
            "refresh": lambda: forced_refresh(sb, pat),
            "curl": lambda: sb.timed(curl_post),
            "conc": concurrent_https,
            "refresh_http": lambda: forced_refresh(plain, plain_pat),
            "curl_http": lambda: plain.timed(plain_curl),
            "conc_http": lambda: concurrent_trials("http", plain, plain_pat),
        },
        rng,
        every={"conc": every, "conc_http": every},
        progress=log,
    )
    for box, suffix, key, b in ((sb, "", "https", before[0]), (plain, "_http", "http", before[1])):
        expected = (len(refresh["refresh" + suffix]) + len(refresh["curl" + suffix])
                    + sum(conc[key]["requests"]))
        if box.token_requests() - b != expected:
            raise BenchError(f"the {key} token server saw an unexpected number of requests")

    # 4. Peak memory (GNU time %M), interleaved too; and the binary's size.
    mem_rounds = 12 // (3 if args.quick else 1)
    log(f"[4/4] peak memory: {mem_rounds} interleaved rounds under /usr/bin/time")

    def refresh_rss():
        sb.empty_cache()
        return sb.max_rss_kib(pat)

    mem = interleave(
        mem_rounds,
        {
            "gemauth": lambda: sb.max_rss_kib(pat),
            "refresh": refresh_rss,
            "cat": lambda: sb.max_rss_kib([cat, cache_file]),
            "curl": lambda: sb.max_rss_kib(curl_post),
            "py_min": lambda: sb.max_rss_kib(py_min),
        },
        rng,
    )
    size = os.path.getsize(gemauth)
    stripped = stripped_size(gemauth, sb.tmp)

    # -- report -----------------------------------------------------------------------------------
    med = {k: statistics.median(v) for k, v in cached.items()}
    g = med["gemauth"]
    print()
    print(f"Machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}; "
          f"1-minute load average {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end. "
          f"gemauth: {gemauth}")
    print()
    print(f"### Cached token ({len(cached['gemauth'])} interleaved runs; Python: "
          f"{len(cached['py_min'])})")
    print()
    print("| command | median | p10–p90 | × gemauth |")
    print("| --- | ---: | ---: | ---: |")
    rows = [
        ("true", "`true` (empty process, the floor)"),
        ("cat", "`cat` of the cached token file"),
        ("gemauth", "**`gemauth print-access-token`** (cached)"),
        ("py_start", "`python3 -c pass` (interpreter start only)"),
        ("py_min", "Python google-auth: `Credentials.from_authorized_user_file` + print"),
        ("py_qs", "the quickstart's `load_creds()` (+ its `requests`, `google_auth_oauthlib` imports)"),
    ]
    for key, label in rows:
        v = cached[key]
        print(f"| {label} | {fmt_ms(med[key])} | {fmt_ms(pct(v, .1))}–{fmt_ms(pct(v, .9))} "
              f"| {med[key] / g:.2f} |")

    med_r = {k: statistics.median(v) for k, v in refresh.items() if v}
    med_c = {key: {k: statistics.median(c[k]) for k in ("expired", "fresh")} for key, c in conc.items()}
    true_med = statistics.median(conc_true)
    rmed, cmed = med_r["refresh"], med_r["curl"]
    emed, fmed = med_c["https"]["expired"], med_c["https"]["fresh"]
    print()
    print(f"### Refresh ({len(refresh['refresh'])} interleaved runs per command; "
          f"{len(conc['https']['expired'])} trials of {CONCURRENCY} concurrent calls per endpoint)")
    print()
    print("The token endpoint is https (a certificate from a CA made for this run; gemauth and curl")
    print("load the system's root certificates plus that CA, as they would in production), and the")
    print("same server over plain http for comparison.")
    print()
    print("| endpoint | command | median | p10–p90 | × one gemauth refresh |")
    print("| --- | --- | ---: | ---: | ---: |")
    for key, suffix in (("https", ""), ("http", "_http")):
        r = med_r["refresh" + suffix]
        for label, v in (
            ("bare `curl` POST of the same refresh request", refresh["curl" + suffix]),
            ("**`gemauth print-access-token`**, empty cache (forced refresh)",
             refresh["refresh" + suffix]),
            (f"{CONCURRENCY} concurrent `print-access-token`, expired cache (wall)",
             conc[key]["expired"]),
            (f"{CONCURRENCY} concurrent `print-access-token`, fresh cache (wall, no refresh)",
             conc[key]["fresh"]),
            (f"{CONCURRENCY} concurrent `true` (wall, the cost of starting 50 processes)", conc_true),
        ):
            m = statistics.median(v)
            print(f"| {key} | {label} | {fmt_ms(m)} | {fmt_ms(pct(v, .1))}–{fmt_ms(pct(v, .9))} "
                  f"| {m / r:.2f} |")
    print()
    for key, suffix in (("https", ""), ("http", "_http")):
        e, f = med_c[key]["expired"], med_c[key]["fresh"]
        r = med_r["refresh" + suffix]
        print(f"- {key}: the refresh and lock wait inside the {CONCURRENCY} concurrent calls "
              f"(expired − fresh medians) take {fmt_ms(e - f)} = {(e - f) / r:.2f}× one forced "
              f"refresh; token requests per trial: {requests_summary(conc[key]['requests'])}; "
              f"all callers printed the same token: {all(conc[key]['tokens_shared'])}")

    mib = {k: max(v) / 1024 for k, v in mem.items()}
    print()
    print(f"### Peak memory (max RSS over {mem_rounds} runs, GNU time) and size")
    print()
    print("| what | max RSS |")
    print("| --- | ---: |")
    for key, label in (
        ("cat", "`cat` of the cached token file"),
        ("gemauth", "**`gemauth print-access-token`** (cached)"),
        ("refresh", "`gemauth print-access-token` (forced refresh)"),
        ("curl", "`curl` POST"),
        ("py_min", "Python google-auth (minimal)"),
    ):
        print(f"| {label} | {mib[key]:.1f} MiB |")
    print()
    print(f"Release binary: {size / 1024:.0f} KiB as built"
          + (f", {stripped / 1024:.0f} KiB stripped" if stripped is not None else
             " (strip not found: stripped size not measured)"))

    targets = [
        ("cached path within 2× of `cat`", f"{g / med['cat']:.2f}×", g <= 2 * med["cat"]),
        ("cached path ≥ 50× faster than Python google-auth",
         f"{med['py_min'] / g:.0f}×", med["py_min"] >= 50 * g),
        ("peak memory of the cached path < 8 MiB", f"{mib['gemauth']:.1f} MiB", mib["gemauth"] < 8),
        ("forced refresh within 1.5× of curl's POST (https)", f"{rmed / cmed:.2f}×",
         rmed <= 1.5 * cmed),
        (f"{CONCURRENCY} concurrent calls on an expired cache make 1 token request (https, http)",
         requests_summary(conc["https"]["requests"] + conc["http"]["requests"]),
         all(r == 1 for c in conc.values() for r in c["requests"])
         and all(ok for c in conc.values() for ok in c["tokens_shared"])),
        (f"{CONCURRENCY} concurrent calls within 3× of one refresh (https)",
         f"{emed / rmed:.2f}×", emed <= 3 * rmed),
    ]
    print()
    print("### Targets")
    print()
    print("| target | measured | result |")
    print("| --- | ---: | :---: |")
    for label, measured, ok in targets:
        print(f"| {label} | {measured} | {verdict(ok)} |")
    print()
    failed = sum(1 for *_, ok in targets if not ok)
    print(f"{len(targets) - failed} passed, {failed} failed")
    rh, ch = med_r["refresh_http"], med_r["curl_http"]
    eh = med_c["http"]["expired"]
    print()
    print(f"Over plain http (not how Google serves tokens): forced refresh {rh / ch:.2f}× curl's "
          f"POST; {CONCURRENCY} concurrent calls on an expired cache {eh / rh:.2f}× one refresh, "
          f"where {CONCURRENCY} concurrent `true` alone take {true_med / rh:.2f}× it.")

    if args.analyze:
        analyze(sb, pat, [cat, cache_file], args.symbols)
    return 1 if (failed and args.strict) else 0


def stripped_size(binary, tmpdir):
    strip = shutil.which("strip")
    if not strip:
        return None
    out = os.path.join(tmpdir, "stripped.bin")
    subprocess.run([strip, "-o", out, binary], check=True)
    size = os.path.getsize(out)
    os.remove(out)
    return size


# -- where the cached path spends its time --------------------------------------------------------


def analyze(sb, pat, cat_argv, symbols_bin):
    print()
    print("### What the cached path does")
    print()
    strace = shutil.which("strace")
    if strace:
        g = strace_summary(sb, strace, pat)
        c = strace_summary(sb, strace, cat_argv)
        print(f"- strace: {g['total']} system calls (`cat`: {c['total']}); "
              f"threads started: {g['threads']}; sockets: {g['sockets']}; "
              f"epoll/eventfd: {g['epoll']}; mmap/mprotect: {g['mmap']}")
        print(f"- files opened: {', '.join(g['opened']) or 'none'}")
        tls = [p for p in g["opened"] if is_cert_path(p)]
        print(f"- TLS roots or certificate files read: {', '.join(tls) if tls else 'none'}")
        # For contrast, the refresh path (empty cache), which does build the HTTP client.
        sb.empty_cache()
        r = strace_summary(sb, strace, pat)
        certs = [p for p in r["opened"] if is_cert_path(p)]
        print(f"- for contrast, a forced refresh: {r['total']} system calls; threads started: "
              f"{r['threads']}; sockets: {r['sockets']}; epoll/eventfd: {r['epoll']}; fsync: "
              f"{r['fsync']}; certificate files read: {len(certs)} (the system's bundle and "
              f"directory, as in production)")
    else:
        print("- strace not found: system-call summary skipped")
    perf = shutil.which("perf")
    if perf:
        for label, argv, pre in (
            ("gemauth (cached)", pat, None),
            ("cat", cat_argv, None),
            ("gemauth (forced refresh)", pat, f"rm -rf {sb.tokens_dir}"),
            ("curl POST", curl_post_argv(sb), None),
        ):
            stats = perf_stat(sb, perf, argv, pre)
            if stats:
                print(f"- perf stat, {label}: " + ", ".join(f"{k} {v}" for k, v in stats.items()))
    valgrind = shutil.which("valgrind")
    if valgrind:
        for label, argv in (("gemauth (cached)", pat), ("cat", cat_argv)):
            total, by_obj = callgrind(sb, valgrind, argv)
            parts = ", ".join(f"{obj} {ir / total:.0%}" for obj, ir in by_obj[:4])
            print(f"- callgrind, {label}: {total:,} instructions; by object: {parts}")
        sb.empty_cache()
        total, by_obj = callgrind(sb, valgrind, pat)
        parts = ", ".join(f"{obj} {ir / total:.0%}" for obj, ir in by_obj[:3])
        print(f"- callgrind, gemauth (forced refresh): {total:,} instructions; by object: {parts}")
        if symbols_bin:
            # An unstripped build of the same source gives function names.
            argv = [symbols_bin] + pat[1:]
            for label, prepare in (("cached", None), ("forced refresh", sb.empty_cache)):
                if prepare:
                    prepare()
                total, top = callgrind_functions(sb, valgrind, argv)
                net = sum(ir for ir, fn in top if NETWORK_CRATES.search(fn))
                print(f"- callgrind with symbols, {label}: {total:,} instructions, of which "
                      f"{net:,} in tokio/reqwest/hyper/rustls/webpki code; top functions by self cost:")
                for ir, fn in top[:10]:
                    print(f"  - {ir / total:5.1%} {fn[:110]}")
    else:
        print("- valgrind not found: instruction counts skipped")


def is_cert_path(path):
    return any(k in path for k in ("/ssl/", "/certs", "/pki/", "ca-bundle", "ca-certificates"))


def strace_summary(sb, strace, argv):
    out = os.path.join(sb.tmp, "strace.out")
    subprocess.run([strace, "-f", "-qq", "-o", out] + argv, env=sb.env, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    calls = []
    opened = []
    with open(out) as f:
        for line in f:
            m = re.match(r"(?:\d+\s+)?(\w+)\(", line)
            if not m:
                continue
            calls.append(m.group(1))
            o = re.match(r'(?:\d+\s+)?(?:openat|open)\((?:AT_FDCWD, )?"([^"]*)".*= (-?\d+)', line)
            if o:
                path = o.group(1).replace(sb.tmp, "$TMP")
                opened.append(path if int(o.group(2)) >= 0 else path + " (absent)")
    os.remove(out)
    count = lambda *names: sum(1 for c in calls if c in names)  # noqa: E731
    return {
        "total": len(calls),
        "threads": count("clone", "clone3"),
        "sockets": count("socket", "connect"),
        "epoll": count("epoll_create", "epoll_create1", "eventfd2"),
        "mmap": count("mmap", "mprotect", "munmap"),
        "fsync": count("fsync", "fdatasync"),
        "opened": opened,
    }


def perf_stat(sb, perf, argv, pre=None):
    """CPU time (task-clock), page faults and context switches, averaged over 30 runs; `pre` is
    a shell command perf runs before each run (not measured)."""
    r = subprocess.run(
        [perf, "stat", "-x", ",", "-r", "30", "-e", "task-clock,page-faults,context-switches"]
        + (["--pre", pre] if pre else []) + argv,
        env=sb.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )
    stats = {}
    for line in r.stderr.splitlines():
        f = line.split(",")
        if len(f) > 3 and f[0] and f[0][0].isdigit():
            value = float(f[0])
            stats[f[2]] = f"{value:.3f} ms" if f[2] == "task-clock" else f"{value:.0f}"
    return stats


def callgrind(sb, valgrind, argv):
    """Total instructions and their split by object file (executable, ld.so, libc...)."""
    out = os.path.join(sb.tmp, "callgrind.out")
    subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                   env=sb.env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    by_obj = {}
    obj_names = {}
    current = None
    total = 0
    with open(out) as f:
        for line in f:
            # "ob=(N) /path" names an object (later just "ob=(N)"); cost lines are numbers.
            # Names are compressed: "(N) /path" the first time (in ob= or cob=), then "(N)".
            m = re.match(r"c?ob=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                if m.group(2):
                    obj_names[m.group(1)] = os.path.basename(m.group(2))
                if line.startswith("ob="):
                    current = obj_names.get(m.group(1), m.group(1))
                continue
            if line.startswith(("cfi=", "cfn=", "calls=")):
                if line.startswith("calls="):
                    next(f, None)  # the inclusive cost line of a call: not self cost
                continue
            if line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) >= 2 and parts[1].isdigit():
                    ir = int(parts[1])
                    total += ir
                    by_obj[current] = by_obj.get(current, 0) + ir
    os.remove(out)
    return total, sorted(by_obj.items(), key=lambda kv: -kv[1])


# Code that only the network path should run.
NETWORK_CRATES = re.compile(r"\b(tokio|reqwest|hyper|hyper_util|rustls|rustls_pki_types|webpki|"
                            r"rustls_native_certs|rustls_platform_verifier|ring|mio)::")


def callgrind_functions(sb, valgrind, argv):
    """Total instructions and the functions with the most self cost (needs callgrind_annotate)."""
    out = os.path.join(sb.tmp, "callgrind-sym.out")
    subprocess.run([valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                   env=sb.env, check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = subprocess.run(["callgrind_annotate", "--threshold=100", out], capture_output=True, text=True)
    os.remove(out)
    total = 0
    top = []
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+(?:\([\d.% ]+\)\s+)?(.*)", line)
        if not m:
            continue
        ir = int(m.group(1).replace(",", ""))
        what = m.group(2).strip()
        if "PROGRAM TOTALS" in what:
            total = ir
        elif what and total:
            top.append((ir, re.sub(r"\s+\[.*\]$", "", what)))
    return total or 1, top


# -- release-profile variants ---------------------------------------------------------------------


def run_profiles(args):
    rng = random.Random(11)
    scale = 4 if args.quick else 1
    variants = []
    for spec in args.variants:
        name, _, binary = spec.partition("=")
        variants.append((name, os.path.abspath(binary)))
    sb = Sandbox(args.python, tls=True)
    try:
        sb.start_server()
        cat = tool("cat")
        pats = {name: [b, "print-access-token", "--credential-file", sb.cred] for name, b in variants}
        first = variants[0][0]
        sb.output(pats[first])  # fills the cache; all variants share it (same key)
        cache_file = sb.cache_file()
        for name, _ in variants:
            sb.output(pats[name])
        if sb.token_requests() != 1:
            raise BenchError("a variant did not use the cached token")
        rounds = 400 // scale
        log(f"profile variants: {rounds} interleaved rounds of the cached path")
        commands = {"cat": lambda: sb.timed([cat, cache_file])}
        for name, _ in variants:
            commands[name] = (lambda argv: lambda: sb.timed(argv))(pats[name])
        samples = interleave(rounds, commands, rng, progress=log)
        # The refresh path is CPU-bound in places (see the analysis), so time it per variant too.
        rrounds = 60 // scale
        log(f"profile variants: {rrounds} interleaved rounds of a forced refresh")

        def refresh(argv):
            def run():
                sb.empty_cache()
                return sb.timed(argv)
            return run

        curl_post = curl_post_argv(sb)
        rcommands = {"curl": lambda: sb.timed(curl_post)}
        rcommands.update({n: refresh(pats[n]) for n, _ in variants})
        rsamples = interleave(rrounds, rcommands, rng)
        crounds = 24 // scale
        log(f"profile variants: {crounds} interleaved rounds of {CONCURRENCY} concurrent calls "
            "(expired cache, then fresh)")

        def concurrent(argv):
            def run():
                sb.expire_cache()
                return sb.concurrent(argv)[0], sb.concurrent(argv)[0]
            return run

        csamples = interleave(crounds, {n: concurrent(pats[n]) for n, _ in variants}, rng)
        rss = interleave(8 // (2 if args.quick else 1),
                         {n: (lambda argv: lambda: sb.max_rss_kib(argv))(pats[n]) for n, _ in variants},
                         rng)
        cat_med = statistics.median(samples["cat"])
        curl_med = statistics.median(rsamples["curl"])
        base = statistics.median(samples[first])
        print()
        print(f"### Release-profile variants ({rounds} interleaved runs of the cached path, "
              f"{rrounds} of a forced refresh)")
        print()
        print(f"| variant | size as built | stripped | cached | × cat | × {first} "
              f"| forced refresh (https) | × curl POST | {CONCURRENCY} concurrent, expired "
              "| × its refresh | fresh | max RSS (cached) |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for name, binary in variants:
            m = statistics.median(samples[name])
            r = statistics.median(rsamples[name])
            e = statistics.median(x for x, _ in csamples[name])
            f = statistics.median(y for _, y in csamples[name])
            stripped = stripped_size(binary, sb.tmp)
            print(f"| {name} | {os.path.getsize(binary) / 1024:.0f} KiB | "
                  f"{(stripped or 0) / 1024:.0f} KiB | {fmt_ms(m)} | {m / cat_med:.2f} | "
                  f"{m / base:.2f} | {fmt_ms(r)} | {r / curl_med:.2f} | {fmt_ms(e)} | "
                  f"{e / r:.2f} | {fmt_ms(f)} | {max(rss[name]) / 1024:.1f} MiB |")
        print(f"| `cat` / `curl` POST, for scale | | | {fmt_ms(cat_med)} | 1.00 | "
              f"{cat_med / base:.2f} | {fmt_ms(curl_med)} | 1.00 | | | | |")
    finally:
        sb.close()
    return 0


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("main")
    m.add_argument("--gemauth", required=True)
    m.add_argument("--python", required=True, help="a Python with google-auth")
    m.add_argument("--quick", action="store_true", help="a quarter of the rounds")
    m.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    m.add_argument("--no-analyze", dest="analyze", action="store_false")
    m.add_argument("--symbols", help="an unstripped gemauth for callgrind's function names")
    v = sub.add_parser("profiles")
    v.add_argument("--python", required=True)
    v.add_argument("--quick", action="store_true")
    v.add_argument("variants", nargs="+", metavar="NAME=BIN")
    args = p.parse_args()

    # SIGTERM ends the run like Ctrl-C does, so that the finally blocks stop the server.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return run_main(args) if args.cmd == "main" else run_profiles(args)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
