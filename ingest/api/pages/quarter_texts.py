"""German and English texts of the public quarter page ``/quarter`` (merged into
:data:`ingest.api.pages.i18n.TEXTS`): plain words for everyone, as the residents' portal speaks
(:mod:`ingest.portal.texts`); the definitions behind them are in docs/opendata.md and docs/portal.md."""

from __future__ import annotations

QUARTER_TEXTS: dict[str, tuple[str, str]] = {
    "quarter_app": ("Unser Quartier", "Our quarter"),
    "quarter_title": ("Energie und Straßenklima im Quartier", "Energy and street climate in the quarter"),
    "quarter_intro": (
        "Was alle Haushalte des Reallabors zusammen gerade an Strom beziehen, einspeisen und mit der Sonne "
        "erzeugen, und wie das Wetter auf der Straße ist. Zahlen einzelner Haushalte sehen Sie hier nie.",
        "What all the lab's households together are drawing from the grid, feeding in and producing from the "
        "sun right now, and what the weather is like on the street. You never see a single household here.",
    ),
    "quarter_skip": ("Zum Inhalt springen", "Skip to content"),
    "quarter_sections": ("Abschnitte", "Sections"),
    "quarter_nav_now": ("Strom jetzt", "Electricity now"),
    "quarter_nav_own": ("Eigenversorgung", "Self-sufficiency"),
    "quarter_nav_street": ("Straßenklima", "Street climate"),
    "quarter_nav_data": ("Offene Daten", "Open data"),
    # power flows
    "quarter_now": ("Strom im Quartier gerade", "The quarter's electricity right now"),
    "quarter_last_quarter": (
        "In der letzten vollen Viertelstunde, von {start} bis {end} Uhr:",
        "In the last full quarter hour, from {start} to {end}:",
    ),
    "quarter_now_help": (
        "Wir zeigen, wie viel Energie (kWh) in der letzten vollen Viertelstunde geflossen ist – so wertet "
        "das Reallabor die Zähler aus. In Klammern steht die mittlere Leistung in dieser Viertelstunde (kW).",
        "We show how much energy (kWh) flowed in the last full quarter hour – that is how the lab evaluates "
        "the meters. In brackets: the average power during that quarter hour (kW).",
    ),
    "quarter_flow_import": ("aus dem Stromnetz bezogen", "drawn from the power grid"),
    "quarter_flow_export": ("ins Stromnetz eingespeist", "fed into the power grid"),
    "quarter_flow_pv": ("von Solaranlagen erzeugt", "produced by solar panels"),
    "quarter_mean_power": ("im Mittel {power}", "on average {power}"),
    "quarter_no_last": (
        "Für heute liegt noch keine volle Viertelstunde vor.",
        "There is no full quarter hour for today yet.",
    ),
    "quarter_withheld": ("nicht veröffentlicht", "not published"),
    "quarter_incomplete": ("noch nicht vollständig", "not complete yet"),
    "quarter_incomplete_help": (
        "„noch nicht vollständig“ heißt: Für diese Viertelstunde können noch Messwerte einzelner Zähler "
        "nachkommen. Wir zeigen sie erst, wenn jeder Zähler danach wieder gemeldet hat – so ändert sich eine "
        "gezeigte Zahl später nicht mehr.",
        "“not complete yet” means: readings of single meters may still arrive for this quarter hour. We show "
        "it once every meter has reported again after it – so a figure, once shown, does not change later.",
    ),
    "quarter_withheld_help": (
        "„nicht veröffentlicht“ heißt: Zu wenige Haushalte haben dazu beigetragen, oder einer allein macht "
        "fast alles aus. Dann würde die Zahl zu viel über einzelne Haushalte verraten.",
        "“not published” means: too few households contributed, or a single one makes up nearly all of it. "
        "The figure would then tell too much about single households.",
    ),
    "quarter_today": ("Heute je Viertelstunde", "Today by quarter hour"),
    "quarter_today_chart": ("Strom im Quartier heute je Viertelstunde", "The quarter's electricity today"),
    "quarter_today_help": (
        "Balken nach oben: aus dem Netz bezogen. Balken nach unten: ins Netz eingespeist. Linie: von "
        "Solaranlagen erzeugt. Alle Werte in kWh je Viertelstunde.",
        "Bars up: drawn from the grid. Bars down: fed into the grid. Line: produced by solar panels. All "
        "values in kWh per quarter hour.",
    ),
    "quarter_table_today": ("Alle Werte von heute als Tabelle", "All of today's values as a table"),
    "quarter_table_today_caption": (
        "Strom im Quartier heute je Viertelstunde, in kWh",
        "The quarter's electricity today by quarter hour, in kWh",
    ),
    "quarter_col_time": ("Uhrzeit", "Time"),
    "quarter_col_import": ("Aus dem Netz", "From grid"),
    "quarter_col_export": ("Eingespeist", "Fed in"),
    "quarter_col_pv": ("Solar", "Solar"),
    "quarter_series_import": ("Aus dem Netz", "From the grid"),
    "quarter_series_export": ("Eingespeist", "Fed into the grid"),
    "quarter_series_pv": ("Solarstrom", "Solar power"),
    "quarter_no_today": (
        "Für heute liegen noch keine Zahlen des Quartiers vor.",
        "There are no figures of the quarter for today yet.",
    ),
    # self-sufficiency
    "quarter_own": (
        "Wie viel Strom aus dem Quartier selbst kommt",
        "How much electricity comes from the quarter",
    ),
    "quarter_own_today": ("heute", "today"),
    "quarter_own_month": ("in diesem Monat, bis {day}", "this month, up to {day}"),
    "quarter_own_month_none": (
        "in diesem Monat: noch kein abgeschlossener Tag",
        "this month: no completed day yet",
    ),
    "quarter_own_help": (
        "Eigenversorgung: der Teil des Stromverbrauchs im Quartier, den Solaranlagen im Quartier gedeckt "
        "haben, Viertelstunde für Viertelstunde – auch wenn der Sonnenstrom vom Dach der Nachbarn kam. Der "
        "Rest kam von außerhalb aus dem Stromnetz. Heute: die vollständigen Viertelstunden bisher. Monat: "
        "die abgeschlossenen Tage, wie sie die offenen Daten enthalten.",
        "Self-sufficiency: the part of the quarter's electricity use that solar panels in the quarter "
        "covered, quarter hour by quarter hour – even when the solar power came from a neighbour's roof. "
        "The rest came from outside, from the power grid. Today: the complete quarter hours so far. Month: "
        "the completed days, as the open data hold them.",
    ),
    # street climate
    "quarter_street": ("Straßenklima", "Street climate"),
    "quarter_street_latest": (
        "Zuletzt gemessen, {when} Uhr (Mittel über die Straßensensoren und 10 Minuten):",
        "Last measured, {when} (mean over the street sensors and 10 minutes):",
    ),
    "quarter_street_help": (
        "Nur Sensoren draußen im Straßenraum. Sensoren in Wohnungen werden nie gezeigt.",
        "Only sensors outdoors on the street. Sensors in homes are never shown.",
    ),
    "quarter_street_chart": ("Temperatur auf der Straße heute", "Street temperature today"),
    "quarter_no_street": (
        "Die Straßensensoren haben heute noch nichts gemeldet.",
        "The street sensors have not reported anything today.",
    ),
    "quarter_street_temperature_c": ("Temperatur", "Temperature"),
    "quarter_street_humidity_pct": ("Luftfeuchte", "Humidity"),
    "quarter_street_pm25_ugm3": ("Feinstaub PM2,5", "Fine dust PM2.5"),
    "quarter_street_pm10_ugm3": ("Feinstaub PM10", "Fine dust PM10"),
    "quarter_street_noise_dba": ("Lärm", "Noise"),
    "quarter_street_co2_ppm": ("CO₂", "CO₂"),
    "quarter_table_street": ("Die Temperaturen von heute als Tabelle", "Today's temperatures as a table"),
    "quarter_table_street_caption": (
        "Temperatur auf der Straße heute je 10 Minuten, in °C",
        "Street temperature today by 10 minutes, in °C",
    ),
    # open data
    "quarter_data": ("Offene Daten zum Herunterladen", "Open data to download"),
    "quarter_data_help": (
        "Die Zahlen des Quartiers und der Straßensensoren gibt es als Dateien (CSV und JSON) je Monat, "
        "frei nutzbar unter der „Datenlizenz Deutschland – Namensnennung – 2.0“. Sie werden jede Nacht "
        "ergänzt.",
        "The quarter's figures and the street sensors' readings are available as files (CSV and JSON) per "
        "month, free to use under the “Data licence Germany – attribution – 2.0”. They are extended every "
        "night.",
    ),
    "quarter_catalog": (
        "Katalog aller Datensätze (DCAT-AP.de, JSON-LD)",
        "Catalogue of all datasets (DCAT-AP.de, JSON-LD)",
    ),
    "quarter_no_files": ("Noch keine Dateien.", "No files yet."),
    "quarter_no_catalog": (
        "Die offenen Daten werden gerade zum ersten Mal erstellt.",
        "The open data are being created for the first time.",
    ),
    "quarter_month_files": ("{month}:", "{month}:"),
    # state
    "quarter_as_of": (
        "Stand: {when} Uhr. Die Zahlen werden höchstens alle {seconds} Sekunden neu gelesen.",
        "As of {when}. The figures are read again at most every {seconds} seconds.",
    ),
    "quarter_stale": (
        "Die neuesten Zahlen konnten gerade nicht gelesen werden. Sie sehen die Zahlen von {when} Uhr.",
        "The newest figures could not be read just now. You see the figures as of {when}.",
    ),
    "quarter_unavailable": (
        "Die Zahlen des Quartiers können gerade nicht gelesen werden. Bitte später noch einmal versuchen.",
        "The quarter's figures cannot be read right now. Please try again later.",
    ),
    "quarter_too_many": (
        "Zu viele Anfragen in kurzer Zeit. Bitte in {seconds} Sekunden noch einmal versuchen.",
        "Too many requests in a short time. Please try again in {seconds} seconds.",
    ),
    "quarter_no_charts": (
        "Die Diagramme fehlen (uPlot ist nicht installiert); alle Werte stehen in den Tabellen.",
        "The charts are missing (uPlot is not installed); every value is in the tables.",
    ),
    "quarter_public_link": (
        "Das Quartier in Zahlen – für alle, ohne Anmeldung",
        "The quarter in figures – for everyone, no login needed",
    ),
    "quarter_login": ("Anmelden für Bewohnerinnen und Bewohner", "Log in for residents"),
}
