"""`make prompts`: the shipped prompt sets (<language>/<prompt>.wav, 8 kHz 16-bit mono) made from the texts below with
espeak-ng (Debian's package; the voices are espeak-ng's own). Run again after changing a text; the WAV files are
committed, so a node needs neither espeak-ng nor this script."""

from __future__ import annotations

import audioop  # noqa: I001 - Python 3.11's own; the resampling to 8 kHz
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent

TEXTS = {
    "en": {
        "not_in_service": "The number you have dialled is not in service.",
        "incomplete": "The number you have dialled is incomplete. Please check the number and dial again.",
        "busy": "The person you are calling is busy. Please try again later.",
        "unavailable": "The person you are calling is not available at the moment. Please try again later.",
        "barred": "Calls to this destination are not permitted from your line.",
        "anonymous_rejected": "The person you are calling does not accept calls from withheld numbers.",
        "no_route": "Your call cannot be connected at the moment. Please try again later.",
        "limit_reached": "Your call cannot be connected: a call limit of your line has been reached.",
        "feature_rejected": "This service code cannot be used.",
        "fc_dnd_on": "Do not disturb is on.",
        "fc_dnd_off": "Do not disturb is off.",
        "fc_forward_on": "Your calls are now forwarded.",
        "fc_forward_off": "Call forwarding is off.",
        "fc_profile": "Your profile has been switched.",
        "fc_group_login": "You are logged in to the group.",
        "fc_group_logout": "You are logged out of the group.",
        "vm_unavailable": "The person you are calling is not available. Please leave a message after the tone.",
        "vm_busy": "The person you are calling is busy. Please leave a message after the tone.",
        "vm_enter_pin": "Please enter your PIN, followed by the hash key.",
        "vm_wrong_pin": "That PIN is not correct.",
        "vm_locked": "This mailbox cannot be opened now. Goodbye.",
        "vm_you_have": "You have",
        "vm_new_messages": "new messages.",
        "vm_no_messages": "There are no messages.",
        "vm_menu": (
            "To hear the message again, press 1. For the next message, press 2. To call back, press 3. "
            "To delete it, press 7. To save it, press 9. For your greetings and PIN, press 0. "
            "To hang up, press the hash key."
        ),
        "vm_main_menu": "For your greetings and PIN, press 0. To hang up, press the hash key.",
        "vm_greeting_choice": (
            "For the greeting callers hear when you are not available, press 1. "
            "For the one when you are busy, press 2. To change your PIN, press 5."
        ),
        "vm_new_pin": "Please enter your new PIN of four to ten digits, followed by the hash key.",
        "vm_repeat_pin": "Please enter the new PIN again, followed by the hash key.",
        "vm_pin_invalid": "That PIN cannot be used.",
        "vm_pin_mismatch": "The two PINs are not the same.",
        "vm_pin_changed": "Your PIN is changed.",
        "vm_no_callback": "This caller cannot be called back.",
        "vm_record_greeting": "Record your greeting after the tone. Press the hash key when you are done.",
        "vm_greeting_saved": "Your greeting is saved.",
        "vm_deleted": "Message deleted.",
        "vm_saved": "Message saved.",
        "vm_no_more": "There are no more messages.",
        "vm_goodbye": "Goodbye.",
        "vm_more_than_twenty": "more than twenty",
        "ivr_choose": "Please make your choice.",
        "vm_enter_box": "Please enter the mailbox number, followed by the hash key.",
        "vm_wrong_box": "There is no such mailbox.",
        "ivr_invalid": "That is not a valid choice.",
        "queue_welcome": "All our agents are busy at the moment. Please hold the line.",
        "queue_place": "You are caller number",
        "queue_wait_short": "Your expected waiting time is less than one minute.",
        "queue_wait_about": "Your expected waiting time is about",
        "queue_minutes": "minutes.",
        "pivr_intro": "The person you are calling cannot take your call at the moment.",
        "pivr_message": "To leave a message, press 1.",
        "pivr_mobile": "To reach them on their mobile, press 2.",
        "pivr_assistant": "To speak to their assistant, press 3.",
        "pivr_colleague": "To speak to a colleague, press 4.",
        "pivr_department": "To reach their department, press 5.",
        "pivr_switchboard": "For the switchboard, press 0.",
        **{
            f"n{i}": w
            for i, w in enumerate(
                "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
                "seventeen eighteen nineteen twenty".split()
            )
        },
    },
    "de": {
        "not_in_service": "Kein Anschluss unter dieser Nummer.",
        "incomplete": "Die gewählte Rufnummer ist unvollständig. Bitte prüfen Sie die Nummer und wählen Sie erneut.",
        "busy": "Der gewünschte Gesprächspartner ist zur Zeit besetzt. Bitte versuchen Sie es später noch einmal.",
        "unavailable": (
            "Der gewünschte Gesprächspartner ist zur Zeit nicht erreichbar. Bitte versuchen Sie es später noch einmal."
        ),
        "barred": "Anrufe zu diesem Ziel sind von Ihrem Anschluss aus nicht erlaubt.",
        "anonymous_rejected": "Der gewünschte Gesprächspartner nimmt keine Anrufe mit unterdrückter Rufnummer an.",
        "no_route": "Ihr Anruf kann zur Zeit nicht verbunden werden. Bitte versuchen Sie es später noch einmal.",
        "limit_reached": "Ihr Anruf kann nicht verbunden werden: eine Anrufgrenze Ihres Anschlusses ist erreicht.",
        "feature_rejected": "Dieser Dienstcode kann nicht verwendet werden.",
        "fc_dnd_on": "Bitte nicht stören ist eingeschaltet.",
        "fc_dnd_off": "Bitte nicht stören ist ausgeschaltet.",
        "fc_forward_on": "Ihre Anrufe werden jetzt umgeleitet.",
        "fc_forward_off": "Die Rufumleitung ist ausgeschaltet.",
        "fc_profile": "Ihr Profil wurde gewechselt.",
        "fc_group_login": "Sie sind in der Gruppe angemeldet.",
        "fc_group_logout": "Sie sind von der Gruppe abgemeldet.",
        "vm_unavailable": (
            "Der gewünschte Gesprächspartner ist zur Zeit nicht erreichbar. "
            "Bitte hinterlassen Sie eine Nachricht nach dem Signalton."
        ),
        "vm_busy": (
            "Der gewünschte Gesprächspartner ist zur Zeit besetzt. "
            "Bitte hinterlassen Sie eine Nachricht nach dem Signalton."
        ),
        "vm_enter_pin": "Bitte geben Sie Ihre PIN ein, gefolgt von der Rautetaste.",
        "vm_wrong_pin": "Diese PIN ist nicht richtig.",
        "vm_locked": "Diese Mailbox kann jetzt nicht geöffnet werden. Auf Wiederhören.",
        "vm_you_have": "Sie haben",
        "vm_new_messages": "neue Nachrichten.",
        "vm_no_messages": "Es sind keine Nachrichten vorhanden.",
        "vm_menu": (
            "Um die Nachricht noch einmal zu hören, drücken Sie die 1. Für die nächste Nachricht die 2. "
            "Zum Rückruf die 3. Zum Löschen die 7. Zum Speichern die 9. Für Ansagen und PIN die 0. "
            "Zum Auflegen die Rautetaste."
        ),
        "vm_main_menu": "Für Ansagen und PIN drücken Sie die 0. Zum Auflegen die Rautetaste.",
        "vm_greeting_choice": (
            "Für die Ansage, wenn Sie nicht erreichbar sind, drücken Sie die 1. Für die Ansage, wenn Sie besetzt sind, "
            "die 2. Um Ihre PIN zu ändern, die 5."
        ),
        "vm_new_pin": "Bitte geben Sie Ihre neue PIN mit vier bis zehn Ziffern ein, gefolgt von der Rautetaste.",
        "vm_repeat_pin": "Bitte geben Sie die neue PIN noch einmal ein, gefolgt von der Rautetaste.",
        "vm_pin_invalid": "Diese PIN kann nicht verwendet werden.",
        "vm_pin_mismatch": "Die beiden PINs stimmen nicht überein.",
        "vm_pin_changed": "Ihre PIN ist geändert.",
        "vm_no_callback": "Dieser Anrufer kann nicht zurückgerufen werden.",
        "vm_record_greeting": (
            "Sprechen Sie Ihre Ansage nach dem Signalton. Drücken Sie die Rautetaste, wenn Sie fertig sind."
        ),
        "vm_greeting_saved": "Ihre Ansage ist gespeichert.",
        "vm_deleted": "Nachricht gelöscht.",
        "vm_saved": "Nachricht gespeichert.",
        "vm_no_more": "Es sind keine weiteren Nachrichten vorhanden.",
        "vm_goodbye": "Auf Wiederhören.",
        "ivr_choose": "Bitte treffen Sie Ihre Wahl.",
        "vm_enter_box": "Bitte geben Sie die Nummer der Mailbox ein, gefolgt von der Raute-Taste.",
        "vm_wrong_box": "Diese Mailbox gibt es nicht.",
        "ivr_invalid": "Diese Auswahl ist leider nicht möglich.",
        "queue_welcome": "Alle Plätze sind zur Zeit belegt. Bitte bleiben Sie am Apparat.",
        "queue_place": "Sie sind Anrufer Nummer",
        "queue_wait_short": "Ihre voraussichtliche Wartezeit beträgt weniger als eine Minute.",
        "queue_wait_about": "Ihre voraussichtliche Wartezeit beträgt etwa",
        "queue_minutes": "Minuten.",
        "pivr_intro": "Der gewünschte Gesprächspartner kann Ihren Anruf im Moment nicht annehmen.",
        "pivr_message": "Um eine Nachricht zu hinterlassen, drücken Sie die 1.",
        "pivr_mobile": "Um die Person auf dem Mobiltelefon zu erreichen, drücken Sie die 2.",
        "pivr_assistant": "Für die Assistenz drücken Sie die 3.",
        "pivr_colleague": "Für eine Kollegin oder einen Kollegen drücken Sie die 4.",
        "pivr_department": "Für die Abteilung drücken Sie die 5.",
        "pivr_switchboard": "Für die Zentrale drücken Sie die 0.",
        "vm_more_than_twenty": "mehr als zwanzig",
        **{
            f"n{i}": w
            for i, w in enumerate(
                "null eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn fünfzehn "
                "sechzehn siebzehn achtzehn neunzehn zwanzig".split()
            )
        },
    },
}


def make(language: str, name: str, text: str) -> Path:
    out = HERE / language / f"{name}.wav"
    out.parent.mkdir(exist_ok=True)
    with tempfile.NamedTemporaryFile(suffix=".wav") as raw:
        subprocess.run(["espeak-ng", "-v", language, "-s", "150", "-w", raw.name, text], check=True)
        with wave.open(raw.name, "rb") as w:
            frames, rate, width = w.readframes(w.getnframes()), w.getframerate(), w.getsampwidth()
    pcm, _ = audioop.ratecv(frames, width, 1, rate, 8000, None)
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(audioop.lin2lin(pcm, width, 2))
    return out


# The music on hold: a slow arpeggio in C major, synthesized here (so it is this project's own, with no licence to
# track): (semitones above middle C, beats) per note, 0.5 s a beat, soft attack and decay.
TUNE = [
    (0, 1),
    (4, 1),
    (7, 1),
    (12, 2),
    (7, 1),
    (4, 1),
    (5, 1),
    (9, 1),
    (12, 1),
    (17, 2),
    (12, 1),
    (9, 1),
    (7, 1),
    (11, 1),
    (14, 1),
    (19, 2),
    (14, 1),
    (11, 1),
    (12, 2),
    (7, 2),
    (0, 4),
]


def make_music() -> Path:
    import math
    import struct

    out = HERE / "music" / "default.wav"
    out.parent.mkdir(exist_ok=True)
    rate, frames = 8000, bytearray()
    for semitones, beats in TUNE:
        hz, n = 261.63 * 2 ** (semitones / 12), int(rate * 0.5 * beats)
        for i in range(n):
            envelope = min(1.0, i / 400) * (1 - i / n) ** 1.5
            sample = math.sin(2 * math.pi * hz * i / rate) + 0.3 * math.sin(4 * math.pi * hz * i / rate)
            frames += struct.pack("<h", int(5000 * envelope * sample))
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return out


def make_beep(language: str) -> Path:
    """The tone after a mailbox's greeting (vm_beep): 1 kHz for 0.4 s, the same in every language."""
    import math
    import struct

    out = HERE / language / "vm_beep.wav"
    rate = 8000
    n = int(rate * 0.4)
    frames = b"".join(
        struct.pack("<h", int(8000 * min(1.0, i / 80, (n - i) / 80) * math.sin(2 * math.pi * 1000 * i / rate)))
        for i in range(n)
    )
    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return out


def main(only: list[str] | None = None) -> int:
    """`only`: the prompts to make (every one when not given)."""
    for language, prompts in TEXTS.items():
        for name, text in prompts.items():
            if not only or name in only:
                print(make(language, name, text).relative_to(HERE.parent.parent))
        if not only or "vm_beep" in only:
            print(make_beep(language).relative_to(HERE.parent.parent))
    if only:
        return 0
    print(make_music().relative_to(HERE.parent.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
