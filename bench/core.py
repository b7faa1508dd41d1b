"""The README's performance table and its targets: `gemauth print-access-token` against `cat`,
gcloud, Python google-auth and curl, all against the run's https token endpoint.

  1. a token from the cache: gemauth, `cat` of the cache file, Python google-auth (a minimal
     script and the Gemini quickstart's load_creds()), and `gcloud auth application-default
     print-access-token`, which refreshes on every call;
  2. a forced refresh against a bare curl POST of the same request, with trials of 50 concurrent
     calls on an expired cache (token requests counted) and on a fresh one;
  3. peak memory.
"""

import json
import os
import shutil
import subprocess

from harness import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, TOKEN_URI, BenchError, Cmd, fmt_ms, log
from harness import HERE, median

CONCURRENCY = 50

# The targets (issue 12), all for the binary `cargo install` builds.
CACHED_VS_CAT = 1.5  # cached token within 1.5x `cat` of the cache file
VS_GCLOUD = 300  # at least 300x faster than gcloud's ADC print-access-token
VS_PYTHON = 100  # at least 100x faster than Python google-auth
MAX_MEMORY_MIB = 8  # peak memory, cached token and refresh
REFRESH_VS_CURL = 1.0  # forced refresh within 1.0x a bare curl POST over https
CONCURRENT_EXTRA = 1.5  # (50 concurrent, expired) - (50 concurrent, fresh) within 1.5x one refresh


def ratio_margin(value, limit, at_most):
    """How far a ratio is from its limit, in words: '12% to spare', 'over by 7%'."""
    gap = abs(value - limit) / limit
    met = value <= limit if at_most else value >= limit
    text = f"{gap:.0%}" if gap >= 0.1 else f"{gap:.1%}"
    return f"{text} to spare" if met else f"{'over' if at_most else 'short'} by {text}"


def run(bench):
    gemauth = Cmd([bench.gemauth, "print-access-token"], bench.gemauth_env)
    cat_path = shutil.which("cat")
    curl = shutil.which("curl")
    gcloud_path = shutil.which("gcloud")
    gcloud = (Cmd([gcloud_path, "auth", "application-default", "print-access-token"],
                  bench.gcloud_env) if gcloud_path else None)

    # -- checks before timing anything: every command prints a token of this server's ----------
    bench.empty_cache()
    before = bench.token_requests()
    token = bench.output(gemauth).strip()
    if not token.startswith("ya29.bench-"):
        raise BenchError(f"unexpected token from gemauth: {token!r}")
    if bench.output(gemauth).strip() != token or bench.token_requests() != before + 1:
        raise BenchError("gemauth's second call did not use the cached token")
    cat = Cmd([cat_path, bench.cache_file()], bench.other_env)

    # The quickstart's token.json, holding the same token, valid until 2099 (no refresh).
    token_json = bench.write_private(os.path.join(bench.tmp, "token.json"), {
        "token": token, "refresh_token": REFRESH_TOKEN, "token_uri": TOKEN_URI,
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "scopes": ["https://www.googleapis.com/auth/generative-language.retriever"],
        "expiry": "2099-01-01T00:00:00Z",
    })
    py = os.path.join(HERE, "py_token.py")
    py_min = Cmd([bench.python, py, "minimal", token_json], bench.other_env)
    py_qs = Cmd([bench.python, py, "quickstart", token_json], bench.other_env)
    for cmd in (py_min, py_qs):
        if bench.output(cmd).strip() != token:
            raise BenchError(f"{' '.join(cmd.argv)} did not print the token")

    # A bare curl POST of the refresh request gemauth makes (same form, same Accept header).
    curl_args = [curl, "--silent", "--show-error", "--fail", "--noproxy", "*",
                 "--cacert", bench.bundle, "--header", "Accept: application/json",
                 "--data-urlencode", "grant_type=refresh_token",
                 "--data-urlencode", f"client_id={CLIENT_ID}",
                 "--data-urlencode", f"client_secret={CLIENT_SECRET}",
                 "--data-urlencode", f"refresh_token={REFRESH_TOKEN}"]
    if not json.loads(bench.output(Cmd(curl_args + [TOKEN_URI], bench.other_env)))[
            "access_token"].startswith("ya29.bench-"):
        raise BenchError("curl got no token")
    curl_post = Cmd(curl_args + ["--output", os.devnull, TOKEN_URI], bench.other_env)

    if gcloud:
        # Two calls: the first also writes gcloud's configuration; each must refresh.
        before = bench.token_requests()
        for _ in range(2):
            out = bench.output(gcloud).strip()
            if not out.startswith("ya29.bench-"):
                raise BenchError(f"unexpected token from gcloud: {out!r}")
        if bench.token_requests() != before + 2:
            raise BenchError("gcloud did not make one token request per call")
    else:
        log("gcloud not found: its row and target are not measured")

    # -- 1. a token from the cache --------------------------------------------------------------
    rounds = bench.scaled(300)
    commands = {
        "cat": lambda: bench.timed(cat),
        "gemauth": lambda: bench.timed(gemauth),
        "py_min": lambda: bench.timed(py_min),
        "py_qs": lambda: bench.timed(py_qs),
    }
    every = {"py_min": 10, "py_qs": 10}
    if gcloud:
        commands["gcloud"] = lambda: bench.timed(gcloud)
        every["gcloud"] = 15
    log(f"[1/3] a token from the cache: {rounds} interleaved rounds (Python every 10th, "
        "gcloud every 15th)")
    before = bench.token_requests()
    cached = bench.interleave(rounds, commands, every)
    gcloud_calls = len(cached.get("gcloud", []))
    if bench.token_requests() - before != gcloud_calls:
        raise BenchError(f"{bench.token_requests() - before} token requests for {gcloud_calls} "
                         "gcloud calls and none from the cached path expected")
    med = {k: median(v) for k, v in cached.items()}

    # -- 2. forced refresh, and 50 concurrent calls --------------------------------------------
    rounds = bench.scaled(160)
    trials = {"expired": [], "fresh": [], "extra": [], "requests": [], "shared": []}

    def forced_refresh():
        bench.empty_cache()
        return bench.timed(gemauth)

    def fresh_calls():
        """50 calls that all find a fresh token: 50 process starts, no refresh."""
        wall, requests, _ = bench.concurrent(gemauth, CONCURRENCY)
        if requests:
            raise BenchError(f"{CONCURRENCY} calls on a fresh cache made a token request")
        return wall

    def concurrent_trial():
        # A trial is 50 calls on an expired cache and 50 on a fresh one, back to back, in turn
        # one order and the other (the cache is fresh when a trial starts).
        fresh_first = len(trials["expired"]) % 2 == 1
        if fresh_first:
            fresh = fresh_calls()
        bench.expire_cache()
        wall, requests, outs = bench.concurrent(gemauth, CONCURRENCY)
        trials["expired"].append(wall)
        trials["requests"].append(requests)
        trials["shared"].append(len(set(outs)) == 1 and outs[0].startswith("ya29.bench-"))
        if not fresh_first:
            fresh = fresh_calls()
        trials["fresh"].append(fresh)
        trials["extra"].append(wall - fresh)

    log(f"[2/3] forced refresh vs curl: {rounds} interleaved rounds, {CONCURRENCY}-concurrent "
        "trials every 2nd round")
    before = bench.token_requests()
    refresh = bench.interleave(rounds, {
        "refresh": forced_refresh,
        "curl": lambda: bench.timed(curl_post),
        "conc": concurrent_trial,
    }, {"conc": 2})
    expected = len(refresh["refresh"]) + len(refresh["curl"]) + sum(trials["requests"])
    if bench.token_requests() - before != expected:
        raise BenchError("the token server saw an unexpected number of requests")
    rmed, cmed = median(refresh["refresh"]), median(refresh["curl"])

    # -- 3. peak memory --------------------------------------------------------------------------
    rounds = bench.scaled(10)
    log(f"[3/3] peak memory: {rounds} interleaved rounds under /usr/bin/time")

    def refresh_rss():
        bench.empty_cache()
        return bench.max_rss_kib(gemauth)

    commands = {
        "gemauth": lambda: bench.max_rss_kib(gemauth),
        "refresh": refresh_rss,
        "cat": lambda: bench.max_rss_kib(cat),
        "curl": lambda: bench.max_rss_kib(curl_post),
        "py_min": lambda: bench.max_rss_kib(py_min),
        "py_qs": lambda: bench.max_rss_kib(py_qs),
    }
    if gcloud:
        commands["gcloud"] = lambda: bench.max_rss_kib(gcloud)
    mem = bench.interleave(rounds, commands, {"gcloud": 5, "py_min": 2, "py_qs": 2},
                           progress=False)
    mib = {k: max(v) / 1024 for k, v in mem.items()}

    # -- report -----------------------------------------------------------------------------------
    g = med["gemauth"]
    r = bench.report
    n = {k: len(v) for k, v in cached.items()}
    r.row(f"**`gemauth print-access-token`**, cached token ({n['gemauth']} runs)", fmt_ms(g),
          f"{mib['gemauth']:.1f} MiB", f"{g / med['cat']:.2f}× `cat`")
    r.row(f"`cat` of gemauth's cache file ({n['cat']} runs)", fmt_ms(med["cat"]),
          f"{mib['cat']:.1f} MiB", "")
    if gcloud:
        r.row(f"`gcloud auth application-default print-access-token` ({n['gcloud']} runs, each "
              "a refresh)", fmt_ms(med["gcloud"]), f"{mib['gcloud']:.1f} MiB",
              f"{med['gcloud'] / g:.0f}× gemauth cached, {med['gcloud'] / rmed:.0f}× gemauth "
              "refreshing")
    else:
        r.row("`gcloud auth application-default print-access-token`", "not installed", "", "")
    r.row(f"Python google-auth: `Credentials.from_authorized_user_file` + print ({n['py_min']} "
          "runs)", fmt_ms(med["py_min"]), f"{mib['py_min']:.1f} MiB",
          f"{med['py_min'] / g:.0f}× gemauth cached")
    r.row(f"the Gemini quickstart's `load_creds()` with its imports ({n['py_qs']} runs)",
          fmt_ms(med["py_qs"]), f"{mib['py_qs']:.1f} MiB", f"{med['py_qs'] / g:.0f}× gemauth cached")
    r.row(f"**`gemauth print-access-token`**, forced refresh over https ({len(refresh['refresh'])} "
          "runs)", fmt_ms(rmed), f"{mib['refresh']:.1f} MiB", f"{rmed / cmed:.2f}× curl")
    r.row(f"bare `curl` POST of the same refresh request ({len(refresh['curl'])} runs)",
          fmt_ms(cmed), f"{mib['curl']:.1f} MiB", "")
    emed, fmed, xmed = (median(trials[k]) for k in ("expired", "fresh", "extra"))
    requests = sorted(set(trials["requests"]))
    r.row(f"{CONCURRENCY} concurrent gemauth calls, expired cache ({len(trials['expired'])} "
          "trials)", fmt_ms(emed), "",
          f"token requests per trial: {', '.join(map(str, requests))}")
    r.row(f"{CONCURRENCY} concurrent gemauth calls, fresh cache (next to each trial above)",
          fmt_ms(fmed), "", "")
    r.row("expired minus fresh, per trial", fmt_ms(xmed), "", f"{xmed / rmed:.2f}× one refresh")

    v = g / med["cat"]
    r.target(f"cached token ≤ {CACHED_VS_CAT}× `cat` of the cache file", f"{v:.2f}×",
             v <= CACHED_VS_CAT, ratio_margin(v, CACHED_VS_CAT, True))
    if gcloud:
        v = med["gcloud"] / g
        r.target(f"≥ {VS_GCLOUD}× faster than gcloud ADC `print-access-token`", f"{v:.0f}×",
                 v >= VS_GCLOUD, ratio_margin(v, VS_GCLOUD, False))
    else:
        r.target(f"≥ {VS_GCLOUD}× faster than gcloud ADC `print-access-token`",
                 "gcloud not installed", None)
    v = med["py_min"] / g
    r.target(f"≥ {VS_PYTHON}× faster than Python google-auth", f"{v:.0f}×", v >= VS_PYTHON,
             ratio_margin(v, VS_PYTHON, False))
    v = max(mib["gemauth"], mib["refresh"])
    r.target(f"peak memory ≤ {MAX_MEMORY_MIB} MiB (cached / refresh)",
             f"{mib['gemauth']:.1f} / {mib['refresh']:.1f} MiB", v <= MAX_MEMORY_MIB,
             ratio_margin(v, MAX_MEMORY_MIB, True))
    v = rmed / cmed
    r.target(f"forced refresh ≤ {REFRESH_VS_CURL}× a bare curl POST over https", f"{v:.2f}×",
             v <= REFRESH_VS_CURL, ratio_margin(v, REFRESH_VS_CURL, True))
    ones = sum(1 for q in trials["requests"] if q == 1)
    shared = all(trials["shared"])
    r.target(f"{CONCURRENCY} concurrent calls on an expired cache make exactly 1 token request",
             f"1 in {ones} of {len(trials['requests'])} trials"
             + ("" if shared else "; callers printed different tokens"),
             ones == len(trials["requests"]) and shared)
    v = xmed / rmed
    r.target(f"({CONCURRENCY} concurrent, expired) − ({CONCURRENCY} concurrent, fresh) ≤ "
             f"{CONCURRENT_EXTRA}× one refresh", f"{v:.2f}×", v <= CONCURRENT_EXTRA,
             ratio_margin(v, CONCURRENT_EXTRA, True))
    size = os.path.getsize(bench.gemauth)
    r.note(f"gemauth binary: {size / 1024:.0f} KiB ({bench.gemauth})")
    r.note("versions: " + "; ".join(filter(None, (
        first_line([bench.python, "--version"]), first_line([curl, "--version"]),
        first_line([gcloud_path, "--version"], bench.gcloud_env) if gcloud else None))))


def first_line(argv, env=None):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    if not out.strip():
        return None
    line = out.strip().splitlines()[0]
    if line.startswith("curl "):
        # curl's line lists every library it links; keep its version and its TLS library.
        words = line.split()
        line = " ".join(words[:2] + [w for w in words[2:] if "SSL" in w or "TLS" in w])
    return line
