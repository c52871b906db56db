"""The KEMI floor: tests/bench/native.cfg's routing written in KEMI Python, line for line — the same Kamailio calls
in the same order, no policy, no state of its own. Loaded by native.cfg when it is started with `-A KEMI_FLOOR`
(tests/bench/run.py native_node(kemi=True)); `make bench ARGS=--profile` measures it next to the native cfg and the
node (docs/benchmarks.md §11): what running the routing in Python costs by itself, before any of the node's behaviour.

Keep it a translation: a change to native.cfg's routes is made here too.
"""

import time

import KSR

MANAGE = "replace-origin replace-session-connection ICE=remove RTP/AVP"


class Floor:
    def __init__(self):
        self.bucket = 0

    def child_init(self, rank):
        return 0

    def ksr_request_route(self, msg):
        self.bucket = bucket = int(time.time()) // 10
        KSR.pv.gete(f"$shtinc(edge=>r:$si:{bucket % 64})")
        if KSR.sanity.sanity_check_defaults() < 0:
            return 1
        if KSR.maxfwd.process_maxfwd(10) < 0:
            KSR.sl.sl_send_reply(483, "Too Many Hops")
            return 1
        KSR.force_rport()
        if KSR.nathelper.nat_uac_test(19) > 0:
            KSR.setflag(5)
            if KSR.is_method("REGISTER") > 0:
                KSR.nathelper.fix_nated_register()
            elif KSR.is_method("INVITE") > 0 and KSR.siputils.has_totag() < 0:
                KSR.nathelper.set_contact_alias()
        if KSR.is_method("CANCEL") > 0:
            if KSR.tm.t_check_trans() > 0:
                KSR.rtpengine.rtpengine_manage0()
                KSR.tm.t_relay()
            return 1
        if KSR.siputils.has_totag() > 0:
            if KSR.rr.loose_route() > 0:
                KSR.nathelper.handle_ruri_alias()
                if KSR.is_method("BYE") > 0 or KSR.textops.has_body_type("application/sdp") > 0:
                    KSR.rtpengine.rtpengine_manage(MANAGE)
                if KSR.is_method("INVITE") > 0:
                    KSR.tm.t_on_reply("ksr_manage_reply")
                if KSR.tm.t_relay() < 0:
                    KSR.sl.sl_reply_error()
                return 1
            if KSR.is_method("ACK") > 0 and KSR.tm.t_check_trans() > 0:
                KSR.tm.t_relay()
            return 1
        if KSR.is_method("ACK") < 0:
            if KSR.tmx.t_precheck_trans() > 0:
                KSR.tm.t_check_trans()
                return 1
            KSR.tm.t_check_trans()
        if KSR.is_method("REGISTER") > 0:
            if not self.auth_check("$td", 1):
                return 1
            self.authenticated()
            KSR.auth.consume_credentials()
            if KSR.isflagset(5) > 0:
                KSR.setbflag(6)
            if KSR.registrar.save("location", 0) < 0:
                KSR.sl.sl_reply_error()
            return 1
        if KSR.is_method("INVITE") > 0:
            if not self.auth_check("$fd", 0):
                return 1
            self.authenticated()
            KSR.auth.consume_credentials()
            if KSR.registrar.lookup("location") < 0:
                KSR.sl.sl_send_reply(480, "Temporarily Unavailable")
                return 1
            KSR.rr.record_route()
            KSR.dialog.dlg_manage()
            KSR.dialog.dlg_set_property("ka-src")
            KSR.dialog.dlg_set_property("ka-dst")
            KSR.pv.sets("$dlg_var(cdr)", KSR.pv.gete("$_s($fU $rU $si)"))
            KSR.rtpengine.rtpengine_manage(MANAGE)
            KSR.tm.t_on_reply("ksr_manage_reply")
            KSR.tm.t_on_failure("ksr_manage_failure")
            if KSR.tm.t_relay() < 0:
                KSR.sl.sl_reply_error()
            return 1
        if KSR.is_method("ACK") > 0:
            return 1
        KSR.sl.sl_send_reply(405, "Method Not Allowed")
        return 1

    def ksr_manage_reply(self, msg):
        if KSR.isbflagset(6) > 0 or KSR.nathelper.nat_uac_test(1) > 0:
            KSR.nathelper.set_contact_alias()
        if KSR.textops.has_body_type("application/sdp") > 0:
            KSR.rtpengine.rtpengine_manage(MANAGE)
        return 1

    def ksr_manage_failure(self, msg):
        KSR.rtpengine.rtpengine_delete0()
        return 1

    def auth_check(self, realm_pv, checks):
        """`$au == $null || !pv_auth_check(realm, $sht(ha1=>$au@realm), ...)`: then counted and challenged. KEMI's
        pv_auth_check takes values, not variables: the user and realm are read in one crossing, the HA1 in one more."""
        user, _, realm = KSR.pv.gete(f"$_s($au@{realm_pv})").rpartition("@")
        if not user or KSR.auth.pv_auth_check(realm, KSR.htable.sht_get("ha1", f"{user}@{realm}") or "", 1, checks) < 0:
            self.unauthenticated()
            KSR.auth.auth_challenge(realm, 1)
            return False
        return True

    def unauthenticated(self):
        KSR.pv.gete(f"$shtinc(edge=>u:$si:{self.bucket})")

    def authenticated(self):
        KSR.pv.gete(f"$shtdec(edge=>u:$si:{self.bucket})")

    def ksr_dialog_event(self, msg, evname):
        if evname == "dialog:start":
            KSR.pv.sets("$dlg_var(answered)", str(int(time.time())))
        elif evname == "dialog:end":
            KSR.notice(KSR.pv.gete("$_s(CDR $dlg(callid) $dlg_var(cdr) $dlg_var(answered) $TS)") + "\n")
        return 1

    def ksr_xhttp_event(self, msg):
        KSR.jsonrpcs.dispatch()
        return 1


def mod_init():
    return Floor()
