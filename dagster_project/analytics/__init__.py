"""Revenue analytics: the HTML revenue report and the price simulation (pure Python)."""
