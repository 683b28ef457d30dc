"""The monthly letter for residents without a smartphone: one A4 page per household, printed and posted.

``figures``  what a letter says, as numbers (:class:`LetterFigures`), and the month it is about
``wording``  the plain German sentences and the chart's bars made from the figures (pure)
``render``   Typst (PyPI ``typst``) lays out ``letter.typ`` into PDF; pypdf merges the print file
``source``   the figures from the energy ledger (InfluxDB ``rollups.energy_1d``) and the registry
``cli``      ``reallabor letters --month 2026-11``
"""
