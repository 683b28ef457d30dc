"""German and English texts of the technician pages; the language comes from a cookie set by the
switch, else from ``Accept-Language``, else German (the lab is in Oldenburg)."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

from ingest.api.cookies import language
from ingest.api.pages.quarter_texts import QUARTER_TEXTS
from ingest.portal.texts import PORTAL_TEXTS

LANGUAGES = ("de", "en")
DEFAULT = "de"

# key: (German, English); {name} placeholders are filled by t(key, name=...)
TEXTS: dict[str, tuple[str, str]] = {
    "app": ("Reallabor – Technik", "Reallabor – field work"),
    "login": ("Anmelden", "Log in"),
    "logout": ("Abmelden", "Log out"),
    "username": ("Benutzername", "Username"),
    "password": ("Passwort", "Password"),
    "login_failed": ("Benutzername oder Passwort falsch.", "Wrong username or password."),
    "login_throttled": (
        "Zu viele fehlgeschlagene Anmeldungen. Bitte später erneut versuchen.",
        "Too many failed logins. Please try again later.",
    ),
    "login_busy": (
        "Zu viele Anmeldungen gleichzeitig. Bitte gleich erneut versuchen.",
        "Too many logins at once. Please try again in a moment.",
    ),
    "csrf_refused": (
        "Das Formular ist abgelaufen. Bitte die Seite neu laden und erneut senden.",
        "The form has expired. Please reload the page and send it again.",
    ),
    "forbidden": (
        "Diese Seiten sind für Technik und Betrieb.",
        "These pages are for technicians and operators.",
    ),
    "not_found": ("Nicht gefunden.", "Not found."),
    "home": ("Start", "Home"),
    "fleet": ("Flottenstatus", "Fleet status"),
    "new_gateway": ("Gateway anlegen", "Register gateway"),
    "new_device": ("Gerät anlegen", "Register device"),
    "import": ("CSV-Import", "CSV import"),
    "search": ("Suchen", "Search"),
    "search_meter": ("Zählernummer suchen", "Search meter number"),
    "meter_number": ("Zählernummer", "Meter number"),
    "no_results": ("Keine Treffer.", "No matches."),
    "gateway": ("Gateway", "Gateway"),
    "gateway_name": ("Gateway-Name (Topic-Ebene)", "Gateway name (topic level)"),
    "gateway_name_help": (
        "1–63 Kleinbuchstaben (a–z), Ziffern, - oder _; das Gateway sendet unter lab/<Name>/…",
        "1–63 lower-case letters (a–z), digits, - or _; the gateway publishes under lab/<name>/…",
    ),
    "building": ("Gebäude", "Building"),
    "none": ("– keins –", "– none –"),
    "notes": ("Notizen", "Notes"),
    "save": ("Speichern", "Save"),
    "credentials": ("Zugangsdaten", "Credentials"),
    "credentials_once": (
        "Das Passwort wird nur jetzt angezeigt. Tragen Sie es jetzt im Gateway ein.",
        "The password is shown only now. Enter it on the gateway now.",
    ),
    "broker_username": ("Broker-Benutzer", "Broker username"),
    "client_id": ("Client-ID (MQTT)", "Client id (MQTT)"),
    "client_id_help": (
        "Das Gateway muss sich mit genau dieser Client-ID anmelden; jede andere weist der Broker ab.",
        "The gateway must connect with exactly this client id; the broker refuses any other.",
    ),
    "topic_prefix": ("Topic-Präfix", "Topic prefix"),
    "broker_off": (
        "Die Broker-Verwaltung ist nicht eingerichtet: Gateways können hier nicht angelegt werden.",
        "Broker administration is not configured: gateways cannot be registered here.",
    ),
    "native_id": ("Geräte-ID (wie im Topic)", "Device id (as in the topic)"),
    "native_id_help": (
        "Ohne + und #; mehrere Ebenen mit / getrennt (Shelly: das ganze Topic-Präfix).",
        "No + or #; levels separated by / (Shelly: the whole topic prefix).",
    ),
    "profile": ("Geräteprofil", "Device profile"),
    "household": ("Haushalt", "Household"),
    "location": ("Ort / Raum", "Location / room"),
    "location_help": ("z. B. Keller, Zählerschrank 2", "e.g. cellar, meter cabinet 2"),
    "choose": ("– bitte wählen –", "– please choose –"),
    "device": ("Gerät", "Device"),
    "status": ("Status", "Status"),
    "last_seen": ("Zuletzt gehört", "Last seen"),
    "never": ("nie", "never"),
    "silent": ("still", "silent"),
    "ok": ("ok", "ok"),
    "ago": ("vor {span}", "{span} ago"),
    "assignment": ("Zuordnung", "Assignment"),
    "unassigned": ("nicht zugeordnet", "unassigned"),
    "common_area": ("Allgemeinfläche", "common area"),
    "commissioning": ("Inbetriebnahme-Prüfung", "Commissioning check"),
    "start_check": ("Prüfung starten", "Start check"),
    "wait_up_to": ("Warten bis zu", "Wait up to"),
    "seconds": ("Sekunden", "seconds"),
    "check_hint": (
        "Die Prüfung wartet auf die nächste Nachricht des Geräts. Lösen Sie am Gerät eine Messung aus.",
        "The check waits for the device's next message. Trigger a measurement on the device.",
    ),
    "history": ("Bisherige Prüfungen", "Earlier checks"),
    "no_checks": ("Noch keine Prüfung.", "No check yet."),
    "passed": ("bestanden", "passed"),
    "failed": ("nicht bestanden", "failed"),
    "running": ("läuft", "running"),
    "phase_starting": ("startet", "starting"),
    "phase_connecting": ("verbindet mit dem Broker", "connecting to the broker"),
    "phase_listening": ("wartet auf eine Nachricht", "waiting for a message"),
    "phase_received": ("Nachricht empfangen, wird geprüft", "message received, checking"),
    "phase_passed": ("bestanden", "passed"),
    "phase_failed": ("nicht bestanden", "failed"),
    "time_left": ("noch {seconds} s", "{seconds} s left"),
    "reasons": ("Gründe", "Reasons"),
    "warnings": ("Hinweise", "Warnings"),
    "readings": ("Messwerte", "Readings"),
    "field": ("Feld", "Field"),
    "value": ("Wert", "Value"),
    "range": ("Bereich", "Range"),
    "plausible": ("plausibel", "plausible"),
    "implausible": ("unplausibel", "implausible"),
    "clock": ("Geräteuhr", "Device clock"),
    "clock_offset": ("Abweichung {offset} s (Grenze ±{limit} s)", "offset {offset} s (limit ±{limit} s)"),
    "clock_none": ("keine Gerätezeit – Empfangszeit verwendet", "no device time – receive time used"),
    "signal": ("Signal", "Signal"),
    "battery": ("Batterie", "Battery"),
    "quarantine": ("Quarantäne", "Quarantine"),
    "quarantine_none": ("Keine offenen Einträge.", "No pending entries."),
    "during_check": ("während der Prüfung", "during the check"),
    "earlier": ("früher", "earlier"),
    "message": ("Nachricht", "Message"),
    "by": ("von {who}", "by {who}"),
    "back_to_device": ("Zum Gerät", "Back to the device"),
    "watch_live": ("Live-Verlauf", "Live progress"),
    "csv_file": ("CSV-Datei", "CSV file"),
    "csv_columns": ("Spalten", "Columns"),
    "optional": ("optional", "optional"),
    "csv_help": (
        "Alles oder nichts: nur wenn jede Zeile stimmt, werden alle Geräte angelegt.",
        "All or nothing: devices are created only when every row is valid.",
    ),
    "dry_run": ("Nur prüfen, nichts anlegen", "Check only, create nothing"),
    "upload": ("Hochladen", "Upload"),
    "row": ("Zeile", "Row"),
    "result": ("Ergebnis", "Result"),
    "import_written": ("{n} Geräte angelegt.", "{n} devices created."),
    "import_checked": (
        "Alle {n} Zeilen sind gültig (nur geprüft).",
        "All {n} rows are valid (checked only).",
    ),
    "import_refused": (
        "Nichts angelegt: Zeilen mit Fehlern korrigieren und die ganze Datei erneut hochladen.",
        "Nothing created: fix the rows with errors and upload the whole file again.",
    ),
    "language": ("Sprache", "Language"),
    "created": ("angelegt", "created"),
    "fix_fields": ("Bitte die markierten Felder prüfen.", "Please check the marked fields."),
    "kind_gateway": ("Gateway", "Gateway"),
    "kind_device": ("Gerät", "Device"),
    "error": ("Fehler", "Error"),
    "payload": ("Nutzdaten", "Payload"),
    "received_at": ("empfangen", "received"),
    "topic": ("Topic", "Topic"),
    # the gateway page, the resident's way out, the pages' error pages (issue 12)
    "listened_on": ("Gehört auf", "Listened on"),
    "menu": ("Menü", "Menu"),
    "forbidden_resident": (
        "Dieser Bereich ist für Technik und Betrieb. Sie sind als {who} angemeldet.",
        "This area is for technicians and operators. You are logged in as {who}.",
    ),
    "to_portal": ("Zum Bewohnerportal", "To the resident portal"),
    "operators_only": (
        "Nur der Betrieb (Rolle Operator) kann Gateways widerrufen.",
        "Only operators can revoke gateways.",
    ),
    "gateway_page": ("Gateway {name}", "Gateway {name}"),
    "devices": ("Geräte", "Devices"),
    "no_devices": ("Noch keine Geräte.", "No devices yet."),
    "credentials_issued": ("Zugangsdaten ausgestellt", "Credentials issued"),
    "rotate_password": ("Passwort erneuern", "Rotate password"),
    "rotate_help": (
        "Ein neues Passwort: das alte gilt sofort nicht mehr, ein verbundenes Gateway wird getrennt.",
        "A new password: the old one stops working at once, a connected gateway is disconnected.",
    ),
    "rotated": ("Neues Passwort für Gateway {name}", "New password for gateway {name}"),
    "bundle_download": ("Installationspaket herunterladen", "Download installation bundle"),
    "bundle_help": (
        "Alles, was der Raspberry Pi braucht (Einstellungen, Zertifikat, Installationsskript), mit einem "
        "neuen Passwort: das Passwort früherer Pakete gilt danach nicht mehr.",
        "Everything the Raspberry Pi needs (settings, certificate, install script), with a new password: "
        "the password of earlier bundles stops working.",
    ),
    "bundle_confirm": (
        "Das Gateway sendet nicht mehr, bis das neue Paket auf ihm installiert ist.",
        "The gateway will stop sending until the new bundle is installed.",
    ),
    "bundle_confirm_missing": (
        "Bitte bestätigen Sie zuerst, dass das Gateway nicht mehr sendet, bis das neue Paket installiert "
        "ist. Es wurde nichts geändert.",
        "Please confirm first that the gateway will stop sending until the new bundle is installed. "
        "Nothing was changed.",
    ),
    "bundle_failed": (
        "Das Installationspaket konnte nicht erstellt werden (Einstellung gateway_bundle, siehe Protokoll). "
        "Das Passwort ist unverändert.",
        "The installation bundle could not be made (setting gateway_bundle, see the log). "
        "The password is unchanged.",
    ),
    "bundle_name": (
        "Für dieses Gateway gibt es kein Installationspaket: sein Name enthält Großbuchstaben. "
        "Legen Sie ein Gateway mit kleingeschriebenem Namen an.",
        "This gateway gets no installation bundle: its name has capital letters. "
        "Register a gateway with a lower-case name.",
    ),
    "revoke": ("Widerrufen", "Revoke"),
    "revoke_help": (
        "Löscht das Broker-Konto: das Gateway wird getrennt und kann sich nicht wieder anmelden. "
        "Seine Historie bleibt.",
        "Deletes the broker account: the gateway is disconnected and cannot log in again. Its history stays.",
    ),
    "revoke_confirm": ("Gateway {name} wirklich widerrufen?", "Really revoke gateway {name}?"),
    "revoke_yes": ("Ja, widerrufen", "Yes, revoke"),
    "cancel": ("Abbrechen", "Cancel"),
    "revoked_done": ("Gateway {name} ist widerrufen.", "Gateway {name} is revoked."),
    "gateway_is_revoked": (
        "Das Gateway ist widerrufen: neue Zugangsdaten gibt es nur für ein neu angelegtes Gateway.",
        "The gateway is revoked: only a newly registered gateway gets new credentials.",
    ),
    "broker_off_actions": (
        "Die Broker-Verwaltung ist nicht eingerichtet: Passwörter können hier nicht erneuert "
        "oder widerrufen werden.",
        "Broker administration is not configured: passwords cannot be rotated or revoked here.",
    ),
    "broker_failed": (
        "Der Broker ist nicht erreichbar oder hat die Änderung abgelehnt. Bitte später erneut versuchen.",
        "The broker is unreachable or refused the change. Please try again later.",
    ),
    "check_not_possible": (
        "Dieses Gerät kann nicht geprüft werden: sein Profil ist nicht geladen oder nennt kein Topic dafür.",
        "This device cannot be checked: its profile is not loaded or names no topic for it.",
    ),
    "too_many_runs": (
        "Es laufen schon so viele Prüfungen wie erlaubt. Bitte gleich erneut versuchen.",
        "As many checks as allowed are running. Please try again in a moment.",
    ),
    "unavailable": (
        "Vorübergehend nicht verfügbar. Bitte später erneut versuchen.",
        "Temporarily unavailable. Please try again later.",
    ),
    "page_error": ("Die Anfrage konnte nicht bearbeitet werden.", "The request could not be handled."),
}

# the discovery page (discovery_page.py, templates/discovery.html)
TEXTS |= {
    "discovery": ("Neue Geräte", "New devices"),
    "fleet_unregistered": (
        "{what} an {gateways} – ansehen und registrieren",
        "{what} on {gateways} – see and register them",
    ),
    "and": ("und", "and"),
    "disc_title": ("Nicht registrierte Geräte", "Unregistered devices"),
    "disc_intro": (
        "Geräte, die senden, aber nicht registriert sind, je Gateway. Nach dem Registrieren werden ihre "
        "Nachrichten seit dem ersten Kontakt binnen etwa {s} s gespeichert.",
        "Devices that send but are not registered, per gateway. Once registered, their messages since "
        "first contact are stored within about {s} s.",
    ),
    "disc_none": ("Keine nicht registrierten Geräte.", "No unregistered devices."),
    "disc_registered": (
        "Gerät {device} an {gateway} registriert.",
        "Device {device} on {gateway} registered.",
    ),
    "disc_assigned_from": ("Zugeordnet ab {since}.", "Assigned from {since}."),
    "disc_replay_waiting": (
        "{n} Nachrichten aus der Quarantäne werden binnen etwa {s} s gespeichert.",
        "{n} quarantined messages will be stored within about {s} s.",
    ),
    "disc_replay_done": (
        "Seine Nachrichten aus der Quarantäne sind gespeichert.",
        "Its quarantined messages are stored.",
    ),
    "disc_to_device": ("Zum Gerät", "Open the device"),
    "disc_gateway_unknown": (
        "Dieses Gateway ist nicht registriert: zuerst das Gateway anlegen.",
        "This gateway is not registered: register the gateway first.",
    ),
    "disc_gateway_inactive": (
        "Dieses Gateway ist nicht aktiv: an ihm können keine Geräte registriert werden.",
        "This gateway is not active: no devices can be registered on it.",
    ),
    "disc_first_seen": ("Zuerst gehört", "First seen"),
    "disc_last_seen": ("Zuletzt gehört", "Last seen"),
    "disc_id_refused": (
        "Diese Geräte-ID kann nicht registriert werden:",
        "This device id cannot be registered:",
    ),
    "disc_show_all": ("Alle von {gateway} zeigen", "Show all of {gateway}"),
    "disc_all_gateways": ("Alle Gateways", "All gateways"),
    "disc_shown_of": (
        "Die zuletzt gehörten {shown} von {total}.",
        "The {shown} most recently heard of {total}.",
    ),
    "disc_messages": ("Nachrichten", "Messages"),
    "disc_topic": ("Topic", "Topic"),
    "disc_model": ("Modell", "Model"),
    "disc_firmware": ("Firmware", "Firmware"),
    "disc_address": ("IP-Adresse", "IP address"),
    "disc_mac": ("MAC/IEEE", "MAC/IEEE"),
    "disc_name": ("Name", "Name"),
    "disc_values": ("Werte der neuesten Nachricht", "Values of the newest message"),
    "disc_measurement": ("Messgröße", "Measurement"),
    "disc_value": ("Wert", "Value"),
    "disc_not_decoded": (
        "Die neueste Nachricht lässt sich nicht dekodieren:",
        "The newest message does not decode:",
    ),
    "disc_announced_only": (
        "Hat sich angemeldet, aber noch keine Messwerte gesendet.",
        "Announced itself, but has sent no readings yet.",
    ),
    "disc_register": ("Registrieren und zuordnen", "Register and assign"),
    "disc_choose_household": (
        "Bitte den Haushalt wählen, den das Gerät misst.",
        "Please choose the household the device measures.",
    ),
    "disc_register_help": (
        "Die Zuordnung gilt ab dem ersten Kontakt ({since}).",
        "The assignment starts at its first contact ({since}).",
    ),
    "disc_unknown_topics": ("Topics ohne Geräteprofil", "Topics no profile decodes"),
    "disc_unknown_topics_help": (
        "Diese Nachrichten passen zu keinem Geräteprofil; registrieren geht erst mit einem passenden Profil.",
        "No device profile matches these messages; they can be registered once a profile does.",
    ),
    # the operators' overview /ops (issue 13)
    "ops_app": ("Reallabor – Betrieb", "Reallabor – operations"),
    "ops_title": ("Quartier am {day}", "The quarter on {day}"),
    "ops_title_today": ("Quartier heute", "The quarter today"),
    "ops_energy": ("Energie je Viertelstunde (kWh)", "Energy per 15 minutes (kWh)"),
    "ops_buildings": ("Bezug je Gebäude (kWh)", "Import per building (kWh)"),
    "ops_street": ("Straße: Temperatur (°C) und Feuchte (%)", "Street: temperature (°C) and humidity (%)"),
    "ops_messages": (
        "Nachrichten je Sekunde, letzte Stunde: empfangen und geschrieben",
        "Messages per second, last hour: in and written",
    ),
    "ops_quarantine": ("In Quarantäne je Intervall, letzte Stunde", "Quarantined per interval, last hour"),
    "ops_latest": ("Zuletzt", "Latest"),
    "ops_series": ("Reihe", "Series"),
    "ops_value": ("Wert", "Value"),
    "ops_time": ("Zeit", "Time"),
    "ops_day": ("Tag", "Day"),
    "ops_show": ("Anzeigen", "Show"),
    "ops_no_data": ("Keine Daten im Zeitraum.", "No data in the range."),
    "ops_unavailable": ("InfluxDB antwortet nicht: keine Daten.", "InfluxDB does not answer: no data."),
    "ops_no_charts": (
        "Diagramme brauchen uPlot: einmal make ausführen (npm ci). Die Tabellen zeigen die neuesten Werte.",
        "Charts need uPlot: run make once (npm ci). The tables show the latest values.",
    ),
    "operators_only_ops": (
        "Diese Übersicht ist nur für den Betrieb (Rolle Operator).",
        "This overview is for operators only.",
    ),
    # series names of the /ops charts (the catalogue's aliases; a label ending in one is translated too)
    "series:Import": ("Bezug", "Import"),
    "series:Export": ("Einspeisung", "Export"),
    "series:PV yield": ("PV-Ertrag", "PV yield"),
    "series:in": ("empfangen", "in"),
    "series:written": ("geschrieben", "written"),
}


# residents' access by invitation: the welcome page (plain language) and the operators' page (issue 14)
TEXTS |= {
    "welcome_app": ("Reallabor – Bewohnerportal", "Reallabor – resident portal"),
    "welcome_title": ("Willkommen!", "Welcome!"),
    "welcome_intro": (
        "Mit dem Einladungscode aus Ihrem Brief legen Sie Ihren Zugang zum Bewohnerportal an. "
        "Dort sehen Sie den Energieverbrauch Ihres Haushalts.",
        "With the invitation code from your letter you create your access to the resident portal. "
        "There you can see your household's energy use.",
    ),
    "welcome_code": ("Einladungscode", "Invitation code"),
    "welcome_code_help": (
        "16 Zeichen, wie im Brief, zum Beispiel K7QM‑3XHP‑WN9D‑TE4R. "
        "Groß- und Kleinbuchstaben und die Striche sind egal.",
        "16 characters as in the letter, for example K7QM‑3XHP‑WN9D‑TE4R. "
        "Capital or small letters and the dashes do not matter.",
    ),
    "welcome_next": ("Weiter", "Next"),
    "welcome_invalid": (
        "Dieser Code gilt nicht. Bitte prüfen Sie ihn noch einmal. Ein Code gilt nur einmal und nur bis "
        "zum Datum im Brief. Wenn es nicht klappt, hilft Ihnen das Reallabor-Team.",
        "This code is not valid. Please check it again. A code works only once and only until the date in "
        "the letter. If it does not work, the Reallabor team will help you.",
    ),
    "welcome_throttled": (
        "Zu viele falsche Versuche. Bitte warten Sie einige Minuten und versuchen Sie es dann noch einmal.",
        "Too many wrong attempts. Please wait a few minutes and then try again.",
    ),
    "welcome_account": ("Ihr Zugang für {household}", "Your access for {household}"),
    "welcome_account_intro": (
        "Der Code stimmt. Wählen Sie jetzt einen Benutzernamen und ein Passwort. "
        "Damit melden Sie sich künftig an.",
        "The code is right. Now choose a username and a password. You will log in with them from now on.",
    ),
    "welcome_username_help": (
        "Ein Vorschlag steht schon da; Sie können ihn ändern. Mindestens 3 Zeichen, ohne Leerzeichen: "
        "Buchstaben a–z ohne Umlaute (ä als ae), Ziffern und . _ - @.",
        "A suggestion is already filled in; you can change it. At least 3 characters, no spaces: "
        "letters a–z without accents, digits and . _ - @.",
    ),
    "welcome_password_help": (
        "Mindestens 10 Zeichen. Ein kurzer Satz ist leicht zu merken, "
        "zum Beispiel: Mein Balkon hat 3 Tomaten",
        "At least 10 characters. A short sentence is easy to remember, "
        "for example: My balcony has 3 tomatoes",
    ),
    "welcome_password_again": ("Passwort noch einmal", "Password again"),
    "welcome_create": ("Zugang anlegen", "Create my access"),
    "welcome_password_differs": (
        "Die beiden Passwörter sind verschieden. Bitte geben Sie beide noch einmal ein.",
        "The two passwords are not the same. Please enter both again.",
    ),
    "welcome_password_short": (
        "Das Passwort ist zu kurz: es braucht mindestens 10 Zeichen.",
        "The password is too short: it needs at least 10 characters.",
    ),
    "welcome_password_bad": (
        "Dieses Passwort geht nicht: höchstens 200 Zeichen.",
        "This password cannot be used: at most 200 characters.",
    ),
    "welcome_username_bad": (
        "Der Benutzername braucht 3 bis 64 Zeichen: Buchstaben a–z ohne Umlaute (ä als ae, ß als ss), "
        "Ziffern und . _ - @, ohne Leerzeichen.",
        "The username needs 3 to 64 characters: letters a–z without accents, digits and . _ - @, no spaces.",
    ),
    "welcome_username_taken": (
        "Diesen Benutzernamen gibt es schon. Bitte wählen Sie einen anderen.",
        "This username is already taken. Please choose another one.",
    ),
    "welcome_login_instead": (
        "Sie haben schon einen Zugang? Hier anmelden",
        "You already have access? Log in here",
    ),
    "welcome_have_code": (
        "Sie haben einen Einladungscode? Zugang anlegen",
        "You have an invitation code? Create your access",
    ),
    "invite_menu": ("Einladungen", "Invitations"),
    "invite_title": ("Einladungen für Bewohner", "Invitations for residents"),
    "invite_intro": (
        "Eine Einladung ist ein Code für einen Brief: damit legt ein Bewohner seinen Zugang zum "
        "Bewohnerportal selbst an. Jeder Code gilt einmal und bis zu seinem Datum.",
        "An invitation is a code for a letter: with it a resident creates their own access to the resident "
        "portal. Each code works once and until its date.",
    ),
    "invite_days": ("Gültig für Tage (1–90)", "Valid for days (1–90)"),
    "invite_create": ("Einladung erstellen", "Create invitation"),
    "invite_open": ("Offene Einladungen", "Open invitations"),
    "invite_none": ("Keine offenen Einladungen.", "No open invitations."),
    "invite_no_households": (
        "Noch keine Haushalte: zuerst Haushalte anlegen (reallabor households add).",
        "No households yet: register households first (reallabor households add).",
    ),
    "invite_expires": ("Gültig bis", "Valid until"),
    "invite_revoke": ("Zurückziehen", "Withdraw"),
    "invite_revoke_for": (
        "Einladung {id} für {household} zurückziehen",
        "Withdraw invitation {id} for {household}",
    ),
    "invite_revoked": ("Einladung {id} ist zurückgezogen.", "Invitation {id} is withdrawn."),
    "invite_already_redeemed": (
        "Diese Einladung ist schon eingelöst: den Zugang des Bewohners stattdessen deaktivieren.",
        "This invitation is already redeemed: deactivate the resident's user instead.",
    ),
    "invite_choose_household": ("Bitte einen Haushalt wählen.", "Please choose a household."),
    "invite_bad_days": ("Gültig für 1 bis 90 Tage.", "Valid for 1 to 90 days."),
    "invite_operators_only": (
        "Nur der Betrieb (Rolle Operator) kann Einladungen erstellen.",
        "Only operators can create invitations.",
    ),
    "invite_created": ("Einladung für {household}", "Invitation for {household}"),
    "invite_once": (
        "Der Code wird nur jetzt angezeigt und nirgends gespeichert. Drucken Sie ihn jetzt aus.",
        "The code is shown only now and stored nowhere. Print it now.",
    ),
    "invite_print_help": (
        "Beim Drucken (Strg+P) erscheint nur der Kasten, passend für einen Brief.",
        "When printed (Ctrl+P), only the box appears, ready for a letter.",
    ),
    "invite_back": ("Zu den Einladungen", "Back to the invitations"),
    "letter_title": ("Ihr Zugang zum Bewohnerportal", "Your access to the resident portal"),
    "letter_step_open": (
        "Öffnen Sie im Internet-Browser diese Adresse:",
        "Open this address in a web browser:",
    ),
    "letter_step_code": ("Geben Sie diesen Einladungscode ein:", "Enter this invitation code:"),
    "letter_step_account": (
        "Wählen Sie einen Benutzernamen und ein Passwort. Fertig!",
        "Choose a username and a password. Done!",
    ),
    "letter_valid": ("Der Code gilt einmal, bis {date}.", "The code works once, until {date}."),
}

TEXTS |= PORTAL_TEXTS  # the residents' portal (ingest/portal/texts.py)
TEXTS |= QUARTER_TEXTS  # the public quarter page (ingest/api/pages/quarter_texts.py)

# counted texts: key -> ((German singular, plural), (English singular, plural)); t(key, n=...) picks the
# form for n and writes n as the language groups digits (1.234 / 1,234)
PLURALS: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "n_unregistered_devices": (
        ("{n} nicht registriertes Gerät", "{n} nicht registrierte Geräte"),
        ("{n} unregistered device", "{n} unregistered devices"),
    ),
    "n_unknown_topics": (
        ("{n} unbekanntes Topic", "{n} unbekannte Topics"),
        ("{n} unknown topic", "{n} unknown topics"),
    ),
    "n_gateways": (("{n} Gateway", "{n} Gateways"), ("{n} gateway", "{n} gateways")),
    "n_devices": (("{n} Gerät", "{n} Geräte"), ("{n} device", "{n} devices")),
    "n_topics": (("{n} Topic", "{n} Topics"), ("{n} topic", "{n} topics")),
    "n_more": (("… und {n} weiteres", "… und {n} weitere"), ("… and {n} more", "… and {n} more")),
    "invite_has_access": (("{n} Zugang", "{n} Zugänge"), ("{n} account", "{n} accounts")),
}


def grouped(lang: str, n: int) -> str:
    """An integer with the language's digit grouping: 9.500 (de), 9,500 (en)."""
    text = f"{n:,}"
    return text.replace(",", ".") if lang == "de" else text


def plural(lang: str, key: str, n: int, **values: object) -> str:
    """The text of ``key`` in the form for ``n`` (German and English: singular for exactly 1)."""
    forms = PLURALS[key][LANGUAGES.index(lang) if lang in LANGUAGES else 0]
    return forms[0 if n == 1 else 1].format(**values, n=grouped(lang, n))


def negotiate(request: Request) -> str:
    """The page language: the switch's cookie, else the best of Accept-Language, else German."""
    chosen = language(request)
    if chosen in LANGUAGES:
        return chosen
    best, best_q = DEFAULT, -1.0
    for index, part in enumerate(request.headers.get("accept-language", "").split(",")):
        code, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = code.strip().lower().split("-")[0]
        if primary in LANGUAGES and q - index * 1e-6 > best_q:
            best, best_q = primary, q - index * 1e-6
    return best


def translator(lang: str) -> Callable[..., str]:
    column = LANGUAGES.index(lang) if lang in LANGUAGES else 0

    def t(key: str, **values: object) -> str:
        n = values.pop("n", None)
        if key in PLURALS and isinstance(n, int):
            return plural(LANGUAGES[column], key, n, **values)
        if n is not None:
            values["n"] = n
        pair = TEXTS.get(key)
        text = pair[column] if pair is not None else key
        return text.format(**values) if values else text

    return t


# a household's data: export and deletion by operators (ingest/api/pages/privacy_pages.py, issue 14)
TEXTS |= {
    "privacy_overview": ("Übersicht", "Overview"),
    "privacy_households": ("Haushalte", "Households"),
    "privacy_households_help": (
        "Alles, was über einen Haushalt gespeichert ist, herunterladen (ZIP mit JSON und CSV) oder beim "
        "Auszug löschen.",
        "Download everything stored about a household (ZIP with JSON and CSV) or delete it at a move-out.",
    ),
    "privacy_household": ("Haushalt", "Household"),
    "privacy_residents": ("Bewohner-Zugänge", "Resident accounts"),
    "privacy_actions": ("Daten", "Data"),
    "privacy_export": ("Herunterladen", "Download"),
    "privacy_delete": ("Löschen …", "Delete …"),
    "privacy_no_households": ("Keine Haushalte registriert.", "No households registered."),
    "privacy_delete_title": ("Haushalt „{name}“ löschen", "Delete household “{name}”"),
    "privacy_delete_help": (
        "Löscht alle Messwerte des Haushalts in InfluxDB (Rohdaten, Verdichtungen, Energiebuch), seine "
        "Bewohner-Zugänge, Einladungen und Gerätezuordnungen und dann den Haushalt selbst. Das lässt sich "
        "nicht rückgängig machen. Ein Protokoll hält fest, wer wann wie viel gelöscht hat, nie die Daten.",
        "Deletes all of the household's readings in InfluxDB (raw, rollups, energy ledger), its resident "
        "accounts, invitations and device assignments, then the household itself. This cannot be undone. "
        "A record keeps who deleted how much and when, never the data.",
    ),
    "privacy_what": ("Was gelöscht wird", "What will be deleted"),
    "privacy_invitations": ("Einladungen", "Invitations"),
    "privacy_assignments": ("Gerätezuordnungen", "Device assignments"),
    "privacy_series": ("Zeitreihen in InfluxDB", "Series in InfluxDB"),
    "privacy_values": ("Messwerte in InfluxDB", "Values in InfluxDB"),
    "privacy_where": ("Gespeichert in", "Stored in"),
    "privacy_devices_stay": (
        "Die Geräte gehören zum Gebäude und bleiben registriert, ohne Zuordnung.",
        "The devices belong to the building and stay registered, unassigned.",
    ),
    "privacy_influx_away": (
        "InfluxDB antwortet nicht: wie viele Messwerte es sind, ist unbekannt. Das Löschen würde jetzt "
        "abbrechen.",
        "InfluxDB does not answer: how many values there are is unknown. Deleting would stop now.",
    ),
    "privacy_export_first": ("Vorher herunterladen (ZIP)", "Download first (ZIP)"),
    "privacy_reason": ("Grund", "Reason"),
    "privacy_reason_help": (
        "Kommt ins Protokoll, zum Beispiel „Auszug, Antrag vom 30.11.“. Bitte keine Namen.",
        "Goes into the record, for example “move-out, request of 30 Nov”. No names, please.",
    ),
    "privacy_type_name": (
        "Zur Bestätigung den Namen des Haushalts eingeben: {name}",
        "To confirm, type the household's name: {name}",
    ),
    "privacy_delete_yes": ("Endgültig löschen", "Delete for good"),
    "privacy_name_mismatch": (
        "Der eingegebene Name stimmt nicht mit dem Haushalt überein. Nichts wurde gelöscht.",
        "The name typed is not the household's. Nothing was deleted.",
    ),
    "privacy_reason_missing": (
        "Bitte einen Grund angeben. Nichts wurde gelöscht.",
        "Please give a reason. Nothing was deleted.",
    ),
    "privacy_reason_bad": (
        "Der Grund enthält Steuerzeichen oder beginnt mit = + - @. Nichts wurde gelöscht.",
        "The reason holds control characters or starts with = + - @. Nothing was deleted.",
    ),
    "privacy_failed": (
        "Das Löschen wurde unterbrochen (InfluxDB?). Der Haushalt ist noch da; das Protokoll nennt den "
        "Schritt. Bitte erneut senden.",
        "The deletion stopped (InfluxDB?). The household is still there; the record names the step. "
        "Please send it again.",
    ),
    "privacy_deletions": ("Löschprotokoll", "Deletion records"),
    "privacy_deletions_help": (
        "Wer wann welchen Haushalt gelöscht hat und wie viel. Haushalte stehen hier nur mit Nummer, ohne "
        "Namen.",
        "Who deleted which household when, and how much. Households appear by number only, without names.",
    ),
    "privacy_done": ("Gelöscht. Protokoll {reference}.", "Deleted. Record {reference}."),
    "privacy_status_done": ("erledigt", "done"),
    "privacy_status_failed": ("abgebrochen", "stopped"),
    "privacy_status_started": ("begonnen", "started"),
    "privacy_record_household": (
        "Haushalt #{id} in Gebäude #{building}",
        "Household #{id} in building #{building}",
    ),
    "privacy_record_counts": (
        "{residents} Zugänge, {assignments} Zuordnungen, {values} Messwerte",
        "{residents} accounts, {assignments} assignments, {values} values",
    ),
    "privacy_no_records": ("Noch nichts gelöscht.", "Nothing deleted yet."),
    "export_running": (
        "Ihr Download läuft noch. Bitte warten, bis er fertig ist, und es dann erneut versuchen.",
        "Your download is still running. Please wait until it has finished, then try again.",
    ),
    "export_rate": (
        "Sie haben in der letzten Stunde schon {n} Downloads gestartet. Bitte in {minutes} Minuten erneut "
        "versuchen.",
        "You have already started {n} downloads in the last hour. Please try again in {minutes} minutes.",
    ),
    "export_busy": (
        "Gerade laufen zu viele Downloads. Bitte in einer Minute erneut versuchen.",
        "Too many downloads are running right now. Please try again in a minute.",
    ),
    "export_problem": ("Download nicht möglich", "Download not possible"),
    "ops_nav_invitations": ("Einladungen", "Invitations"),
    "privacy_invite": ("Einladen", "Invite"),
    "invite_history_hint": (
        "Wer eingeladen wird, sieht alle gespeicherten Daten des Haushalts, auch aus der Zeit vor dem "
        "Einzug. Bei einem Mieterwechsel den Haushalt vorher unter „Haushalte“ löschen; für "
        "Mitbewohner nicht.",
        "Whoever is invited sees all of the household's stored data, including from before they moved "
        "in. When tenants change, delete the household first under “Households”; not for flatmates.",
    ),
    "welcome_taken_throttled": (
        "Sie haben viele Benutzernamen ausprobiert, die es schon gibt. Bitte warten Sie ein paar "
        "Minuten, oder nehmen Sie den vorgeschlagenen Namen.",
        "You have tried many usernames that are already taken. Please wait a few minutes, or take the "
        "suggested name.",
    ),
}
