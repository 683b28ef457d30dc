"""The residents' portal (``/portal``): a household's own energy by period, compared with its previous
period and a typical household of the quarter, the energy community's figures, its devices and a CSV
download. Data from the energy ledger (``rollups.energy`` / ``rollups.energy_1d``), see docs/portal.md."""
