"""Everything that runs a transfer, and the only code that changes one in the journal.

- :mod:`.engine`: queueing, a person's actions (cancel, pause, retry), one attempt;
- :mod:`.scheduler`: the pool of workers fed from the journal;
- :mod:`.sender`: the bytes (one PUT, server-side copy, multipart) and their proof;
- :mod:`.prepass`: hashing ahead of sending;
- :mod:`.limits`: the memory budget and the bandwidth limiter;
- :mod:`.holds`: who acts on a transfer now (a worker or a person, never both).
"""
