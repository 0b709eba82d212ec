"""Scenarios the outside client plays against a real central, for tests/outside.rs.

    python scenarios.py <scenario> --kafka HOST:PORT --central HOST:PORT --http URL \
        --token TOKEN --cp CP --cp-secret-file FILE --driver D --driver-secret-file FILE

Prints one JSON line per observation (`{"seen": ...}`) and per record sent (`{"sent": ...}`);
the Rust test asserts on them. Exits 0 when the scenario ran to its end, 1 (after a
`{"failed": ...}` line) when something it waited for did not come.
"""

import argparse
import json
import sys
import time
import uuid
import urllib.request

import evclient

# How long any one thing is waited for: generous, since the machine may be busy.
DEADLINE = 30.0
PRICE_EUR_KWH = 0.35


def say(**fields):
    print(json.dumps(fields), flush=True)


def fail(why):
    say(failed=why)
    sys.exit(1)


class Run:
    """The parties of one scenario, and everything they have read so far."""

    def __init__(self, args):
        self.args = args
        self.driver = self.engine = self.monitor = self.dead_letters = None
        self.updates, self.commands, self.letters = [], [], []

    # --- reading -------------------------------------------------------------------------

    def pump(self):
        """Reads once from each party's bus, keeping and printing what came."""
        if self.driver:
            update = self.driver.next_update(0.05)
            if update:
                self.updates.append(update)
                say(seen="driver.updates", record=update)
        if self.engine:
            command = self.engine.next_command(0.05)
            if command:
                self.commands.append(command)
                say(seen="cp.commands", record=command)
        if self.dead_letters:
            record = self.dead_letters.poll(0.05)
            if record and record.value:
                self.letters.append(record.value)
                say(seen="deadletter", record=record.value)

    def wait(self, what, find, deadline=DEADLINE):
        """Reads until `find()` gives something; fails the run after `deadline` seconds."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            found = find()
            if found:
                return found
            self.pump()
        fail(f"no {what} within {deadline:.0f} s")

    def pump_for(self, seconds):
        """Reads for `seconds`: the pace of an engine's reports."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.pump()

    def update(self, kind, **fields):
        return lambda: first(self.updates, kind, fields)

    def command(self, kind, **fields):
        return lambda: first(self.commands, kind, fields)

    # --- the parties ---------------------------------------------------------------------

    def start_monitor(self):
        args = self.args
        secret = evclient.read_secret(args.cp_secret_file)
        self.monitor = evclient.Monitor(args.central, args.cp, secret)
        verdict, reply = self.monitor.auth()
        say(seen="link", sent="AUTH", verdict=verdict, reply=reply)
        if verdict != "ACK":
            fail(f"AUTH refused: {reply}")
        self.monitor.start_reports(1.0)

    def claim(self, who, party, records, kinds, heartbeat):
        """The start-up of PROTOCOL.md: a probing hello, then the central's answer for this
        instance (`kinds`: welcome, in use), then heartbeats."""
        party.hello(probe=True)
        answer = self.wait(
            f"answer to the {who}'s probe",
            lambda: next(
                (r for r in records if r["type"] in kinds and r.get("instance") == party.instance),
                None,
            ),
        )
        if answer["type"] != kinds[0]:
            fail(f"the {who} was not welcome: {answer}")
        party.start_heartbeats(heartbeat)

    def start_engine(self):
        args = self.args
        secret = evclient.read_secret(args.cp_secret_file)
        self.engine = evclient.Engine(args.kafka, args.cp, secret)
        self.claim(
            "engine", self.engine, self.commands, ("engine_welcome", "engine_id_in_use"),
            args.heartbeat,
        )

    def start_driver(self):
        args = self.args
        secret = evclient.read_secret(args.driver_secret_file)
        self.driver = evclient.Driver(args.kafka, args.driver, secret)
        self.claim("driver", self.driver, self.updates, ("welcome", "id_in_use"), args.heartbeat)

    def start_dead_letters(self):
        self.dead_letters = evclient.Bus(self.args.kafka, read=["deadletter"])

    # --- the central's API ---------------------------------------------------------------

    def api(self, path):
        request = urllib.request.Request(
            self.args.http + path, headers={"Authorization": f"Bearer {self.args.token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.load(answer)

    def api_cp(self):
        cp = next((c for c in self.api("/api/cps") if c["id"] == self.args.cp), None)
        say(seen="api.cps", cp=cp)
        return cp

    def wait_state(self, state):
        """Waits until the API shows the CP in `state`, reading the bus meanwhile."""
        shown = [None]

        def reached():
            cp = next((c for c in self.api("/api/cps") if c["id"] == self.args.cp), None)
            if cp and cp["state"] != shown[0]:
                shown[0] = cp["state"]
                say(seen="api.cps", cp=cp)
            return cp if cp and cp["state"] == state else None

        return self.wait(f"{self.args.cp} {state}", reached)

    # --- steps shared by the scenarios ---------------------------------------------------

    def ask_supply(self, cp_id):
        """A supply request; its answer (reserved or denied)."""
        request = self.driver.supply_request(cp_id)
        self.driver.send(request)
        say(sent="supply_request", record=request)
        return self.wait("answer to the supply request", lambda: self.answer_to(request))

    def answers_to(self, request):
        """The driver's updates that answer `request`: reserved or denied."""
        return [
            u
            for u in self.updates
            if u["type"] in ("reserved", "denied") and u.get("request_id") == request["request_id"]
        ]

    def answer_to(self, request):
        return next(iter(self.answers_to(request)), None)

    def reserve_and_start(self):
        """Reserved, authorised by the engine, plugged in: the session's ids and start."""
        answer = self.ask_supply(self.args.cp)
        if answer["type"] != "reserved":
            fail(f"not reserved: {answer}")
        session = answer["session_id"]
        self.wait("authorise", self.command("authorise", session_id=session))
        self.engine.authorised(session)
        self.wait("authorised", self.update("authorised", session_id=session))
        started = self.engine.supply_started(session, self.args.driver)
        self.wait("started", self.update("started", session_id=session))
        return session, started["started_at"]

    def progress(self, session, kwh):
        # An engine's own `eur` is ignored by the central: a floating-point figure, rounded
        # down, that is often a cent off the central's.
        eur = int(kwh * PRICE_EUR_KWH * 100) / 100
        self.engine.supply_progress(session, self.args.driver, kwh, eur)
        say(sent="supply_progress", kwh=kwh, eur=eur)
        return eur


def first(records, kind, fields):
    return next(
        (r for r in records if r["type"] == kind and all(r.get(k) == v for k, v in fields.items())),
        None,
    )


# --- The scenarios --------------------------------------------------------------------------


def whole_supply(run):
    """A driver, an engine and a monitor, all outside, through a whole supply."""
    run.start_monitor()
    run.start_engine()
    run.start_driver()
    run.wait_state("available")
    session, started_at = run.reserve_and_start()
    for kwh in (0.5, 1.0):
        run.progress(session, kwh)
        run.wait("progress", run.update("progress", session_id=session, kwh=kwh))
        run.pump_for(1.0)
    kwh = 1.5
    eur = int(kwh * PRICE_EUR_KWH * 100) / 100
    run.engine.supply_ended(session, run.args.driver, started_at, kwh, eur)
    say(sent="supply_ended", kwh=kwh, eur=eur)
    run.wait("ticket", run.update("ticket"))


def misbehaving_engine(run):
    """The monitor says the engine is broken; the engine carries on as if nothing were."""
    run.start_monitor()
    run.start_engine()
    run.start_driver()
    run.wait_state("available")
    session, started_at = run.reserve_and_start()
    run.progress(session, 0.4)
    run.wait("progress", run.update("progress", session_id=session, kwh=0.4))
    run.monitor.health = "KO#overheating, said by the outside monitor"
    say(sent="STATUS KO")
    # The central has taken the fault once it has answered a KO report.
    run.wait(
        "answer to a KO report",
        lambda: any(h.startswith("KO") for h, _ in run.monitor.replies_so_far()),
    )
    say(seen="link", replies=[[h, list(a)] for h, a in run.monitor.replies_so_far()])
    for kwh in (0.8, 1.2):
        run.progress(session, kwh)
        run.pump_for(1.0)
    run.engine.supply_ended(session, run.args.driver, started_at, 1.6, 0.56, "completed")
    say(sent="supply_ended", kwh=1.6, outcome="completed")
    run.wait("stop_supply", run.command("stop_supply", session_id=session))
    run.wait("ticket", run.update("ticket"))
    sessions = [s for s in run.api("/api/sessions") if s["id"] == session]
    say(seen="api.sessions", sessions=sessions)


def monitor_without_engine(run):
    """A monitor that reports OK while no engine speaks on the bus; then the engine."""
    run.start_monitor()
    run.wait("two status reports answered", lambda: len(run.monitor.replies_so_far()) >= 2)
    say(seen="link", replies=[[h, list(a)] for h, a in run.monitor.replies_so_far()])
    run.api_cp()
    run.start_driver()
    run.ask_supply(run.args.cp)
    run.start_engine()
    run.wait_state("available")


def bad_ids(run):
    """Ids that break the rule, on the bus and on the link."""
    run.start_dead_letters()
    # No key can prove an id that was never registered: these carry the proof of a
    # registered driver, so that only the id is wrong with them.
    key = evclient.bus_key(evclient.read_secret(run.args.driver_secret_file))
    bus = evclient.Bus(run.args.kafka)
    sent = []
    for bad in ("PX#D28", "D\n28", "D" * 1000):
        request = evclient.envelope(
            "supply_request", request_id=str(uuid.uuid4()), driver_id=bad, cp_id=run.args.cp
        )
        bus.send("driver.requests", bad, request, key_to_prove=key)
        say(sent="supply_request", key=bad, record=request)
        sent.append(request["id"])
    for message_id in sent:
        run.wait(f"dead letter of {message_id}", lambda: letter_of(run.letters, message_id))
    secret = evclient.read_secret(run.args.cp_secret_file)
    for bad in ("PX D28", "PX\nD28", "C" * 40):
        with evclient.connect(run.args.central) as sock:
            try:
                verdict, reply = evclient.ask(sock, f"AUTH#{bad}#{secret}")
            except (OSError, ValueError) as e:
                verdict, reply = "none", repr(e)
        say(seen="link", sent="AUTH", cp=bad, verdict=verdict, reply=reply)


def letter_of(letters, message_id):
    for letter in letters:
        try:
            if json.loads(letter["payload"]).get("id") == message_id:
                return letter
        except (ValueError, AttributeError):
            pass
    return None


def duplicates(run):
    """One supply request sent twice as is, then again under a new message id."""
    run.start_monitor()
    run.start_engine()
    run.start_driver()
    run.wait_state("available")
    run.start_dead_letters()
    request = run.driver.supply_request(run.args.cp)
    raw = run.driver.send(request)
    say(sent="supply_request", record=request)
    answer = run.wait("answer to the supply request", lambda: run.answer_to(request))
    if answer["type"] == "reserved":
        session = answer["session_id"]
        run.wait("authorise", run.command("authorise", session_id=session))
        run.engine.authorised(session)
    # The very same record: same value, same proof.
    run.driver.bus.send("driver.requests", run.driver.id, raw, key_to_prove=run.driver.key)
    say(sent="copy", record=request)
    run.wait("dead letter of the copy", lambda: letter_of(run.letters, request["id"]))
    again = dict(request, id=str(uuid.uuid4()), ts=evclient.now_rfc3339())
    run.driver.send(again)
    say(sent="supply_request", record=again)
    # Answers come in the order of the requests, one partition per driver: the copy's
    # answer, had there been one, would have come before the second.
    run.wait("a second answer", lambda: len(run.answers_to(request)) >= 2)
    sessions = [s for s in run.api("/api/sessions") if s["driver_id"] == run.args.driver]
    say(seen="api.sessions", sessions=sessions)


def any_cp(run):
    """`cp_id: ""` asks for any CP."""
    run.start_monitor()
    run.start_engine()
    run.start_driver()
    run.wait_state("available")
    run.ask_supply("")


SCENARIOS = {
    "whole-supply": whole_supply,
    "misbehaving-engine": misbehaving_engine,
    "monitor-without-engine": monitor_without_engine,
    "bad-ids": bad_ids,
    "duplicates": duplicates,
    "any-cp": any_cp,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--kafka", required=True, help="bootstrap HOST:PORT")
    parser.add_argument("--central", required=True, help="the central's monitor port HOST:PORT")
    parser.add_argument("--http", required=True, help="the central's API, http://HOST:PORT")
    parser.add_argument("--token", required=True, help="an operator's API token")
    parser.add_argument("--cp", required=True)
    parser.add_argument("--cp-secret-file", required=True)
    parser.add_argument("--driver", required=True)
    parser.add_argument("--driver-secret-file", required=True)
    parser.add_argument(
        "--heartbeat", type=float, default=2.0, help="seconds between hellos (PROTOCOL.md: 2)"
    )
    args = parser.parse_args()
    SCENARIOS[args.scenario](Run(args))
    say(done=args.scenario)


if __name__ == "__main__":
    main()
