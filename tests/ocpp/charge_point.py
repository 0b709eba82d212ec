"""An OCPP 1.6J charge point built on the `ocpp` package from PyPI (not written here),
driven by tests/ocpp.rs against the real gateway. Each scenario prints what it saw as JSON
lines; every CALL the gateway sends is validated against the official OCPP 1.6 JSON schemas
the package ships, and each answer to our CALLs is validated by the package itself."""

import argparse
import asyncio
import json
import ssl
import sys
from datetime import datetime, timezone

import websockets
from ocpp.messages import Call, CallError, MessageType, unpack, validate_payload
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action


def emit(**line):
    print(json.dumps(line), flush=True)


def now():
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class Outside(ChargePoint):
    """Accepts what the network asks and tells the scenario, through queues."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = {name: asyncio.Queue() for name in ("start", "stop", "availability", "trigger")}

    async def route_message(self, raw):
        msg = unpack(raw)
        if msg.message_type_id == MessageType.Call:
            try:
                await validate_payload(msg, "1.6")
                emit(seen="call", action=msg.action, payload=msg.payload)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                emit(seen="invalid", action=msg.action, error=str(e), raw=raw)
        elif msg.message_type_id == MessageType.CallError:
            emit(seen="callerror", id=msg.unique_id, code=msg.error_code, description=msg.error_description)
        await super().route_message(raw)

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag, connector_id=None, **_):
        await self.asked["start"].put(id_tag)
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id, **_):
        await self.asked["stop"].put(transaction_id)
        return call_result.RemoteStopTransaction(status="Accepted")

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id, type, **_):
        await self.asked["availability"].put(type)
        return call_result.ChangeAvailability(status="Accepted")

    @on(Action.trigger_message)
    async def on_trigger(self, requested_message, **_):
        await self.asked["trigger"].put(requested_message)
        return call_result.TriggerMessage(status="Accepted")

    configuration = {"HeartbeatInterval": "60", "MeterValueSampleInterval": "10"}

    @on(Action.get_configuration)
    async def on_get_configuration(self, key=None, **_):
        wanted = key or list(self.configuration)
        known = [{"key": k, "readonly": False, "value": self.configuration[k]} for k in wanted if k in self.configuration]
        unknown = [k for k in wanted if k not in self.configuration]
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    @on(Action.change_configuration)
    async def on_change_configuration(self, key, value, **_):
        if key not in self.configuration:
            return call_result.ChangeConfiguration(status="NotSupported")
        self.configuration[key] = value
        emit(seen="configured", key=key, value=value)
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.reset)
    async def on_reset(self, type, **_):
        emit(seen="reset", type=type)
        return call_result.Reset(status="Accepted")


async def connect(args, key=None, subprotocols=("ocpp1.6",)):
    key = key if key is not None else open(args.key_file).read().strip()
    tls = {}
    scheme = "ws"
    if args.ca:
        # Security profile 2: Basic authentication inside TLS, the gateway's certificate checked.
        tls = {"ssl": ssl.create_default_context(cafile=args.ca)}
        scheme = "wss"
    uri = f"{scheme}://{args.cp}:{key}@{args.gateway}/ocpp/{args.cp}"
    ws = await websockets.connect(uri, subprotocols=list(subprotocols), open_timeout=30, **tls)
    cp = Outside(args.cp, ws)
    task = asyncio.create_task(cp.start())
    return cp, ws, task


async def boot(cp, status="Available"):
    booted = await cp.call(call.BootNotification(charge_point_model="Outside-1", charge_point_vendor="PyPI ocpp"))
    emit(seen="boot", status=booted.status, interval=booted.interval)
    await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status=status))
    emit(seen="ready")


async def next_asked(cp, what, timeout=60):
    return await asyncio.wait_for(cp.asked[what].get(), timeout)


def meter(transaction_id, wh):
    sample = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return call.MeterValues(connector_id=1, transaction_id=transaction_id,
                            meter_value=[{"timestamp": now(), "sampledValue": [sample]}])


async def supply(args):
    cp, ws, _ = await connect(args)
    await boot(cp)
    emit(seen="trigger", message=await next_asked(cp, "trigger"))
    id_tag = await next_asked(cp, "start")
    emit(seen="remote_start", id_tag=id_tag)
    authorized = await cp.call(call.Authorize(id_tag=id_tag))
    emit(seen="authorized", status=authorized.id_tag_info["status"])
    start = call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=1000, timestamp=now())
    started = await cp.call(start)
    emit(seen="started", transaction_id=started.transaction_id, status=started.id_tag_info["status"])
    again = await cp.call(start)
    emit(seen="started_again", transaction_id=again.transaction_id)
    await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Charging"))
    tid = started.transaction_id
    for wh in (1250, 1900, 2500):
        await cp.call(meter(tid, wh))
    emit(seen="metered")
    stopped_id = await next_asked(cp, "stop")
    emit(seen="remote_stop", transaction_id=stopped_id)
    stop = call.StopTransaction(meter_stop=2500, timestamp=now(), transaction_id=tid, reason="Remote", id_tag=id_tag)
    answer = await cp.call(stop)
    emit(seen="stopped", answer=answer.id_tag_info)
    again = await cp.call(stop)
    emit(seen="stopped_again", answer=again.id_tag_info)
    unknown = await cp.call(call.StopTransaction(meter_stop=10, timestamp=now(), transaction_id=987654))
    emit(seen="stopped_unknown", answer=unknown.id_tag_info)
    await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    # Frames no charge point should send: each gets its CALLERROR, and the link stays up.
    for raw in ("not json", '[2,"bad-1","StatusNotification",{"connectorId":1}]',
                '[2,"bad-2","StatusNotification",{"connectorId":"one","errorCode":"NoError","status":"Available"}]',
                '[2,"bad-3","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Sleeping"}]',
                '[2,"bad-4","NoSuchAction",{}]',
                '[2,"bad-5","DataTransfer",{"vendorId":"com.example"}]'):
        await ws.send(raw)
    await asyncio.sleep(0)
    heartbeat = await cp.call(call.Heartbeat())
    emit(seen="heartbeat", current_time=heartbeat.current_time)
    await ws.close()
    emit(seen="done")


async def fault_and_stop(args):
    cp, ws, _ = await connect(args)
    await boot(cp)
    emit(seen="waiting")
    # The test tells us what to do next on standard input, one word a line.
    loop = asyncio.get_running_loop()
    while True:
        word = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if word == "fault":
            await cp.call(call.StatusNotification(connector_id=1, error_code="GroundFailure", status="Faulted", info="test"))
            emit(seen="faulted")
        elif word == "clear":
            await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
            emit(seen="cleared")
        elif word == "second":
            await cp.call(call.StatusNotification(connector_id=2, error_code="NoError", status="Available"))
            emit(seen="second")
        elif word == "fault2":
            await cp.call(call.StatusNotification(connector_id=2, error_code="OverVoltage", status="Faulted"))
            emit(seen="faulted2")
        elif word == "availability":
            emit(seen="availability", type=await next_asked(cp, "availability"))
        elif word in ("", "quit"):
            emit(seen="done")
            return


async def offline(args):
    """A transaction that outlives its WebSocket: started on one gateway, metered, then
    offline; its queued messages replayed to another gateway, the start repeated."""
    cp, ws, task = await connect(args)
    await boot(cp)
    id_tag = await next_asked(cp, "start")
    start = call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=1000, timestamp=now())
    started = await cp.call(start)
    tid = started.transaction_id
    emit(seen="started", transaction_id=tid)
    await cp.call(meter(tid, 1500))
    emit(seen="metered")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    task.cancel()
    await ws.close()
    emit(seen="offline")
    # Offline, the charge point queues what happens: more energy, then the end.
    queued = [meter(tid, 2200),
              call.StopTransaction(meter_stop=3000, timestamp=now(), transaction_id=tid, reason="EVDisconnected")]
    await loop.run_in_executor(None, sys.stdin.readline)
    args.gateway = args.gateway2
    cp, ws, task = await connect(args)
    # Back, without a reboot: the start again (its answer lost, say), then the queue.
    again = await cp.call(start)
    emit(seen="started_again", transaction_id=again.transaction_id, status=again.id_tag_info["status"])
    for message in queued:
        await cp.call(message)
    emit(seen="replayed")
    await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    await loop.run_in_executor(None, sys.stdin.readline)
    emit(seen="done")


async def local(args):
    """Tags presented at the charge point itself: an unknown one, then a driver's."""
    cp, ws, _ = await connect(args)
    await boot(cp)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    unknown = await cp.call(call.Authorize(id_tag="NOBODY"))
    emit(seen="unknown_tag", status=unknown.id_tag_info["status"])
    authorized = await cp.call(call.Authorize(id_tag=args.tag))
    emit(seen="authorized", status=authorized.id_tag_info["status"])
    started = await cp.call(call.StartTransaction(connector_id=1, id_tag=args.tag, meter_start=500, timestamp=now()))
    tid = started.transaction_id
    emit(seen="started", transaction_id=tid, status=started.id_tag_info["status"])
    await cp.call(meter(tid, 900))
    await cp.call(call.StopTransaction(meter_stop=1300, timestamp=now(), transaction_id=tid, reason="Local", id_tag=args.tag))
    emit(seen="stopped")
    await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    # Started on its own, no Authorize first (as a charge point offline does, from its
    # cache of tags): asked of the central all the same.
    unasked = await cp.call(call.StartTransaction(connector_id=1, id_tag=args.tag, meter_start=2000, timestamp=now()))
    emit(seen="started_unasked", transaction_id=unasked.transaction_id, status=unasked.id_tag_info["status"])
    await cp.call(call.StopTransaction(meter_stop=2600, timestamp=now(), transaction_id=unasked.transaction_id, reason="Local"))
    emit(seen="stopped_unasked")
    await cp.call(call.StatusNotification(connector_id=1, error_code="NoError", status="Available"))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await ws.close()
    emit(seen="done")


async def tls_boot(args):
    """Security profile 2: boots over wss://; the same key over plain ws:// finds nothing."""
    cp, ws, _ = await connect(args)
    await boot(cp)
    await ws.close()
    try:
        args.ca = None
        await connect(args)
        emit(seen="plain", refused=False)
    except Exception as e:  # noqa: BLE001 - any refusal will do
        emit(seen="plain", refused=True, error=type(e).__name__)
    emit(seen="done")


async def refused_once(args):
    """One connection with the right key: its HTTP status (101 when let in)."""
    try:
        cp, ws, _ = await connect(args)
        emit(seen="connect", status=101)
        await ws.close()
    except websockets.exceptions.InvalidStatus as e:
        emit(seen="connect", status=e.response.status_code, body=e.response.body.decode(errors="replace"))
    emit(seen="done")


async def flood(args):
    """Hundreds of malformed frames, then a Heartbeat: each answered, the link up."""
    cp, ws, _ = await connect(args)
    await boot(cp)
    for n in range(500):
        await ws.send(f'[2,"flood-{n}","StatusNotification",{{"connectorId":"x"}}]')
    heartbeat = await cp.call(call.Heartbeat())
    emit(seen="heartbeat", current_time=heartbeat.current_time)
    await ws.close()
    emit(seen="done")


async def refused(args):
    """A wrong key, then no subprotocol: both turned away."""
    try:
        await connect(args, key="evccp_" + "0" * 64)
        emit(seen="wrong_key", refused=False)
    except websockets.exceptions.InvalidStatus as e:
        emit(seen="wrong_key", refused=True, status=e.response.status_code)
    try:
        ws = await websockets.connect(f"ws://{args.cp}:{open(args.key_file).read().strip()}@{args.gateway}/ocpp/{args.cp}", open_timeout=30)
        try:
            await asyncio.wait_for(ws.recv(), 30)
            emit(seen="no_subprotocol", closed=False)
        except websockets.exceptions.ConnectionClosed as e:
            emit(seen="no_subprotocol", closed=True, code=e.rcvd.code if e.rcvd else None)
    except websockets.exceptions.InvalidStatus as e:
        emit(seen="no_subprotocol", closed=True, status=e.response.status_code)
    emit(seen="done")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=["supply", "fault_and_stop", "offline", "local", "tls_boot", "refused_once", "flood", "refused"])
    parser.add_argument("--tag")
    parser.add_argument("--ca", help="the gateway's CA: connect over wss://")
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--gateway2")
    parser.add_argument("--cp", required=True)
    parser.add_argument("--key-file", required=True)
    args = parser.parse_args()
    scenario = {"supply": supply, "fault_and_stop": fault_and_stop, "offline": offline,
                "local": local, "tls_boot": tls_boot,
                "refused_once": refused_once, "flood": flood, "refused": refused}[args.scenario]
    try:
        asyncio.run(scenario(args))
    except Exception as e:  # noqa: BLE001
        emit(failed=repr(e))
        sys.exit(1)


if __name__ == "__main__":
    main()
