"""Everything that runs a transfer, and the only code that changes one in the journal.

- :mod:`.intake`: every way a transfer enters the journal (paths, a watched
  folder's files, a repair's re-upload);
- :mod:`.coordinator`: a person's cancel, pause, unpause and retry, each
  under the transfer's hold;
- :mod:`.holds`: who acts on a transfer now (a worker or a person, never both);
- :mod:`.scheduler`: the pool of workers fed from the journal;
- :mod:`.engine`: one attempt (hash, reserve, send, verify, register,
  compensate);
- :mod:`.sender`: the bytes (one PUT, server-side copy, multipart) and their proof;
- :mod:`.prepass`: hashing ahead of sending;
- :mod:`.limits`: the memory budget and the bandwidth limiter.
"""
