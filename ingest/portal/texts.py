"""German and English texts of the residents' portal (merged into :data:`ingest.api.pages.i18n.TEXTS`):
plain words for residents, no jargon; the definitions behind them are in docs/portal.md."""

from __future__ import annotations

PORTAL_TEXTS: dict[str, tuple[str, str]] = {
    "portal_app": ("Mein Energieportal", "My energy portal"),
    "portal_skip": ("Zum Inhalt springen", "Skip to content"),
    "portal_household": ("Haushalt {name}, {building}", "Household {name}, {building}"),
    "portal_view_now": ("Jetzt", "Now"),
    "portal_view_day": ("Tag", "Day"),
    "portal_view_week": ("Woche", "Week"),
    "portal_view_month": ("Monat", "Month"),
    "portal_view_year": ("Jahr", "Year"),
    "portal_devices": ("Geräte", "Devices"),
    "portal_now": ("Ihr Strom gerade", "Your electricity right now"),
    "portal_power": ("Aktuelle Leistung", "Current power"),
    "portal_power_import": ("kommen gerade aus dem Netz", "coming from the grid right now"),
    "portal_power_export": ("gehen gerade ins Netz", "going into the grid right now"),
    "portal_measured_at": ("gemessen {when}", "measured {when}"),
    "portal_no_power": (
        "Kein aktueller Messwert: Ihr Zähler hat sich in den letzten 5 Minuten nicht gemeldet.",
        "No current reading: your meter has not reported in the last 5 minutes.",
    ),
    "portal_today": ("Heute je Viertelstunde", "Today by quarter hour"),
    "portal_export_negative": (
        "Im Diagramm zeigt ein Balken nach unten Strom, den Sie ins Netz eingespeist haben.",
        "In the chart, a bar pointing down is electricity you fed into the grid.",
    ),
    "portal_periods": ("Zeitraum wechseln", "Change period"),
    "portal_prev_day": ("Vortag", "Previous day"),
    "portal_next_day": ("Nächster Tag", "Next day"),
    "portal_prev_week": ("Vorwoche", "Previous week"),
    "portal_next_week": ("Nächste Woche", "Next week"),
    "portal_prev_month": ("Vormonat", "Previous month"),
    "portal_next_month": ("Nächster Monat", "Next month"),
    "portal_prev_year": ("Vorjahr", "Previous year"),
    "portal_next_year": ("Nächstes Jahr", "Next year"),
    "portal_pick_date": ("Datum", "Date"),
    "portal_show": ("Anzeigen", "Show"),
    "portal_no_data": (
        "Für diesen Zeitraum liegen noch keine Verbrauchsdaten vor.",
        "There is no energy data for this period yet.",
    ),
    "portal_kind_import": ("Strom aus dem Netz", "Electricity from the grid"),
    "portal_kind_export": ("Ins Netz eingespeist", "Fed into the grid"),
    "portal_kind_pv": ("Ihre Solaranlage erzeugte", "Your solar panels produced"),
    "portal_kind_pv_building": ("Solaranlage des Hauses erzeugte", "Your building's solar panels produced"),
    "portal_kind_heat": ("Wärme (Heizung, Warmwasser)", "Heat (heating, hot water)"),
    "portal_kind_ev": ("E-Auto geladen", "Electric car charged"),
    "portal_kind_consumption": ("Ihr Stromverbrauch", "Your electricity use"),
    "portal_kind_short_import": ("Aus dem Netz", "From grid"),
    "portal_kind_short_export": ("Eingespeist", "Fed in"),
    "portal_kind_short_pv": ("Solar", "Solar"),
    "portal_kind_short_pv_building": ("Solar (Haus)", "Solar (building)"),
    "portal_kind_short_heat": ("Wärme", "Heat"),
    "portal_kind_short_ev": ("E-Auto", "Car"),
    "portal_pv_building_note": (
        "Ihr Haus hat eine gemeinsame Solaranlage. Wir zeigen ihren Ertrag für das ganze Haus; er zählt "
        "nicht als Ihre eigene Erzeugung, aber zum Sonnenstrom des Quartiers.",
        "Your building has a shared solar installation. We show what it produced for the whole building; it "
        "does not count as your own production, but it counts towards the quarter's solar power.",
    ),
    "portal_chart_electricity": ("Strom", "Electricity"),
    "portal_no_charts": (
        "Diagramme sind gerade nicht verfügbar; die Tabelle zeigt alle Werte.",
        "Charts are not available right now; the table shows every value.",
    ),
    "portal_table_now": ("Tabelle: Werte je Viertelstunde", "Table: values by quarter hour"),
    "portal_table_day": ("Tabelle: Werte je Stunde", "Table: values by hour"),
    "portal_table_week": ("Tabelle: Werte je Tag", "Table: values by day"),
    "portal_table_month": ("Tabelle: Werte je Tag", "Table: values by day"),
    "portal_table_year": ("Tabelle: Werte je Monat", "Table: values by month"),
    "portal_table_caption": ("{title}: Energie in kWh", "{title}: energy in kWh"),
    "portal_col_now": ("Viertelstunde ab", "Quarter hour from"),
    "portal_col_day": ("Stunde ab", "Hour from"),
    "portal_col_week": ("Tag", "Day"),
    "portal_col_month": ("Tag", "Day"),
    "portal_col_year": ("Monat", "Month"),
    "portal_compare": ("Im Vergleich", "Compared"),
    "portal_compare_caption_day": (
        "Dieser Tag, der Vortag (mit Änderung){typical}, in kWh",
        "This day, the day before (with the change){typical}, in kWh",
    ),
    "portal_compare_caption_week": (
        "Diese Woche, die Vorwoche (mit Änderung){typical}, in kWh",
        "This week, the week before (with the change){typical}, in kWh",
    ),
    "portal_compare_caption_month": (
        "Dieser Monat, der Vormonat (mit Änderung){typical}, in kWh",
        "This month, the month before (with the change){typical}, in kWh",
    ),
    "portal_compare_caption_year": (
        "Dieses Jahr, das Vorjahr (mit Änderung){typical}, in kWh",
        "This year, the year before (with the change){typical}, in kWh",
    ),
    "portal_compare_caption_so_far": (
        "Bisher, bis {when}, und derselbe Teil des vorigen Zeitraums (mit Änderung){typical}, in kWh",
        "So far, up to {when}, and the same part of the previous period (with the change){typical}, in kWh",
    ),
    "portal_compare_caption_typical": (
        " und ein typischer Haushalt im Quartier",
        " and a typical household in the quarter",
    ),
    "portal_what": ("Was", "What"),
    "portal_col_this_day": ("Dieser Tag", "This day"),
    "portal_col_prev_day": ("Vortag", "Day before"),
    "portal_col_this_week": ("Diese Woche", "This week"),
    "portal_col_prev_week": ("Vorwoche", "Week before"),
    "portal_col_this_month": ("Dieser Monat", "This month"),
    "portal_col_prev_month": ("Vormonat", "Month before"),
    "portal_col_this_year": ("Dieses Jahr", "This year"),
    "portal_col_prev_year": ("Vorjahr", "Year before"),
    "portal_col_change": ("Änderung", "Change"),
    "portal_col_so_far": ("Bis jetzt", "So far"),
    "portal_col_prev_until": ("{before} bis {when}", "{before} up to {when}"),
    "portal_col_typical": ("Typischer Haushalt", "Typical household"),
    "portal_typical_note": (
        "Ein typischer Haushalt im Quartier: der Durchschnitt der Haushalte in der Mitte, ohne das Viertel "
        "mit dem niedrigsten und das mit dem höchsten Wert, gerundet. Werte einzelner Haushalte sehen Sie "
        "nie.",
        "A typical household in the quarter: the average of the households in the middle, leaving out the "
        "quarter with the lowest and the quarter with the highest values, rounded. You never see another "
        "household's values.",
    ),
    "portal_too_few": (
        "Der Vergleich mit dem Quartier erscheint, sobald genug Haushalte für diesen Zeitraum Daten haben.",
        "The comparison with the quarter appears once enough households have data for this period.",
    ),
    "portal_too_few_pv": (
        "Die Sonnenstrom-Zahlen des Quartiers erscheinen, sobald es genug Solaranlagen im Quartier gibt.",
        "The quarter's solar figures appear once there are enough solar installations in the quarter.",
    ),
    "portal_community": ("Energiegemeinschaft", "Energy community"),
    "portal_quarter_pending": (
        "Die Zahlen des Quartiers (typischer Haushalt, Energiegemeinschaft) für diesen Zeitraum werden "
        "gerade berechnet. Bitte in einer Minute neu laden.",
        "The quarter's figures (typical household, energy community) for this period are being computed. "
        "Please reload in a minute.",
    ),
    "portal_community_caption": (
        "Wie viel Ihres Stroms aus Sonnenstrom kommt – neben dem ganzen Quartier",
        "How much of your electricity comes from solar power – next to the whole quarter",
    ),
    "portal_col_household": ("Ihr Haushalt", "Your household"),
    "portal_col_quarter": ("Quartier", "Quarter"),
    "portal_consumption": ("Stromverbrauch", "Electricity use"),
    "portal_self_sufficiency": ("Eigenversorgung", "Self-sufficiency"),
    "portal_pv_covered": ("Gedeckt durch Sonnenstrom im Quartier", "Covered by the quarter's solar power"),
    "portal_pv_share": (
        "Sonnenstrom erzeugt, bezogen auf den Verbrauch",
        "Solar power produced, relative to use",
    ),
    "portal_self_sufficiency_help": (
        "Der Teil des Stromverbrauchs, den die eigene Solaranlage direkt gedeckt hat. Für das Quartier: "
        "der Teil seines Verbrauchs, den Solaranlagen im Quartier gedeckt haben, Viertelstunde für "
        "Viertelstunde.",
        "The part of the electricity use that the own solar panels covered directly. For the quarter: the "
        "part of its use that solar panels in the quarter covered, quarter hour by quarter hour.",
    ),
    "portal_pv_covered_help": (
        "Ihre eigene Solaranlage plus Ihr Anteil am Überschuss der Nachbarn: was Haushalte im Quartier in "
        "derselben Viertelstunde eingespeist haben, wird auf den Netzstrom aller verteilt.",
        "Your own solar panels plus your share of the neighbours' surplus: what households in the quarter "
        "fed into the grid in the same quarter hour is shared out over everyone's grid electricity.",
    ),
    "portal_pv_share_help": (
        "Aller Sonnenstrom im Quartier geteilt durch seinen Verbrauch; über 100 % heißt: mehr erzeugt als "
        "verbraucht.",
        "All the quarter's solar power divided by its use; over 100 % means more produced than used.",
    ),
    "portal_csv": ("Ihre Daten herunterladen", "Download your data"),
    "portal_csv_help": (
        "Eine CSV-Datei mit den Werten Ihres Haushalts je Gerät: je Viertelstunde bis {days15} Tage, je Tag "
        "bis {days1} Tage.",
        "A CSV file with your household's values per device: by quarter hour up to {days15} days, by day up "
        "to {days1} days.",
    ),
    "portal_csv_from": ("Von", "From"),
    "portal_csv_to": ("Bis (einschließlich)", "To (inclusive)"),
    "portal_csv_resolution": ("Auflösung", "Resolution"),
    "portal_csv_1d": ("je Tag", "by day"),
    "portal_csv_15m": ("je Viertelstunde", "by quarter hour"),
    "portal_csv_download": ("Herunterladen", "Download"),
    "portal_devices_title": ("Geräte in Ihrer Wohnung", "Devices in your home"),
    "portal_devices_intro": (
        "Diese Geräte messen für Ihren Haushalt. Meldet sich eines länger als 15 Minuten nicht, sehen Sie "
        "es hier.",
        "These devices measure for your household. If one has not reported for more than 15 minutes, you "
        "see it here.",
    ),
    "portal_devices_caption": ("Geräte und ihre letzte Meldung", "Devices and when each last reported"),
    "portal_device": ("Gerät", "Device"),
    "portal_last_report": ("Letzte Meldung", "Last report"),
    "portal_never": ("noch nie", "never yet"),
    "portal_silent": ("meldet sich nicht", "not reporting"),
    "portal_reporting": ("meldet sich", "reporting"),
    "portal_no_devices": (
        "Ihrem Haushalt sind keine Geräte zugeordnet.",
        "No devices are assigned to your household.",
    ),
    "portal_profile_tasmota-sml": ("Stromzähler (Lesekopf)", "Electricity meter (read head)"),
    "portal_profile_shelly-gen2": ("Strommessung (Shelly)", "Power meter (Shelly)"),
    "portal_profile_sml": ("Stromzähler", "Electricity meter"),
    "portal_profile_dsmr": ("Stromzähler (P1)", "Electricity meter (P1)"),
    "portal_profile_generic-json": ("Messgerät", "Measuring device"),
    "portal_profile_zigbee2mqtt": ("Raumklima-Sensor", "Room climate sensor"),
    "portal_problem": ("Das ging nicht", "That did not work"),
    "portal_back": ("Zurück zur Übersicht", "Back to the overview"),
    "portal_unavailable": (
        "Die Energiedaten sind gerade nicht erreichbar. Bitte später erneut versuchen.",
        "The energy data cannot be reached right now. Please try again later.",
    ),
    "portal_residents_only": (
        "Das Energieportal ist für Bewohnerinnen und Bewohner. Haushaltsdaten sieht der Betrieb in Grafana.",
        "The energy portal is for residents. Operators see household data in Grafana.",
    ),
    "portal_err_view": (
        "Diese Ansicht gibt es nicht (möglich: {allowed}).",
        "There is no such view (possible: {allowed}).",
    ),
    "portal_err_date_format": (
        "{what}: bitte ein Datum als JJJJ-MM-TT angeben, z. B. 2025-06-18.",
        "{what}: please give a date as YYYY-MM-DD, e.g. 2025-06-18.",
    ),
    "portal_err_date_bounds": (
        "{what}: das Datum muss zwischen {first} und {last} liegen.",
        "{what}: the date must be between {first} and {last}.",
    ),
    "portal_field_date": ("Datum", "Date"),
    "portal_field_from": ("Von", "From"),
    "portal_field_to": ("Bis", "To"),
    "portal_field_view": ("Ansicht", "View"),
    "portal_field_resolution": ("Auflösung", "Resolution"),
    "portal_err_order": ("„Bis“ darf nicht vor „Von“ liegen.", "“To” must not be before “From”."),
    "portal_err_future": ("„Bis“ darf höchstens heute sein.", "“To” can be today at the latest."),
    "portal_err_too_long": (
        "Höchstens {limit} Tage in dieser Auflösung (gewählt: {days}). Bitte einen kürzeren Zeitraum "
        "oder „je Tag“ wählen.",
        "At most {limit} days at this resolution (chosen: {days}). Please choose a shorter range or "
        "“by day”.",
    ),
    "portal_err_resolution": (
        "Auflösung: je Tag oder je Viertelstunde.",
        "Resolution: by day or by quarter hour.",
    ),
    "portal_err_too_long_param": ("{what}: der Wert ist zu lang.", "{what}: the value is too long."),
}
