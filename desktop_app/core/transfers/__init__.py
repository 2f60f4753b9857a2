"""Everything that runs a transfer, and the only code that changes one in the journal.

- :mod:`.intake`: every way a transfer enters the journal (paths, a watched
  folder's files, a repair's re-upload);
- :mod:`.coordinator`: a person's cancel, pause, unpause and retry, each
  under the transfer's hold;
- :mod:`.holds`: who acts on a transfer now (a worker or a person, never both);
- :mod:`.scheduler`: the pool of workers fed from the journal;
- :mod:`.engine`: one attempt (hash, reserve, send, verify, register,
  compensate), its steps in :mod:`.reserve_step`, :mod:`.registration` and
  :mod:`.compensation`, its settings in :mod:`.options`;
- :mod:`.sender`: the bytes (server-side copy here, :mod:`.single_put`,
  :mod:`.multipart` resumed by :mod:`.resume`) written under
  :mod:`.guarded_write` and proven by :mod:`.verification`; what a step is
  handed (:mod:`.control`), its progress (:mod:`.progress`), its reads
  (:mod:`.source_reads`) and the part plan (:mod:`.part_plan`);
- :mod:`.prepass`: hashing ahead of sending;
- :mod:`.limits`: the memory budget and the bandwidth limiter.
"""
