"""Herald's domain core: the event every layer carries, below the HTTP API (DESIGN: Contracts).

Nothing here imports from api/, delivery/, storage/ or the bot: they all import from here.
"""
