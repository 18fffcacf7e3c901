"""The log of the version before entries named their rows (session 13: each entry held its
rows, read as they were), as that version's scripts wrote and read it, for the upgrade and
rollback tests (tests/redis/test_log_names.py): what it wrote must be read by this version, and
what this one writes must never be applied by it as rows.

Its scripts differ from this version's in two fragments only, kept here as they were: the
making of a commit's log entry in WRITE (`ENTRY`, in place of LOG_ENTRY), and CHANGES answering
the entries as they are (no NAMED). Its reader (redis_log.read_entry, and redis.py
`_changes_answer`, which takes an entry's number from its `n` field and stops at the first
that is not the commit it expects) is this version's unchanged, so a store running these
scripts behaves as that version's worker does."""

from layers_mock_server.stores.redis_scripts import CHANGES, LOG_ENTRY, NAMED, WRITE

ENTRY = """  -- under the ID `n-0`, so that the log keeps the newest `maxlen` batches (MINID) and a
  -- catch-up reads from the one after its own (CHANGES); a log ahead of the number (written
  -- by an older version, or `commits` went back) is dropped: it only spares a catch-up
  -- reading everything
  local oldest = math.max(0, n - maxlen + 1)
  local entry = {log, 'MINID', '~', oldest, n .. '-0', 'n', n, 'k', k}
  if logged ~= '' then
    entry[10], entry[11] = 'b', logged
  else  -- fields: `m` the meta row, `d` once per deleted field, then each upsert's field and row
    local e = 9
    if flags >= 2 then
      entry[10], entry[11] = 'm', ARGV[i + 2]
      e = 11
    end
    for c = i + 9, i + 8 + deletes do
      entry[e + 1], entry[e + 2] = 'd', ARGV[c]
      e = e + 2
    end
    for c = i + 9 + deletes, i + 8 + deletes + 2 * upserts do
      e = e + 1
      entry[e] = ARGV[c]
    end
  end
"""

WRITE_V1 = WRITE.replace(LOG_ENTRY, ENTRY)
CHANGES_V1 = CHANGES.replace(NAMED, "").replace("named(entries, KEYS[15], KEYS[14])", "entries")
assert WRITE_V1 != WRITE and CHANGES_V1 != CHANGES and "named(" not in CHANGES_V1
