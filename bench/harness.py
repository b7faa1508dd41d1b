"""Benchmark harness for gemauth; bench/run.sh sets things up and runs it.

  python harness.py --gemauth BIN --python VENV_PYTHON [--quick] [--strict] SUITE [SUITE ...]

It must run inside the private network and mount namespace run.sh makes, where
oauth2.googleapis.com is 127.0.0.1 (a bind-mounted /etc/hosts) and nothing else is reachable. It
makes a CA for the run and a certificate for oauth2.googleapis.com, starts the token server
(token_server.py) on 127.0.0.1:443, writes the credential files, and then runs each SUITE: a
module in this directory with a function `run(bench)` that measures and adds rows and targets to
`bench.report` (core.py is the README's table). A suite for another set of commands is one more
module, named on run.sh's `suites=` line.

Method: in each round the commands of a group run once each, in a shuffled order, so that a noisy
neighbour or a frequency change hits all of them alike. We report medians and ratios, never
absolute numbers from different runs. Processes are started with os.posix_spawn (vfork + exec,
the cheapest way Python has) and timed from just before the spawn to the end of waitpid; stdin,
stdout and stderr go to /dev/null unless the output is read. Only the standard library is used.
"""

import argparse
import glob
import importlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

# Google's token endpoint: the name every client uses by default. Inside the namespace it is
# 127.0.0.1, where token_server.py answers.
TOKEN_HOST = "oauth2.googleapis.com"
TOKEN_URI = f"https://{TOKEN_HOST}/token"

# Fake OAuth client and grant; the token server accepts exactly these.
CLIENT_ID = "bench-client.apps.googleusercontent.com"
CLIENT_SECRET = "bench-client-secret"
REFRESH_TOKEN = "1//bench-refresh-token"

# Where the system's root certificates are, as gemauth (rustls-native-certs via openssl-probe)
# and curl find them without configuration.
SYSTEM_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                  "/etc/ssl/ca-bundle.pem", "/etc/ssl/cert.pem")
SYSTEM_CERT_DIR = "/etc/ssl/certs"


class BenchError(Exception):
    pass


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def tool(name):
    path = shutil.which(name)
    if not path:
        raise BenchError(f"missing tool: {name}")
    return path


def fmt_ms(ms):
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms"


def median(values):
    if not values:
        raise BenchError("no samples")
    return statistics.median(values)


class Cmd:
    """A command line and the environment it runs in."""

    def __init__(self, argv, env):
        self.argv = list(argv)
        self.env = dict(env)


class Report:
    """What the suites measured: rows of the timing table, and targets met or missed."""

    def __init__(self):
        self.rows = []  # (what, median, peak memory, comparison)
        self.targets = []  # (target, measured, met, margin)
        self.notes = []

    def row(self, what, median_text, memory_text="", comparison=""):
        self.rows.append((what, median_text, memory_text, comparison))

    def target(self, label, measured, met, margin=""):
        """`margin` says by how much a target was met or missed."""
        self.targets.append((label, measured, met, margin))

    def note(self, text):
        self.notes.append(text)

    def print(self, header):
        print()
        print(header)
        print()
        print("| what | median | peak memory | compared |")
        print("| --- | ---: | ---: | --- |")
        for row in self.rows:
            print("| " + " | ".join(row) + " |")
        print()
        print("| target | measured | result |")
        print("| --- | ---: | --- |")
        for label, measured, met, margin in self.targets:
            result = ("met" if met is True else "**missed**" if met is False else "not measured")
            print(f"| {label} | {measured} | {result}{', ' + margin if margin else ''} |")
        print()
        for text in self.notes:
            print(f"- {text}")
        missed = sum(1 for t in self.targets if t[2] is False)
        unmeasured = sum(1 for t in self.targets if t[2] is None)
        print()
        print(f"{len(self.targets) - missed - unmeasured} targets met, {missed} missed"
              + (f", {unmeasured} not measured" if unmeasured else ""))
        return missed


class Bench:
    """The run's sandbox: temporary directories, the CA, the token server, the credential files,
    and the means to time commands in it."""

    def __init__(self, args):
        self.gemauth = os.path.abspath(args.gemauth)
        self.python = args.python
        self.quick = args.quick
        self.rng = random.Random(7)
        self.report = Report()
        self.tmp = tempfile.mkdtemp(prefix="gemauth-bench-")
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.server = None
        # The same small environment for every command: no proxies, no RUST_LOG, no
        # GOOGLE_APPLICATION_CREDENTIALS; each tool gets its own HOME.
        self.base_env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        }

    def scaled(self, rounds):
        """A quarter of the rounds with --quick."""
        return max(1, rounds // 4) if self.quick else rounds

    def dir(self, *parts):
        path = os.path.join(self.tmp, *parts)
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    def write_private(self, path, obj):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f)
        return path

    # -- set-up -----------------------------------------------------------------------------------

    def check_namespace(self):
        try:
            addr = socket.gethostbyname(TOKEN_HOST)
        except OSError as e:
            raise BenchError(f"{TOKEN_HOST} does not resolve ({e}): run this through bench/run.sh")
        if addr != "127.0.0.1":
            raise BenchError(f"{TOKEN_HOST} is {addr}, not 127.0.0.1: run this through bench/run.sh, "
                             "which maps it in a private network namespace")

    def make_certificates(self):
        """A CA and a certificate for oauth2.googleapis.com (ECDSA P-256, like Google's)."""
        openssl = tool("openssl")
        d = self.dir("tls")
        f = lambda name: os.path.join(d, name)  # noqa: E731
        run = lambda *a: subprocess.run([openssl, *a], check=True, capture_output=True)  # noqa: E731
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
        run("req", "-x509", *ec, "-keyout", f("ca.key"), "-out", f("ca.pem"), "-days", "2",
            "-subj", "/CN=gemauth bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign")
        run("req", *ec, "-keyout", f("leaf.key"), "-out", f("leaf.csr"), "-subj", f"/CN={TOKEN_HOST}")
        with open(f("leaf.ext"), "w") as out:
            out.write(f"subjectAltName=DNS:{TOKEN_HOST}\nbasicConstraints=critical,CA:FALSE\n"
                      "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", f("leaf.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
            "-CAcreateserial", "-out", f("leaf.pem"), "-days", "2", "-extfile", f("leaf.ext"))
        # The system's roots plus the bench CA: every TLS client loads what it loads in
        # production, and one more certificate.
        system = next((b for b in SYSTEM_BUNDLES if os.path.exists(b)), None)
        if system is None:
            log("warning: no system root bundle found; the TLS clients load the bench CA only")
        with open(f("bundle.pem"), "wb") as out:
            if system:
                with open(system, "rb") as sysb:
                    out.write(sysb.read())
            with open(f("ca.pem"), "rb") as ca:
                out.write(ca.read())
        self.bundle = f("bundle.pem")
        self.ssl_context = ssl.create_default_context(cafile=f("ca.pem"))
        return f("leaf.pem"), f("leaf.key")

    def start_server(self):
        cert, key = self.make_certificates()
        env = dict(self.base_env, BENCH_CLIENT_ID=CLIENT_ID, BENCH_CLIENT_SECRET=CLIENT_SECRET,
                   BENCH_REFRESH_TOKEN=REFRESH_TOKEN, BENCH_TLS_CERT=cert, BENCH_TLS_KEY=key,
                   BENCH_PORT="443")
        self.server = subprocess.Popen(
            [self.python, os.path.join(HERE, "token_server.py")],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
        )
        if self.server.stdout.readline().strip() != b"443":
            raise BenchError("the token server did not start on 127.0.0.1:443")

    def adc_file(self, config_dir):
        """An authorized_user ADC file, as `gemauth login` and `gcloud auth application-default
        login` write it, whose token_uri is Google's."""
        return self.write_private(
            os.path.join(config_dir, "application_default_credentials.json"),
            {
                "type": "authorized_user",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "refresh_token": REFRESH_TOKEN,
                "token_uri": TOKEN_URI,
            },
        )

    def setup(self):
        self.check_namespace()
        self.start_server()
        # gemauth: its own HOME, cache and gcloud directory (where it finds the ADC file).
        home = self.dir("gemauth", "home")
        self.cache_home = self.dir("gemauth", "cache")
        self.gemauth_env = dict(self.base_env, HOME=home, XDG_CACHE_HOME=self.cache_home,
                                CLOUDSDK_CONFIG=self.dir("gemauth", "gcloud"),
                                SSL_CERT_FILE=self.bundle)
        if os.path.isdir(SYSTEM_CERT_DIR):
            self.gemauth_env["SSL_CERT_DIR"] = SYSTEM_CERT_DIR
        self.adc_file(self.gemauth_env["CLOUDSDK_CONFIG"])
        self.tokens_dir = os.path.join(self.cache_home, "gemauth", "tokens")
        # Everything else: another HOME. gcloud gets its own CLOUDSDK_CONFIG with an ADC file, and
        # trusts the run's CA the two ways it offers.
        self.other_env = dict(self.base_env, HOME=self.dir("other", "home"),
                              SSL_CERT_FILE=self.bundle)
        gcloud_config = self.dir("other", "gcloud")
        self.adc_file(gcloud_config)
        self.gcloud_env = dict(
            self.other_env, CLOUDSDK_CONFIG=gcloud_config,
            CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE=self.bundle, REQUESTS_CA_BUNDLE=self.bundle,
            # No update check and no usage reports: work gcloud may do that is not the token's.
            CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="1",
            CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
        )

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

    # -- the token server -------------------------------------------------------------------------

    def token_requests(self):
        """How many POST /token the server has answered so far."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                             urllib.request.HTTPSHandler(context=self.ssl_context))
        with opener.open(f"https://{TOKEN_HOST}/stats", timeout=10) as r:
            return json.load(r)["token_requests"]

    # -- gemauth's cache --------------------------------------------------------------------------

    def empty_cache(self):
        shutil.rmtree(self.tokens_dir, ignore_errors=True)

    def cache_file(self):
        files = glob.glob(os.path.join(self.tokens_dir, "*.json"))
        if len(files) != 1:
            raise BenchError(f"expected one cached token in {self.tokens_dir}, found {files}")
        return files[0]

    def expire_cache(self):
        """Rewrites the cached token so that it expired a minute ago, an hour after it was
        obtained (atomically; other fields kept)."""
        path = self.cache_file()
        with open(path) as f:
            token = json.load(f)
        now = int(time.time())
        token["obtained_at"] = now - 3659
        token["expires_at"] = now - 60
        tmp = path + ".bench-tmp"
        self.write_private(tmp, token)
        os.replace(tmp, path)

    # -- running commands -------------------------------------------------------------------------

    def spawn(self, cmd, stdout=None):
        actions = [
            (os.POSIX_SPAWN_DUP2, self.devnull, 0),
            (os.POSIX_SPAWN_DUP2, self.devnull if stdout is None else stdout, 1),
            (os.POSIX_SPAWN_DUP2, self.devnull, 2),
        ]
        return os.posix_spawn(cmd.argv[0], cmd.argv, cmd.env, file_actions=actions)

    def timed(self, cmd):
        """Runs cmd once; its wall time in milliseconds."""
        t0 = time.perf_counter_ns()
        pid = self.spawn(cmd)
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter_ns() - t0) / 1e6
        if os.waitstatus_to_exitcode(status) != 0:
            self.output(cmd)  # raises with the error
            raise BenchError(f"{' '.join(cmd.argv)} failed once, then succeeded")
        return elapsed

    def output(self, cmd):
        r = subprocess.run(cmd.argv, env=cmd.env, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(cmd.argv)} failed (exit {r.returncode}): "
                             f"{r.stderr.strip()[:500]}")
        return r.stdout

    def concurrent(self, cmd, n):
        """Starts n copies of cmd at once; returns (wall ms, token requests made, outputs)."""
        outdir = tempfile.mkdtemp(dir=self.tmp, prefix="conc-")
        fds = [os.open(os.path.join(outdir, f"{i}.out"), os.O_RDWR | os.O_CREAT, 0o600)
               for i in range(n)]
        before = self.token_requests()
        pids = []
        try:
            t0 = time.perf_counter_ns()
            for fd in fds:
                pids.append(self.spawn(cmd, stdout=fd))
            statuses = [os.waitpid(pid, 0)[1] for pid in pids]
            elapsed = (time.perf_counter_ns() - t0) / 1e6
            pids = []
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

    def max_rss_kib(self, cmd):
        """Peak resident memory of one run of cmd (the largest process of its tree), from GNU
        time's %M, in KiB."""
        out = os.path.join(self.tmp, "time.out")
        r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out] + cmd.argv, env=cmd.env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise BenchError(f"{' '.join(cmd.argv)} failed under /usr/bin/time: "
                             f"{r.stderr.strip()[:300]}")
        with open(out) as f:
            return int(f.read().strip().splitlines()[-1])

    def interleave(self, rounds, commands, every=None, progress=True):
        """Runs `rounds` rounds; in each, every command (name -> callable returning a sample) runs
        once, in a shuffled order. Commands listed in `every` (name -> k) run only every k-th
        round. Returns name -> list of samples."""
        samples = {name: [] for name in commands}
        every = every or {}
        for r in range(rounds):
            names = [n for n in commands if r % every.get(n, 1) == 0]
            self.rng.shuffle(names)
            for name in names:
                samples[name].append(commands[name]())
            if progress and (r + 1) % max(1, rounds // 4) == 0:
                log(f"  {r + 1}/{rounds} rounds")
        return samples


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gemauth", required=True, help="the gemauth binary to measure")
    p.add_argument("--python", required=True, help="a Python with google-auth (py_token.py)")
    p.add_argument("--quick", action="store_true", help="a quarter of the rounds")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("suites", nargs="+", metavar="SUITE", help="modules in bench/ to run")
    args = p.parse_args()

    # SIGTERM ends the run like Ctrl-C does, so that the finally block stops the server.
    signal.signal(signal.SIGTERM, _interrupt)
    sys.path.insert(0, HERE)
    bench = Bench(args)
    load = os.getloadavg()
    try:
        bench.setup()
        for name in args.suites:
            importlib.import_module(name).run(bench)
    except BenchError as e:
        log(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        bench.close()
    u = os.uname()
    missed = bench.report.print(
        f"{os.cpu_count()} cores, {u.sysname} {u.release}; load average (1, 5, 15 min) "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, "
        + " ".join(f"{x:.2f}" for x in os.getloadavg()) + " at the end"
        + (" (--quick: a quarter of the rounds)" if args.quick else ""))
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
