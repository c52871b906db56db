"""An answered call's record is made by the control plane from what the dialog's end spooled (kemi.policy.cdr.end_line
and ended_record): the same record the dialog's end used to make in Kamailio's worker, the call's state not decoded
there. Round trips against `cdr.record` called directly, the shell's dialog end on the fake KSR, and the ingestion."""
import json
import os
import tempfile

import pytest
from sqlmodel import Session, select

from tests.harness.fake_ksr import shared

KSR = shared()
os.environ.setdefault("CALLMANAGER_VAR", tempfile.mkdtemp(prefix="cm-shell-test-"))

from controlplane.db.models import Cdr  # noqa: E402
from controlplane.db.session import make_engine, migrate  # noqa: E402
from controlplane.services.cdr_ingest import CdrIngestor  # noqa: E402
from kemi import contract as shm  # noqa: E402
from kemi.policy import cdr  # noqa: E402
from kemi.policy.callstate import CallRecord, CallState, FeatureUse, FraudMark  # noqa: E402
from kemi.shell import calls, routes  # noqa: E402
from kemi.shell.cdr_spool import CdrSpool  # noqa: E402

PLAIN = CallState(CallRecord("00000000-0000-0000-0000-000000000001", "c1", 1000.25, 1, "201", 1, "202", 2),
                  ("caller authenticated as sip:alice@acme.example", "dialled 202: Bob \"B\" \u00fc\\n"))
STATES = {
    "plain": PLAIN,
    "call out under the fraud limits": PLAIN._replace(fraud=FraudMark(1, "mobile", 0.19)),
    "feature code": PLAIN._replace(feature=FeatureUse(1, "dnd_on")),
    "emergency": PLAIN._replace(emergency=True),
}
QUALITY = {"mos": "4.2", "jitter": "3", "loss": "0", "rtt": "21000"}


@pytest.mark.parametrize("name", STATES)
@pytest.mark.parametrize("answer, quality", [("1003.5/1001.75", QUALITY), ("1003.5/", None), ("", None)])
def test_the_spooled_end_makes_the_record_the_worker_used_to_make(name, answer, quality):
    state = STATES[name]
    line = cdr.end_line(state.to_json(), "answered; dialog ended", 1063.5, answer, quality)
    answered, _, rang = answer.partition("/")
    expected = cdr.record(state.traced("answered; dialog ended"), code=200, reason="OK", end_ts=1063.5,
                          answer_ts=float(answered) if answered else state.record.start_ts,
                          ring_ts=float(rang) if rang else None, quality=quality)
    assert "\n" not in line
    assert cdr.ended_record(json.loads(line)) == expected


@pytest.mark.parametrize("damaged", ["", "{\"v\": 2", "[1, 2]", "{\"a\": \"x\n\"}", "not json"])
def test_a_damaged_state_makes_no_line(damaged):
    assert cdr.end_line(damaged, "answered", 1.0, "", None) is None


def test_an_end_line_is_ingested_as_the_calls_record_and_a_broken_one_set_aside(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    spool = CdrSpool(str(tmp_path / "spool"))
    state = STATES["call out under the fraud limits"]
    spool.put_line(cdr.end_line(state.to_json(), "answered; dialog ended", 1063.5, "1003.5/1001.75", QUALITY))
    spool.put_line('{"type":"call_end","why":"x","end_ts":5,"answer":"","quality":null,"state":{"v":2}}')
    spool.close_segment()
    ingestor = CdrIngestor(engine, tmp_path / "spool")
    assert ingestor.run_once() == 1
    with Session(engine) as s:
        [row] = s.exec(select(Cdr)).all()
    assert (row.id, row.call_id, row.caller, row.callee, row.disposition, row.sip_code) == (
        state.record.id, "c1", "201", "202", "answered", 200)
    assert row.duration_s == 60.0 and row.cost == pytest.approx(0.19) and row.dest_class == "mobile"
    assert row.mos == 4.2 and row.rtt_ms == 21.0 and row.pdd_s == 1.5
    assert json.loads(row.trace)[-1] == "answered; dialog ended"
    assert len(os.listdir(ingestor.bad_dir)) == 1  # the broken line, kept aside
    engine.dispose()


class Spool:
    def __init__(self):
        self.lines = []

    def put_line(self, line):
        self.lines.append(line)
        return "spool"


@pytest.fixture
def ending(monkeypatch):
    ksr = shared()
    spool = Spool()
    monkeypatch.setattr(calls, "SPOOL", spool)
    ksr.pv_values.update({"$dlg(callid)": "c1", "$dlg(from_tag)": "tag-a", "$dlg(h_entry)": 3, "$dlg(h_id)": 4,
                          f"$dlg_var({shm.DLG_ANSWER})": "1003.5/1001.75"})
    return ksr, spool


def test_the_dialog_end_spools_the_state_as_the_dialog_kept_it(ending):
    ksr, spool = ending
    state = STATES["plain"]
    ksr.pv_values[f"$dlg_var({shm.DLG_CALL})"] = state.to_json()
    routes.dialog_event("dialog:end")
    [line] = spool.lines
    doc = json.loads(line)
    assert doc["type"] == "call_end" and doc["answer"] == "1003.5/1001.75" and doc["why"] == "answered; dialog ended"
    assert CallState.from_doc(doc["state"]) == state
    assert ("rtpengine.rtpengine_delete", ("call-id=c1 from-tag=tag-a",)) in ksr.calls
    routes.dialog_event("dialog:end")  # the end of the same dialog again (another worker's event): accounted once
    assert len(spool.lines) == 1


def test_a_call_out_is_taken_off_the_fraud_counters_at_its_end(ending):
    ksr, spool = ending
    ksr.pv_values[f"$dlg_var({shm.DLG_CALL})"] = STATES["call out under the fraud limits"].to_json()
    ksr.pv_values[f"$dlg_var({shm.DLG_FRAUD})"] = "1:7:mobile:0.19"
    ksr.htables[shm.FRAUD_CALLS.name] = {"u7": 1, "t1": 3}
    routes.dialog_event("dialog:end")
    assert ksr.htables[shm.FRAUD_CALLS.name] == {"u7": 0, "t1": 2} and len(spool.lines) == 1


def test_a_dialog_without_a_readable_state_frees_its_media_and_says_so(ending):
    ksr, spool = ending
    ksr.pv_values[f"$dlg_var({shm.DLG_CALL})"] = "{damaged"
    routes.dialog_event("dialog:end")
    assert spool.lines == [] and "rtpengine.rtpengine_delete" in ksr.names()
    assert any(name == "warn" and "call state unreadable" in args[0] for name, args in ksr.calls)


@pytest.fixture
def pair(ending, monkeypatch):
    """This node is node 1 of a pair sharing a virtual address: it makes dialogs 1, 3, 5...; 4 is its peer's copy."""
    import dataclasses

    from kemi.shell import vip

    held = {"198.18.1.10": False}
    monkeypatch.setattr(calls, "SETTINGS", dataclasses.replace(calls.SETTINGS, node_index=1, node_count=2,
                                                               sip_vip="198.18.1.10"))
    monkeypatch.setattr(vip, "held", lambda address: held.get(address, False))
    ksr, spool = ending
    ksr.pv_values[f"$dlg_var({shm.DLG_CALL})"] = STATES["plain"].to_json()
    return ksr, spool, held


def test_a_peers_copy_timing_out_while_the_peer_serves_the_call_is_left_to_the_peer(pair):
    ksr, spool, held = pair
    routes.dialog_event("dialog:timeout")
    assert spool.lines == [] and "rtpengine.rtpengine_delete" not in ksr.names()


def test_a_peers_copy_timing_out_where_the_address_now_is_is_accounted_here(pair):
    ksr, spool, held = pair
    held["198.18.1.10"] = True  # the peer died; this node took the address and serves its calls
    routes.dialog_event("dialog:timeout")
    assert len(spool.lines) == 1 and "dialog ended by the node" in json.loads(spool.lines[0])["why"]


def test_an_own_dialog_timing_out_is_accounted_here_wherever_the_address_is(pair):
    ksr, spool, held = pair
    ksr.pv_values["$dlg(h_id)"] = 5
    routes.dialog_event("dialog:timeout")
    assert len(spool.lines) == 1


def test_a_peers_copy_ended_by_a_bye_through_this_node_is_accounted_with_the_dialogs_answer_time(pair):
    ksr, spool, held = pair
    del ksr.pv_values[f"$dlg_var({shm.DLG_ANSWER})"]  # set on the peer at the answer, after the copy was made
    ksr.pv_values["$dlg(start_ts)"] = 1003
    routes.dialog_event("dialog:end")
    [line] = spool.lines
    assert json.loads(line)["answer"] == "1003/"
    assert cdr.ended_record(json.loads(line))["answer_ts"] == 1003.0  # not the call's start (1000.25)
    assert "rtpengine.rtpengine_delete" in ksr.names()


def test_a_copys_end_takes_the_dialogs_confirmation_as_its_answer_time():
    assert cdr.end_answer("1003.5/1001.75", "1003") == "1003.5/1001.75"  # the node's own: as kept at the answer
    assert cdr.end_answer("", "1003") == "1003/"  # a peer's copy: when the dialog module confirmed it
    assert cdr.end_answer("", "0") == "" and cdr.end_answer("", "") == ""  # never confirmed: the call's start stands
