"""Call forwarding of a user (FWD-01..03, MOB-04, MOB-06): which rule fires, and where it leads.

Kinds: `unconditional` (before ringing), `busy`, `no_answer` (after `timeout_s` of ringing),
`unreachable` (no registered device, or every device fails or never rings: backup routing,
FWD-02), and the status-based `dnd` and `away` (while the user has that status). Each rule may be limited to internal
or external callers and to the inside or the
outside of a time plan. A rule's target is another user, a public number or a mailbox.
"""

from __future__ import annotations

from typing import NamedTuple

KINDS = ("unconditional", "busy", "no_answer", "unreachable", "dnd", "away")
CALLERS = ("all", "internal", "external", "vip", "non_vip")
MAX_CHAIN = 5  # users a call may be forwarded through before the chain is cut


class ForwardRule(NamedTuple):
    id: int
    kind: str
    target_user: int | None = None  # forward to this user ...
    target_number: str | None = None  # ... or to this public number (E.164)
    callers: str = "all"
    time_plan: int | None = None
    when: str = "in"  # the rule applies "in" or "outside" the time plan
    timeout_s: int = 20  # no_answer: how long the user's devices ring first
    present: str = "caller"  # forwarded out: present the caller (A) or the forwarding user (B)
    target_group: int | None = None  # hunt groups' own forwarding may lead to another group
    target_mailbox: int | None = None  # ... or to a mailbox (VM-01, kemi.policy.voicemail)
    target_ivr: int | None = None  # ... or into an IVR menu (a personal IVR, IVR-06)

    def describe(self) -> str:
        target = (
            f"user {self.target_user}"
            if self.target_user is not None
            else f"group {self.target_group}"
            if self.target_group is not None
            else f"mailbox {self.target_mailbox}"
            if self.target_mailbox is not None
            else f"IVR menu {self.target_ivr}"
            if self.target_ivr is not None
            else self.target_number
        )
        return f"rule {self.id} ({self.kind} -> {target})"


def applies(rule: ForwardRule, external_caller: bool, time_plans, now: float, vip: bool = False) -> tuple[bool, str]:
    """Does this rule apply to this caller at this time? With the reason, for the trace."""
    if rule.callers == "internal" and external_caller:
        return False, f"{rule.describe()} is for internal callers only"
    if rule.callers == "external" and not external_caller:
        return False, f"{rule.describe()} is for external callers only"
    if rule.callers == "vip" and not vip:
        return False, f"{rule.describe()} is for VIP callers only"
    if rule.callers == "non_vip" and vip:
        return False, f"{rule.describe()} is not for VIP callers: the VIP rings through"
    if rule.time_plan is not None:
        plan = time_plans.get(rule.time_plan)
        if plan is None:
            return False, f"{rule.describe()}: its time plan {rule.time_plan} no longer exists"
        inside = plan.active(now)
        if inside != (rule.when == "in"):
            return False, f"{rule.describe()} not now: {plan.why(now)}"
        return True, f"{rule.describe()} applies: {plan.why(now)}"
    return True, f"{rule.describe()} applies"


def first_applicable(
    rules, kind: str, external_caller: bool, time_plans, now: float, trace: list[str], vip: bool = False
) -> ForwardRule | None:
    for rule in rules:
        if rule.kind != kind:
            continue
        ok, why = applies(rule, external_caller, time_plans, now, vip)
        trace.append(why)
        if ok:
            return rule
    return None


def fallback_case(code: int, cancelled: bool, rang: bool) -> str | None:
    """Which forwarding a failed ringing phase leads to, by the final answer of the user's devices."""
    if cancelled:
        return None
    if code in (486, 600, 603):
        return "busy"
    if code == 408:
        return "no_answer" if rang else "unreachable"
    if code == 480 or code >= 500:
        return "unreachable"
    return None
