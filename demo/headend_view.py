#!/usr/bin/python3
"""A head-end's view of one meterd gateway, live in the terminal.

Reads the gateway's MQTT topics (docs/contracts.md "MQTT") through
`mosquitto_sub -F '%t %p'` (so it needs no MQTT library) and shows one row
per meter: its latest energy, power and voltage exactly as the payload
spelt them, the age of its latest reading, and how many readings and
duplicate seqs arrived; above them the gateway's retained status and its
latest health message (buffer depth, oldest unsent age, meters online and
offline, the uplink's publishes and acknowledged rows, the buses' errors);
below them the latest events and command results (<prefix>/cmd/result; the
commands themselves, <prefix>/cmd/<verb>, are ignored) and the seq
accounting of the contract:

  * a duplicate is a seq that arrives again (delivery is at least once);
  * a gap is a seq below the highest seen that has not arrived and that no
    buffer.seq_gap or buffer.evicted event names. Events are published
    ahead of the readings around them, so a seq is only counted as a gap
    once it has been missing for --grace seconds (before that it is
    "pending"). A missing seq names no meter, so gaps are per gateway.

Values are never put through a binary float: JSON numbers are kept as the
text received.

  headend_view.py --port 1883 --prefix meterd/gw-0001 --config meterd.toml
  headend_view.py --input - --meters m01,m02 < captured-lines   # '%t %p' lines
  headend_view.py --selftest

--seconds N stops after N seconds; the exit status is 0 when every expected
meter (from --config or --meters; otherwise at least one) sent a reading
and there are no gaps, 1 otherwise. Ctrl-C stops it with the same summary.
On a terminal the table is redrawn in place; otherwise it is printed every
--print-every seconds.
"""

import argparse
import datetime
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time

ENERGY = "energy.active.import.total"
POWER = "power.active.total"
VOLTAGE = "voltage.l1"


class Num(str):
    """A JSON number, kept as the exact text received."""


def parse_json(text):
    return json.loads(text, parse_float=Num, parse_int=Num)


def as_int(v):
    if isinstance(v, bool) or v is None:
        raise ValueError("not an integer")
    return int(str(v))


def parse_ts(text):
    """ISO 8601 UTC ('2026-12-01T05:00:00.123Z') -> seconds since the epoch, or None."""
    try:
        return datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def fmt_age(seconds):
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def fmt_ranges(seqs, limit=8):
    """[3, 4, 5, 9] -> '3-5, 9' (at most `limit` ranges)."""
    out, run = [], None
    for s in sorted(seqs):
        if run and s == run[1] + 1:
            run[1] = s
        else:
            if run:
                out.append(run)
            run = [s, s]
    if run:
        out.append(run)
    text = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out[:limit])
    return text + (", ..." if len(out) > limit else "")


class MeterRow:
    def __init__(self, meter):
        self.meter = meter
        self.readings = 0  # distinct seqs
        self.duplicates = 0
        self.latest = {}  # role -> (quantity, value text, unit, ts seconds)
        self.last_ts = None
        self.state = ""  # "offline" after meter.offline, "" after meter.online


class HeadEnd:
    """The accounting, fed one '%t %p' line at a time; no I/O, time passed in."""

    def __init__(self, prefix, meters=(), first_seq=None, grace=5.0):
        self.prefix = prefix.rstrip("/")
        self.grace = grace
        self.expected = list(meters)
        self.rows = {m: MeterRow(m) for m in self.expected}
        self.seen = set()
        self.seq_meter = {}  # only while needed for duplicates: seq -> meter
        self.low = first_seq  # lowest seq accounted for (None: the lowest seen)
        self.high = None
        self.missing = {}  # seq -> when it was first missed
        self.named = []  # (first, last, why) from buffer.seq_gap / buffer.evicted
        self.readings = 0  # distinct reading seqs
        self.events = 0  # distinct event seqs
        self.duplicates = 0
        self.arrivals = 0  # readings and events, duplicates included
        self.messages = 0
        self.malformed = 0
        self.last_malformed = ""
        self.recent_events = []
        self.recent_results = []  # <prefix>/cmd/result: "id ok" or "id code"
        self.status = None
        self.status_at = None
        self.health = None
        self.health_at = None

    # --- seq accounting ---------------------------------------------------

    def _is_named(self, seq):
        return any(a <= seq <= b for a, b, _ in self.named)

    def _miss(self, lo, hi, now):
        for s in range(lo, hi + 1):
            if s not in self.seen and not self._is_named(s):
                self.missing.setdefault(s, now)

    def _arrive(self, seq, now):
        """Records a seq; False if it is a duplicate."""
        self.arrivals += 1
        if seq in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(seq)
        self.missing.pop(seq, None)
        if self.low is None:
            self.low = seq
        elif seq < self.low:
            self._miss(seq + 1, self.low - 1, now)
            self.low = seq
        if self.high is None:
            self._miss(self.low, seq - 1, now)
            self.high = seq
        elif seq > self.high:
            self._miss(self.high + 1, seq - 1, now)
            self.high = seq
        return True

    def _name(self, first, last, why):
        if last < first:
            return
        self.named.append((first, last, why))
        for s in [s for s in self.missing if first <= s <= last]:
            del self.missing[s]

    def gaps(self, now):
        return sorted(s for s, t in self.missing.items() if now - t >= self.grace)

    def pending(self, now):
        return sorted(s for s, t in self.missing.items() if now - t < self.grace)

    # --- messages -----------------------------------------------------------

    def row(self, meter):
        if meter not in self.rows:
            self.rows[meter] = MeterRow(meter)
        return self.rows[meter]

    def _bad(self, line, why):
        self.malformed += 1
        self.last_malformed = f"{why}: {line[:80]}"

    def feed(self, line, now):
        line = line.rstrip("\r\n")
        if not line:
            return
        topic, _, payload = line.partition(" ")
        self.messages += 1
        if not topic.startswith(self.prefix + "/"):
            return self._bad(line, "foreign topic")
        sub = topic[len(self.prefix) + 1 :]
        if sub.startswith("cmd/") and sub != "cmd/result":
            return  # a command to the gateway (the head-end's own message), not its output
        try:
            msg = parse_json(payload)
        except ValueError:
            return self._bad(line, f"{sub}: not JSON")
        if not isinstance(msg, dict):
            return self._bad(line, f"{sub}: not an object")
        try:
            if sub == "readings":
                self._readings(msg, now)
            elif sub == "events":
                self._event(msg, now)
            elif sub == "status":
                self.status, self.status_at = msg, now
            elif sub == "health":
                self.health, self.health_at = msg, now
            elif sub == "cmd/result":
                err = msg.get("error") if isinstance(msg.get("error"), dict) else {}
                self.recent_results.append(
                    f"{msg.get('id') or '(no id)'} " + ("ok" if msg.get("ok") is True
                                                       else str(err.get("code", "error"))))
                del self.recent_results[:-3]
        except (KeyError, TypeError, ValueError) as e:
            self._bad(line, f"{sub}: {type(e).__name__} {e}")

    def _readings(self, msg, now):
        for r in msg["readings"]:
            seq, meter = as_int(r["seq"]), str(r["meter"])
            row = self.row(meter)
            if not self._arrive(seq, now):
                row.duplicates += 1
                continue
            self.readings += 1
            row.readings += 1
            if r.get("frozen"):
                continue  # frozen data: not the meter's latest live value
            q, ts = str(r["quantity"]), parse_ts(r.get("ts"))
            role = {ENERGY: "energy", POWER: "power", VOLTAGE: "voltage"}.get(q)
            if role is None and q.startswith("energy."):
                # No import total (yet): the first energy quantity the meter sends.
                shown = row.latest.get("energy")
                role = "energy" if shown is None or shown[0] == q else None
            if role:
                value = r.get("value")
                text = "null" if value is None else str(value)
                row.latest[role] = (q, text, str(r.get("unit", "")), ts)
            if ts is not None and (row.last_ts is None or ts > row.last_ts):
                row.last_ts = ts

    def _event(self, msg, now):
        seq = as_int(msg["seq"])
        kind = str(msg.get("type", "?"))
        meter = msg.get("meter")
        fresh = self._arrive(seq, now)
        if meter:
            row = self.row(str(meter))
            if not fresh:
                row.duplicates += 1
        if not fresh:
            return
        self.events += 1
        if kind == "buffer.seq_gap":
            self._name(as_int(msg["first"]), as_int(msg["last"]), "seq_gap")
        elif kind == "buffer.evicted":
            self._name(as_int(msg["first_seq"]), as_int(msg["last_seq"]), "evicted")
        elif kind == "meter.offline" and meter:
            self.row(str(meter)).state = "offline"
        elif kind == "meter.online" and meter:
            self.row(str(meter)).state = ""
        when = str(msg.get("ts", ""))[11:19]
        self.recent_events.append(f"{when}Z {meter or 'gateway'} {kind}")
        del self.recent_events[:-3]

    # --- results ------------------------------------------------------------

    def meters_seen(self):
        return sorted(m for m, r in self.rows.items() if r.readings > 0)

    def silent_meters(self):
        return [m for m in (self.expected or []) if self.rows[m].readings == 0]

    def ok(self, now):
        if self.gaps(now) or self.pending(now):
            return False
        return not self.silent_meters() if self.expected else self.readings > 0

    def summary(self, now):
        missing = self.gaps(now) + self.pending(now)
        expected = len(self.expected) if self.expected else len(self.rows)
        lines = [
            f"readings received: {self.readings} (+ {self.events} events), "
            f"meters seen: {len(self.meters_seen())} of {expected}, "
            f"duplicates: {self.duplicates}, gaps: {len(missing)}"
        ]
        if self.named:
            lines.append("seqs named by the gateway: "
                         + ", ".join(f"{a}-{b} ({w})" for a, b, w in self.named))
        if missing:
            lines.append(f"missing seqs: {fmt_ranges(missing)}")
        silent = self.silent_meters()
        if silent and len(silent) == len(self.expected) > 1:
            lines.append(f"no reading from any of the {len(silent)} meters")
        elif silent:
            lines.append(f"no reading from: {' '.join(silent)}")
        if self.malformed:
            lines.append(f"malformed messages: {self.malformed} (last: {self.last_malformed})")
        lines.append("result: " + ("ok" if self.ok(now) else "FAILED"))
        return lines


# --- drawing ------------------------------------------------------------------

def cell(latest, role, width):
    if role not in latest:
        return "-".rjust(width)
    _, text, unit, _ = latest[role]
    return f"{text} {unit}".rjust(width)


ROW_HEAD = f"{'meter':<8} {'energy':>17} {'power':>12} {'voltage':>9} {'age':>6} {'reads':>6} {'dups':>4}"


def meter_line(row, now):
    age = None if row.last_ts is None else now_wall() - row.last_ts
    name = row.meter[:7] + ("*" if row.state == "offline" else "")
    return (f"{name:<8} {cell(row.latest, 'energy', 17)} {cell(row.latest, 'power', 12)} "
            f"{cell(row.latest, 'voltage', 9)} {fmt_age(age):>6} {row.readings:>6} {row.duplicates:>4}")


def now_wall():
    return time.time()


def render(he, now, link, width, height):
    """The screen as a list of lines, at most `height` lines of at most `width` columns."""
    clock = datetime.datetime.fromtimestamp(now_wall(), datetime.timezone.utc).strftime("%H:%M:%SZ")
    head = [f"meterd head-end view  {he.prefix}  ({link})  {clock}"]
    st = he.status
    if st is None:
        head.append("status: none yet (retained <prefix>/status)")
    else:
        head.append(f"status: {st.get('state', '?')}  version {st.get('version', '?')}  "
                    f"started {st.get('started', '?')}")
    if he.health is None:
        head.append("health: none yet")
    else:
        head += health_lines(he.health, fmt_age(now - he.health_at))
    head.append("")
    gaps, pend = he.gaps(now), he.pending(now)
    foot = [
        "",
        f"readings {he.readings}  events {he.events}  meters {len(he.meters_seen())}/"
        f"{len(he.expected) if he.expected else len(he.rows)}  duplicates {he.duplicates}  "
        f"gaps {len(gaps)}" + (f" ({fmt_ranges(gaps, 4)})" if gaps else "")
        + (f"  pending {len(pend)}" if pend else "")
        + (f"  named {sum(b - a + 1 for a, b, _ in he.named)}" if he.named else "")
        + (f"  seq {he.low}..{he.high}" if he.high is not None else ""),
    ]
    if he.recent_events:
        foot.append("events: " + "; ".join(he.recent_events))
    if he.recent_results:
        foot.append("command results: " + "; ".join(he.recent_results))
    if he.malformed:
        foot.append(f"malformed {he.malformed}: {he.last_malformed}")
    rows = [meter_line(he.rows[m], now) for m in sorted(he.rows)]
    room = max(1, height - len(head) - len(foot) - 1)
    rw = len(ROW_HEAD)
    if len(rows) > room and width >= 2 * rw + 3:
        half = (len(rows) + 1) // 2
        left, right = rows[:half], rows[half:]
        rows = [l + "   " + (right[i] if i < len(right) else "") for i, l in enumerate(left)]
        table_head = ROW_HEAD + "   " + ROW_HEAD
    else:
        table_head = ROW_HEAD
    if len(rows) > room:
        hidden = len(rows) - room + 1
        rows = rows[: room - 1] + [f"... {hidden} more rows (a taller terminal shows them)"]
    lines = head + [table_head] + rows + foot
    return [l[:width] for l in lines[:height]]


def health_lines(h, age):
    """The gateway's <prefix>/health message (firmware/daemon_uplink.cpp Daemon::health())
    as two lines: buffer depth, oldest unsent age and meters online/offline, then the
    uplink's and the buses' counters. A message of another shape is shown flattened."""
    try:
        return health_summary(h, age)
    except (AttributeError, TypeError, ValueError):
        return [f"health ({age} ago): " + flatten(h)]


def health_summary(h, age):
    buf, meters, up, buses = (h.get(k) for k in ("buffer", "meters", "uplink", "buses"))
    if not any(isinstance(x, dict) for x in (buf, meters, up)):
        raise ValueError("not meterd's health message")

    def get(d, key):
        return "?" if d.get(key) is None else d[key]

    first, second = [], []
    if isinstance(buf, dict):
        rows, events = get(buf, "readings"), get(buf, "events")
        depth = "?" if "?" in (rows, events) else int(str(rows)) + int(str(events))
        oldest = buf.get("oldest_unsent_age_s")
        first.append(f"buffer depth {depth} ({rows} readings, {events} events, "
                     f"{get(buf, 'inflight')} in flight), oldest unsent "
                     + ("-" if oldest is None else fmt_age(int(str(oldest)))))
    if isinstance(meters, dict):
        text = f"meters {get(meters, 'online')} online, {get(meters, 'offline')} offline"
        ids = meters.get("offline_ids") or []
        if ids:
            text += " (" + " ".join(str(i) for i in ids[:6]) + (" ..." if len(ids) > 6 else "") + ")"
        if str(meters.get("unknown", "0")) != "0":
            text += f", {meters['unknown']} not read yet"
        first.append(text)
    if isinstance(up, dict):
        state = "connected" if up.get("connected") else "disconnected"
        text = (f"uplink {state}: publishes {get(up, 'publishes')}, "
                f"acked rows {get(up, 'acked_rows')}, requeued {get(up, 'requeued_rows')}")
        if str(up.get("connects", "1")) not in ("0", "1"):
            text += f", connects {up['connects']}"
        second.append(text)
    if isinstance(buses, dict) and buses:
        on = sum(1 for b in buses.values() if b.get("up"))
        total = {k: sum(int(str(b.get(k, 0))) for b in buses.values())
                 for k in ("timeouts", "bad_frames", "missed_slots")}
        second.append(f"buses {on}/{len(buses)} up: timeouts {total['timeouts']}, "
                      f"bad frames {total['bad_frames']}, missed slots {total['missed_slots']}")
    lines = [f"health ({age} ago): " + "; ".join(first or second)]
    if first and second:
        lines.append("  " + "; ".join(second))
    return lines


def flatten(obj, prefix=""):
    """{"buffer":{"depth":3}} -> 'buffer.depth=3' (scalars only, exact text)."""
    parts = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            parts.append(flatten(v, f"{prefix}{k}."))
        return " ".join(p for p in parts if p)
    if isinstance(obj, list):
        return f"{prefix[:-1]}=[{len(obj)}]"
    return f"{prefix[:-1]}={'null' if obj is None else obj}"


# --- input --------------------------------------------------------------------

class Subscriber:
    """mosquitto_sub as a child in its own session (a terminal's Ctrl-C does not
    reach it; we stop it), restarted if it exits."""

    def __init__(self, args):
        self.args = args
        self.proc = None
        self.buf = b""
        self.err = b""
        self.note = "starting"
        self.restart_at = 0.0

    def command(self):
        a = self.args
        cmd = ["mosquitto_sub", "-h", a.host, "-p", str(a.port), "-q", "1",
               "-t", f"{a.prefix}/#", "-F", "%t %p"]
        if a.client_id:
            cmd += ["-c", "-i", a.client_id]  # a persistent session: nothing lost while away
        return cmd

    def start(self):
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        for f in (self.proc.stdout, self.proc.stderr):
            os.set_blocking(f.fileno(), False)
        self.note = f"mosquitto_sub {self.args.host}:{self.args.port}"

    def fds(self):
        return [self.proc.stdout, self.proc.stderr] if self.proc else []

    def lines(self, ready):
        out = []
        if self.proc is None:
            if time.monotonic() >= self.restart_at:
                self.start()
            return out
        if self.proc.stderr in ready:
            chunk = self.proc.stderr.read() or b""
            self.err = (self.err + chunk)[-400:]
        if self.proc.stdout in ready:
            chunk = self.proc.stdout.read()
            if chunk:
                self.buf += chunk
                *whole, self.buf = self.buf.split(b"\n")
                out = [w.decode("utf-8", "replace") for w in whole]
        if self.proc.poll() is not None:
            last = self.err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
            self.note = f"broker lost: mosquitto_sub exited {self.proc.returncode} {last[0]}; retrying"
            self.stop()
            self.restart_at = time.monotonic() + 2
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class StdinSource:
    def __init__(self):
        self.note = "stdin"
        self.eof = False
        self.buf = b""
        os.set_blocking(sys.stdin.fileno(), False)

    def fds(self):
        return [] if self.eof else [sys.stdin]

    def lines(self, ready):
        if sys.stdin not in ready:
            return []
        chunk = sys.stdin.buffer.read()
        if chunk is None:
            return []
        if not chunk:
            self.eof = True
            chunk = b"\n"
        self.buf += chunk
        *whole, self.buf = self.buf.split(b"\n")
        return [w.decode("utf-8", "replace") for w in whole]

    def stop(self):
        pass


class Stop(Exception):
    pass


def meters_from_config(path):
    import tomllib

    with open(path, "rb") as f:
        return [m["id"] for m in tomllib.load(f).get("meter", [])]


def run(args):
    meters = []
    if args.config:
        meters = meters_from_config(args.config)
    if args.meters:
        meters = [m for m in args.meters.split(",") if m]
    he = HeadEnd(args.prefix, meters, args.first_seq, args.grace)
    tty = sys.stdout.isatty() and not args.plain
    src = StdinSource() if args.input == "-" else Subscriber(args)

    stopping = []

    def on_signal(*_):
        # The first INT or TERM ends the loop; later ones must not cut the summary short.
        if not stopping:
            stopping.append(True)
            raise Stop()

    # Set both explicitly: a program started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    start = time.monotonic()
    deadline = start + args.seconds if args.seconds > 0 else None
    next_draw = start
    settling = False
    out = sys.stdout
    if tty:
        out.write("\x1b[?25l\x1b[2J")  # hide the cursor, clear once
    try:
        while True:
            now = time.monotonic()
            if deadline and now >= deadline and not settling:
                # Let what is in flight arrive: a missing seq has grace seconds to come.
                settling, deadline = True, now + (args.grace if he.missing else 0)
            if settling and (now >= deadline or not he.missing):
                break
            if isinstance(src, StdinSource) and src.eof:
                break
            fds = src.fds()
            wake = deadline if settling else min(next_draw, deadline or next_draw)
            wait = min(1.0, max(0.0, wake - now))
            ready = select.select(fds, [], [], wait)[0] if fds else (time.sleep(wait) or [])
            for line in src.lines(ready):
                he.feed(line, time.monotonic())
            now = time.monotonic()
            if now >= next_draw and not settling:
                size = shutil.get_terminal_size((120, 50))
                if tty:
                    screen = render(he, now, src.note, size.columns, size.lines)
                    out.write("\x1b[H" + "".join(l + "\x1b[K\n" for l in screen[:-1])
                              + screen[-1] + "\x1b[K\x1b[J")
                    next_draw = now + 1
                elif not isinstance(src, StdinSource):
                    out.write("\n".join(render(he, now, src.note, 200, 1000)) + "\n\n")
                    next_draw = now + args.print_every
                else:
                    next_draw = now + 3600
                out.flush()
    except (KeyboardInterrupt, Stop):
        stopping.append(True)
    finally:
        src.stop()
        if tty:
            out.write("\x1b[?25h\n")
    now = time.monotonic()
    if not tty and args.input != "-":
        out.write("\n".join(render(he, now, src.note, 200, 1000)) + "\n\n")
    out.write("head-end summary: " + "\n  ".join(he.summary(now)) + "\n")
    out.flush()
    return 0 if he.ok(now) else 1


# --- self-test ----------------------------------------------------------------

def selftest():
    P = "meterd/gw"

    def rd(seq, meter="m01", q=ENERGY, value="12345.67", unit="kWh", ts="2026-12-01T05:00:00.123Z"):
        return {"seq": seq, "meter": meter, "quantity": q, "value": value, "unit": unit, "ts": ts}

    def readings(*rs):
        body = ",".join(
            '{"seq":%d,"meter":"%s","quantity":"%s","value":%s,"unit":"%s","ts":"%s"}'
            % (r["seq"], r["meter"], r["quantity"], r["value"], r["unit"], r["ts"]) for r in rs)
        return f'{P}/readings {{"gateway":"gw","batch":1,"readings":[{body}]}}'

    checks = 0

    def check(cond, what):
        nonlocal checks
        checks += 1
        if not cond:
            raise AssertionError(what)

    # Exact values, duplicates and a gap.
    he = HeadEnd(P, ["m01", "m02"], first_seq=1, grace=5)
    he.feed(f'{P}/status {{"state":"online","version":"0.1.0","started":"2026-12-01T05:00:00.000Z"}}', 0)
    he.feed(readings(rd(1), rd(2, q=POWER, value="0.0000001", unit="kW"),
                     rd(3, q=VOLTAGE, value="220.10", unit="V")), 0)
    he.feed(readings(rd(2, q=POWER, value="0.0000001", unit="kW")), 0)  # resent: duplicate
    he.feed(readings(rd(5, meter="m02", value="1E+3")), 0)  # 4 not yet here
    check(he.duplicates == 1 and he.rows["m01"].duplicates == 1, "one duplicate")
    check(he.readings == 4 and he.rows["m01"].readings == 3, "distinct readings")
    check(he.rows["m01"].latest["power"][1] == "0.0000001", "value text kept (no 1E-7)")
    check(he.rows["m01"].latest["voltage"][1] == "220.10", "trailing zero kept")
    check(he.rows["m02"].latest["energy"][1] == "1E+3", "exponent form kept")
    check(he.pending(1) == [4] and he.gaps(1) == [], "seq 4 pending within the grace")
    check(he.gaps(6) == [4], "seq 4 a gap after the grace")
    check(not he.ok(6), "a gap fails")
    he.feed(readings(rd(4, meter="m02")), 7)  # late, but it came: no gap
    check(he.gaps(8) == [] and he.ok(8), "late arrival is no gap")
    check(he.status["state"] == "online", "status")

    # A gap named by buffer.seq_gap (before or after the seqs go missing) and by buffer.evicted.
    he = HeadEnd(P, ["m01"], first_seq=1, grace=0)
    he.feed(readings(rd(1), rd(2)), 0)
    he.feed(readings(rd(10)), 0)  # 3..9 missing
    check(he.gaps(1) == [3, 4, 5, 6, 7, 8, 9], "3..9 missing")
    he.feed(f'{P}/events {{"seq":11,"type":"buffer.seq_gap","first":3,"last":7,"reason":"unclean stop"}}', 1)
    check(he.gaps(1) == [8, 9], "3..7 named by seq_gap")
    he.feed(f'{P}/events {{"seq":12,"type":"buffer.evicted","kind":"readings","count":2,'
            f'"first_seq":8,"last_seq":9}}', 1)
    check(he.gaps(1) == [] and he.ok(1), "8..9 named by evicted")
    he.feed(f'{P}/events {{"seq":13,"type":"buffer.seq_gap","first":14,"last":20,"reason":"unclean stop"}}', 1)
    he.feed(readings(rd(21)), 1)  # 14..20 named before they went missing
    check(he.gaps(2) == [] and he.events == 3, "named ahead")
    he.feed(f'{P}/events {{"seq":13,"type":"buffer.seq_gap","first":14,"last":20}}', 2)
    check(he.duplicates == 1 and he.events == 3, "a duplicate event")

    # Events published ahead of lower reading seqs; offline state; the lowest seq.
    he = HeadEnd(P, ["m01", "m02"], first_seq=None, grace=5)
    he.feed(f'{P}/events {{"seq":42,"meter":"m02","type":"meter.offline","ts":"2026-12-01T05:00:01.000Z"}}', 0)
    he.feed(readings(rd(40), rd(41)), 1)
    check(he.low == 40 and he.gaps(9) == [] and he.rows["m02"].state == "offline", "reordered")
    check(not he.ok(9) and he.silent_meters() == ["m02"], "m02 sent no reading")
    he.feed(readings(rd(43, meter="m02", q="energy.active.import.t1")), 9)
    check(he.rows["m02"].latest["energy"][0] == "energy.active.import.t1", "first energy quantity")
    he.feed(readings(rd(44, meter="m02", q=ENERGY, value="5.00")), 9)
    he.feed(readings(rd(45, meter="m02", q="energy.active.import.t2", value="1.00")), 9)
    check(he.rows["m02"].latest["energy"][1] == "5.00", "the import total wins")
    check(he.ok(9), "all meters, no gaps")

    # Malformed input is counted, not fatal; frozen readings do not show as latest.
    he = HeadEnd(P, [], first_seq=1, grace=0)
    he.feed(f"{P}/readings not json", 0)
    he.feed(f'{P}/readings {{"readings":[{{"meter":"m01"}}]}}', 0)
    he.feed("other/topic {}", 0)
    he.feed(f'{P}/readings {{"readings":[{{"seq":1,"meter":"m01","quantity":"{ENERGY}",'
            f'"value":1.5,"unit":"kWh","ts":"2026-12-01T00:00:00.000Z","frozen":"daily"}}]}}', 0)
    check(he.malformed == 3 and he.readings == 1 and "energy" not in he.rows["m01"].latest, "malformed")
    check(he.ok(0), "one meter, some reading, no gaps")

    # The health message as meterd sends it; commands ignored, their results shown.
    he = HeadEnd(P, ["m01"], first_seq=1, grace=0)
    he.feed(f'{P}/health {{"buffer":{{"db_bytes":102400,"events":1,"evicted_events":0,'
            f'"evicted_readings":0,"inflight":2,"oldest_unsent_age_s":75,"readings":40}},'
            f'"buses":{{"rs485-1":{{"up":true,"timeouts":3,"bad_frames":1,"missed_slots":0}},'
            f'"rs485-2":{{"up":false,"timeouts":0,"bad_frames":0,"missed_slots":2}}}},'
            f'"gateway":"gw","meters":{{"offline":1,"offline_ids":["m05"],"online":30,"total":32,'
            f'"unknown":1}},"uplink":{{"acked_rows":3285,"connected":true,"connects":2,'
            f'"publishes":105,"requeued_rows":7}}}}', 0)
    lines = health_lines(he.health, "3s")
    check(lines[0] == "health (3s ago): buffer depth 41 (40 readings, 1 events, 2 in flight), "
          "oldest unsent 1m15s; meters 30 online, 1 offline (m05), 1 not read yet", lines[0])
    check(lines[1] == "  uplink connected: publishes 105, acked rows 3285, requeued 7, connects 2; "
          "buses 1/2 up: timeouts 3, bad frames 1, missed slots 2", lines[1])
    check(health_lines({"a": Num("1")}, "3s") == ["health (3s ago): a=1"], "other health flattened")
    he.feed(f'{P}/cmd/read {{"id":"x-2","meter":"m01",}}', 0)  # the head-end's own, malformed
    he.feed(f'{P}/cmd/result {{"id":"x-1","ok":false,"error":{{"code":"disabled","message":"off"}}}}', 0)
    he.feed(f'{P}/cmd/result {{"id":"r-1","ok":true,"result":{{}}}}', 0)
    check(he.malformed == 0 and he.recent_results == ["x-1 disabled", "r-1 ok"], "command results")

    # Rendering fits the screen and never wraps.
    he = HeadEnd(P, [f"m{i:02d}" for i in range(1, 33)], first_seq=1)
    screen = render(he, 0, "test", 100, 20)
    check(len(screen) <= 20 and all(len(l) <= 100 for l in screen), "fits 100x20")
    screen = render(he, 0, "test", 200, 30)
    check(len(screen) <= 30 and any("m32" in l for l in screen), "two columns")

    print(f"headend_view selftest: {checks} checks passed")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--prefix", default="meterd/gw-0001", help="topic prefix")
    ap.add_argument("--client-id", help="subscribe with a persistent session under this id")
    ap.add_argument("--config", help="meterd config: the meters expected")
    ap.add_argument("--meters", help="comma-separated meter ids expected")
    ap.add_argument("--first-seq", type=int, help="the first seq expected (default: lowest seen)")
    ap.add_argument("--grace", type=float, default=5.0, help="seconds a missing seq may be late")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: Ctrl-C)")
    ap.add_argument("--print-every", type=float, default=10.0, help="when not on a terminal")
    ap.add_argument("--plain", action="store_true", help="no redrawing even on a terminal")
    ap.add_argument("--input", help="'-': read '%%t %%p' lines from stdin instead of the broker")
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        return selftest()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
