"""Values, states and the events that carry them: what every layer above speaks."""
