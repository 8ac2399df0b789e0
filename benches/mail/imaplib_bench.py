"""Python imaplib side of `cargo bench --bench mail`.

Run once per measurement with one JSON argument; prints one JSON object.
Modes:
  connect     loop connect + authenticate + logout, per-iteration seconds
  fetch       UID FETCH uid (BODY.PEEK[]) of one message
  list        UID FETCH 1:* (UID RFC822.SIZE INTERNALDATE FLAGS)
  throughput  threads looping connect / select / list / logout
CPU is this process's own user + system time over the measured part.
"""
import imaplib
import json
import resource
import ssl
import sys
import threading
import time


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def csw():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw + r.ru_nivcsw


def maxrss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def open_session(a, ctx):
    """Connect and log in as imaplib users do; returns the IMAP4 object."""
    mode = a["mode"]
    if mode == "tls":
        c = imaplib.IMAP4_SSL(a["host"], a["port"], ssl_context=ctx)
    else:
        c = imaplib.IMAP4(a["host"], a["port"])
        if mode == "starttls":
            c.starttls(ssl_context=ctx)
    if a["mech"] == "CRAM-MD5":
        c.login_cram_md5(a["user"], a["password"])
    else:
        c.login(a["user"], a["password"])
    return c


def context(a):
    if a["mode"] in ("tls", "starttls"):
        return ssl.create_default_context(cafile=a["cafile"])
    return None


def main():
    a = json.loads(sys.argv[1])
    ctx = context(a)
    kind = a["kind"]
    if kind == "connect":
        times = []
        for _ in range(a["warmup"]):
            open_session(a, ctx).logout()
        c0 = cpu()
        s0 = csw()
        for _ in range(a["n"]):
            t0 = time.perf_counter()
            open_session(a, ctx).logout()
            times.append(time.perf_counter() - t0)
        print(json.dumps({"times": times, "cpu": cpu() - c0, "csw": csw() - s0}))
    elif kind in ("fetch", "list"):
        c = open_session(a, ctx)
        typ, _ = c.select(a["mailbox"], readonly=False)
        assert typ == "OK", typ
        rss0 = maxrss_kib()
        c0 = cpu()
        t0 = time.perf_counter()
        if kind == "fetch":
            typ, data = c.uid("FETCH", str(a["uid"]), "(BODY.PEEK[])")
            size = len(data[0][1])
        else:
            typ, data = c.uid("FETCH", "1:*", "(UID RFC822.SIZE INTERNALDATE FLAGS)")
            size = len([d for d in data if d])
        secs = time.perf_counter() - t0
        assert typ == "OK", typ
        used = cpu() - c0
        c.logout()
        print(json.dumps({"secs": secs, "size": size, "cpu": used,
                          "maxrss_before_kib": rss0, "maxrss_kib": maxrss_kib()}))
    elif kind == "throughput":
        stop = time.monotonic() + a["secs"]
        counts = [0] * a["threads"]
        errors = []

        def worker(i):
            b = dict(a)
            b["user"] = a["users"][i % len(a["users"])]
            try:
                while time.monotonic() < stop:
                    c = open_session(b, ctx)
                    c.select("INBOX")
                    c.uid("FETCH", "1:*", "(UID RFC822.SIZE INTERNALDATE FLAGS)")
                    c.logout()
                    counts[i] += 1
            except Exception as e:  # reported, not hidden
                errors.append(repr(e))

        t0 = time.perf_counter()
        c0 = cpu()
        ts = [threading.Thread(target=worker, args=(i,)) for i in range(a["threads"])]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print(json.dumps({"sessions": sum(counts), "secs": time.perf_counter() - t0,
                          "cpu": cpu() - c0, "errors": errors[:3]}))
    else:
        raise SystemExit("unknown kind " + kind)


main()
