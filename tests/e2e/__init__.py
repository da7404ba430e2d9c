"""Real LangGraph graphs run end to end, compared with InMemorySaver."""
