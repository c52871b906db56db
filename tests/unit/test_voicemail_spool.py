"""The voicemail spool reader survives any bytes: a description it cannot read goes to bad/ and holds up nothing."""

import json

from controlplane.services.voicemail import Store, VoicemailIngestor


def test_descriptions_that_are_not_messages_go_to_bad_and_nothing_else_happens(tmp_path):
    spool = tmp_path / "spool"
    (spool / "new").mkdir(parents=True)
    (spool / "actions").mkdir()
    ids = ["00000000-0000-0000-0000-00000000000%d" % i for i in range(4)]
    bad = {
        ids[0]: b"\xff\xfe not json",
        ids[1]: json.dumps({"id": ids[1], "mailbox_id": 1, "received_at": "nan"}).encode(),
        ids[2]: json.dumps({"id": ids[2], "mailbox_id": 1, "received_at": 1e300}).encode(),
        ids[3]: json.dumps({"id": "../../etc/passwd", "mailbox_id": "x"}).encode(),
    }
    for name, data in bad.items():
        (spool / "new" / f"{name}.json").write_bytes(data)
    (spool / "actions" / "1.json").write_bytes(b"[]")
    ing = VoicemailIngestor(engine=None, spool=spool, store=Store(tmp_path / "store"))  # never reaches a database
    assert ing._one(spool / "new" / f"{ids[0]}.json") == 0
    for name in ids[1:]:
        assert ing._one(spool / "new" / f"{name}.json") == 0
    assert ing.apply_actions() == 0
    assert not list((spool / "new").iterdir()) and not list((spool / "actions").iterdir())
    assert len(list((spool / "bad").glob("*.json"))) == 5


def test_mailboxes_are_named_from_anywhere_by_their_own_their_users_or_their_groups_extension():
    from controlplane.services.voicemail import box_numbers

    doc = {"extensions": [{"tenant_id": 1, "number": "201", "user_id": 7}, {"tenant_id": 1, "number": "299", "user_id": 7}],
           "groups": [{"id": 4, "extension": "600"}],
           "mailboxes": [{"id": 1, "tenant_id": 1, "user_id": 7, "extension": "801"}, {"id": 2, "tenant_id": 1, "group_id": 4},
                         {"id": 3, "tenant_id": 2}]}
    assert box_numbers(doc) == {"1": {"801": 1, "201": 1, "299": 1, "600": 2}}


def test_a_pin_changed_by_phone_arrives_only_as_a_hash_and_a_bad_one_changes_nothing(tmp_path):
    from datetime import datetime, timezone

    from sqlmodel import Session

    from controlplane.db.models import Mailbox, Tenant
    from controlplane.db.session import make_engine, migrate
    from kemi.policy.voicemail import hash_pin, pin_matches

    engine = make_engine(f"sqlite:///{tmp_path / 'cm.db'}")
    migrate(engine)
    with Session(engine) as s:
        tenant = Tenant(name="T", sip_domain="t.example")
        s.add(tenant)
        s.commit()
        box = Mailbox(tenant_id=tenant.id, name="box", pin_hash=hash_pin("2468"), pin_failures=2,
                      locked_until=datetime(2999, 1, 1, tzinfo=timezone.utc))
        s.add(box)
        s.commit()
        box_id = box.id
    spool = tmp_path / "spool"
    (spool / "actions").mkdir(parents=True)
    ing = VoicemailIngestor(engine=engine, spool=spool, store=Store(tmp_path / "store"))
    ing.on_change = ing.write_index  # as the control plane does: the media server's file of the mailbox follows

    def act(name: str, doc: dict) -> None:
        (spool / "actions" / f"{name}.json").write_text(json.dumps({"mailbox_id": box_id, **doc}))

    act("1", {"action": "pin", "pin_hash": "97531"})  # a PIN in clear (or anything else) is not a hash: ignored
    act("2", {"action": "pin"})
    assert ing.apply_actions() == 2
    with Session(engine) as s:
        assert pin_matches(s.get(Mailbox, box_id).pin_hash, "2468")
    act("3", {"action": "pin", "pin_hash": hash_pin("97531")})
    assert ing.apply_actions() == 1
    with Session(engine) as s:
        box = s.get(Mailbox, box_id)
        assert pin_matches(box.pin_hash, "97531") and not pin_matches(box.pin_hash, "2468")
        assert box.pin_failures == 0 and box.locked_until is None
    assert json.loads(Store(tmp_path / "store").box_file(box_id).read_text())["pin_hash"] == box.pin_hash
