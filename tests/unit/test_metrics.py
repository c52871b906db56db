"""The pure parts of the metrics: Kamailio's statistics lines, process roles, RTPengine's per-call scores onto the
CDR, post-dial delay, and collectors that never raise when their source fails."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from controlplane.metrics import Metrics
from controlplane.metrics.kamailio import KamailioCollector, parse_statistics, process_role
from controlplane.metrics.rtpengine import RtpengineCollector
from kemi.policy.callstate import CallRecord, CallState
from kemi.policy.cdr import media_scores, record


def test_statistics_lines_become_numbers_and_junk_is_skipped():
    st = parse_statistics(["core:rcv_requests_invite = 12", "shmem:free_size = 130185464", "garbage", "x:y = not-a-number"])
    assert st == {"core:rcv_requests_invite": 12.0, "shmem:free_size": 130185464.0}


def test_process_roles_are_bounded_labels():
    assert process_role("udp receiver child=1 sock=127.0.0.1:5060") == "udp_receiver"
    assert process_role("tcp receiver (generic) child=0") == "tcp_receiver"
    assert process_role("RTIMER EXEC child=0 timer=acdq") == "rtimer"
    assert process_role("main process - attendant") == "main_process_attendant"
    assert process_role("") == "other"


def test_rtpengine_scores_become_cdr_fields_in_base_units_of_the_cdr():
    assert media_scores({"mos": "4.2", "jitter": "10", "loss": "1", "rtt": "80056"}) == {"mos": 4.2, "jitter_ms": 10.0, "loss_pct": 1.0,
                                                                                        "rtt_ms": 80.056}
    assert media_scores({"mos": "", "jitter": "", "loss": "", "rtt": ""}) == {}  # no RTCP, no score
    assert media_scores({"mos": "0", "jitter": "3"}) == {}  # not a MOS: nothing recorded rather than nonsense
    assert media_scores({"mos": "4.4", "jitter": "x"}) == {"mos": 4.4}


def test_post_dial_delay_ends_at_the_first_ring_or_the_answer():
    ctx = CallState(CallRecord("c1", "call-1", 100.0))
    assert record(ctx, code=200, reason="OK", end_ts=130.0, answer_ts=105.0, ring_ts=100.8)["pdd_s"] == 0.8
    assert record(ctx, code=200, reason="OK", end_ts=130.0, answer_ts=101.5)["pdd_s"] == 1.5
    assert "pdd_s" not in record(ctx, code=486, reason="Busy Here", end_ts=100.2)  # never rang, never answered


class Dead:
    def call(self, *a):
        raise RuntimeError("connection refused")

    def statistics(self):
        raise OSError("timed out")


def test_collectors_of_a_dead_kamailio_and_rtpengine_report_up_0_and_the_scrape_succeeds():
    r = CollectorRegistry()
    r.register(KamailioCollector(Dead()))
    r.register(RtpengineCollector(Dead()))
    text = generate_latest(r).decode()
    assert "callmanager_kamailio_up 0.0" in text and "callmanager_rtpengine_up 0.0" in text


def test_calls_are_counted_by_tenant_and_disposition_with_their_quality():
    m = Metrics()
    m.calls_stored([
        {"tenant_id": 3, "disposition": "answered", "start_time": 1, "answer_time": 2, "duration_s": 61.0, "pdd_s": 0.4, "mos": 4.1,
         "jitter_ms": 12.0, "loss_pct": 2.0, "rtt_ms": 80.0},
        {"tenant_id": 3, "disposition": "busy", "start_time": 1, "answer_time": None, "duration_s": 0.0},
    ])
    get = m.registry.get_sample_value
    assert get("callmanager_calls_total", {"tenant": "3", "disposition": "answered"}) == 1
    assert get("callmanager_calls_total", {"tenant": "3", "disposition": "busy"}) == 1
    assert get("callmanager_call_duration_seconds_sum", {"tenant": "3"}) == 61.0
    assert get("callmanager_call_duration_seconds_count", {"tenant": "3"}) == 1
    assert get("callmanager_call_post_dial_delay_seconds_count", {"tenant": "3"}) == 1
    assert get("callmanager_media_mos_sum") == 4.1
    assert get("callmanager_media_packet_loss_ratio_sum") == 0.02 and get("callmanager_media_jitter_seconds_sum") == 0.012
    assert get("callmanager_media_round_trip_seconds_sum") == 0.08
