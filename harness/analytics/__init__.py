"""Analytics: usage indicators, funding forecast and the synthetic grappe simulation, all from the journal."""
